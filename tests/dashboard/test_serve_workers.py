"""``gridmap serve``: gunicorn with two workers on one database, as a user and an operator would check it.

The server runs as a subprocess (``gridmap serve --workers 2``) on a free
loopback port and a copy of the small demo store; ``GRIDMAP_WORKER_HEADER=1``
makes every response name the worker that answered, so the tests can see both
workers serve. ``GRIDMAP_SECRET_KEY`` is removed from the server's environment:
the session key made in the master must be the one of every worker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parents[2]
#: The scheduler's period in these tests (seconds).
EVERY = 1.0


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_sqlite(engine: Engine, dest: Path) -> str:
    """A consistent copy of the store's SQLite file (WAL included, through SQLite's backup API)."""
    src = sqlite3.connect(engine.url.database)
    dst = sqlite3.connect(dest)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    os.chmod(dest, 0o600)
    return f"sqlite:///{dest}"


class Server:
    """A ``gridmap serve`` subprocess, its log file and its base URL."""

    def __init__(self, args: list[str], log: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "GRIDMAP_SECRET_KEY"}
        env["GRIDMAP_WORKER_HEADER"] = "1"
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "gridmap", "serve", "--port", str(port), *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.base = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="module")
def served(demo_engine: Engine, demo_users: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Engine, int]]:
    """``gridmap serve --workers 2`` on a copy of the demo store holding one overdue emergency referral."""
    from gridmap.domain.enums import ReferralStatus, ReferralTarget
    from gridmap.store.db import make_engine, session_scope
    from gridmap.store.models import Elder, Referral

    tmp = tmp_path_factory.mktemp("serve")
    url = _copy_sqlite(demo_engine, tmp / "serve.sqlite")
    engine = make_engine(url)
    past = datetime.now(UTC) - timedelta(hours=3)
    with session_scope(engine) as s:
        elder_id = s.scalar(select(Elder.id).order_by(Elder.id).limit(1))
        ref = Referral(elder_id=elder_id, need="燃气泄漏（测试）", target=ReferralTarget.COMMUNITY, emergency=True,
                       status=ReferralStatus.OPEN, opened_at=past, deadline=past + timedelta(minutes=30))
        s.add(ref)
        s.flush()
        ref_id = ref.id
    server = Server(["--database-url", url, "--workers", "2", "--threads", "2", "--escalate-every", str(EVERY)],
                    tmp / "serve.log", _free_port())
    try:
        server.wait_ready()
        yield server, engine, ref_id
    finally:
        server.stop()
        engine.dispose()


def _sign_in(base: str, username: str, password: str) -> requests.Session:
    s = requests.Session()
    page = s.get(base + "/login", timeout=30)
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(base + "/login", data={"username": username, "password": password, "csrf_token": tok},
               allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text[:300]
    return s


def _by_worker(session: requests.Session, url: str, want: int = 2, tries: int = 80) -> dict[str, list[int]]:
    """GET ``url`` on fresh connections until ``want`` workers answered: worker pid → status codes."""
    seen: dict[str, list[int]] = {}
    for _ in range(tries):
        r = session.get(url, headers={"Connection": "close"}, timeout=60)
        seen.setdefault(r.headers["X-Gridmap-Worker"], []).append(r.status_code)
        if len(seen) >= want and sum(map(len, seen.values())) >= 6:
            break
    return seen


@pytest.mark.slow
def test_two_workers_share_the_data_and_the_session(served: tuple[Server, Engine, int],
                                                    demo_users: dict[str, str]) -> None:
    """A session signed in through one worker loads the dashboard from both; one ``Server: gridmap`` header."""
    server, _, _ = served
    s = _sign_in(server.base, "demo_district", demo_users["demo_district"])
    seen = _by_worker(s, server.base + "/_dash-layout")
    assert len(seen) == 2, f"only one worker answered: {seen}"
    assert all(code == 200 for codes in seen.values() for code in codes), seen
    r = s.get(server.base + "/_dash-layout", timeout=60)
    assert r.status_code == 200 and "user-label" in r.text  # the signed-in user's page
    assert r.raw.headers.getlist("Server") == ["gridmap"]  # never gunicorn's name, never two


@pytest.mark.slow
def test_sign_out_in_one_worker_ends_the_session_in_both(served: tuple[Server, Engine, int],
                                                         demo_users: dict[str, str]) -> None:
    """After sign-out the saved cookie gets 401 from every worker."""
    server, _, _ = served
    s = _sign_in(server.base, "demo_street", demo_users["demo_street"])
    before = _by_worker(s, server.base + "/_dash-layout")
    assert len(before) == 2 and all(code == 200 for codes in before.values() for code in codes), before
    cookies = s.cookies.copy()
    r = s.post(server.base + "/logout", headers={"X-CSRFToken": s.cookies.get("_csrf_token", "")},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303
    replay = requests.Session()
    replay.cookies.update(cookies)  # the cookie as it was before sign-out
    seen = _by_worker(replay, server.base + "/_dash-layout")
    assert len(seen) == 2, seen
    assert all(code == 401 for codes in seen.values() for code in codes), seen


@pytest.mark.slow
def test_scheduled_job_runs_once_per_period_across_workers(served: tuple[Server, Engine, int]) -> None:
    """The escalation job runs in one process only: one pid in the log, one run per period, one escalation."""
    from gridmap.domain.enums import ReferralStatus
    from gridmap.store.models import Referral

    server, engine, ref_id = served
    pattern = re.compile(r"scheduled job escalate ran in pid (\d+)")
    before = len(pattern.findall(server.log()))
    t0 = time.monotonic()
    time.sleep(6 * EVERY)
    runs = pattern.findall(server.log())
    periods = (time.monotonic() - t0) / EVERY
    assert len(runs) >= 3, server.log()[-2000:]
    assert len(set(runs)) == 1, f"the job ran in several processes: {sorted(set(runs))}"
    # once per period: two schedulers would log about twice as many runs
    assert periods - 2 <= len(runs) - before <= periods + 1, (len(runs) - before, periods)
    from gridmap.store.models import ReferralEvent

    with engine.connect() as conn:
        status, escalated_at = conn.execute(select(Referral.status, Referral.escalated_at)
                                            .where(Referral.id == ref_id)).one()
        follow = conn.scalar(select(func.count()).select_from(ReferralEvent)
                             .where(ReferralEvent.referral_id == ref_id, ReferralEvent.note.like("%升级%")))
    # escalation is a flag (issue 16): the status stays open, the referral is escalated once
    assert status == ReferralStatus.OPEN and escalated_at is not None
    assert follow == 1  # escalated once, not once per worker


@pytest.mark.slow
def test_access_log_has_no_query_string_and_workers_log_memory(served: tuple[Server, Engine, int]) -> None:
    """The access log names the path without its query (which may carry personal data); memory per worker."""
    server, _, _ = served
    requests.get(server.base + "/healthz?name=%E5%BC%A0%E4%B8%89&id=110108194501011234", timeout=10)
    time.sleep(0.5)
    log = server.log()
    assert re.search(r'"GET /healthz HTTP/1.1" 200', log)
    assert "110108194501011234" not in log and "name=" not in log
    workers = re.findall(r"worker (\d+) ready: RSS (\d+) MiB", log)
    assert len({pid for pid, _ in workers}) >= 2, log[-2000:]
    assert "data loaded before the fork" in log


@pytest.mark.slow
def test_dev_flag_runs_the_development_server(demo_engine: Engine, demo_users: dict[str, str],
                                              tmp_path: Path) -> None:
    """``gridmap serve --dev``: Flask's own server in one process (no gunicorn worker)."""
    url = _copy_sqlite(demo_engine, tmp_path / "dev.sqlite")
    server = Server(["--database-url", url, "--dev", "--escalate-every", "0"], tmp_path / "dev.log", _free_port())
    try:
        server.wait_ready()
        r = requests.get(server.base + "/healthz", timeout=10)
        assert r.status_code == 200
        assert "X-Gridmap-Worker" not in r.headers  # not the gunicorn path
        s = _sign_in(server.base, "demo_district", demo_users["demo_district"])
        assert s.get(server.base + "/_dash-layout", timeout=60).status_code == 200
    finally:
        server.stop()
    log = server.log()
    assert "Booting worker" not in log and "Starting gunicorn" not in log
    assert "Running on http://127.0.0.1" in log  # werkzeug's development server


