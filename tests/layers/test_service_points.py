"""Tests of gridmap.layers.service_points on the real Haidian data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gridmap.layers.admin import AdminLayers, load_admin_layers
from gridmap.layers.crs import METRIC_CRS
from gridmap.layers.service_points import (
    SERVICE_POINT_COLUMNS,
    combine_service_points,
    generate_care_stations,
    load_health_points,
)


@pytest.fixture(scope="module")
def layers(data_dir: Path) -> AdminLayers:
    return load_admin_layers(data_dir)


@pytest.fixture(scope="module")
def health(data_dir: Path, layers: AdminLayers):
    return load_health_points(data_dir, layers.district, layers.streets)


@pytest.fixture(scope="module")
def care(layers: AdminLayers) -> gpd.GeoDataFrame:
    return generate_care_stations(layers.communities, layers.streets, seed=7)


def test_222_facilities_all_rows_kept_in_frame(health, data_dir: Path):
    frame, report = health
    raw = gpd.read_file(data_dir / "haidian" / "points" / "community_health_centres_wgs84.geojson")
    assert len(frame) == len(raw) == report.n_rows  # nothing silently dropped
    assert report.n_unique == 222
    assert report.by_kind == {"health_centre": 47, "health_station": 174, "clinic": 1}
    assert set(SERVICE_POINT_COLUMNS) <= set(frame.columns)
    assert not frame["synthetic"].any()
    assert frame["point_id"].is_unique


def test_duplicates_reported_and_not_kept(health):
    frame, report = health
    dup = frame[frame["issue"].str.contains("duplicate")]
    assert len(dup) == report.counts["duplicate"] == 1
    assert not dup["kept"].any()
    (name,) = dup["name"]
    twins = frame[frame["name"] == name]
    assert len(twins) == 2 and twins["kept"].sum() == 1
    assert "same name and coordinates" in dup["reason_en"].iloc[0] and "重复" in dup["reason_zh"].iloc[0]


def test_shared_coordinates_reported_but_kept(health):
    frame, report = health
    shared = frame[frame["issue"].str.contains("shared_coordinates")]
    assert len(shared) == report.counts["shared_coordinates"] == 10
    assert shared["kept"].all()
    assert (shared.groupby(["lon", "lat"]).size() == 2).all()


def test_points_outside_haidian_reported_with_reason(health, layers: AdminLayers):
    frame, report = health
    outside = frame[frame["issue"].str.contains("outside_haidian")]
    assert len(outside) == report.counts["outside_haidian"] == 3
    assert not outside["kept"].any()
    district = layers.district.union_all()
    assert not shapely.covers(district, outside.geometry.to_numpy()).any()
    assert outside["reason_en"].str.contains("km outside Haidian").all()
    assert outside["reason_zh"].str.contains("海淀区外").all()
    kept = frame[frame["kept"]]
    assert len(kept) == report.n_kept == 222 - 3
    assert shapely.covers(district, kept.geometry.to_numpy()).all()


def test_report_lists_every_flagged_row_and_summarises(health):
    frame, report = health
    assert len(report.issues) == (frame["issue"] != "").sum()
    assert "222 distinct facilities" in report.summary()
    assert "222 个不重复机构" in report.summary("zh")


def test_street_of_each_kept_point(health, layers: AdminLayers):
    frame, _ = health
    kept = frame[frame["kept"]]
    assert kept["street"].isin(layers.streets["name"]).all()
    mismatch = kept[kept["issue"].str.contains("street_mismatch")]
    assert (mismatch["street_in_name"] != mismatch["street"]).all()
    assert len(mismatch) > 0


def test_one_care_station_per_community_and_one_centre_per_street(care, layers: AdminLayers):
    stations = care[care["kind"] == "care_station"]
    centres = care[care["kind"] == "street_care_centre"]
    assert len(stations) == 654 and set(stations["community_code"]) == set(layers.communities["code"])
    assert len(centres) == 29 and set(centres["street"]) == set(layers.streets["name"])
    assert care["synthetic"].all() and care["point_id"].is_unique
    assert list(care.columns) == SERVICE_POINT_COLUMNS
    assert stations["name"].str.endswith("养老服务驿站").all()
    assert centres["name"].str.endswith("区域养老服务中心").all()


def test_care_stations_inside_their_polygons_near_the_point(care, layers: AdminLayers):
    comm = layers.communities.set_index("code")
    stations = care[care["kind"] == "care_station"].set_index("community_code")
    polys = gpd.GeoSeries(comm.geometry.loc[stations.index].to_numpy(), crs=comm.crs).to_crs(METRIC_CRS)
    pts = gpd.GeoSeries(stations.geometry.to_numpy(), crs=care.crs).to_crs(METRIC_CRS)
    assert shapely.covers(polys.to_numpy(), pts.to_numpy()).all()
    anchors = gpd.GeoSeries(comm["point"].loc[stations.index].to_numpy(), crs=comm.crs).to_crs(METRIC_CRS)
    assert (pts.distance(anchors, align=False) <= 150.0 + 1e-6).all()
    streets = layers.streets.set_index("name").geometry
    centres = care[care["kind"] == "street_care_centre"]
    assert shapely.covers(streets.loc[centres["street"]].to_numpy(), centres.geometry.to_numpy()).all()


def test_care_stations_deterministic_by_seed(care, layers: AdminLayers):
    again = generate_care_stations(layers.communities, layers.streets, seed=7)
    other = generate_care_stations(layers.communities, layers.streets, seed=8)
    assert again.geometry.geom_equals_exact(care.geometry, 0).all()
    assert not other.geometry.geom_equals_exact(care.geometry, 1e-9).all()


def test_combined_layer(health, care):
    frame, report = health
    combined = combine_service_points(frame, care)
    assert len(combined) == report.n_kept + len(care)
    assert set(combined["kind"]) == {"health_centre", "health_station", "clinic", "care_station", "street_care_centre"}
