"""City-scale benchmark: COPY load of a 10-district synthetic city, SQL indicators with EXPLAIN ANALYZE, Dask planning.

Run ``python bench/city.py`` (all phases) or ``--phase load|indicators|plan``;
each phase runs in its own process (so its peak RSS is its own) and merges
its figures into ``bench/results/city.json`` as soon as they are measured
(``city.md`` is rewritten from the JSON each time; EXPLAIN plans go to
``city_explain.txt``).

* **load** — :func:`gridmap.scale.store.load_city`: ``--elders`` (default
  1,200,000) over ``--districts`` (10: Haidian + 9 shifted copies) into schema
  ``city`` of ``GRIDMAP_CITY_BENCH_URL`` (default the local server's
  ``gridmap_city_bench`` database, created if missing), generated and copied in
  chunks of 30,000 elders; rows/s and peak RSS.
* **indicators** — :func:`gridmap.scale.indicators.sql_indicators` for a week
  and a month, per district and per street, city-wide and for one district
  (partition pruning), median of ``--runs``; compared in the same run with the
  pandas path (read one district's rows, :func:`compute_indicators`), and
  EXPLAIN ANALYZE of the heavy queries.
* **plan** — the steward problems of the 120,000-elder synthetic Haidian
  register (``var/city/haidian_120k.sqlite``, a copy of the register benchmark's
  database; built once by :func:`gridmap.routing.weekly.weekly_problems` and
  cached) solved by :func:`gridmap.routing.distributed.plan_week_dask` on a
  LocalCluster: N× = Haidian's problems N times under new steward codes (same
  homes, so the road-network matrices apply), fixed ``--time-limit`` per
  problem; cost per problem = wall × workers / problems; 1 vs 2 workers at 1×;
  the end-to-end run from the register (street build tasks + solve) at 1×; a
  sample re-solved by :func:`gridmap.routing.district.plan_week` with the same
  seed to compare plans.
* **week** — the acceptance run, end to end as a user runs it: ``gridmap plan
  week --week 2026-W49`` on the 120,000-elder synthetic Haidian register
  (``--register``, default ``var/plan120k.sqlite``, built by ``gridmap demo
  --no-serve --elders 120000`` when missing) on the local process pool (2
  processes) and with ``--dask`` (2-worker LocalCluster), plans stored in each
  run directory; the two runs compared stop by stop
  (:func:`gridmap.routing.distributed.compare_runs`) for each ``--week-limits``
  (0 = no timed search). Also a street's facts read (one street vs the whole
  register) with :func:`gridmap.rules.store.read_facts`.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT_JSON = RESULTS / "city.json"
OUT_MD = RESULTS / "city.md"
OUT_EXPLAIN = RESULTS / "city_explain.txt"
VAR = ROOT / "var" / "city"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridmap_city_bench"
WEEK = "2026-W49"
sys.path.insert(0, str(ROOT))


def _machine() -> dict[str, Any]:
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "memory_gb": mem,
            "platform": platform.platform(), "note": "2 cores shared with other engineers' jobs while measured"}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 4)


def merge(key: str, value: Any) -> None:
    """Merge one phase's figures into city.json and rewrite city.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = json.loads(OUT_JSON.read_text(encoding="utf-8")) if OUT_JSON.is_file() else {}
    data.update({"machine": _machine(), "commit": _commit()})
    if isinstance(value, dict):
        value = {**value, "commit": value.get("commit") or _commit()}  # each phase names its own code
    data[key] = value
    data["summary"] = summary_rows(data)
    OUT_JSON.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    OUT_MD.write_text(markdown(data), encoding="utf-8")


# ------------------------------------------------------------------ load


def _engine(url: str) -> Any:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from gridmap.store.db import make_engine

    u = make_url(url)
    admin = make_engine(u.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}).scalar():
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    return eng


