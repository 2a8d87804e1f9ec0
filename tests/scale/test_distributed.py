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
