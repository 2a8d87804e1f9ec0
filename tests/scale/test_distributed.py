"""The Dask runner plans the same weeks as the process-pool runner, streams, resumes and survives a lost worker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from gridmap.routing import distributed as D
from gridmap.routing.district import plan_week
from gridmap.routing.weekly import weekly_problems
from tests.scale.conftest import WEEK, build_tiny_register, engine_url

pytest.importorskip("distributed")
SEED = 7
LIMIT = 1.0


def _plans(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/plan.json"))}


def _problems(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/problem.json"))}


@pytest.mark.slow
def test_same_seed_same_plans_as_the_process_pool_runner(engine, tmp_path, dask_client):
    build_tiny_register(engine)
    pool = plan_week(engine, WEEK, out_dir=tmp_path / "pool", workers=1, time_limit=LIMIT, seed=SEED)
    streamed = []
    run = D.plan_week_dask(engine_url(engine), WEEK, out_dir=tmp_path / "dask", client=dask_client,
                           time_limit=LIMIT, seed=SEED, on_result=lambda r: streamed.append(r.code))
    # every steward with elders to visit has a problem: T-1 (two streets), T-2, F-1, F-2 (elders without T-)
    assert sorted(s.code for s in run.stewards) == sorted(s.code for s in pool.stewards) == ["F-1", "F-2", "T-1", "T-2"]
    assert sorted(streamed) == ["F-1", "F-2", "T-1", "T-2"]
    assert _problems(tmp_path / "dask") == _problems(tmp_path / "pool")
    # T-1's problem holds its elders of both streets
    t1 = _problems(tmp_path / "dask")["T-1"]
    assert len(t1["visits"]) == 6 + 2
    assert _plans(tmp_path / "dask") == _plans(tmp_path / "pool")
    assert run.visits_planned == pool.visits_planned > 0
    assert run.all_valid and not run.failed
    assert sorted(map(str, run.not_plannable)) == sorted(map(str, pool.not_plannable))
    summary = json.loads((tmp_path / "dask" / "summary.json").read_text(encoding="utf-8"))
    assert summary["runner"] == "dask" and summary["solved"] == 4 and summary["workers"] == 2


@pytest.mark.slow
def test_a_run_resumes_and_replans_only_what_is_missing(engine, tmp_path, dask_client):
    build_tiny_register(engine, per_street=3)
    url, out = engine_url(engine), tmp_path / "run"
    first = D.plan_week_dask(url, WEEK, out_dir=out, client=dask_client, time_limit=LIMIT, seed=SEED)
    before = _plans(out)
    again = D.plan_week_dask(url, WEEK, out_dir=out, client=dask_client, time_limit=LIMIT, seed=SEED)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (s["resumed"], s["solved"]) == (len(first.stewards), 0)
    assert _plans(out) == before and again.visits_planned == first.visits_planned
    (out / "T-2" / "plan.json").unlink()  # e.g. the run was stopped before T-2 was stored
    D.plan_week_dask(url, WEEK, out_dir=out, client=dask_client, time_limit=LIMIT, seed=SEED)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (s["resumed"], s["solved"]) == (len(first.stewards) - 1, 1)
    assert _plans(out) == before
    # another seed is another run: nothing is reused
    D.plan_week_dask(url, WEEK, out_dir=out, client=dask_client, time_limit=LIMIT, seed=SEED + 1)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["resumed"] == 0


@pytest.mark.slow
def test_problems_of_a_killed_worker_are_retried(engine, tmp_path, dask_client):
    build_tiny_register(engine, per_street=3)
    base = weekly_problems(engine, WEEK).problems
    problems = []
    for k in range(3):  # 12 problems of ~1 s each, so some are running when a worker dies
        for p in base:
            problems.append(type(p)(p.steward_id, f"{p.code}-{k}", p.name, p.kind, p.week, p.problem, p.meta))
    pids = list(dask_client.run(os.getpid).values())
    killed = []

    def kill_once(_result):
        if not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    run = D.plan_week_dask(engine_url(engine), WEEK, out_dir=tmp_path / "k", client=dask_client, problems=problems,
                           time_limit=LIMIT, seed=SEED, on_result=kill_once)
    assert killed
    assert len(run.stewards) == 12 and not run.failed and run.all_valid
    assert len(_plans(tmp_path / "k")) == 12
    dask_client.wait_for_workers(2, timeout=60)  # the nanny restarted it for the next tests


def test_problem_parts_of_two_streets_merge_in_elder_order(engine):
    ids = build_tiny_register(engine, per_street=2)
    by_street = [weekly_problems(engine, WEEK, street=s).problems for s in ("乙街道", "甲街道")]
    parts = [p for ps in by_street for p in ps if p.code == "T-1"]
    assert len(parts) == 2
    merged = D.merge_parts(parts)
    whole = next(p for p in weekly_problems(engine, WEEK).problems if p.code == "T-1")
    assert merged.problem == whole.problem and merged.meta == whole.meta
    assert len(merged.problem["visits"]) == 4
    assert ids["elders"]


def test_scheduler_address_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(D.SCHEDULER_ENV, raising=False)
    assert D.resolve_scheduler(None) is None
    monkeypatch.setenv(D.SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert D.resolve_scheduler(None) == "tcp://10.0.0.5:8786"
    assert D.resolve_scheduler("tcp://h:1") == "tcp://h:1"


def test_problem_hash_ignores_key_order_but_not_content():
    a = {"days": ["2026-12-07"], "visits": [{"id": "1", "count": 1}]}
    b = {"visits": [{"count": 1, "id": "1"}], "days": ["2026-12-07"]}
    assert D.problem_hash(a) == D.problem_hash(b)
    assert D.problem_hash(a) != D.problem_hash({**a, "visits": [{"id": "1", "count": 2}]})


@pytest.mark.slow
def test_one_build_task_for_the_district_gives_the_same_problems(engine, tmp_path, dask_client):
    build_tiny_register(engine, per_street=3)
    url = engine_url(engine)
    D.plan_week_dask(url, WEEK, out_dir=tmp_path / "s", client=dask_client, time_limit=LIMIT, seed=SEED)
    D.plan_week_dask(url, WEEK, out_dir=tmp_path / "d", client=dask_client, time_limit=LIMIT, seed=SEED,
                     by_street=False)
    assert _problems(tmp_path / "d") == _problems(tmp_path / "s") and len(_problems(tmp_path / "d")) == 4
    assert _plans(tmp_path / "d") == _plans(tmp_path / "s")


# ------------------------------------------------------------------ local vs Dask, stored plans compared


def _cli(*args: str):
    from typer.testing import CliRunner

    from gridmap.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
@pytest.mark.parametrize("bound", [("--time-limit", "0"), ("--iterations", "300")], ids=["no-search", "iterations"])
def test_plan_week_local_and_dask_store_identical_plans(engine, tmp_path, monkeypatch, bound):
    """``gridmap plan week`` on 2 local processes and with ``--dask`` (a 2-worker LocalCluster) store the same
    plans for the same seed: same stops, same order, same days, same times — without search, and with a search
    bounded by work (``--iterations``) instead of the clock."""
    monkeypatch.delenv(D.SCHEDULER_ENV, raising=False)
    build_tiny_register(engine, per_street=8)
    url = engine_url(engine)
    common = ["plan", "week", "--week", WEEK, *bound, "--seed", str(SEED), "--workers", "2",
              "--database-url", url]
    local = _cli(*common, "--out", str(tmp_path / "local"))
    assert local.exit_code == 0, local.output
    dask = _cli(*common, "--out", str(tmp_path / "dask"), "--dask")
    assert dask.exit_code == 0, dask.output
    s_local = json.loads((tmp_path / "local" / "summary.json").read_text(encoding="utf-8"))
    s_dask = json.loads((tmp_path / "dask" / "summary.json").read_text(encoding="utf-8"))
    assert "runner" not in s_local and s_dask["runner"] == "dask" and s_dask["scheduler"] == "local"
    if bound[0] == "--iterations":
        assert s_local["iterations"] == s_dask["iterations"] == 300
    assert s_dask["workers"] == 2 and s_dask["solved"] == 4
    cmp = D.compare_runs(tmp_path / "local", tmp_path / "dask")
    assert cmp.same and sorted(cmp.identical) == ["F-1", "F-2", "T-1", "T-2"], cmp.to_dict()
    assert s_dask["visits_planned"] == s_local["visits_planned"] > 0
    assert s_dask["all_plans_valid"] and s_local["all_plans_valid"]
    # the stops themselves, read back: every planned visit of T-1 is one of its elders, on the week's days
    t1 = json.loads((tmp_path / "dask" / "T-1" / "plan.json").read_text(encoding="utf-8"))
    problem = _problems(tmp_path / "dask")["T-1"]
    stops = [st["visit"] for r in t1["routes"] for st in r["stops"]]
    assert stops and set(stops) <= {v["id"] for v in problem["visits"]}
    assert {r["day"] for r in t1["routes"]} <= set(problem["days"])


def test_dask_run_refuses_a_warm_start_in_both_languages(engine, tmp_path):
    res = _cli("plan", "week", "--week", WEEK, "--dask", "--initial-from", str(tmp_path),
               "--database-url", engine_url(engine))
    assert res.exit_code == 2
    assert "--initial-from" in res.output and "不支持" in res.output


def _write_run(d: Path, plans: dict[str, dict]) -> None:
    for code, plan in plans.items():
        (d / code).mkdir(parents=True, exist_ok=True)
        (d / code / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


def _plan(*routes: tuple[str, list[str]], start: str = "08:00") -> dict:
    return {"routes": [{"steward": "S", "day": day, "stops": [{"visit": v, "arrival": start, "start": start,
                                                                "end": start} for v in visits]}
                       for day, visits in routes],
            "unassigned": [], "summary": {"visits_planned": sum(len(v) for _, v in routes), "travel_seconds": 10}}


def test_compare_runs_names_what_differs(tmp_path):
    base = _plan(("2026-12-07", ["1", "2"]), ("2026-12-08", ["3"]))
    _write_run(tmp_path / "a", {"A": base, "B": base, "C": base, "D": base, "E": base})
    _write_run(tmp_path / "b", {
        "A": base,
        "B": _plan(("2026-12-07", ["2", "1"]), ("2026-12-08", ["3"])),  # same days, other order
        "C": _plan(("2026-12-07", ["1"]), ("2026-12-08", ["3", "2"])),  # visit 2 on another day
        "D": _plan(("2026-12-07", ["1", "2"]), ("2026-12-08", ["3"]), start="09:00"),  # other times only
    })
    cmp = D.compare_runs(tmp_path / "a", tmp_path / "b")
    assert not cmp.same and cmp.identical == ["A"]
    assert {d["code"]: d["what"] for d in cmp.different} == {"B": "order", "C": "days", "D": "other",
                                                             "E": "missing"}
    assert cmp.to_dict()["by_kind"] == {"days": 1, "missing": 1, "order": 1, "other": 1}
    assert D.compare_runs(tmp_path / "a", tmp_path / "a").same
