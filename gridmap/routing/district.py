"""Plan the week of every steward of the district (or a street) in parallel and store the plans with a run summary.

:func:`plan_week` builds each steward's problem (:mod:`gridmap.routing.weekly`),
solves them over the machine's cores (one process per core, forked with the
road graphs loaded, replaced every :data:`TASKS_PER_WORKER` problems), checks every plan with the independent checker and
writes, under ``out_dir`` (default ``<var_dir>/plans/<week>``)::

    summary.json                  # the index: run totals, one entry per steward, not plannable elders
    <steward code>/problem.json   # the problem in the JSON contract (gridmap plan check works on it)
    <steward code>/plan.json      # the plan in the JSON contract
    <steward code>/meta.json      # per visit: elder id, requirement reasons, deadline (for route lists)

A failing problem (malformed, solver error, crashed worker) is recorded with
its error in the summary and does not stop the others. A plan the checker
finds over the working-time limit is solved again with the limit lowered by
the excess (``repaired`` in the summary) — a safety net, not a substitute for
the solver honouring the limit.

Time limits: unless ``time_limit`` fixes one for all, each problem gets a
share of ``budget`` seconds of wall time on all workers, proportional to
``1 + occurrences / 20``, between :data:`MIN_LIMIT` and :data:`MAX_LIMIT` s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from gridmap._errors import GridmapError
from gridmap.config import get_settings
from gridmap.routing.weekly import StewardProblem, weekly_problems
from gridmap.rules.config import Rules

#: Bounds of an automatic per-problem time limit (seconds).
MIN_LIMIT = 0.3
MAX_LIMIT = 60.0
#: Share of the budget given to search (the rest: matrices, checks, files).
_SEARCH_SHARE = 0.8
SUMMARY_FILE = "summary.json"
#: Problems a worker process solves before it is replaced (bounds the memory the solver leaks).
TASKS_PER_WORKER = 30

_GRAPHS: dict[str, Any] = {}
_ROAD_OK: bool = True


@dataclass
class StewardResult:
    """Outcome of one steward's weekly problem (one entry of ``summary.json``)."""

    code: str
    name: str
    kind: str
    steward_id: int
    status: str = "ok"  # ok | failed
    error: str | None = None
    visits_required: int = 0
    visits_planned: int = 0
    unassigned: list[dict[str, Any]] = field(default_factory=list)
    unassigned_by_reason: dict[str, int] = field(default_factory=dict)
    work_minutes: dict[str, float] = field(default_factory=dict)
    travel_seconds: float = 0.0
    distance_metres: float = 0.0
    estimated_share: float = 0.0
    check_ok: bool = False
    violations: list[str] = field(default_factory=list)
    time_limit: float = 0.0
    seconds: float = 0.0
    warm_start: bool = False
    repaired: bool = False
    dir: str = ""


