"""Issue 18 without a browser: the position evidence (migration 0011, stored as a distance only, used by the
流于形式 check), the navigation links' conversions, and the printed route sheet's need-to-know fields."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, select, text

from tests.steward.reference import _metres, _ref_gcj_to_bd, _ref_wgs_to_gcj

_NOW = "2026-12-01 09:00:00+00:00"
HOME = (116.3500, 40.0000)


def _north(metres: float) -> list[float]:
    return [HOME[0], HOME[1] + metres / 111_194.9]


def _one_elder(engine: Engine) -> None:
    import shapely

    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder

    with engine.begin() as c:
        c.execute(text("INSERT INTO district (code, name, approximate) VALUES ('110108', '海淀区', false)"))
        c.execute(text("INSERT INTO street (id, name, district_code, approximate) VALUES (1, '学院路街道', '110108', "
                       "false)"))
        c.execute(text(
            "INSERT INTO elder (id, version, name, categories, dispersed_support, assistance_units, "
            "willing_to_be_visited, signed_care_station, signed_home_care_bed, status, geocode_quality, "
            "field_sources, created_at, updated_at, street_id) VALUES (1, 1, '张三', '[]', false, '[]', true, false, "
            f"false, 'active', 'failed', '{{}}', '{_NOW}', '{_NOW}', 1)"))
    with session_scope(engine) as s:
        s.get(Elder, 1).geom = shapely.Point(*HOME)


def _visit(**extra: object) -> dict[str, object]:
    return {"elder_id": 1, "visited_on": "2026-12-01", "mode": "phone", "visitor_role": "visit_steward",
            "visitor_name": "测试", **extra}


def test_migration_0011_and_the_position_kept_as_a_distance_only(engine: Engine) -> None:
    from gridmap.rules.store import read_visits, record_visit
    from gridmap.rules.visits import parse_visit
    from gridmap.store.db import current_revision, downgrade_db, init_db
    from gridmap.store.models import Visit

    downgrade_db(engine, "0010")
    assert current_revision(engine) == "0010"
    assert "position_distance_m" not in {c["name"] for c in inspect(engine).get_columns("visit")}
    init_db(engine)
    assert current_revision(engine) >= "0011"
    assert "position_distance_m" in {c["name"] for c in inspect(engine).get_columns("visit")}
    _one_elder(engine)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    # (the engine fixture empties the shared PostGIS database before each test)
    with_consent = parse_visit(_visit(position=_north(250), position_consent=True), now=now)
    without = parse_visit(_visit(position=_north(250), visitor_name="另一位"), now=now)
    assert with_consent.position is not None and without.position is None  # no consent: not even read
    a = record_visit(engine, with_consent, idempotency_key="k-consent-0001")
    b = record_visit(engine, without, idempotency_key="k-noconsent-01")
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(select(Visit.id, Visit.position_distance_m, Visit.gps))}
    assert rows[a.visit_id].position_distance_m == pytest.approx(250, abs=1.0)
    assert rows[a.visit_id].gps is None  # the position itself is not kept
    assert rows[b.visit_id].position_distance_m is None
    v = read_visits(engine, date(2026, 12, 1), date(2026, 12, 1))
    assert v.set_index("id").loc[a.visit_id, "position_distance_m"] == pytest.approx(250, abs=1.0)


def test_position_outside_beijing_or_malformed_is_refused_naming_the_field() -> None:
    from gridmap._errors import ValidationError
    from gridmap.rules.visits import parse_visit

    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for bad, code in (([121.47, 31.23], "outside"), (["x", 40.0], "position"), ([116.3], "position")):
        with pytest.raises(ValidationError) as err:
            parse_visit(_visit(position=bad, position_consent=True), now=now)
        assert err.value.field == "position" and err.value.code == code


def test_formality_check_uses_the_phone_distance() -> None:
    from gridmap.rules.config import load_rules
    from gridmap.rules.indicators import visit_flags

    rules = load_rules()
    far = rules.max_distance_m
    visits = pd.DataFrame({
        "id": [1, 2, 3], "elder_id": [1, 1, 1], "visited_on": [date(2026, 12, d) for d in (1, 2, 3)],
        "mode": ["in_home"] * 3, "started_at": [None] * 3, "ended_at": [None] * 3,
        "gps_lon": [math.nan] * 3, "gps_lat": [math.nan] * 3, "position_distance_m": [far + 50, far - 50, math.nan]})
    elders = pd.DataFrame({"elder_id": [1], "lon": [HOME[0]], "lat": [HOME[1]]})
    flags = visit_flags(visits, elders, rules).set_index("id")["far"]
    assert flags.to_dict() == {1: True, 2: False, 3: False}


@settings(deadline=None)
@given(st.floats(115.5, 117.5), st.floats(39.5, 41.0))
def test_navigation_links_match_the_reference_conversion(lon: float, lat: float) -> None:
    from urllib.parse import parse_qs, unquote, urlparse

    from gridmap.routing.routelist import nav_links

    nav = nav_links(lon, lat, "张*", "walk")
    glon, glat = (float(x) for x in unquote(parse_qs(urlparse(nav["amap"]).query)["to"][0]).split(",")[:2])
    ref = _ref_wgs_to_gcj(lon, lat)
    assert _metres(glon, glat, *ref) < 1.0
    dest = nav["baidu"].split("destination=latlng:")[1].split("|")[0]
    blat, blon = (float(x) for x in dest.split(","))
    assert _metres(blon, blat, *_ref_gcj_to_bd(*ref)) < 1.0
    assert "mode=walking" in nav["baidu"] and "mode=walk" in nav["amap"]


def test_bike_steward_gets_riding_navigation() -> None:
    from gridmap.routing.routelist import nav_links

    nav = nav_links(116.35, 40.0, "王*", "ebike")
    assert "mode=ride" in nav["amap"] and "mode=riding" in nav["baidu"] and "mode=riding" in nav["baidu_web"]


def test_printed_sheet_shows_the_stewards_own_elders_in_full() -> None:
    from gridmap.routing.routelist import RouteList, RouteStop, to_html

    stop = RouteStop(seq=1, visit="1", elder_id=1, name="张*", address="北京市海淀区学院路街道学清苑社区3号楼2单元501",
                     lon=116.35, lat=40.0, arrival="09:00", start="09:00", end="09:30", service_minutes=30,
                     priority=3, contact_name="李*", contact_phone="13812345678", phone="13900001111",
                     need_to_know=True)
    rl = RouteList(week="2026-W49", day="2026-12-01", steward_code="S1", steward_name="蒋*", steward_kind="探访管家",
                   mode="walk", shift=["08:30", "17:00"], base=(116.349, 40.0), stops=[stop], travel_seconds=60,
                   distance_metres=80, work_minutes=31, geometry=[[116.349, 40.0], [116.35, 40.0]])
    page = to_html(rl, map_svg="<svg></svg>")
    assert "学清苑社区3号楼2单元501" in page and "13900001111" in page and "13812345678" in page
    assert "按需知悉" in page and "姓名已脱敏" in page
