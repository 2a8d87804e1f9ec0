"""Bounded load test on loopback: concurrent signed-in users against the dashboard with sign-in installed.

The dashboard (:func:`gridmap.dashboard.app.create_app` + :func:`gridmap.dashboard.auth.install_auth`)
runs in a separate process (werkzeug, threaded, 127.0.0.1 only) on a *copy* of
the 120,000-elder synthetic register (``var/bench_120k.sqlite`` → ``var/bench_120k_load.sqlite``,
so the demo users and audit rows written here do not touch the original).
``N`` virtual users (threads with their own ``requests`` session) each sign in
once through the ``/login`` form (one demo user per role, shared), then loop
until the time or request budget is spent over: ``GET /_dash-layout`` and
callbacks of the current app posted to ``/_dash-update-component`` with the
CSRF header (the callbacks are found in ``/_dash-dependencies`` by output and
their inputs filled from the layout's current values, so the test follows the
app as it changes).

Writes ``bench/results/load.json`` and ``bench/results/load.md``: throughput,
error rate, p50/p95/max latency per request kind.

Usage::

    .venv/bin/python bench/load.py --users 50 --duration 60 --max-requests 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SOURCE_DB = ROOT / "var" / "bench_120k.sqlite"
LOAD_DB = ROOT / "var" / "bench_120k_load.sqlite"
#: Callbacks measured: a substring of their ``output`` in /_dash-dependencies → short name.
CALLBACKS = {"db-banner.children": "cb_db_state", "sup-kpis.children": "cb_supervisor_kpis",
             "sup-table.rowData": "cb_supervisor_table"}


# ------------------------------------------------------------------ server process


def serve(db: Path, port: int, secrets_file: Path) -> None:
    """Build the app with sign-in on ``db``, write the demo passwords to ``secrets_file``, serve."""
    from werkzeug.serving import make_server

    from gridmap.dashboard.app import create_app
    from gridmap.dashboard.auth import create_demo_users
    from gridmap.store.db import init_db, make_engine

    engine = make_engine(f"sqlite:///{db}", pool_size=20, max_overflow=40)
    init_db(engine)
    t0 = time.perf_counter()
    app = create_app(engine, warm=False, secret_key=os.urandom(32))  # sign-in installed by create_app
    app.gridmap_data.warm()  # type: ignore[attr-defined]
    warm = time.perf_counter() - t0
    users = create_demo_users(engine)
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"users": users, "warm_seconds": warm}, f)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    print("READY", flush=True)
    server.serve_forever()


# ------------------------------------------------------------------ client


def _components(node: Any, out: dict[str, dict[str, Any]]) -> None:
    if isinstance(node, dict):
        props = node.get("props", {})
        cid = props.get("id")
        if isinstance(cid, str):
            out[cid] = props
        for v in props.values():
            _components(v, out)
    elif isinstance(node, list):
        for v in node:
            _components(v, out)


def _outputs(spec: str) -> Any:
    def one(s: str) -> dict[str, str]:
        cid, _, prop = s.rpartition(".")
        return {"id": cid, "property": prop.split("@")[0]}

    if spec.startswith(".."):
        return [one(p) for p in spec[2:-2].split("...")]
    return one(spec)


def _payloads(deps: list[dict[str, Any]], layout: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, name in CALLBACKS.items():
        dep = next((d for d in deps if key in d["output"]), None)
        if dep is None:
            continue
        val = lambda i: layout.get(i["id"], {}).get(i["property"]) if isinstance(i["id"], str) else None
        out[name] = {"output": dep["output"], "outputs": _outputs(dep["output"]),
                     "inputs": [{**i, "value": val(i)} for i in dep["inputs"]],
                     "state": [{**s, "value": val(s)} for s in dep.get("state", [])],
                     "changedPropIds": []}
    return out


class Recorder:
    """Latencies and errors per request kind (thread-safe)."""

    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.err: dict[str, int] = defaultdict(int)
        self.codes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.lock = threading.Lock()
        self.total = 0

    def add(self, kind: str, seconds: float, ok: bool, code: int) -> None:
        with self.lock:
            self.lat[kind].append(seconds)
            self.codes[kind][code] += 1
            self.total += 1
            if not ok:
                self.err[kind] += 1


def _timed(rec: Recorder, kind: str, fn: Any, ok_codes: tuple[int, ...] = (200, 204)) -> Any:
    t = time.perf_counter()
    try:
        r = fn()
        ok, code = r.status_code in ok_codes, r.status_code
    except Exception:  # noqa: BLE001 - a failed request is an error, the test goes on
        r, ok, code = None, False, 0
    rec.add(kind, time.perf_counter() - t, ok, code)
    return r


def virtual_user(base: str, username: str, password: str, rec: Recorder, stop: threading.Event,
                 budget: list[int], lock: threading.Lock) -> None:
    import re

    import requests

    s = requests.Session()
    page = _timed(rec, "get_login", lambda: s.get(base + "/login", timeout=60))
    if page is None or page.status_code != 200:
        return
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = _timed(rec, "post_login", lambda: s.post(base + "/login", data={"username": username, "password": password,
                                                                      "csrf_token": tok},
                                                 allow_redirects=False, timeout=60), (303,))
    if r is None or r.status_code != 303:
        rec.add("login_refused", 0.0, False, r.status_code if r is not None else 0)
        return
    lay = _timed(rec, "dash_layout", lambda: s.get(base + "/_dash-layout", timeout=60))
    deps = _timed(rec, "dash_dependencies", lambda: s.get(base + "/_dash-dependencies", timeout=60))
    if lay is None or deps is None or lay.status_code != 200 or deps.status_code != 200:
        return
    comps: dict[str, dict[str, Any]] = {}
    _components(lay.json(), comps)
    payloads = _payloads(deps.json(), comps)
    headers = {"X-CSRFToken": s.cookies.get("_csrf_token", ""), "Content-Type": "application/json"}
    plan: list[tuple[str, Any]] = [("dash_layout", lambda: s.get(base + "/_dash-layout", timeout=60))]
    for name, body in payloads.items():
        data = json.dumps(body)
        plan.append((name, lambda d=data: s.post(base + "/_dash-update-component", data=d, headers=headers,
                                                 timeout=60)))
    i = 0
    while not stop.is_set():
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        kind, fn = plan[i % len(plan)]
        _timed(rec, kind, fn)
        i += 1


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def run(users: int, duration: float, max_requests: int, port: int) -> dict[str, Any]:
    """Start the server, run the virtual users, stop everything; the measurements."""
    if not SOURCE_DB.exists():
        raise SystemExit(f"{SOURCE_DB} missing: build it with GRIDMAP_DATABASE_URL=sqlite:///{SOURCE_DB} "
                         ".venv/bin/gridmap demo --no-serve --elders 120000")
    if not LOAD_DB.exists() or LOAD_DB.stat().st_mtime < SOURCE_DB.stat().st_mtime:
        shutil.copyfile(SOURCE_DB, LOAD_DB)
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-load-"))
    secrets_file = tmp / "users.json"
    t_start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--secrets",
                             str(secrets_file)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "READY" not in line:
            raise SystemExit(f"server did not start: {line!r}")
        startup = time.perf_counter() - t_start
        info = json.loads(secrets_file.read_text())
        creds = list(info["users"].items())
        rec = Recorder()
        stop = threading.Event()
        budget, lock = [max_requests], threading.Lock()
        base = f"http://127.0.0.1:{port}"
        threads = [threading.Thread(target=virtual_user, args=(base, *creds[i % len(creds)], rec, stop, budget, lock),
                                    daemon=True) for i in range(users)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        deadline = t0 + duration
        while time.perf_counter() < deadline and any(t.is_alive() for t in threads):
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = {}
    for k, xs in sorted(rec.lat.items()):
        kinds[k] = {"requests": len(xs), "errors": rec.err.get(k, 0), "status_codes": dict(rec.codes[k]),
                    "p50_ms": round(1000 * _pct(xs, 0.5), 1), "p95_ms": round(1000 * _pct(xs, 0.95), 1),
                    "max_ms": round(1000 * max(xs), 1), "mean_ms": round(1000 * statistics.fmean(xs), 1)}
    all_lat = [x for xs in rec.lat.values() for x in xs]
    errors = sum(rec.err.values())
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "machine": f"{platform.node()} · {os.cpu_count()} cores (shared with other engineers' jobs)",
        "database": f"SQLite copy of {SOURCE_DB.name} (120,000 elders, ~850,000 visits)",
        "server": "werkzeug threaded, one process, 127.0.0.1; create_app + install_auth",
        "server_startup_s": round(startup, 1), "warm_s": round(info.get("warm_seconds", float("nan")), 1),
        "virtual_users": users, "duration_limit_s": duration, "request_limit": max_requests,
        "elapsed_s": round(elapsed, 1), "requests": rec.total, "errors": errors,
        "error_rate": round(errors / rec.total, 4) if rec.total else None,
        "throughput_rps": round(rec.total / elapsed, 1) if elapsed else None,
        "p95_ms_all": round(1000 * _pct(all_lat, 0.95), 1), "p50_ms_all": round(1000 * _pct(all_lat, 0.5), 1),
        "callbacks_measured": sorted(k for k in kinds if k.startswith("cb_")),
        "kinds": kinds,
    }


def write(res: dict[str, Any]) -> None:
    """bench/results/load.json and load.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Load test: signed-in users on the 120,000-elder register",
        "",
        f"Measured {res['measured_at']} on {res['machine']}. {res['database']}; {res['server']}.",
        f"{res['virtual_users']} virtual users (threads, one `requests` session each, one demo user per role "
        f"shared), bounded by {res['duration_limit_s']:.0f} s and {res['request_limit']} requests. Each signs in "
        "through the `/login` form once, then cycles `GET /_dash-layout` and the callbacks below "
        "(`POST /_dash-update-component` with the `X-CSRFToken` header).",
        "",
        f"**{res['requests']} requests in {res['elapsed_s']} s: {res['throughput_rps']} req/s, "
        f"error rate {res['error_rate']:.2%}, p95 {res['p95_ms_all']} ms** (p50 {res['p50_ms_all']} ms). "
        f"Server start {res['server_startup_s']} s, of which {res['warm_s']} s warming the data layer.",
        "",
        "| request | n | errors | p50 ms | p95 ms | max ms | status codes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for k, v in res["kinds"].items():
        lines.append(f"| {k} | {v['requests']} | {v['errors']} | {v['p50_ms']} | {v['p95_ms']} | {v['max_ms']} | "
                     f"{', '.join(f'{c}: {n}' for c, n in sorted(v['status_codes'].items()))} |")
    lines += [
        "",
        "Callbacks: `cb_db_state` = the database banner check (every 5 s in the page); `cb_supervisor_kpis` = the "
        "supervisor view's KPI cards and trend for the default week (whole district for the district user, "
        "scoped otherwise only once the data layer uses the signed-in user); `cb_supervisor_table` = the "
        "supervisor table. Sign-in costs one Argon2id hash (19 MiB, 2 passes; at most 4 at once).",
        "",
        "The dashboard was being rewritten while this ran: numbers describe the app at the commit measured, "
        "on a 2-core machine shared with other test runs (client and server on the same machine).",
    ]
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--max-requests", type=int, default=20000)
    p.add_argument("--port", type=int, default=18050)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--secrets", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="Print only.")
    a = p.parse_args()
    if a.serve:
        serve(LOAD_DB, a.port, a.secrets)
        return
    res = run(a.users, a.duration, a.max_requests, a.port)
    print(json.dumps(res, ensure_ascii=False, indent=2))
    if not a.no_write:
        write(res)


if __name__ == "__main__":
    main()
