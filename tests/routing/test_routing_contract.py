"""The JSON contract: parsing, validation errors naming the field, times, plan round trip, the plan CLI."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridmap._errors import ValidationError
from gridmap.cli import app
from gridmap.routing.plan import parse_plan
from gridmap.routing.problem import format_time, parse_problem, parse_time

BASE = {
    "days": ["2026-12-07", "2026-12-08", "2026-12-09", "2026-12-10", "2026-12-11"],
    "stewards": [{"id": "S1", "start_index": 0, "shift": ["08:30", "17:00"], "max_work_minutes": 360, "capacity": 25}],
    "visits": [
        {"id": "E1", "location_index": 1, "service_minutes": 30, "count": 2, "min_gap_days": 2,
         "time_windows": [["09:00", "11:30"], ["14:00", "17:00"]], "priority": 5},
        {"id": "E2", "location_index": 2, "service_minutes": 45, "priority": 2, "demand": 1},
        {"id": "E3", "location_index": 3, "service_minutes": 20, "count": 2,
         "day_patterns": [["2026-12-07", "2026-12-10"], ["2026-12-08", "2026-12-11"]]},
    ],
    "matrix": {"seconds": [[0, 600, 900, 300], [600, 0, 400, 500], [900, 400, 0, 700], [300, 500, 700, 0]],
               "metres": [[0, 800, 1200, 400], [800, 0, 500, 600], [1200, 500, 0, 900], [400, 600, 900, 0]]},
}


def test_parse_valid_problem():
    p = parse_problem(copy.deepcopy(BASE))
    assert [v.id for v in p.visits] == ["E1", "E2", "E3"]
    assert p.stewards[0].shift == (8 * 3600 + 1800, 17 * 3600)
    assert p.stewards[0].max_work_seconds == 360 * 60
    e1 = p.visits[0]
    assert e1.time_windows == [(9 * 3600, 11 * 3600 + 1800), (14 * 3600, 17 * 3600)]
    assert all(b - a >= 2 for a, b in e1.patterns)  # derived patterns respect the spacing
    assert p.visits[2].patterns == [(0, 3), (1, 4)]


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["visits"][0]["time_windows"].__setitem__(0, ["11:00", "09:00"]), "visits[0].time_windows[0]"),
    (lambda d: d["visits"][0]["time_windows"].__setitem__(1, ["25:99", "26:00"]), "visits[0].time_windows[1][0]"),
    (lambda d: d["visits"][1].__setitem__("priority", 9), "visits[1].priority"),
    (lambda d: d["visits"][1].__setitem__("location_index", 7), "visits[1].location_index"),
    (lambda d: d["visits"][2]["day_patterns"].__setitem__(0, ["2026-12-07"]), "visits[2].day_patterns[0]"),
    (lambda d: d["visits"][2]["day_patterns"].__setitem__(1, ["2026-12-08", "2027-01-01"]), "visits[2].day_patterns[1][1]"),
    (lambda d: d["visits"][1].__setitem__("steward", "S9"), "visits[1].steward"),
    (lambda d: d["visits"][1].__setitem__("colour", "red"), "visits[1].colour"),
    (lambda d: d["visits"].append(dict(d["visits"][0])), "visits[3].id"),
    (lambda d: d["stewards"][0].__setitem__("mode", "plane"), "stewards[0].mode"),
    (lambda d: d["stewards"][0].__setitem__("shift", ["8h", "17:00"]), "stewards[0].shift[0]"),
    (lambda d: d["matrix"]["seconds"][2].pop(), "matrix.seconds[2]"),
    (lambda d: d["matrix"]["metres"][1].__setitem__(0, -5), "matrix.metres[1][0]"),
    (lambda d: d["days"].__setitem__(1, "2026-13-01"), "days[1]"),
    (lambda d: d.pop("stewards"), "stewards"),
])
def test_errors_name_the_field(mutate, field):
    d = copy.deepcopy(BASE)
    mutate(d)
    with pytest.raises(ValidationError) as ei:
        parse_problem(d)
    assert ei.value.field == field
    assert field in ei.value.message_en and field in ei.value.message_zh


def test_coordinates_and_indices_are_exclusive():
    d = copy.deepcopy(BASE)
    d["visits"][1] = {"id": "E2", "location": [116.3, 39.95], "service_minutes": 10}
    with pytest.raises(ValidationError) as ei:
        parse_problem(d)
    assert ei.value.field == "visits[1].location"
    d.pop("matrix")
    with pytest.raises(ValidationError) as ei:
        parse_problem(d)
    assert ei.value.code == "needs_matrix"


@given(st.integers(0, 47 * 3600 + 59 * 60 + 59))
def test_time_roundtrip(seconds):
    assert parse_time(format_time(seconds), "t") == seconds
    assert parse_time(seconds, "t") == seconds


@given(st.text(max_size=8))
def test_parse_time_rejects_or_parses(text):
    try:
        v = parse_time(text, "x")
    except ValidationError as exc:
        assert exc.field == "x" and exc.code == "time"
    else:
        assert 0 <= v < 48 * 3600


@settings(max_examples=40)
@given(st.integers(1, 5), st.integers(0, 4), st.integers(1, 7))
def test_derived_patterns_respect_count_and_gap(count, gap, ndays):
    d = copy.deepcopy(BASE)
    d["days"] = [f"2026-12-{7 + i:02d}" for i in range(ndays)]
    d["visits"] = [{"id": "X", "location_index": 1, "service_minutes": 10, "count": min(count, ndays), "min_gap_days": gap}]
    v = parse_problem(d).visits[0]
    eff = max(gap, 1) if v.count > 1 else gap
    for p in v.patterns:
        assert len(p) == v.count and list(p) == sorted(set(p))
        assert all(b - a >= eff for a, b in zip(p[:-1], p[1:]))


def test_cli_solve_check_and_malformed(tmp_path):
    runner = CliRunner()
    prob = tmp_path / "p.json"
    prob.write_text(json.dumps(BASE))
    out = tmp_path / "plan.json"
    r = runner.invoke(app, ["plan", "solve", str(prob), "--out", str(out), "--time-limit", "0.3", "--seed", "1"])
    assert r.exit_code == 0, r.output
    plan = json.loads(out.read_text())
    assert set(plan) == {"routes", "unassigned", "summary"}
    assert plan["summary"]["visits_required"] == 5
    r = runner.invoke(app, ["plan", "check", str(prob), str(out)])
    assert r.exit_code == 0, r.output
    # a broken plan: move a stop out of its window → exit 1 with the violation listed
    bad = copy.deepcopy(plan)
    for route in bad["routes"]:
        for s in route["stops"]:
            if s["visit"] == "E1":
                s["start"], s["end"] = "12:00", "12:30"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = runner.invoke(app, ["plan", "check", str(prob), str(tmp_path / "bad.json")])
    assert r.exit_code == 1 and "time_window" in r.output
    # malformed problem → exit 2 naming the field
    d = copy.deepcopy(BASE)
    d["visits"][2]["count"] = "two"
    prob.write_text(json.dumps(d))
    r = runner.invoke(app, ["plan", "solve", str(prob), "--out", str(out)])
    assert r.exit_code == 2 and "visits[2].count" in r.output
    r = runner.invoke(app, ["plan", "check", str(prob), str(tmp_path / "bad.json")])
    assert r.exit_code == 2


def test_plan_roundtrip():
    from gridmap.routing.solver import solve

    p = parse_problem(copy.deepcopy(BASE))
    plan = solve(p, time_limit=0.3)
    again = parse_plan(json.dumps(plan.to_dict()))
    assert again.to_dict() == plan.to_dict()
