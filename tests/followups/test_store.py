"""The follow-ups in the store, on both backends: reopening, requirements, escalation once, outbox,
joint inspections, version checks, one visit stored once."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select

from gridmap._errors import ConflictError, ValidationError
from gridmap.domain.enums import HazardKind
from gridmap.followups import store as fs
from gridmap.followups.lifecycle import TransitionError
from gridmap.followups.notify import FileGateway, OutboundMessage, SendResult
from gridmap.rules.store import read_facts, record_visit, record_visits
from gridmap.store.models import ChangeLog, Hazard, HazardEvent, Notification, Referral, ReferralEvent, Visit
from tests.followups.conftest import NOW, RULES, register, visit


def _count(engine: Engine, model: type, *where) -> int:  # noqa: ANN001
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(model).where(*where)))


def test_the_same_problem_found_again_reopens_the_hazard_instead_of_opening_another(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    r1 = record_visit(engine, visit(e1, "2026-11-02", gas="不安全"), rules=RULES, now=NOW)
    (hid,) = r1.hazard_ids
    # found again while still open: not duplicated
    r2 = record_visit(engine, visit(e1, "2026-11-09", gas="较安全"), rules=RULES, now=NOW)
    assert r2.hazard_ids == [] and r2.reopened_hazard_ids == []
    fs.update_hazard(engine, hid, "fixed", by="燃气公司", note="更换软管", photo_ref="p1.jpg", now=NOW)
    h = fs.read_hazard_frame(engine, status="已整改")
    assert h["id"].tolist() == [hid] and h["closed_on"].iloc[0] == NOW.date()
    # found again after it was fixed: the same hazard reopens
    r3 = record_visit(engine, visit(e1, "2026-11-30", gas="不安全"), rules=RULES, now=NOW)
    assert r3.hazard_ids == [] and r3.reopened_hazard_ids == [hid]
    h = fs.read_hazard_frame(engine)
    assert len(h) == 1 and h["status"].iloc[0] == "open" and h["reopened_count"].iloc[0] == 1
    assert pd_isna(h["closed_on"].iloc[0])
    assert h["deadline"].iloc[0] == date(2026, 11, 30) + timedelta(days=RULES.hazard_due_days[h["severity"].iloc[0]])
    with engine.connect() as c:
        ev = c.execute(select(HazardEvent.from_status, HazardEvent.to_status, HazardEvent.by_user,
                              HazardEvent.photo_ref).where(HazardEvent.hazard_id == hid)
                       .order_by(HazardEvent.id)).all()
    assert [(a, b) for a, b, *_ in ev] == [(None, "open"), ("open", "fixed"), ("fixed", "open")]
    assert ev[1][2:] == ("燃气公司", "p1.jpg")
    # the relatives were reminded when it opened and when it reopened (not when it was found again while open)
    assert _count(engine, Notification, Notification.hazard_id == hid) == 2


def pd_isna(v) -> bool:  # noqa: ANN001
    import pandas as pd

    return v is None or pd.isna(v)


def _in_home(engine: Engine, elder_id: int, monday: date) -> int:
    from gridmap.rules.requirements import weekly_requirements

    y, w, _ = monday.isocalendar()
    facts = read_facts(engine, monday, elder_ids=[elder_id], rules=RULES)
    req = weekly_requirements(facts, f"{y}-W{w:02d}", RULES, [])
    return int(req.loc[(req["mode"] == "in_home") & (req["kind"] == "visit"), "count"].sum())


def test_next_weeks_extra_in_home_visit_goes_when_the_hazard_is_fixed_and_comes_back_when_reopened(
        engine: Engine) -> None:
    (e1, e2) = register(engine)["elders"]
    record_visit(engine, visit(e2, "2026-11-30"), rules=RULES, now=NOW)  # the same elder without a hazard
    (hid,) = record_visit(engine, visit(e1, "2026-11-30", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    monday = date(2026, 12, 7)
    base = _in_home(engine, e2, monday)
    with_hazard = _in_home(engine, e1, monday)
    assert with_hazard > base  # the open hazard brings extra in-home visits
    fs.update_hazard(engine, hid, "in_progress", by="燃气公司", now=NOW)
    assert _in_home(engine, e1, monday) == with_hazard  # 整改中 still counts
    fs.update_hazard(engine, hid, "fixed", by="燃气公司", now=NOW)
    assert _in_home(engine, e1, monday) == base  # fixed: the extra visit is gone from the next plan
    record_visit(engine, visit(e1, "2026-12-07", gas="不安全", start="10:00"), rules=RULES, now=NOW)
    assert _in_home(engine, e1, date(2026, 12, 14)) == with_hazard  # reopened: back


@pytest.mark.parametrize("terminal", ["cannot_fix", "transferred"])
def test_an_unfixable_or_transferred_hazard_no_longer_brings_extra_visits(engine: Engine, terminal: str) -> None:
    (e1, e2) = register(engine)["elders"]
    record_visit(engine, visit(e2, "2026-11-30"), rules=RULES, now=NOW)
    (hid,) = record_visit(engine, visit(e1, "2026-11-30", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    fs.update_hazard(engine, hid, terminal, by="街道", reason="老人拒绝改造", now=NOW)
    monday = date(2026, 12, 7)
    assert _in_home(engine, e1, monday) == _in_home(engine, e2, monday)
    (f,) = read_facts(engine, monday, elder_ids=[e1], rules=RULES)
    assert f.open_hazards == 0


def test_an_invalid_transition_is_refused_and_nothing_is_written(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    (hid,) = record_visit(engine, visit(e1, "2026-11-30", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    fs.update_hazard(engine, hid, "fixed", by="u", now=NOW)
    seq = _count(engine, ChangeLog)
    events = _count(engine, HazardEvent)
    with pytest.raises(TransitionError) as ei:
        fs.update_hazard(engine, hid, "in_progress", by="u", now=NOW)
    assert "已整改" in ei.value.message_zh and "fixed" in ei.value.message_en
    with pytest.raises(ValidationError, match="未找到"):
        fs.update_hazard(engine, 999999, "fixed", by="u")
    assert _count(engine, ChangeLog) == seq and _count(engine, HazardEvent) == events


def test_a_change_based_on_a_stale_version_is_refused(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    (hid,) = record_visit(engine, visit(e1, "2026-11-30", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    v = int(fs.read_hazard_frame(engine)["version"].iloc[0])
    fs.update_hazard(engine, hid, "in_progress", by="a", version=v, now=NOW)
    with pytest.raises(ConflictError):
        fs.update_hazard(engine, hid, "fixed", by="b", version=v, now=NOW)
    assert fs.read_hazard_frame(engine)["status"].iloc[0] == "in_progress"


def test_every_change_goes_through_the_change_feed(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    res = record_visit(engine, visit(e1, "2026-11-30", gas="不安全", needs="助餐"), rules=RULES, now=NOW)
    before = _count(engine, ChangeLog)
    fs.update_hazard(engine, res.hazard_ids[0], "in_progress", by="u", now=NOW)
    fs.update_referral(engine, res.referral_ids[0], "acknowledged", by="u", now=NOW)
    with engine.connect() as c:
        last = c.execute(select(ChangeLog.kind, ChangeLog.streets, ChangeLog.elders, ChangeLog.actor)
                         .order_by(ChangeLog.seq.desc()).limit(2)).all()
    assert _count(engine, ChangeLog) == before + 2
    assert [str(k) for k, *_ in last] == ["referral", "hazard"]
    assert all(s == ["甲街道"] and e == [e1] and a == "u" for _, s, e, a in last)


def test_an_escalated_referral_is_escalated_once_even_by_two_runners(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    res = record_visit(engine, visit(e1, "2026-12-01", emergency=True), rules=RULES, now=NOW)
    assert len(res.referral_ids) == 2  # the first contact and the community
    late = NOW + timedelta(minutes=RULES.emergency_ack_minutes + 1)
    fs.update_referral(engine, res.referral_ids[0], "acknowledged", by="子女", now=NOW + timedelta(minutes=3))
    out: list[list[int]] = []
    ts = [threading.Thread(target=lambda: out.append(fs.escalate_due(engine, late, rules=RULES))) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(i for o in out for i in o) == [res.referral_ids[1]]
    assert fs.escalate_due(engine, late + timedelta(days=1), rules=RULES) == []
    r = fs.read_referral_frame(engine)
    assert r["escalated_at"].notna().sum() == 1 and (r["status"] == "open").sum() == 1
    assert len(r) == 2  # no second referral: counted once
    assert _count(engine, ReferralEvent, ReferralEvent.note.like("%升级%")) == 1


def test_opening_a_hazard_or_an_emergency_queues_a_reminder_and_the_jobs_send_it(engine: Engine, tmp_path) -> None:
    from gridmap.followups.jobs import run_jobs

    (e1, e2) = register(engine)["elders"]
    record_visit(engine, visit(e1, "2026-12-01", gas="不安全"), rules=RULES, now=NOW)
    record_visit(engine, visit(e2, "2026-12-01", emergency=True), rules=RULES, now=NOW)
    q = fs.read_notification_frame(engine, status="queued")
    assert len(q) == 2 and set(q["elder_id"]) == {e1, e2} and set(q["recipient"]) == {"13800000000"}
    assert q["hazard_id"].notna().sum() == 1 and q["referral_id"].notna().sum() == 1
    assert not q["text"].str.contains("老人0|老人1").any()  # no name in the text
    path = tmp_path / "out.jsonl"
    res = run_jobs(engine, rules=RULES, now=NOW, gateway=FileGateway(path))
    assert res["sent"] == 2 and res["failed"] == 0
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [x["recipient"] for x in lines] == ["138****0000"] * 2  # masked in the file
    assert (path.stat().st_mode & 0o077) == 0
    assert run_jobs(engine, rules=RULES, now=NOW, gateway=FileGateway(path))["sent"] == 0  # sent once
    assert set(fs.read_notification_frame(engine)["status"]) == {"sent"}


def test_a_gateway_failure_is_kept_as_failed_with_its_error(engine: Engine) -> None:
    class Down:
        def send(self, message: OutboundMessage) -> SendResult:
            return SendResult(False, error="gateway down")

    (e1, _e2) = register(engine)["elders"]
    record_visit(engine, visit(e1, "2026-12-01", gas="不安全"), rules=RULES, now=NOW)
    assert fs.send_queued(engine, Down(), now=NOW) == {"sent": 0, "failed": 1}
    n = fs.read_notification_frame(engine)
    assert n["status"].tolist() == ["failed"] and n["error"].tolist() == ["gateway down"]


def test_a_joint_inspection_finds_and_closes_hazards_in_one_transaction(engine: Engine) -> None:
    ids = register(engine, 3)
    e1, e2, e3 = ids["elders"]
    (old,) = record_visit(engine, visit(e1, "2026-11-20", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    payload = {"date": "2026-12-01", "street": "甲街道", "community": "甲社区居委会",
               "departments": ["燃气", "消防", "物业"], "homes_visited": [e1, e2],
               "hazards_found": [{"elder_id": e2, "kind": "消防安全", "severity": "high", "note": "楼道堆物"},
                                 {"elder_id": e3, "kind": "electricity"}],
               "hazards_closed": [old]}
    res = fs.record_inspection(engine, payload, by="街道", rules=RULES, now=NOW)
    assert len(res.opened) == 2 and res.closed == [old]
    h = fs.read_hazard_frame(engine).set_index("id")
    assert h.loc[old, "status"] == "fixed"
    fire = h.loc[res.opened[0]]
    assert fire["kind"] == "fire" and fire["owner_unit"] == RULES.owner_units[HazardKind.FIRE]
    assert fire["deadline"] == date(2026, 12, 1) + timedelta(days=RULES.hazard_due_days["high"])
    assert fire["inspection_id"] == res.id
    # refused input names the field; nothing of it written
    before = (_count(engine, Hazard), _count(engine, HazardEvent))
    bad = dict(payload, hazards_found=[{"elder_id": e2, "kind": "地震"}], hazards_closed=[])
    with pytest.raises(ValidationError) as ei:
        fs.record_inspection(engine, bad, by="街道", rules=RULES, now=NOW)
    assert "hazards_found[1].kind" in ei.value.message_en and "未知隐患类别" in ei.value.message_zh
    with pytest.raises(ValidationError, match="hazards_closed"):
        fs.record_inspection(engine, dict(payload, hazards_found=[], hazards_closed=[old]), by="x", rules=RULES,
                             now=NOW)  # already fixed: refused, the inspection not stored either
    assert (_count(engine, Hazard), _count(engine, HazardEvent)) == before
    with pytest.raises(ValidationError, match="departments"):
        fs.record_inspection(engine, dict(payload, departments=[]), by="x", rules=RULES, now=NOW)


def test_a_referral_closes_with_outcome_resolution_and_satisfaction(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    (rid,) = record_visit(engine, visit(e1, "2026-12-01", needs="想了解老年卡办理"), rules=RULES, now=NOW).referral_ids
    fs.update_referral(engine, rid, "已受理", by="子女", now=NOW + timedelta(hours=1))
    fs.update_referral(engine, rid, "in_progress", by="子女", now=NOW + timedelta(hours=2))
    fs.update_referral(engine, rid, "closed", by="子女", outcome="已办理", satisfaction="基本满意", resolved=False,
                       now=NOW + timedelta(days=1))
    r = fs.read_referral_frame(engine).iloc[0]
    assert r["status"] == "closed" and r["satisfaction"] == "neutral" and not r["resolved"]
    assert r["acknowledged_at"] < r["in_progress_at"] < r["closed_at"]
    assert r["receiver"] == "子女0" and r["target"] == "first_contact"
    assert _count(engine, ReferralEvent, ReferralEvent.referral_id == rid) == 4  # opened + 3 changes
    with pytest.raises(TransitionError):
        fs.update_referral(engine, rid, "acknowledged", by="u")


def test_a_care_need_goes_to_the_service_steward(engine: Engine) -> None:
    from gridmap.domain.enums import StewardKind
    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder, Steward

    (e1, _e2) = register(engine)["elders"]
    with session_scope(engine) as s:
        sw = Steward(code="S-1", name="服务管家甲", kind=StewardKind.SERVICE, organisation="驿站")
        s.add(sw)
        s.flush()
        s.get(Elder, e1).service_steward_id = sw.id
    record_visit(engine, visit(e1, "2026-12-01", needs="需要助浴服务"), rules=RULES, now=NOW)
    r = fs.read_referral_frame(engine).iloc[0]
    assert r["target"] == "service_steward" and r["receiver"] == "服务管家甲"


# ------------------------------------------------------------------ one visit, stored once


def test_the_same_submission_is_stored_once_with_one_set_of_follow_ups(engine: Engine) -> None:
    (e1, e2) = register(engine)["elders"]
    rec = visit(e1, "2026-12-01", gas="不安全", start="09:30", needs="助餐", emergency=True)
    first = record_visit(engine, rec, rules=RULES, now=NOW, idempotency_key="form-abc")
    again = record_visit(engine, rec, rules=RULES, now=NOW, idempotency_key="form-abc")
    assert again.duplicate and again.visit_id == first.visit_id
    assert again.hazard_ids == first.hazard_ids and again.referral_ids == first.referral_ids
    # without a key: the same elder, visitor and start time is the same submission (as a re-sent JSON)
    third = record_visit(engine, rec, rules=RULES, now=NOW)
    assert third.duplicate and third.visit_id == first.visit_id
    assert (_count(engine, Visit), _count(engine, Hazard), _count(engine, Referral)) == (1, 1, 3)
    # a batch with the same visit twice and a new one stores the new one only
    other = visit(e2, "2026-12-01", start="10:00")
    res = record_visits(engine, [rec, other, other], rules=RULES, now=NOW)
    assert [r.duplicate for r in res] == [True, False, True] and res[1].visit_id == res[2].visit_id
    assert _count(engine, Visit) == 2
    # another start time is another visit
    assert not record_visit(engine, visit(e1, "2026-12-01", start="15:00"), rules=RULES, now=NOW).duplicate


def test_two_writers_racing_with_one_key_store_one_visit(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    rec = visit(e1, "2026-12-01", gas="不安全", start="09:30")
    results, errors = [], []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        try:
            results.append(record_visit(engine, rec, rules=RULES, now=NOW, idempotency_key="tab-1"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=go) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert len({r.visit_id for r in results}) == 1 and sum(not r.duplicate for r in results) == 1
    assert (_count(engine, Visit), _count(engine, Hazard)) == (1, 1)


def test_hazard_and_referral_frames_have_the_columns_of_the_contract(engine: Engine) -> None:
    (e1, _e2) = register(engine)["elders"]
    record_visit(engine, visit(e1, "2026-12-01", gas="不安全", needs="助餐"), rules=RULES, now=NOW)
    h = fs.read_hazard_frame(engine, street="甲街道", status="open")
    assert {"id", "elder_id", "street", "community", "grid", "owner_unit", "kind", "severity", "status", "opened_on",
            "deadline", "closed_on", "reopened_count", "lon", "lat"} <= set(h.columns)
    assert len(h) == 1 and h["lon"].iloc[0] is not None
    assert fs.read_hazard_frame(engine, street="乙街道").empty
    r = fs.read_referral_frame(engine, status="待受理")
    assert {"id", "elder_id", "street", "community", "target", "receiver", "emergency", "status", "opened_at",
            "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at", "resolved",
            "satisfaction"} <= set(r.columns)
    assert len(r) == 1 and str(r["opened_at"].dt.tz) == "UTC"
