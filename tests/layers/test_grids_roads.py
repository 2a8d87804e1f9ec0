"""Issue 19, item 2: redrawing grids — a split follows the roads inside the grid where they allow, its parts are
contiguous and tile the grid, every home lies in exactly one part, and the redrawn grids (with their history)
go to a GeoPackage that QGIS / geopandas open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as hs
from shapely.geometry import LineString, Point, box

from gridmap.layers._osm_sources import to_utm
from gridmap.layers.grids import ROAD_SPLIT_TOLERANCE, road_lines, split_grid

GRID = box(116.300, 39.980, 116.310, 39.990)
#: Two north-south streets and one east-west street crossing the grid (lon/lat).
ROADS = [LineString([(116.3031, 39.975), (116.3036, 39.995)]),
         LineString([(116.3067, 39.975), (116.3064, 39.995)]),
         LineString([(116.295, 39.9852), (116.315, 39.9856)])]


def _utm(geom):
    return shapely.transform(geom, lambda c: np.column_stack(to_utm(c[:, 0], c[:, 1])))


def _check_tiling(geom, pieces, pts) -> None:
    """The pieces are single polygons that tile ``geom``; every home is in exactly one piece and inside it."""
    idx = np.concatenate([i for _, i in pieces])
    assert sorted(idx.tolist()) == list(range(len(pts)))  # every home in exactly one part
    polys = [_utm(p) for p, _ in pieces]
    assert all(p.geom_type == "Polygon" for p in polys)  # contiguous
    whole = _utm(geom)
    assert abs(sum(p.area for p in polys) - whole.area) < 1e-3 * whole.area
    assert shapely.union_all(polys).symmetric_difference(whole).area < 1e-3 * whole.area
    for (p, i) in pieces:
        assert all(p.buffer(1e-7).contains(Point(*pts[k])) for k in i)


def _cut_off_roads_m(pieces, roads) -> float:
    """Longest stretch (metres) of the lines between pieces that lies more than 3 m from every road."""
    polys = [_utm(p) for p, _ in pieces]
    net = shapely.union_all([_utm(r) for r in roads]).buffer(3.0)
    worst = 0.0
    for a in range(len(polys)):
        for b in range(a + 1, len(polys)):
            shared = shapely.intersection(polys[a].boundary, polys[b].boundary)
            worst = max(worst, shapely.difference(shared, net).length)
    return worst


@settings(max_examples=25, deadline=None)
@given(n=hs.integers(6, 80), seed=hs.integers(0, 10_000))
def test_a_split_along_roads_tiles_the_grid_and_its_line_lies_on_the_roads(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = np.column_stack([116.300 + 0.01 * rng.random(n), 39.980 + 0.01 * rng.random(n)])
    w = rng.integers(1, 5, n).astype(float)
    pieces = split_grid(GRID, pts, w, 2, ROADS)
    assert len(pieces) == 2
    _check_tiling(GRID, pieces, pts)
    if _road_cut_exists(pts, w):  # then it is taken: the line between the parts runs on the roads
        assert _cut_off_roads_m(pieces, ROADS) < 1.0
        err = abs(w[pieces[0][1]].sum() - w.sum() / 2)
        assert err <= ROAD_SPLIT_TOLERANCE * w.sum() + 1e-9
    else:  # a straight cut at the weighted median
        assert abs(len(pieces[0][1]) - len(pieces[1][1])) <= n  # both parts hold homes
        assert min(len(i) for _, i in pieces) >= 1


def _road_cut_exists(pts: np.ndarray, w: np.ndarray) -> bool:
    """Brute force: do the road blocks of GRID group into two contiguous parts within the tolerance of half?"""
    whole = _utm(GRID)
    noded = shapely.union_all([whole.boundary] + [shapely.intersection(_utm(r), whole) for r in ROADS])
    blocks = [b for b in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))) if b.area > 1.0]
    xy = np.column_stack(to_utm(pts[:, 0], pts[:, 1]))
    of = [min(k for k, b in enumerate(blocks) if b.buffer(1e-6).contains(Point(*p))) for p in xy]
    bw = np.bincount(of, weights=w, minlength=len(blocks))
    for mask in range(1, 2 ** len(blocks) - 1):
        a = [k for k in range(len(blocks)) if mask >> k & 1]
        b = [k for k in range(len(blocks)) if not mask >> k & 1]
        if abs(bw[a].sum() - w.sum() / 2) > ROAD_SPLIT_TOLERANCE * w.sum() + 1e-9 or bw[a].sum() in (0, w.sum()):
            continue
        if shapely.union_all([blocks[k] for k in a]).geom_type == "Polygon" and \
                shapely.union_all([blocks[k] for k in b]).geom_type == "Polygon":
            return True
    return False


def test_without_roads_across_the_grid_the_split_is_a_straight_cut_that_still_tiles() -> None:
    rng = np.random.default_rng(1)
    pts = np.column_stack([116.300 + 0.01 * rng.random(40), 39.980 + 0.01 * rng.random(40)])
    far = [LineString([(116.40, 39.90), (116.41, 39.91)])]
    pieces = split_grid(GRID, pts, np.ones(40), 3, far)
    assert len(pieces) == 3
    _check_tiling(GRID, pieces, pts)
    assert sorted(len(i) for _, i in pieces) in ([13, 13, 14], [13, 14, 13], [14, 13, 13]) or \
        max(len(i) for _, i in pieces) - min(len(i) for _, i in pieces) <= 2


@pytest.mark.slow
def test_a_real_grid_split_follows_the_osm_walk_roads(data_dir: Path) -> None:
    from gridmap.routing.rebalance_store import walk_graph

    G = walk_graph()
    if G is None:
        pytest.skip("no road data")
    grid = box(116.300, 39.980, 116.310, 39.990)
    roads = road_lines(G, grid)
    assert roads, "the walk graph has roads in this part of Haidian"
    rng = np.random.default_rng(7)
    pts = np.column_stack([116.300 + 0.01 * rng.random(60), 39.980 + 0.01 * rng.random(60)])
    pieces = split_grid(grid, pts, np.ones(60), 2, roads)
    assert len(pieces) == 2
    _check_tiling(grid, pieces, pts)
    assert _cut_off_roads_m(pieces, roads) < 1.0  # the split line runs on road edges
    assert min(len(i) for _, i in pieces) >= 60 * 0.3


def test_split_grids_through_the_store_go_to_the_geopackage_with_their_history(engine, tmp_path: Path) -> None:
    import geopandas as gpd
    import pyogrio
    from sqlalchemy import select

    from gridmap.layers.export import export_geopackage
    from gridmap.routing.rebalance import propose_rebalance
    from gridmap.routing.rebalance_store import (
        account_id,
        apply_proposal,
        keep_proposal,
    )
    from gridmap.store.models import Elder, Grid
    _one_heavy_grid(engine)
    p = propose_rebalance(engine, "乙街道", "2026-W50", time_limit=2)
    assert p.splits, "the heavy grid is split"
    d = p.to_dict()
    uid = account_id(engine, "cli", create=True)
    pid = keep_proposal(engine, uid, "乙街道", "2026-W50", {**d, "moves": p.moves, "splits": p.splits})
    apply_proposal(engine, pid, "tester")
    with engine.connect() as conn:
        grids = {r.id: r for r in conn.execute(select(Grid.id, Grid.code, Grid.geom)).all()}
        homes = conn.execute(select(Elder.id, Elder.geom, Elder.grid_id)).all()
    # every home inside exactly one grid, and it is the grid it belongs to; grids contiguous
    for h in homes:
        holding = [g.id for g in grids.values() if g.geom.buffer(1e-7).contains(h.geom)]
        assert holding == [h.grid_id] or (len(holding) > 1 and h.grid_id in holding
                                          and all(grids[i].geom.boundary.distance(h.geom) < 1e-7 for i in holding))
    assert all(len(shapely.get_parts(g.geom)) == 1 for g in grids.values())
    new_codes = {n["grid"] for sp in p.splits for n in sp["new_grids"]}
    if p.units.graph is not None:  # on the real walk graph: the line between a cut grid and its new grids is on roads
        from shapely import wkt

        by_code = {g.code: g.geom for g in grids.values()}
        for sp in p.splits:
            roads = road_lines(p.units.graph, wkt.loads(sp["geom_before"]))
            pieces = [(by_code[sp["grid"]], None)] + [(by_code[n["grid"]], None) for n in sp["new_grids"]]
            assert _cut_off_roads_m(pieces, roads) < 1.0

    out = tmp_path / "grids.gpkg"
    written = export_geopackage(None, out, roads=False, engine=engine)
    assert written["grids"] == len(grids)
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert {"grids", "grid_history"} <= layers
    g = gpd.read_file(out, layer="grids")
    assert g.crs.to_epsg() == 4326 and new_codes <= set(g["id"])
    cut = {sp["grid"] for sp in p.splits}
    assert (g.loc[g["id"].isin(cut), "version"] > 1).all()  # the cut grids carry a new version
    assert (g.loc[g["id"].isin(cut), "updated_by"] == "tester").all()
    hist = gpd.read_file(out, layer="grid_history")
    assert cut <= set(hist["grid"]) and (hist["changed_by"] == "tester").any()


def _one_heavy_grid(engine) -> None:
    """One street, one community, two grids side by side: grid 1 with 40 elders living alone (steward T-1),
    grid 2 with 2 (steward T-2) — grid 1 alone weighs more than the mean workload."""
    from datetime import date

    from shapely.geometry import MultiPolygon

    from gridmap.domain.enums import Category, StewardKind
    from gridmap.store.db import session_scope
    from gridmap.store.models import Community, District, Elder, Grid, Steward, Street

    lon, lat = 116.300, 39.980
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区"))
        s.flush()
        st = Street(name="乙街道", code="110108002000", district_code="110108000000",
                    geom=MultiPolygon([box(lon, lat, lon + 0.02, lat + 0.01)]))
        s.add(st)
        s.flush()
        cm = Community(name="社区甲", code="110108002001", street_id=st.id, centre=Point(lon + 0.01, lat + 0.005),
                       geom=MultiPolygon([box(lon, lat, lon + 0.02, lat + 0.01)]))
        s.add(cm)
        s.flush()
        for k in range(2):
            sw = Steward(code=f"T-{k + 1}", name=f"管家{k + 1}", kind=StewardKind.VISIT, organisation=cm.name,
                         community_id=cm.id, base=Point(lon + 0.005 + 0.01 * k, lat + 0.005))
            s.add(sw)
            s.flush()
            x0 = lon + 0.01 * k
            g = Grid(code=f"110108002001-0{k + 1}", community_id=cm.id,
                     geom=MultiPolygon([box(x0, lat, x0 + 0.01, lat + 0.01)]))
            s.add(g)
            s.flush()
            for j in range(40 if k == 0 else 2):
                s.add(Elder(name=f"老人{k}{j}", birth_date=date(1940, 1, 1), street_id=st.id, community_id=cm.id,
                            grid_id=g.id, visit_steward_id=sw.id, categories=[Category.LIVING_ALONE],
                            geom=Point(x0 + 0.0005 + 0.00023 * j, lat + 0.001 + 0.0011 * (j % 8))))
