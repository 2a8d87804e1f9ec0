"""The 接诉即办 measures (gridmap.followups.measures) against an independent plain-Python computation:
hypothesis-generated histories of hazards and referrals, and "nothing is overdue before its due date"."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from gridmap.followups.measures import FOLLOWUP_COLUMNS, followup_sheet, hazard_measures, referral_measures
from gridmap.rules.indicators import period_of

BJ = ZoneInfo("Asia/Shanghai")
STREETS = ["甲街道", "乙街道", "丙街道"]
UNITS = ["燃气", "物业", "消防"]
HAZARD_COLS = ["id", "elder_id", "street", "community", "owner_unit", "kind", "severity", "status", "opened_on",
               "deadline", "closed_on", "reopened_count"]
REFERRAL_COLS = ["id", "elder_id", "street", "community", "target", "receiver", "emergency", "status", "opened_at",
                 "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at", "resolved",
                 "satisfaction"]


# ----------------------------------------------------------------- the independent computation

def bj_day(ts: datetime | None) -> date | None:
    """The Beijing date of an aware timestamp."""
    return None if ts is None else ts.astimezone(BJ).date()


def expected(hazards: list[dict[str, Any]], referrals: list[dict[str, Any]], start: date, end: date,
             as_of: date | None, key: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per unit ``key``: the measures, one case at a time (written apart from the pandas code)."""
    cut = end if as_of is None or as_of > end else as_of
    hz: dict[str, dict[str, Any]] = {}
    for h in (h for h in hazards if key in h):
        u = hz.setdefault(h[key], {"found": 0, "fixed": 0, "open": 0, "overdue": 0, "days": []})
        if start <= h["opened_on"] <= cut:
            u["found"] += 1
        closed_by_cut = h["closed_on"] is not None and h["closed_on"] <= cut
        if h["status"] == "fixed" and h["closed_on"] is not None and start <= h["closed_on"] <= cut:
            u["fixed"] += 1
            u["days"].append((h["closed_on"] - h["opened_on"]).days)
        if h["opened_on"] <= cut and not closed_by_cut:
            u["open"] += 1
            if h["deadline"] < cut:
                u["overdue"] += 1
    for u in hz.values():
        n = u["fixed"] + u["open"]
        u["fix_rate"] = u["fixed"] / n if n else None
        u["fix_days"] = sum(u["days"]) / len(u["days"]) if u["days"] else None
    rf: dict[str, dict[str, Any]] = {}
    for r in (r for r in referrals if key in r):
        u = rf.setdefault(r[key], {"new": 0, "due": 0, "in_time": 0, "closed": 0, "resolved": 0, "rated": 0,
                                   "satisfied": 0, "overdue": 0, "escalated": 0, "days": []})
        if start <= bj_day(r["opened_at"]) <= cut:
            u["new"] += 1
        answers = [t for t in (r["acknowledged_at"], r["in_progress_at"], r["closed_at"]) if t is not None]
        first = min(answers) if answers else None
        due_day = bj_day(r["deadline"])
        if start <= due_day <= cut and ((first is not None and bj_day(first) <= cut) or due_day < cut):
            u["due"] += 1
            if first is not None and first <= r["deadline"]:
                u["in_time"] += 1
        closed_day = bj_day(r["closed_at"])
        if closed_day is not None and start <= closed_day <= cut:
            u["closed"] += 1
            u["resolved"] += bool(r["resolved"])
            if r["satisfaction"] is not None:
                u["rated"] += 1
                u["satisfied"] += r["satisfaction"] in ("满意", "基本满意", "satisfied", "neutral")
            u["days"].append((r["closed_at"] - r["opened_at"]).total_seconds() / 86400)
        if bj_day(r["opened_at"]) <= cut and (closed_day is None or closed_day > cut) and due_day < cut:
            u["overdue"] += 1
        if r["escalated_at"] is not None and start <= bj_day(r["escalated_at"]) <= cut:
            u["escalated"] += 1
    for u in rf.values():
        u["response_rate"] = u["in_time"] / u["due"] if u["due"] else None
        u["resolution_rate"] = u["resolved"] / u["closed"] if u["closed"] else None
        u["satisfaction_rate"] = u["satisfied"] / u["rated"] if u["rated"] else None
        u["close_days"] = sum(u["days"]) / len(u["days"]) if u["days"] else None
    return hz, rf


