"""The visit requirement engine: which visits each elder needs in an ISO week.

Pure domain code: it takes :class:`~gridmap.rules.facts.ElderFacts`, calendar
:class:`~gridmap.rules.facts.Event` objects and :class:`~gridmap.rules.config.Rules`
and returns :class:`Requirement` rows (or a DataFrame of them). The planner
consumes :func:`routing_visits`, the visit fields of its JSON contract.

The rules of the programme document, as coded here:

* 五.1 every elder in the programme has at least ``monthly_min`` effective
  visit(s) each calendar month;
* 五.1 an elder who accepts visits has at least ``weekly_min_willing``
  effective visit(s) each week; higher risk (80+, 独居, 失能重度, 重残, open
  hazards, a worse health or safety answer at the last visit, no recent
  visit …) turns it into more, in-home, visits (``in_home_per_week``);
* 五.1 extreme weather and traditional holidays add visits for the days and
  elders of the event;
* 五.1 分散供养特困 elders get daily care follow-up;
* 四.(二) elders signed with a care station or home care bed are visited by the
  station (``by="care_station"``), no government-purchased visits, but tracked;
* elders who refuse visits are tracked for the monthly contact only.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from gridmap._errors import ValidationError
from gridmap.domain.enums import Category, DisabilityLevel, WelfareStatus
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.facts import HEALTH_ANSWERS, SAFETY_ANSWERS, SAFETY_HAZARD_KIND, ElderFacts, Event

#: Chinese labels of the reason codes of a requirement.
REASON_LABELS: dict[str, str] = {
    "monthly_min": "每月有效探访不少于1次",
    "weekly_min": "有意愿老人每周有效探访不少于1次",
    "age_80_plus": "80周岁及以上",
    "living_alone": "独居",
    "empty_nest": "空巢",
    "disabled_severe": "失能（重度）",
    "disabled_moderate": "失能（中度）",
    "severely_handicapped": "重残",
    "family_planning_special": "计划生育特殊家庭",
    "open_hazard": "存在未整改隐患",
    "worse_last_visit": "上次探访健康状况较差",
    "unsafe_last_visit": "上次探访安全情况不安全",
    "no_recent_visit": "近期未探访",
    "no_first_contact": "无第一联系人",
    "overdue": "探访逾期",
    "refused": "不愿接受探访，仅每月联系",
    "signed_station": "已签约驿站或家庭养老照护床位，由签约机构探访",
    "in_hospital": "住院，远程探访",
    "dispersed_tekun": "分散供养特困，日常看护",
    "event": "特殊时间节点增加探访",
}

MODE_IN_HOME = "in_home"
MODE_REMOTE = "remote"


@dataclass(frozen=True)
class Requirement:
    """Visits one elder needs in one week, of one kind and mode.

    ``kind`` is ``visit`` (探访, counts towards the visit rates) or ``daily_care``
    (分散供养特困 日常看护); ``by`` is ``steward`` (government-purchased) or
    ``care_station`` (the signed station visits, 四.(二)).
    """

    elder_id: int
    week: str
    count: int
    mode: str
    deadline: date
    priority: int
    reasons: tuple[str, ...]
    kind: str = "visit"
    by: str = "steward"
    event_days: tuple[date, ...] = field(default=())


# ------------------------------------------------------------------ weeks


def parse_week(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week ``YYYY-Www`` (e.g. ``2026-W49``).

    Raises
    ------
    ValidationError
        When ``week`` is not an ISO week.
    """
    text = str(week).strip().upper()
    try:
        year_s, w_s = text.split("-W")
        monday = date.fromisocalendar(int(year_s), int(w_s), 1)
    except ValueError:
        raise ValidationError(
            "expected an ISO week like 2026-W49", "周次格式应为 2026-W49",
            field="week", value=week, code="week",
        ) from None
    return monday, monday + timedelta(days=6)


