"""District week planning: steward problems from a synthetic register, plans stored and passing the checker, failures reported."""

from __future__ import annotations

import functools
import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from gridmap.routing.check import check_plan
from gridmap.routing.district import (
    MAX_LIMIT,
    MIN_LIMIT,
    plan_week,
    read_run,
    time_limits,
)
from gridmap.routing.plan import REASONS, parse_plan
from gridmap.routing.problem import parse_problem
from gridmap.routing.weekly import StewardProblem, weekly_problems

WEEK = "2026-W49"


@functools.lru_cache(maxsize=1)
def _layers():
    from gridmap.layers.build import build_layers

    return build_layers()


def populate(engine: Engine, elders: int = 500) -> None:
    """Real layers and a synthetic register of ``elders`` elders in ``engine``."""
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    layers = _layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=elders, seed=3)


def small_street(engine: Engine, lo: int = 2, hi: int = 4) -> str:
    """A street whose week has between ``lo`` and ``hi`` steward problems (few, for speed)."""
    wp = weekly_problems(engine, WEEK)
    per: dict[str, set[str]] = {}
    streets = {v["id"]: None for p in wp.problems for v in p.problem["visits"]}
    from gridmap.rules.store import read_facts

    for f in read_facts(engine, date(2026, 11, 30), elder_ids=[int(i) for i in streets]):
        streets[str(f.id)] = f.street
    for p in wp.problems:
        for v in p.problem["visits"]:
            per.setdefault(streets[v["id"]], set()).add(p.code)
    ok = sorted((len(c), s) for s, c in per.items() if s and lo <= len(c) <= hi)
    assert ok, "the 500-elder register has a street with a few stewards"
    return ok[0][1]


def _broken() -> StewardProblem:
    """A malformed problem (a visit on a day outside the planning days)."""
    problem = {"days": ["2026-11-30"],
               "stewards": [{"id": "BROKEN", "start": [116.3, 39.96], "shift": ["08:30", "17:00"]}],
               "visits": [{"id": "1", "location": [116.301, 39.961], "service_minutes": 30, "days": ["2026-12-25"]}]}
    return StewardProblem(0, "BROKEN", "坏", "visit", WEEK, problem, {})


