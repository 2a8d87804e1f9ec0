"""Travel on the real walk network: routes follow streets, matrices, flagged straight-line estimates."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from gridmap._errors import ValidationError
from gridmap.layers._osm_sources import to_utm
from gridmap.layers.roads import SPEED_KMH, build_road_graph
from gridmap.layers.travel import detour_factor, route_geometry, travel_matrix

HILLS = (116.105, 40.06)  # 苏家坨 hills, far from the shipped roads


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def walk(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> nx.MultiDiGraph:
    mp = pytest.MonkeyPatch()
    mp.setenv("GRIDMAP_VAR_DIR", str(tmp_path_factory.mktemp("travel_var")))
    try:
        return build_road_graph(data_dir, mode="walk", use_cache=False)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def communities(data_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(data_dir / "haidian" / "points" / "communities_wgs84.geojson")


@pytest.fixture(scope="module")
def streets(data_dir: Path) -> gpd.GeoDataFrame:
    from gridmap.layers.admin import load_admin_layers

    return load_admin_layers(data_dir).streets


def _straight(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    x, y = to_utm(np.array([lon_a, lon_b]), np.array([lat_a, lat_b]))
    return float(np.hypot(x[1] - x[0], y[1] - y[0]))


def _share_on_roads(G: nx.MultiDiGraph, line: shapely.LineString, tol_m: float = 5.0) -> float:
    """Share of the route's length lying within ``tol_m`` of a road edge."""
    edges = gpd.GeoSeries([d["geometry"] for _, _, d in G.edges(data=True)], crs="EPSG:4326")
    route = gpd.GeoSeries([line], crs="EPSG:4326").to_crs("EPSG:32650").iloc[0]
    near = edges.to_crs("EPSG:32650")
    near = near[near.intersects(route.buffer(50))]
    corridor = shapely.union_all(near.buffer(tol_m).values)
    return route.intersection(corridor).length / route.length


def _check_route(G, a, b) -> float:
    straight = _straight(a.x, a.y, b.x, b.y)
    route = route_geometry(G, a.x, a.y, b.x, b.y)
    assert not route.estimated
    assert straight <= route.metres <= 2 * straight
    # the drawn line is as long as reported and runs along the roads
    drawn = gpd.GeoSeries([route.geometry], crs="EPSG:4326").to_crs("EPSG:32650").length.iloc[0]
    assert drawn == pytest.approx(route.metres, rel=0.02, abs=5)
    assert _share_on_roads(G, route.geometry) >= 0.9
    return route.metres


def test_routes_between_communities_in_zhongguancun_follow_streets(walk, communities) -> None:
    zgc = communities[communities["street_poly"] == "中关村街道"].reset_index(drop=True)
    assert len(zgc) >= 5
    pts = list(zgc.geometry)
    # pairs over 800 m: below that, walled compounds can make a true walk exceed 2x
    # (科源 -> 科春, 436 m apart, is 959 m around the block)
    pairs = [(pts[i], pts[j]) for i in range(len(pts)) for j in range(i + 1, len(pts))
             if _straight(pts[i].x, pts[i].y, pts[j].x, pts[j].y) > 800][::7]
    assert len(pairs) >= 3
    for a, b in pairs:
        _check_route(walk, a, b)


def test_route_yangfangdian_to_qinghe_follows_streets(walk, streets) -> None:
    pts = streets.set_index("name").geometry.representative_point()
    metres = _check_route(walk, pts["羊坊店街道"], pts["清河街道"])
    assert metres > 12_000


def test_route_unpacks_as_line_and_metres(walk) -> None:
    line, metres = route_geometry(walk, 116.318, 39.983, 116.330, 39.975)
    assert isinstance(line, shapely.LineString) and metres > 0


def test_route_to_a_far_point_is_a_flagged_estimate(walk) -> None:
    route = route_geometry(walk, 116.318, 39.983, *HILLS)
    assert route.estimated
    straight = _straight(116.318, 39.983, *HILLS)
    assert route.metres == pytest.approx(straight * walk.graph["detour_factor"])


def test_detour_factor_is_calibrated_on_the_network(walk) -> None:
    f = detour_factor(walk, sample=200, seed=1)
    assert 1.05 < f < 1.8
    assert walk.graph["detour_factor"] == pytest.approx(f, rel=0.1)


def test_travel_matrix(walk, communities) -> None:
    pts = communities.sample(40, random_state=3)
    lons = np.r_[pts.geometry.x.to_numpy(), HILLS[0]]
    lats = np.r_[pts.geometry.y.to_numpy(), HILLS[1]]
    M = travel_matrix(walk, lons, lats)
    n = len(lons)
    assert M.metres.shape == M.seconds.shape == M.estimated.shape == (n, n)
    assert np.all(np.diag(M.metres) == 0) and np.all(np.diag(M.seconds) == 0)
    assert np.isfinite(M.metres).all()
    # walking is undirected: symmetric up to rounding
    assert np.allclose(M.metres, M.metres.T, rtol=1e-9, atol=1e-6)
    # the far point's row and column are estimates, straight line x detour at walking speed
    assert M.estimated[-1, :-1].all() and M.estimated[:-1, -1].all()
    x, y = to_utm(lons, lats)
    straight = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    assert np.allclose(M.metres[-1, :-1], straight[-1, :-1] * M.detour)
    assert np.allclose(M.seconds[M.estimated], M.metres[M.estimated] / (SPEED_KMH["walk"] / 3.6))
    # network pairs are at least the straight line, and time follows the walking speed
    net = ~M.estimated & (straight > 0)
    assert (M.metres[net] >= straight[net] - 1e-6).all()
    ratio = M.seconds[net] / M.metres[net]
    assert np.median(ratio) == pytest.approx(3.6 / SPEED_KMH["walk"], rel=0.02)
    # same answer as drawing the route
    i, j = np.argwhere(net)[0]
    route = route_geometry(walk, lons[i], lats[i], lons[j], lats[j])
    assert M.metres[i, j] == pytest.approx(route.metres, rel=1e-6)


def test_matrix_between_nodes_equals_networkx_shortest_paths(walk) -> None:
    rng = np.random.default_rng(7)
    nodes = list(walk.nodes)
    pick = [nodes[k] for k in rng.choice(len(nodes), 6, replace=False)]
    lons = [walk.nodes[n]["x"] for n in pick]
    lats = [walk.nodes[n]["y"] for n in pick]
    M = travel_matrix(walk, lons, lats)
    for i in range(6):
        for j in range(6):
            if i != j:
                expect = nx.shortest_path_length(walk, pick[i], pick[j], weight="length")
                assert M.metres[i, j] == pytest.approx(expect, abs=0.5)


def test_matrix_refuses_a_mode_the_graph_lacks(walk) -> None:
    with pytest.raises(ValidationError):
        travel_matrix(walk, [116.318], [39.983], mode="car")
