"""What follows from a visit: hazards, referrals, emergency escalation, device and health work lists.

Pure domain functions (no database):

* :func:`hazards_from_visit` — 四.(四)/四.1: an unsafe or fairly safe answer on gas,
  water heating or electricity opens a hazard with a deadline and an owner unit;
* :func:`referrals_from_visit` — 五.2: needs of 特困 and 计划生育特殊家庭 elders go to
  the street of usual residence, those of others to the first contact; a danger to
  life goes at once to the first contact (or family) and the community;
* :func:`referrals_to_escalate` — emergencies not acknowledged within the deadline;
* :func:`device_worklist` — 三.2 one-key terminals for 80+ and 计生特殊 elders,
  四.2 networked smoke alarms for every elder;
* :func:`health_worklist` — 三.2 family doctor contracts for elders who want one.

These two are quick checks on :class:`ElderFacts` alone. The work lists by the document in full
(本区户籍 for one-key terminals, 消防“四件套”, the 民政 home-safety products, each device's state and
installer, alarms) are :mod:`gridmap.devices` (``gridmap devices worklist``); the family-doctor hand-over
to the nearest health centre is :func:`gridmap.care.domain.doctor_handover` (``gridmap doctors list``).
Issue 17 part B: the family-doctor list of the demo was empty because the demo never stored
``wants_family_doctor`` (家庭医生签约意愿); it does now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from gridmap.domain.enums import (
    Category,
    DeviceKind,
    HazardKind,
    ReferralStatus,
    ReferralTarget,
    Severity,
)
from gridmap.followups.lifecycle import referral_deadline, referral_receiver
from gridmap.rules.config import Rules
from gridmap.rules.facts import ElderFacts
from gridmap.rules.visits import ANSWER_LABELS, VisitRecord

if TYPE_CHECKING:
    import pandas as pd

_SAFETY_KIND = {
    "gas_safety": HazardKind.GAS,
    "water_heating_safety": HazardKind.WATER_HEATING,
    "electricity_safety": HazardKind.ELECTRICITY,
}


@dataclass(frozen=True)
class HazardSpec:
    """A hazard to open: kind, severity, owner unit, dates."""

    kind: HazardKind
    severity: Severity
    owner_unit: str
    opened_on: date
    deadline: date
    description: str


@dataclass(frozen=True)
class ReferralSpec:
    """A referral to send: the need, where it goes, whether it is an emergency, and its deadline."""

    need: str
    target: ReferralTarget
    target_name: str | None
    emergency: bool
    deadline: datetime


def hazards_from_visit(record: VisitRecord, rules: Rules) -> list[HazardSpec]:
    """Hazards opened by the safety answers of a visit (one per unsafe or fairly safe answer)."""
    out = []
    for key, kind in (rules.answer_hazards or _SAFETY_KIND).items():  # issue 17: housing, drinking water too
        answer = record.answers.get(key)
        if answer not in ("unsafe", "fairly_safe"):
            continue
        label = "不安全" if answer == "unsafe" else "较安全"
        out.append(HazardSpec(
            kind=kind,
            severity=rules.hazard_severity[answer],
            owner_unit=rules.owner_units[kind],
            opened_on=record.visited_on,
            deadline=record.visited_on + timedelta(days=rules.hazard_deadline_days[answer]),
            description=f"{ANSWER_LABELS[key]}：{label}（{record.visited_on.isoformat()} 探访发现）",
        ))
    return out


def referral_target(facts: ElderFacts, rules: Rules | None = None, need: str | None = None) -> ReferralTarget:
    """五.2: street of residence for 特困 and 计划生育特殊家庭 elders (rules ``referrals.to_street``), the
    service steward for care needs (``referrals.care_need_words``), else the first contact, else the community."""
    if rules is None:
        from gridmap.rules.config import load_rules

        rules = load_rules()
    return referral_receiver(rules, welfare_status=facts.welfare_status, categories=facts.categories, need=need,
                             has_first_contact=facts.has_first_contact,
                             has_service_steward=facts.service_steward_id is not None)


def referrals_from_visit(
    record: VisitRecord,
    facts: ElderFacts,
    rules: Rules,
    *,
    now: datetime,
    first_contact_name: str | None = None,
    community_name: str | None = None,
    service_steward_name: str | None = None,
) -> list[ReferralSpec]:
    """Referrals that follow from a visit's needs and emergencies.

    A need (``record.needs``) is routed by :func:`referral_target` (the service steward for a
    care need) with a deadline of ``referrals.deadline_days``. An emergency (a danger to life)
    goes to the first contact (or, without one, the community) and to the
    community at once, each to be acknowledged within ``emergency_ack_minutes``.
    """
    out: list[ReferralSpec] = []
    if record.needs:
        target = referral_target(facts, rules, record.needs)
        name = {ReferralTarget.STREET_OF_RESIDENCE: facts.street,
                ReferralTarget.FIRST_CONTACT: first_contact_name,
                ReferralTarget.SERVICE_STEWARD: service_steward_name,
                ReferralTarget.COMMUNITY: community_name}.get(target)
        out.append(ReferralSpec(record.needs, target, name, False,
                                referral_deadline(rules, now, emergency=False)))
    if record.emergency:
        due = referral_deadline(rules, now, emergency=True)
        need = "危及生命安全的突发情况：" + (record.needs or record.suggestions or "见探访记录")
        if facts.has_first_contact:
            out.append(ReferralSpec(need, ReferralTarget.FIRST_CONTACT, first_contact_name, True, due))
        out.append(ReferralSpec(need, ReferralTarget.COMMUNITY, community_name, True, due))
    return out


def referrals_to_escalate(referrals: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Emergency referrals still open (not acknowledged) after their deadline and not escalated yet.

    ``referrals`` has columns id, emergency, status, deadline (and escalated_at, if known).
    """
    import pandas as pd
    if referrals.empty:
        return referrals
    dl = pd.to_datetime(referrals["deadline"], utc=True)
    ts = pd.Timestamp(now)
    ts = ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
    mask = referrals["emergency"].astype(bool) & (referrals["status"].astype(str) == ReferralStatus.OPEN.value) \
        & (dl < ts)
    if "escalated_at" in referrals.columns:  # escalated once only
        mask &= referrals["escalated_at"].isna()
    return referrals[mask]


