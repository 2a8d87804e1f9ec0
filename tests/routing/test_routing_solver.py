"""The solver: property tests on random small problems (every plan passes the checker), priorities, reasons, warm start, road matrices."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap.routing.check import check_plan
from gridmap.routing.matrix import problem_matrix
from gridmap.routing.plan import REASONS
from gridmap.routing.problem import parse_problem
from gridmap.routing.solver import solve


def _matrix(n: int, rng: np.random.Generator, spread: float = 3000.0) -> dict:
    xy = rng.uniform(0, spread, size=(n, 2))
    metres = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) * 1.3
    return {"seconds": np.rint(metres / 1.25).astype(int).tolist(), "metres": np.round(metres, 1).tolist()}


@st.composite
def problems(draw) -> dict:
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    ndays = draw(st.integers(1, 5))
    days = [(dt.date(2026, 12, 7) + dt.timedelta(days=i)).isoformat() for i in range(ndays)]
    nst = draw(st.integers(1, 2))
    nvis = draw(st.integers(1, 9))
    stewards = []
    for k in range(nst):
        start = draw(st.integers(7, 9)) * 3600
        length = draw(st.integers(2, 8)) * 3600
        s = {"id": f"S{k}", "start_index": 0, "shift": [start, start + length],
             "max_work_minutes": draw(st.integers(60, length // 60))}
        if draw(st.booleans()):
            s["days"] = sorted(draw(st.lists(st.sampled_from(days), min_size=1, max_size=ndays, unique=True)))
        if draw(st.booleans()):
            s["capacity"] = draw(st.integers(0, 6))
        stewards.append(s)
    visits = []
    for i in range(nvis):
        count = draw(st.integers(1, min(3, ndays)))
        v = {"id": f"E{i}", "location_index": 1 + i, "service_minutes": draw(st.integers(5, 90)), "count": count,
             "priority": draw(st.integers(1, 5)), "demand": draw(st.integers(0, 3))}
        if count > 1:
            v["min_gap_days"] = draw(st.integers(1, 3))
        if draw(st.booleans()):
            a = draw(st.integers(7, 16)) * 3600 + draw(st.sampled_from([0, 1800]))
            v["time_windows"] = [[a, a + draw(st.integers(1, 6)) * 1800]]
            if draw(st.booleans()):
                b = v["time_windows"][0][1] + 3600
                v["time_windows"].append([b, b + 3600])
        if draw(st.booleans()):
            v["days"] = sorted(draw(st.lists(st.sampled_from(days), min_size=1, max_size=ndays, unique=True)))
        if nst > 1 and draw(st.booleans()):
            v["steward"] = f"S{draw(st.integers(0, nst - 1))}"
        visits.append(v)
    return {"days": days, "stewards": stewards, "visits": visits, "matrix": _matrix(nvis + 1, rng)}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_plan_passes_the_checker(data):
    p = parse_problem(data)
    plan = solve(p, time_limit=0.2, seed=0)
    assert check_plan(p, plan) == []
    # every required visit planned or listed with a reason
    planned = {}
    for r in plan.routes:
        for s in r.stops:
            planned[s.visit] = planned.get(s.visit, 0) + 1
    missing = {u.visit: u.occurrences for u in plan.unassigned}
    for v in p.visits:
        assert planned.get(v.id, 0) + missing.get(v.id, 0) == v.count
    assert all(u.reason in REASONS for u in plan.unassigned)
    # no day exceeds the shift; windows hold (checked independently of the checker too)
    shifts = {s.id: s.shift for s in p.stewards}
    windows = {v.id: v.time_windows for v in p.visits}
    for r in plan.routes:
        lo, hi = shifts[r.steward]
        assert all(lo <= s.arrival and s.end <= hi for s in r.stops)
        for s in r.stops:
            assert not windows[s.visit] or any(a <= s.start <= b for a, b in windows[s.visit])


def _line_problem(n: int, service: int, shift_h: float, prio=None) -> dict:
    rng = np.random.default_rng(3)
    return {"days": ["2026-12-07"],
            "stewards": [{"id": "S1", "start_index": 0, "shift": [8 * 3600, int((8 + shift_h) * 3600)]}],
            "visits": [{"id": f"E{i}", "location_index": i + 1, "service_minutes": service,
                        "priority": (prio[i] if prio else 3)} for i in range(n)],
            "matrix": _matrix(n + 1, rng, 800)}


def test_high_priority_never_dropped_for_lower():
    prio = [1, 2, 5, 1, 4, 2, 5, 1, 3, 1]
    p = parse_problem(_line_problem(10, 60, 4.5, prio))  # room for about 4 of the 10
    plan = solve(p, time_limit=0.5)
    assert check_plan(p, plan) == []
    planned = {s.visit for r in plan.routes for s in r.stops}
    dropped = {u.visit for u in plan.unassigned}
    assert planned and dropped
    pr = {v.id: v.priority for v in p.visits}
    assert min(pr[v] for v in planned) >= max(pr[v] for v in dropped)
    assert all(u.reason == "no_time" for u in plan.unassigned)


def test_reasons_for_infeasible_visits():
    d = {"days": ["2026-12-07", "2026-12-08", "2026-12-09"],
         "stewards": [{"id": "S1", "start_index": 0, "shift": ["09:00", "12:00"], "days": ["2026-12-07", "2026-12-08"],
                       "capacity": 3}],
         "visits": [
             {"id": "tw", "location_index": 1, "service_minutes": 20, "time_windows": [["14:00", "15:00"]]},
             {"id": "day", "location_index": 2, "service_minutes": 20, "days": ["2026-12-09"]},
             {"id": "gap", "location_index": 3, "service_minutes": 20, "count": 2, "min_gap_days": 3},
             {"id": "cap", "location_index": 4, "service_minutes": 20, "demand": 5},
             {"id": "long", "location_index": 5, "service_minutes": 240, "priority": 5},
             {"id": "ok", "location_index": 6, "service_minutes": 20, "count": 2},
         ],
         "matrix": _matrix(7, np.random.default_rng(1), 500)}
    p = parse_problem(d)
    plan = solve(p, time_limit=0.3)
    assert check_plan(p, plan) == []
    reasons = {u.visit: u.reason for u in plan.unassigned}
    assert reasons == {"tw": "time_window", "day": "days", "gap": "spacing", "cap": "capacity", "long": "no_time"}
    assert {u.visit: u.fallback for u in plan.unassigned}["long"] == "video"  # priority 5 gets a video call


def test_weekly_spacing_and_patterns_hold_on_a_busy_week():
    rng = np.random.default_rng(7)
    days = [(dt.date(2026, 12, 7) + dt.timedelta(days=i)).isoformat() for i in range(5)]
    visits = []
    for i in range(15):
        c = int(rng.integers(1, 4))
        visits.append({"id": f"E{i}", "location_index": i + 1, "service_minutes": int(rng.integers(15, 45)), "count": c,
                       "min_gap_days": 2 if c > 1 else 1, "priority": int(rng.integers(1, 6))})
    visits[0]["day_patterns"] = [[days[0], days[2], days[4]]]
    visits[0]["count"] = 3
    d = {"days": days, "stewards": [{"id": "S1", "start_index": 0, "shift": ["08:30", "17:00"], "max_work_minutes": 420}],
         "visits": visits, "matrix": _matrix(16, rng, 1000)}
    p = parse_problem(d)
    plan = solve(p, time_limit=2.0, seed=3)
    assert check_plan(p, plan) == []
    assert not plan.unassigned  # about 70% of the week's working time is needed
    e0 = sorted(r.day for r in plan.routes for s in r.stops if s.visit == "E0")
    assert e0 == [days[0], days[2], days[4]]


def test_warm_start_keeps_weekdays():
    rng = np.random.default_rng(11)
    days = [(dt.date(2026, 12, 7) + dt.timedelta(days=i)).isoformat() for i in range(5)]
    visits = [{"id": f"E{i}", "location_index": i + 1, "service_minutes": 30, "count": 2, "min_gap_days": 2}
              for i in range(12)]
    d = {"days": days, "stewards": [{"id": "S1", "start_index": 0, "shift": ["08:30", "17:00"]}], "visits": visits,
         "matrix": _matrix(13, rng)}
    p = parse_problem(d)
    last = solve(p, time_limit=0.5, seed=1)
    assert not last.unassigned
    nxt = copy.deepcopy(d)
    nxt["days"] = [(dt.date(2026, 12, 14) + dt.timedelta(days=i)).isoformat() for i in range(5)]
    p2 = parse_problem(nxt)
    plan = solve(p2, time_limit=0.5, seed=99, initial=last)
    assert check_plan(p2, plan) == []

    def weekdays(pl):
        out = {}
        for r in pl.routes:
            for s in r.stops:
                out.setdefault(s.visit, set()).add(dt.date.fromisoformat(r.day).weekday())
        return out

    assert weekdays(plan) == weekdays(last)


def test_same_seed_same_plan_on_small_problem():
    d = _line_problem(6, 20, 8)
    p = parse_problem(d)
    a = solve(p, time_limit=0.3, seed=5).to_dict()
    b = solve(p, time_limit=0.3, seed=5).to_dict()
    assert a == b


def test_straight_line_fallback_is_flagged():
    d = {"days": ["2026-12-07"], "stewards": [{"id": "S1", "start": [116.30, 39.96], "shift": ["08:30", "17:00"]}],
         "visits": [{"id": f"E{i}", "location": [116.30 + 0.004 * i, 39.96 + 0.003 * (i % 3)], "service_minutes": 20}
                    for i in range(1, 6)]}
    p = parse_problem(d)
    pm = problem_matrix(p, road_network=False)
    plan = solve(p, time_limit=0.3, matrix=pm)
    assert check_plan(p, plan, pm) == []
    assert plan.summary.estimated_share == 1.0
    assert plan.summary.visits_planned == 5


@pytest.mark.slow
def test_road_network_matrix_and_geometry(data_dir):
    pytest.importorskip("osmnx")
    from gridmap.layers.roads import build_road_graph

    G = build_road_graph(data_dir=data_dir, mode="walk")
    d = {"days": ["2026-12-07"], "stewards": [{"id": "S1", "start": [116.3150, 39.9590], "shift": ["08:30", "17:00"]}],
         "visits": [{"id": f"E{i}", "location": [116.3150 + 0.002 * i, 39.9590 + 0.0015 * (i % 3)], "service_minutes": 20}
                    for i in range(1, 6)]}
    p = parse_problem(d)
    pm = problem_matrix(p, graphs={"walk": G})
    plan = solve(p, time_limit=0.5, matrix=pm, geometry=True, graphs={"walk": G})
    assert check_plan(p, plan, pm) == []
    assert plan.summary.estimated_share < 0.5  # central Haidian is on the network
    r = plan.routes[0]
    assert r.geometry["type"] == "LineString" and len(r.geometry["coordinates"]) > len(r.stops) + 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_one_model_variant_passes_the_checker(data):
    p = parse_problem(data)
    plan = solve(p, time_limit=0.2, seed=0, method="one_model")
    assert check_plan(p, plan) == []
