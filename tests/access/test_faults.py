"""PostgreSQL stopped (``pg_ctl stop -m immediate``, a crash) during an import and during a visit save.

Runs on a private throwaway cluster (initdb in a temporary directory, port
55432 + pid offset, unix socket in the same directory), never the shared
server. The writer runs in a subprocess and is held inside its open
transaction by a hook (progress callback for the import, a cursor event after
the visit INSERT for the visit) while the server is stopped. After a restart:
committed data is all there (nothing lost), the interrupted transaction left no
row at all (nothing half-written), and the same write succeeds when retried.
Results are appended to ``bench/results/faults.json``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

PG_BIN = Path(os.environ.get("GRIDMAP_PG_BIN", "/usr/lib/postgresql/15/bin"))
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "faults.json"
TABLES_VISIT = ("visit", "hazard", "referral", "care_service", "register_change")
TABLES_IMPORT = ("elder", "first_contact", "register_change", "import_batch", "quarantine_row", "field_conflict")

pytestmark = pytest.mark.slow


class Cluster:
    """A throwaway PostgreSQL cluster owned by the ``postgres`` OS user."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.data = root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/gridmap_fault"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-w", "-l", self.root / "log.txt", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on", "start")

    def crash(self) -> None:
        """Stop at once, like a power cut: no checkpoint, clients disconnected, recovery at next start."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (set GRIDMAP_PG_BIN)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to own a private cluster")
        if shutil.which("runuser") is None:
            pytest.skip("runuser not available to start a private cluster as 'postgres'")
    root = Path(tempfile.mkdtemp(prefix="gridmap-pgfault-"))
    os.chmod(root, 0o777)
    c = Cluster(root, 55432 + os.getpid() % 1000)
    try:
        c.init()
        c.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL cluster: {exc.stderr or exc.stdout}")
    try:
        from sqlalchemy import create_engine

        admin = create_engine(c.url.replace("/gridmap_fault", "/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE gridmap_fault"))
        admin.dispose()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(cluster: Cluster) -> Iterator[Engine]:
    """A migrated, empty store on the private cluster."""
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.models import Base

    engine = make_engine(cluster.url)
    init_db(engine)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


def _counts(engine: Engine, tables: tuple[str, ...]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}


def _rows(engine: Engine, tables: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    with engine.connect() as conn:
        return {t: [tuple(str(v) for v in r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]
                for t in tables}


def _record(name: str, result: dict[str, object]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    RESULTS.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _crash_while(proc: subprocess.Popen[str], marker: str, cluster: Cluster, timeout: float = 300) -> list[str]:
    """Wait for ``marker`` on the subprocess's stderr, crash the server, collect the rest of its output."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(marker):
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("writer did not reach the crash point: " + "".join(seen)[-2000:])
    else:
        raise AssertionError("writer ended before the crash point: " + "".join(seen)[-3000:])
    cluster.crash()
    try:
        _, rest = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, rest = proc.communicate()
    seen.append(rest or "")
    return seen


_IMPORT = """
import sys, time
from gridmap.store.db import make_engine
from gridmap.register.importer import import_ledger

def cb(stage, done, total):
    print(f"PROGRESS {stage} {done} {total}", file=sys.stderr, flush=True)
    if stage == "merge":
        time.sleep(4)  # the transaction is open with rows written: the server is stopped now

import_ledger(make_engine(sys.argv[1]), sys.argv[2], "民政", on_progress=cb)
print("FINISHED", file=sys.stderr, flush=True)
"""


