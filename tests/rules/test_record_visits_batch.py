"""``record_visits`` (a batch in one transaction) writes exactly what the same visits recorded one by one write;
``due_by_today`` and ``default_week`` of the indicators (issue #15 item 4) on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from gridmap._errors import ValidationError
from gridmap.domain.enums import Category, WelfareStatus
from gridmap.rules.config import load_rules
from gridmap.rules.indicators import compute_indicators, default_week, due_by_today, working_days_done
from gridmap.rules.requirements import week_of
from gridmap.rules.store import record_visit, record_visits
from gridmap.rules.visits import parse_visit
from gridmap.store.models import CareService, Hazard, Referral, RegisterChange, Visit
from tests.rules.conftest import build_register

RULES = load_rules()
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SAFE = {"gas_safety": "safe", "water_heating_safety": "safe", "electricity_safety": "safe"}
BASE = {"family_change": "unchanged", "expression": "unchanged", "mobility": "unchanged", "illness": "unchanged",
        "mood": "unchanged", "personal_hygiene": "unchanged", "home_hygiene": "unchanged",
        "indoor_environment": "unchanged"}


def _items(ids: list[int], steward: int) -> list[dict]:
    d = "2026-12-03"
    return [
        {"elder_id": ids[0], "visited_on": d, "mode": "in_home", "visitor_role": "visit_steward",
         "steward_id": steward, **BASE, **SAFE, "gas_safety": "unsafe"},
        {"elder_id": ids[1], "visited_on": d, "mode": "in_home", "visitor_role": "visit_steward",
         "steward_id": steward, **BASE, **SAFE, "electricity_safety": "fairly_safe", "needs": "助餐",
         "care_services": [{"kind": "助餐", "satisfaction": "满意"}]},
        {"elder_id": ids[2], "visited_on": d, "mode": "phone", "visitor_role": "visit_steward", "needs": "助医",
         "emergency": True},
        {"elder_id": ids[0], "visited_on": "2026-12-04", "mode": "phone", "visitor_role": "visit_steward"},
    ]


def _written(engine) -> dict:
    with engine.connect() as conn:
        v = [tuple(r) for r in conn.execute(select(Visit.elder_id, Visit.seq, Visit.visited_on, Visit.mode,
                                                   Visit.gas_safety, Visit.needs).order_by(Visit.id))]
        h = [tuple(r) for r in conn.execute(select(Hazard.elder_id, Hazard.kind, Hazard.severity, Hazard.deadline,
                                                   Hazard.owner_unit, Hazard.status).order_by(Hazard.id))]
        r = [tuple(x) for x in conn.execute(select(Referral.elder_id, Referral.target, Referral.target_name,
                                                   Referral.emergency, Referral.status).order_by(Referral.id))]
        c = [tuple(x) for x in conn.execute(select(CareService.elder_id, CareService.kind).order_by(CareService.id))]
        hist = conn.execute(select(RegisterChange.entity, RegisterChange.elder_id).where(
            RegisterChange.entity.in_(["hazard", "referral"]), RegisterChange.field == "*created*")
            .order_by(RegisterChange.id)).all()
    return {"visits": v, "hazards": h, "referrals": r, "care": c, "history": [tuple(x) for x in hist]}


def _register(engine) -> tuple[list[int], int]:
    ids = build_register(engine, [{}, {"welfare_status": WelfareStatus.TEKUN}, {"categories": [Category.LIVING_ALONE]}])
    return ids["elders"], ids["stewards"]["甲街道"]


def test_a_batch_writes_what_the_same_visits_recorded_one_by_one_write(engine, tmp_path):
    from gridmap.store.db import init_db, make_engine

    elders, steward = _register(engine)
    recs = [parse_visit(x, RULES, now=NOW) for x in _items(elders, steward)]
    results = record_visits(engine, recs, rules=RULES, now=NOW, user="batch")
    batch = _written(engine)
    # the same visits, one by one, in another store built the same way
    other = make_engine(f"sqlite:///{tmp_path / 'one.sqlite'}")
    init_db(other)
    elders2, steward2 = _register(other)
    assert (elders2, steward2) == (elders, steward)
    singles = [record_visit(other, r, rules=RULES, now=NOW, user="batch") for r in recs]
    assert _written(other) == batch
    assert [len(r.hazard_ids) for r in results] == [len(r.hazard_ids) for r in singles] == [1, 1, 0, 0]
    # a need; a need with an emergency: the need, and the emergency to the first contact and the community
    assert [len(r.referral_ids) for r in results] == [0, 1, 3, 0]
    assert [len(r.care_service_ids) for r in results] == [0, 1, 0, 0]
    assert [s for _e, s, *_ in batch["visits"]] == [1, 1, 1, 2]  # numbered per elder within the batch
    assert len(batch["history"]) == 6  # each hazard and referral's creation in the register history
    with engine.connect() as conn:  # each follow-up points at its own visit
        pairs = conn.execute(select(Hazard.visit_id, Visit.id, Hazard.elder_id, Visit.elder_id)
                             .join(Visit, Visit.id == Hazard.visit_id)).all()
    assert {r.visit_id for r in results[:2]} == {p[0] for p in pairs} and all(p[2] == p[3] for p in pairs)


def test_a_batch_with_an_unknown_elder_writes_nothing(engine):
    elders, steward = _register(engine)
    items = _items(elders, steward)
    items[2]["elder_id"] = 999999
    recs = [parse_visit(x, RULES, now=NOW) for x in items]
    with pytest.raises(ValidationError) as exc:
        record_visits(engine, recs, rules=RULES, now=NOW)
    assert exc.value.field == "elder_id" and "未找到该老人" in exc.value.message_zh
    assert _written(engine)["visits"] == []


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)), st.integers(0, 50000))
@example(date(2026, 12, 7), 30000)  # a Monday: nothing due yet
@example(date(2026, 12, 10), 7)  # a Thursday: three fifths, rounded up
def test_due_by_today_spreads_the_week_over_its_working_days(today: date, willing: int) -> None:
    week = week_of(today)
    done = working_days_done(week, today)
    due = due_by_today(willing, week, today)
    assert done == min(today.weekday(), 5)
    assert 0 <= due <= willing
    assert due == -(-willing * done // 5)
    if today.weekday() == 0:
        assert due == 0 and default_week(today) == week_of(today - timedelta(days=7))
    else:
        assert default_week(today) == week
    if today.weekday() >= 5:
        assert due == willing


def test_current_week_indicators_measure_progress_against_what_is_due_by_today() -> None:
    # 10 willing elders; Thursday 2026-12-10: 6 due (3 of 5 working days); 5 visited Mon–Wed
    thursday = date(2026, 12, 10)
    elders = pd.DataFrame({"elder_id": range(10), "street": "甲街道", "community": "c", "grid_id": 1,
                           "steward_id": 1, "status": "active", "willing": True, "age": 85,
                           "categories": [[] for _ in range(10)], "devices": [[] for _ in range(10)],
                           "has_first_contact": True, "has_location": True, "lon": 116.3, "lat": 39.98,
                           "last_visit_on": None})
    rows = [(i, date(2026, 12, 2) + timedelta(days=i % 3)) for i in range(5)]  # this week
    rows += [(i, date(2026, 12, 1) + timedelta(days=i % 4)) for i in range(10)]  # last week: everyone
    visits = pd.DataFrame({"id": range(len(rows)), "elder_id": [r[0] for r in rows],
                           "visited_on": [r[1] + timedelta(days=5) if k < 5 else r[1] for k, r in enumerate(rows)],
                           "mode": "in_home", "effective": True, "visitor_role": "visit_steward",
                           "started_at": None, "ended_at": None, "gps_lon": float("nan"), "gps_lat": float("nan"),
                           "late_entry": False})
    empty_h = pd.DataFrame(columns=["id", "elder_id", "status", "opened_on", "deadline", "closed_on"])
    empty_r = pd.DataFrame(columns=["id", "elder_id", "status", "emergency", "opened_at", "deadline", "closed_at"])
    week = week_of(thursday)
    full = compute_indicators(elders, visits, empty_h, empty_r, week=week, level="district", rules=RULES)
    now = compute_indicators(elders, visits, empty_h, empty_r, week=week, level="district", rules=RULES,
                             as_of=thursday)
    r = now.iloc[0]
    assert (r["visited_week"], r["due_by_today"]) == (5, 6)
    assert r["week_progress"] == pytest.approx(5 / 6)
    assert r["weekly_rate"] == pytest.approx(0.5)  # the full week's target beside it
    assert "week_progress" not in full.columns
    # overdue as of Thursday, not as of the coming Sunday (when all 5 not yet visited would be past 7 days)
    assert now.iloc[0]["overdue"] < full.iloc[0]["overdue"]
