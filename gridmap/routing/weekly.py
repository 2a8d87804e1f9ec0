"""Build each steward's weekly planning problem (JSON contract) from the register and the visit rules.

Who plans which visit (kept simple, documented):

* the week's **in-home** visits of :func:`gridmap.rules.requirements.routing_visits`
  (government-purchased, ``by == "steward"``: weekly visits, risk extras, the
  monthly minimum of refusers when done in person, 分散供养特困 daily care when
  in person) are planned by the elder's **visit steward** (探访管家,
  ``Elder.visit_steward_id``);
* when an elder has no (active) visit steward, its **service steward** (服务管家,
  ``Elder.service_steward_id``) plans them instead, so that 服务管家 get a
  problem only for such elders;
* remote visits (phone/video) and visits by signed care stations are not routed.

Nothing is dropped silently: an elder that cannot enter any problem (no home
location, no steward, a steward without base or working days in the week) is
listed in :attr:`WeeklyProblems.not_plannable` with a reason code of
:data:`NOT_PLANNABLE` (outside the contract's unassigned reasons, which are
about a solved problem).

Each visit's allowed days are the steward's working days up to the
requirement's deadline (e.g. an overdue elder by Wednesday) when that still
leaves a spacing pattern for its count, else all working days of the week.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gridmap.domain.enums import StewardKind
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.facts import Event
from gridmap.rules.requirements import parse_week, routing_visits
from gridmap.rules.store import read_facts
from gridmap.store.models import Steward

#: Reasons an elder with required in-home visits is not in any problem (Chinese labels).
NOT_PLANNABLE: dict[str, str] = {
    "no_location": "无住址坐标，无法规划路线",
    "no_steward": "未分配探访管家或服务管家",
    "steward_no_base": "管家无出发点（驿站/基地）坐标",
    "steward_no_days": "管家本周无工作日",
}
#: Contract fields of a visit (``routing_visits`` adds ``deadline`` and ``reasons``, kept in the meta).
_VISIT_FIELDS = ("id", "location", "count", "min_gap_days", "days", "priority", "service_minutes", "steward")


@dataclass
class StewardProblem:
    """One steward's weekly problem.

    Attributes
    ----------
    steward_id, code, name, kind
        The steward (``kind``: ``visit`` 探访管家 or ``service`` 服务管家).
    week
        ISO week ``YYYY-Www``.
    problem
        The problem dict in the JSON contract (one steward; visits fixed to it).
    meta
        ``visit id -> {"elder_id", "reasons", "deadline", "count"}`` (what to check on the visit).
    """

    steward_id: int
    code: str
    name: str
    kind: str
    week: str
    problem: dict[str, Any]
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Required visit occurrences of the problem."""
        total = 0
        for v in self.problem.get("visits") or []:
            c = v.get("count", 1) if isinstance(v, dict) else 1
            total += c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 1
        return total


@dataclass
class WeeklyProblems:
    """The steward problems of a week and the elders that could not enter any."""

    week: str
    problems: list[StewardProblem]
    not_plannable: list[dict[str, Any]] = field(default_factory=list)


def _hhmm(t: Any) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def _has_pattern(n_days: int, dates: Sequence[date], count: int, gap: int) -> bool:
    for combo in itertools.combinations(range(n_days), count):
        if all((dates[b] - dates[a]).days >= gap for a, b in itertools.pairwise(combo)):
            return True
    return False


def _visit_days(work: list[date], deadline: date | None, count: int, gap: int) -> list[date]:
    if deadline is not None:
        early = [d for d in work if d <= deadline]
        if len(early) >= count and _has_pattern(len(early), early, count, gap):
            return early
    return work


def _work_days(work_days: Sequence[int] | None, monday: date) -> list[date]:
    return [monday + timedelta(days=int(d) - 1) for d in sorted(set(work_days or [])) if 1 <= int(d) <= 7]