# ----------------------------------------------------------------- generated histories

DAY0 = date(2026, 11, 2)


@st.composite
def hazard_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 12))):
        opened = DAY0 + timedelta(days=draw(st.integers(0, 55)))
        status = draw(st.sampled_from(["open", "in_progress", "fixed", "cannot_fix", "transferred"]))
        closed = opened + timedelta(days=draw(st.integers(0, 20))) if status in (
            "fixed", "cannot_fix", "transferred") else None
        rows.append({"id": i + 1, "elder_id": draw(st.integers(1, 9)), "street": draw(st.sampled_from(STREETS)),
                     "community": "社区", "owner_unit": draw(st.sampled_from(UNITS)), "kind": "gas",
                     "severity": "high", "status": status, "opened_on": opened,
                     "deadline": opened + timedelta(days=draw(st.sampled_from([0, 3, 7, 14]))),
                     "closed_on": closed, "reopened_count": 0})
    return rows


def _moment(draw: st.DrawFn, after: datetime, max_hours: int) -> datetime:
    return after + timedelta(minutes=draw(st.integers(0, max_hours * 60)))


@st.composite
def referral_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 12))):
        opened = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 55 * 1440)))
        emergency = draw(st.booleans())
        deadline = opened + timedelta(hours=4 if emergency else 72)
        stage = draw(st.integers(0, 3))
        ack = _moment(draw, opened, 120) if stage >= 1 and draw(st.booleans()) else None
        prog = _moment(draw, ack or opened, 120) if stage >= 2 and draw(st.booleans()) else None
        closed = _moment(draw, prog or ack or opened, 300) if stage == 3 else None
        rows.append({"id": i + 1, "elder_id": draw(st.integers(1, 9)), "street": draw(st.sampled_from(STREETS)),
                     "community": "社区", "target": "first_contact",
                     "receiver": draw(st.sampled_from(["第一联系人", "甲街道", "探访管家"])),
                     "emergency": emergency, "status": ["open", "acknowledged", "in_progress", "closed"][stage],
                     "opened_at": opened, "deadline": deadline, "acknowledged_at": ack, "in_progress_at": prog,
                     "closed_at": closed,
                     "escalated_at": (deadline + timedelta(minutes=5)) if emergency and draw(st.booleans()) else None,
                     "resolved": draw(st.booleans()) if closed else None,
                     "satisfaction": draw(st.sampled_from([None, "满意", "基本满意", "不满意", "satisfied", "neutral", "dissatisfied"])) if closed else None})
    return rows


def _close(a: Any, b: Any) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    return a == pytest.approx(b, abs=1e-9)


PERIODS = st.sampled_from([("2026-W47", None), ("2026-W49", None), ("2026-W50", None), (None, "2026-11"),
                           (None, "2026-12")])
AS_OF = st.none() | st.dates(date(2026, 11, 10), date(2027, 1, 5))


@settings(max_examples=60, deadline=None, report_multiple_bugs=False, phases=[Phase.explicit, Phase.generate])
@given(hazard_rows(), referral_rows(), PERIODS, AS_OF, st.sampled_from(["street", "owner_unit", "receiver"]))
@example([], [], ("2026-W49", None), date(2026, 12, 7), "street")
@example([{"id": 1, "elder_id": 1, "street": "甲街道", "community": "社区", "owner_unit": "燃气", "kind": "gas",
           "severity": "high", "status": "open", "opened_on": date(2026, 12, 3), "deadline": date(2026, 12, 10),
           "closed_on": None, "reopened_count": 0}], [], ("2026-W49", None), date(2026, 12, 7), "street")
