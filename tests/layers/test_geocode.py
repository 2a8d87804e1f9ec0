"""Offline geocoding: normalisation, quality levels, and 100+ generated Haidian addresses."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from gridmap._errors import CoordinateError
from gridmap.layers.admin import load_admin_layers
from gridmap.layers.geocode import (
    QUALITY_LABELS_ZH,
    Gazetteer,
    GeocodeQuality,
    build_gazetteer,
    load_osm_places,
    normalize_address,
    parse_house_parts,
    quality_label,
)

Q = GeocodeQuality
FW = str.maketrans("0123456789", "０１２３４５６７８９")


# --------------------------------------------------------------------------- fixtures


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def admin(data_dir: Path):
    return load_admin_layers(data_dir)


@pytest.fixture(scope="session")
def gazetteer(data_dir: Path, admin) -> Gazetteer:
    hd = data_dir / "haidian"
    centres = gpd.read_file(hd / "points" / "community_health_centres_wgs84.geojson")
    roads = gpd.read_file(hd / "roads" / "haidian_roads_osm2013_wgs84.geojson", columns=["name"])
    osm = load_osm_places(sorted((hd / "roads" / "osm").glob("*.osm")))
    return build_gazetteer(admin.streets, admin.communities, centres, roads, osm)


@pytest.fixture(scope="module")
def toy() -> Gazetteer:
    """Two streets and three communities on a hand-made grid."""
    streets = gpd.GeoDataFrame(
        {"name": ["甲街道", "乙镇"], "code": ["1", "2"]},
        geometry=[box(116.0, 40.0, 116.1, 40.1), box(116.1, 40.0, 116.2, 40.1)],
        crs=4326,
    )
    communities = gpd.GeoDataFrame(
        {
            "code": ["11", "12", "21"],
            "name": ["东园社区居委会", "西园社区居委会", "东园村委会"],
            "street": ["甲街道", "甲街道", "乙镇"],
            "kind": ["社区", "社区", "村"],
            "has_point": [True, False, True],
        },
        geometry=[box(116.0, 40.0, 116.05, 40.1), box(116.05, 40.0, 116.1, 40.1), box(116.1, 40.0, 116.2, 40.1)],
        crs=4326,
    )
    communities["point"] = gpd.GeoSeries([Point(116.02, 40.05), None, Point(116.15, 40.05)], crs=4326)
    buildings = gpd.GeoDataFrame(
        {"name": ["东园5号楼"], "kind": ["building"], "community_code": ["11"], "building_no": ["5"]},
        geometry=[Point(116.021, 40.051)],
        crs=4326,
    )
    return build_gazetteer(streets, communities, extra_places=buildings)


# --------------------------------------------------------------------------- units


def test_quality_order_and_labels():
    assert Q.EXACT > Q.BUILDING > Q.COMMUNITY > Q.STREET > Q.FAILED
    assert Q.COMMUNITY >= "community" and Q.STREET < "community"
    assert sorted([Q.FAILED, Q.EXACT, Q.STREET], reverse=True) == [Q.EXACT, Q.STREET, Q.FAILED]
    assert [QUALITY_LABELS_ZH[q] for q in Q] == ["精确坐标", "楼栋", "社区", "街道", "失败"]
    assert quality_label("street") == "街道" and quality_label(Q.STREET, "en") == "street"
    assert Q("community") is Q.COMMUNITY


def test_normalize_address_forms():
    assert normalize_address("北京市海淀区 学院路街道 ５号楼") == "学院路街道5号楼"
    assert normalize_address("中国北京海淀翠微路社区") == "翠微路社区"
    assert normalize_address("海淀街道稻香园") == "海淀街道稻香园"  # 海淀 of a street name stays
    assert normalize_address("北京大学") == "北京大学"  # not a 北京 prefix
    assert normalize_address("三号楼二单元") == "3号楼2单元"
    assert normalize_address("12栋") == "12号楼"


def test_parse_house_parts():
    p = parse_house_parts("3号院2号楼1单元501室")
    assert (p["yard"], p["building"], p["unit"], p["room"]) == ("3", "2", "1", "501")
    assert parse_house_parts("12号")["number"] == "12"
    assert parse_house_parts("5号楼302")["room"] == "302"
    assert parse_house_parts("")["building"] is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_normalize_idempotent_and_geocode_total(toy, text):
    n = normalize_address(text)
    assert normalize_address(n) == n
    r = toy.geocode(text)  # never raises
    assert r.quality in set(Q)
    assert r.ok == (not math.isnan(r.lon))


def test_toy_levels(toy):
    r = toy.geocode("甲街道东园社区5号楼2单元301")
    assert r.quality == Q.BUILDING and (r.lon, r.lat) == (116.021, 40.051) and r.building_no == "5"
    r = toy.geocode("甲街道东园社区6号楼")  # no known point for building 6: community, number kept
    assert r.quality == Q.COMMUNITY and (r.lon, r.lat) == (116.02, 40.05) and r.building_no == "6"
    assert r.community_code == "11" and r.community == "东园社区居委会"
    r = toy.geocode("乙镇东园村8号")
    assert r.quality == Q.COMMUNITY and r.community_code == "21"
    # 东园 names places in two streets: the street written decides; without it, fail clearly
    assert toy.geocode("乙镇东园").community_code == "21"
    r = toy.geocode("东园")
    assert r.quality == Q.FAILED and "甲街道" in r.message_zh and "street" in r.message_en
    # a community without a point gets its polygon's representative point, flagged approximate
    r = toy.geocode("西园社区")
    assert r.quality == Q.COMMUNITY and r.approximate
    assert box(116.05, 40.0, 116.1, 40.1).contains(Point(r.lon, r.lat))
    r = toy.geocode("甲街道幸福路99号")
    assert r.quality == Q.STREET and r.street == "甲街道" and r.community_code is None


def test_exact_points(toy):
    r = toy.geocode("随便写的地址", lon=116.02, lat=40.03)
    assert r.quality == Q.EXACT and r.street == "甲街道" and r.community_code == "11"
    r = toy.geocode("坐标 40.05, 116.15")  # lat, lon order is recognised by range
    assert r.quality == Q.EXACT and (r.lon, r.lat) == (116.15, 40.05) and r.street == "乙镇"
    r = toy.geocode("x", lon=116.5, lat=40.5)
    assert r.quality == Q.EXACT and r.street is None and r.message_en


def test_failures_are_bilingual(toy):
    for addr in ["", None, "   ", "asdf qwer", "今天天气很好"]:
        r = toy.geocode(addr)
        assert r.quality == Q.FAILED and r.message_zh and r.message_en and math.isnan(r.lat)


def test_geocode_many_keeps_index_and_order(toy):
    s = pd.Series(["东园社区", None, "乙镇", "东园社区"], index=[10, 5, 7, 3])
    df = toy.geocode_many(s, lons=[None, 116.03, None, None], lats=[None, 40.02, None, None])
    assert list(df.index) == [10, 5, 7, 3]
    assert list(df["quality"]) == ["community", "exact", "street", "community"]
    assert list(df["quality_zh"]) == ["社区", "精确坐标", "街道", "社区"]
    with pytest.raises(ValueError):
        toy.geocode_many(["a"], lons=[1.0, 2.0], lats=[1.0])


def test_missing_crs_is_a_clear_error(toy):
    streets = gpd.GeoDataFrame({"name": ["甲街道"]}, geometry=[box(0, 0, 1, 1)])
    with pytest.raises(CoordinateError) as exc:
        build_gazetteer(streets, toy.communities)
    assert "CRS" in exc.value.message_en and "坐标参考系" in exc.value.message_zh


def test_osm_places_drop_bare_numbers_and_far_duplicates(data_dir: Path):
    osm = load_osm_places(sorted((data_dir / "haidian" / "roads" / "osm").glob("*.osm")))
    assert len(osm) > 100
    assert not osm["name"].str.fullmatch(r"\d+号楼").any()
    assert osm["name"].is_unique and (osm.geom_type == "Point").all()


# --------------------------------------------------------------------------- 100+ generated addresses


def _village_name(name: str) -> str:
    core = name.removesuffix("村委会")
    return core if core.endswith("村") else core + "村"


def _make_addresses(admin, n_per_form: int, seed: int, sites: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """Generated addresses with the community/street each should resolve to."""
    rng = random.Random(seed)
    comm = admin.communities
    she = comm[comm["kind"] == "社区"].reset_index(drop=True)
    cun = comm[comm["kind"] == "村"].reset_index(drop=True)
    rows: list[tuple[str, str, str | None, str]] = []  # form, address, community code, street

    def pick(df):
        return df.iloc[rng.randrange(len(df))]

    for _ in range(n_per_form):
        c = pick(she)
        b, u, r = rng.randint(1, 30), rng.randint(1, 6), rng.randint(101, 2405)
        rows.append(("full", f"北京市海淀区{c.street}{c.short_name}社区{b}号楼{u}单元{r}室", c.code, c.street))
        c = pick(she)
        rows.append(("short", f"{c.short_name}社区{rng.randint(1, 30)}号楼", c.code, c.street))
        c = pick(cun)
        rows.append(("village", f"{c.street}{_village_name(c['name'])}{rng.randint(1, 300)}号", c.code, c.street))
        c = pick(she)
        rows.append(("no_suffix", f"海淀区{c.street}{c.short_name}{rng.randint(1, 30)}号楼", c.code, c.street))
        c = pick(she)
        addr = f"{c.street}{c.short_name}社区{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元{rng.randint(101, 999)}"
        rows.append(("fullwidth", addr.translate(FW), c.code, c.street))
        c = pick(she[she["short_name"].str.len() >= 3])
        core = list(c.short_name)
        core[rng.randrange(1, len(core))] = rng.choice("礼园甲乙东西星宇")
        rows.append(("typo", f"{c.street}{''.join(core)}社区{rng.randint(1, 30)}号楼", c.code, c.street))
        s = admin.streets.iloc[rng.randrange(len(admin.streets))]
        rows.append(("street_only", f"北京市海淀区{s['name']}{rng.choice('东西南北')}一巷{rng.randint(1, 99)}号", None, s["name"]))
        s = admin.streets.iloc[rng.randrange(len(admin.streets))]
        p = s.geometry.representative_point()
        rows.append(("coordinate", f"{p.x:.6f},{p.y:.6f}", None, s["name"]))
        if sites is not None:
            site = sites.iloc[rng.randrange(len(sites))]
            rows.append(("site", f"北京市海淀区{site['name']}", None, site["street"]))
        junk = "".join(rng.choice("的了是我你他不在有人这中大为上个国和地到以说时要就出会可也") for _ in range(rng.randint(3, 12)))
        rows.append(("garbage", rng.choice([junk, f"abc{rng.randint(0, 999)}xyz", "-----", "无地址"]), None, ""))
    return pd.DataFrame(rows, columns=["form", "address", "code", "street"])


def test_generated_addresses_report(gazetteer, admin, data_dir: Path, capsys):
    sites = gpd.read_file(data_dir / "haidian" / "points" / "community_health_centres_wgs84.geojson")
    sites = sites[sites.within(admin.district.union_all())].drop_duplicates("name")
    gen = _make_addresses(admin, n_per_form=20, seed=7, sites=sites)
    assert len(gen) >= 100
    out = gazetteer.geocode_many(gen["address"])
    gen = gen.join(out[["quality", "community_code", "street"]].add_prefix("got_"))
    gen["right_community"] = gen["got_community_code"] == gen["code"]
    gen["right_street"] = gen["got_street"] == gen["street"]

    table = pd.crosstab(gen["form"], gen["got_quality"], normalize="index").mul(100).round(1)
    table["right_community_%"] = gen.groupby("form")["right_community"].mean().mul(100).round(1)
    table["right_street_%"] = gen.groupby("form")["right_street"].mean().mul(100).round(1)
    overall = gen["got_quality"].value_counts(normalize=True).mul(100).round(1)
    with capsys.disabled():
        print(f"\n geocoding {len(gen)} generated addresses — share per quality level (%), per form:")
        print(table.to_string())
        print(" overall (%):", overall.to_dict())

    def share(form: str, col: str) -> float:
        return float(gen.loc[gen["form"] == form, col].mean())

    # well-formed community addresses: ≥ 90% resolve to the right community
    for form in ("full", "village", "no_suffix", "fullwidth"):
        assert share(form, "right_community") >= 0.9, form
    # without the street some names are shared by several streets: still most resolve
    assert share("short", "right_community") >= 0.85
    assert share("typo", "right_community") >= 0.6
    assert share("street_only", "right_street") >= 0.95
    so = gen[gen["form"] == "street_only"]
    assert (so["got_quality"] == "street").mean() >= 0.95
    assert (gen.loc[gen["form"] == "garbage", "got_quality"] == "failed").all()
    assert (gen.loc[gen["form"] == "coordinate", "got_quality"] == "exact").all()
    assert share("coordinate", "right_street") == 1.0
    assert (gen.loc[gen["form"] == "site", "got_quality"] == "building").mean() >= 0.9
    # a resolved community lies in the street the address names
    ok = gen[gen["form"].isin(["full", "village", "fullwidth"])]
    assert (ok["got_quality"] != "failed").all()


def test_real_sites_and_roads(gazetteer, data_dir: Path):
    centres = gpd.read_file(data_dir / "haidian" / "points" / "community_health_centres_wgs84.geojson")
    name = centres["name"].iloc[0]
    r = gazetteer.geocode(f"北京市海淀区{name}")
    assert r.quality == Q.BUILDING and r.matched == name
    assert abs(r.lon - centres.geometry.iloc[0].x) < 1e-9
    r = gazetteer.geocode("海淀区中关村大街27号")
    assert r.quality == Q.STREET and r.matched == "中关村大街" and r.building_no == "27"


def test_geocode_speed(data_dir: Path, admin, capsys):
    hd = data_dir / "haidian"
    centres = gpd.read_file(hd / "points" / "community_health_centres_wgs84.geojson")
    roads = gpd.read_file(hd / "roads" / "haidian_roads_osm2013_wgs84.geojson", columns=["name"])
    gz = build_gazetteer(admin.streets, admin.communities, centres, roads)  # fresh: empty cache
    gen = _make_addresses(admin, n_per_form=1000, seed=11)  # 8,000 mostly distinct strings
    t = time.perf_counter()
    out = gz.geocode_many(gen["address"])
    dt = time.perf_counter() - t
    rate = len(gen) / dt
    t = time.perf_counter()
    gz.geocode_many(gen["address"])
    cached = len(gen) / (time.perf_counter() - t)
    with capsys.disabled():
        print(f"\n geocode_many: {len(gen)} addresses in {dt:.2f} s = {rate:,.0f}/s uncached, {cached:,.0f}/s cached;"
              f" quality shares {dict(Counter(out['quality']))}")
    assert rate >= 1000