def steward_problem(steward: Any, visits: Sequence[dict[str, Any]], week: str
                    ) -> tuple[StewardProblem, list[tuple[dict[str, Any], int]]]:
    """One steward's problem from its record and its entries of :func:`~gridmap.rules.requirements.routing_visits`.

    Parameters
    ----------
    steward
        An object with the :class:`~gridmap.store.models.Steward` attributes ``id, code, name,
        kind, base`` (a point), ``work_days, shift_start, shift_end, max_work_minutes, travel_mode``.
    visits
        Its visits (each with a ``location``).
    week
        ISO week.

    Returns
    -------
    (StewardProblem, short)
        ``short``: ``(visit, occurrences)`` that exceed the steward's working days in the week.
    """
    monday, _ = parse_week(week)
    st = steward
    work = _work_days(st.work_days, monday)
    base = [round(float(st.base.x), 7), round(float(st.base.y), 7)]
    pvisits, meta, short = [], {}, []
    for v in sorted(visits, key=lambda v: int(v["id"])):
        deadline = date.fromisoformat(v["deadline"]) if v.get("deadline") else None
        count = min(int(v["count"]), len(work))
        days = _visit_days(work, deadline, count, int(v["min_gap_days"]))
        entry = {k: v[k] for k in _VISIT_FIELDS if k in v}
        entry["location"] = [round(float(x), 7) for x in v["location"]]
        entry["count"] = count
        entry["days"] = [d.isoformat() for d in days]
        entry["steward"] = st.code
        pvisits.append(entry)
        meta[v["id"]] = {"elder_id": int(v["id"]), "reasons": list(v.get("reasons", [])),
                         "deadline": v.get("deadline"), "count": int(v["count"])}
        if count < int(v["count"]):
            short.append((v, int(v["count"]) - count))
    problem = {
        "days": [d.isoformat() for d in work],
        "stewards": [{"id": st.code, "start": base, "end": base,
                      "shift": [_hhmm(st.shift_start), _hhmm(st.shift_end)],
                      "max_work_minutes": int(st.max_work_minutes),
                      "mode": getattr(st.travel_mode, "value", st.travel_mode)}],
        "visits": pvisits,
    }
    kind = getattr(st.kind, "value", st.kind)
    return StewardProblem(int(st.id), st.code, st.name, str(kind), week, problem, meta), short


def weekly_problems(
    engine: Engine,
    week: str,
    *,
    street: str | None = None,
    rules: Rules | None = None,
    events: Sequence[Event] | None = None,
) -> WeeklyProblems:
    """Every steward's problem for ``week``, and the elders that cannot be planned.

    Parameters
    ----------
    engine
        Database of the register.
    week
        ISO week ``YYYY-Www``.
    street
        Only elders whose usual residence is in this street (name).
    rules
        Visit rules (default :func:`gridmap.rules.config.load_rules`).
    events
        Calendar events (default: those stored for the week).

    Returns
    -------
    WeeklyProblems
    """
    rules = rules or load_rules()
    monday, sunday = parse_week(week)
    if events is None:
        from gridmap.rules.store import read_events

        events = read_events(engine, monday, sunday)
    facts = read_facts(engine, monday, street=street, rules=rules)
    by_id = {f.id: f for f in facts}
    visits = routing_visits(facts, week, rules, events)
    with engine.connect() as conn:
        rows = conn.execute(select(Steward.id, Steward.code, Steward.name, Steward.kind, Steward.base,
                                   Steward.work_days, Steward.shift_start, Steward.shift_end,
                                   Steward.max_work_minutes, Steward.travel_mode, Steward.active)).all()
    stewards = {r.id: r for r in rows if r.active}

    grouped: dict[int, list[dict[str, Any]]] = {}
    not_plannable: list[dict[str, Any]] = []

    def lost(v: dict[str, Any], reason: str, steward: Any = None) -> None:
        not_plannable.append({"elder_id": int(v["id"]), "visit": v["id"], "occurrences": int(v["count"]),
                              "priority": int(v["priority"]), "reason": reason, "label": NOT_PLANNABLE[reason],
                              "steward": steward.code if steward is not None else None,
                              "street": by_id[int(v["id"])].street})

    for v in visits:
        f = by_id[int(v["id"])]
        sid = f.steward_id if f.steward_id in stewards else (
            f.service_steward_id if f.service_steward_id in stewards else None)
        if sid is None:
            lost(v, "no_steward")
        elif "location" not in v:
            lost(v, "no_location", stewards[sid])
        else:
            grouped.setdefault(sid, []).append(v)

    problems: list[StewardProblem] = []
    for sid in sorted(grouped, key=lambda s: stewards[s].code):
        st = stewards[sid]
        if st.base is None or not _work_days(st.work_days, monday):
            for v in grouped[sid]:
                lost(v, "steward_no_base" if st.base is None else "steward_no_days", st)
            continue
        sp, short = steward_problem(st, grouped[sid], week)
        for v, n in short:  # more in-home visits than working days: the rest is not plannable
            not_plannable.append({"elder_id": int(v["id"]), "visit": v["id"], "occurrences": n,
                                  "priority": int(v["priority"]), "reason": "steward_no_days",
                                  "label": NOT_PLANNABLE["steward_no_days"], "steward": st.code,
                                  "street": by_id[int(v["id"])].street})
        problems.append(sp)
    return WeeklyProblems(week, problems, not_plannable)


