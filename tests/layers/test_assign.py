"""Spatial assignment: point-in-polygon edge cases on hand-made polygons, real data, nearest station."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from gridmap._errors import CoordinateError
from gridmap.layers.assign import assign_areas, nearest_station

# two streets side by side with a 0.001° gap strip between x=0.010 and x=0.011 (about 85 m at 40°N)
#   A: [116.000, 116.010] x [40.00, 40.01]     B: [116.011, 116.021] x [40.00, 40.01]
# communities split A in two halves at y=40.005 and cover B with one; C overlaps A1 on purpose (bad data)
X0, Y0 = 116.0, 40.0


@pytest.fixture(scope="module")
def layers():
    streets = gpd.GeoDataFrame(
        {"name": ["乙街道", "甲街道"], "code": ["2", "1"]},
        geometry=[box(X0 + 0.011, Y0, X0 + 0.021, Y0 + 0.01), box(X0, Y0, X0 + 0.010, Y0 + 0.01)],
        crs=4326,
    )
    communities = gpd.GeoDataFrame(
        {"code": ["11", "12", "21", "13"], "name": ["甲一", "甲二", "乙一", "重叠"]},
        geometry=[
            box(X0, Y0, X0 + 0.010, Y0 + 0.005),
            box(X0, Y0 + 0.005, X0 + 0.010, Y0 + 0.01),
            box(X0 + 0.011, Y0, X0 + 0.021, Y0 + 0.01),
            box(X0 + 0.002, Y0 + 0.001, X0 + 0.004, Y0 + 0.003),  # inside 甲一
        ],
        crs=4326,
    )
    grids = gpd.GeoDataFrame(
        {"grid_id": ["G2", "G1"]},
        geometry=[box(X0, Y0 + 0.005, X0 + 0.010, Y0 + 0.01), box(X0, Y0, X0 + 0.010, Y0 + 0.005)],
        crs=4326,
    )
    return streets, communities, grids


def pts(coords, index=None, crs=4326):
    geoms = [Point(c) if c is not None else None for c in coords]
    return gpd.GeoDataFrame({"tag": range(len(geoms))}, geometry=geoms, crs=crs, index=index)


def test_inside_points_get_one_area_each(layers):
    streets, communities, grids = layers
    p = pts([(X0 + 0.005, Y0 + 0.002), (X0 + 0.005, Y0 + 0.008), (X0 + 0.015, Y0 + 0.005)])
    out = assign_areas(p, streets, communities, grids)
    assert list(out["street"]) == ["甲街道", "甲街道", "乙街道"]
    assert list(out["street_code"]) == ["1", "1", "2"]
    assert list(out["community_code"]) == ["11", "12", "21"]
    assert list(out["grid_id"]) == ["G1", "G2", None]
    assert list(out["area_status"]) == ["inside"] * 3 and not out["outside"].any()
    assert list(out["tag"]) == [0, 1, 2]  # input columns kept


def test_boundary_points_are_deterministic_and_single(layers):
    streets, communities, grids = layers
    # on the shared edge of 甲一/甲二 (y = 40.005), and on the outer corner of 甲街道
    p = pts([(X0 + 0.005, Y0 + 0.005), (X0, Y0)])
    out = assign_areas(p, streets, communities, grids)
    assert len(out) == 2
    assert out["community_code"].iloc[0] == "11"  # smallest code of the two touching
    assert out["grid_id"].iloc[0] == "G1"
    assert out["street"].iloc[1] == "甲街道" and out["area_status"].iloc[1] == "boundary"
    # same answer whatever the polygon order
    out2 = assign_areas(p, streets.iloc[::-1], communities.iloc[::-1], grids.iloc[::-1])
    pd.testing.assert_frame_equal(out, out2)


def test_overlapping_polygons_never_duplicate_rows(layers):
    streets, communities, _ = layers
    p = pts([(X0 + 0.003, Y0 + 0.002)] * 3, index=["a", "b", "c"])  # inside 甲一 and 重叠
    out = assign_areas(p, streets, communities)
    assert list(out.index) == ["a", "b", "c"]
    assert out["community_code"].tolist() == ["11", "11", "11"]
    assert out["area_status"].tolist() == ["inside"] * 3


def test_outside_gap_and_null(layers):
    streets, communities, _ = layers
    p = pts([(X0 + 0.0105, Y0 + 0.005), (X0 + 0.5, Y0 + 0.5), None, (X0 + 0.005, Y0 + 0.002)], index=[7, 3, 9, 1])
    out = assign_areas(p, streets, communities, tolerance_m=200)
    assert list(out.index) == [7, 3, 9, 1]
    assert list(out["area_status"]) == ["nearest", "outside", "no_geometry", "inside"]
    assert out.loc[7, "street"] in ("甲街道", "乙街道") and out.loc[7, "community_code"] is not None
    assert out.loc[3, "street"] is None and out.loc[3, "community_code"] is None and bool(out.loc[3, "outside"])
    assert out.loc[9, "street"] is None and not bool(out.loc[9, "outside"])
    # no fallback when switched off, or when a district outline excludes the gap
    assert assign_areas(p, streets, communities, tolerance_m=0).loc[7, "area_status"] == "outside"
    district = gpd.GeoDataFrame(geometry=[box(X0, Y0, X0 + 0.010, Y0 + 0.01)], crs=4326)
    assert assign_areas(p, streets, communities, district=district).loc[7, "area_status"] == "outside"


def test_empty_input(layers):
    streets, communities, grids = layers
    out = assign_areas(pts([]), streets, communities, grids)
    assert len(out) == 0 and {"street", "community_code", "grid_id", "outside"} <= set(out.columns)


def test_crs_mismatch_and_missing(layers):
    streets, communities, _ = layers
    p = pts([(X0 + 0.005, Y0 + 0.002)]).to_crs(32650)
    out = assign_areas(p, streets, communities.to_crs(3857))
    assert out.crs.to_epsg() == 32650  # caller's CRS kept
    assert out["community_code"].iloc[0] == "11" and out["street"].iloc[0] == "甲街道"
    bare = gpd.GeoDataFrame(geometry=[Point(X0, Y0)])
    with pytest.raises(CoordinateError) as exc:
        assign_areas(bare, streets, communities)
    assert "CRS" in exc.value.message_en and "坐标参考系" in exc.value.message_zh


@pytest.mark.slow
def test_real_community_points_land_in_their_street(data_dir: Path):
    from gridmap.layers.admin import load_admin_layers

    admin = load_admin_layers(data_dir)
    known = admin.communities[admin.communities["has_point"]]
    p = gpd.GeoDataFrame({"expected": known["street"].to_numpy()}, geometry=known["point"].to_numpy(), crs=4326,
                         index=known["code"].to_numpy())
    out = assign_areas(p, admin.streets, admin.communities, district=admin.district, tolerance_m=0)
    assert len(out) == len(known) == 310
    same = int((out["street"] == out["expected"]).sum())
    print(f"\n {same} of {len(out)} community points fall in their own street polygon")
    assert same >= 297  # PROVENANCE: 297 of 310
    assert out["community_code"].notna().all()
    assert list(out.index) == list(known["code"])


# --------------------------------------------------------------------------- nearest station


def _ladder_graph() -> nx.MultiDiGraph:
    """A road along y=40.000 from x=116.000 to 116.020 and a spur north at x=116.020."""
    G = nx.MultiDiGraph()
    nodes = {1: (116.000, 40.000), 2: (116.010, 40.000), 3: (116.020, 40.000), 4: (116.020, 40.010)}
    for n, (x, y) in nodes.items():
        G.add_node(n, x=x, y=y)
    to_m = gpd.GeoSeries([Point(xy) for xy in nodes.values()], crs=4326).to_crs(32650)
    xy = dict(zip(nodes, zip(to_m.x, to_m.y)))
    for eid, (u, v) in enumerate([(1, 2), (2, 3), (3, 4)]):
        line = LineString([nodes[u], nodes[v]])
        length = float(np.hypot(xy[u][0] - xy[v][0], xy[u][1] - xy[v][1]))
        G.add_edge(u, v, eid=eid, geometry=line, length=length)
        G.add_edge(v, u, eid=eid, geometry=line.reverse(), length=length)
    G.graph["crs"] = "EPSG:4326"
    return G


def test_nearest_station_by_road_and_fallback():
    G = _ladder_graph()
    stations = gpd.GeoDataFrame({"name": ["西站", "北站"]}, geometry=[Point(116.0, 40.0), Point(116.020, 40.010)],
                                crs=4326, index=[100, 200])
    # a at (116.015, 40.0001): straight-line nearest is 北站 (1.19 km vs 1.28 km), but by road
    #   西站 is 1.28 km and 北站 0.43 + 1.11 km, so 西站 wins
    # b at (116.0199, 40.0099): 北站 either way
    # p2 far off the network (5 km north): straight-line, flagged
    p = pts([(116.015, 40.0001), (116.0199, 40.0099), (116.01, 40.05), None], index=list("abcd"))
    out = nearest_station(p, stations, G)
    assert list(out.index) == list("abcd")
    assert out.loc["a", "by_road"] and out.loc["b", "by_road"]
    assert not out.loc["c", "by_road"] and not out.loc["d", "by_road"]
    assert out.loc["a", "station_name"] == "西站" and out.loc["a", "station_index"] == 100
    assert out.loc["a", "distance_m"] == pytest.approx(1281 + 11, rel=0.01)
    assert nearest_station(p, stations).loc["a", "station_name"] == "北站"  # straight-line answer differs
    assert out.loc["b", "station_index"] == 200
    assert out.loc["c", "station_name"] == "北站" and out.loc["c", "distance_m"] == pytest.approx(out.loc["c", "straight_m"])
    assert out.loc["d", "station_name"] is None and np.isnan(out.loc["d", "distance_m"])
    # road distance is never shorter than straight-line
    on = out[out["by_road"]]
    assert (on["distance_m"] >= on["straight_m"] - 1e-6).all()
    # a search limit below the road distance falls back to straight line
    short = nearest_station(p, stations, G, max_network_m=1000)
    assert not short.loc["a", "by_road"] and short.loc["a", "station_name"] == "北站"


def test_nearest_station_straight_only_and_empty():
    stations = gpd.GeoDataFrame({"name": ["s1", "s2"]}, geometry=[Point(116.0, 40.0), Point(116.1, 40.0)], crs=4326)
    p = pts([(116.09, 40.0), (116.01, 40.0)]).to_crs(32650)
    out = nearest_station(p, stations)
    assert list(out["station_name"]) == ["s2", "s1"] and not out["by_road"].any()
    assert out["distance_m"].iloc[1] == pytest.approx(853, rel=0.01)
    assert len(nearest_station(pts([]), stations)) == 0
    empty_st = stations.iloc[0:0]
    assert nearest_station(p, empty_st)["station_name"].isna().all()