@dataclass
class DistrictRun:
    """A week's district (or street) planning run."""

    week: str
    street: str | None
    out_dir: Path
    workers: int
    wall_seconds: float
    stewards: list[StewardResult]
    not_plannable: list[dict[str, Any]]

    @property
    def visits_required(self) -> int:
        """Required in-home visit occurrences, including those of elders that could not be planned."""
        return sum(s.visits_required for s in self.stewards) + sum(n["occurrences"] for n in self.not_plannable)

    @property
    def visits_planned(self) -> int:
        """Visit occurrences on routes (failed problems plan nothing)."""
        return sum(s.visits_planned for s in self.stewards if s.status == "ok")

    @property
    def share_planned(self) -> float:
        """Planned / required."""
        return self.visits_planned / self.visits_required if self.visits_required else 1.0

    @property
    def unassigned_by_reason(self) -> dict[str, int]:
        """Occurrences not planned, by reason: the contract's reasons, ``not_plannable:<why>`` and ``failed``."""
        c: Counter[str] = Counter()
        for s in self.stewards:
            if s.status == "ok":
                c.update(s.unassigned_by_reason)
            else:
                c["failed"] += s.visits_required
        for n in self.not_plannable:
            c[f"not_plannable:{n['reason']}"] += n["occurrences"]
        return dict(sorted(c.items()))

    @property
    def failed(self) -> list[StewardResult]:
        """Stewards whose problem failed."""
        return [s for s in self.stewards if s.status != "ok"]

    @property
    def all_valid(self) -> bool:
        """Every solved plan passed the checker."""
        return all(s.check_ok for s in self.stewards if s.status == "ok")

    def to_dict(self) -> dict[str, Any]:
        """The run as the ``summary.json`` dict."""
        days: list[float] = [m for s in self.stewards for m in s.work_minutes.values()]
        days.sort()
        return {
            "week": self.week, "street": self.street, "workers": self.workers,
            "wall_seconds": round(self.wall_seconds, 2),
            "stewards_total": len(self.stewards), "stewards_failed": len(self.failed),
            "visits_required": self.visits_required, "visits_planned": self.visits_planned,
            "share_planned": round(self.share_planned, 4),
            "unassigned_by_reason": self.unassigned_by_reason,
            "all_plans_valid": self.all_valid,
            "plans_valid": sum(1 for s in self.stewards if s.status == "ok" and s.check_ok),
            "plans_repaired": sum(1 for s in self.stewards if s.repaired),
            "work_minutes_per_steward_day": _quantiles(days),
            "estimated_share": round(
                sum(s.estimated_share * s.travel_seconds for s in self.stewards)
                / max(1e-9, sum(s.travel_seconds for s in self.stewards)), 4),
            "stewards": [asdict(s) for s in self.stewards],
            "not_plannable": self.not_plannable,
        }


def _quantiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    import numpy as np

    a = np.asarray(xs, dtype=float)
    return {"n": int(a.size), "mean": round(float(a.mean()), 1), "median": round(float(np.median(a)), 1),
            "p90": round(float(np.quantile(a, 0.9)), 1), "max": round(float(a.max()), 1)}


# ------------------------------------------------------------------ workers


def load_graphs(modes: set[str] | list[str]) -> dict[str, Any]:
    """Road graphs for the travel modes (``ebike`` shares the bike graph), cached per process.

    Returns an empty dict (straight-line estimates, flagged) when no road data can be loaded.
    """
    global _ROAD_OK
    from gridmap.layers.roads import build_road_graph

    for mode in sorted(modes):
        if mode in _GRAPHS or not _ROAD_OK:
            continue
        base = "bike" if mode == "ebike" else mode
        try:
            G = _GRAPHS.get(base) or build_road_graph(mode=base)
        except GridmapError:
            _ROAD_OK = False
            _GRAPHS.clear()
            break
        _GRAPHS[base] = G
        _GRAPHS[mode] = G
    return _GRAPHS


def _init_worker(modes: list[str]) -> None:
    load_graphs(modes)


