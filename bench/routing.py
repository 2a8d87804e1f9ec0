"""Routing benchmark: Solomon VRPTW (R1, C1, RC1) and Cordeau periodic pr01–pr10 through the JSON contract, with PyVRP as the peer.

Usage::

    python bench/routing.py [--quick] [--seeds N] [--limits 10,30] [--pvrp-limit 60] [--only solomon|cordeau]

Every figure is the median over seeds. Results go to ``bench/results/routing.json``
(rewritten after every instance, so a partial run leaves partial results) and
``bench/results/routing.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gridmap.config import get_settings  # noqa: E402
from gridmap.routing.check import check_plan  # noqa: E402
from gridmap.routing.matrix import problem_matrix  # noqa: E402
from gridmap.routing.problem import parse_problem  # noqa: E402
from gridmap.routing.solver import solve  # noqa: E402

SCALE = 100  # Solomon/Cordeau units → contract seconds/metres (keeps 0.01 precision)
SOLOMON = [f"R1{i:02d}" for i in range(1, 13)] + [f"C1{i:02d}" for i in range(1, 10)] + [f"RC1{i:02d}" for i in range(1, 9)]
CORDEAU = [f"pr{i:02d}" for i in range(1, 11)]
OUT_JSON = ROOT / "bench" / "results" / "routing.json"
OUT_MD = ROOT / "bench" / "results" / "routing.md"


def vrp_dir() -> Path:
    return get_settings().data_dir / "vrp"


# ------------------------------------------------------------------ instances


def read_solomon(name: str) -> dict:
    """Solomon instance as raw arrays: x, y, demand, ready, due, service (node 0 = depot), vehicles, capacity."""
    lines = (vrp_dir() / "solomon" / f"{name}.txt").read_text().splitlines()
    veh_line = next(i for i, l in enumerate(lines) if l.strip().startswith("NUMBER"))
    vehicles, capacity = map(int, lines[veh_line + 1].split())
    rows = [list(map(float, l.split())) for l in lines if l.strip() and l.split()[0].isdigit() and len(l.split()) == 7]
    a = np.array(rows)
    return {"x": a[:, 1], "y": a[:, 2], "demand": a[:, 3], "ready": a[:, 4], "due": a[:, 5], "service": a[:, 6],
            "vehicles": vehicles, "capacity": capacity}


def _euclid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])


def solomon_problem(inst: dict) -> dict:
    """The instance in the JSON contract: one day, one steward per vehicle, time = distance, ×SCALE."""
    D = _euclid(inst["x"], inst["y"]) * SCALE
    n = len(inst["x"])
    stewards = [{"id": f"V{k + 1}", "start_index": 0, "shift": [int(inst["ready"][0] * SCALE), int(inst["due"][0] * SCALE)],
                 "capacity": int(inst["capacity"])} for k in range(inst["vehicles"])]
    visits = [{"id": f"c{i}", "location_index": i, "service_minutes": inst["service"][i] * SCALE / 60,
               "time_windows": [[int(inst["ready"][i] * SCALE), int(inst["due"][i] * SCALE)]],
               "demand": int(inst["demand"][i])} for i in range(1, n)]
    return {"days": ["2026-12-07"], "stewards": stewards, "visits": visits, "objective": "distance_metres",
            "matrix": {"seconds": D.tolist(), "metres": D.tolist()}}


def read_cordeau(name: str) -> dict:
    """Cordeau PVRP instance: days t, vehicles m, per day (D, Q), nodes with service, demand, frequency, patterns."""
    lines = [l.split() for l in (vrp_dir() / "cordeau_pvrp" / name).read_text().splitlines() if l.strip()]
    _, m, n, t = map(int, lines[0])
    DQ = [tuple(map(float, l)) for l in lines[1 : 1 + t]]
    nodes = []
    for l in lines[1 + t : 1 + t + n + 1]:
        i, x, y, d, q, f, a = int(l[0]), float(l[1]), float(l[2]), float(l[3]), float(l[4]), int(l[5]), int(l[6])
        combos = [int(c) for c in l[7 : 7 + a]]
        nodes.append((i, x, y, d, q, f, combos))
    return {"m": m, "n": n, "t": t, "DQ": DQ, "nodes": nodes}


def cordeau_problem(inst: dict) -> dict:
    t = inst["t"]
    days = [f"2026-12-{7 + d:02d}" for d in range(t)]
    x = np.array([nd[1] for nd in inst["nodes"]])
    y = np.array([nd[2] for nd in inst["nodes"]])
    D = _euclid(x, y) * SCALE
    dur, cap = inst["DQ"][0]
    stewards = [{"id": f"V{k + 1}", "start_index": 0, "shift": [0, int(dur * SCALE)],
                 "max_work_minutes": dur * SCALE / 60, "capacity": int(cap)} for k in range(inst["m"])]
    visits = []
    for i, _, _, d, q, f, combos in inst["nodes"][1:]:
        pats = []
        for c in combos:
            pats.append([days[k] for k in range(t) if c >> (t - 1 - k) & 1])
        visits.append({"id": f"c{i}", "location_index": i, "service_minutes": d * SCALE / 60, "count": f,
                       "day_patterns": pats, "demand": int(q)})
    return {"days": days, "stewards": stewards, "visits": visits, "objective": "distance_metres",
            "matrix": {"seconds": D.tolist(), "metres": D.tolist()}}


def bks() -> tuple[dict, dict]:
    sol = json.loads((vrp_dir() / "solomon_BKS.json").read_text())
    cor = {}
    for line in (vrp_dir() / "cordeau_pvrp" / "BKS.csv").read_text().splitlines()[1:]:
        k, v = line.split(",")
        if k.startswith("benchmark/PVRP/"):
            cor[k.split("/")[-1]] = float(v)
    return {k[: -len("_distance")]: v["best_known_cost"] for k, v in sol.items() if k.endswith("_distance")}, cor


# ------------------------------------------------------------------ runs


def exact_cost(plan, problem_dict: dict, D: np.ndarray) -> float:
    """Route length in instance units with exact Euclidean distances (from the plan's stop order)."""
    idx = {v["id"]: v["location_index"] for v in problem_dict["visits"]}
    total = 0.0
    for r in plan.routes:
        locs = [0] + [idx[s.visit] for s in r.stops] + [0]
        total += sum(D[a, b] for a, b in zip(locs[:-1], locs[1:]))
    return total / SCALE


def run_ours(problem_dict: dict, limit: float, seed: int, method: str = "two_stage", workers: int = 1) -> dict:
    prob = parse_problem(problem_dict)
    pm = problem_matrix(prob)
    t0 = time.perf_counter()
    plan = solve(prob, time_limit=limit, seed=seed, matrix=pm, method=method, workers=workers)
    wall = time.perf_counter() - t0
    viol = check_plan(prob, plan, pm)
    D = np.asarray(problem_dict["matrix"]["metres"])
    return {"cost": exact_cost(plan, problem_dict, D), "wall": wall, "valid": not viol,
            "unassigned": sum(u.occurrences for u in plan.unassigned), "routes": len(plan.routes)}


def run_pyvrp_solomon(inst: dict, limit: float, seed: int) -> dict:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    n = len(inst["x"])
    m = pyvrp.Model()
    L = [m.add_location(x=int(round(inst["x"][i] * SCALE)), y=int(round(inst["y"][i] * SCALE))) for i in range(n)]
    depot = m.add_depot(L[0], tw_early=int(inst["ready"][0] * SCALE), tw_late=int(inst["due"][0] * SCALE))
    m.add_vehicle_type(num_available=inst["vehicles"], capacity=int(inst["capacity"]), start_depot=depot, end_depot=depot,
                       tw_early=int(inst["ready"][0] * SCALE), tw_late=int(inst["due"][0] * SCALE))
    for i in range(1, n):
        m.add_client(L[i], delivery=int(inst["demand"][i]), service_duration=int(inst["service"][i] * SCALE),
                     tw_early=int(inst["ready"][i] * SCALE), tw_late=int(inst["due"][i] * SCALE))
    D = _euclid(inst["x"], inst["y"])
    Di = np.ceil(D * SCALE - 1e-9).astype(int)  # same rounding as ours: feasible at 0.01 precision
    for i in range(n):
        for j in range(n):
            if i != j:
                m.add_edge(L[i], L[j], distance=int(Di[i, j]), duration=int(Di[i, j]))
    t0 = time.perf_counter()
    res = m.solve(stop=MaxRuntime(limit), seed=seed, display=False)
    wall = time.perf_counter() - t0
    cost = 0.0
    for r in res.best.routes():
        # ScheduledActivity.idx is the client's own index (0-based); location = idx + 1 (one depot)
        v = [0] + [a.idx + 1 for a in r.schedule() if a.is_client()] + [0]
        assert abs(sum(Di[a, b] for a, b in zip(v[:-1], v[1:])) - r.distance()) <= 2, (v, r.distance(), sum(Di[a, b] for a, b in zip(v[:-1], v[1:])))
        cost += sum(D[a, b] for a, b in zip(v[:-1], v[1:]))
    return {"cost": cost, "wall": wall, "valid": bool(res.best.is_feasible()), "unassigned": 0,
            "routes": res.best.num_routes()}


def _machine() -> dict:
    import ortools

    try:
        from importlib.metadata import version

        import pyvrp  # noqa: F401

        pv = version("pyvrp")
    except Exception:  # noqa: BLE001
        pv = None
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception:  # noqa: BLE001
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "ortools": ortools.__version__,
            "pyvrp": pv, "load_at_start": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--limits", default="10,30")
    ap.add_argument("--pvrp-limit", type=float, default=60.0)
    ap.add_argument("--only", choices=["solomon", "cordeau"], default=None)
    ap.add_argument("--instances", default=None, help="comma-separated subset")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--peer-only", action="store_true")
    ap.add_argument("--method", default="two_stage", choices=["two_stage", "one_model", "gls_only"],
                    help="gls_only: OR-Tools guided local search without ruin and recreate (an ablation)")
    ap.add_argument("--merge", nargs="+", default=None, help="merge these result files into --out and write the report")
    ap.add_argument("--out", default=str(OUT_JSON))
    ap.add_argument("--workers", type=int, default=1,
                    help="processes for one problem (ours); PyVRP has no parallel mode and uses one")
    args = ap.parse_args()
    if args.merge:
        merged: dict = {}
        for f in args.merge:
            part = json.loads(Path(f).read_text())
            for key, val in part.items():
                if key in ("solomon", "cordeau"):
                    for inst, row in val.items():
                        merged.setdefault(key, {}).setdefault(inst, {}).update(row)
                elif key == "runs":
                    merged.setdefault("runs", []).extend(val)
                else:
                    merged.setdefault(key, val)
        for key in ("solomon", "cordeau"):  # instance order of the benchmark
            order = SOLOMON if key == "solomon" else CORDEAU
            merged[key] = {k: merged.get(key, {})[k] for k in order if k in merged.get(key, {})}
        Path(args.out).write_text(json.dumps(merged, indent=1))
        write_md(merged, Path(args.out).with_suffix(".md"))
        return
    import gridmap.routing.solver as solver_module

    if args.method == "gls_only":
        solver_module.SISR_SHARE = 0.0
    suffix = "" if args.method == "two_stage" else f"_{args.method}"
    from gridmap.routing.sisr import warm_up

    warm_up()  # the compiled search is loaded (or compiled, the first time ever) before any clock starts
    limits = [float(x) for x in args.limits.split(",")]
    sol_bks, cor_bks = bks()
    out_path = Path(args.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {}
    res.setdefault("machine", _machine())
    res["seeds"] = args.seeds
    res["workers"] = args.workers
    run_info = {"what": " ".join(sys.argv[1:]), "load_at_start": os.getloadavg()[0], "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    res.setdefault("runs", []).append(run_info)
    res.setdefault("solomon", {})
    res.setdefault("cordeau", {})
    subset = set(args.instances.split(",")) if args.instances else None

    def save() -> None:
        out_path.write_text(json.dumps(res, indent=1))
        write_md(res, out_path.with_suffix(".md"))

    if args.only in (None, "solomon"):
        for name in SOLOMON:
            if subset and name not in subset:
                continue
            inst = read_solomon(name)
            pd_ = solomon_problem(inst)
            row = res["solomon"].setdefault(name, {"bks": sol_bks[name]})
            for lim in limits:
                if not args.peer_only:
                    runs = [run_ours(pd_, lim, s, args.method if args.method != "gls_only" else "two_stage",
                                     workers=args.workers) for s in range(args.seeds)]
                    row[f"ours_{lim:g}{suffix}"] = _agg(runs, sol_bks[name])
                if not args.no_peer:
                    try:
                        pr = [run_pyvrp_solomon(inst, lim, s) for s in range(args.seeds)]
                        row[f"pyvrp_{lim:g}"] = _agg(pr, sol_bks[name])
                    except ImportError:
                        row[f"pyvrp_{lim:g}"] = None
                print(name, lim, row.get(f"ours_{lim:g}{suffix}"), row.get(f"pyvrp_{lim:g}"), flush=True)
                run_info["load_at_end"] = os.getloadavg()[0]
                save()
    if args.only in (None, "cordeau"):
        for name in CORDEAU:
            if subset and name not in subset:
                continue
            pd_ = cordeau_problem(read_cordeau(name))
            runs = [run_ours(pd_, args.pvrp_limit, s, args.method if args.method != "gls_only" else "two_stage",
                             args.workers) for s in range(args.seeds)]
            key = f"ours_{args.pvrp_limit:g}{suffix}"
            res["cordeau"].setdefault(name, {"bks": cor_bks[name]})[key] = _agg(runs, cor_bks[name])
            print(name, res["cordeau"][name], flush=True)
            run_info["load_at_end"] = os.getloadavg()[0]
            save()
    save()


def _agg(runs: list[dict], best: float) -> dict:
    costs = [r["cost"] for r in runs]
    c = statistics.median(costs)
    return {"cost": round(c, 2), "gap_pct": round(100 * (c / best - 1), 3), "wall_s": round(statistics.median(r["wall"] for r in runs), 2),
            "all_valid": all(r["valid"] for r in runs), "unassigned_max": max(r["unassigned"] for r in runs),
            "routes": statistics.median(r["routes"] for r in runs), "n_seeds": len(runs)}


def write_md(res: dict, out_md: Path | None = None) -> None:
    m = res.get("machine", {})
    runs = res.get("runs", [])
    loads = [x for r in runs for x in (r.get("load_at_start"), r.get("load_at_end")) if x is not None]
    load_txt = (f"load average {min(loads):.1f}–{max(loads):.1f} on 2 cores during the runs" if loads else
                f"load at start {m.get('load_at_start', 0):.2f}")
    lines = ["# Routing benchmark", "",
             f"Machine: {m.get('cpu')} ({m.get('cores')} cores, {load_txt}), Python {m.get('python')}, "
             f"OR-Tools {m.get('ortools')}, PyVRP {m.get('pyvrp')} (the peer, same run, same wall-clock limits, one process).",
             f"Figures: median over {res.get('seeds')} seed(s) per instance. Gap = (route length with exact Euclidean "
             "distances ÷ best known `*_distance`) − 1. Written by `bench/routing.py`; a partial run shows only finished "
             "instances. Reference figures measured on this kind of machine (`../shared/data/vrp/PROVENANCE.md`): plain "
             "OR-Tools guided local search 4.61% at 10 s and 2.73% at 30 s on Solomon; PyVRP 0.44% at 10 s.", "",
             "`ours` = `gridmap.routing.solve` fed through the JSON contract (`bench/routing.py` builds the problem dict: "
             "one steward per vehicle with `capacity`, `demand`, time = distance, coordinates ×100 and times rounded up to "
             f"whole units, `objective: distance_metres`), with `workers={res.get('workers', 1)}` "
             + ("(one process, as PyVRP); " if res.get("workers", 1) == 1 else "(processes side by side; PyVRP uses one); ")
             + "every plan also passed `check_plan` (✗ marks a plan with a violation or an unassigned visit). One day: "
             "OR-Tools first solution + guided local search for 20% of the time, then ruin and recreate "
             "(`gridmap/routing/sisr.py`) for 80%. `_gls_only` = the same without ruin and recreate (an ablation, same run).",
             "", "Runs (each line one `bench/routing.py` process; the machine was shared with other engineers' jobs, "
             "limits are wall-clock):", ""]
    for r in runs:
        lines.append(f"- `{r.get('what')}` — started {r.get('started')}, load {r.get('load_at_start', 0):.1f} at start, "
                     f"{r.get('load_at_end', r.get('load_at_start', 0)):.1f} at the end")
    lines.append("")
    lines += [f"Note: {n}" for n in res.get("notes", [])] + ([""] if res.get("notes") else [])
    sol = res.get("solomon", {})
    if sol:
        keys = sorted({k for r in sol.values() for k in r if k != "bks"}, key=lambda k: (k.split("_")[0] != "ours", float(k.split("_")[1])))
        lines += ["## Solomon VRPTW R1, C1, RC1 (distance objective)", "",
                  "| instance | BKS | " + " | ".join(f"{k} gap %" for k in keys) + " |",
                  "|---|---:|" + "---:|" * len(keys)]
        for name, r in sol.items():
            cells = []
            for k in keys:
                a = r.get(k)
                cells.append("—" if not a else f"{a['gap_pct']:.2f}" + ("" if a["all_valid"] and not a["unassigned_max"] else " ✗"))
            lines.append(f"| {name} | {r['bks']} | " + " | ".join(cells) + " |")
        lines += ["", "| run | instances | mean gap % | worst gap % | all feasible |", "|---|---:|---:|---:|---|"]
        for k in keys:
            g = [r[k]["gap_pct"] for r in sol.values() if r.get(k)]
            ok = all(r[k]["all_valid"] and not r[k]["unassigned_max"] for r in sol.values() if r.get(k))
            if g:
                lines.append(f"| {k} | {len(g)} | {statistics.mean(g):.2f} | {max(g):.2f} | {'yes' if ok else 'NO'} |")
        lines.append("")
    cor = res.get("cordeau", {})
    if cor:
        keys = sorted({k for r in cor.values() for k in r if k != "bks"})
        lines += ["## Cordeau periodic VRP pr01–pr10 (`count`, `day_patterns`, duration and capacity limits)", "",
                  "`ours_60` = the solver's default: day patterns by insertion + pattern search (20%), a packing phase "
                  "(days routed by OR-Tools, pattern search) while visits are left out, then ruin and recreate over the "
                  "whole week (visits change pattern and route) and each day polished; `ours_60_one_model` = all "
                  "steward-days in one OR-Tools model alternating with pattern search, no ruin and recreate of days "
                  "(the one-model comparison the issue asks for); `_gls_only` = two-stage with OR-Tools only.", "",
                  "| instance | BKS | " + " | ".join(f"{k} cost | gap % | unassigned | checker" for k in keys) + " |",
                  "|---|---:|" + "---:|---:|---:|---|" * len(keys)]
        for name, r in cor.items():
            cells = []
            for k in keys:
                a = r.get(k)
                cells.append("— | — | — | —" if not a else
                             f"{a['cost']} | {a['gap_pct']:.2f} | {a['unassigned_max']} | {'valid' if a['all_valid'] else 'INVALID'}")
            lines.append(f"| {name} | {r['bks']} | " + " | ".join(cells) + " |")
        lines.append("")
        for k in keys:
            g = [r[k]["gap_pct"] for r in cor.values() if r.get(k)]
            un = sum(1 for r in cor.values() if r.get(k) and r[k]["unassigned_max"])
            lines.append(f"- {k}: {len(g)} instances, mean gap {statistics.mean(g):.2f} %, worst {max(g):.2f} %, "
                         f"instances with unassigned visits: {un}")
        lines.append("")
    (out_md or OUT_MD).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
