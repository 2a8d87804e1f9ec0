"""Service tasks and effective visits through the store, on both backends: a visit's needs open tasks (not
duplicated while open), tasks move on and are served with numbered, rated care services (events, history,
change feed on every write), and a visit without the answers the rules require does not raise the weekly rate
in any of the three indicator paths (report, dashboard, API)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, func, select

from gridmap._errors import ValidationError
from gridmap.access.audit import PermissionDenied
from gridmap.followups.lifecycle import TransitionError
from gridmap.rules.store import record_visit
from gridmap.store.models import (
    CareService,
    ChangeLog,
    Hazard,
    RegisterChange,
    ServiceTaskEvent,
    Visit,
)
from gridmap.tasks import store as ts
from tests.tasks.conftest import NOW, RULES, phone, register

WEEK = "2026-W49"  # Monday 2026-11-30 .. Sunday 2026-12-06


def _feed(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(ChangeLog)))


def test_a_visit_with_needs_opens_one_task_per_need_for_the_service_steward(engine: Engine) -> None:
    ids = register(engine)
    e0, _, e_none = ids["elders"]
    res = record_visit(engine, phone(e0, "2026-12-01", needs=["助餐", "适老化改造"], needs_note="午餐送到家"),
                       rules=RULES, now=NOW)
    assert len(res.task_ids) == 2 and res.effective
    df = ts.read_task_frame(engine).set_index("id")
    meal, adapt = df.loc[res.task_ids[0]], df.loc[res.task_ids[1]]
    assert (meal["kind"], meal["status"], int(meal["steward_id"]), meal["steward_code"]) == (
        "meal", "open", ids["service"]["S-1"], "S-1")
    assert meal["due_on"] == date(2026, 12, 4) and meal["note"] == "午餐送到家" and meal["visit_id"] == res.visit_id
    assert adapt["receiver_unit"] == "街镇（居家适老化改造）" and adapt["due_on"] == date(2026, 12, 31)
    # an elder without a 服务管家: the rules' fallback unit
    r2 = record_visit(engine, phone(e_none, "2026-12-01", needs=["助餐"]), rules=RULES, now=NOW)
    assert ts.read_task_frame(engine).set_index("id").loc[r2.task_ids[0], "receiver_unit"] == "村（居）委会"
    with engine.connect() as c:
        stored = c.execute(select(Visit.need_kinds, Visit.needs).where(Visit.id == res.visit_id)).one()
        assert list(stored[0]) == ["meal", "home_adaptation"] and stored[1] == "午餐送到家"
        assert c.scalar(select(func.count()).select_from(ServiceTaskEvent)) == 3
        assert c.scalar(select(func.count()).select_from(RegisterChange)
                        .where(RegisterChange.entity == "service_task")) == 3


def test_the_same_need_while_open_is_not_duplicated_and_opens_again_when_done(engine: Engine) -> None:
    e0 = register(engine)["elders"][0]
    first = record_visit(engine, phone(e0, "2026-11-30", needs=["助餐"]), rules=RULES, now=NOW)
    again = record_visit(engine, phone(e0, "2026-12-01", needs=["助餐", "助医"]), rules=RULES, now=NOW)
    assert len(first.task_ids) == 1 and len(again.task_ids) == 1  # only 助医 is new
    assert ts.read_task_frame(engine)["kind"].tolist() == ["meal", "medical"]
    ts.serve_task(engine, first.task_ids[0], by="s1", satisfaction="满意", now=NOW)
    third = record_visit(engine, phone(e0, "2026-12-02", needs=["助餐"]), rules=RULES, now=NOW)
    assert len(third.task_ids) == 1 and third.task_ids[0] != first.task_ids[0]


def test_update_and_serve_write_events_history_and_one_feed_row_each(engine: Engine) -> None:
    ids = register(engine)
    e0 = ids["elders"][0]
    res = record_visit(engine, phone(e0, "2026-12-01", needs=["助餐", "助浴"]), rules=RULES, now=NOW)
    meal, bath = res.task_ids
    before = _feed(engine)
    up = ts.update_task(engine, meal, "处理中", by="服务管家1", now=NOW)
    assert up.status == "in_progress" and _feed(engine) == before + 1
    s1 = ts.serve_task(engine, meal, by="服务管家1", description="送午餐到家", provider="某驿站", satisfaction="满意",
                       served_on=date(2026, 12, 2), now=NOW)
    s2 = ts.serve_task(engine, bath, by="服务管家1", satisfaction="非常满意", served_on=date(2026, 12, 2),
                       complete=False, now=NOW)
    assert (s1.seq, s1.task_status, s2.seq, s2.task_status) == (1, "done", 2, "open")  # 第1次、第2次开展关爱
    assert _feed(engine) == before + 3
    cs = ts.read_care_services(engine, elder_id=e0)
    assert [(c["seq"], c["kind"], c["satisfaction"], c["task_id"]) for c in cs] == [
        (1, "助餐", "satisfied", meal), (2, "助浴", "very_satisfied", bath)]
    ev = ts.read_task_events(engine, meal)
    assert [(e["from_status"], e["to_status"]) for e in ev] == [(None, "open"), ("open", "in_progress"),
                                                                 ("in_progress", "done")]
    df = ts.read_task_frame(engine).set_index("id")
    assert df.loc[meal, "care_services"] == 1 and df.loc[meal, "status"] == "done"


def test_refused_changes_write_nothing(engine: Engine) -> None:
    ids = register(engine)
    res = record_visit(engine, phone(ids["elders"][0], "2026-12-01", needs=["助餐"]), rules=RULES, now=NOW)
    (tid,) = res.task_ids
    before = _feed(engine)
    with pytest.raises(TransitionError):
        ts.update_task(engine, tid, "已取消", by="x", now=NOW)  # no reason
    with pytest.raises(PermissionDenied) as ei:
        ts.serve_task(engine, tid, by="别的管家", steward_id=ids["service"]["S-2"], now=NOW)
    assert "不属于您" in ei.value.message_zh
    with pytest.raises(ValidationError) as ei:
        ts.serve_task(engine, tid, by="x", satisfaction="还行", now=NOW)
    assert ei.value.field == "satisfaction"
    with pytest.raises(ValidationError):
        ts.update_task(engine, 9999, "处理中", by="x", now=NOW)
    ts.update_task(engine, tid, "已取消", by="x", note="老人已由子女接走同住", now=NOW)
    with pytest.raises(ValidationError) as ei:
        ts.serve_task(engine, tid, by="x", now=NOW)
    assert ei.value.code == "task_closed"
    assert _feed(engine) == before + 1
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(CareService)) == 0


def test_unsafe_housing_at_a_visit_opens_a_housing_hazard(engine: Engine) -> None:
    e0 = register(engine)["elders"][0]
    res = record_visit(engine, phone(e0, "2026-12-01", housing_safety="不安全"), rules=RULES, now=NOW)
    with engine.connect() as c:
        kinds = [str(k) for k in c.execute(select(Hazard.kind).where(Hazard.id.in_(res.hazard_ids))).scalars()]
        row = c.execute(select(Visit.housing_safety, Visit.effective)).one()
    assert kinds == ["housing"] and str(row[0]) == "unsafe" and row[1] is True


# ---------------------------------------------------------------- effective visits and the weekly rate


def _rates(engine: Engine) -> tuple[float, float, float]:
    """The district's weekly visit rate of WEEK by the report's, the dashboard's and the API's paths."""
    from gridmap.api.figures import IndicatorQuery, indicator_rows
    from gridmap.dashboard.data import SYSTEM_USER, DashboardData, Filters
    from gridmap.rules.indicators import compute_indicators
    from gridmap.rules.requirements import parse_week
    from gridmap.rules.store import indicator_inputs

    start, end = parse_week(WEEK)
    ind = compute_indicators(*indicator_inputs(engine, start, end, rules=RULES), week=WEEK, level="district",
                             rules=RULES)
    report = float(ind["weekly_rate"].iloc[0])
    dash_rate = float(DashboardData(engine, today=date(2026, 12, 6), rules=RULES).kpis(
        SYSTEM_USER, Filters(week=WEEK, street="甲街道"))["weekly_rate"])
    api = indicator_rows(engine, SYSTEM_USER, IndicatorQuery(WEEK, None, "district"), RULES)[0]["weekly_rate"]["value"]
    return report, dash_rate, float(api)


def test_a_phone_visit_with_no_answers_does_not_raise_the_weekly_rate(engine: Engine) -> None:
    e0, e1, _e2 = register(engine)["elders"]
    assert record_visit(engine, phone(e1, "2026-12-01"), rules=RULES, now=NOW).effective
    assert _rates(engine) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    empty = record_visit(engine, phone(e0, "2026-12-01", illness=None, mood=None, needs=None), rules=RULES, now=NOW)
    assert not empty.effective and empty.missing_answers == ("illness", "mood", "needs")
    with engine.connect() as c:
        eff, why = c.execute(select(Visit.effective, Visit.ineffective_reason).where(Visit.id == empty.visit_id)).one()
    assert eff is False and why == "未答：疾病状况、情绪状态、老年人服务需求"
    assert _rates(engine) == pytest.approx((1 / 3, 1 / 3, 1 / 3))  # stored, not counted, in every path
    # the same elder called again with the answers: counted
    record_visit(engine, phone(e0, "2026-12-02", started_at="2026-12-02T10:00"), rules=RULES, now=NOW)
    assert _rates(engine) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
