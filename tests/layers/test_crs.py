"""Tests of gridmap.layers.crs: GCJ-02/BD-09 conversions, Haidian checks, GCJ-02 detection."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap._errors import CoordinateError
from gridmap.layers import crs
from gridmap.layers.crs import (
    CoordinateSystem,
    bd09_to_gcj02,
    bd09_to_wgs84,
    check_in_haidian,
    detect_gcj02_offset,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_crs,
    to_metric,
    to_wgs84,
    transform_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    x1, y1 = to_metric(lon1, lat1)
    x2, y2 = to_metric(lon2, lat2)
    return np.hypot(x1 - x2, y1 - y2)


# Published pairs: (input lon, lat, expected lon, lat).
# eviltransform's test suite (googollee/eviltransform): WGS84 -> GCJ-02.
EVILTRANSFORM_WGS_GCJ = [
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
]
# wandergis/coordtransform README, input (116.404, 39.915) near Tiananmen.
COORDTRANSFORM = {
    "wgs84_to_gcj02": (116.41024449916938, 39.91640428150164),
    "gcj02_to_bd09": (116.41036949371029, 39.92133699351021),
    "bd09_to_gcj02": (116.39762729119315, 39.90865673957631),
}


@pytest.mark.parametrize(("lon", "lat", "glon", "glat"), EVILTRANSFORM_WGS_GCJ)
def test_wgs_to_gcj_matches_published_pairs(lon, lat, glon, glat):
    x, y = wgs84_to_gcj02(lon, lat)
    assert _metres(x, y, glon, glat) < 0.01
    # and the iterative inverse gives the WGS84 point back within a millimetre
    wx, wy = gcj02_to_wgs84(glon, glat)
    assert _metres(wx, wy, lon, lat) < 0.001


def test_tiananmen_pairs_from_coordtransform():
    assert _metres(*wgs84_to_gcj02(116.404, 39.915), *COORDTRANSFORM["wgs84_to_gcj02"]) < 0.01
    assert _metres(*gcj02_to_bd09(116.404, 39.915), *COORDTRANSFORM["gcj02_to_bd09"]) < 0.01
    # their bd09 -> gcj02 is Baidu's one-step approximation; ours refines it: within 5 cm
    assert _metres(*bd09_to_gcj02(116.404, 39.915), *COORDTRANSFORM["bd09_to_gcj02"]) < 0.05


def test_beijing_railway_station_gcj_vs_baidu_api():
    # GCJ-02 (116.42703, 39.90245) <-> BD-09 (116.43351, 39.90851), values from Baidu's API (5 decimals)
    assert _metres(*gcj02_to_bd09(116.42703, 39.90245), 116.43351, 39.90851) < 2.0
    assert _metres(*bd09_to_gcj02(116.43351, 39.90851), 116.42703, 39.90245) < 2.0


def test_offset_in_beijing_is_about_half_a_kilometre_north_east():
    x, y = wgs84_to_gcj02(116.31, 39.99)
    assert x > 116.31 and y > 39.99
    assert 400 < _metres(x, y, 116.31, 39.99) < 700


def test_admin_units_gcj_and_wgs_columns(data_dir: Path):
    units = pd.read_csv(data_dir / "haidian" / "admin_units.csv").dropna(subset=["lon_gcj02"])
    assert len(units) > 300
    wx, wy = gcj02_to_wgs84(units["lon_gcj02"].to_numpy(), units["lat_gcj02"].to_numpy())
    # the file's WGS84 column was made with a one-step approximation (metre-level error)
    err = _metres(wx, wy, units["lon_wgs84"].to_numpy(), units["lat_wgs84"].to_numpy())
    assert err.max() < 3.0
    # our inverse is exact: converting back reproduces the file's GCJ-02 values (6 decimals ≈ 0.1 m)
    gx, gy = wgs84_to_gcj02(wx, wy)
    assert _metres(gx, gy, units["lon_gcj02"].to_numpy(), units["lat_gcj02"].to_numpy()).max() < 0.01


def test_iterative_inverse_beats_one_step():
    lon, lat = np.linspace(116.05, 116.40, 50), np.linspace(39.88, 40.15, 50)
    glon, glat = wgs84_to_gcj02(lon, lat)
    dx = glon - lon
    onestep = glon - (wgs84_to_gcj02(glon, glat)[0] - glon), glat - (wgs84_to_gcj02(glon, glat)[1] - glat)
    assert _metres(*onestep, lon, lat).max() > 0.05  # the shortcut is visibly off
    assert _metres(*gcj02_to_wgs84(glon, glat), lon, lat).max() < 0.001
    assert np.all(dx > 0)


def test_vectorised_equals_scalar_and_keeps_shape():
    lon = np.array([[116.2, 116.3], [116.35, 116.1]])
    lat = np.array([[39.95, 40.0], [39.9, 40.05]])
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84):
        x, y = fn(lon, lat)
        assert x.shape == lon.shape
        sx, sy = fn(float(lon[1, 0]), float(lat[1, 0]))
        assert isinstance(sx, float)
        assert sx == pytest.approx(x[1, 0], abs=1e-12) and sy == pytest.approx(y[1, 0], abs=1e-12)


def test_outside_china_unchanged_and_nan_passes_through():
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)
    x, y = gcj02_to_wgs84(np.array([np.nan, 116.3]), np.array([np.nan, 39.9]))
    assert np.isnan(x[0]) and np.isfinite(x[1])


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(min_value=74.0, max_value=134.0, allow_nan=False),
    lat=st.floats(min_value=18.0, max_value=53.0, allow_nan=False),
)
def test_round_trips_under_one_metre(lon, lat):
    for fwd, inv in ((wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02)):
        x, y = inv(*fwd(lon, lat))
        assert _metres(x, y, lon, lat) < 1.0
        x, y = fwd(*inv(lon, lat))
        assert _metres(x, y, lon, lat) < 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WGS84", CoordinateSystem.WGS84), ("wgs-84", CoordinateSystem.WGS84), ("EPSG:4326", CoordinateSystem.WGS84),
        ("GCJ-02", CoordinateSystem.GCJ02), ("gcj02", CoordinateSystem.GCJ02), ("火星坐标", CoordinateSystem.GCJ02),
        ("高德", CoordinateSystem.GCJ02), (" Amap ", CoordinateSystem.GCJ02), ("腾讯", CoordinateSystem.GCJ02),
        ("BD-09", CoordinateSystem.BD09), ("bd09ll", CoordinateSystem.BD09), ("百度", CoordinateSystem.BD09),
        ("Baidu", CoordinateSystem.BD09), ("bd_09", CoordinateSystem.BD09),
    ],
)
def test_parse_crs_spellings(text, expected):
    assert parse_crs(text) is expected


def test_parse_crs_rejects_unknown_with_bilingual_message():
    with pytest.raises(CoordinateError) as exc:
        parse_crs("EPSG:3857")
    assert exc.value.code == "unknown_crs" and exc.value.field == "crs"
    assert "坐标系" in exc.value.message_zh and "coordinate system" in exc.value.message_en


def test_to_wgs84_dispatches():
    g = wgs84_to_gcj02(116.3, 39.98)
    b = wgs84_to_bd09(116.3, 39.98)
    assert _metres(*to_wgs84(*g, "gcj02"), 116.3, 39.98) < 0.001
    assert _metres(*to_wgs84(*b, "百度"), 116.3, 39.98) < 0.001
    assert to_wgs84(116.3, 39.98, "WGS84") == (116.3, 39.98)
    assert _metres(*crs.from_wgs84(116.3, 39.98, "BD-09"), *b) < 0.001


def test_district_gcj_outline_converts_to_the_wgs_outline(data_dir: Path):
    bdir = data_dir / "haidian" / "boundaries"
    gcj = gpd.read_file(bdir / "district_gcj02.geojson")
    wgs = gpd.read_file(bdir / "district_wgs84.geojson")
    converted = transform_geometry(gcj.geometry, "GCJ-02", "WGS84").to_crs(crs.METRIC_CRS).union_all()
    target = wgs.to_crs(crs.METRIC_CRS).union_all()
    assert converted.symmetric_difference(target).area < 0.01 * target.area
    # and the unconverted outline would not pass: the shift is real
    raw = gcj.to_crs(crs.METRIC_CRS).union_all()
    assert raw.symmetric_difference(target).area > converted.symmetric_difference(target).area * 5


def test_transform_geometry_on_shapely_objects_round_trips():
    poly = shapely.box(116.30, 39.95, 116.32, 39.97)
    there = transform_geometry(poly, "wgs84", "bd09")
    back = transform_geometry(there, "bd09", "wgs84")
    frame = gpd.GeoDataFrame({"id": [1]}, geometry=[poly], crs=crs.WGS84)
    moved = transform_geometry(frame, "WGS84", "GCJ-02")
    assert moved.geometry.iloc[0].equals_exact(transform_geometry(poly, "WGS84", "GCJ-02"), 1e-12)
    assert frame.geometry.iloc[0].equals(poly)  # input untouched
    assert not there.equals_exact(poly, 1e-4)
    assert back.equals_exact(poly, 1e-8)


@pytest.fixture(scope="module")
def district(data_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(data_dir / "haidian" / "boundaries" / "district_wgs84.geojson")


def test_check_in_haidian_accepts_inside_and_reports_outside_rows(district):
    lon = np.array([116.31, 116.3975, 116.31, np.nan, 39.98, 12_950_000.0])
    lat = np.array([39.98, 39.9087, 40.5, 39.98, 116.31, 4_860_000.0])
    res = check_in_haidian(lon, lat, district, raise_errors=False, field="坐标")
    assert res.inside.tolist() == [True, False, False, False, False, False]
    codes = {e.row: e.code for e in res.errors}
    assert codes == {3: "outside_haidian", 4: "outside_haidian", 5: "missing", 6: "swapped_lonlat", 7: "not_lonlat"}
    tiananmen = next(e for e in res.errors if e.row == 3)
    assert "km outside Haidian" in tiananmen.message_en and "海淀区外" in tiananmen.message_zh
    assert tiananmen.field == "坐标"


def test_check_in_haidian_raises_by_default_and_converts_crs(district):
    with pytest.raises(CoordinateError) as exc:
        check_in_haidian([116.31, 116.3975, 116.0], [39.98, 39.9087, 41.0], district)
    assert exc.value.code == "outside_haidian" and "2 more" not in str(exc.value) and "1 more" in str(exc.value)
    gx, gy = wgs84_to_gcj02(116.31, 39.98)
    res = check_in_haidian(gx, gy, district, crs="高德")
    assert res.ok and _metres(res.lon[0], res.lat[0], 116.31, 39.98) < 0.001


def test_check_in_haidian_tolerance(district):
    # a point ~300 m west of the westernmost vertex of the outline
    geom = district.union_all()
    coords = shapely.get_coordinates(geom)
    west = coords[np.argmin(coords[:, 0])]
    lon, lat = west[0] - 0.0035, west[1]
    assert not check_in_haidian(lon, lat, district, raise_errors=False).ok
    assert check_in_haidian(lon, lat, district, tolerance_m=500, raise_errors=False).ok


@pytest.fixture(scope="module")
def known_points(data_dir: Path) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    from gridmap.layers.admin import load_streets, normalize_street_name

    streets = load_streets(data_dir).set_index("name")
    units = pd.read_csv(data_dir / "haidian" / "admin_units.csv")
    units = units[(units["level"] == "village") & units["lon_wgs84"].notna()].copy()
    units["street"] = [normalize_street_name(t) for t in units["town"]]
    poly = streets.geometry.loc[units["street"]].to_numpy()
    inside = shapely.covers(poly, shapely.points(units["lon_wgs84"], units["lat_wgs84"]))
    units = units[inside]
    return units, gpd.GeoSeries(poly[inside], crs=crs.WGS84)


def test_detect_gcj02_with_street_polygons(known_points):
    units, polys = known_points
    as_gcj = detect_gcj02_offset(units["lon_gcj02"], units["lat_gcj02"], polys)
    as_wgs = detect_gcj02_offset(units["lon_wgs84"], units["lat_wgs84"], polys)
    assert as_gcj.likely_gcj02 and not as_wgs.likely_gcj02
    assert as_gcj.corrected > as_gcj.as_given
    assert "GCJ-02" in as_gcj.message_en and "GCJ-02" in as_gcj.message_zh


def test_detect_gcj02_with_reference_points(known_points, data_dir: Path):
    units, _ = known_points
    ref = gpd.GeoSeries(shapely.points(units["lon_wgs84"], units["lat_wgs84"]), crs=crs.WGS84)
    health = gpd.read_file(data_dir / "haidian" / "points" / "community_health_centres_wgs84.geojson")
    lon, lat = health["lon_wgs84"].to_numpy(), health["lat_wgs84"].to_numpy()
    assert not detect_gcj02_offset(lon, lat, ref).likely_gcj02
    verdict = detect_gcj02_offset(*wgs84_to_gcj02(lon, lat), ref)
    assert verdict.likely_gcj02 and verdict.metric == "median_nearest_m"
    # too few points: no verdict
    assert not detect_gcj02_offset(*wgs84_to_gcj02(lon[:3], lat[:3]), ref).likely_gcj02


def test_detect_gcj02_rejects_unpaired_polygons(known_points):
    units, polys = known_points
    with pytest.raises(CoordinateError):
        detect_gcj02_offset(units["lon_wgs84"][:5], units["lat_wgs84"][:5], polys[:3])