def phase_load(args: argparse.Namespace) -> None:
    from gridmap.scale.city import make_city
    from gridmap.scale.store import load_city, partitions

    eng = _engine(args.url)
    city = make_city(args.districts)
    started = datetime.now(UTC).isoformat(timespec="seconds")

    def partial(ch: Any, rep: Any) -> None:
        if rep.chunks % 5 == 0:
            merge("load", {**rep.to_dict(), "status": "running", "started": started})

    rep = load_city(eng, city, args.elders, chunk=args.chunk, seed=1, on_chunk=partial)
    parts = partitions(eng)
    sizes = parts.groupby("parent")["bytes"].sum().to_dict()
    merge("load", {**rep.to_dict(), "status": "done", "started": started,
                   "district_codes": city.codes, "partitions": len(parts),
                   "table_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()}, "process_peak_rss_mb": _rss_mb()})


# ------------------------------------------------------------------ indicators


def phase_indicators(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    from sqlalchemy import text

    from gridmap.rules.config import load_rules
    from gridmap.rules.indicators import compute_indicators
    from gridmap.scale.indicators import explain_indicators, sql_indicators

    eng = _engine(args.url)
    rules = load_rules()
    out: dict[str, Any] = {"queries": [], "status": "running"}
    with eng.connect() as conn:
        out["elders"] = int(conn.execute(text("SELECT count(*) FROM city.elder")).scalar_one())
        out["visits"] = int(conn.execute(text("SELECT count(*) FROM city.visit")).scalar_one())
    one = "110151"
    cases = [("week", "2026-W48", "district", None), ("week", "2026-W48", "street", None),
             ("month", "2026-11", "district", None), ("month", "2026-11", "street", None),
             ("week", "2026-W48", "street", one), ("month", "2026-11", "street", one)]
    for kind, period, level, district in cases:
        times, rows = [], 0
        for _ in range(args.runs):
            t = time.perf_counter()
            df = sql_indicators(eng, level=level, source="city", district=district, rules=rules, **{kind: period})
            times.append(time.perf_counter() - t)
            rows = len(df)
        out["queries"].append({"period": period, "level": level, "scope": district or "city", "rows": rows,
                               "runs": [round(x, 3) for x in times], "median_s": _median(times)})
        merge("indicators", out)
    # the reference in the same run: one district pulled into pandas and computed there
    times = []
    for _ in range(max(1, min(args.runs, 2))):
        t = time.perf_counter()
        with eng.connect() as conn:
            E = pd.read_sql(text("SELECT id, street_code, community_code, visit_steward, status, willing "
                                 "FROM city.elder WHERE district_code = :d"), conn, params={"d": one})
            V = pd.read_sql(text("SELECT id, elder_id, visited_on, mode, effective, visitor_role, started_at, "
                                 "ended_at FROM city.visit WHERE district_code = :d"), conn, params={"d": one})
            H = pd.read_sql(text("SELECT id, elder_id, opened_on, deadline, closed_on FROM city.hazard "
                                 "WHERE district_code = :d"), conn, params={"d": one})
        t_read = time.perf_counter() - t
        elders = pd.DataFrame({"elder_id": E["id"], "street": E["street_code"], "community": E["community_code"],
                               "grid_id": None, "steward_id": E["visit_steward"], "status": E["status"],
                               "willing": E["willing"], "age": 70, "categories": [[]] * len(E),
                               "devices": [[]] * len(E), "has_first_contact": True, "has_location": True,
                               "lon": np.nan, "lat": np.nan})
        refs = pd.DataFrame(columns=["id", "elder_id", "status", "emergency", "opened_at", "deadline", "closed_at"])
        compute_indicators(elders, V.assign(gps_lon=np.nan, gps_lat=np.nan), H.assign(status="open"), refs,
                           week="2026-W48", level="street", rules=rules)
        times.append(time.perf_counter() - t)
    out["pandas_reference"] = {"what": f"district {one}: read its elders/visits/hazards + compute_indicators "
                                       "(week, street)", "runs": [round(x, 3) for x in times],
                               "median_s": _median(times), "read_s_last": round(t_read, 3),
                               "rows_read": int(len(E) + len(V) + len(H))}
    merge("indicators", out)
    plans = []
    for kind, period, level, district in [("month", "2026-11", "street", None), ("week", "2026-W48", "street", one)]:
        plan = explain_indicators(eng, level=level, district=district, rules=rules, **{kind: period})
        plans.append(f"-- {kind} {period}, level {level}, scope {district or 'city'}\n{plan}\n")
        last = [ln for ln in plan.splitlines() if "Execution Time" in ln]
        out.setdefault("explain", []).append({"period": period, "level": level, "scope": district or "city",
                                              "execution": last[0].strip() if last else None,
                                              "partitions_scanned": sorted(set(re.findall(r"on (visit_\d+)", plan)))})
    OUT_EXPLAIN.write_text("\n".join(plans), encoding="utf-8")
    out["status"] = "done"
    out["process_peak_rss_mb"] = _rss_mb()
    merge("indicators", out)


# ------------------------------------------------------------------ planning


def _register() -> Path:
    """The 120,000-elder synthetic Haidian register (SQLite): a copy of var/bench_120k.sqlite, else built."""
    import shutil

    db = VAR / "haidian_120k.sqlite"
    if db.is_file():
        return db
    VAR.mkdir(parents=True, exist_ok=True)
    src = ROOT / "var" / "bench_120k.sqlite"
    if src.is_file():
        shutil.copyfile(src, db)
    else:  # a clean clone: the same command the dashboard benchmark documents
        subprocess.run([sys.executable, "-m", "gridmap", "demo", "--no-serve", "--elders", "120000",
                        "--database-url", f"sqlite:///{db}"], check=True)
    return db


def _problems() -> tuple[list[Any], float]:
    path = VAR / f"haidian_problems_{WEEK}.pkl"
    _register()
    if path.is_file():
        d = pickle.loads(path.read_bytes())
        return d["problems"], float(d["seconds"])
    from gridmap.routing.weekly import weekly_problems
    from gridmap.store.db import make_engine

    t = time.perf_counter()
    wp = weekly_problems(make_engine(f"sqlite:///{VAR / 'haidian_120k.sqlite'}"), WEEK)
    dt = time.perf_counter() - t
    path.write_bytes(pickle.dumps({"week": WEEK, "seconds": dt, "problems": wp.problems,
                                   "not_plannable": wp.not_plannable}))
    return wp.problems, dt


def _replicate(problems: list[Any], n: int) -> list[Any]:
    if n == 1:
        return list(problems)
    return [type(p)(p.steward_id, f"{p.code}~{k}", p.name, p.kind, p.week, p.problem, p.meta)
            for k in range(n) for p in problems]


def _worker_rss(client: Any) -> list[float]:
    return [round(v, 1) for v in client.run(
        lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0).values()]


def phase_plan(args: argparse.Namespace) -> None:
    import shutil

    from distributed import Client

    from gridmap.routing.distributed import local_cluster, plan_week_dask

    problems, build_s = _problems()
    if args.max_problems:
        problems = problems[: args.max_problems]
    out: dict[str, Any] = json.loads(OUT_JSON.read_text(encoding="utf-8")).get("plan", {}) if (
        OUT_JSON.is_file() and args.keep) else {}
    out.update({"week": WEEK, "time_limit_s": args.time_limit, "seed": 0, "haidian_problems": len(problems),
                "haidian_occurrences": sum(p.size for p in problems),
                "build_problems_single_process_s": round(build_s, 1), "status": "running"})
    out.setdefault("runs", [])
    merge("plan", out)

    def run(label: str, scale: int, workers: int, **kw: Any) -> dict[str, Any]:
        d = VAR / "plans" / label
        shutil.rmtree(d, ignore_errors=True)
        cluster = local_cluster(workers, args.memory_limit)
        client = Client(cluster)
        try:
            t = time.perf_counter()
            probs = _replicate(problems, scale) if "engine_url" not in kw else None
            done = [0]

            def partial(_r: Any) -> None:  # a long run leaves its progress in the JSON
                done[0] += 1
                if done[0] % 250 == 0:
                    el = time.perf_counter() - t
                    out["partial"] = {"label": label, "problems_done": done[0], "elapsed_s": round(el, 1),
                                      "cost_per_problem_s": round(el * workers / done[0], 3)}
                    merge("plan", out)

            r = plan_week_dask(kw.pop("engine_url", ""), WEEK, out_dir=d, client=client, time_limit=args.time_limit,
                               seed=0, problems=probs, resume=False, on_result=partial, **kw)
            wall = time.perf_counter() - t
            rss = _worker_rss(client)
        finally:
            client.close()
            cluster.close()
        n = len(r.stewards)
        extra = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        res = {"build_seconds_sum": extra.get("build_seconds"), "worker_processes_used": extra.get(
            "worker_processes_used"), "label": label, "scale": scale, "workers": workers, "problems": n, "wall_s": round(wall, 1),
               "cost_per_problem_s": round(wall * workers / max(1, n), 3),
               "solve_seconds_mean": round(sum(s.seconds for s in r.stewards) / max(1, n), 3),
               "visits_required": r.visits_required, "visits_planned": r.visits_planned,
               "share_planned": round(r.share_planned, 4), "failed": len(r.failed), "all_valid": r.all_valid,
               "worker_peak_rss_mb": rss, "client_peak_rss_mb": _rss_mb(),
               "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        out["runs"] = [x for x in out["runs"] if x["label"] != label] + [res]
        out.pop("partial", None)
        merge("plan", out)
        return res

    for spec in args.plan_runs.split(","):
        label = spec.strip()
        if label == "e2e":  # from the register: street build tasks + solve, 2 workers
            run("e2e-1x-w2", 1, 2, engine_url=f"sqlite:///{VAR / 'haidian_120k.sqlite'}")
        elif label == "e2e-district":  # the same with one build task for the district
            run("e2e-district-1x-w2", 1, 2, engine_url=f"sqlite:///{VAR / 'haidian_120k.sqlite'}", by_street=False)
        elif label == "same":
            _same_plans(problems, args, out)
            merge("plan", out)
        else:
            scale, workers = (int(x) for x in label.lower().replace("x", " ").replace("w", " ").split())
            run(f"{scale}x-w{workers}", scale, workers)
    _extrapolate(out)
    out["status"] = "done"
    merge("plan", out)


def _extrapolate(out: dict[str, Any]) -> None:
    """When 10x was not run: its wall time from the measured costs per problem (labelled as such)."""
    runs = {r["label"]: r for r in out.get("runs", [])}
    if "10x-w2" in runs or not {"1x-w2", "4x-w2"} <= set(runs):
        out.pop("extrapolation", None)
        out.pop("extrapolated_10x", None)
        return
    c1, c4 = runs["1x-w2"]["cost_per_problem_s"], runs["4x-w2"]["cost_per_problem_s"]
    n10 = 10 * runs["1x-w2"]["problems"]
    slope = (c4 - c1) / (3 * runs["1x-w2"]["problems"])  # change of cost per problem per extra problem
    c10 = c4 + slope * (n10 - runs["4x-w2"]["problems"])
    out["extrapolated_10x"] = {"problems": n10, "cost_per_problem_s": round(c10, 3),
                               "wall_s_on_2_workers": round(c10 * n10 / 2, 0)}
    out["extrapolation"] = (f"10x was NOT measured (time). Extrapolated linearly from the measured 1x and 4x costs per "
                            f"problem ({c1} s, {c4} s): {n10:,} problems at {c10:.3f} s each, about "
                            f"{c10 * n10 / 2 / 60:.0f} min wall on 2 workers (≈ {c10 * n10 / 2 / 60 / 8:.0f} min on 16).")


def _same_plans(problems: list[Any], args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Re-solve a sample with the process-pool runner (same seed, same limit) and compare with the 2-worker Dask plans."""
    from gridmap.routing.district import plan_week

    dask_dir = VAR / "plans" / "1x-w2"
    if not dask_dir.is_dir():
        return
    sample = problems[:: max(1, len(problems) // args.sample)][: args.sample]
    d = VAR / "plans" / "pool-sample"
    plan_week(None, WEEK, out_dir=d, workers=1, time_limit=args.time_limit, seed=0, problems=sample)  # type: ignore[arg-type]
    same = 0
    diff = []
    for p in sample:
        a = json.loads((d / p.code / "plan.json").read_text(encoding="utf-8"))
        b = json.loads((dask_dir / p.code / "plan.json").read_text(encoding="utf-8"))
        if a == b:
            same += 1
        else:
            diff.append({"code": p.code, "pool_travel_s": a["summary"]["travel_seconds"],
                         "dask_travel_s": b["summary"]["travel_seconds"],
                         "pool_planned": a["summary"]["visits_planned"],
                         "dask_planned": b["summary"]["visits_planned"]})
    out["same_plans"] = {"sample": len(sample), "identical": same, "different": diff[:20],
                         "note": "process-pool runner (1 process) vs 2-worker Dask LocalCluster, seed 0, same time "
                                 "limit; a time-limited search under machine load may stop at a different point"}


# ------------------------------------------------------------------ week (acceptance run, end to end)


def _week_register(path: Path) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "gridmap", "demo", "--no-serve", "--elders", "120000",
                        "--database-url", f"sqlite:///{path}"], check=True)
    return path


def _street_reads(url: str, out: dict[str, Any]) -> None:
    """read_facts of single streets against the whole register (what each street task read before)."""
    from sqlalchemy import select

    from gridmap.rules.store import read_facts
    from gridmap.store.db import make_engine
    from gridmap.store.models import Elder, Street

    eng = make_engine(url)
    from datetime import date

    on = date(2026, 11, 30)
    with eng.connect() as conn:
        names = [r[0] for r in conn.execute(select(Street.name).join(Elder, Elder.street_id == Street.id)
                                            .group_by(Street.name).order_by(Street.name))]
    picks = names[:: max(1, len(names) // 3)][:3]
    times, rows = [], 0
    for name in picks:
        t = time.perf_counter()
        rows += len(read_facts(eng, on, street=name))
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    whole = len(read_facts(eng, on))
    t_whole = time.perf_counter() - t
    eng.dispose()
    out["street_reads"] = {"streets": picks, "runs_s": [round(x, 3) for x in times], "median_s": _median(times),
                           "elders_read": rows, "reference": {"name": "read_facts of the whole register",
                                                              "elders": whole, "seconds": round(t_whole, 3)}}


def phase_week(args: argparse.Namespace) -> None:
    """``gridmap plan week`` on the 120,000-elder register: process pool vs --dask, plans compared."""
    import shutil

    from gridmap.routing.distributed import compare_runs

    reg = _week_register(Path(args.register).resolve())
    url = f"sqlite:///{reg}"
    out: dict[str, Any] = {"week": WEEK, "register": str(reg.relative_to(ROOT)) if reg.is_relative_to(ROOT)
                           else str(reg), "seed": 0, "workers": 2, "status": "running", "runs": [], "compare": []}
    _street_reads(url, out)
    merge("week", out)
    for item in args.week_limits.split(","):
        # "0.25": --time-limit 0.25 (seconds, wall clock); "i300": --iterations 300 (search bounded by work)
        iters = int(item[1:]) if item.startswith("i") else None
        limit = None if iters is not None else float(item)
        bound = f"--iterations {iters}" if iters is not None else f"--time-limit {limit:g}"
        tag = f"i{iters}" if iters is not None else f"t{limit:g}"
        pair = {}
        for runner in ("local", "dask"):
            d = VAR / "plans" / f"week-{runner}-{tag}"
            shutil.rmtree(d, ignore_errors=True)
            cmd = [sys.executable, "-m", "gridmap", "plan", "week", "--week", WEEK, *bound.split(),
                   "--seed", "0", "--workers", "2", "--out", str(d), "--database-url", url]
            if runner == "dask":
                cmd.append("--dask")
            env = {k: v for k, v in os.environ.items() if k != "GRIDMAP_DASK_SCHEDULER"}
            t = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            sm = json.loads((d / "summary.json").read_text(encoding="utf-8"))
            st = sm["stewards"]
            solve = sorted(x["seconds"] for x in st)
            pair[runner] = d
            out["runs"].append({
                "runner": runner, "time_limit_s": limit, "bound": bound, "exit_code": proc.returncode,
                "wall_s": round(wall, 1),
                "run_wall_s": sm["wall_seconds"], "build_seconds": sm.get("build_seconds"),
                "stewards": sm["stewards_total"], "failed": sm["stewards_failed"],
                "plans_valid": sm["plans_valid"], "plans_repaired": sm.get("plans_repaired", 0),
                "visits_required": sm["visits_required"], "visits_planned": sm["visits_planned"],
                "share_planned": sm["share_planned"],
                "solve_s_median": round(statistics.median(solve), 3) if solve else None,
                "solve_s_p95": round(solve[int(0.95 * (len(solve) - 1))], 3) if solve else None,
                "not_plannable": len(sm.get("not_plannable", [])),
                "stderr_tail": proc.stderr[-400:] if proc.returncode not in (0, 1) else "",
                "out_dir": str(d.relative_to(ROOT)), "measured_at": datetime.now(UTC).isoformat(timespec="seconds")})
            merge("week", out)
        cmp = compare_runs(pair["local"], pair["dask"]).to_dict()
        cmp["time_limit_s"] = limit
        cmp["bound"] = bound
        cmp["differences"] = cmp["differences"][:10]
        out["compare"].append(cmp)
        merge("week", out)
    out["status"] = "done"
    merge("week", out)


# ------------------------------------------------------------------ report


def summary_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures for bench/summary.py: figure, value (median), unit, runs, reference (same run)."""
    rows: list[dict[str, Any]] = []
    ld = d.get("load") or {}
    if ld.get("status") == "done":
        rows += [
            {"figure": f"city load: {ld['elders']:,} elders + {ld['visits']:,} visits + {ld['hazards']:,} hazards "
                       f"({ld['districts']} districts, COPY)", "value": ld["seconds_total"], "unit": "s"},
            {"figure": "city load COPY rate", "value": ld["copy_rows_per_second"], "unit": "rows/s"},
            {"figure": "city load peak RSS (chunks of 30,000 elders)", "value": ld["peak_rss_mb"], "unit": "MB"}]
    ind = d.get("indicators") or {}
    ref = ind.get("pandas_reference")
    for q in ind.get("queries", []):
        r = {"figure": f"SQL indicators {q['period']} by {q['level']} ({q['scope']})", "value": q["median_s"],
             "unit": "s", "runs": q["runs"]}
        if ref and q["scope"] != "city" and q["period"] == "2026-W48":
            r["reference"] = {"name": "pandas (read district + compute_indicators)", "value": ref["median_s"],
                              "unit": "s"}
        rows.append(r)
    if ind.get("process_peak_rss_mb"):
        rows.append({"figure": "indicators phase peak RSS (SQL answers are ≤ 290 rows; the peak is the pandas "
                               "reference pulling 1.15M rows)", "value": ind["process_peak_rss_mb"], "unit": "MB"})
    pl = d.get("plan") or {}
    runs = {r["label"]: r for r in pl.get("runs", [])}
    base = runs.get("1x-w2")
    for label, r in sorted(runs.items(), key=lambda kv: (kv[1]["scale"], kv[1]["workers"], kv[0])):
        row = {"figure": f"Dask planning {label}: {r['problems']:,} steward problems, "
                         f"{r['visits_planned']:,}/{r['visits_required']:,} visits", "value": r["wall_s"],
               "unit": "s wall", "per_problem_s": r["cost_per_problem_s"],
               "peak_rss_mb": max(r["worker_peak_rss_mb"] or [0])}
        if base is not None and r is not base:
            row["reference"] = {"name": "1x on 2 workers, cost per problem", "value": base["cost_per_problem_s"],
                                "unit": "s"}
        rows.append(row)
    if pl.get("extrapolated_10x"):
        x = pl["extrapolated_10x"]
        rows.append({"figure": f"Dask planning 10x EXTRAPOLATED (not measured): {x['problems']:,} problems",
                     "value": x["wall_s_on_2_workers"], "unit": "s wall (estimate)",
                     "per_problem_s": x["cost_per_problem_s"]})
    if pl.get("same_plans"):
        s = pl["same_plans"]
        rows.append({"figure": "same plans: process pool vs Dask (sample, same seed)", "value": s["identical"],
                     "unit": f"of {s['sample']}"})
    wk = d.get("week") or {}
    sr = wk.get("street_reads")
    if sr:
        rows.append({"figure": "read_facts of one street (120,000-elder register)", "value": sr["median_s"],
                     "unit": "s", "runs": sr["runs_s"],
                     "reference": {"name": "read_facts of the whole register", "value": sr["reference"]["seconds"],
                                   "unit": "s"}})
    for r in wk.get("runs", []):
        rows.append({"figure": (f"gridmap plan week, 120,000 elders, {r['runner']} (2 workers), "
                                f"{r.get('bound') or r['time_limit_s']}: {r['visits_planned']:,}/{r['visits_required']:,} "
                                f"visits, {r['plans_valid']}/{r['stewards'] - r['failed']} plans valid"),
                     "value": r["wall_s"], "unit": "s wall"})
    for c in wk.get("compare", []):
        rows.append({"figure": f"same plans, plan week local vs --dask, {c.get('bound') or c['time_limit_s']}",
                     "value": c["identical"], "unit": f"of {c['stewards']} stewards"})
    return rows


def _at(section: dict[str, Any]) -> str:
    return f" (commit {section['commit']})" if section.get("commit") else ""


def markdown(d: dict[str, Any]) -> str:
    """city.md from the JSON."""
    m = d.get("machine", {})
    lines = ["# City-scale benchmark (bench/city.py)", "",
             (f"Machine: {m.get('cpus')} cores, {m.get('memory_gb')} GB, Python {m.get('python')}, "
             f"{m.get('platform')} — {m.get('note')}. Last written at commit {d.get('commit')}; each section names "
             "the commit it was measured at where it was recorded."), ""]
    ld = d.get("load")
    if ld:
        lines += ["## Load (COPY, partitioned by district)" + _at(ld), "",
                  (f"Status {ld.get('status')}: {ld['elders']:,} elders, {ld['visits']:,} visits, "
                  f"{ld['hazards']:,} hazards, {ld['stewards']:,} stewards, {ld['districts']} districts, "
                  f"{ld['chunks']} chunks (≤ {ld['max_chunk_elders']:,} elders each)."), "",
                  "| phase | s |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in ld["seconds"].items()]
        lines += ["", (f"COPY {ld['copy_rows_per_second']} rows/s; peak RSS {ld['peak_rss_mb']} MB; "
                      f"tables (MB): {ld.get('table_mb')}"), ""]
    ind = d.get("indicators")
    if ind:
        lines += ["## SQL indicators (median of runs)" + _at(ind), "", (f"{ind.get('elders', 0):,} elders, "
                  f"{ind.get('visits', 0):,} visits."), "", "| period | level | scope | rows | median s | runs |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {q['period']} | {q['level']} | {q['scope']} | {q['rows']} | {q['median_s']} | {q['runs']} |"
                  for q in ind.get("queries", [])]
        if ind.get("pandas_reference"):
            r = ind["pandas_reference"]
            lines += ["", (f"Reference in the same run — {r['what']}: median {r['median_s']} s "
                          f"(read {r['read_s_last']} s of {r['rows_read']:,} rows).")]
        for e in ind.get("explain", []):
            lines += [(f"- EXPLAIN ANALYZE {e['period']} by {e['level']} ({e['scope']}): {e['execution']}; "
                      f"visit partitions scanned: {', '.join(e['partitions_scanned'])}")]
        lines += ["", "Full plans: `city_explain.txt`.", ""]
    pl = d.get("plan")
    if pl:
        lines += ["## Planning on Dask (LocalCluster)" + _at(pl), "",
                  (f"Week {pl['week']}, {pl['haidian_problems']} Haidian steward problems "
                  f"({pl['haidian_occurrences']:,} visit occurrences), {pl['time_limit_s']} s search per problem, "
                  f"seed {pl['seed']}. N× = Haidian's problems N times under new codes. Cost per problem = "
                  "wall × workers / problems. Building the problems from the register in one process: "
                  f"{pl['build_problems_single_process_s']} s."), "",
                  ("| run | problems | workers | wall s | cost/problem s | solve s (mean) | planned | plans over a limit | failed "
                  "| worker peak RSS MB |"), "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(pl.get("runs", []), key=lambda r: (r["scale"], r["workers"], r["label"])):
            lines.append(f"| {r['label']} | {r['problems']:,} | {r['workers']} | {r['wall_s']} | "
                         f"{r['cost_per_problem_s']} | {r['solve_seconds_mean']} | {r['share_planned']:.1%} | "
                         f"{r.get('plans_invalid', '?' if not r['all_valid'] else 0)} | {r['failed']} | "
                         f"{r['worker_peak_rss_mb']} |")
        lines += ["", ("Planned share: the synthetic register gives each visit steward about 185 elders, far more "
                       "in-home visits than a 360-minute working day allows; the rest are unassigned with reasons. "
                       "e2e = built from the register by 29 street tasks on the workers, then solved.")]
        if pl.get("same_plans"):
            s = pl["same_plans"]
            lines += ["", (f"Same seed, same plans: {s['identical']} of {s['sample']} sampled problems identical "
                          f"({s['note']}).")]
        if pl.get("extrapolation"):
            lines += ["", pl["extrapolation"]]
        lines.append("")
    wk = d.get("week")
    if wk:
        lines += ["## Weekly plan of the 120,000-elder register: local vs Dask (acceptance run)", "",
                  (f"`gridmap plan week --week {wk['week']} --seed {wk['seed']} --workers 2 --time-limit L | --iterations N` on "
                   f"`{wk['register']}` (the synthetic Haidian register of `gridmap demo --elders 120000`), once on "
                   "the local process pool and once with `--dask` (2-worker LocalCluster, problems built by 29 "
                   "street tasks on the workers); each run stores every steward's problem.json, plan.json and "
                   "meta.json and summary.json in its run directory. Status: " + wk.get("status", "?") + "."
                   + (f" Code: commit {wk['code_commit']}." if wk.get("code_commit") else "")
                   + (f" Note: {wk['note']}." if wk.get("note") else "")), "",
                  "| runner | limit s | wall s | stewards | failed | plans valid | planned | solve s median (p95) | exit |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in wk.get("runs", []):
            lines.append(f"| {r['runner']} | {r.get('bound') or r['time_limit_s']} | {r['wall_s']} | {r['stewards']} | {r['failed']} "
                         f"| {r['plans_valid']} | {r['visits_planned']:,}/{r['visits_required']:,} "
                         f"({r['share_planned']:.1%}) | {r['solve_s_median']} ({r['solve_s_p95']}) | "
                         f"{r['exit_code']} |")
        for c in wk.get("compare", []):
            lines += ["", (f"- `{c.get('bound') or c['time_limit_s']}`: **{c['identical']} of {c['stewards']}** stewards' "
                          f"plans identical (same stops, order, days and times); differences by kind: "
                          f"{c['by_kind'] or 'none'}.")]
        lines += ["", ("`--time-limit 0` runs no search (the seeded insertion with ejections of the solver's day "
                       "stage); `--iterations N` searches bounded by work (OR-Tools greedy descent to its local "
                       "optimum, pattern search to convergence, N ruin-and-recreate iterations per day, 2N over the "
                       "week): both are the same on any runner and any load. With a time limit (seconds) the search "
                       "stops on the wall clock, and a loaded machine stops it at different points.")]
        for rc in wk.get("rechecks", []):
            runs = ", ".join(f"{r['runner']} {r['wall_s']} s wall, {r['plans_valid']}/{r['stewards']} valid"
                             for r in rc["runs"])
            lines += ["", (f"- Re-run at commit {rc['code_commit']} ({rc['what']}), limit "
                          f"{rc['compare']['time_limit_s']:g} s: **{rc['compare']['identical']} of "
                          f"{rc['compare']['stewards']}** plans identical; {runs}.")]
        for f in wk.get("findings", []):
            lines += ["", f"- Finding: {f}"]
        sr = wk.get("street_reads")
        if sr:
            lines += ["", (f"Street facts (`read_facts(street=…)`, as each street build task reads them): median "
                          f"{sr['median_s']} s for {', '.join(sr['streets'])} (runs {sr['runs_s']}); the whole "
                          f"register ({sr['reference']['elders']:,} elders) in {sr['reference']['seconds']} s in "
                          "the same run.")]
        lines.append("")
    return "\n".join(lines)


def phase_report(args: argparse.Namespace) -> None:
    """Rewrite city.md and the summary rows from city.json (plans over a limit counted from the stored runs)."""
    data = json.loads(OUT_JSON.read_text(encoding="utf-8"))
    for r in (data.get("plan") or {}).get("runs", []):
        f = VAR / "plans" / r["label"] / "summary.json"
        if f.is_file():
            sm = json.loads(f.read_text(encoding="utf-8"))
            r["plans_invalid"] = sum(1 for x in sm["stewards"] if x["status"] == "ok" and not x["check_ok"])
    merge("plan", data.get("plan"))


def main() -> None:
    global RESULTS, OUT_JSON, OUT_MD, OUT_EXPLAIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", default="all", choices=["all", "load", "indicators", "plan", "week", "report"])
    ap.add_argument("--url", default=os.environ.get("GRIDMAP_CITY_BENCH_URL", DEFAULT_URL))
    ap.add_argument("--elders", type=int, default=1_200_000)
    ap.add_argument("--districts", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=30000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=0.25)
    ap.add_argument("--plan-runs", default="1x2w,1x1w,same,4x2w,e2e,10x2w",
                    help="comma list: <N>x<W>w (scale N, W workers), e2e (from the register), same (compare plans)")
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--register", default=str(ROOT / "var" / "plan120k.sqlite"),
                    help="week phase: the 120,000-elder register (built when missing)")
    ap.add_argument("--week-limits", default="0,i300",
                    help="week phase: comma list of per-problem bounds: seconds (--time-limit) or iN (--iterations N)")
    ap.add_argument("--memory-limit", default="3GiB", help="per local worker (nanny restarts it above 95%%)")
    ap.add_argument("--max-problems", type=int, default=0, help="only the first problems (quick runs)")
    ap.add_argument("--keep", action="store_true", help="keep earlier plan runs in city.json")
    ap.add_argument("--results", type=Path, default=RESULTS, help="results directory")
    args = ap.parse_args()
    RESULTS = args.results
    OUT_JSON, OUT_MD, OUT_EXPLAIN = RESULTS / "city.json", RESULTS / "city.md", RESULTS / "city_explain.txt"
    if args.phase == "all":
        rest, skip = [], False
        for a in sys.argv[1:]:
            if skip or a == "--phase" or a.startswith("--phase="):
                skip = a == "--phase"
                continue
            rest.append(a)
        for ph in ("load", "indicators", "plan", "week"):
            subprocess.run([sys.executable, __file__, "--phase", ph, *rest], check=True)
        return
    {"load": phase_load, "indicators": phase_indicators, "plan": phase_plan, "week": phase_week,
     "report": phase_report}[args.phase](args)


if __name__ == "__main__":
    main()
