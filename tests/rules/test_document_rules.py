"""Each rule of the programme document, on small hand-built registers (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    DeviceKind,
    DisabilityLevel,
    ElderStatus,
    EventKind,
    HazardKind,
    ReferralTarget,
    Severity,
    WelfareStatus,
)
from gridmap.rules.config import load_responsibilities, load_rules
from gridmap.rules.facts import ElderFacts, Event, load_events
from gridmap.rules.followups import (
    device_worklist,
    hazards_from_visit,
    health_worklist,
    referrals_from_visit,
    referrals_to_escalate,
)
from gridmap.rules.requirements import (
    effective_required,
    elder_requirements,
    routing_visits,
    weekly_requirements,
)
from gridmap.rules.visits import parse_visit

RULES = load_rules()
WEEK = "2026-W49"  # 2026-11-30 .. 2026-12-06
RECENT = date(2026, 11, 27)  # visited the Friday before


def elder(i: int = 1, **kw) -> ElderFacts:
    """A willing 70-year-old without risk factors, visited last Friday."""
    base = dict(id=i, age=70, last_visit_on=RECENT, street_id=1, street="甲街道", lon=116.3, lat=39.98,
                steward_id=7)
    base.update(kw)
    return ElderFacts(**base)


def reqs(f: ElderFacts, week: str = WEEK, events=(), rules=RULES):
    return elder_requirements(f, week, rules, events)


def in_home(rs) -> int:
    return sum(r.count for r in rs if r.mode == "in_home" and r.kind == "visit")


IN_HOME_ANSWERS = dict(family_change="无变化", expression="无变化", mobility="无变化", illness="无变化",
                       mood="无变化", gas_safety="安全", water_heating_safety="安全", electricity_safety="安全",
                       personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化",
                       # issue 17: the items an effective in-home visit also answers (rules effective_answers)
                       reaction="无变化", family_support="经常探望或来电", housing_safety="安全",
                       drinking_water_safety="安全", needs=[])
#: issue 17: what an effective phone visit answers (health, mood, needs)
PHONE_ANSWERS = dict(illness="无变化", mood="无变化", needs=[])
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def visit(**kw):
    d = dict(elder_id=1, visited_on="2026-12-02", mode="上门探访", visitor_role="探访管家", **IN_HOME_ANSWERS)
    d.update(kw)
    return parse_visit(d, RULES, now=NOW)


# ------------------------------------------------------------ 五.1 frequencies


def test_5_1_weekly_effective_visit_for_willing_elders():
    rs = reqs(elder())
    assert effective_required(rs) == 1
    assert all("weekly_min" in r.reasons for r in rs)
    # a low-risk elder may be visited by phone: the weekly visit is remote
    assert [r.mode for r in rs] == ["remote"]


def test_5_1_monthly_effective_visit_for_every_elder_including_refusers():
    # refuser not visited in November: the monthly contact is due by 11-30 in this week
    r = reqs(elder(willing=False, last_visit_on=date(2026, 10, 20)))
    assert effective_required(r) == 1 and r[0].deadline == date(2026, 11, 30)
    assert "monthly_min" in r[0].reasons
    # visited in December already (before a later week): nothing more that month
    assert reqs(elder(willing=False, last_visit_on=date(2026, 12, 2)), "2026-W50") == []


def test_5_1_elders_who_refuse_are_tracked_for_the_monthly_contact_only():
    risky = dict(age=90, categories=frozenset({Category.LIVING_ALONE}), disability_level=DisabilityLevel.SEVERE,
                 open_hazards=2)
    r = reqs(elder(willing=False, last_visit_on=date(2026, 11, 3), **risky))
    assert effective_required(r) == 1
    assert in_home(r) == 0 and "refused" in r[0].reasons
    # the same elder willing gets in-home visits
    assert in_home(reqs(elder(**risky))) >= 2


@pytest.mark.parametrize("factor", [
    dict(age=85),
    dict(categories=frozenset({Category.LIVING_ALONE})),
    dict(disability_level=DisabilityLevel.SEVERE),
    dict(categories=frozenset({Category.SEVERELY_HANDICAPPED})),
    dict(open_hazards=1),
    dict(last_answers={"mobility": "worse"}),
    dict(last_answers={"gas_safety": "unsafe"}),
    dict(last_visit_on=date(2026, 11, 1)),
], ids=["80_plus", "living_alone", "disabled_severe", "severely_handicapped", "open_hazard",
        "worse_answer", "unsafe_answer", "no_recent_visit"])
def test_5_1_higher_risk_raises_in_home_frequency_and_priority(factor):
    low = reqs(elder())
    high = reqs(elder(**factor))
    assert effective_required(high) >= effective_required(low)
    assert max(r.priority for r in high) > max(r.priority for r in low)
    # with a second factor the elder is visited at home
    other = dict(categories=frozenset({Category.LIVING_ALONE})) if "age" in factor else dict(age=85)
    if "categories" in factor and "categories" in other:
        other = dict(age=85)
    both = reqs(elder(**factor, **other))
    assert in_home(low) == 0 and in_home(both) >= 1
    assert all(r.mode == "in_home" for r in both if r.kind == "visit")


def test_5_1_very_high_risk_elder_gets_several_in_home_visits_spaced_apart():
    f = elder(age=88, categories=frozenset({Category.LIVING_ALONE, Category.SEVERELY_HANDICAPPED}),
              disability_level=DisabilityLevel.SEVERE, open_hazards=1, last_answers={"gas_safety": "unsafe"})
    (v,) = routing_visits([f], WEEK, RULES)
    assert v["count"] >= 3 and v["priority"] == 5
    assert v["min_gap_days"] * (v["count"] - 1) <= 6
    assert v["service_minutes"] > RULES.service_minutes["base"]
    assert v["location"] == [116.3, 39.98] and v["steward"] == "7"
    assert v["days"][0] == "2026-11-30" and len(v["days"]) == 7


def test_5_1_dispersed_tekun_elders_get_daily_care_follow_up():
    r = reqs(elder(welfare_status=WelfareStatus.TEKUN, dispersed_support=True))
    daily = [x for x in r if x.kind == "daily_care"]
    assert daily and daily[0].count == 7
    # not 分散供养 (e.g. 集中供养 in an institution): no daily care from the programme
    assert not [x for x in reqs(elder(welfare_status=WelfareStatus.TEKUN)) if x.kind == "daily_care"]


def test_5_1_effective_modes_are_a_rule():
    rules = load_rules(overrides={"effective_modes": ["in_home"]})
    v = parse_visit(dict(elder_id=1, visited_on="2026-12-02", mode="电话问候", visitor_role="志愿者",
                         **PHONE_ANSWERS), rules, now=NOW)
    assert not v.effective
    assert parse_visit(dict(elder_id=1, visited_on="2026-12-02", mode="电话问候", visitor_role="志愿者",
                            **PHONE_ANSWERS), RULES, now=NOW).effective


def test_status_exited_or_deceased_elders_get_no_requirement_and_in_hospital_only_remote():
    assert reqs(elder(status=ElderStatus.DECEASED)) == []
    assert reqs(elder(status=ElderStatus.EXITED)) == []
    r = reqs(elder(status=ElderStatus.IN_HOSPITAL, age=90, disability_level=DisabilityLevel.SEVERE))
    assert in_home(r) == 0 and effective_required(r) >= 1


# ---------------------------------------------------------- 四.(二) signed stations


def test_4_2_signed_care_station_elders_get_no_government_purchased_visits_but_stay_tracked():
    for kw in (dict(signed_care_station=True), dict(signed_home_care_bed=True)):
        f = elder(age=90, categories=frozenset({Category.LIVING_ALONE}), **kw)
        r = reqs(f)
        assert r and all(x.by == "care_station" for x in r)
        assert effective_required(r) >= 1  # tracked: the station must visit
        assert routing_visits([f], WEEK, RULES) == []  # no steward visit planned
    assert routing_visits([elder(age=90, categories=frozenset({Category.LIVING_ALONE}))], WEEK, RULES)


# ------------------------------------------------------------ calendar events


def test_5_1_cold_wave_raises_required_visits_of_that_week_for_the_affected_elders_only():
    cold = Event(EventKind.EXTREME_WEATHER, "寒潮预警", date(2026, 12, 14), date(2026, 12, 16), street_id=1)
    last = date(2026, 12, 11)
    reg = [elder(1, age=85, categories=frozenset({Category.LIVING_ALONE}), last_visit_on=last),
           elder(2, age=72, last_visit_on=last),
           elder(3, street_id=2, street="乙街道", age=85, categories=frozenset({Category.LIVING_ALONE}),
                 last_visit_on=last),
           elder(4, willing=False, last_visit_on=date(2026, 12, 1))]
    base = weekly_requirements(reg, "2026-W51", RULES).groupby("elder_id")["count"].sum()
    with_ev = weekly_requirements(reg, "2026-W51", RULES, [cold]).groupby("elder_id")["count"].sum()
    # +3 daily contacts for each affected willing elder, +1 in-home for the risky one
    assert with_ev[1] - base[1] == 4 and with_ev[2] - base[2] == 3
    assert with_ev.get(3, 0) == base.get(3, 0) and with_ev.get(4, 0) == base.get(4, 0)
    # other weeks are not touched
    pd.testing.assert_frame_equal(weekly_requirements(reg, "2026-W50", RULES, [cold]),
                                  weekly_requirements(reg, "2026-W50", RULES))
    ev_rows = weekly_requirements(reg, "2026-W51", RULES, [cold])
    assert set(ev_rows.loc[ev_rows.elder_id == 1, "event_days"].iloc[0]) == {
        date(2026, 12, 14), date(2026, 12, 15), date(2026, 12, 16)}
    # the extra in-home visit reaches the planner
    (v,) = [x for x in routing_visits(reg, "2026-W51", RULES, [cold]) if x["id"] == "1"]
    (v0,) = [x for x in routing_visits(reg, "2026-W51", RULES) if x["id"] == "1"]
    assert v["count"] == v0["count"] + 1


def test_5_1_traditional_holiday_adds_a_contact_and_events_import(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("kind,name,starts_on,ends_on,street\n传统节假日,元旦,2027-01-01,2027-01-01,\n"
                 "极端天气,高温,2026-07-01,2026-07-03,甲街道\n", encoding="utf-8")
    evs = load_events(p)
    assert [e.kind for e in evs] == [EventKind.HOLIDAY, EventKind.EXTREME_WEATHER]
    f = elder(last_visit_on=date(2026, 12, 25))
    assert effective_required(reqs(f, "2026-W53", evs)) == effective_required(reqs(f, "2026-W53")) + 1
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,name,starts_on,ends_on\n台风,x,2026-07-01,2026-07-03\n", encoding="utf-8")
    with pytest.raises(ValidationError) as ei:
        load_events(bad)
    assert ei.value.field == "kind" and ei.value.row == 2 and "事件类型" in ei.value.message_zh


# -------------------------------------------------------------- 五.2 referrals


def _need_visit(**kw):
    return visit(needs="需要助餐服务", **kw)


@pytest.mark.parametrize("facts,target", [
    (dict(welfare_status=WelfareStatus.TEKUN), ReferralTarget.STREET_OF_RESIDENCE),
    (dict(categories=frozenset({Category.FAMILY_PLANNING_SPECIAL})), ReferralTarget.STREET_OF_RESIDENCE),
    (dict(welfare_status=WelfareStatus.DIBAO), ReferralTarget.FIRST_CONTACT),
    (dict(categories=frozenset({Category.LIVING_ALONE})), ReferralTarget.FIRST_CONTACT),
], ids=["tekun", "family_planning_special", "dibao", "living_alone"])
def test_5_2_needs_are_referred_by_the_documents_rules(facts, target):
    (r,) = referrals_from_visit(_need_visit(), elder(**facts), RULES, now=NOW, first_contact_name="王小明",
                                community_name="甲社区")
    assert r.target == target and not r.emergency
    assert r.target_name == ("甲街道" if target == ReferralTarget.STREET_OF_RESIDENCE else "王小明")
    assert (r.deadline - NOW).days == RULES.referral_deadline_days


def test_5_2_danger_to_life_contacts_first_contact_and_community_at_once_and_escalates():
    rs = referrals_from_visit(visit(emergency=True), elder(), RULES, now=NOW, first_contact_name="王小明",
                              community_name="甲社区")
    assert {r.target for r in rs} == {ReferralTarget.FIRST_CONTACT, ReferralTarget.COMMUNITY}
    assert all(r.emergency and (r.deadline - NOW).total_seconds() == 60 * RULES.emergency_ack_minutes for r in rs)
    df = pd.DataFrame([dict(id=i, emergency=r.emergency, status="open", deadline=r.deadline)
                       for i, r in enumerate(rs)] + [dict(id=9, emergency=True, status="acknowledged",
                                                          deadline=rs[0].deadline)])
    assert referrals_to_escalate(df, NOW).empty
    late = referrals_to_escalate(df, NOW.replace(hour=13))
    assert sorted(late["id"]) == [0, 1]


# ---------------------------------------------------------- 四.1 hazards


def test_4_1_unsafe_and_fairly_safe_answers_open_hazards_with_deadline_and_owner():
    hs = hazards_from_visit(visit(gas_safety="不安全", electricity_safety="较安全"), RULES)
    by = {h.kind: h for h in hs}
    assert set(by) == {HazardKind.GAS, HazardKind.ELECTRICITY}
    assert by[HazardKind.GAS].severity == Severity.HIGH
    assert (by[HazardKind.GAS].deadline - date(2026, 12, 2)).days == RULES.hazard_deadline_days["unsafe"]
    assert by[HazardKind.GAS].deadline < by[HazardKind.ELECTRICITY].deadline
    assert "燃气" in by[HazardKind.GAS].owner_unit
    assert hazards_from_visit(visit(), RULES) == []


# ------------------------------------------------- 三.2 / 四.2 device and health lists


def test_3_2_one_key_terminals_for_80_plus_and_family_planning_special_and_4_2_smoke_alarms():
    reg = [elder(1, age=81), elder(2, age=70, categories=frozenset({Category.FAMILY_PLANNING_SPECIAL})),
           elder(3, age=70), elder(4, age=90, devices=frozenset({DeviceKind.EMERGENCY_TERMINAL,
                                                                 DeviceKind.SMOKE_ALARM}))]
    wl = device_worklist(reg, RULES, date(2026, 12, 1))
    term = set(wl.loc[wl.device == "emergency_terminal", "elder_id"])
    smoke = set(wl.loc[wl.device == "smoke_alarm", "elder_id"])
    assert term == {1, 2} and smoke == {1, 2, 3}


def test_3_2_family_doctor_contract_health_work_list():
    reg = [elder(1, family_doctor_signed=False, wants_family_doctor=True),
           elder(2, family_doctor_signed=True, wants_family_doctor=True),
           elder(3, family_doctor_signed=None, wants_family_doctor=False)]
    assert health_worklist(reg, RULES)["elder_id"].tolist() == [1]


# ---------------------------------------------------------------- visit records


def test_visit_record_section_5_every_field_validated():
    v = visit(gps=[116.3, 39.98], gps_time="2026-12-02T10:01:00", started_at="2026-12-02T10:00",
              ended_at="2026-12-02T10:40", visitor_signature="李四", elder_signature="张三",
              recorder_signature="李四", family_change="增加", family_change_count=1,
              care_services=[{"kind": "助餐", "satisfaction": "满意"}])
    assert v.answers["family_change"] == "increased" and v.minutes == 40 and v.gps == (116.3, 39.98)
    assert v.care_services[0].satisfaction.label == "满意" and not v.late_entry
    with pytest.raises(ValidationError) as ei:
        parse_visit(dict(elder_id=1, visited_on="2026-12-02", mode="上门探访", visitor_role="探访管家"),
                    RULES, now=NOW)
    assert ei.value.field == "family_change" and "第五部分" in ei.value.message_zh
    with pytest.raises(ValidationError) as ei:
        visit(gas_safety="还行")
    assert ei.value.field == "gas_safety"
    with pytest.raises(ValidationError) as ei:
        visit(gps=[39.98, 116.3], gps_time="2026-12-02T10:00")
    assert ei.value.code == "swapped_lonlat"
    with pytest.raises(ValidationError) as ei:
        visit(gps=[116.3, 39.98])
    assert ei.value.field == "gps_time"
    with pytest.raises(ValidationError):
        visit(visited_on="2026-12-09")


def test_visit_late_entry_of_paper_records_is_allowed_and_marked():
    v = parse_visit(dict(elder_id=1, visited_on="2026-11-20", mode="上门探访", visitor_role="社工",
                         **IN_HOME_ANSWERS), RULES, now=NOW)
    assert v.late_entry and v.effective


@pytest.mark.parametrize("role", ["探访管家", "服务管家", "志愿者", "社工", "物业人员", "家庭医生", "邻里亲属"])
def test_3_2_other_service_forces_count_and_are_credited(role):
    v = parse_visit(dict(elder_id=1, visited_on="2026-12-01", mode="电话问候", visitor_role=role,
                         visitor_name="某人", **PHONE_ANSWERS), RULES, now=NOW)
    assert v.effective and v.visitor_name == "某人" and v.visitor_role.label == role


# ----------------------------------------------------------------- rules as data


def test_rules_file_validated_on_load_with_the_key_named(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text("risk:\n  weights:\n    age_80_plus: many\n", encoding="utf-8")
    with pytest.raises(ValidationError) as ei:
        load_rules(p)
    assert ei.value.field == "risk.weights.age_80_plus"
    assert "risk.weights.age_80_plus" in ei.value.message_en and "规则项" in ei.value.message_zh
    p.write_text("weekly_min_willing: 0\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="weekly_min_willing"):
        load_rules(p)
    p.write_text("effective_modes: [phone, carrier_pigeon]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="effective_modes"):
        load_rules(p)
    p.write_text("weekly_visits: 2\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="weekly_visits"):
        load_rules(p)
    # a district file may change one key
    p.write_text("risk:\n  min_age: 75\n", encoding="utf-8")
    r = load_rules(p)
    assert r.min_age == 75 and r.weekly_min_willing == 1
    assert in_home(elder_requirements(elder(age=77, categories=frozenset({Category.LIVING_ALONE})), WEEK, r)) \
        > in_home(reqs(elder(age=77, categories=frozenset({Category.LIVING_ALONE}))))


def test_responsibility_list_of_annex_1_1_has_its_20_rows():
    rows = load_responsibilities()
    assert [r["number"] for r in rows] == list(range(1, 21))
    assert rows[17]["unit"] == "区消防救援局" and "烟感" in rows[17]["task"]
    assert all(r["unit"] and r["task"] for r in rows)


def test_requirement_deadlines_within_week_or_month_and_overdue_sooner():
    f = elder(last_visit_on=date(2026, 11, 16), age=85, categories=frozenset({Category.LIVING_ALONE}))
    r = reqs(f)
    assert all(x.deadline <= date(2026, 12, 6) for x in r)
    assert "overdue" in r[0].reasons and r[0].deadline == date(2026, 11, 30) + timedelta(days=RULES.overdue_deadline_days)
    # visited last Friday: not overdue, due by Sunday
    assert reqs(replace(f, last_visit_on=RECENT))[0].deadline == date(2026, 12, 6)
