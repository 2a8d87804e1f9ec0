"""Plan the week of every steward on a Dask distributed cluster, street by street, streaming plans to disk.

:func:`plan_week_dask` is the cluster version of
:func:`gridmap.routing.district.plan_week` and reuses its pieces: problems are
built by :func:`gridmap.routing.weekly.weekly_problems` and solved, checked and
summarised by :func:`gridmap.routing.district.solve_task`; the run summary is a
:class:`~gridmap.routing.district.DistrictRun` and the files under ``out_dir``
have the district layout (``summary.json``, ``<code>/problem.json``,
``plan.json``, ``meta.json``) plus ``<code>/result.json`` (the steward's result,
the week, seed, time limit and problem hash: what a resumed run checks).

How the work is spread
----------------------
* **Built close to the data** — one task per street reads that street's
  register rows and builds its stewards' problems on a worker (each worker
  keeps one engine per database URL). A steward whose elders live in several
  streets gets its parts merged (visits in elder-id order, as the district
  build has them) once every street it serves is built.
  :func:`gridmap.rules.store.read_facts` reads a street's visits and hazards
  only (an ``elder_id IN (elders of the street)`` filter served by the
  ``(elder_id, visited_on)`` index), so a street task reads its own rows, not
  the whole visit table; ``by_street=False`` builds the district in one task.
* **Road graphs once per worker** — the solve tasks use
  :func:`gridmap.routing.district.load_graphs`, which builds each travel mode's
  graph from the on-disk cache once per worker process and keeps it for every
  later problem on that worker; each problem's matrix is then computed from
  the shared graph.
* **Streamed** — a steward's problem is submitted as soon as its streets are
  built, and each plan is written (by this process, so a remote cluster needs
  no shared disk) the moment it arrives (``distributed.as_completed``).
* **Retried** — every task has ``retries=2``; the tasks of a worker that dies
  are re-run elsewhere by the scheduler (``distributed.scheduler.allowed-failures``);
  a problem that still fails is recorded as failed, the others go on.
* **Resumable** — with ``resume=True`` a steward whose ``result.json`` holds the
  same week, seed, time limit and problem hash and whose ``plan.json`` exists
  is not solved again.

Same seed, same plans: the problems and the solver calls are those of
:func:`~gridmap.routing.district.plan_week` (:func:`compare_runs` checks two
stored runs stop by stop). The solver's search is bounded by wall-clock time
only, so with a time limit a plan is the same on both runners only where the
search settles before the limit (a loaded machine may stop it elsewhere).
``time_limit=0`` runs no timed search (for multi-day problems: the seeded
insertion with ejections, :func:`gridmap.routing.solver.solve`'s first
solution), which is identical on any runner and any load.

Cluster: ``scheduler`` (``tcp://HOST:8786``) or ``GRIDMAP_DASK_SCHEDULER``
connects to an existing cluster (its workers need gridmap installed and the
database URL reachable); otherwise a ``LocalCluster`` of ``workers`` processes
with one thread each is started and closed with the run.

Memory: a worker process grows by about 24 MB per solved problem (measured on
the 120,000-elder register: OR-Tools models are not all freed), so the local
cluster gives each worker ``memory_limit`` (default :data:`WORKER_MEMORY`) and
lets the nanny restart a worker that passes 95% of it (its running problem is
retried; pausing and spilling are off, a paused worker would never drain).
Give remote workers a ``--memory-limit`` for the same reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gridmap._errors import GridmapError
from gridmap.routing.district import (
    SUMMARY_FILE,
    DistrictRun,
    StewardResult,
    default_out_dir,
    solve_task,
)
from gridmap.routing.weekly import StewardProblem, weekly_problems
from gridmap.rules.config import Rules

#: Environment variable naming an existing scheduler (``tcp://HOST:8786``).
SCHEDULER_ENV = "GRIDMAP_DASK_SCHEDULER"
#: Per-steward file a resumed run checks.
RESULT_FILE = "result.json"
#: Search seconds per problem when none is given (a streamed run does not know its size up front).
DEFAULT_TIME_LIMIT = 5.0
#: Memory limit of each local worker (restarted by its nanny above 95%).
WORKER_MEMORY = "3GiB"
#: Dask settings of a local cluster: restart at 95% of the limit, never pause or spill.
_MEMORY_CONFIG = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                  "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
#: Fields of a :class:`StewardResult` filled from a solve task's answer.
_RESULT_FIELDS = ("visits_required", "visits_planned", "unassigned", "unassigned_by_reason", "work_minutes",
                  "travel_seconds", "distance_metres", "estimated_share", "check_ok", "violations")

#: Other :class:`StewardResult` fields a solve task may answer (copied when present).
_EXTRA_FIELDS = {f.name for f in dataclasses.fields(StewardResult)} - set(_RESULT_FIELDS) - {
    "code", "name", "kind", "steward_id", "status", "error", "time_limit", "seconds", "dir"}

_ENGINES: dict[str, Any] = {}


# ------------------------------------------------------------------ worker side


def _engine(url: str) -> Any:
    """One engine per database URL and worker process."""
    eng = _ENGINES.get(url)
    if eng is None:
        from gridmap.store.db import make_engine

        eng = _ENGINES[url] = make_engine(url)
    return eng


def build_street(engine_url: str, week: str, street: str | None, rules: Rules | None = None) -> dict[str, Any]:
    """Build the steward problems of one street (runs on a worker).

    Returns ``{"street", "problems": [StewardProblem], "not_plannable": [...], "seconds"}``.
    """
    t0 = time.monotonic()
    wp = weekly_problems(_engine(engine_url), week, street=street, rules=rules)
    return {"street": street, "problems": wp.problems, "not_plannable": wp.not_plannable,
            "seconds": time.monotonic() - t0}


def solve_remote(task: dict[str, Any]) -> dict[str, Any]:
    """Solve one problem with :func:`~gridmap.routing.district.solve_task` and return the plan's JSON text.

    The plan is written to a worker-local temporary file and sent back, so the
    client stores it (no shared disk needed). Never raises.
    """
    with tempfile.TemporaryDirectory(prefix="gridmap-plan-") as tmp:
        path = Path(tmp) / "plan.json"
        res = solve_task({**task, "plan_path": str(path)})
        if not res.get("error") and path.is_file():
            res["plan_json"] = path.read_text(encoding="utf-8")
    res["worker_pid"] = os.getpid()
    return res


# ------------------------------------------------------------------ client side


def problem_hash(problem: dict[str, Any]) -> str:
    """SHA-256 of a problem's canonical JSON (what a resumed run compares)."""
    text = json.dumps(problem, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def merge_parts(parts: list[StewardProblem]) -> StewardProblem:
    """One steward's problem from its parts built street by street (visits in elder-id order)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    visits = sorted((v for p in parts for v in p.problem["visits"]), key=lambda v: int(v["id"]))
    meta: dict[str, dict[str, Any]] = {}
    for p in parts:
        meta.update(p.meta)
    problem = {**first.problem, "visits": visits}
    return StewardProblem(first.steward_id, first.code, first.name, first.kind, first.week, problem,
                          {k: meta[k] for k in sorted(meta, key=int)})


@dataclasses.dataclass
class RunComparison:
    """Two stored runs compared steward by steward (:func:`compare_runs`)."""

    identical: list[str]
    #: ``{"code", "what", ...}``; ``what``: ``missing`` (plan in one run only), ``problem`` (other problem),
    #: ``days`` (a visit on other days or planned in one run only), ``order`` (same days, other stop order),
    #: ``other`` (same stops in the same order, other times or figures)
    different: list[dict[str, Any]]

    @property
    def same(self) -> bool:
        """Every steward's plan identical in both runs."""
        return not self.different

    def to_dict(self) -> dict[str, Any]:
        """JSON form: counts, the differences (first 50) and the kinds of difference."""
        kinds: dict[str, int] = defaultdict(int)
        for d in self.different:
            kinds[d["what"]] += 1
        return {"stewards": len(self.identical) + len(self.different), "identical": len(self.identical),
                "different": len(self.different), "by_kind": dict(sorted(kinds.items())),
                "differences": self.different[:50]}


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _stops(plan: dict[str, Any]) -> tuple[dict[str, list[str]], dict[tuple[str, str], list[str]]]:
    """Per visit its sorted days; per (steward, day) its visits in order."""
    days: dict[str, list[str]] = defaultdict(list)
    order: dict[tuple[str, str], list[str]] = {}
    for r in plan.get("routes", []):
        seq = [str(st["visit"]) for st in r.get("stops", [])]
        if seq:
            order[(str(r["steward"]), str(r["day"]))] = seq
        for v in seq:
            days[v].append(str(r["day"]))
    return {v: sorted(d) for v, d in days.items()}, order


def compare_runs(a: str | Path, b: str | Path) -> RunComparison:
    """Compare the plans of two stored runs (district, Dask or CLI run directories) steward by steward.

    A steward is identical when its ``plan.json`` is the same in both runs
    (routes, stops and their order, times, unassigned visits, summary).
    """
    a, b = Path(a), Path(b)
    codes = sorted({p.parent.name for d in (a, b) for p in d.glob("*/plan.json")})
    same: list[str] = []
    diff: list[dict[str, Any]] = []
    for code in codes:
        pa, pb = _read(a / code / "plan.json"), _read(b / code / "plan.json")
        if pa is None or pb is None:
            diff.append({"code": code, "what": "missing", "in": str(a if pa is not None else b)})
            continue
        if pa == pb:
            same.append(code)
            continue
        qa, qb = _read(a / code / "problem.json"), _read(b / code / "problem.json")
        if qa is not None and qb is not None and problem_hash(qa) != problem_hash(qb):
            diff.append({"code": code, "what": "problem"})
            continue
        (da, oa), (db, ob) = _stops(pa), _stops(pb)
        what = "days" if da != db else "order" if oa != ob else "other"
        sa, sb = pa.get("summary", {}), pb.get("summary", {})
        diff.append({"code": code, "what": what,
                     "visits_planned": [sa.get("visits_planned"), sb.get("visits_planned")],
                     "travel_seconds": [sa.get("travel_seconds"), sb.get("travel_seconds")]})
    return RunComparison(same, diff)


def resolve_scheduler(scheduler: str | None) -> str | None:
    """The scheduler address to use: ``scheduler``, else ``GRIDMAP_DASK_SCHEDULER``, else None (local)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def _streets_plan(engine_url: str, street: str | None) -> tuple[list[str | None], dict[int, set[str | None]]]:
    """The street tasks and, per steward id, the streets its programme elders live in."""
    from sqlalchemy import func, select, union

    from gridmap.store.db import make_engine
    from gridmap.store.models import Elder, Street

    eng = make_engine(engine_url)
    try:
        with eng.connect() as conn:
            name = select(Street.name).where(Street.id == Elder.street_id).scalar_subquery()
            rows = conn.execute(select(union(
                select(Elder.visit_steward_id.label("sid"), name.label("street")),
                select(Elder.service_steward_id.label("sid"), name.label("street"))).subquery())).all()
            no_street = conn.execute(select(func.count()).select_from(Elder)
                                     .where(Elder.street_id.is_(None))).scalar_one()
    finally:
        eng.dispose()
    serves: dict[int, set[str | None]] = defaultdict(set)
    names: set[str] = set()
    for sid, st in rows:
        if st is not None:
            names.add(st)
        if sid is not None:
            serves[int(sid)].add(st)
    if street is not None:
        return [street], {sid: {street} for sid, sts in serves.items() if street in sts}
    if no_street:  # elders without a street: a street filter would miss them, build the district at once
        return [None], {sid: {None} for sid in serves}
    return sorted(names), dict(serves)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def _resumable(d: Path, week: str, seed: int, time_limit: float, sha: str,
               iterations: int | None = None) -> StewardResult | None:
    f = d / RESULT_FILE
    if not (f.is_file() and (d / "plan.json").is_file()):
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if (data.get("week"), data.get("seed"), data.get("time_limit_run"), data.get("problem_sha256"),
            data.get("iterations")) != (week, seed, time_limit, sha, iterations) \
            or data.get("result", {}).get("status") != "ok":
        return None
    return StewardResult(**data["result"])


class _Bar:
    """A rich progress bar over stewards (or nothing)."""

    def __init__(self, show: bool, week: str) -> None:
        self.p = None
        if show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn())
            self.p.start()
            self.t = self.p.add_task(f"{week} Dask 管家周计划 / stewards", total=None)

    def total(self, n: int) -> None:
        if self.p is not None:
            self.p.update(self.t, total=n)

    def advance(self) -> None:
        if self.p is not None:
            self.p.update(self.t, advance=1)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


def local_cluster(workers: int = 2, memory_limit: str | None = WORKER_MEMORY) -> Any:
    """A ``LocalCluster`` of ``workers`` processes, one thread each, restarted by their nannies above 95% memory."""
    import copy

    import dask
    from distributed import LocalCluster

    with dask.config.set(_MEMORY_CONFIG):  # the nannies' memory monitors read it when they start ...
        full = copy.deepcopy(dask.config.config)  # ... and hand this to every (re)started worker process
        return LocalCluster(n_workers=max(1, int(workers)), threads_per_worker=1, processes=True,
                            dashboard_address=None, memory_limit=memory_limit or "auto", config=full)


def plan_week_dask(
    engine_url: str,
    week: str,
    *,
    street: str | None = None,
    out_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    time_limit: float | None = None,
    seed: int = 0,
    resume: bool = True,
    geometry: bool = False,
    rules: Rules | None = None,
    problems: list[StewardProblem] | None = None,
    progress: bool = False,
    on_result: Callable[[StewardResult], None] | None = None,
    client: Any = None,
    iterations: int | None = None,
    memory_limit: str | None = WORKER_MEMORY,
    by_street: bool = True,
) -> DistrictRun:
    """Plan every steward's week on a Dask cluster and store the plans as they arrive.

    Parameters
    ----------
    engine_url
        SQLAlchemy URL of the register (workers connect to it themselves).
    week
        ISO week ``YYYY-Www``.
    street
        Only this street (name), else the whole district.
    out_dir
        Where to store (default ``<var_dir>/plans/<week>``), same layout as
        :func:`gridmap.routing.district.plan_week` plus ``<code>/result.json``.
    scheduler
        ``tcp://HOST:8786`` of an existing cluster; default ``GRIDMAP_DASK_SCHEDULER``,
        else a local cluster.
    workers
        Worker processes of the local cluster (one thread each).
    time_limit
        Search seconds per problem (default :data:`DEFAULT_TIME_LIMIT`).
    seed
        Solver seed.
    resume
        Skip stewards already planned for this week, seed, time limit and problem.
    geometry
        Draw routes along the roads into the plans.
    rules
        Visit rules (default from the rules file, read on each worker).
    problems
        Solve these problems instead of building them from the register (benchmarks, replays).
    progress
        Show a progress bar (rich).
    on_result
        Called in this process with each steward's result as it is stored.
    client
        An existing ``distributed.Client`` to use (then ``scheduler``/``workers`` are ignored).
    memory_limit
        Memory of each local-cluster worker (None: Dask's default share of the machine).
    by_street
        One build task per street (default); False: one task builds the whole district.

    Returns
    -------
    DistrictRun
        With ``workers`` the number of workers of the cluster.
    """
    from distributed import Client, as_completed

    t0 = time.monotonic()
    tl = float(time_limit if time_limit is not None else DEFAULT_TIME_LIMIT)
    out = Path(out_dir) if out_dir is not None else default_out_dir(week)
    out.mkdir(parents=True, exist_ok=True)
    address = resolve_scheduler(scheduler)
    cluster = None
    own_client = client is None
    if client is None:
        if address is None:
            cluster = local_cluster(workers, memory_limit)
            client = Client(cluster)
        else:
            try:
                client = Client(address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise GridmapError(f"cannot reach the Dask scheduler {address}: {exc}",
                                   f"无法连接 Dask 调度器 {address}：{exc}") from None
    n_workers = len(client.scheduler_info().get("workers", {})) or int(workers)

    results: dict[str, StewardResult] = {}
    not_plannable: list[dict[str, Any]] = []
    stats = {"resumed": 0, "solved": 0, "build_seconds": 0.0, "worker_pids": set()}
    bar = _Bar(progress, week)

    def store(res: dict[str, Any]) -> None:
        r = results[res["code"]]
        r.seconds = round(float(res.get("seconds", 0.0)), 2)
        d = out / r.dir
        if res.get("error"):
            r.status, r.error = "failed", res["error"]
        else:
            for k in _RESULT_FIELDS:
                setattr(r, k, res[k])
            for k in _EXTRA_FIELDS & res.keys():  # e.g. ``repaired`` (solve_task's safety net)
                setattr(r, k, res[k])
            (d / "plan.json").write_text(res["plan_json"], encoding="utf-8")
            stats["solved"] += 1
        if res.get("worker_pid"):
            stats["worker_pids"].add(res["worker_pid"])
        _write_json(d / RESULT_FILE, {"week": week, "seed": seed, "time_limit_run": tl, "iterations": iterations,
                                      "problem_sha256": res["sha"], "result": asdict(r)})
        bar.advance()
        if on_result is not None:
            on_result(r)

    futures: dict[Any, tuple[str, Any]] = {}
    ac = as_completed()

    def submit_problem(p: StewardProblem) -> None:
        d = out / p.code
        d.mkdir(parents=True, exist_ok=True)
        sha = problem_hash(p.problem)
        done = _resumable(d, week, seed, tl, sha, iterations) if resume else None
        if done is not None:
            results[p.code] = done
            stats["resumed"] += 1
            bar.advance()
            if on_result is not None:
                on_result(done)
            return
        _write_json(d / "problem.json", p.problem)
        _write_json(d / "meta.json", {"steward": {"id": p.steward_id, "code": p.code, "name": p.name,
                                                  "kind": p.kind}, "week": week, "visits": p.meta})
        (d / "plan.json").unlink(missing_ok=True)
        (d / RESULT_FILE).unlink(missing_ok=True)
        results[p.code] = StewardResult(p.code, p.name, p.kind, p.steward_id, time_limit=tl,
                                        visits_required=p.size, dir=p.code)
        task = {"code": p.code, "problem": p.problem, "time_limit": tl, "seed": seed, "initial": None,
                "geometry": geometry, "iterations": iterations}
        it = "" if iterations is None else f"-i{iterations}"
        fut = client.submit(solve_remote, task, key=f"gridmap-solve-{week}-{seed}{it}-{p.code}-{sha[:12]}",
                            retries=2, pure=False)
        futures[fut] = ("solve", (p.code, sha))
        ac.add(fut)

    try:
        builds = 0
        if problems is not None:
            bar.total(len(problems))
            for p in problems:
                submit_problem(p)
        else:
            streets, serves = _streets_plan(engine_url, street)
            if not by_street and street is None:
                streets, serves = [None], {sid: {None} for sid in serves}
            remaining = {sid: set(sts) for sid, sts in serves.items()}
            parts: dict[int, list[StewardProblem]] = defaultdict(list)
            for s in streets:
                f = client.submit(build_street, engine_url, week, s, rules, key=f"gridmap-build-{week}-{s}",
                                  retries=2, pure=False)
                futures[f] = ("build", s)
                ac.add(f)
                builds += 1
        total = len(problems) if problems is not None else 0
        for fut in ac:
            kind, info = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a failed task (e.g. KilledWorker) fails its stewards only
                if kind == "build":
                    raise GridmapError(f"building the problems of {info} failed: {type(exc).__name__}: {exc}",
                                       f"构建{info}的问题失败：{type(exc).__name__}: {exc}") from None
                res = {"code": info[0], "error": f"{type(exc).__name__}: {exc}"}
            if kind == "solve":
                res["sha"] = info[1]
                store(res)
                continue
            builds -= 1
            stats["build_seconds"] += float(res["seconds"])
            not_plannable.extend(res["not_plannable"])
            for p in res["problems"]:
                parts[p.steward_id].append(p)
            ready = []
            for sid in list(parts):
                left = remaining.get(sid)
                if left is not None:
                    left.discard(info)
                if not left or builds == 0:  # all its streets built (or nothing left to wait for)
                    ready.append(merge_parts(parts.pop(sid)))
            total += len(ready)
            bar.total(total)
            for p in sorted(ready, key=lambda p: -p.size):  # largest first
                submit_problem(p)
    finally:
        bar.close()
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()

    stewards = [results[c] for c in sorted(results)]
    not_plannable.sort(key=lambda n: (int(n["elder_id"]), n["reason"], n.get("occurrences", 0)))
    run = DistrictRun(week, street, out, n_workers, time.monotonic() - t0, stewards, not_plannable)
    summary = run.to_dict()
    summary.update({"runner": "dask", "scheduler": address or "local", "time_limit": tl, "seed": seed,
                    "iterations": iterations,
                    "resumed": stats["resumed"], "solved": stats["solved"],
                    "build_seconds": round(stats["build_seconds"], 2),
                    "worker_processes_used": len(stats["worker_pids"])})
    _write_json(out / SUMMARY_FILE, summary)
    from gridmap.routing.district import record_plans_stored
    from gridmap.store.db import make_engine

    eng = make_engine(engine_url)
    try:
        record_plans_stored(eng, run)
    finally:
        eng.dispose()
    return run


__all__ = ["DEFAULT_TIME_LIMIT", "RESULT_FILE", "SCHEDULER_ENV", "WORKER_MEMORY", "RunComparison", "build_street",
           "compare_runs", "local_cluster", "merge_parts", "plan_week_dask", "problem_hash", "resolve_scheduler",
           "solve_remote"]
