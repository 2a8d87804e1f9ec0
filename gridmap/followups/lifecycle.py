"""The life-cycles of hazards and referrals as pure functions (no database).

Hazards (四.(四)1 化解风险隐患)::

    待处理 open ──► 整改中 in_progress ──► 已整改 fixed
         │                 │            ├► 无法整改 cannot_fix (with a reason)
         └─────────────────┴──────────► └► 已移交 transferred (to a unit)

A later visit that finds the same kind of hazard again reopens a fixed or unfixable one
(:func:`reopen_hazard`: back to open, ``reopened_count`` + 1) instead of opening a second.

Referrals (五.2 转介、对接)::

    待受理 open ──► 已受理 acknowledged ──► 处理中 in_progress ──► 已办结 closed

A step may be skipped forwards (a receiver that closes at once has acknowledged too; the
skipped time stamps are set to the same moment). Escalation is a flag, not a state: an
emergency not acknowledged by its deadline is escalated once (:func:`needs_escalation`).

Each transition returns the new state and the event to store (who, when, from, to, note,
photo reference); a transition the table does not allow raises :class:`TransitionError`
(Chinese and English) and changes nothing. Owner units, due dates, receivers and deadlines
come from the rules (:class:`gridmap.rules.config.Rules`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

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
from gridmap.rules.config import Rules

H = HazardStatus
R = ReferralStatus

#: Hazard states a person may set from each state (reopening is :func:`reopen_hazard`, by a visit).
HAZARD_TRANSITIONS: dict[HazardStatus, frozenset[HazardStatus]] = {
    H.OPEN: frozenset({H.IN_PROGRESS, H.FIXED, H.CANNOT_FIX, H.TRANSFERRED}),
    H.IN_PROGRESS: frozenset({H.FIXED, H.CANNOT_FIX, H.TRANSFERRED}),
    H.FIXED: frozenset(),
    H.CANNOT_FIX: frozenset(),
    H.TRANSFERRED: frozenset(),
}
#: Terminal hazard states a later finding of the same kind reopens.
REOPENABLE: frozenset[HazardStatus] = frozenset({H.FIXED, H.CANNOT_FIX})
#: Hazard states that still count (open counts, extra in-home visits).
ACTIVE_HAZARD: frozenset[HazardStatus] = frozenset({H.OPEN, H.IN_PROGRESS})

#: Referral states a receiver may set from each state.
REFERRAL_TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    R.OPEN: frozenset({R.ACKNOWLEDGED, R.IN_PROGRESS, R.CLOSED}),
    R.ACKNOWLEDGED: frozenset({R.IN_PROGRESS, R.CLOSED}),
    R.IN_PROGRESS: frozenset({R.CLOSED}),
    R.CLOSED: frozenset(),
}

#: The three answers of a return visit or call (满意/基本满意/不满意) and the codes they are stored as.
SATISFACTION_ANSWERS: dict[str, Satisfaction] = {
    "满意": Satisfaction.SATISFIED, "基本满意": Satisfaction.NEUTRAL, "不满意": Satisfaction.DISSATISFIED,
}


class TransitionError(ValidationError):
    """A state change the life-cycle does not allow (or lacks what it needs); nothing was changed."""


@dataclass(frozen=True)
class FollowupEvent:
    """One change of state, as stored in ``hazard_event`` / ``referral_event``."""

    at: datetime
    by: str
    from_status: str | None
    to_status: str
    note: str | None = None
    photo_ref: str | None = None


@dataclass(frozen=True)
class HazardState:
    """What the life-cycle of a hazard changes."""

    status: HazardStatus
    opened_on: date
    deadline: date | None = None
    closed_on: date | None = None
    status_reason: str | None = None
    transferred_to: str | None = None
    reopened_count: int = 0
    severity: Severity = Severity.MEDIUM


@dataclass(frozen=True)
class ReferralState:
    """What the life-cycle of a referral changes."""

    status: ReferralStatus
    opened_at: datetime
    deadline: datetime | None = None
    acknowledged_at: datetime | None = None
    in_progress_at: datetime | None = None
    closed_at: datetime | None = None
    escalated_at: datetime | None = None
    outcome: str | None = None
    satisfaction: Satisfaction | None = None
    resolved: bool | None = None
    emergency: bool = False


def _refuse(kind: str, kind_zh: str, frm: str, frm_zh: str, to: str, to_zh: str,
            allowed: frozenset[HazardStatus] | frozenset[ReferralStatus]) -> TransitionError:
    ok_en = ", ".join(sorted(a.value for a in allowed)) or "none (a final state)"
    ok_zh = "、".join(a.label for a in sorted(allowed, key=lambda a: a.value)) or "无（已是终结状态）"
    return TransitionError(
        f"a {kind} in state {frm} cannot be set to {to}; allowed: {ok_en}",
        f"{kind_zh}当前为“{frm_zh}”，不能改为“{to_zh}”；可改为：{ok_zh}",
        field="status", value=to, code="invalid_transition")


def parse_hazard_status(text: str | HazardStatus) -> HazardStatus:
    """A hazard status from its code or Chinese label (bilingual error otherwise)."""
    try:
        return HazardStatus(HazardStatus.from_label(str(text)))
    except ValueError:
        raise ValidationError(
            f"unknown hazard status {text!r}; one of: " + ", ".join(s.value for s in HazardStatus),
            f"未知的隐患状态“{text}”；应为：" + "、".join(s.label for s in HazardStatus),
            field="status", value=text, code="unknown_status") from None


def parse_referral_status(text: str | ReferralStatus) -> ReferralStatus:
    """A referral status from its code or Chinese label (bilingual error otherwise)."""
    try:
        return ReferralStatus(ReferralStatus.from_label(str(text)))
    except ValueError:
        raise ValidationError(
            f"unknown referral status {text!r}; one of: " + ", ".join(s.value for s in ReferralStatus),
            f"未知的转介状态“{text}”；应为：" + "、".join(s.label for s in ReferralStatus),
            field="status", value=text, code="unknown_status") from None


def parse_satisfaction(text: str | Satisfaction | None) -> Satisfaction | None:
    """满意 / 基本满意 / 不满意 (or a Satisfaction code) → the stored code; None stays None."""
    if text is None or str(text).strip() == "":
        return None
    t = str(text).strip()
    if t in SATISFACTION_ANSWERS:
        return SATISFACTION_ANSWERS[t]
    try:
        return Satisfaction(Satisfaction.from_label(t))
    except ValueError:
        raise ValidationError(
            f"unknown satisfaction {t!r}; one of: 满意, 基本满意, 不满意",
            f"未知的满意度“{t}”；应为：满意、基本满意、不满意",
            field="satisfaction", value=t, code="unknown_satisfaction") from None


# ------------------------------------------------------------------ hazards: rules


def owner_unit(rules: Rules, kind: HazardKind) -> str:
    """The unit responsible for fixing a hazard of this kind (rules ``hazards.owner_units``)."""
    return rules.owner_units[HazardKind(kind)]


def hazard_due(rules: Rules, severity: Severity, found_on: date) -> date:
    """The date by which a hazard of this severity found on ``found_on`` is to be fixed (``hazards.due_days``)."""
    return found_on + timedelta(days=rules.hazard_due_days[Severity(severity)])


# ------------------------------------------------------------------ hazards: transitions


def hazard_transition(
    state: HazardState,
    to: HazardStatus | str,
    *,
    by: str,
    at: datetime,
    on: date | None = None,
    note: str | None = None,
    photo_ref: str | None = None,
    reason: str | None = None,
    transferred_to: str | None = None,
    owner: str | None = None,
) -> tuple[HazardState, FollowupEvent]:
    """Move a hazard to ``to`` as a person does (CLI, dashboard, joint inspection).

    ``cannot_fix`` needs a ``reason`` (or a note, taken as the reason); ``transferred`` goes to
    ``transferred_to`` (default: the ``owner`` unit). A terminal state sets ``closed_on`` to
    ``on`` (default: the date of ``at``).

    Raises
    ------
    TransitionError
        When the table :data:`HAZARD_TRANSITIONS` does not allow it, or a reason or unit is missing.
    """
    target = parse_hazard_status(to)
    if target not in HAZARD_TRANSITIONS[state.status]:
        raise _refuse("hazard", "隐患", state.status.value, state.status.label, target.value, target.label,
                      HAZARD_TRANSITIONS[state.status])
    day = on or at.date()
    new = replace(state, status=target)
    if target == H.CANNOT_FIX:
        why = (reason or note or "").strip()
        if not why:
            raise TransitionError("a hazard that cannot be fixed needs a reason (--reason)",
                                  "标记“无法整改”须说明原因（--reason）", field="reason", code="reason_required")
        new = replace(new, status_reason=why)
    if target == H.TRANSFERRED:
        unit = (transferred_to or owner or "").strip()
        if not unit:
            raise TransitionError("a transferred hazard needs the unit it goes to (--to)",
                                  "标记“已移交”须写明移交单位（--to）", field="transferred_to", code="unit_required")
        new = replace(new, transferred_to=unit)
    if target.terminal:
        new = replace(new, closed_on=max(day, state.opened_on))
    return new, FollowupEvent(at, by, state.status.value, target.value, note, photo_ref)


def reopen_hazard(state: HazardState, *, by: str, at: datetime, found_on: date, rules: Rules,
                  severity: Severity | None = None, note: str | None = None) -> tuple[HazardState, FollowupEvent]:
    """A later visit found the same problem again: a fixed or unfixable hazard is open again.

    ``reopened_count`` + 1, the closing date and reason cleared, a new due date from the
    severity (the worse of the old and the new finding).

    Raises
    ------
    TransitionError
        When the hazard is not fixed or unfixable (an open one is not reopened, a transferred one
        belongs to another unit: a new hazard is opened instead).
    """
    if state.status not in REOPENABLE:
        raise _refuse("hazard", "隐患", state.status.value, state.status.label, H.OPEN.value, H.OPEN.label,
                      frozenset())
    order = list(Severity)
    sev = state.severity if severity is None else max(state.severity, Severity(severity), key=order.index)
    new = replace(state, status=H.OPEN, closed_on=None, status_reason=None, severity=sev,
                  reopened_count=state.reopened_count + 1, deadline=hazard_due(rules, sev, found_on))
    return new, FollowupEvent(at, by, state.status.value, H.OPEN.value,
                              note or f"再次发现，重新打开（{found_on.isoformat()}）", None)


def finding_action(existing: HazardStatus | None) -> str:
    """What a new finding of a kind does given the elder's latest hazard of that kind.

    ``"skip"`` (one is open or in progress: not duplicated), ``"reopen"`` (fixed or unfixable)
    or ``"open"`` (none, or transferred to another unit).
    """
    if existing is None:
        return "open"
    if existing in ACTIVE_HAZARD:
        return "skip"
    if existing in REOPENABLE:
        return "reopen"
    return "open"


# ------------------------------------------------------------------ referrals: rules


def is_care_need(rules: Rules, need: str | None) -> bool:
    """A need for care services (生活照料、康复护理、助餐…: rules ``referrals.care_need_words``)."""
    return bool(need) and any(w in str(need) for w in rules.care_need_words)


def referral_receiver(
    rules: Rules,
    *,
    welfare_status: WelfareStatus | None,
    categories: frozenset[Category] | set[Category],
    need: str | None,
    has_first_contact: bool,
    has_service_steward: bool,
) -> ReferralTarget:
    """Where a need goes (五.2): the street of usual residence for the elders the rules name
    (特困, 计划生育特殊家庭), the service steward for care needs, else the first contact, else the community."""
    if (welfare_status is not None and welfare_status in rules.to_street_welfare) or \
            (set(categories) & set(rules.to_street_categories)):
        return ReferralTarget.STREET_OF_RESIDENCE
    if has_service_steward and is_care_need(rules, need):
        return ReferralTarget.SERVICE_STEWARD
    if has_first_contact:
        return ReferralTarget.FIRST_CONTACT
    return ReferralTarget.COMMUNITY


def referral_deadline(rules: Rules, opened_at: datetime, *, emergency: bool) -> datetime:
    """Acknowledge-by for an emergency (``emergency_ack_minutes``), answer-by for a need (``deadline_days``)."""
    if emergency:
        return opened_at + timedelta(minutes=rules.emergency_ack_minutes)
    return opened_at + timedelta(days=rules.referral_deadline_days)


def acknowledge_due(rules: Rules, opened_at: datetime, *, emergency: bool) -> datetime:
    """By when a referral is to be acknowledged (已受理): the emergency window, else ``ack_hours``."""
    if emergency:
        return opened_at + timedelta(minutes=rules.emergency_ack_minutes)
    return opened_at + timedelta(hours=rules.referral_ack_hours)


# ------------------------------------------------------------------ referrals: transitions


def referral_transition(
    state: ReferralState,
    to: ReferralStatus | str,
    *,
    by: str,
    at: datetime,
    outcome: str | None = None,
    satisfaction: Satisfaction | str | None = None,
    resolved: bool = True,
    note: str | None = None,
) -> tuple[ReferralState, FollowupEvent]:
    """Move a referral to ``to`` (a receiver acknowledges, works on, closes it).

    Skipped steps get the same time stamp. Closing stores the outcome, whether the need was
    resolved (default true) and the satisfaction of the return visit or call (满意/基本满意/不满意);
    a satisfaction given before closing is refused.

    Raises
    ------
    TransitionError
        When :data:`REFERRAL_TRANSITIONS` does not allow it.
    """
    target = parse_referral_status(to)
    if target not in REFERRAL_TRANSITIONS[state.status]:
        raise _refuse("referral", "转介", state.status.value, state.status.label, target.value, target.label,
                      REFERRAL_TRANSITIONS[state.status])
    sat = parse_satisfaction(satisfaction)
    if sat is not None and target != R.CLOSED:
        raise TransitionError("satisfaction is given when a referral is closed (已办结)",
                              "满意度在转介办结（已办结）时填写", field="satisfaction", code="satisfaction_too_early")
    at = max(at, state.opened_at)
    new = replace(state, status=target)
    if new.acknowledged_at is None:
        new = replace(new, acknowledged_at=at)
    if target in (R.IN_PROGRESS, R.CLOSED) and new.in_progress_at is None:
        new = replace(new, in_progress_at=at)
    if target == R.CLOSED:
        new = replace(new, closed_at=at, outcome=outcome if outcome is not None else state.outcome,
                      satisfaction=sat, resolved=bool(resolved))
    return new, FollowupEvent(at, by, state.status.value, target.value, note or outcome, None)


def needs_escalation(state: ReferralState, now: datetime) -> bool:
    """An emergency not acknowledged by its deadline and not escalated yet (escalated once only)."""
    return (state.emergency and state.status == R.OPEN and state.escalated_at is None
            and state.deadline is not None and state.deadline < now)


def escalate(state: ReferralState, *, by: str, at: datetime, to: str | None = None) -> tuple[ReferralState, FollowupEvent]:
    """Flag an emergency as escalated (status unchanged); the event says to whom it went.

    Raises
    ------
    TransitionError
        When it does not need escalation (acknowledged, not an emergency, or escalated already).
    """
    if not needs_escalation(state, at):
        raise TransitionError("this referral does not need escalation (not an unacknowledged emergency "
                              "past its deadline, or escalated already)",
                              "该转介无需升级（非逾期未受理的紧急情况，或已升级）", field="escalated_at",
                              code="no_escalation")
    note = f"紧急情况未在时限内受理，已升级{('至' + to) if to else ''}"
    return replace(state, escalated_at=at), FollowupEvent(at, by, state.status.value, state.status.value, note)


__all__ = [
    "ACTIVE_HAZARD", "HAZARD_TRANSITIONS", "REFERRAL_TRANSITIONS", "REOPENABLE", "SATISFACTION_ANSWERS",
    "FollowupEvent", "HazardState", "ReferralState", "TransitionError", "acknowledge_due", "escalate",
    "finding_action", "hazard_due", "hazard_transition", "is_care_need", "needs_escalation", "owner_unit",
    "parse_hazard_status", "parse_referral_status", "parse_satisfaction", "referral_deadline",
    "referral_receiver", "referral_transition", "reopen_hazard",
]
