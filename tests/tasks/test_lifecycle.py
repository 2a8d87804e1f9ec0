"""The service-task life-cycle and the effective-visit rule as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.domain.enums import VisitMode
from gridmap.followups.lifecycle import TransitionError
from gridmap.rules.config import load_rules
from gridmap.rules.followups import hazards_from_visit
from gridmap.rules.visits import ANSWER_FIELDS, parse_visit
from gridmap.tasks.lifecycle import (
    TaskState,
    TaskStatus,
    need_of,
    new_task_action,
    next_care_seq,
    parse_task_status,
    task_transition,
    tasks_from_visit,
)
from tests.tasks.conftest import IN_HOME, PARSE_NOW, RULES

T = TaskStatus
AT = datetime(2026, 12, 2, 4, tzinfo=UTC)


def _phone(**more):
    return parse_visit(dict(elder_id=7, visited_on="2026-12-01", mode="电话问候", visitor_role="探访管家", **more),
                       RULES, now=PARSE_NOW)


# ---------------------------------------------------------------- needs in the visit JSON


def test_needs_list_of_labels_becomes_codes_and_the_note_stays_a_note() -> None:
    v = _phone(illness="无变化", mood="无变化", needs=["助餐", "助医"], needs_note="午餐需要送到家")
    assert v.need_kinds == ("meal", "medical") and v.needs == "午餐需要送到家" and v.effective


def test_a_plain_string_needs_is_still_accepted_as_a_note() -> None:
    v = _phone(illness="无变化", mood="无变化", needs="想办理老年卡")
    assert v.need_kinds is None and v.needs == "想办理老年卡" and v.effective  # a note answers the needs item


def test_unknown_need_label_is_refused_naming_the_field_in_both_languages() -> None:
    with pytest.raises(ValidationError) as ei:
        _phone(needs=["助餐", "代购彩票"])
    e = ei.value
    assert e.field == "needs[1]" and "代购彩票" in e.message_zh and "未知的服务需求" in e.message_zh
    assert "unknown need" in e.message_en and "助餐" in e.message_en


def test_aliases_and_codes_of_the_rules_are_accepted_once() -> None:
    v = _phone(needs=["康复护理", "rehabilitation", "居家适老化改造"])
    assert v.need_kinds == ("rehabilitation", "home_adaptation")


# ---------------------------------------------------------------- the effective visit (五, rules effective_answers)


def test_a_phone_visit_with_no_answers_is_stored_but_not_effective() -> None:
    v = _phone()
    assert not v.effective and v.missing_answers == ("illness", "mood", "needs")
    assert v.ineffective_reason == "未答：疾病状况、情绪状态、老年人服务需求"


@pytest.mark.parametrize("leave_out", ["illness", "mood", "needs"])
def test_a_phone_visit_needs_health_mood_and_needs(leave_out: str) -> None:
    answers = {"illness": "无变化", "mood": "较好", "needs": ["无"]}
    answers.pop(leave_out)
    v = _phone(**answers)
    assert not v.effective and v.missing_answers == (leave_out,)


def test_an_in_home_visit_answers_more_and_a_district_may_ask_the_new_items_too() -> None:
    base = dict(elder_id=7, visited_on="2026-12-01", mode="上门探访", visitor_role="探访管家")
    assert parse_visit({**base, **IN_HOME, "needs": []}, RULES, now=PARSE_NOW).effective
    assert set(RULES.effective_answers[VisitMode.IN_HOME]) > {"illness", "mood"}  # more than a phone call
    strict = load_rules(overrides={"effective_answers": {"in_home": [
        "illness", "mood", "reaction", "family_support", "housing_safety", "drinking_water_safety", "needs"]}})
    old_form = {k: v for k, v in IN_HOME.items() if k not in ("reaction", "family_support", "housing_safety",
                                                              "drinking_water_safety")}
    v = parse_visit({**base, **old_form}, strict, now=PARSE_NOW)
    assert not v.effective
    assert set(v.missing_answers) == {"reaction", "family_support", "housing_safety", "drinking_water_safety",
                                      "needs"}


def test_the_rules_file_decides_what_an_effective_phone_visit_answers() -> None:
    lenient = load_rules(overrides={"effective_answers": {"phone": ["mood"]}})
    v = parse_visit(dict(elder_id=7, visited_on="2026-12-01", mode="phone", visitor_role="visit_steward",
                         mood="较好"), lenient, now=PARSE_NOW)
    assert v.effective
    with pytest.raises(ValidationError) as ei:
        load_rules(overrides={"effective_answers": {"phone": ["shoe_size"]}})
    assert ei.value.field == "effective_answers.phone"


def test_new_items_are_answers_of_section_5_with_chinese_answers() -> None:
    v = _phone(reaction="较差", family_support="无人探望或来电", housing_safety="不安全", drinking_water_safety="较安全")
    assert {k: v.answers[k] for k in ("reaction", "family_support", "housing_safety", "drinking_water_safety")} == {
        "reaction": "worse", "family_support": "none", "housing_safety": "unsafe", "drinking_water_safety": "fairly_safe"}
    assert {"reaction", "family_support", "housing_safety", "drinking_water_safety"} <= set(ANSWER_FIELDS)


def test_unsafe_housing_and_water_open_hazards_by_the_rules_like_gas() -> None:
    v = _phone(housing_safety="不安全", drinking_water_safety="较安全")
    kinds = {h.kind.value: h for h in hazards_from_visit(v, RULES)}
    assert set(kinds) == {"housing", "facility"}
    assert kinds["housing"].owner_unit == RULES.owner_units[kinds["housing"].kind]
    assert kinds["housing"].deadline == date(2026, 12, 1) + timedelta(days=RULES.hazard_deadline_days["unsafe"])
    assert "房屋安全" in kinds["housing"].description


# ---------------------------------------------------------------- tasks from a visit


def test_each_need_is_a_task_for_the_service_steward_due_by_the_rules() -> None:
    v = _phone(needs=["助餐", "适老化改造"])
    meal, adapt = tasks_from_visit(v, RULES, service_steward_id=42)
    assert (meal.kind, meal.label, meal.steward_id, meal.receiver_unit) == ("meal", "助餐", 42, None)
    assert meal.due_on == date(2026, 12, 1) + timedelta(days=need_of(RULES, "meal").due_days)
    # the rules name a unit for home adaptation: it goes there, not to the steward
    assert adapt.steward_id is None and adapt.receiver_unit == need_of(RULES, "适老化改造").receiver


def test_a_stewards_need_of_an_elder_without_one_goes_to_the_fallback_unit() -> None:
    (t,) = tasks_from_visit(_phone(needs=["助浴"]), RULES, service_steward_id=None)
    assert t.steward_id is None and t.receiver_unit == RULES.service_needs_fallback


def test_no_need_no_task() -> None:
    assert tasks_from_visit(_phone(needs=["无"]), RULES, service_steward_id=1) == []
    assert tasks_from_visit(_phone(needs="想办理老年卡"), RULES, service_steward_id=1) == []


def test_an_open_task_of_the_same_need_is_not_duplicated() -> None:
    assert new_task_action([]) == "open"
    assert new_task_action([T.DONE, T.CANCELLED]) == "open"
    assert new_task_action([T.DONE, "in_progress"]) == "skip"
    assert new_task_action(["open"]) == "skip"


# ---------------------------------------------------------------- transitions


def test_open_in_progress_done_with_times() -> None:
    s0 = TaskState(T.OPEN, AT)
    s1, e1 = task_transition(s0, "处理中", by="s1", at=AT + timedelta(hours=1))
    s2, e2 = task_transition(s1, T.DONE, by="s1", at=AT + timedelta(hours=2), note="已送餐")
    assert (e1.from_status, e1.to_status, e2.to_status) == ("open", "in_progress", "done")
    assert s2.in_progress_at == AT + timedelta(hours=1) and s2.closed_at == AT + timedelta(hours=2)
    assert s2.outcome == "已送餐"


def test_cancel_needs_a_reason_and_final_states_refuse_more() -> None:
    with pytest.raises(TransitionError) as ei:
        task_transition(TaskState(T.OPEN, AT), "已取消", by="x", at=AT)
    assert ei.value.code == "reason_required" and "原因" in ei.value.message_zh
    done, _ = task_transition(TaskState(T.OPEN, AT), T.DONE, by="x", at=AT)
    assert done.in_progress_at == AT  # skipped step stamped
    with pytest.raises(TransitionError) as ei:
        task_transition(done, T.IN_PROGRESS, by="x", at=AT)
    assert "已完成" in ei.value.message_zh and ei.value.code == "invalid_transition"
    with pytest.raises(ValidationError):
        parse_task_status("整改中")


@given(st.lists(st.sampled_from(list(TaskStatus)), max_size=6), st.sampled_from([None, "老人已入住养老院"]))
def test_any_sequence_follows_the_table(steps: list[TaskStatus], note: str | None) -> None:
    ok = {T.OPEN: {T.IN_PROGRESS, T.DONE, T.CANCELLED}, T.IN_PROGRESS: {T.DONE, T.CANCELLED}}
    s = TaskState(T.OPEN, AT)
    for to in steps:
        allowed = to in ok.get(s.status, set()) and (to != T.CANCELLED or note)
        try:
            new, ev = task_transition(s, to, by="x", at=AT, note=note)
        except TransitionError:
            assert not allowed
            continue
        assert allowed and ev.from_status == s.status.value and ev.to_status == to.value
        assert (new.closed_at is not None) == to.terminal
        s = new


@given(st.lists(st.one_of(st.none(), st.integers(1, 50)), max_size=10))
def test_care_services_are_numbered_after_every_earlier_one(seqs: list[int | None]) -> None:
    n = next_care_seq(seqs)
    assert n > len(seqs) and all(n > s for s in seqs if s is not None)


_WORDS = [w for n in RULES.service_needs for w in (n.code, n.label, *n.aliases)] + ["无", "无需求", ""]


@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=6)), max_size=8))
def test_the_needs_validator_maps_known_words_or_names_the_first_unknown(items: list[str]) -> None:
    from gridmap.rules.visits import NO_NEED_WORDS, parse_needs

    codes = {w: n.code for n in RULES.service_needs for w in (n.code, n.label, *n.aliases)}
    unknown = [i for i, w in enumerate(items) if w.strip() not in codes and w.strip() not in NO_NEED_WORDS
               and w.strip() != ""]
    if unknown:
        with pytest.raises(ValidationError) as ei:
            parse_needs(items, RULES)
        assert ei.value.field == f"needs[{unknown[0]}]" and ei.value.message_zh and ei.value.message_en
        return
    got = parse_needs(items, RULES)
    want: list[str] = []
    for w in items:
        c = codes.get(w.strip())
        if c and c not in want:
            want.append(c)
    assert got == tuple(want)
