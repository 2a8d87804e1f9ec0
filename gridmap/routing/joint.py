"""Joint weekly plans: one community's visit steward, service stewards and other credited visitors planned together.

A visit of a joint problem names the stewards allowed to make it and the preferred one (continuity: the
elder's own visit steward; :class:`gridmap.routing.problem.Visit` ``allowed``/``preferred``).
:func:`solve_joint` first gives every such visit to one allowed steward with CP-SAT — whoever has time
nearby, the preferred steward unless their week is full — then plans the routes with
:func:`gridmap.routing.solver.solve` on that assignment. ``gridmap plan check`` verifies that every visit
on a route went to an allowed steward (violation ``allowed_steward``).

Load of a visit for a steward (seconds per week, estimate): ``count × (service + round trip from the
steward's start / VISITS_PER_TRIP)``; a steward's week is ``max_work_seconds`` × its working days.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from gridmap.routing.problem import Problem
from gridmap.routing.territory import VISITS_PER_TRIP, straight_minutes

__all__ = ["CONTINUITY_COST", "assign_joint", "solve_joint"]

#: Minutes of estimated load a visit must save to go to another steward than the preferred one.
CONTINUITY_COST = 30


def _seconds(problem: Problem, a: int, b: int) -> float:
    if problem.seconds is not None:
        return float(problem.seconds[a][b])
    if problem.points:
        pa, pb = problem.points[a], problem.points[b]
        return 60.0 * straight_minutes((pa[0], pa[1]), (pb[0], pb[1]))
    return 0.0


def assign_joint(problem: Problem, *, time_limit: float = 5.0) -> tuple[Problem, dict[str, str]]:
    """A copy of ``problem`` where every joint visit is fixed to one allowed steward, and that assignment.

    Minimises overload (minutes above a steward's week) first, then visits away from their preferred
    steward (:data:`CONTINUITY_COST` each), then estimated travel.
    """
    from ortools.sat.python import cp_model

    joint = [v for v in problem.visits if v.allowed]
    if not joint:
        return problem, {}
    by_id = {s.id: s for s in problem.stewards}
    cap = {s.id: s.max_work_seconds * max(1, len(s.days)) // 60 for s in problem.stewards}
    fixed = {s.id: 0 for s in problem.stewards}
    for v in problem.visits:
        if not v.allowed and v.steward in fixed:
            fixed[v.steward] += v.count * (v.service_seconds + 2 * _seconds(problem, by_id[v.steward].start,
                                                                            v.location) / VISITS_PER_TRIP) // 60
    m = cp_model.CpModel()
    x: dict[tuple[str, str], Any] = {}
    cost: dict[tuple[str, str], int] = {}
    for v in joint:
        for s in v.allowed:
            x[v.id, s] = m.new_bool_var(f"x[{v.id},{s}]")
            cost[v.id, s] = int(math.ceil(v.count * (v.service_seconds + 2 * _seconds(problem, by_id[s].start,
                                                                                     v.location) / VISITS_PER_TRIP)
                                          / 60))
        m.add_exactly_one(x[v.id, s] for s in v.allowed)
        m.add_hint(x[v.id, v.preferred or v.allowed[0]], 1)
    over = []
    for s in by_id:
        terms = [cost[k] * var for k, var in x.items() if k[1] == s]
        o = m.new_int_var(0, 10**7, f"over[{s}]")
        m.add(o >= sum(terms) + int(fixed[s]) - int(cap[s]))
        over.append(o)
    away = [var for (vid, s), var in x.items() if s != next(v for v in joint if v.id == vid).preferred]
    m.minimize(1000 * sum(over) + CONTINUITY_COST * sum(away) + sum(cost[k] * var for k, var in x.items()))
    sv = cp_model.CpSolver()
    sv.parameters.max_time_in_seconds = float(time_limit)
    sv.parameters.num_search_workers = 1
    r = sv.solve(m)
    chosen: dict[str, str] = {}
    for v in joint:
        if r in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            chosen[v.id] = next(s for s in v.allowed if sv.value(x[v.id, s]))
        else:
            chosen[v.id] = v.preferred or v.allowed[0]
    visits = [dataclasses.replace(v, steward=chosen[v.id]) if v.id in chosen else v for v in problem.visits]
    return dataclasses.replace(problem, visits=visits), chosen


def solve_joint(problem: Problem, **kwargs: Any) -> Any:
    """Assign the joint visits (:func:`assign_joint`), then plan the routes (:func:`gridmap.routing.solver.solve`)."""
    from gridmap.routing.solver import solve

    fixed, _ = assign_joint(problem)
    return solve(fixed, **kwargs)