def week_of(day: date) -> str:
    """The ISO week ``YYYY-Www`` containing ``day``."""
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def month_end(day: date) -> date:
    """Last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


# ------------------------------------------------------------------ risk


def risk_factors(facts: ElderFacts, monday: date, rules: Rules) -> list[str]:
    """The risk factors of an elder at the start of a week (codes of ``risk.weights``)."""
    out: list[str] = []
    age = facts.age_on(monday)
    if age is not None and age >= rules.min_age:
        out.append("age_80_plus")
    cats = facts.categories
    if Category.LIVING_ALONE in cats:
        out.append("living_alone")
    if Category.EMPTY_NEST in cats:
        out.append("empty_nest")
    if facts.disability_level == DisabilityLevel.SEVERE:
        out.append("disabled_severe")
    elif facts.disability_level == DisabilityLevel.MODERATE:
        out.append("disabled_moderate")
    if Category.SEVERELY_HANDICAPPED in cats:
        out.append("severely_handicapped")
    if Category.FAMILY_PLANNING_SPECIAL in cats:
        out.append("family_planning_special")
    if facts.open_hazards > 0:
        out.append("open_hazard")
    ans = facts.last_answers or {}
    if any(str(ans.get(k)) in ("worse", "serious") for k in HEALTH_ANSWERS):
        out.append("worse_last_visit")
    # an unsafe answer counts while the hazard it opened is not settled (fixed, unfixable, transferred)
    if any(str(ans.get(k)) in ("unsafe", "fairly_safe") and SAFETY_HAZARD_KIND[k] not in facts.settled_hazard_kinds
           for k in SAFETY_ANSWERS):
        out.append("unsafe_last_visit")
    if facts.last_visit_on is None or (monday - facts.last_visit_on).days > rules.no_visit_days:
        out.append("no_recent_visit")
    if not facts.has_first_contact:
        out.append("no_first_contact")
    return out


def risk_score(factors: Iterable[str], rules: Rules) -> int:
    """Sum of the weights of ``factors``."""
    return sum(rules.weights.get(f, 0) for f in factors)


def _affects(event: Event, facts: ElderFacts, monday: date, score: int) -> bool:
    if event.street_id is not None and facts.street_id != event.street_id:
        return False
    if event.street is not None and facts.street != event.street:
        return False
    p = event.params or {}
    if p.get("categories"):
        wanted = {Category.from_label(c) for c in p["categories"]}
        if not (wanted & set(facts.categories)):
            return False
    if p.get("min_age") is not None:
        age = facts.age_on(monday)
        if age is None or age < int(p["min_age"]):
            return False
    if p.get("min_score") is not None and score < int(p["min_score"]):
        return False
    return True


def service_minutes(factors: Iterable[str], rules: Rules) -> int:
    """Minutes planned for one in-home visit: the base plus the extras of the factors."""
    sm = rules.service_minutes
    return sm.get("base", 30) + sum(sm.get(f, 0) for f in set(factors))


# ------------------------------------------------------------------ engine


def elder_requirements(
    facts: ElderFacts,
    week: str,
    rules: Rules | None = None,
    events: Sequence[Event] = (),
) -> list[Requirement]:
    """The visits one elder needs in ``week`` (empty when not in the programme).

    Parameters
    ----------
    facts
        What is known about the elder at the start of the week; ``last_visit_on``
        is the last effective visit before the week's Monday.
    week
        ISO week ``YYYY-Www``.
    rules
        The rules (default: :func:`~gridmap.rules.config.load_rules`).
    events
        Calendar events; those overlapping the week and affecting the elder add visits.
    """
    rules = rules or load_rules()
    monday, sunday = parse_week(week)
    if facts.status not in rules.programme_statuses:
        return []
    factors = risk_factors(facts, monday, rules)
    score = risk_score(factors, rules)
    priority = rules.priority(score)
    by = rules.signed_visited_by if facts.signed else "steward"
    due = monday + timedelta(days=rules.deadline_weekday - 1)
    remote_only = facts.status in rules.remote_only_statuses
    out: list[Requirement] = []

    # 五.1 monthly minimum: months of this week without an effective visit yet
    months = sorted({monday.replace(day=1), sunday.replace(day=1)})
    open_months = [m for m in months if facts.last_visit_on is None or facts.last_visit_on < m]
    monthly_due = [month_end(m) for m in open_months]

    if facts.willing:
        in_home = 0 if remote_only else rules.in_home_count(score)
        remote = max(0, rules.weekly_min_willing - in_home)
        reasons = ["weekly_min"] + [f for f in factors if rules.weights.get(f, 0) > 0]
        deadline = due
        overdue = facts.last_visit_on is None or (monday - facts.last_visit_on).days >= 7
        if overdue and facts.last_visit_on is not None:
            reasons.append("overdue")
            priority = max(priority, min(5, priority + 1))
            deadline = monday + timedelta(days=rules.overdue_deadline_days)
        if monthly_due and min(monthly_due) <= sunday:
            reasons.append("monthly_min")
            deadline = min(deadline, min(monthly_due))
        if remote_only:
            reasons.append("in_hospital")
        if by == "care_station":
            reasons.append("signed_station")
        ev_remote, ev_in_home, ev_deadline, ev_days = 0, 0, None, set()
        for ev in events:
            n = ev.days_in(monday, sunday)
            if n == 0 or not _affects(ev, facts, monday, score):
                continue
            er = rules.events[ev.kind]
            p = ev.params or {}
            per_day = int(p.get("remote_per_day", er.remote_per_day))
            ev_remote += n * per_day + int(p.get("extra_remote", er.extra_remote))
            if not remote_only and score >= int(p.get("in_home_min_score", er.in_home_min_score)):
                ev_in_home += int(p.get("extra_in_home", er.extra_in_home))
            end = min(ev.ends_on, sunday)
            ev_deadline = end if ev_deadline is None else max(ev_deadline, end)
            ev_days.update(monday + timedelta(days=i) for i in range(7)
                           if ev.starts_on <= monday + timedelta(days=i) <= ev.ends_on)
        if ev_remote or ev_in_home:
            reasons.append("event")
            priority = min(5, priority + 1)
        in_home = min(7, in_home + ev_in_home)  # at most one in-home visit a day
        remote += ev_remote
        evd = tuple(sorted(ev_days))
        if in_home:
            out.append(Requirement(facts.id, week, in_home, MODE_IN_HOME, deadline, priority,
                                   tuple(reasons), "visit", by, evd))
        if remote:
            out.append(Requirement(facts.id, week, remote, MODE_REMOTE, deadline, priority,
                                   tuple(reasons), "visit", by, evd))
    elif open_months:
        # refuses visits: the monthly contact only
        deadline = min(monthly_due)
        pr = 3 if deadline <= sunday else 1
        mode = MODE_REMOTE if (remote_only or rules.refused_mode == "remote") else MODE_IN_HOME
        reasons = ("monthly_min", "refused") + (("signed_station",) if by == "care_station" else ())
        out.append(Requirement(facts.id, week, rules.monthly_min, mode, deadline, pr, reasons,
                               "visit", by))

    # 五.1 分散供养特困: daily care follow-up
    if facts.dispersed_support and facts.welfare_status == WelfareStatus.TEKUN \
            and rules.tekun_daily_checks > 0:
        mode = MODE_REMOTE if (remote_only or rules.tekun_mode == "remote") else MODE_IN_HOME
        out.append(Requirement(facts.id, week, rules.tekun_daily_checks, mode, sunday,
                               max(priority, 3), ("dispersed_tekun",), "daily_care", "steward"))
    return out


def weekly_requirements(
    facts: Iterable[ElderFacts] | pd.DataFrame,
    week: str,
    rules: Rules | None = None,
    events: Sequence[Event] = (),
) -> pd.DataFrame:
    """Requirements of every elder for ``week`` as a DataFrame.

    Columns: elder_id, week, count, mode (in_home/remote), deadline, priority
    (1–5), reasons (list of codes, see :data:`REASON_LABELS`), kind (visit /
    daily_care), by (steward / care_station), event_days.
    """
    from gridmap.rules.facts import facts_from_frame

    rules = rules or load_rules()
    if isinstance(facts, pd.DataFrame):
        facts = facts_from_frame(facts)
    rows = []
    for f in facts:
        for r in elder_requirements(f, week, rules, events):
            d = asdict(r)
            d["reasons"] = list(r.reasons)
            d["event_days"] = list(r.event_days)
            rows.append(d)
    cols = ["elder_id", "week", "count", "mode", "deadline", "priority", "reasons", "kind", "by",
            "event_days"]
    return pd.DataFrame(rows, columns=cols)


def min_gap_days(count: int, rules: Rules) -> int:
    """Days between in-home visits of one elder in a week (routing contract ``min_gap_days``)."""
    if count <= 1:
        return 1
    return max(1, min(rules.max_gap_days, 4 // (count - 1)))


def routing_visits(
    facts: Iterable[ElderFacts],
    week: str,
    rules: Rules | None = None,
    events: Sequence[Event] = (),
) -> list[dict[str, Any]]:
    """The in-home visits stewards must plan in ``week``: the visit fields of the routing contract.

    Only government-purchased (``by == "steward"``) in-home visits are listed;
    each entry has ``id`` (the elder id as text), ``count``, ``min_gap_days``,
    ``days`` (the ISO dates of the week), ``priority`` (1–5),
    ``service_minutes``, ``deadline``, ``reasons``, and when known
    ``location`` ([lon, lat]) and ``steward`` (the visit steward id as text).
    """
    rules = rules or load_rules()
    monday, _ = parse_week(week)
    days = [(monday + timedelta(days=i)).isoformat() for i in range(7)]
    out = []
    for f in facts:
        reqs = [r for r in elder_requirements(f, week, rules, events)
                if r.mode == MODE_IN_HOME and r.by == "steward" and r.count > 0]
        if not reqs:
            continue
        count = min(7, sum(r.count for r in reqs))
        factors = risk_factors(f, monday, rules)
        entry: dict[str, Any] = {
            "id": str(f.id),
            "count": count,
            "min_gap_days": min_gap_days(count, rules),
            "days": days,
            "priority": max(r.priority for r in reqs),
            "service_minutes": service_minutes(factors, rules),
            "deadline": min(r.deadline for r in reqs).isoformat(),
            "reasons": sorted({x for r in reqs for x in r.reasons}),
        }
        if f.lon is not None and f.lat is not None:
            entry["location"] = [f.lon, f.lat]
        if f.steward_id is not None:
            entry["steward"] = str(f.steward_id)
        out.append(entry)
    return out


def effective_required(reqs: Iterable[Requirement]) -> int:
    """Effective visits (kind ``visit``, any mode) the requirements ask for."""
    return sum(r.count for r in reqs if r.kind == "visit")


__all__ = [
    "REASON_LABELS",
    "Requirement",
    "effective_required",
    "elder_requirements",
    "min_gap_days",
    "month_end",
    "parse_week",
    "risk_factors",
    "risk_score",
    "routing_visits",
    "service_minutes",
    "week_of",
    "weekly_requirements",
]
