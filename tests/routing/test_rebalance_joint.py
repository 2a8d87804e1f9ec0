"""Joint weekly plans (issue 19 item 5): a visit's ``steward`` may be a list of allowed stewards with a preference;
the visit goes to whoever has time nearby, continuity preferred, and ``gridmap plan check`` enforces the list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gridmap._errors import ValidationError
from gridmap.routing.check import check_plan
from gridmap.routing.joint import assign_joint, solve_joint
from gridmap.routing.problem import parse_problem

DAYS = ["2026-12-07"]


def _problem(n: int, s1_minutes: int, steward: Any = ("S1", "S2")) -> dict[str, Any]:
    pts = [[116.300, 39.980], [116.302, 39.980]] + [[116.300 + 0.0005 * i, 39.981] for i in range(n)]
    return {
        "days": DAYS,
        "stewards": [{"id": "S1", "start_index": 0, "shift": ["08:30", "17:00"], "max_work_minutes": s1_minutes},
                     {"id": "S2", "start_index": 1, "shift": ["08:30", "17:00"], "max_work_minutes": 360},
                     {"id": "S3", "start_index": 1, "shift": ["08:30", "17:00"], "max_work_minutes": 360}],
        "visits": [{"id": f"E{i}", "location_index": 2 + i, "service_minutes": 30,
                    "steward": list(steward) if isinstance(steward, tuple) else steward} for i in range(n)],
        "_points": pts,
    }


def _with_matrix(d: dict[str, Any]) -> dict[str, Any]:
    from gridmap.routing.territory import straight_minutes

    pts = d.pop("_points")
    secs = [[round(60 * straight_minutes(tuple(a), tuple(b))) for b in pts] for a in pts]
    d["matrix"] = {"seconds": secs, "metres": [[round(s * 75 / 60) for s in row] for row in secs]}
    return d


def test_the_preferred_steward_makes_the_visits_while_they_have_time_then_the_other_allowed_one() -> None:
    roomy = parse_problem(_with_matrix(_problem(4, 360)))
    _, chosen = assign_joint(roomy)
    assert set(chosen.values()) == {"S1"}  # continuity: all to the preferred steward with time to spare
    tight = parse_problem(_with_matrix(_problem(8, 90)))
    _, chosen = assign_joint(tight)
    assert "S1" in chosen.values() and "S2" in chosen.values() and "S3" not in chosen.values()
    plan = solve_joint(tight, time_limit=1)
    assert check_plan(tight, plan) == []
    assert plan.summary.visits_planned > sum(1 for s in chosen.values() if s == "S1")  # S2 took some


def test_check_refuses_a_visit_made_by_a_steward_not_allowed() -> None:
    from gridmap.routing.solver import solve

    p = parse_problem(_with_matrix(_problem(3, 360)))
    free = parse_problem(_with_matrix(_problem(3, 360, steward="S3")))
    plan = solve(free, time_limit=0.5)  # every visit on S3
    codes = {v.code for v in check_plan(p, plan)}
    assert "allowed_steward" in codes


@pytest.mark.parametrize("steward, code", [
    ([], "type"), (["S1", "S9"], "unknown_steward"), (["S1", "S1"], "duplicate"),
    ({"allowed": ["S1", "S2"], "preferred": "S3"}, "preferred"), ({"allowed": ["S1"], "x": 1}, "keys"),
])
def test_malformed_allowed_stewards_are_refused_naming_the_field(steward: Any, code: str) -> None:
    d = _with_matrix(_problem(1, 360, steward=steward))
    with pytest.raises(ValidationError) as e:
        parse_problem(d)
    assert e.value.code == code and "visits[0].steward" in str(e.value)


def test_cli_solves_a_joint_problem_and_plan_check_accepts_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridmap.cli import app

    prob = tmp_path / "p.json"
    prob.write_text(json.dumps(_with_matrix(_problem(6, 60, steward={"allowed": ["S1", "S2"], "preferred": "S1"}))))
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(app, ["plan", "solve", str(prob), "--out", str(out), "--time-limit", "1"])
    assert r.exit_code == 0, r.output
    stewards = {r_["steward"] for r_ in json.loads(out.read_text())["routes"] if r_["stops"]}
    assert stewards <= {"S1", "S2"}
    r = CliRunner().invoke(app, ["plan", "check", str(prob), str(out)])
    assert r.exit_code == 0 and "plan is valid" in r.output


@pytest.mark.slow
def test_a_communitys_stewards_are_planned_together_each_visit_preferring_its_own_steward() -> None:
    from gridmap.routing.weekly import StewardProblem, joint_problem

    def sp(code: str, days: list[str], visits: list[str]) -> StewardProblem:
        return StewardProblem(1, code, code, "visit", "2026-W50", {
            "days": days,
            "stewards": [{"id": code, "start": [116.30, 39.98], "end": [116.30, 39.98], "shift": ["08:30", "17:00"],
                          "max_work_minutes": 360, "mode": "walk"}],
            "visits": [{"id": v, "location": [116.301, 39.981], "count": 1, "min_gap_days": 1, "days": days,
                        "priority": 3, "service_minutes": 30, "steward": code} for v in visits]})

    joint = joint_problem([sp("V1", ["2026-12-07", "2026-12-08"], ["E1", "E2"])],
                          [sp("F1", ["2026-12-08", "2026-12-09"], [])])
    p = parse_problem(joint)
    assert [d.isoformat() for d in p.days] == ["2026-12-07", "2026-12-08", "2026-12-09"]
    assert all(v.allowed == ["V1", "F1"] and v.preferred == "V1" for v in p.visits)
    assert [len(s.days) for s in p.stewards] == [2, 2]  # each works its own days
    plan = solve_joint(p, time_limit=0.5)
    assert check_plan(p, plan) == [] and plan.summary.visits_planned == 2