def test_demo_serves_through_the_same_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``gridmap demo --workers 3 --threads 2`` hands its options to the same serve path as ``gridmap serve``."""
    from typer.testing import CliRunner

    import gridmap.cli as cli

    calls: list[tuple[object, bool]] = []
    monkeypatch.setattr(cli, "_build_demo", lambda *a, **k: "sqlite:///x")
    monkeypatch.setattr(cli, "_serve", lambda url, options, dev=False: calls.append((options, dev)))
    res = CliRunner().invoke(cli.app, ["demo", "--workers", "3", "--threads", "2", "--port", "8123"])
    assert res.exit_code == 0, res.output
    (options, dev), = calls
    assert (options.workers, options.threads, options.port, dev) == (3, 2, 8123, False)


def test_process_lock_has_one_holder_per_database(engine: Engine) -> None:
    """The scheduler lock: a second holder is refused while the first holds it, and gets it once released."""
    from gridmap.store.leader import ProcessLock

    first, second = ProcessLock(engine, "scheduler"), ProcessLock(engine, "scheduler")
    other = ProcessLock(engine, "another job")
    try:
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        assert other.try_acquire()  # locks of other names are independent
        first.release()
        assert not first.held()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
        other.release()


def test_docker_image_and_compose_run_the_same_serve_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dockerfile's CMD and docker-compose's app run one `gridmap serve` command, which the CLI accepts."""
    import json
    import shlex

    import yaml
    from typer.testing import CliRunner

    import gridmap.cli as cli

    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    image = json.loads(cmd[4:])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["app"]["command"]
    shell = compose[-1] if compose[:2] == ["sh", "-c"] else shlex.join(compose)
    served = shlex.split(shell.split("exec ", 1)[-1])
    assert served == image
    calls: list[tuple[object, bool]] = []
    monkeypatch.setattr(cli, "_serve", lambda url, options, dev=False: calls.append((options, dev)))
    res = CliRunner().invoke(cli.app, image[1:])
    assert res.exit_code == 0, res.output
    (options, dev), = calls
    assert (options.host, options.workers, dev) == ("0.0.0.0", 2, False)
