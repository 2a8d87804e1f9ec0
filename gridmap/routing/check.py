"""Independent checker of a plan against its problem: every constraint of the contract, violations listed bilingually.

It re-derives everything from the problem and the matrix (never from the
solver's internals): stewards and days, shift, time windows, service times,
travel times along the matrix, working minutes, capacity, occurrences,
allowed days, patterns and spacing, unassigned reasons, and the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmap.routing.matrix import ProblemMatrix, problem_matrix
from gridmap.routing.plan import FALLBACKS, REASONS, Plan
from gridmap.routing.problem import Problem, format_time

#: Tolerance on totals (seconds or metres), for plans written with rounding.
TOL = 1.0


@dataclass
class Violation:
    """One broken constraint."""

    code: str
    where: str
    message_en: str
    message_zh: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.where}: {self.message_zh} / {self.message_en}"


def check_plan(problem: Problem, plan: Plan, matrix: ProblemMatrix | None = None) -> list[Violation]:
    """Check every constraint of ``plan`` against ``problem``.

    Parameters
    ----------
    problem
        The parsed problem.
    plan
        The plan to check.
    matrix
        The travel matrix (default: :func:`gridmap.routing.matrix.problem_matrix`).

    Returns
    -------
    list of Violation
        Empty when the plan is valid.
    """
    pm = matrix if matrix is not None else problem_matrix(problem)
    out: list[Violation] = []

    def bad(code: str, where: str, en: str, zh: str) -> None:
        out.append(Violation(code, where, en, zh))

    stewards = {s.id: s for s in problem.stewards}
    visits = {v.id: v for v in problem.visits}
    day_idx = {d.isoformat(): i for i, d in enumerate(problem.days)}
    planned_days: dict[str, list[int]] = {v: [] for v in visits}
    seen_route: set[tuple[str, str]] = set()
    travel_total = dist_total = 0.0
    for ri, r in enumerate(plan.routes):
        w = f"routes[{ri}]"
        s = stewards.get(r.steward)
        if s is None:
            bad("steward", w, f"unknown steward {r.steward!r}", f"未知管家 {r.steward!r}")
            continue
        if r.day not in day_idx:
            bad("day", w, f"{r.day} is not a planning day", f"{r.day} 不是计划日期")
            continue
        d = day_idx[r.day]
        if d not in s.days:
            bad("steward_day", w, f"steward {s.id} does not work on {r.day}", f"管家 {s.id} 在 {r.day} 不上班")
        if (r.steward, r.day) in seen_route:
            bad("duplicate_route", w, f"second route for {s.id} on {r.day}", f"{s.id} 在 {r.day} 有两条路线")
        seen_route.add((r.steward, r.day))
        mode = pm.mode_of(s.mode)
        T, M = pm.seconds[mode], pm.metres[mode]
        t_free = s.shift[0]
        prev = s.start
        travel = dist = serv = load = 0.0
        on_route: set[str] = set()
        for si, st in enumerate(r.stops):
            ws = f"{w}.stops[{si}]"
            v = visits.get(st.visit)
            if v is None:
                bad("visit", ws, f"unknown visit {st.visit!r}", f"未知探访 {st.visit!r}")
                continue
            if st.visit in on_route:
                bad("repeat", ws, f"visit {v.id} twice on one route", f"探访 {v.id} 在同一路线出现两次")
            on_route.add(st.visit)
            if v.steward is not None and v.steward != s.id:
                bad("fixed_steward", ws, f"visit {v.id} belongs to steward {v.steward}", f"探访 {v.id} 须由管家 {v.steward} 承担")
            if v.allowed and s.id not in v.allowed:  # joint plan: one of the allowed stewards
                bad("allowed_steward", ws, f"visit {v.id} may be made by {', '.join(v.allowed)} only, not {s.id}",
                    f"探访 {v.id} 只能由管家 {'、'.join(v.allowed)} 承担，不能由 {s.id} 承担")
            leg = float(T[prev, v.location])
            if st.arrival + 1e-9 < t_free + leg:
                bad("travel", ws, f"arrival {format_time(st.arrival)} is earlier than possible "
                    f"({format_time(t_free + leg)})", f"到达时间 {format_time(st.arrival)} 早于可能的最早时间 {format_time(t_free + leg)}")
            if st.start < st.arrival:
                bad("start", ws, "service starts before arrival", "服务开始早于到达")
            if st.end != st.start + v.service_seconds:
                bad("service", ws, f"service lasts {st.end - st.start} s, required {v.service_seconds} s",
                    f"服务时长 {st.end - st.start} 秒，应为 {v.service_seconds} 秒")
            if st.start < s.shift[0]:
                bad("shift", ws, "service starts before the shift", "服务开始早于班次")
            if v.time_windows and not any(a <= st.start <= b for a, b in v.time_windows):
                bad("time_window", ws, f"start {format_time(st.start)} is outside the time windows",
                    f"开始时间 {format_time(st.start)} 不在时间窗内")
            travel += leg
            dist += float(M[prev, v.location])
            serv += v.service_seconds
            load += v.demand
            t_free = st.end
            prev = v.location
            planned_days[v.id].append(d)
        back = float(T[prev, s.end])
        travel += back
        dist += float(M[prev, s.end])
        if t_free + back > s.shift[1]:
            bad("shift", w, f"back at {format_time(t_free + back)}, after the shift ends {format_time(s.shift[1])}",
                f"返回时间 {format_time(t_free + back)} 晚于班次结束 {format_time(s.shift[1])}")
        if travel + serv > s.max_work_seconds + 1e-9:
            bad("work", w, f"{(travel + serv) / 60:.1f} working minutes exceed {s.max_work_seconds / 60:.0f}",
                f"工作 {(travel + serv) / 60:.1f} 分钟，超过上限 {s.max_work_seconds / 60:.0f} 分钟")
        if s.capacity is not None and load > s.capacity:
            bad("capacity", w, f"load {load:g} exceeds capacity {s.capacity}", f"负载 {load:g} 超过容量 {s.capacity}")
        if abs(travel - r.travel_seconds) > TOL:
            bad("total", w, f"travel_seconds {r.travel_seconds} but the matrix gives {travel:g}",
                f"travel_seconds 为 {r.travel_seconds}，按矩阵应为 {travel:g}")
        if abs(dist - r.distance_metres) > TOL:
            bad("total", w, f"distance_metres {r.distance_metres} but the matrix gives {dist:g}",
                f"distance_metres 为 {r.distance_metres}，按矩阵应为 {dist:g}")
        if abs((travel + serv) / 60 - r.work_minutes) > 0.1:
            bad("total", w, f"work_minutes {r.work_minutes} but travel + service is {(travel + serv) / 60:.2f}",
                f"work_minutes 为 {r.work_minutes}，行程加服务应为 {(travel + serv) / 60:.2f}")
        travel_total += travel
        dist_total += dist

    unassigned: dict[str, int] = {}
    for ui, u in enumerate(plan.unassigned):
        w = f"unassigned[{ui}]"
        if u.visit not in visits:
            bad("visit", w, f"unknown visit {u.visit!r}", f"未知探访 {u.visit!r}")
            continue
        if u.reason not in REASONS:
            bad("reason", w, f"reason {u.reason!r} is not one of {REASONS}", f"原因 {u.reason!r} 不在 {REASONS} 中")
        if u.fallback not in FALLBACKS:
            bad("fallback", w, f"fallback {u.fallback!r} is not one of {FALLBACKS}", f"替代方式 {u.fallback!r} 不在 {FALLBACKS} 中")
        if u.occurrences < 1:
            bad("occurrences", w, "occurrences must be at least 1", "次数至少为 1")
        unassigned[u.visit] = unassigned.get(u.visit, 0) + u.occurrences

    for v in problem.visits:
        w = f"visit {v.id}"
        ds = sorted(planned_days[v.id])
        if len(set(ds)) != len(ds):
            bad("same_day", w, "two occurrences on the same day", "同一天安排了两次")
        if len(ds) + unassigned.get(v.id, 0) != v.count:
            bad("count", w, f"{len(ds)} planned + {unassigned.get(v.id, 0)} unassigned ≠ required {v.count}",
                f"已安排 {len(ds)} 次 + 未安排 {unassigned.get(v.id, 0)} 次 ≠ 要求 {v.count} 次")
        if not ds:
            continue
        if v.explicit_patterns:
            if not any(set(ds) <= set(p) for p in v.patterns):
                days_s = ", ".join(problem.day_str(d) for d in ds)
                bad("pattern", w, f"days {days_s} fit none of the day_patterns", f"日期 {days_s} 不符合任何 day_patterns")
        else:
            for d in ds:
                if d not in v.days:
                    bad("days", w, f"{problem.day_str(d)} is not an allowed day", f"{problem.day_str(d)} 不是允许的日期")
            for a, b in zip(ds[:-1], ds[1:]):
                gap = (problem.days[b] - problem.days[a]).days
                if gap < v.min_gap_days:
                    bad("spacing", w, f"occurrences {gap} days apart, minimum {v.min_gap_days}",
                        f"两次探访相隔 {gap} 天，少于最小间隔 {v.min_gap_days} 天")

    sm = plan.summary
    required = sum(v.count for v in problem.visits)
    planned = sum(len(r.stops) for r in plan.routes)
    if sm.visits_required != required:
        bad("summary", "summary.visits_required", f"{sm.visits_required} but the problem requires {required}",
            f"为 {sm.visits_required}，问题要求 {required}")
    if sm.visits_planned != planned:
        bad("summary", "summary.visits_planned", f"{sm.visits_planned} but the routes hold {planned}",
            f"为 {sm.visits_planned}，路线中实有 {planned}")
    if abs(sm.travel_seconds - travel_total) > TOL * max(1, len(plan.routes)):
        bad("summary", "summary.travel_seconds", f"{sm.travel_seconds} but the routes total {travel_total:g}",
            f"为 {sm.travel_seconds}，路线合计 {travel_total:g}")
    if abs(sm.distance_metres - dist_total) > TOL * max(1, len(plan.routes)):
        bad("summary", "summary.distance_metres", f"{sm.distance_metres} but the routes total {dist_total:g}",
            f"为 {sm.distance_metres}，路线合计 {dist_total:g}")
    if not 0.0 <= sm.estimated_share <= 1.0 or not np.isfinite(sm.estimated_share):
        bad("summary", "summary.estimated_share", "must be between 0 and 1", "须在 0 与 1 之间")
    return out


__all__ = ["TOL", "Violation", "check_plan"]