def device_worklist(facts: Iterable[ElderFacts], rules: Rules, on: date) -> pd.DataFrame:
    """Elders who need a device: one row per elder and device kind.

    三.2: a one-key terminal (一键式智能终端) for elders aged 80+ and 计划生育特殊家庭
    elders; 四.2: a networked smoke alarm (联网烟感报警器) for every elder in the programme.
    Columns: elder_id, device, device_label, reason, street, community_id, steward_id.
    """
    import pandas as pd
    rows = []
    for f in facts:
        if f.status not in rules.programme_statuses:
            continue
        age = f.age_on(on)
        if DeviceKind.EMERGENCY_TERMINAL not in f.devices:
            reasons = []
            if age is not None and age >= rules.min_age:
                reasons.append("80周岁及以上")
            if Category.FAMILY_PLANNING_SPECIAL in f.categories:
                reasons.append("计划生育特殊家庭")
            if reasons:
                rows.append((f.id, DeviceKind.EMERGENCY_TERMINAL.value, DeviceKind.EMERGENCY_TERMINAL.label,
                             "、".join(reasons), f.street, f.community_id, f.steward_id))
        if DeviceKind.SMOKE_ALARM not in f.devices:
            rows.append((f.id, DeviceKind.SMOKE_ALARM.value, DeviceKind.SMOKE_ALARM.label,
                         "特殊困难老年人配备联网烟感报警器", f.street, f.community_id, f.steward_id))
    return pd.DataFrame(rows, columns=["elder_id", "device", "device_label", "reason", "street",
                                       "community_id", "steward_id"])


def health_worklist(facts: Iterable[ElderFacts], rules: Rules) -> pd.DataFrame:
    """Elders without a family doctor contract (家庭医生签约) who want one."""
    import pandas as pd
    rows = [(f.id, f.street, f.community_id, f.steward_id) for f in facts
            if f.status in rules.programme_statuses and not f.family_doctor_signed
            and f.wants_family_doctor]
    return pd.DataFrame(rows, columns=["elder_id", "street", "community_id", "steward_id"])
