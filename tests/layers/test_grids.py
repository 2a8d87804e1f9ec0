"""Tests of gridmap.layers.grids on the real community polygons."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.layers.admin import AdminLayers, load_admin_layers
from gridmap.layers.crs import METRIC_CRS, WGS84
from gridmap.layers.grids import (
    AGED_60_SHARE,
    GRID_COLUMNS,
    PROGRAMME_SHARE,
    build_grids,
    estimate_community_workload,
    grid_workloads,
    polsby_popper,
)

#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layers(data_dir: Path) -> AdminLayers:
    return load_admin_layers(data_dir)


@pytest.fixture(scope="module")
def estimated(layers: AdminLayers) -> gpd.GeoDataFrame:
    return build_grids(layers.communities, None, 30, streets=layers.streets)


def _random_elders(communities: gpd.GeoDataFrame, n: int, seed: int) -> gpd.GeoDataFrame:
    """Elders' homes: random points inside random communities, weights = visit-minutes."""
    rng = np.random.default_rng(seed)
    cm = communities.to_crs(METRIC_CRS)
    picks = rng.integers(0, len(cm), n)
    xs, ys, codes = [], [], []
    for i in picks:
        poly = cm.geometry.iloc[i]
        minx, miny, maxx, maxy = poly.bounds
        while True:
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if poly.contains(shapely.Point(x, y)):
                break
        xs.append(x)
        ys.append(y)
        codes.append(cm["code"].iloc[i])
    pts = gpd.GeoSeries(shapely.points(xs, ys), crs=METRIC_CRS).to_crs(WGS84)
    return gpd.GeoDataFrame(
        {"community_code": codes, "weight": rng.choice([30.0, 45.0, 60.0, 90.0], n)}, geometry=pts.to_numpy(), crs=WGS84
    )


@pytest.fixture(scope="module")
def sample(layers: AdminLayers) -> gpd.GeoDataFrame:
    # the 26 communities of 花园路 and the 6 of 海淀镇: urban and mixed shapes
    c = layers.communities
    return c[c["street"].isin(["花园路街道", "海淀镇"])]


