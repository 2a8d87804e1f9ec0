"""Property tests: the weekly requirement never asks less than the document's minimum."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.domain.enums import Category, DisabilityLevel, ElderStatus, EventKind, WelfareStatus
from gridmap.rules.config import load_rules, validate_rules
from gridmap.rules.facts import ElderFacts, Event
from gridmap.rules.requirements import (
    effective_required,
    elder_requirements,
    min_gap_days,
    month_end,
    parse_week,
    routing_visits,
)

RULES = load_rules()

facts_st = st.builds(
    ElderFacts,
    id=st.integers(1, 10_000),
    age=st.one_of(st.none(), st.integers(60, 105)),
    categories=st.frozensets(st.sampled_from(list(Category))),
    disability_level=st.one_of(st.none(), st.sampled_from(list(DisabilityLevel))),
    welfare_status=st.one_of(st.none(), st.sampled_from(list(WelfareStatus))),
    dispersed_support=st.booleans(),
    willing=st.booleans(),
    signed_care_station=st.booleans(),
    signed_home_care_bed=st.booleans(),
    status=st.sampled_from(list(ElderStatus)),
    open_hazards=st.integers(0, 3),
    last_visit_on=st.one_of(st.none(), st.dates(date(2026, 6, 1), date(2027, 3, 1))),
    last_answers=st.dictionaries(st.sampled_from(["mobility", "mood", "gas_safety", "illness"]),
                                 st.sampled_from(["unchanged", "worse", "better", "unsafe", "safe", "serious"]),
                                 max_size=3),
    has_first_contact=st.booleans(),
    street_id=st.sampled_from([1, 2]),
)
week_st = st.integers(27, 53).map(lambda w: f"2026-W{w}")
event_st = st.builds(
    lambda kind, start, n, street: Event(kind, "event", start, start + timedelta(days=n), street_id=street),
    st.sampled_from(list(EventKind)), st.dates(date(2026, 7, 1), date(2026, 12, 31)), st.integers(0, 6),
    st.sampled_from([None, 1, 2]),
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(facts_st, week_st, st.lists(event_st, max_size=3))
def test_weekly_requirement_never_below_the_documents_minimum(f, week, events):
    monday, sunday = parse_week(week)
    if f.last_visit_on is not None and f.last_visit_on >= monday:
        f = ElderFacts(**{**f.__dict__, "last_visit_on": monday - timedelta(days=1)})
    rs = elder_requirements(f, week, RULES, events)
    if f.status not in RULES.programme_statuses:
        assert rs == []
        return
    need = effective_required(rs)
    if f.willing:  # 五.1: willing elders at least once a week
        assert need >= RULES.weekly_min_willing
    # 五.1: at least once a month — when the month's visit has not happened and the month ends this week
    for m in {monday.replace(day=1), sunday.replace(day=1)}:
        if month_end(m) <= sunday and (f.last_visit_on is None or f.last_visit_on < m):
            assert need >= RULES.monthly_min
            assert min(r.deadline for r in rs if r.kind == "visit") <= month_end(m)
    if f.dispersed_support and f.welfare_status == WelfareStatus.TEKUN:
        assert sum(r.count for r in rs if r.kind == "daily_care") >= RULES.tekun_daily_checks
    # events only ever add
    assert need >= effective_required(elder_requirements(f, week, RULES))
    for r in rs:
        assert 1 <= r.priority <= 5 and r.count >= 1 and r.mode in ("in_home", "remote")
    if f.signed:
        assert routing_visits([f], week, RULES, events) == []
    for v in routing_visits([f], week, RULES, events):
        assert v["count"] >= 1 and (v["count"] - 1) * v["min_gap_days"] <= 6


@given(st.integers(1, 7))
def test_min_gap_fits_the_week(count):
    assert (count - 1) * min_gap_days(count, RULES) <= 6


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["monthly_min", "weekly_min_willing", "max_gap_days", "late_entry_days"]),
       st.one_of(st.integers(-5, -1), st.text(max_size=3), st.none(), st.floats(0.5, 0.9)))
def test_rules_validator_rejects_bad_values_naming_the_key(key, value):
    raw = dict(RULES.raw)
    raw[key] = value
    try:
        validate_rules(raw)
    except ValidationError as exc:
        assert exc.field == key and key in exc.message_en and key in exc.message_zh
    else:  # only non-negative integers may pass
        raise AssertionError(f"{key}={value!r} accepted")
