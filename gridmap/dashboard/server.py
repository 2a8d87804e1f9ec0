"""Serve the dashboard in production: gunicorn with gthread workers, the data loaded once before the fork.

``gridmap serve`` (:func:`serve`) runs :class:`GridmapServer`, a small
:class:`gunicorn.app.base.BaseApplication`:

* **Preload.** The master builds the app (:func:`gridmap.dashboard.app.create_app`,
  which also fixes the session-signing key, see below), reads the layers and the
  register and computes the default views and the road graph
  (:meth:`~gridmap.dashboard.data.DashboardData.warm` and ``warm_more``), closes
  its database connections and calls :func:`gc.freeze`; only then are the workers
  forked. They share those pages copy-on-write (the frozen objects are not
  written by the collector, so their pages stay shared).
* **After the fork** (``post_fork``): threads do not survive a fork, so each worker
  drops the connections inherited from the master (``engine.dispose(close=False)``)
  and starts its own background work: ``DashboardData.start_background()`` (the
  change-feed follower and the warm-up, once per process) where it exists, else the
  warm-up alone; and its :class:`Scheduler`.
* **One scheduler.** Every worker runs an APScheduler with the periodic jobs
  (:data:`JOBS`: escalation of unacknowledged emergency referrals and sending the
  queued reminders, as ``gridmap jobs run``; every ``jobs.every_seconds`` of the
  rules unless ``--escalate-every`` is given), but a job runs only in the process that holds the
  database's scheduler lock (:class:`gridmap.store.leader.ProcessLock`: a PostgreSQL
  advisory lock, or a file lock beside the SQLite file): once per period across all
  workers, and across several servers on one PostGIS database. When that worker
  ends, another takes the lock at its next tick.
* **Session key.** With ``GRIDMAP_SECRET_KEY`` unset the random key
  (:func:`gridmap.access.session_secret`) is made in the master before the fork,
  so every worker, and every worker gunicorn restarts, signs with the same key. No
  key is written to disk; a restart of the server ends the sessions' cookies (set
  ``GRIDMAP_SECRET_KEY`` to keep them, and whenever several servers serve one database).
* **Logs.** The access log has the method, the path *without* its query string,
  the status, size and time: no query values, referrer or user agent. Each worker
  logs its memory (RSS, USS, PSS) once it is ready.
* **Headers.** The only ``Server`` header is ``gridmap`` (never gunicorn's name).
  With ``GRIDMAP_WORKER_HEADER=1`` (tests and benchmarks only) every response names
  the worker's pid in ``X-Gridmap-Worker``.

The Dash/Flask development server (one process) stays available behind
``gridmap serve --dev`` (:func:`serve_dev`).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from sqlalchemy import Engine

__all__ = ["JOBS", "ACCESS_LOG_FORMAT", "GridmapServer", "Scheduler", "ServeOptions", "memory", "serve",
           "serve_dev"]

log = logging.getLogger("gridmap.server")

#: gunicorn access-log line: client, time, method, path WITHOUT the query string, protocol, status, bytes, ms.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
#: Response header naming the worker's pid, sent only when ``GRIDMAP_WORKER_HEADER=1``.
WORKER_HEADER = "X-Gridmap-Worker"


@dataclass(frozen=True)
class ServeOptions:
    """How ``gridmap serve`` serves.

    Attributes
    ----------
    host, port
        Address to listen on.
    workers
        Worker processes (each answers ``threads`` requests at once).
    threads
        Threads per worker (gunicorn's ``gthread`` worker class).
    timeout
        Seconds a worker may stay silent before the master restarts it.
    graceful_timeout
        Seconds a worker has to finish its requests at a stop or restart.
    keepalive
        Seconds an idle keep-alive connection stays open.
    max_requests, max_requests_jitter
        Restart a worker after this many requests (0: never), plus up to the jitter.
    escalate_every
        Seconds between two runs of the scheduled jobs (0: no scheduler; None: the rules'
        ``jobs.every_seconds``, from ``GRIDMAP_RULES`` or the defaults).
    """

    host: str = "127.0.0.1"
    port: int = 8050
    workers: int = 2
    threads: int = 4
    timeout: int = 120
    graceful_timeout: int = 30
    keepalive: int = 5
    max_requests: int = 0
    max_requests_jitter: int = 0
    escalate_every: float | None = None

    def jobs_every(self) -> float:
        """Seconds between two runs of the scheduled jobs: the option, else the rules' ``jobs.every_seconds``."""
        if self.escalate_every is not None:
            return float(self.escalate_every)
        from gridmap.rules.config import load_rules

        return load_rules().jobs_every_seconds


# ------------------------------------------------------------------ memory


def memory(pid: int | None = None) -> dict[str, float]:
    """Memory of a process in MiB: ``rss``, and where the system tells, ``uss`` (its own pages) and ``pss``.

    USS counts only the pages no other process shares; PSS adds each shared
    page divided by the number of processes sharing it, so the PSS of all
    workers adds up to what they really take together.
    """
    import psutil

    p = psutil.Process(pid)
    out = {"rss": p.memory_info().rss / 1_048_576}
    try:
        full = p.memory_full_info()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return out
    for k in ("uss", "pss"):
        if hasattr(full, k):
            out[k] = getattr(full, k) / 1_048_576
    return out


def _fmt_memory(m: dict[str, float]) -> str:
    return " ".join(f"{k.upper()} {v:.0f} MiB" for k, v in m.items())


# ------------------------------------------------------------------ scheduler


def _escalate(engine: Engine) -> str:
    """The follow-up jobs (``gridmap jobs run``): escalate emergency referrals not acknowledged in time
    (each once), then send the queued reminders through the rules' gateway."""
    from gridmap.followups.jobs import run_jobs, summary

    return summary(run_jobs(engine, by="scheduler"))


#: The periodic jobs: name → function of the engine returning a one-line summary.
JOBS: dict[str, Callable[[Engine], str]] = {"escalate": _escalate}


class Scheduler:
    """APScheduler in each process; the jobs run only where the database's scheduler lock is held.

    Parameters
    ----------
    engine
        The store (the lock and the jobs use it).
    every
        Seconds between two ticks.
    jobs
        The jobs to run at each tick (default :data:`JOBS`).
    """

    def __init__(self, engine: Engine, every: float, jobs: dict[str, Callable[[Engine], str]] | None = None) -> None:
        from gridmap.store.leader import ProcessLock

        self.engine = engine
        self.every = every
        self.jobs = dict(JOBS if jobs is None else jobs)
        self.lock = ProcessLock(engine, "scheduler")
        self._sched: Any = None
        self._pid: int | None = None

    def start(self) -> None:
        """Start ticking in a background thread (once per process)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._pid == os.getpid() or self.every <= 0:
            return
        self._pid = os.getpid()
        self._sched = BackgroundScheduler(daemon=True, job_defaults={"coalesce": True, "max_instances": 1,
                                                                      "misfire_grace_time": None})
        self._sched.add_job(self.tick, "interval", seconds=self.every, id="gridmap-jobs")
        self._sched.start()

    def tick(self) -> bool:
        """Run the jobs if this process holds (or can take) the lock; whether they ran."""
        if not self.lock.try_acquire():
            return False
        for name, job in self.jobs.items():
            t = time.perf_counter()
            try:
                summary = job(self.engine)
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.warning("scheduled job %s failed (pid %d)", name, os.getpid(), exc_info=True)
                continue
            log.info("scheduled job %s ran in pid %d in %.0f ms: %s", name, os.getpid(),
                     1000 * (time.perf_counter() - t), summary)
        return True

    def shutdown(self) -> None:
        """Stop ticking and give the lock up."""
        if self._sched is not None and self._pid == os.getpid():
            try:
                self._sched.shutdown(wait=False)
            except Exception:  # noqa: BLE001
                pass
            self._sched = None
        self.lock.release()


# ------------------------------------------------------------------ the app


def _start_background(data: Any) -> None:
    """Per-process background work of the data layer: follower and warm-up, or the warm-up alone."""
    start = getattr(data, "start_background", None)
    if callable(start):
        start()
    else:
        data.start_warm()


def _quiet_server_header(app: Callable[..., Any], worker_header: bool) -> Callable[..., Any]:
    """WSGI wrapper: drop the app's ``Server`` header (gunicorn sends the one, set to ``gridmap``), and in test
    mode name the worker."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "server"]
            if worker_header:
                headers.append((WORKER_HEADER, str(os.getpid())))
            return start_response(status, headers, exc_info)

        return app(environ, sr)

    return wrapped


def _use_gridmap_server_name() -> None:
    """gunicorn writes ``Server: gunicorn`` itself: make that ``gridmap`` (the app's header, no software name)."""
    import gunicorn.http.wsgi

    from gridmap.dashboard.auth import SERVER_HEADER

    gunicorn.http.wsgi.SERVER = SERVER_HEADER  # type: ignore[attr-defined]


class GridmapServer(BaseApplication):  # type: ignore[misc]
    """``gridmap serve`` on gunicorn: preloaded app, gthread workers, the hooks described in the module docstring.

    Parameters
    ----------
    engine_factory
        Makes the store's engine (called once, in the master).
    options
        Address, workers, threads, timeouts, scheduler period.
    """

    def __init__(self, engine_factory: Callable[[], Engine], options: ServeOptions) -> None:
        self.engine_factory = engine_factory
        self.options = options
        self.engine: Engine | None = None
        self.dash: Any = None
        self.scheduler: Scheduler | None = None
        self.wsgi_app: Any = None
        super().__init__()

    def load_config(self) -> None:
        """gunicorn's settings from :class:`ServeOptions` (no configuration file, no command line of its own)."""
        o = self.options
        cfg = {
            "bind": [f"[{o.host}]:{o.port}" if ":" in o.host else f"{o.host}:{o.port}"],
            "workers": o.workers,
            "threads": o.threads,
            "worker_class": "gthread",
            "preload_app": True,
            "timeout": o.timeout,
            "graceful_timeout": o.graceful_timeout,
            "keepalive": o.keepalive,
            "max_requests": o.max_requests,
            "max_requests_jitter": o.max_requests_jitter,
            "accesslog": "-",
            "errorlog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "proc_name": "gridmap",
            "post_fork": self.post_fork,
            "post_worker_init": self.post_worker_init,
            "worker_exit": self.worker_exit,
            "when_ready": self.when_ready,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn ≥ 24: no admin socket (one per user home,
            cfg["control_socket_disable"] = True            # shared by every gunicorn of the user; unused here)
        for k, v in cfg.items():
            self.cfg.set(k, v)

    def load(self) -> Any:
        """In the master, before the fork: build the app, read and compute the data, freeze it."""
        from gridmap.access import session_secret
        from gridmap.dashboard.app import create_app

        if self.wsgi_app is not None:
            return self.wsgi_app
        t0 = time.perf_counter()
        self.engine = self.engine_factory()
        session_secret()  # made here, before the fork: one key in every worker (see the module docstring)
        self.dash = create_app(self.engine, warm=False)
        data = self.dash.gridmap_data
        try:
            data.warm()
            data.warm_more()
        except Exception:  # noqa: BLE001 - the workers warm up again in the background
            log.warning("preload warm-up failed; the workers will warm up on their own", exc_info=True)
        self.engine.dispose()  # no connection of the master reaches a worker
        gc.collect()
        gc.freeze()  # the preloaded objects: left alone by the workers' collections (their pages stay shared)
        log.info("data loaded before the fork in %.1f s (master %s)", time.perf_counter() - t0,
                 _fmt_memory(memory()))
        every = self.options.jobs_every()
        if every > 0:
            self.scheduler = Scheduler(self.engine, every)
        if self.options.workers > 1 and (os.environ.get("GRIDMAP_RATELIMIT_STORAGE") or "memory://") == "memory://":
            log.info("sign-in limits count per worker (GRIDMAP_RATELIMIT_STORAGE=memory://): an address may try "
                     "%d times the limit; set a shared storage (e.g. redis://) to count once", self.options.workers)
        _use_gridmap_server_name()
        self.wsgi_app = _quiet_server_header(self.dash.server, os.environ.get("GRIDMAP_WORKER_HEADER") == "1")
        return self.wsgi_app

    # ---------------------------------------------------------- gunicorn hooks
    def when_ready(self, server: Any) -> None:
        """The master listens: say where."""
        server.log.info("gridmap serving on http://%s:%d/ with %d workers x %d threads",
                        self.options.host, self.options.port, self.options.workers, self.options.threads)

    def post_fork(self, server: Any, worker: Any) -> None:
        """In the new worker: fresh connections, its own background threads and scheduler."""
        assert self.engine is not None
        self.engine.dispose(close=False)  # the master's pool: never used here (its connections stay the master's)
        _start_background(self.dash.gridmap_data)
        if self.scheduler is not None:
            self.scheduler.start()

    def post_worker_init(self, worker: Any) -> None:
        """The worker is ready: log its memory."""
        worker.log.info("worker %d ready: %s", os.getpid(), _fmt_memory(memory()))

    def worker_exit(self, server: Any, worker: Any) -> None:
        """The worker stops: give the scheduler lock up at once (another worker takes it at its next tick)."""
        if self.scheduler is not None:
            self.scheduler.shutdown()


def _configure_logging() -> None:
    """INFO lines of gridmap's own loggers to stderr (gunicorn logs its own)."""
    lg = logging.getLogger("gridmap")
    if not lg.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
        lg.addHandler(h)
        lg.propagate = False  # a library's logging.basicConfig() on the root logger would print every line twice
    lg.setLevel(logging.INFO)


def serve(engine_factory: Callable[[], Engine], options: ServeOptions) -> None:
    """Run the dashboard on gunicorn until stopped (SIGTERM: graceful stop; SIGINT: quick stop)."""
    _configure_logging()
    GridmapServer(engine_factory, options).run()


def serve_dev(engine: Engine, options: ServeOptions) -> None:
    """The Dash/Flask development server, one process (``gridmap serve --dev``); the scheduler in-process."""
    from gridmap.dashboard.app import create_app

    _configure_logging()
    app = create_app(engine)
    data = app.gridmap_data  # type: ignore[attr-defined]
    if hasattr(data, "start_background"):
        data.start_background()
    every = options.jobs_every()
    scheduler = Scheduler(engine, every) if every > 0 else None
    if scheduler is not None:
        scheduler.start()
    try:
        app.run(host=options.host, port=options.port, debug=False)
    finally:
        if scheduler is not None:
            scheduler.shutdown()