def solve_task(task: dict[str, Any]) -> dict[str, Any]:
    """Solve, check and store one steward's problem (runs in a worker process).

    ``task``: ``code``, ``problem`` (dict), ``time_limit``, ``seed``, ``initial``
    (plan dict or None), ``plan_path``, ``geometry``. Never raises: errors are returned.
    """
    from gridmap.routing.check import check_plan
    from gridmap.routing.matrix import problem_matrix
    from gridmap.routing.plan import parse_plan
    from gridmap.routing.problem import parse_problem
    from gridmap.routing.solver import solve

    t0 = time.monotonic()
    try:
        problem = parse_problem(task["problem"])
        initial = parse_plan(task["initial"]) if task.get("initial") else None
        graphs = load_graphs({s.mode for s in problem.stewards})
        pm = problem_matrix(problem, graphs, road_network=_ROAD_OK)
        plan = solve(problem, time_limit=task["time_limit"], seed=task.get("seed", 0), initial=initial, matrix=pm,
                     geometry=bool(task.get("geometry")), graphs=graphs, iterations=task.get("iterations"))
        violations = check_plan(problem, plan, matrix=pm)
        repaired = False
        if violations and all(v.code == "work" for v in violations):
            plan, violations, repaired = _repair_work(task, problem, plan, violations, pm, initial, graphs)
        plan.write(task["plan_path"])
    except GridmapError as exc:
        return {"code": task["code"], "error": f"{exc.message_en} / {exc.message_zh}",
                "seconds": time.monotonic() - t0}
    except Exception as exc:  # noqa: BLE001 - one steward's failure must not stop the district
        return {"code": task["code"], "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5), "seconds": time.monotonic() - t0}
    by_reason: Counter[str] = Counter()
    for u in plan.unassigned:
        by_reason[u.reason] += u.occurrences
    work: dict[str, float] = {}
    for r in plan.routes:
        work[r.day] = round(work.get(r.day, 0.0) + float(r.work_minutes), 2)
    s = plan.summary
    return {
        "code": task["code"], "error": None, "visits_required": s.visits_required,
        "visits_planned": s.visits_planned, "unassigned": [asdict(u) for u in plan.unassigned],
        "unassigned_by_reason": dict(by_reason), "work_minutes": work, "travel_seconds": float(s.travel_seconds),
        "distance_metres": float(s.distance_metres), "estimated_share": float(s.estimated_share),
        "check_ok": not violations, "violations": [str(v) for v in violations[:20]], "repaired": repaired,
        "seconds": time.monotonic() - t0,
    }


def _repair_work(task: dict[str, Any], problem: Any, plan: Any, violations: list, pm: Any, initial: Any,
                 graphs: dict) -> tuple[Any, list, bool]:
    """Safety net for a solver plan over the working-time limit: solve again with the limit lowered by the
    excess (twice at most) and keep the new plan if it passes the checker against the original problem."""
    import copy

    from gridmap.routing.check import check_plan
    from gridmap.routing.problem import parse_problem
    from gridmap.routing.solver import solve

    limits = {s.id: s.max_work_seconds / 60.0 for s in problem.stewards}
    excess = max((r.work_minutes - limits.get(r.steward, 1e9) for r in plan.routes), default=0.0)
    for attempt in (1, 2):
        data = copy.deepcopy(task["problem"])
        for st in data["stewards"]:
            base = st.get("max_work_minutes", limits.get(st["id"], 0))
            st["max_work_minutes"] = max(1, int(base - attempt * max(5.0, excess + 1.0)))
        try:
            tight = parse_problem(data)
        except GridmapError:
            break
        alt = solve(tight, time_limit=task["time_limit"], seed=task.get("seed", 0), initial=initial, matrix=pm,
                    geometry=bool(task.get("geometry")), graphs=graphs, iterations=task.get("iterations"))
        v2 = check_plan(problem, alt, matrix=pm)
        if not v2:
            return alt, v2, True
    return plan, violations, False


# ------------------------------------------------------------------ time limits


def time_limits(sizes: list[int], budget: float, workers: int) -> list[float]:
    """Per-problem search seconds sharing ``budget`` wall seconds on ``workers`` processes.

    Each problem's share is proportional to ``1 + size / 20`` (``size``: visit
    occurrences), clamped to [:data:`MIN_LIMIT`, :data:`MAX_LIMIT`].
    """
    weights = [1.0 + s / 20.0 for s in sizes]
    total = sum(weights) or 1.0
    unit = budget * max(1, workers) * _SEARCH_SHARE / total
    return [round(min(MAX_LIMIT, max(MIN_LIMIT, w * unit)), 2) for w in weights]


# ------------------------------------------------------------------ run


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


def default_out_dir(week: str) -> Path:
    """``<var_dir>/plans/<week>``."""
    return Path(get_settings().var_dir) / "plans" / week


def _pool(workers: int, modes: list[str]) -> ProcessPoolExecutor:
    # forked from this process, which holds the road graphs (spawned where fork is unavailable)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(modes,))


def plan_week(
    engine: Engine,
    week: str,
    *,
    street: str | None = None,
    out_dir: str | Path | None = None,
    time_limit: float | None = None,
    budget: float = 600.0,
    workers: int | None = None,
    progress: bool = False,
    initial_from: str | Path | None = None,
    seed: int = 0,
    geometry: bool = False,
    rules: Rules | None = None,
    problems: list[StewardProblem] | None = None,
    on_result: Callable[[StewardResult], None] | None = None,
    iterations: int | None = None,
) -> DistrictRun:
    """Plan every steward's week, in parallel, and store plans and a run summary.

    Parameters
    ----------
    engine
        Database of the register.
    week
        ISO week ``YYYY-Www``.
    street
        Only this street (name), else the whole district.
    out_dir
        Where to store (default ``<var_dir>/plans/<week>``).
    time_limit
        Search seconds per problem; default: shares of ``budget`` (see :func:`time_limits`).
    budget
        Wall seconds the whole run's search may take on all workers (when ``time_limit`` is None).
    workers
        Processes (default ``os.cpu_count()``); 1 solves in this process.
    progress
        Show a progress bar (rich).
    initial_from
        A previous run's directory: each steward's ``plan.json`` there warm-starts its problem.
    seed
        Solver seed.
    geometry
        Draw routes along the roads into the plans (slower; route lists draw them on demand).
    rules
        Visit rules (default from the rules file).
    problems
        Solve these problems instead of building them from the register (testing, replays).
    on_result
        Called in this process with each steward's result as it arrives.
    iterations
        Bound each search by work instead of time (see :func:`gridmap.routing.solver.solve`): the
        same plans on any runner, machine and load.

    Returns
    -------
    DistrictRun
    """
    t0 = time.monotonic()
    workers = max(1, int(workers or os.cpu_count() or 1))
    out = Path(out_dir) if out_dir is not None else default_out_dir(week)
    out.mkdir(parents=True, exist_ok=True)
    not_plannable: list[dict[str, Any]] = []
    if problems is None:
        wp = weekly_problems(engine, week, street=street, rules=rules)
        problems, not_plannable = wp.problems, wp.not_plannable
    sizes = [p.size for p in problems]
    limits = [float(time_limit)] * len(problems) if time_limit is not None else time_limits(sizes, budget, workers)
    init_dir = Path(initial_from) if initial_from is not None else None

    results: dict[str, StewardResult] = {}
    tasks: list[dict[str, Any]] = []
    for p, tl in zip(problems, limits):
        d = out / p.code
        d.mkdir(parents=True, exist_ok=True)
        _write_json(d / "problem.json", p.problem)
        _write_json(d / "meta.json", {"steward": {"id": p.steward_id, "code": p.code, "name": p.name, "kind": p.kind},
                                      "week": week, "visits": p.meta})
        (d / "plan.json").unlink(missing_ok=True)
        initial = None
        if init_dir is not None and (init_dir / p.code / "plan.json").is_file():
            try:
                initial = json.loads((init_dir / p.code / "plan.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                initial = None
        results[p.code] = StewardResult(p.code, p.name, p.kind, p.steward_id, time_limit=tl,
                                        visits_required=p.size, warm_start=initial is not None,
                                        dir=str(d.relative_to(out)))
        tasks.append({"code": p.code, "problem": p.problem, "time_limit": tl, "seed": seed, "initial": initial,
                      "plan_path": str(d / "plan.json"), "geometry": geometry, "iterations": iterations})
    # largest first: the long ones do not end up alone at the end
    tasks.sort(key=lambda t: -results[t["code"]].visits_required)
    modes = sorted({str(s.get("mode", "walk")) for p in problems for s in (p.problem.get("stewards") or [])
                    if isinstance(s, dict)} & {"walk", "bike", "ebike", "car"})
    if tasks:
        load_graphs(modes)  # built (and cached on disk) once here; forked workers inherit them

    def record(res: dict[str, Any]) -> StewardResult:
        r = results[res["code"]]
        r.seconds = round(float(res.get("seconds", 0.0)), 2)
        if res.get("error"):
            r.status, r.error = "failed", res["error"]
        else:
            for k in ("visits_required", "visits_planned", "unassigned", "unassigned_by_reason", "work_minutes",
                      "travel_seconds", "distance_metres", "estimated_share", "check_ok", "violations", "repaired"):
                setattr(r, k, res[k])
        if on_result is not None:
            on_result(r)
        return r

    bar = _Progress(len(tasks), progress, week)
    try:
        if workers == 1 or len(tasks) <= 1:
            for t in tasks:
                bar.advance(record(solve_task(t)))
        else:
            # fresh workers every TASKS_PER_WORKER problems each: the solver's OR-Tools models leak about
            # 30 MB per solve (10 GB per worker over a district); max_tasks_per_child hangs on Python 3.11
            chunk = workers * TASKS_PER_WORKER
            for i in range(0, len(tasks), chunk):
                todo = tasks[i:i + chunk]
                for _attempt in range(2):
                    todo = _run_pool(todo, workers, modes, record, bar)
                    if not todo:
                        break
                for t in todo:  # a worker died twice on these
                    bar.advance(record({"code": t["code"], "error": "worker process died / 工作进程异常退出"}))
    finally:
        bar.close()

    run = DistrictRun(week, street, out, workers, time.monotonic() - t0, [results[p.code] for p in problems],
                      not_plannable)
    _write_json(out / SUMMARY_FILE, run.to_dict() | ({"iterations": iterations} if iterations is not None else {}))
    record_plans_stored(engine, run)
    return run


def record_plans_stored(engine: Engine, run: DistrictRun) -> list[int]:
    """Append one ``plan`` change per street whose stewards' plans ``run`` stored (the change feed).

    The plans are files, not rows, so this follows their writing (it cannot share a transaction with
    it); all streets' changes are appended in one transaction. A steward's street is its community's
    (else the run's street). A failure is logged, not raised: the plans are stored either way.

    Returns
    -------
    list of int
        The seqs appended.
    """
    import logging

    from sqlalchemy import select

    from gridmap.domain.enums import ChangeKind
    from gridmap.store.changes import cli_actor, record_change
    from gridmap.store.models import Community, Steward, Street

    stored = [r for r in run.stewards if r.status != "failed"]
    if not stored:
        return []
    try:
        with engine.begin() as conn:
            ids = sorted({int(r.steward_id) for r in stored})
            where = dict(conn.execute(select(Steward.id, Street.name)
                                      .join(Community, Community.id == Steward.community_id)
                                      .join(Street, Street.id == Community.street_id)
                                      .where(Steward.id.in_(ids))).all())
            by_street: dict[str, list[str]] = {}
            for r in stored:
                name = where.get(int(r.steward_id)) or run.street
                if name:
                    by_street.setdefault(name, []).append(r.code)
            return [record_change(conn, ChangeKind.PLAN, streets=[name], actor=cli_actor(),  # type: ignore[misc]
                                  detail={"week": run.week, "stewards": len(codes), "dir": str(run.out_dir)[-200:]})
                    for name, codes in sorted(by_street.items())]
    except Exception:  # noqa: BLE001 - the plans are stored; the followers re-read on their next change
        logging.getLogger("gridmap.routing").warning("could not append the plan changes", exc_info=True)
        return []


def _run_pool(tasks: list[dict[str, Any]], workers: int, modes: list[str],
              record: Callable[[dict[str, Any]], StewardResult], bar: _Progress) -> list[dict[str, Any]]:
    """Run tasks on a pool; returns those lost to a broken pool (to retry)."""
    lost: list[dict[str, Any]] = []
    with _pool(workers, modes) as ex:
        futs: dict[Future, dict[str, Any]] = {ex.submit(solve_task, t): t for t in tasks}
        pending = set(futs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                t = futs[f]
                try:
                    res = f.result()
                except BrokenProcessPool:
                    lost.append(t)
                    continue
                except Exception as exc:  # noqa: BLE001
                    res = {"code": t["code"], "error": f"{type(exc).__name__}: {exc}"}
                bar.advance(record(res))
    return lost


class _Progress:
    """A rich progress bar (or nothing) counting stewards, with the failures so far."""

    def __init__(self, total: int, show: bool, week: str) -> None:
        self.failed = 0
        self.p = None
        if show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn())
            self.p.start()
            self.label = f"{week} 管家周计划 / stewards"
            self.task = self.p.add_task(self.label, total=total)

    def advance(self, r: StewardResult) -> None:
        if r.status != "ok" or not r.check_ok:
            self.failed += 1
        if self.p is not None:
            desc = self.label + (f" [red]{self.failed} failed[/red]" if self.failed else "")
            self.p.update(self.task, advance=1, description=desc)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


def read_run(out_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a stored run."""
    return json.loads((Path(out_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))


__all__ = ["MAX_LIMIT", "MIN_LIMIT", "SUMMARY_FILE", "TASKS_PER_WORKER", "DistrictRun", "StewardResult", "default_out_dir", "load_graphs",
           "plan_week", "read_run", "solve_task", "time_limits"]
