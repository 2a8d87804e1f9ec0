"""The life-cycles as pure functions: every transition, the rules they take from the YAML, escalation once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    HazardKind,
    HazardStatus,
    ReferralStatus,
    ReferralTarget,
    Satisfaction,
    Severity,
    WelfareStatus,
)
from gridmap.followups import lifecycle as lc
from gridmap.rules.config import load_rules

RULES = load_rules()
AT = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
OPENED = date(2026, 12, 1)
H = HazardStatus
R = ReferralStatus

# the life-cycle of the issue, written out independently of the module's tables
HAZARD_ALLOWED = {
    (H.OPEN, H.IN_PROGRESS), (H.OPEN, H.FIXED), (H.OPEN, H.CANNOT_FIX), (H.OPEN, H.TRANSFERRED),
    (H.IN_PROGRESS, H.FIXED), (H.IN_PROGRESS, H.CANNOT_FIX), (H.IN_PROGRESS, H.TRANSFERRED),
}
REFERRAL_ALLOWED = {
    (R.OPEN, R.ACKNOWLEDGED), (R.OPEN, R.IN_PROGRESS), (R.OPEN, R.CLOSED),
    (R.ACKNOWLEDGED, R.IN_PROGRESS), (R.ACKNOWLEDGED, R.CLOSED), (R.IN_PROGRESS, R.CLOSED),
}


def _hazard(status: HazardStatus) -> lc.HazardState:
    closed = OPENED + timedelta(days=1) if status.terminal else None
    return lc.HazardState(status=status, opened_on=OPENED, deadline=OPENED + timedelta(days=3), closed_on=closed,
                          severity=Severity.HIGH)


@pytest.mark.parametrize("frm", list(HazardStatus))
@pytest.mark.parametrize("to", list(HazardStatus))
def test_every_hazard_transition_is_allowed_or_refused_as_the_issue_says(frm: HazardStatus, to: HazardStatus) -> None:
    state = _hazard(frm)
    kw = dict(by="u1", at=AT, note="n", photo_ref="p.jpg", reason="老人拒绝", owner="燃气公司")
    if (frm, to) in HAZARD_ALLOWED:
        new, ev = lc.hazard_transition(state, to, **kw)
        assert new.status == to
        assert (new.closed_on is not None) == to.terminal  # closed_on set iff terminal
        assert (ev.from_status, ev.to_status, ev.by, ev.note, ev.photo_ref) == (frm.value, to.value, "u1", "n", "p.jpg")
        if to == H.CANNOT_FIX:
            assert new.status_reason == "老人拒绝"
        if to == H.TRANSFERRED:
            assert new.transferred_to == "燃气公司"  # default: the owner unit
    else:
        with pytest.raises(lc.TransitionError) as ei:
            lc.hazard_transition(state, to, **kw)
        assert "不能改为" in ei.value.message_zh and "cannot be set" in ei.value.message_en


def test_cannot_fix_needs_a_reason_and_transfer_a_unit() -> None:
    with pytest.raises(lc.TransitionError, match="原因"):
        lc.hazard_transition(_hazard(H.OPEN), "cannot_fix", by="u", at=AT)
    with pytest.raises(lc.TransitionError, match="移交单位"):
        lc.hazard_transition(_hazard(H.OPEN), "transferred", by="u", at=AT)
    new, _ = lc.hazard_transition(_hazard(H.OPEN), "已移交", by="u", at=AT, transferred_to="区房管局")
    assert new.transferred_to == "区房管局" and new.closed_on == AT.date()


def test_a_status_is_read_from_the_code_or_the_chinese_label_and_an_unknown_one_refused_in_both_languages() -> None:
    assert lc.parse_hazard_status("整改中") is H.IN_PROGRESS and lc.parse_hazard_status("fixed") is H.FIXED
    assert lc.parse_referral_status("已受理") is R.ACKNOWLEDGED
    with pytest.raises(ValidationError) as ei:
        lc.parse_hazard_status("done")
    assert "未知的隐患状态" in ei.value.message_zh and "unknown hazard status" in ei.value.message_en
    assert [s.label for s in H] == ["待处理", "整改中", "已整改", "无法整改", "已移交"]
    assert [s.label for s in R] == ["待受理", "已受理", "处理中", "已办结"]


@pytest.mark.parametrize("frm", [H.FIXED, H.CANNOT_FIX])
def test_a_later_finding_reopens_a_fixed_or_unfixable_hazard(frm: HazardStatus) -> None:
    state = _hazard(frm)
    found = date(2026, 12, 20)
    new, ev = lc.reopen_hazard(state, by="visit", at=AT, found_on=found, rules=RULES, severity=Severity.MEDIUM)
    assert new.status == H.OPEN and new.closed_on is None and new.reopened_count == 1
    assert new.severity == Severity.HIGH  # the worse of the two findings
    assert new.deadline == found + timedelta(days=RULES.hazard_due_days[Severity.HIGH])
    assert (ev.from_status, ev.to_status) == (frm.value, "open")


@pytest.mark.parametrize("existing, action", [(None, "open"), (H.OPEN, "skip"), (H.IN_PROGRESS, "skip"),
                                              (H.FIXED, "reopen"), (H.CANNOT_FIX, "reopen"), (H.TRANSFERRED, "open")])
def test_what_a_new_finding_does(existing: HazardStatus | None, action: str) -> None:
    assert lc.finding_action(existing) == action
    if existing is not None and action != "reopen":
        with pytest.raises(lc.TransitionError):
            lc.reopen_hazard(_hazard(existing), by="v", at=AT, found_on=OPENED, rules=RULES)


def _referral(status: ReferralStatus, emergency: bool = False) -> lc.ReferralState:
    opened = AT - timedelta(hours=5)
    return lc.ReferralState(status=status, opened_at=opened, deadline=opened + timedelta(minutes=30),
                            acknowledged_at=opened if status != R.OPEN else None,
                            in_progress_at=opened if status in (R.IN_PROGRESS, R.CLOSED) else None,
                            closed_at=opened if status == R.CLOSED else None, emergency=emergency)


@pytest.mark.parametrize("frm", list(ReferralStatus))
@pytest.mark.parametrize("to", list(ReferralStatus))
def test_every_referral_transition_is_allowed_or_refused_as_the_issue_says(frm: ReferralStatus,
                                                                         to: ReferralStatus) -> None:
    state = _referral(frm)
    if (frm, to) in REFERRAL_ALLOWED:
        sat = "基本满意" if to == R.CLOSED else None
        new, ev = lc.referral_transition(state, to, by="recv", at=AT, outcome="已对接", satisfaction=sat)
        assert new.status == to and (ev.from_status, ev.to_status) == (frm.value, to.value)
        assert new.acknowledged_at is not None  # a skipped step is stamped too
        assert (new.closed_at is not None) == (to == R.CLOSED)
        if to == R.CLOSED:
            assert new.satisfaction is Satisfaction.NEUTRAL and new.resolved is True and new.outcome == "已对接"
            assert new.in_progress_at is not None
    else:
        with pytest.raises(lc.TransitionError):
            lc.referral_transition(state, to, by="recv", at=AT)


def test_satisfaction_is_given_at_closing_only_and_only_the_three_answers() -> None:
    with pytest.raises(lc.TransitionError, match="满意度"):
        lc.referral_transition(_referral(R.OPEN), "acknowledged", by="u", at=AT, satisfaction="满意")
    with pytest.raises(ValidationError, match="满意"):
        lc.referral_transition(_referral(R.ACKNOWLEDGED), "closed", by="u", at=AT, satisfaction="很好")
    new, _ = lc.referral_transition(_referral(R.ACKNOWLEDGED), "已办结", by="u", at=AT, satisfaction="不满意",
                                    resolved=False)
    assert new.satisfaction is Satisfaction.DISSATISFIED and new.resolved is False


def test_an_emergency_is_escalated_once_and_only_when_unacknowledged_past_its_deadline() -> None:
    s = _referral(R.OPEN, emergency=True)
    assert lc.needs_escalation(s, AT)
    assert not lc.needs_escalation(s, s.deadline - timedelta(seconds=1))  # type: ignore[operator]
    new, ev = lc.escalate(s, by="scheduler", at=AT, to="甲街道")
    assert new.status == R.OPEN and new.escalated_at == AT and "甲街道" in (ev.note or "")
    assert not lc.needs_escalation(new, AT + timedelta(days=1))  # once
    with pytest.raises(lc.TransitionError):
        lc.escalate(new, by="scheduler", at=AT)
    assert not lc.needs_escalation(_referral(R.ACKNOWLEDGED, emergency=True), AT)
    assert not lc.needs_escalation(_referral(R.OPEN, emergency=False), AT)


# ------------------------------------------------------------------ rules from the YAML


@pytest.mark.parametrize("kind", list(HazardKind))
def test_owner_unit_by_kind_comes_from_the_rules(kind: HazardKind) -> None:
    import yaml

    from gridmap.rules.config import DEFAULT_RULES_PATH

    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert lc.owner_unit(RULES, kind) == raw["hazards"]["owner_units"][kind.value]


def test_due_dates_by_severity_and_referral_deadlines_follow_a_district_file(tmp_path) -> None:
    f = tmp_path / "district.yaml"
    f.write_text("hazards:\n  due_days:\n    high: 5\nreferrals:\n  emergency_ack_minutes: 10\n  ack_hours: 48\n"
                 "jobs:\n  every_seconds: 2\n", encoding="utf-8")
    rules = load_rules(f)
    assert lc.hazard_due(rules, Severity.HIGH, OPENED) == OPENED + timedelta(days=5)
    assert lc.hazard_due(rules, Severity.LOW, OPENED) == OPENED + timedelta(days=RULES.hazard_due_days[Severity.LOW])
    assert lc.referral_deadline(rules, AT, emergency=True) == AT + timedelta(minutes=10)
    assert lc.referral_deadline(rules, AT, emergency=False) == AT + timedelta(days=rules.referral_deadline_days)
    assert lc.acknowledge_due(rules, AT, emergency=False) == AT + timedelta(hours=48)
    assert rules.jobs_every_seconds == 2
    # the old keys still work
    assert rules.hazard_deadline_days == RULES.hazard_deadline_days and rules.owner_units == RULES.owner_units


def test_a_bad_follow_up_rule_is_refused_naming_the_key() -> None:
    with pytest.raises(ValidationError) as ei:
        load_rules(overrides={"hazards": {"due_days": {"high": -1}}})
    assert "hazards.due_days.high" in ei.value.message_en
    with pytest.raises(ValidationError, match="notifications.gateway"):
        load_rules(overrides={"notifications": {"gateway": "smtp"}})


def test_the_rules_file_of_the_environment_is_used_when_none_is_given(tmp_path, monkeypatch) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("jobs:\n  every_seconds: 3\n", encoding="utf-8")
    monkeypatch.setenv("GRIDMAP_RULES", str(f))
    assert load_rules().jobs_every_seconds == 3


@given(welfare=st.sampled_from([None, *WelfareStatus]),
       cats=st.sets(st.sampled_from(list(Category))),
       need=st.sampled_from([None, "助餐", "需要康复护理", "想办老年卡", "修水管"]),
       fc=st.booleans(), ss=st.booleans())
@example(welfare=WelfareStatus.TEKUN, cats=set(), need="助餐", fc=True, ss=True)
@example(welfare=None, cats={Category.FAMILY_PLANNING_SPECIAL}, need="助餐", fc=True, ss=True)
@example(welfare=None, cats=set(), need="助餐", fc=True, ss=True)
@example(welfare=None, cats=set(), need="助餐", fc=True, ss=False)
@example(welfare=None, cats=set(), need="想办老年卡", fc=False, ss=True)
def test_the_receiver_follows_the_document(welfare, cats, need, fc, ss) -> None:
    got = lc.referral_receiver(RULES, welfare_status=welfare, categories=cats, need=need, has_first_contact=fc,
                               has_service_steward=ss)
    care = need is not None and any(w in need for w in ("助餐", "康复", "护理"))
    if welfare == WelfareStatus.TEKUN or Category.FAMILY_PLANNING_SPECIAL in cats:
        assert got is ReferralTarget.STREET_OF_RESIDENCE  # 转介至经常居住地街镇
    elif care and ss:
        assert got is ReferralTarget.SERVICE_STEWARD
    elif fc:
        assert got is ReferralTarget.FIRST_CONTACT  # 及时告知第一联系人
    else:
        assert got is ReferralTarget.COMMUNITY