@pytest.mark.slow
def test_measures_equal_the_independent_computation(hazards: list[dict[str, Any]], referrals: list[dict[str, Any]],
                                                    period: tuple[str | None, str | None], as_of: date | None,
                                                    key: str) -> None:
    week, month = period
    p = period_of(week, month)
    hz, rf = expected(hazards, referrals, p.start, p.end, as_of, key)
    if key != "receiver":
        got = hazard_measures(pd.DataFrame(hazards, columns=HAZARD_COLS), week=week, month=month, as_of=as_of, by=key)
        assert set(got.index) == set(hz)
        for unit, want in hz.items():
            row = got.loc[unit]
            for k in ("found", "fixed", "open", "overdue"):
                assert row[k] == want[k], (unit, k)
            assert _close(row["fix_rate"], want["fix_rate"]) and _close(row["fix_days"], want["fix_days"])
    if key != "owner_unit":
        got = referral_measures(pd.DataFrame(referrals, columns=REFERRAL_COLS), week=week, month=month,
                                as_of=as_of, by=key)
        assert set(got.index) == set(rf)
        for unit, want in rf.items():
            row = got.loc[unit]
            for k in ("new", "due", "closed", "resolved", "rated", "satisfied", "overdue", "escalated"):
                assert row[k] == want[k], (unit, k)
            assert row["responded"] == want["in_time"]
            for k in ("response_rate", "resolution_rate", "satisfaction_rate", "close_days"):
                assert _close(row[k], want[k]), (unit, k)


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(hazard_rows(), referral_rows(), PERIODS, AS_OF)
def test_the_sheet_has_a_row_per_street_and_a_district_total_of_all_cases(
        hazards: list[dict[str, Any]], referrals: list[dict[str, Any]], period: tuple[str | None, str | None],
        as_of: date | None) -> None:
    week, month = period
    p = period_of(week, month)
    sheet = followup_sheet(pd.DataFrame(hazards, columns=HAZARD_COLS), pd.DataFrame(referrals, columns=REFERRAL_COLS),
                           week=week, month=month, as_of=as_of, streets=STREETS)
    assert list(sheet.columns) == FOLLOWUP_COLUMNS
    assert sheet["街道"].tolist() == STREETS + ["海淀区"]
    hz, rf = expected([{**h, "all": "海淀区"} for h in hazards], [{**r, "all": "海淀区"} for r in referrals],
                      p.start, p.end, as_of, "all")
    total = sheet.iloc[-1]
    streets = sheet.iloc[:-1]
    for col in ("新发现隐患", "已整改", "逾期未整改", "新转介", "逾期转介"):
        assert total[col] == streets[col].sum()
    h = hz.get("海淀区", {"found": 0, "fixed": 0, "overdue": 0, "fix_rate": None})
    r = rf.get("海淀区", {"new": 0, "overdue": 0, "response_rate": None, "resolution_rate": None,
                          "satisfaction_rate": None})
    assert (total["新发现隐患"], total["已整改"], total["逾期未整改"]) == (h["found"], h["fixed"], h["overdue"])
    assert (total["新转介"], total["逾期转介"]) == (r["new"], r["overdue"])
    assert _close(total["整改率"], h["fix_rate"]) and _close(total["响应率"], r["response_rate"])
    assert _close(total["解决率"], r["resolution_rate"]) and _close(total["满意率"], r["satisfaction_rate"])


def test_nothing_is_overdue_before_its_due_date() -> None:
    """The running week on Monday 12-07: a hazard due 12-10 and a referral due 12-07 18:00 are not overdue;
    the next Friday both are."""
    hz = pd.DataFrame([{"id": 1, "elder_id": 1, "street": "甲街道", "community": "c", "owner_unit": "燃气", "kind": "gas",
                        "severity": "high", "status": "in_progress", "opened_on": date(2026, 12, 3),
                        "deadline": date(2026, 12, 10), "closed_on": None, "reopened_count": 0}], columns=HAZARD_COLS)
    opened = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    rf = pd.DataFrame([{"id": 1, "elder_id": 1, "street": "甲街道", "community": "c", "target": "first_contact",
                        "receiver": "第一联系人", "emergency": False, "status": "open", "opened_at": opened,
                        "deadline": opened + timedelta(hours=9), "acknowledged_at": None, "in_progress_at": None,
                        "closed_at": None, "escalated_at": None, "resolved": None, "satisfaction": None}],
                      columns=REFERRAL_COLS)
    monday = followup_sheet(hz, rf, week="2026-W50", as_of=date(2026, 12, 7)).iloc[0]
    assert (monday["逾期未整改"], monday["逾期转介"]) == (0, 0)
    assert math.isnan(monday["响应率"])  # due today, not answered yet: not counted against anyone
    friday = followup_sheet(hz, rf, week="2026-W50", as_of=date(2026, 12, 11)).iloc[0]
    assert (friday["逾期未整改"], friday["逾期转介"], friday["响应率"]) == (1, 1, 0.0)