def test_server_crash_during_import(pg, cluster, data_dir, tmp_path, monkeypatch):
    from gridmap.register.importer import import_ledger
    from tests.register.conftest import make_rows, write_csv

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path / "var"))
    first = import_ledger(pg, write_csv(make_rows(20), tmp_path / "first.csv"), "民政")
    assert first.rows_imported == 20
    before = _rows(pg, TABLES_IMPORT)
    big = write_csv(make_rows(3000, start=1000), tmp_path / "big.csv")
    proc = subprocess.Popen([sys.executable, "-c", _IMPORT, cluster.url, str(big)], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "GRIDMAP_VAR_DIR": str(tmp_path / "var")},
                            cwd=Path(__file__).resolve().parents[2])
    seen = _crash_while(proc, "PROGRESS merge", cluster)
    assert proc.returncode != 0 and not any("FINISHED" in s for s in seen)
    assert any(s.startswith("PROGRESS batch") for s in seen)
    cluster.start()
    pg.dispose()
    after = _rows(pg, TABLES_IMPORT)
    assert after == before  # the committed import is all there, the interrupted one left nothing
    retry = import_ledger(pg, big, "民政")
    assert retry.rows_imported == 3000 and not retry.already_imported
    counts = _counts(pg, TABLES_IMPORT)
    assert counts["elder"] == 3020 and counts["import_batch"] == 2
    _record("import_crash", {
        "backend": "PostgreSQL 15 + PostGIS, private cluster, pg_ctl stop -m immediate",
        "committed_before": {k: len(v) for k, v in before.items()},
        "after_restart": {k: len(v) for k, v in after.items()},
        "half_written_rows": sum(len(after[t]) - len(before[t]) for t in TABLES_IMPORT),
        "lost_rows": sum(1 for t in TABLES_IMPORT for r in before[t] if r not in after[t]),
        "retry_rows_imported": retry.rows_imported, "writer_exit_code": proc.returncode,
    })


_VISIT = """
import sys, time
from datetime import date
from sqlalchemy import event
from gridmap.domain.enums import VisitMode, VisitorRole
from gridmap.rules.store import record_visit
from gridmap.rules.visits import VisitRecord
from gridmap.store.db import make_engine

engine = make_engine(sys.argv[1])

@event.listens_for(engine, "after_cursor_execute")
def hold(conn, cursor, statement, params, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO HAZARD"):
        print("INSERTED", file=sys.stderr, flush=True)
        time.sleep(4)  # visit and hazard written in the open transaction: the server is stopped now

# electricity: the seeded elder already has an open gas hazard, which a new finding does not duplicate

rec = VisitRecord(elder_id=int(sys.argv[2]), visited_on=date(2025, 3, 4), mode=VisitMode.IN_HOME,
                  visitor_role=VisitorRole.VISIT_STEWARD, answers={"electricity_safety": "unsafe"}, needs="助餐")
record_visit(engine, rec, user="fault-test")
print("FINISHED", file=sys.stderr, flush=True)
"""


def test_server_crash_during_visit_save(pg, cluster):
    from gridmap.domain.enums import VisitMode, VisitorRole
    from gridmap.rules.store import record_visit
    from gridmap.rules.visits import VisitRecord
    from tests.access.conftest import seed_world

    world = seed_world(pg)
    eid = world.elders["e1"]
    saved = record_visit(pg, VisitRecord(elder_id=eid, visited_on=date(2025, 3, 3), mode=VisitMode.PHONE,
                                         visitor_role=VisitorRole.VISIT_STEWARD), user="fault-test")
    before = _rows(pg, TABLES_VISIT)
    proc = subprocess.Popen([sys.executable, "-c", _VISIT, cluster.url, str(eid)], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    seen = _crash_while(proc, "INSERTED", cluster)
    assert proc.returncode != 0 and not any("FINISHED" in s for s in seen)
    cluster.start()
    pg.dispose()
    after = _rows(pg, TABLES_VISIT)
    assert after == before  # the acknowledged visit survived, the interrupted save left no row anywhere
    with pg.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM visit WHERE id = :i"), {"i": saved.visit_id}).scalar_one() == 1
    retry = record_visit(pg, VisitRecord(elder_id=eid, visited_on=date(2025, 3, 4), mode=VisitMode.IN_HOME,
                                         visitor_role=VisitorRole.VISIT_STEWARD, answers={"electricity_safety": "unsafe"},
                                         needs="助餐"), user="fault-test")
    counts = _counts(pg, TABLES_VISIT)
    assert counts["visit"] == len(before["visit"]) + 1 and counts["hazard"] > len(before["hazard"])
    _record("visit_save_crash", {
        "backend": "PostgreSQL 15 + PostGIS, private cluster, pg_ctl stop -m immediate",
        "committed_before": {k: len(v) for k, v in before.items()},
        "after_restart": {k: len(v) for k, v in after.items()},
        "half_written_rows": sum(len(after[t]) - len(before[t]) for t in TABLES_VISIT),
        "lost_rows": sum(1 for t in TABLES_VISIT for r in before[t] if r not in after[t]),
        "retry_visit_id": retry.visit_id, "after_retry": counts, "writer_exit_code": proc.returncode,
    })