@pytest.fixture(scope="module")
def elders(sample: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return _random_elders(sample, 3000, seed=1)


@pytest.fixture(scope="module")
def point_grids(sample: gpd.GeoDataFrame, elders: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return build_grids(sample, elders, capacity=1200.0)  # 1,200 visit-minutes per steward per week


def _assert_tiles(grids: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> None:
    gm = grids.to_crs(METRIC_CRS)
    cm = communities.to_crs(METRIC_CRS).set_index("code")
    for code, group in gm.groupby("community_code"):
        union = shapely.union_all(group.geometry.to_numpy())
        poly = cm.geometry.loc[code]
        assert group.area.sum() - union.area < 1.0, code  # no overlap (m²)
        assert union.symmetric_difference(poly).area < 1e-6 * poly.area + 1.0, code  # no gap


def test_estimated_grids_cover_all_communities(estimated, layers: AdminLayers):
    assert list(estimated.columns) == GRID_COLUMNS
    assert set(estimated["community_code"]) == set(layers.communities["code"])
    assert estimated["grid_id"].is_unique
    assert estimated["grid_id"].str.fullmatch(r"\d{12}-\d{2}").all()
    assert estimated["approximate"].all() and (estimated["workload_source"] == "estimate").all()
    assert estimated.crs.to_string() == WGS84
    assert estimated.is_valid.all()
    _assert_tiles(estimated, layers.communities)


def test_estimate_matches_census_assumptions(estimated, layers: AdminLayers):
    expected = layers.streets["pop_2020"].sum() * AGED_60_SHARE * PROGRAMME_SHARE
    assert estimated["workload"].sum() == pytest.approx(expected, rel=1e-6)
    per_street = estimated.groupby("street")["workload"].sum()
    pop = layers.streets.set_index("name")["pop_2020"]
    assert np.allclose(per_street, pop.loc[per_street.index] * AGED_60_SHARE * PROGRAMME_SHARE)
    est = estimate_community_workload(layers.communities, layers.streets, programme_share=0.2)
    assert est.sum() == pytest.approx(2 * expected)


def test_estimated_grids_respect_capacity_and_are_compact(estimated):
    assert not estimated["over_capacity"].any()
    assert (estimated["workload"] <= 30 + 1e-6).all()
    # not needlessly small: a community's grids average over half the capacity when it needed a split
    split = estimated.groupby("community_code").filter(lambda g: len(g) > 1)
    assert split.groupby("community_code")["workload"].mean().min() > 15
    assert estimated["compactness"].median() > 0.6
    assert (estimated["compactness"] > 0.3).mean() > 0.98


def test_point_grids_tile_and_respect_capacity(point_grids, sample, elders):
    _assert_tiles(point_grids, sample)
    assert not point_grids["over_capacity"].any()
    assert point_grids["workload"].max() <= 1200.0
    assert point_grids["workload"].sum() == pytest.approx(elders["weight"].sum())
    assert point_grids["n_points"].sum() == len(elders)
    assert (point_grids["compactness"] > 0.2).mean() > 0.95


def test_grid_workloads_recomputes_the_same(point_grids, elders):
    again = grid_workloads(point_grids, elders)
    assert np.allclose(again.loc[point_grids["grid_id"], "workload"].to_numpy(), point_grids["workload"].to_numpy())
    assert again.attrs["unassigned"] == 0


def test_redrawn_grids_get_new_workloads(point_grids, elders):
    # a planner merges the first two grids of one community
    code = point_grids["community_code"].value_counts().index[0]
    mine = point_grids[point_grids["community_code"] == code].sort_values("grid_id")
    merged = shapely.union_all(mine.geometry.iloc[:2].to_numpy())
    edited = pd.concat(
        [
            gpd.GeoDataFrame({"grid_id": [f"{code}-99"]}, geometry=[merged], crs=WGS84),
            point_grids[~point_grids["grid_id"].isin(mine["grid_id"].iloc[:2])][["grid_id", "geometry"]],
        ],
        ignore_index=True,
    )
    loads = grid_workloads(edited, elders)
    assert loads.loc[f"{code}-99", "workload"] == pytest.approx(mine["workload"].iloc[:2].sum())
    assert loads["workload"].sum() == pytest.approx(elders["weight"].sum())


def test_given_totals_and_counts_without_weights(sample):
    totals = pd.Series(100.0, index=sample["code"])
    grids = build_grids(sample, totals, capacity=25)
    assert (grids.groupby("community_code").size() == 4).all()
    assert (grids["workload_source"] == "given").all()
    unweighted = _random_elders(sample.iloc[:3], 90, seed=3).drop(columns=["weight", "community_code"])
    g2 = build_grids(sample.iloc[:3], unweighted, capacity=10)
    assert g2["workload"].sum() == 90 and g2["workload"].max() <= 10


def test_deterministic(sample, elders, point_grids):
    again = build_grids(sample, elders, capacity=1200.0)
    assert again["grid_id"].tolist() == point_grids["grid_id"].tolist()
    assert again.geometry.geom_equals_exact(point_grids.geometry, 0).all()


def test_one_heavy_spot_is_flagged_over_capacity(sample):
    one = sample.iloc[[0]]
    spot = one["point"].iloc[0]
    pts = gpd.GeoDataFrame({"weight": [50.0, 50.0, 5.0]}, geometry=[spot, spot, spot], crs=WGS84)
    grids = build_grids(one, pts, capacity=40)
    assert len(grids) == 1 and grids["over_capacity"].iloc[0]
    assert grids["workload"].iloc[0] == 105


def test_invalid_inputs(sample):
    with pytest.raises(ValidationError) as exc:
        build_grids(sample, None, capacity=0)
    assert exc.value.code == "invalid_capacity"
    with pytest.raises(ValidationError) as exc:
        build_grids(sample, None, capacity=30)
    assert exc.value.code == "missing_workload"
    bad = gpd.GeoDataFrame({"weight": [-1.0]}, geometry=[sample["point"].iloc[0]], crs=WGS84)
    with pytest.raises(ValidationError):
        build_grids(sample, bad, capacity=30)


def test_polsby_popper_reference_shapes():
    square = shapely.box(0, 0, 100, 100)
    sliver = shapely.box(0, 0, 1000, 1)
    pp = polsby_popper([square, sliver])
    assert pp[0] == pytest.approx(np.pi / 4) and pp[1] < 0.01


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.floats(min_value=0.5, max_value=20.0), min_size=1, max_size=60),
    capacity=st.floats(min_value=20.0, max_value=200.0),
    seed=st.integers(0, 1000),
)
def test_capacity_property_on_a_square(weights, capacity, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(116.30, 116.31, (len(weights), 2)) * [1, 1]
    xy[:, 1] = rng.uniform(39.98, 39.99, len(weights))
    square = shapely.box(116.30, 39.98, 116.31, 39.99)
    comm = gpd.GeoDataFrame(
        {"code": ["110108999001"], "name": ["测试社区居委会"], "street": ["海淀街道"], "street_code": ["110108012000"]},
        geometry=[square], crs=WGS84,
    )
    pts = gpd.GeoDataFrame({"weight": weights}, geometry=shapely.points(xy), crs=WGS84)
    grids = build_grids(comm, pts, capacity=capacity)
    assert grids["workload"].sum() == pytest.approx(sum(weights))
    assert (grids["workload"] <= capacity + 1e-6).all()
    assert len(grids) <= max(1, 2 * int(np.ceil(sum(weights) / capacity)))
    _assert_tiles(grids, comm)
