"""Bounded load test on loopback: signed-in users against ``gridmap serve`` while the CLI records visits.

One run measures two servers one after the other, on the same data and the same load, so that
their ratio is meaningful on a shared machine:

* ``gunicorn``: ``gridmap serve --workers W --threads T`` (the production server,
  :mod:`gridmap.dashboard.server`: data loaded in the master before the fork);
* ``dev``: ``gridmap serve --dev``, the single-process development server, as the reference.

Each server runs on a fresh copy of the 120,000-elder synthetic register
(``var/bench_120k.sqlite`` → ``var/bench_120k_load.sqlite``, so that the demo users, sessions,
audit rows and visits written here never touch the original), on 127.0.0.1 only, with
``GRIDMAP_WORKER_HEADER=1`` so that each response names the worker that answered.
Once it has warmed up (its processes idle), for ``--duration`` seconds:

* ``N`` virtual users (threads, one ``requests`` session each) sign in once through the
  ``/login`` form (one demo user per role, shared), then loop over ``GET /_dash-layout``
  and callbacks of the current app posted to ``/_dash-update-component`` with the CSRF
  header (found in ``/_dash-dependencies`` by output, inputs filled from the layout);
* a writer records one visit per ``--write-every`` seconds from the CLI, each for another elder:
  by default (``--writer-mode stream``) as a JSON line piped into one ``gridmap visits record -``
  process (a sync job feeding records); ``--writer-mode process`` starts ``gridmap visits record FILE``
  anew for each visit (an operator at a shell), at most ``--writers`` at once;
* a poller asks ``/healthz`` on fresh connections every 0.1 s: each answer names its worker and
  how far that worker has followed the database's change feed (``seq``). The staleness of a
  write is the time from its change-log row (written in the write's transaction) to the first
  answer of **every** worker showing that ``seq`` or later.

Afterwards the memory of every server process (RSS; USS, its own pages; PSS, shared pages
divided among the processes sharing them) is read with psutil.

Writes ``bench/results/load.json`` and ``bench/results/load.md``. Never run as a unit test.

Usage::

    .venv/bin/python bench/load.py --users 50 --duration 60 --workers 2 --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
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
#: The targets of issue #15 item 5.
TARGET_P95_MS = 300.0
TARGET_STALENESS_P95_S = 5.0
#: A visit's answers (all unremarkable: the write is measured, not the follow-ups).
ANSWERS = dict(family_change="无变化", expression="无变化", mobility="无变化", illness="无变化", mood="无变化",
               gas_safety="安全", water_heating_safety="安全", electricity_safety="安全",
               personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")


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
        self.ends: dict[str, list[float]] = defaultdict(list)  # perf_counter at each answer (steady-state split)
        self.err: dict[str, int] = defaultdict(int)
        self.codes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.lock = threading.Lock()
        self.total = 0

    def add(self, kind: str, seconds: float, ok: bool, code: int) -> None:
        with self.lock:
            self.lat[kind].append(seconds)
            self.ends[kind].append(time.perf_counter())
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
                 budget: list[int], lock: threading.Lock, think: float = 0.0, seed: int = 0,
                 arrive_after: float = 0.0) -> None:
    """One person at the dashboard: signs in, loads the page, then asks for its views one after another.

    ``arrive_after``: seconds before this person opens the sign-in page (``--ramp``).
    ``think``: mean seconds between two requests of this person (exponentially distributed, like people who
    read what they got before they click again; the page's own database check comes every 5 s); ``0`` asks
    again at once (closed loop: a stress test of throughput, not of what people see).
    """
    import random
    import re

    import requests

    if arrive_after > 0 and stop.wait(arrive_after):  # people start their day one after another, not in one instant
        return
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
    rng = random.Random(seed)
    if think > 0 and stop.wait(rng.uniform(0, think)):  # people do not all click at the same instant
        return
    i = 0
    while not stop.is_set():
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        kind, fn = plan[i % len(plan)]
        _timed(rec, kind, fn)
        i += 1
        if think > 0 and stop.wait(rng.expovariate(1.0 / think)):
            return


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ------------------------------------------------------------------ the server under test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_copy() -> dict[str, Any]:
    """Copy the source register, bring its schema up to date, make the demo users; what the run needs of it."""
    from sqlalchemy import func, select

    from gridmap.access import create_demo_users
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.models import Elder

    for suffix in ("", "-wal", "-shm"):
        Path(str(LOAD_DB) + suffix).unlink(missing_ok=True)
    shutil.copyfile(SOURCE_DB, LOAD_DB)
    os.chmod(LOAD_DB, 0o600)
    engine = make_engine(f"sqlite:///{LOAD_DB}")
    init_db(engine)
    users = create_demo_users(engine)
    with engine.connect() as conn:
        elders = conn.scalars(select(Elder.id).order_by(func.random()).limit(5000)).all()
    engine.dispose()
    return {"users": users, "elders": list(elders)}


def _seq_rows(since: int) -> list[tuple[int, float]]:
    """``(seq, at as a Unix time)`` of the change-log rows after ``since`` (empty without a change log)."""
    from sqlalchemy import select

    from gridmap.store.db import make_engine

    try:
        from gridmap.store.models import ChangeLog
    except ImportError:
        return []
    engine = make_engine(f"sqlite:///{LOAD_DB}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ChangeLog.seq, ChangeLog.at).where(ChangeLog.seq > since)).all()
    finally:
        engine.dispose()
    out = []
    for seq, at in rows:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        out.append((int(seq), at.timestamp()))
    return out


def _latest_seq() -> int:
    rows = _seq_rows(-1)
    return max((s for s, _ in rows), default=0)


class Server:
    """``gridmap serve`` as a subprocess (its output in a log file)."""

    def __init__(self, mode: str, port: int, workers: int, threads: int, log: Path) -> None:
        args = ["--dev"] if mode == "dev" else ["--workers", str(workers), "--threads", str(threads)]
        env = {**os.environ, "GRIDMAP_WORKER_HEADER": "1", "GRIDMAP_SECRET_KEY": os.urandom(24).hex()}
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "gridmap", "serve", "--database-url",
                                      f"sqlite:///{LOAD_DB}", "--port", str(port), *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.base = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 900.0) -> float:
        """Wait for ``/healthz``; the seconds since the start."""
        import requests

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=5).status_code == 200:
                    return time.perf_counter() - self.t0
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise SystemExit(f"server not ready in {timeout} s")

    def processes(self) -> list[Any]:
        import psutil

        try:
            p = psutil.Process(self.proc.pid)
            return [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def wait_idle(self, cpu_below: float = 15.0, quiet_s: float = 3.0, timeout: float = 600.0) -> float:
        """Wait until the server's processes together use less than ``cpu_below`` % CPU for ``quiet_s`` (the
        background warm-up is done); the seconds waited."""
        t0 = time.perf_counter()
        quiet = 0.0
        while time.perf_counter() - t0 < timeout:
            procs = self.processes()
            for p in procs:
                p.cpu_percent(None)
            time.sleep(1.0)
            total = 0.0
            for p in procs:
                try:
                    total += p.cpu_percent(None)
                except Exception:  # noqa: BLE001 - a process that ended
                    pass
            quiet = quiet + 1.0 if total < cpu_below else 0.0
            if quiet >= quiet_s:
                break
        return time.perf_counter() - t0

    def memory(self) -> list[dict[str, Any]]:
        """RSS/USS/PSS (MiB) of every server process; the first is the one started (gunicorn's master)."""
        from gridmap.dashboard.server import memory

        out = []
        for i, p in enumerate(self.processes()):
            try:
                m = memory(p.pid)
            except Exception:  # noqa: BLE001
                continue
            out.append({"pid": p.pid, "role": "master" if i == 0 and self.processes()[1:] else
                        ("process" if i == 0 else "worker"), **{k: round(v, 1) for k, v in m.items()}})
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


# ------------------------------------------------------------------ writer and staleness poller


class Writer(threading.Thread):
    """Starts ``gridmap visits record`` once per ``every`` seconds (each for another elder; at most ``limit``
    running at once: a tick with ``limit`` still running is skipped and counted)."""

    def __init__(self, elders: list[int], every: float, limit: int, tmp: Path, stop: threading.Event,
                 nice: int = 0) -> None:
        super().__init__(daemon=True)
        self.elders, self.every, self.limit, self.tmp, self.stop_ev = elders, every, limit, tmp, stop
        self.nice = nice
        self.started = self.ok = self.failed = self.skipped = 0
        self.seconds: list[float] = []
        self.cpu: list[float] = []  # user + system CPU seconds of each finished writer process
        self.errors: list[str] = []
        self._running: list[tuple[subprocess.Popen[bytes], float, Path]] = []

    def _reap(self) -> None:
        for item in list(self._running):
            proc, t0, f = item
            if proc.returncode is None:
                try:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # the exit status and the CPU it used
                except ChildProcessError:
                    pid, status, usage = proc.pid, 0, None
                if pid == 0:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)
                if usage is not None:
                    self.cpu.append(usage.ru_utime + usage.ru_stime)
            self._running.remove(item)
            self.seconds.append(time.perf_counter() - t0)
            if proc.returncode == 0:
                self.ok += 1
            else:
                self.failed += 1
                err = proc.stderr.read().decode(errors="replace")[-300:] if proc.stderr else ""
                self.errors.append(err)
            f.unlink(missing_ok=True)

    def run(self) -> None:
        from gridmap.dashboard.data import today_beijing

        today = today_beijing()
        next_t = time.perf_counter()
        i = 0
        while not self.stop_ev.is_set():
            self._reap()
            if len(self._running) >= self.limit:
                self.skipped += 1
            else:
                elder = self.elders[i % len(self.elders)]
                i += 1
                f = self.tmp / f"visit-{i}.json"
                f.write_text(json.dumps(dict(elder_id=elder, visited_on=today.isoformat(), mode="上门探访",
                                             visitor_role="志愿者", **ANSWERS), ensure_ascii=False), encoding="utf-8")
                proc = subprocess.Popen([sys.executable, "-m", "gridmap", "visits", "record", str(f), "--database-url",
                                         f"sqlite:///{LOAD_DB}", "--user", "bench-writer"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                                        preexec_fn=(lambda n=self.nice: os.nice(n)) if self.nice else None)
                self._running.append((proc, time.perf_counter(), f))
                self.started += 1
            next_t += self.every
            self.stop_ev.wait(max(0.0, next_t - time.perf_counter()))
        end = time.perf_counter() + 120
        while self._running and time.perf_counter() < end:
            self._reap()
            time.sleep(0.2)


class StreamWriter(threading.Thread):
    """One ``gridmap visits record -`` process fed one visit (a JSON line) per ``every`` seconds.

    The process is started before the clock (its imports are not a write); each write is timed from its line
    written to its confirmation line read back. Its CPU is read from the process at the end, per write.
    """

    def __init__(self, elders: list[int], every: float, stop: threading.Event, nice: int = 0) -> None:
        super().__init__(daemon=True)
        self.elders, self.every, self.stop_ev, self.nice = elders, every, stop, nice
        self.started = self.ok = self.failed = self.skipped = 0
        self.seconds: list[float] = []
        self.cpu: list[float] = []
        self.errors: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "gridmap", "visits", "record", "-", "--database-url",
                                      f"sqlite:///{LOAD_DB}", "--user", "bench-writer"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=ROOT, text=True, bufsize=1,
                                     preexec_fn=(lambda n=nice: os.nice(n)) if nice else None)
        import psutil

        self._ps = psutil.Process(self.proc.pid)
        self._cpu0 = 0.0

    def run(self) -> None:
        from gridmap.dashboard.data import today_beijing

        today = today_beijing()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        t = self._ps.cpu_times()
        self._cpu0 = t.user + t.system
        next_t = time.perf_counter()
        i = 0
        while not self.stop_ev.is_set():
            elder = self.elders[i % len(self.elders)]
            i += 1
            line = json.dumps(dict(elder_id=elder, visited_on=today.isoformat(), mode="上门探访",
                                   visitor_role="志愿者", **ANSWERS), ensure_ascii=False)
            t0 = time.perf_counter()
            self.started += 1
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
                answer = self.proc.stdout.readline()
            except OSError as exc:
                self.failed += 1
                self.errors.append(str(exc))
                break
            self.seconds.append(time.perf_counter() - t0)
            if '"stored"' in answer or '"duplicate"' in answer:
                self.ok += 1
            else:
                self.failed += 1
                self.errors.append(answer[-300:])
            next_t += self.every
            if next_t < time.perf_counter():
                self.skipped += 1
                next_t = time.perf_counter()
            self.stop_ev.wait(max(0.0, next_t - time.perf_counter()))
        t = self._ps.cpu_times()
        if self.started:
            per = (t.user + t.system - self._cpu0) / self.started
            self.cpu = [per] * self.started
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Poller(threading.Thread):
    """Asks ``/healthz`` every ``every`` s on a fresh connection: (Unix time, worker pid, seq) per answer."""

    def __init__(self, base: str, stop: threading.Event, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.base, self.stop_ev, self.every = base, stop, every
        self.seen: list[tuple[float, str, int]] = []
        self.latency: list[float] = []
        self.no_seq = 0

    def run(self) -> None:
        import requests

        while not self.stop_ev.is_set():
            try:
                t0 = time.perf_counter()
                r = requests.get(self.base + "/healthz", headers={"Connection": "close"}, timeout=30)
                t = time.time()
                self.latency.append(time.perf_counter() - t0)
                body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
                if isinstance(body, dict) and "seq" in body:
                    self.seen.append((t, r.headers.get("X-Gridmap-Worker", "?"), int(body["seq"])))
                else:
                    self.no_seq += 1
            except Exception:  # noqa: BLE001 - counted as a gap in the polls only
                pass
            self.stop_ev.wait(self.every)


def staleness(rows: list[tuple[int, float]], seen: list[tuple[float, str, int]], end: float,
              settle: float = 10.0) -> dict[str, Any]:
    """Per write (change-log row): the time until every worker that answered showed its seq.

    Only rows at least ``settle`` seconds before ``end`` count (a later one may not have been
    polled in every worker yet); a row some worker never showed is counted as not visible.
    """
    workers = sorted({w for _, w, _ in seen})
    by_worker: dict[str, list[tuple[float, int]]] = {w: sorted((t, s) for t, w2, s in seen if w2 == w)
                                                     for w in workers}
    lags: list[float] = []
    invisible = 0
    for seq, at in rows:
        if at > end - settle:
            continue
        times = []
        for w in workers:
            hit = next((t for t, s in by_worker[w] if s >= seq and t >= at), None)
            times.append(hit)
        if not workers or any(t is None for t in times):
            invisible += 1
            continue
        lags.append(max(times) - at)  # type: ignore[type-var]
    return {"workers_polled": len(workers), "polls": len(seen), "writes_measured": len(lags),
            "not_visible_by_end": invisible,
            "p50_s": round(_pct(lags, 0.5), 2) if lags else None,
            "p95_s": round(_pct(lags, 0.95), 2) if lags else None,
            "max_s": round(max(lags), 2) if lags else None}


# ------------------------------------------------------------------ one server, then the run


def _summary(rec: Recorder, elapsed: float, steady_from: float | None = None) -> dict[str, Any]:
    """Latency per kind and overall; ``steady_from`` (perf_counter): also the figures of the answers after it
    (everyone has arrived and signed in)."""
    kinds = {}
    for k, xs in sorted(rec.lat.items()):
        kinds[k] = {"requests": len(xs), "errors": rec.err.get(k, 0), "status_codes": dict(rec.codes[k]),
                    "p50_ms": round(1000 * _pct(xs, 0.5), 1), "p95_ms": round(1000 * _pct(xs, 0.95), 1),
                    "max_ms": round(1000 * max(xs), 1), "mean_ms": round(1000 * statistics.fmean(xs), 1)}
    all_lat = [x for xs in rec.lat.values() for x in xs]
    errors = sum(rec.err.values())
    return {"elapsed_s": round(elapsed, 1), "requests": rec.total, "errors": errors,
            "error_rate": round(errors / rec.total, 4) if rec.total else None,
            "throughput_rps": round(rec.total / elapsed, 1) if elapsed else None,
            "p50_ms_all": round(1000 * _pct(all_lat, 0.5), 1), "p95_ms_all": round(1000 * _pct(all_lat, 0.95), 1),
            **({"steady": _steady(rec, steady_from)} if steady_from is not None else {}),
            "kinds": kinds}


def _steady(rec: Recorder, since: float) -> dict[str, Any]:
    """The answers given after ``since``: once every user has arrived and signed in."""
    lat = [x for k, xs in rec.lat.items() for x, t in zip(xs, rec.ends[k], strict=True) if t >= since]
    return {"requests": len(lat), "p50_ms": round(1000 * _pct(lat, 0.5), 1) if lat else None,
            "p95_ms": round(1000 * _pct(lat, 0.95), 1) if lat else None,
            "p99_ms": round(1000 * _pct(lat, 0.99), 1) if lat else None}


def run_mode(mode: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Measure one server (``gunicorn`` or ``dev``) on a fresh copy of the register."""
    import psutil

    t = time.perf_counter()
    prep = fresh_copy()
    copy_s = time.perf_counter() - t
    port = a.port or _free_port()
    server = Server(mode, port, a.workers, a.threads, tmp / f"{mode}.log")
    try:
        startup = server.wait_ready()
        idle_wait = server.wait_idle()
        mem_idle = server.memory()
        seq0 = _latest_seq()
        creds = list(prep["users"].items())
        rec = Recorder()
        stop = threading.Event()
        budget, lock = [a.max_requests], threading.Lock()
        if a.write_every <= 0:
            writer = None
        elif a.writer_mode == "stream":
            writer = StreamWriter(prep["elders"], a.write_every, stop, a.writer_nice)
        else:
            writer = Writer(prep["elders"], a.write_every, a.writers, tmp, stop, a.writer_nice)
        poller = Poller(server.base, stop) if a.staleness else None
        threads = [threading.Thread(target=virtual_user,
                                    args=(server.base, *creds[i % len(creds)], rec, stop, budget, lock, a.think, i,
                                          a.ramp * i / max(1, a.users)),
                                    daemon=True)
                   for i in range(a.users)]
        load0 = os.getloadavg()
        psutil.cpu_percent(None)
        client0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for th in (*threads, *(x for x in (writer, poller) if x is not None)):
            th.start()
        deadline = t0 + a.duration
        while time.perf_counter() < deadline and any(th.is_alive() for th in threads):
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        mem_load = server.memory()
        cpu = psutil.cpu_percent(None)
        client1 = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
        if poller is not None and writer is not None:  # the users stop; the poller sees the last writes land
            time.sleep(a.settle)
        end_wall = time.time()
        stop.set()
        for th in threads:
            th.join(timeout=120)
        if writer is not None:
            writer.join(timeout=180)
        if poller is not None:
            poller.join(timeout=30)
        load1 = os.getloadavg()
        rows = _seq_rows(seq0)
        log = server.log()
    finally:
        server.stop()
    out = {"mode": mode, "command": "gridmap serve " + ("--dev" if mode == "dev" else
                                                        f"--workers {a.workers} --threads {a.threads}"),
           "copy_s": round(copy_s, 1), "startup_s": round(startup, 1), "warm_idle_wait_s": round(idle_wait, 1),
           **_summary(rec, elapsed, t0 + a.ramp + 5.0 if a.ramp > 0 else None),
           "ramp_s": a.ramp,
           "machine_load": {"loadavg_1min_before": round(load0[0], 2), "loadavg_1min_after": round(load1[0], 2),
                            "cpu_percent_during": cpu,
                            "load_client_cpu_cores": round(client_cpu / elapsed, 2) if elapsed else None},
           "memory_idle_mib": mem_idle, "memory_after_load_mib": mem_load}
    m = re.search(r"data loaded before the fork in ([\d.]+) s", log)
    if m:
        out["preload_s"] = float(m.group(1))
    out["worker_memory_at_start"] = [{"pid": int(p), "rss": int(r)} for p, r in
                                     re.findall(r"worker (\d+) ready: RSS (\d+) MiB", log)]
    if writer is not None:
        out["writer"] = {"mode": a.writer_mode, "every_s": a.write_every, "max_in_flight": a.writers,
                         "nice": a.writer_nice,
                         "writes_per_s": round(writer.ok / elapsed, 2) if elapsed else None,
                         "started": writer.started,
                         "ok": writer.ok, "failed": writer.failed, "skipped_ticks": writer.skipped,
                         "cli_p50_s": round(_pct(writer.seconds, 0.5), 2) if writer.seconds else None,
                         "cli_p95_s": round(_pct(writer.seconds, 0.95), 2) if writer.seconds else None,
                         "cli_cpu_p50_s": round(_pct(writer.cpu, 0.5), 2) if writer.cpu else None,
                         "errors": writer.errors[:3], "change_log_rows": len(rows)}
    if poller is not None:
        st = staleness(rows, poller.seen, end_wall)
        if poller.latency:  # a poll waits in the server's queue like any request: part of every staleness figure
            st["poll_latency_p50_s"] = round(_pct(poller.latency, 0.5), 2)
            st["poll_latency_p95_s"] = round(_pct(poller.latency, 0.95), 2)
        if not poller.seen:
            st["note"] = ("/healthz gave no seq (no change follower in this version): staleness not measured"
                          if poller.no_seq else "no answer")
        out["staleness"] = st
    return out


def run(a: argparse.Namespace) -> dict[str, Any]:
    """Every mode asked for, one after the other; ratios against the development server."""
    if not SOURCE_DB.exists():
        raise SystemExit(f"{SOURCE_DB} missing: build it with .venv/bin/gridmap demo --no-serve --elders 120000 "
                         f"--database-url sqlite:///{SOURCE_DB}")
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-load-"))
    try:
        modes = {m: run_mode(m, a, tmp) for m in a.modes}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "tree_dirty": bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                          capture_output=True, text=True, cwd=ROOT).stdout.strip()),
        "machine": f"{platform.node()} · {os.cpu_count()} cores (shared with other engineers' jobs; client, "
                   "writer and server on the same machine)",
        "database": f"SQLite copy of {SOURCE_DB.name} (120,000 elders, ~850,000 visits), fresh for each server",
        "virtual_users": a.users, "think_s": a.think, "ramp_s": a.ramp, "duration_limit_s": a.duration, "request_limit": a.max_requests,
        "targets": {"p95_ms": TARGET_P95_MS, "errors": 0, "staleness_p95_s": TARGET_STALENESS_P95_S},
        "modes": modes,
    }
    if "gunicorn" in modes and "dev" in modes:
        g, d = modes["gunicorn"], modes["dev"]
        ratio = lambda x, y: round(x / y, 2) if x and y else None  # noqa: E731
        res["ratios_gunicorn_vs_dev"] = {
            "p50": ratio(g["p50_ms_all"], d["p50_ms_all"]), "p95": ratio(g["p95_ms_all"], d["p95_ms_all"]),
            "throughput": ratio(g["throughput_rps"], d["throughput_rps"])}
    g = modes.get("gunicorn")
    if g:
        st = g.get("staleness", {})
        res["verdict"] = {"p95_ok": g["p95_ms_all"] < TARGET_P95_MS, "errors_ok": g["errors"] == 0,
                          "staleness_ok": (st.get("p95_s") is not None and st["p95_s"] < TARGET_STALENESS_P95_S
                                           and not st.get("not_visible_by_end"))}
    return res


def _mem_line(mem: list[dict[str, Any]]) -> str:
    return "; ".join(f"{m['role']} {m['pid']}: RSS {m['rss']:.0f}" + (f", USS {m['uss']:.0f}" if "uss" in m else "")
                     + (f", PSS {m['pss']:.0f}" if "pss" in m else "") + " MiB" for m in mem)


def write(res: dict[str, Any]) -> None:
    """bench/results/load.json and load.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Load test: signed-in users on the 120,000-elder register, with the CLI writing",
        "",
        f"Measured {res['measured_at']} at commit `{res['commit']}`"
        + (" (plus uncommitted work in the tree)" if res.get("tree_dirty") else "")
        + f" on {res['machine']}. {res['database']}.",
        f"{res['virtual_users']} virtual users (threads, one `requests` session each, one demo user per role "
        f"shared), bounded by {res['duration_limit_s']:.0f} s and {res['request_limit']} requests per server. "
        + (f"They arrive one after another over the first {res['ramp_s']:g} s (as people start their day; "
           "`--ramp 0`: all at once). " if res.get("ramp_s") else "")
        + "Each signs in through the `/login` form once, then cycles `GET /_dash-layout` and the callbacks below "
        "(`POST /_dash-update-component` with the `X-CSRFToken` header), "
        + (f"waiting a random time between two requests (exponential, mean {res.get('think_s', 0):g} s, as a "
           "person reads a view before the next click; the page's own database check comes every 5 s). "
           if res.get("think_s") else "without waiting (closed loop: a throughput stress test). ")
        + "Meanwhile a writer records one visit a second from the CLI ("
        + ("piped as a JSON line into one `gridmap visits record -` process"
           if (next(iter(res["modes"].values()), {}).get("writer") or {}).get("mode") == "stream"
           else "`gridmap visits record`, a new process each time")
        + "), and a poller reads `/healthz` "
        "(worker pid and followed change-feed `seq`) every 0.1 s. Both servers ran in this one run, one after "
        "the other, each on a fresh copy of the register.",
        "",
        f"Targets (issue #15 item 5): p95 < {res['targets']['p95_ms']:.0f} ms, 0 errors, staleness p95 < "
        f"{res['targets']['staleness_p95_s']:.0f} s.",
        "",
        "| server | requests | req/s | errors | p50 ms | p95 ms | p95 ms once all signed in | staleness p50 / p95 / "
        "max s | writes ok / started | load avg before → after | CPU % (load client's share, cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for name, m in res["modes"].items():
        st = m.get("staleness") or {}
        stl = (f"{st.get('p50_s')} / {st.get('p95_s')} / {st.get('max_s')} ({st.get('writes_measured')} writes, "
               f"{st.get('workers_polled')} workers" + (f", {st['not_visible_by_end']} not visible"
                                                         if st.get("not_visible_by_end") else "")
               + (f"; /healthz itself p50 {st['poll_latency_p50_s']} s" if "poll_latency_p50_s" in st else "") + ")"
               if st.get("p95_s") is not None else st.get("note", "not measured"))
        w = m.get("writer") or {}
        ml = m["machine_load"]
        lines.append(f"| `{m['command']}` | {m['requests']} | {m['throughput_rps']} | {m['errors']} | "
                     f"{m['p50_ms_all']} | {m['p95_ms_all']} | {(m.get('steady') or {}).get('p95_ms', '–')} | {stl} | "
                     f"{w.get('ok', '–')} / {w.get('started', '–')} "
                     f"| {ml['loadavg_1min_before']} → {ml['loadavg_1min_after']} | {ml['cpu_percent_during']} "
                     f"({ml.get('load_client_cpu_cores', '–')}) |")
    r = res.get("ratios_gunicorn_vs_dev")
    if r:
        lines += ["", f"Ratios gunicorn / development server (same run): p50 ×{r['p50']}, p95 ×{r['p95']}, "
                      f"throughput ×{r['throughput']}."]
    v = res.get("verdict")
    if v:
        lines += ["", "Verdict for `gridmap serve`: " + ", ".join(
            f"{k.removesuffix('_ok')} {'met' if ok else '**not met**'}" for k, ok in v.items()) + "."]
    lines += ["", "## Memory (MiB)", ""]
    for name, m in res["modes"].items():
        lines.append(f"- `{m['command']}`: started in {m['startup_s']} s"
                     + (f" (data loaded in the master before the fork: {m['preload_s']} s)" if "preload_s" in m else "")
                     + f", then {m['warm_idle_wait_s']} s until idle.")
        lines.append(f"  - idle: {_mem_line(m['memory_idle_mib'])}")
        lines.append(f"  - after the load: {_mem_line(m['memory_after_load_mib'])}")
    lines += ["", "RSS counts shared pages in every process; USS only the process's own pages; PSS shares each "
              "shared page among the processes that share it (the PSS of all processes adds up to the memory they "
              "take together). The workers are forked from a master that has already read and computed the "
              "register (preload, `gc.freeze`), so most of their RSS is shared with it.", ""]
    for name, m in res["modes"].items():
        lines += [f"## `{m['command']}`: per request kind", "",
                  "| request | n | errors | p50 ms | p95 ms | max ms | status codes |", "|---|---:|---:|---:|---:|---:|---|"]
        for k, x in m["kinds"].items():
            lines.append(f"| {k} | {x['requests']} | {x['errors']} | {x['p50_ms']} | {x['p95_ms']} | {x['max_ms']} | "
                         f"{', '.join(f'{c}: {n}' for c, n in sorted(x['status_codes'].items()))} |")
        w = m.get("writer")
        if w:
            what = ("visits piped as JSON lines into one `gridmap visits record -` process"
                    if w.get("mode") == "stream" else "`gridmap visits record` processes started")
            lines += ["", f"Writer: {w['started']} {what}"
                          + (f" at niceness {w['nice']}" if w.get("nice") else "")
                          + f" ({w.get('writes_per_s', '–')} writes/s achieved; {w['ok']} ok, "
                          f"{w['failed']} failed, {w['skipped_ticks']} ticks skipped with {w['max_in_flight']} still "
                          f"running), each {w['cli_p50_s']} s (p50) / {w['cli_p95_s']} s (p95) "
                          + ("from line written to its confirmation, " if w.get("mode") == "stream"
                             else "from start to exit, ")
                          + f"{w.get('cli_cpu_p50_s', '–')} s of CPU (p50); "
                          f"{w['change_log_rows']} change-log rows."]
        lines.append("")
    lines += [
        "Callbacks: `cb_db_state` = the database banner check (every 5 s in the page); `cb_supervisor_kpis` = the "
        "supervisor view's KPI cards and trend for the default week; `cb_supervisor_table` = the supervisor table. "
        "Sign-in costs one Argon2id hash (19 MiB, 2 passes; at most 4 at once). Staleness: from a write's change-log "
        "row (in its transaction) to the first `/healthz` answer of every worker showing that seq; the poller's "
        "0.1 s period adds up to about 0.2 s, and each poll waits in the server's queue like any request (its own "
        "latency is shown beside). A write counts only when every worker showed it before the end (the poller goes "
        "on for `--settle` s after the users stop); one that some worker never showed is counted as not visible.",
        "",
        "Client, writer processes and server share one 2-core machine, itself shared with other jobs: the numbers "
        "compare the two servers measured in the same run; absolute values depend on the machine's load.",
    ]
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--think", type=float, default=3.0,
                   help="Mean seconds a person waits between two requests (0: closed loop, a throughput stress test).")
    p.add_argument("--duration", type=float, default=90.0)
    p.add_argument("--ramp", type=float, default=30.0,
                   help="Seconds over which the users arrive, one after another (0: all at once).")
    p.add_argument("--max-requests", type=int, default=20000)
    p.add_argument("--port", type=int, default=0, help="Port (default: a free one).")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=["gunicorn", "dev"],
                   help="Servers to measure, in order: gunicorn,dev.")
    p.add_argument("--write-every", type=float, default=1.0, help="Seconds between two CLI writes (0: no writer).")
    p.add_argument("--writers", type=int, default=4, help="CLI writes running at once at most (--writer-mode process).")
    p.add_argument("--writer-mode", choices=["stream", "process"], default="stream",
                   help="stream: one `gridmap visits record -` process fed a visit per line (a sync job); process: "
                        "a new `gridmap visits record FILE` process per visit (an operator at a shell).")
    p.add_argument("--writer-nice", type=int, default=0,
                   help="Run each writer process at this niceness (0: the server's priority). On a machine where "
                        "client, writer and server share the cores, a positive value models a writer on another "
                        "machine: its CPU is still reported.")
    p.add_argument("--staleness", action=argparse.BooleanOptionalAction, default=True,
                   help="Poll /healthz for the followed seq of every worker (needs the change follower).")
    p.add_argument("--settle", type=float, default=10.0, help="Seconds the poller goes on after the users stop.")
    p.add_argument("--no-write", action="store_true", help="Print only.")
    p.add_argument("--source", type=Path, default=None,
                   help="Another register to copy instead of var/bench_120k.sqlite (a quick trial of the bench; "
                        "implies --no-write).")
    a = p.parse_args()
    if a.source is not None:
        global SOURCE_DB, LOAD_DB
        SOURCE_DB = a.source.resolve()
        LOAD_DB = SOURCE_DB.with_name(SOURCE_DB.stem + "_load.sqlite")
        a.no_write = True
    res = run(a)
    print(json.dumps(res, ensure_ascii=False, indent=2))
    if not a.no_write:
        write(res)


if __name__ == "__main__":
    main()