@pytest.mark.slow
def test_plan_week_of_a_street_plans_pass_checker_and_a_failure_does_not_stop_the_others(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(engine)
    street = small_street(engine)
    wp = weekly_problems(engine, WEEK, street=street)
    # every required in-home visit of the street is in a problem or listed as not plannable
    from gridmap.rules.requirements import routing_visits
    from gridmap.rules.store import read_facts

    facts = read_facts(engine, date(2026, 11, 30), street=street)
    required = {v["id"]: v["count"] for v in routing_visits(facts, WEEK)}
    in_problems = {v["id"]: v["count"] for p in wp.problems for v in p.problem["visits"]}
    lost = {n["visit"]: n["occurrences"] for n in wp.not_plannable}
    assert set(required) == set(in_problems) | set(lost)
    for p in wp.problems:
        st_ = p.problem["stewards"][0]
        assert all(set(v["days"]) <= set(p.problem["days"]) for v in p.problem["visits"])
        assert all(v["steward"] == st_["id"] for v in p.problem["visits"])

    from gridmap.routing import district

    real = district.weekly_problems

    def with_broken(*a, **k):
        out = real(*a, **k)
        out.problems.insert(0, _broken())
        return out

    monkeypatch.setattr(district, "weekly_problems", with_broken)
    run = plan_week(engine, WEEK, street=street, out_dir=tmp_path / "run", time_limit=0.3, workers=2)

    codes = {p.code for p in wp.problems}
    assert {s.code for s in run.stewards} == codes | {"BROKEN"}
    broken = next(s for s in run.stewards if s.code == "BROKEN")
    assert broken.status == "failed" and "days" in broken.error
    assert not (tmp_path / "run" / "BROKEN" / "plan.json").exists()
    ok = [s for s in run.stewards if s.code != "BROKEN"]
    assert ok and all(s.status == "ok" for s in ok)
    # every stored plan passes the independent checker, re-read from the files
    for s in ok:
        d = tmp_path / "run" / s.code
        problem = parse_problem(d / "problem.json")
        plan = parse_plan(d / "plan.json")
        assert check_plan(problem, plan) == []
        assert plan.summary.visits_required == s.visits_required
        assert all(u.reason in REASONS for u in plan.unassigned)
        assert plan.summary.visits_planned + sum(u.occurrences for u in plan.unassigned) == s.visits_required
    summary = read_run(tmp_path / "run")
    assert summary["stewards_failed"] == 1
    assert summary["unassigned_by_reason"].get("failed") == broken.visits_required
    assert summary["visits_required"] == sum(required.values()) + broken.visits_required
    assert summary["visits_planned"] == sum(s.visits_planned for s in ok) > 0
    assert summary["all_plans_valid"] is True


@pytest.mark.slow
def test_warm_start_from_last_week_keeps_weekdays(tmp_path: Path) -> None:
    """A steward's problem solved again from last week's plan keeps most visits on the same weekdays."""
    import numpy as np

    rng = np.random.default_rng(1)
    days = ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]
    visits = [{"id": str(i), "location": [round(116.300 + rng.uniform(-0.006, 0.006), 6),
                                          round(39.960 + rng.uniform(-0.005, 0.005), 6)],
               "count": int(rng.integers(1, 3)), "min_gap_days": 2, "days": days, "priority": 3,
               "service_minutes": 30, "steward": "S"} for i in range(25)]
    problem = {"days": days, "stewards": [{"id": "S", "start": [116.3, 39.96], "shift": ["08:30", "17:00"],
                                           "max_work_minutes": 360, "mode": "walk"}], "visits": visits}
    sp = StewardProblem(1, "S", "甲", "visit", WEEK, problem, {})
    first = plan_week(None, WEEK, problems=[sp], out_dir=tmp_path / "w49", time_limit=0.5, workers=1)
    assert first.stewards[0].check_ok
    nxt = json.loads(json.dumps(problem).replace("2026-11-30", "2026-12-07").replace("2026-12-01", "2026-12-08")
                     .replace("2026-12-02", "2026-12-09").replace("2026-12-03", "2026-12-10")
                     .replace("2026-12-04", "2026-12-11"))
    sp2 = StewardProblem(1, "S", "甲", "visit", "2026-W50", nxt, {})
    second = plan_week(None, "2026-W50", problems=[sp2], out_dir=tmp_path / "w50", time_limit=0.5, workers=1,
                       initial_from=tmp_path / "w49")
    assert second.stewards[0].warm_start and second.stewards[0].check_ok

    def weekdays(path: Path) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for r in parse_plan(path).routes:
            for s in r.stops:
                out.setdefault(s.visit, set()).add(date.fromisoformat(r.day).weekday())
        return out

    a, b = weekdays(tmp_path / "w49" / "S" / "plan.json"), weekdays(tmp_path / "w50" / "S" / "plan.json")
    same = sum(1 for v in a if b.get(v) == a[v])
    assert same >= 0.8 * len(a)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=50), st.floats(1, 2000), st.integers(1, 8))
def test_time_limits_share_the_budget_within_bounds(sizes: list[int], budget: float, workers: int) -> None:
    limits = time_limits(sizes, budget, workers)
    assert len(limits) == len(sizes)
    assert all(MIN_LIMIT <= t <= MAX_LIMIT for t in limits)
    # bigger problems never get less time
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    assert all(limits[i] <= limits[j] for i, j in itertools.pairwise(order) if sizes[i] < sizes[j])
    # unless the lower bound lifts them, the limits fit in the budget
    if all(t > MIN_LIMIT for t in limits):
        assert sum(limits) <= budget * workers + 0.01 * len(limits)
