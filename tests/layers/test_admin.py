"""Tests of gridmap.layers.admin on the real Haidian data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gridmap._errors import DataDirError, ValidationError
from gridmap.layers.admin import (
    STREET_ALIASES,
    AdminLayers,
    load_admin_layers,
    load_communities,
    normalize_street_name,
    short_community_name,
)
from gridmap.layers.crs import METRIC_CRS, WGS84

OFFICIAL_TOTAL_2020 = 3_133_469


@pytest.fixture(scope="module")
def layers(data_dir: Path) -> AdminLayers:
    return load_admin_layers(data_dir)


# ---------------------------------------------------------------- street names


def test_every_spelling_in_the_data_normalises_to_one_of_29(data_dir: Path):
    hd = data_dir / "haidian"
    units = pd.read_csv(hd / "admin_units.csv")
    polys = gpd.read_file(hd / "boundaries" / "streets_wgs84.geojson")
    pop = pd.read_csv(hd / "streets_population_2020.csv")
    health = gpd.read_file(hd / "points" / "community_health_centres_wgs84.geojson")
    from_units = {normalize_street_name(n) for n in units["town"]}
    from_polys = {normalize_street_name(n) for n in polys["name"]}
    from_pop = {normalize_street_name(n) for n in pop["name"]}
    from_health = {normalize_street_name(n) for n in health["street"].dropna()}
    assert len(from_units) == 29
    assert from_units == from_polys == from_pop == set(STREET_ALIASES)
    assert from_health <= from_units


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("学院路街道办事处", "学院路街道"),
        ("学院路街道", "学院路街道"),
        ("学院路", "学院路街道"),
        ("北京市海淀区学院路街道", "学院路街道"),
        (" 海淀区 中关村街道 ", "中关村街道"),
        ("西北旺地区办事处", "西北旺镇"),
        ("西北旺地区", "西北旺镇"),
        ("西北旺镇", "西北旺镇"),
        ("西北旺乡", "西北旺镇"),
        ("西北旺", "西北旺镇"),
        ("苏家坨镇人民政府", "苏家坨镇"),
        ("万柳地区办事处", "海淀镇"),
        ("万柳镇", "海淀镇"),
        ("万柳", "海淀镇"),
        ("海淀镇", "海淀镇"),
        ("海淀镇(万柳)", "海淀镇"),
        ("海淀镇（万柳地区）", "海淀镇"),
        ("海淀地区", "海淀镇"),
        ("海淀乡", "海淀镇"),
        ("海淀街道", "海淀街道"),
        ("海淀街道办事处", "海淀街道"),
        ("海淀", "海淀街道"),
        ("东升地区办事处", "东升镇"),
        ("北太平庄", "北太平庄街道"),
    ],
)
def test_normalize_street_name_examples(raw, canonical):
    assert normalize_street_name(raw) == canonical


def test_every_alias_maps_back_to_its_canonical_name():
    for canonical, aliases in STREET_ALIASES.items():
        assert normalize_street_name(canonical) == canonical
        for alias in aliases:
            assert normalize_street_name(alias) == canonical, alias


@pytest.mark.parametrize("raw", ["朝阳门街道", "望京", "", "海淀区", "万寿"])
def test_normalize_street_name_rejects_unknown(raw):
    with pytest.raises(ValidationError) as exc:
        normalize_street_name(raw)
    assert exc.value.code == "unknown_street" and exc.value.field == "street"
    assert "海淀区29个街道" in exc.value.message_zh


def test_short_community_name():
    assert short_community_name("翠微路社区居委会") == "翠微路"
    assert short_community_name("树村村委会") == "树村"
    assert short_community_name("某某居民委员会") == "某某"
    assert short_community_name("翠微路") == "翠微路"


# ---------------------------------------------------------------- district & streets


def test_district_outline(layers: AdminLayers):
    d = layers.district
    assert len(d) == 1 and d.crs.to_string() == WGS84
    assert d["adcode"].iloc[0] == "110108"
    assert d["area_km2"].iloc[0] == pytest.approx(430.77, rel=0.01)  # official area


def test_29_streets_with_census_population(layers: AdminLayers):
    s = layers.streets
    assert len(s) == 29 and s["name"].is_unique and s["code"].is_unique
    assert s["pop_2020"].sum() == OFFICIAL_TOTAL_2020
    assert s["code"].str.fullmatch(r"110108\d{3}000").all()
    assert set(s["kind"]) == {"街道", "镇"} and (s["kind"] == "镇").sum() == 7
    assert s.crs.to_string() == WGS84
    assert s.is_valid.all() and s.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert s.set_index("name").loc["学院路街道", "pop_2020"] == 226_315
    assert s.set_index("name").loc["海淀镇", "official_name"] == "万柳地区办事处"


def test_streets_do_not_overlap_and_cover_most_of_the_district(layers: AdminLayers):
    s = layers.streets.to_crs(METRIC_CRS)
    union = s.union_all()
    assert s.area.sum() - union.area < 1_000  # m², i.e. no overlap left
    district = layers.district.to_crs(METRIC_CRS).union_all()
    assert union.symmetric_difference(district).area < 0.01 * district.area
    assert s["approximate"].sum() >= 1  # the trimmed street is flagged


# ---------------------------------------------------------------- communities


def test_654_communities_with_codes(layers: AdminLayers):
    c = layers.communities
    assert len(c) == 654 and c["code"].is_unique
    assert c["code"].str.fullmatch(r"\d{12}").all()
    assert (c["code"].str[:9] == c["street_code"].str[:9]).all()
    assert c["has_point"].sum() == 310
    assert set(c["kind"]) == {"社区", "村"} and (c["kind"] == "村").sum() == 84
    assert c["street"].isin(layers.streets["name"]).all()
    assert c.groupby("street").size().sum() == 654 and c["street"].nunique() == 29
    assert c["approximate"].all()
    assert set(c["point_source"]) <= {"known", "moved", "placed", "placed_far"}
    assert ((c["point_source"] == "known") | (c["point_source"] == "moved")).sum() + (
        c["point_source"] == "placed_far"
    ).sum() == 310


def test_known_points_kept_where_they_fit(layers: AdminLayers, data_dir: Path):
    c = layers.communities.set_index("code")
    units = pd.read_csv(data_dir / "haidian" / "admin_units.csv", dtype={"code": str}).set_index("code")
    known = c[c["point_source"] == "known"]
    assert len(known) >= 290
    src = units.loc[known.index]
    assert (known["lon"] - src["lon_wgs84"]).abs().max() < 1e-6
    assert (known["lat"] - src["lat_wgs84"]).abs().max() < 1e-6


def test_every_community_inside_its_own_street(layers: AdminLayers):
    c = layers.communities.to_crs(METRIC_CRS)
    streets = layers.streets.to_crs(METRIC_CRS).set_index("name").geometry
    own = streets.loc[c["street"]].to_numpy()
    # polygon within its street (up to floating-point noise at the shared boundary)
    outside = shapely.area(shapely.difference(c.geometry.to_numpy(), own))
    assert outside.max() < 1.0
    points = gpd.GeoSeries(c["point"].to_numpy(), crs=WGS84).to_crs(METRIC_CRS)
    assert shapely.covers(own, points.to_numpy()).all()
    assert shapely.covers(c.geometry.to_numpy(), points.to_numpy()).all()


def test_community_polygons_tile_their_street(layers: AdminLayers):
    c = layers.communities.to_crs(METRIC_CRS)
    streets = layers.streets.to_crs(METRIC_CRS).set_index("name").geometry
    assert c.is_valid.all() and not c.is_empty.any()
    assert c.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    for name, group in c.groupby("street"):
        union = shapely.union_all(group.geometry.to_numpy())
        overlap = group.area.sum() - union.area
        gap = union.symmetric_difference(streets[name]).area
        assert overlap < 1.0, (name, overlap)
        assert gap < 1e-6 * streets[name].area + 1.0, (name, gap)


def test_placed_points_are_spread_out(layers: AdminLayers):
    c = layers.communities.to_crs(METRIC_CRS)
    for _, group in c.groupby("street"):
        pts = gpd.GeoSeries(group["point"].to_numpy(), crs=WGS84).to_crs(METRIC_CRS)
        d = pts.to_numpy()[:, None]
        dist = shapely.distance(d, pts.to_numpy()[None, :])
        dist[range(len(pts)), range(len(pts))] = float("inf")
        assert dist.min() > 3.0  # no two communities share a point


def test_street_without_known_points_still_gets_polygons(layers: AdminLayers):
    streets = layers.streets.copy()
    c = layers.communities
    # pretend no community of 燕园 has a point: all are placed, polygons still tile it
    from gridmap.layers import admin

    sub = streets[streets["name"] == "燕园街道"].to_crs(METRIC_CRS).geometry.iloc[0]
    pts = admin._place_points(sub, admin.np.empty((0, 2)), int((c["street"] == "燕园街道").sum()))
    cells = admin._voronoi_cells(sub, admin._separate_duplicates(pts))
    assert len(cells) == (c["street"] == "燕园街道").sum()
    assert abs(shapely.union_all(cells).area - sub.area) < 1.0
    assert shapely.covers(sub, shapely.points(pts)).all()


def test_loading_is_deterministic(data_dir: Path, layers: AdminLayers):
    # (its speed is measured in bench/layers.py, not asserted here: a timed unit test fails on a loaded machine)
    again = load_communities(data_dir)
    assert again.geometry.geom_equals_exact(layers.communities.geometry, 1e-9).all()


def test_missing_data_dir_raises(tmp_path: Path):
    with pytest.raises(DataDirError):
        load_admin_layers(tmp_path)