def steward_problems(
    engine: Engine,
    week: str,
    *,
    street: str | None = None,
    rules: Rules | None = None,
    events: Sequence[Event] | None = None,
) -> list[StewardProblem]:
    """The problem of every steward with required in-home visits in ``week``.

    Same as :func:`weekly_problems` without the list of elders that could not be
    planned (use :func:`weekly_problems` to report those).
    """
    return weekly_problems(engine, week, street=street, rules=rules, events=events).problems


def joint_problem(problems: Sequence[StewardProblem], extra: Sequence[StewardProblem] = ()) -> dict[str, Any]:
    """One joint problem of several stewards (issue 19): every visit may be made by any of them, its own
    steward preferred (continuity): ``steward`` becomes ``{"allowed": [...], "preferred": own}``.

    ``problems``: the stewards' weekly problems (:func:`steward_problem`); ``extra``: stewards without visits
    of their own who may help (e.g. the community's 服务管家), as problems with no visits.
    """
    all_ = [*problems, *extra]
    if not all_:
        return {"days": [], "stewards": [], "visits": []}
    codes = [p.code for p in all_]
    days = sorted({d for p in all_ for d in p.problem["days"]})
    visits = []
    for p in problems:
        for v in p.problem["visits"]:
            visits.append({**v, "days": v.get("days") or p.problem["days"],
                           "steward": {"allowed": codes, "preferred": p.code}})
    stewards = []
    for p in all_:
        st = dict(p.problem["stewards"][0])
        st["days"] = list(p.problem["days"])  # each steward works its own days of the joint week
        stewards.append(st)
    return {"days": days, "stewards": stewards, "visits": visits}


def community_joint_problem(engine: Engine, week: str, community: str, *, rules: Rules | None = None
                            ) -> dict[str, Any]:
    """The joint problem of one community (code): its 探访管家 and the 服务管家 of its elders planned together."""
    from gridmap.store.models import Community, Elder

    with engine.connect() as conn:
        row = conn.execute(select(Community.id, Community.street_id).where(Community.code == community)).first()
        if row is None:
            from gridmap._errors import ValidationError

            raise ValidationError(f"no community with code {community!r}", f"未找到社区编码“{community}”",
                                  field="community", value=community, code="unknown_community")
        visit = set(conn.execute(select(Steward.id).where(Steward.community_id == row.id, Steward.active.is_(True),
                                                          Steward.kind == StewardKind.VISIT)).scalars())
        service = set(conn.execute(select(Elder.service_steward_id).where(
            Elder.community_id == row.id, Elder.service_steward_id.is_not(None))).scalars())
        from gridmap.store.models import Street

        street = conn.execute(select(Street.name).where(Street.id == row.street_id)).scalar()
        rows = conn.execute(select(Steward.id, Steward.code, Steward.name, Steward.kind, Steward.base,
                                   Steward.work_days, Steward.shift_start, Steward.shift_end,
                                   Steward.max_work_minutes, Steward.travel_mode, Steward.active)
                            .where(Steward.id.in_(visit | service))).all()
    wp = weekly_problems(engine, week, street=street, rules=rules)
    mine = [p for p in wp.problems if p.steward_id in visit | service]
    have = {p.steward_id for p in mine}
    monday, _ = parse_week(week)
    extra = [steward_problem(r, [], week)[0] for r in sorted(rows, key=lambda r: r.code)
             if r.id not in have and r.active and r.base is not None and _work_days(r.work_days, monday)]
    return joint_problem(mine, extra)


__all__ = ["NOT_PLANNABLE", "StewardProblem", "WeeklyProblems", "community_joint_problem", "joint_problem",
           "steward_problem", "steward_problems", "weekly_problems"]
