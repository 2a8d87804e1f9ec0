"""The dashboard's follow-up actions on both backends (no browser): the server re-checks the area and the role,
refuses invalid transitions in Chinese and English, writes as the signed-in user; the form's idempotency key
stores a visit once; lists are scoped and masked, overdue first; the hotspot layer counts only hazards still to
fix and colours them by age; the route list's follow-up notes."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point
from sqlalchemy import Engine, func, select

from gridmap._errors import GridmapError
from gridmap.access import PermissionDenied, add_user, load_user
from gridmap.dashboard import followups as fu
from gridmap.dashboard import map as gm
from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.data import DashboardData
from gridmap.store.models import Hazard, HazardEvent, Visit
from tests.followups.conftest import RULES, visit
from tests.rules.conftest import build_register

PW = "Followups-Test-Pass-2026!"


@pytest.fixture
def world(engine: Engine) -> dict:
    from gridmap.domain.enums import Category
    from gridmap.rules.store import record_visit

    ids = build_register(engine, [dict(categories=[Category.LIVING_ALONE]),
                                  dict(categories=[Category.LIVING_ALONE], street="乙街道")])
    e_jia, e_yi = ids["elders"]
    h_jia = record_visit(engine, visit(e_jia, "2026-12-01", gas="不安全"), rules=RULES).hazard_ids[0]
    h_yi = record_visit(engine, visit(e_yi, "2026-12-02", gas="不安全"), rules=RULES).hazard_ids[0]
    add_user(engine, "jia_sup", "street", street="甲街道", password=PW)
    add_user(engine, "inspector1", "inspector", password=PW)
    data = DashboardData(engine, today=date(2026, 12, 9))
    return {"ids": ids, "e_jia": e_jia, "e_yi": e_yi, "h_jia": h_jia, "h_yi": h_yi, "data": data,
            "jia": load_user(engine, "jia_sup"), "inspector": load_user(engine, "inspector1")}


def test_a_supervisor_moves_a_hazard_of_their_area_and_nothing_else(world: dict, engine: Engine) -> None:
    data, jia = world["data"], world["jia"]
    rows = fu.hazard_rows(data, jia, None)
    assert [r["id"] for r in rows] == [world["h_jia"]]  # 乙街道's hazard is not listed
    assert "*" in rows[0]["elder"]  # masked name
    text = fu.apply_change(data, jia, "h", world["h_jia"], "in_progress", "已联系燃气公司", None)
    assert "整改中" in text
    with engine.connect() as conn:
        ev = conn.execute(select(HazardEvent).where(HazardEvent.hazard_id == world["h_jia"])
                          .order_by(HazardEvent.id.desc())).mappings().first()
    assert ev is not None and "jia_sup" in str(dict(ev).values())  # written as the signed-in user
    # outside the area: refused, nothing written
    with pytest.raises(PermissionDenied) as exc:
        fu.apply_change(data, jia, "h", world["h_yi"], "in_progress", None, None)
    assert "管辖范围" in exc.value.message_zh and "area" in exc.value.message_en
    # a read-only role: refused
    with pytest.raises(PermissionDenied):
        fu.apply_change(data, world["inspector"], "h", world["h_jia"], "fixed", None, None)
    with engine.connect() as conn:
        assert str(getattr(s := conn.scalar(select(Hazard.status).where(Hazard.id == world["h_yi"])), "value", s)) \
            == "open"


def test_an_invalid_transition_is_refused_in_both_languages(world: dict, engine: Engine) -> None:
    data, jia = world["data"], world["jia"]
    fu.apply_change(data, jia, "h", world["h_jia"], "fixed", "已更换胶管", None)
    with pytest.raises(GridmapError) as exc:
        fu.apply_change(data, jia, "h", world["h_jia"], "in_progress", None, None)
    assert "已整改" in exc.value.message_zh and "fixed" in exc.value.message_en
    with pytest.raises(GridmapError):  # an unknown hazard
        fu.apply_change(data, world["jia"], "h", world["h_jia"] + 1000, "cannot_fix", "无法入户", None)


def test_the_same_form_saved_again_is_one_visit_with_one_set_of_follow_ups(world: dict, engine: Engine) -> None:
    data = world["data"]
    user = load_user(engine, "jia_sup")
    form = {"elder_id": world["e_jia"], "visited_on": "2026-12-08", "mode": "上门探访", "visitor_role": "志愿者",
            "visitor_name": "志愿者小李", "answers": {}, "family_change": "无变化", "expression": "无变化",
            "mobility": "无变化", "illness": "无变化", "mood": "无变化", "gas_safety": "安全",
            "water_heating_safety": "安全", "electricity_safety": "不安全", "personal_hygiene": "无变化",
            "home_hygiene": "无变化", "indoor_environment": "无变化"}
    with engine.connect() as conn:
        v0 = conn.scalar(select(func.count()).select_from(Visit))
        h0 = conn.scalar(select(func.count()).select_from(Hazard))
    first = data.record_visit(user, dict(form), idempotency_key="form-key-1")
    again = [data.record_visit(user, dict(form), idempotency_key="form-key-1") for _ in range(2)]
    assert not first.duplicate and all(r.duplicate and r.visit_id == first.visit_id for r in again)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Visit)) == v0 + 1
        assert conn.scalar(select(func.count()).select_from(Hazard)) == h0 + 1


def test_route_notes_and_lists_overdue_first(world: dict, engine: Engine) -> None:
    data = world["data"]
    notes = fu.open_followup_notes(data, [world["e_jia"], world["e_yi"]])
    assert notes[world["e_jia"]].startswith("上次发现燃气隐患，待处理")
    fu.apply_change(data, world["jia"], "h", world["h_jia"], "in_progress", None, None)
    assert "上次发现燃气隐患，整改中" in fu.open_followup_notes(data, [world["e_jia"]])[world["e_jia"]]
    rows = fu.hazard_rows(data, load_user(engine, "inspector1"), None)  # the district sees both
    assert len(rows) == 2
    assert rows == sorted(rows, key=lambda r: (-r["overdue_days"], r["due"] or date.max, r["id"]))
    due = {r["id"]: r for r in rows}
    for r in rows:  # nothing overdue before its due date
        assert (r["overdue_days"] > 0) == (r["due"] is not None and r["due"] < data.today)
    assert due[world["h_jia"]]["status_label"] == "整改中"


def test_hotspots_count_only_hazards_still_to_fix_coloured_by_age() -> None:
    hz = pd.DataFrame({"id": [1, 2, 3, 4], "elder_id": [1, 2, 3, 4],
                       "status": ["open", "in_progress", "fixed", "open"],
                       "opened_on": [date(2026, 12, 8), date(2026, 11, 1), date(2026, 10, 1), date(2026, 12, 1)]})
    elders = pd.DataFrame({"elder_id": [1, 2, 3, 4], "street": ["甲", "甲", "甲", "乙"],
                           "community": ["一社区", "一社区", "一社区", "二社区"]})
    comms = gpd.GeoDataFrame({"street": ["甲", "乙"], "name": ["一社区", "二社区"]},
                             geometry=[Point(116.3, 39.98).buffer(0.01), Point(116.32, 39.98).buffer(0.01)],
                             crs="EPSG:4326")
    out = gm.hotspots(hz, elders, comms, Basemap(name="osm", url="", attribution="", gcj02=False),
                      today=date(2026, 12, 9))
    props = {f["properties"]["name"]: f["properties"] for f in out["features"]}
    assert props["一社区"]["n"] == 2 and props["一社区"]["age"] == 38  # the fixed one is not counted
    assert props["一社区"]["c"] == gm.age_colour(38) == gm.HAZARD_AGE_BINS[-1][1]
    assert props["二社区"]["age"] == 8 and props["二社区"]["c"] == gm.HAZARD_AGE_BINS[1][1]
    assert gm.age_colour(0) == gm.HAZARD_AGE_BINS[0][1] and gm.age_colour(6) == gm.HAZARD_AGE_BINS[0][1]
    assert gm.age_colour(7) == gm.HAZARD_AGE_BINS[1][1] and gm.age_colour(30) == gm.HAZARD_AGE_BINS[2][1]
