"""Road network: merge of the real sources, components, kilometres, coverage, cache, snapping, drop-in files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap._errors import DataDirError, GridmapError, ValidationError
from gridmap.layers._osm_sources import to_utm, to_wgs
from gridmap.layers.roads import (
    build_road_graph,
    fetch_extract,
    load_sources,
    merge_sources,
    road_network_info,
    snap_points,
)

#: A point in the hills of 苏家坨镇 (阳台山), far from any road of the shipped data.
HILLS = (116.105, 40.06)


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def road_var(tmp_path_factory: pytest.TempPathFactory):
    """A private var dir so the cache tests start cold."""
    mp = pytest.MonkeyPatch()
    var = tmp_path_factory.mktemp("roads_var")
    mp.setenv("GRIDMAP_VAR_DIR", str(var))
    yield var
    mp.undo()


@pytest.fixture(scope="session")
def built_walk(data_dir: Path, road_var: Path) -> tuple[nx.MultiDiGraph, float]:
    """The walk graph built from the shipped road files (cold build, saved to cache) and its build time."""
    t0 = time.perf_counter()
    G = build_road_graph(data_dir, mode="walk", use_cache=True)
    return G, time.perf_counter() - t0


@pytest.fixture(scope="session")
def walk(built_walk) -> nx.MultiDiGraph:
    return built_walk[0]


@pytest.fixture(scope="session")
def sources(data_dir: Path):
    return load_sources(data_dir)


@pytest.fixture(scope="session")
def merged(sources):
    return merge_sources(sources)


@pytest.fixture(scope="session")
def streets(data_dir: Path) -> gpd.GeoDataFrame:
    from gridmap.layers.admin import load_admin_layers

    return load_admin_layers(data_dir).streets


@pytest.fixture(scope="session")
def info(walk, streets) -> dict:
    return road_network_info(walk, streets)


def test_merge_has_no_duplicate_edges(merged) -> None:
    edges, nodes, _ = merged
    pair = pd.DataFrame({"a": np.minimum(edges["u"], edges["v"]), "b": np.maximum(edges["u"], edges["v"]),
                         "source": edges["source"]})
    # a node pair appears in one source only
    assert pair.groupby(["a", "b"])["source"].nunique().max() == 1
    # and never twice with the same geometry
    wkb = edges.geometry.normalize().to_wkb()
    assert not pd.concat([pair[["a", "b"]], wkb.rename("g")], axis=1).duplicated().any()
    assert nodes.index.is_unique
    assert set(edges["u"]).union(edges["v"]) <= set(nodes.index)


def test_sources_are_joined_at_shared_osm_node_ids(merged, walk) -> None:
    edges, _, notes = merged
    by_node = pd.concat([edges[["u", "source"]].rename(columns={"u": "n"}),
                         edges[["v", "source"]].rename(columns={"v": "n"})])
    n_sources = by_node.groupby("n")["source"].nunique()
    joined = n_sources[n_sources > 1].index
    osm_ids = joined[joined > 0]
    assert len(osm_ids) > 50, "the campus files and the 2013 network share OSM junctions"
    # the line file's junctions took real OSM ids where they met another source's node
    zgc = edges[edges["source"] == "zhongguancun_roads_wgs84.geojson"]
    assert (np.concatenate([zgc["u"], zgc["v"]]) > 0).sum() > 100
    # and the newer sources sit in the same connected walk graph as the 2013 network
    kept = {d["source"] for _, _, d in walk.edges(data=True)}
    assert {"haidian_roads_osm2013_wgs84.geojson", "zhongguancun_roads_wgs84.geojson",
            "yanyuan_tsinghua.osm", "xueyuanlu_cau.osm", "bupt.osm"} <= kept
    assert any("dropped inside better sources' coverage" in n for n in notes)


def test_newer_sources_win_where_they_overlap(sources, merged) -> None:
    edges, nodes, _ = merged
    zgc = next(s for s in sources if s.name == "zhongguancun_roads_wgs84.geojson")
    assert zgc.kind == "lines"
    inner = zgc.coverage.buffer(-0.0002)  # ~20 m inside the Zhongguancun file's coverage
    old = edges[edges["source"] == "haidian_roads_osm2013_wgs84.geojson"]
    ux, uy = nodes.loc[old["u"], "x"].to_numpy(), nodes.loc[old["u"], "y"].to_numpy()
    vx, vy = nodes.loc[old["v"], "x"].to_numpy(), nodes.loc[old["v"], "y"].to_numpy()
    assert not (shapely.contains_xy(inner, ux, uy) & shapely.contains_xy(inner, vx, vy)).any()
    # the newer file's roads are all there
    assert (edges["source"] == zgc.name).sum() >= 0.85 * len(zgc.edges)


def test_walk_graph_is_the_largest_strongly_connected_component(walk) -> None:
    assert nx.is_strongly_connected(walk)
    assert 0.75 <= walk.graph["lscc_node_share"] <= 1.0
    assert 0.8 <= walk.graph["lscc_km_share"] <= 1.0
    # undirected for walking: every edge has its reverse
    assert all(walk.has_edge(v, u) for u, v in list(walk.edges())[:2000])


def test_district_walk_network_is_about_2700_km(info) -> None:
    assert 2300 <= info["km"] <= 3100
    assert info["nodes"] > 9000 and info["edges"] > 2 * 9000


def test_every_edge_has_length_and_walk_time(walk) -> None:
    lengths = np.array([d["length"] for _, _, d in walk.edges(data=True)])
    times = np.array([d["travel_time_walk"] for _, _, d in walk.edges(data=True)])
    assert np.isfinite(lengths).all() and (lengths >= 0).all()
    # length is the edge's length in metres (UTM 50N)
    sample = list(walk.edges(data=True))[::500]
    geo = gpd.GeoSeries([d["geometry"] for _, _, d in sample], crs="EPSG:4326").to_crs("EPSG:32650")
    assert np.allclose(geo.length.to_numpy(), [d["length"] for _, _, d in sample], rtol=1e-6, atol=0.01)
    lengths, times = lengths[lengths > 0], times[lengths > 0]
    # 4.5 km/h, steps at half speed
    assert np.allclose(np.median(times / lengths), 3.6 / 4.5)
    assert (times / lengths <= 2 * 3.6 / 4.5 + 1e-9).all()


def test_urban_streets_are_covered_and_north_west_towns_are_sparse(info) -> None:
    share = {r["name"]: r["share_within_300m"] for r in info["streets"]}
    assert len(share) == 29
    for name in ("中关村街道", "羊坊店街道", "学院路街道", "燕园街道", "清华园街道", "北太平庄街道"):
        assert share[name] >= 0.95, name
    for name in ("苏家坨镇", "上庄镇"):
        assert share[name] < 0.5, name


def test_cache_hit_returns_the_same_graph_faster(data_dir: Path, built_walk) -> None:
    G, cold = built_walk
    t0 = time.perf_counter()
    H = build_road_graph(data_dir, mode="walk", use_cache=True)
    warm = time.perf_counter() - t0
    assert warm < cold
    assert set(H.nodes) == set(G.nodes)
    assert H.number_of_edges() == G.number_of_edges()
    for u, v, k, d in list(G.edges(keys=True, data=True))[:500]:
        assert H.edges[u, v, k]["length"] == pytest.approx(d["length"])
        assert H.edges[u, v, k]["travel_time_walk"] == pytest.approx(d["travel_time_walk"])
        assert H.edges[u, v, k]["geometry"].equals_exact(d["geometry"], 1e-7)
    assert H.graph["detour_factor"] == pytest.approx(G.graph["detour_factor"])
    # the portable GraphML copy holds the same graph
    from gridmap.config import get_settings
    from gridmap.layers.roads import load_cached_graph

    path = get_settings().cache_dir / "roads" / G.graph["cache_key"] / "walk.graphml"
    X = load_cached_graph(path)
    assert X.number_of_edges() == G.number_of_edges() and set(X.nodes) == set(G.nodes)
    u, v, k, d = next(iter(G.edges(keys=True, data=True)))
    assert X.edges[u, v, k]["travel_time_walk"] == pytest.approx(d["travel_time_walk"])


def test_snap_to_hand_made_points(walk) -> None:
    u, v, k, d = next((e for e in walk.edges(keys=True, data=True) if e[3]["length"] > 100), None)
    line = d["geometry"]
    c = shapely.get_coordinates(line)
    x, y = to_utm(c[:, 0], c[:, 1])
    mid = shapely.LineString(np.column_stack([x, y])).interpolate(0.5, normalized=True)
    # 15 m to the side of the middle of the edge (perpendicular to its middle segment)
    seg = shapely.LineString(np.column_stack([x, y])).interpolate(0.51, normalized=True)
    tx, ty = seg.x - mid.x, seg.y - mid.y
    nx_, ny_ = -ty / np.hypot(tx, ty), tx / np.hypot(tx, ty)
    lon, lat = to_wgs(np.array([mid.x + 15 * nx_, c[0, 0] * 0]), np.array([mid.y + 15 * ny_, 0]))
    node_lon, node_lat = walk.nodes[u]["x"], walk.nodes[u]["y"]
    res = snap_points(walk, [lon[0], node_lon], [lat[0], node_lat])
    assert {res.u[0], res.v[0]} == {u, v} or res.distance_m[0] < 15.0  # a closer edge may exist
    assert res.distance_m[0] <= 15.0 + 0.5
    assert res.distance_m[1] < 0.5
    assert res.node[1] == u or walk.nodes[res.node[1]]["x"] == pytest.approx(node_lon)
    assert not res.far.any()


def test_point_in_the_suijiatuo_hills_is_far(walk) -> None:
    res = snap_points(walk, [HILLS[0], 116.318], [HILLS[1], 39.983])
    assert res.far.tolist() == [True, False]
    assert res.distance_m[0] > 300


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(116.05, 116.40), st.floats(39.88, 40.16)), min_size=1, max_size=30))
def test_snap_distance_is_the_distance_to_the_snapped_edge(walk, pts) -> None:
    lons, lats = np.array(pts).T
    res = snap_points(walk, lons, lats)
    for i in range(len(lons)):
        g = walk.edges[res.u[i], res.v[i], res.key[i]]["geometry"]
        c = shapely.get_coordinates(g)
        line = shapely.LineString(np.column_stack(to_utm(c[:, 0], c[:, 1])))
        assert line.distance(shapely.Point(res.x[i], res.y[i])) == pytest.approx(res.distance_m[i], abs=0.01)
        assert res.far[i] == (res.distance_m[i] > 300)
        assert 0 <= res.position[i] <= 1


def test_snap_rejects_bad_input(walk) -> None:
    with pytest.raises(ValidationError):
        snap_points(walk, [116.3, 116.31], [39.9])
    with pytest.raises(ValidationError):
        snap_points(walk, [np.nan], [39.9])


def test_unknown_mode_is_refused(data_dir: Path) -> None:
    with pytest.raises(ValidationError) as err:
        build_road_graph(data_dir, mode="horse")
    assert "出行方式" in str(err.value)


def _write_lines(path: Path, lines: list[shapely.LineString], **cols) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame({"osm_id": [str(i) for i in range(len(lines))], "fclass": "residential",
                            "oneway": "B", **cols}, geometry=lines, crs="EPSG:4326")
    gdf.to_file(path, driver="GeoJSON")


def test_line_file_is_split_at_intersections(tmp_path: Path) -> None:
    # a cross (no shared vertex), a T touching the horizontal line, and a bridge over it
    c = (116.30, 39.95)
    d = 0.002
    lines = [
        shapely.LineString([(c[0] - d, c[1]), (c[0] + d, c[1])]),            # horizontal
        shapely.LineString([(c[0], c[1] - d), (c[0], c[1] + d)]),            # vertical, crosses it
        shapely.LineString([(c[0] + d / 2, c[1]), (c[0] + d / 2, c[1] + d)]),  # T on the horizontal
        shapely.LineString([(c[0] - d / 2, c[1] - d), (c[0] - d / 2, c[1] + d)]),  # bridge over it
    ]
    _write_lines(tmp_path / "haidian" / "roads" / "lines.geojson", lines, bridge=["F", "F", "F", "T"], layer=[0, 0, 0, 1])
    srcs = load_sources(tmp_path)
    edges, nodes, _ = merge_sources(srcs)
    # horizontal -> 3 pieces (cross, T), vertical -> 2, T -> 1, bridge -> 1
    assert len(edges) == 7
    deg = pd.concat([edges["u"], edges["v"]]).value_counts()
    assert sorted(deg.tolist(), reverse=True)[:2] == [4, 3]
    assert (nodes.index < 0).all()  # synthesised ids
    # ids are stable: reading again gives the same ids
    again, _, _ = merge_sources(load_sources(tmp_path))
    assert set(again["u"]) == set(edges["u"])
    G = build_road_graph(tmp_path, mode="walk", use_cache=False)
    assert nx.is_strongly_connected(G)
    assert G.number_of_nodes() == 7  # the bridge is not connected to the rest
    assert G.graph["lscc_node_share"] == pytest.approx(7 / 9)


def test_a_dropped_in_osm_extract_works(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "haidian" / "roads" / "new_extract"
    target.mkdir(parents=True)
    shutil.copy(data_dir / "haidian" / "roads" / "osm" / "bupt.osm", target / "bupt.osm")
    G = build_road_graph(tmp_path, mode="walk", use_cache=False)
    assert G.number_of_nodes() > 100
    assert min(G.nodes) > 0  # real OSM node ids
    assert json.loads(G.graph["sources"]) == [str(target / "bupt.osm")]
    # and snapping works on it
    res = snap_points(G, [116.352], [39.960])
    assert res.distance_m[0] < 100


def test_gdal_reader_for_pbf_reads_osm_ways(data_dir: Path) -> None:
    from gridmap.layers._osm_sources import _read_osm_gdal

    src = _read_osm_gdal(data_dir / "haidian" / "roads" / "osm" / "bupt.osm", None)
    km = src.edges.to_crs("EPSG:32650").length.sum() / 1000
    from gridmap.layers._osm_sources import read_source

    ref = read_source(data_dir / "haidian" / "roads" / "osm" / "bupt.osm")
    km_ref = ref.edges.to_crs("EPSG:32650").length.sum() / 1000
    assert km == pytest.approx(km_ref, rel=0.15)


def test_broken_pbf_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "haidian" / "roads" / "haidian.osm.pbf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a pbf")
    with pytest.raises(DataDirError) as err:
        build_road_graph(tmp_path, use_cache=False)
    assert "haidian.osm.pbf" in err.value.message_en and "无法读取" in err.value.message_zh


def test_empty_roads_dir_is_a_data_dir_error(tmp_path: Path) -> None:
    (tmp_path / "haidian" / "roads").mkdir(parents=True)
    with pytest.raises(DataDirError):
        build_road_graph(tmp_path, use_cache=False)


def test_fetch_extract_fails_fast_and_bilingually_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import osmnx as ox

    # a closed local port stands for "no internet" whatever the test machine has
    monkeypatch.setattr(ox.settings, "nominatim_url", "http://127.0.0.1:9/")
    monkeypatch.setattr(ox.settings, "overpass_url", "http://127.0.0.1:9/api")
    t0 = time.perf_counter()
    with pytest.raises(GridmapError) as err:
        fetch_extract("海淀区, 北京", tmp_path)
    assert time.perf_counter() - t0 < 10
    assert "cannot download" in err.value.message_en
    assert "无法下载" in err.value.message_zh
    assert not list(tmp_path.iterdir())
