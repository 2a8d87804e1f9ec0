"""Files the importer and the store create are owner-only; killed imports leave no raw copy (issue 14, item 8).

Run with a permissive umask (022, the usual default): the SQLite database
(and its -wal/-shm files), the archive directory and the archived raw
ledger, the ``--report`` JSON and the quarantine export must come out 0600
(directories 0700). A raw copy that no import batch refers to is removed by
the next import and named in its output.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.register.importer import ORPHAN_AGE_S, import_ledger
from tests.register.conftest import make_rows, write_csv

runner = CliRunner()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_cli_import_creates_owner_only_files(reference, ledger_dir, tmp_path, _var_dir, open_umask):
    db = tmp_path / "fresh" / "gridmap.sqlite"
    url = f"sqlite:///{db}"
    rows = make_rows(5, start=300)
    rows[1]["联系电话"] = "123"
    f = write_csv(rows, ledger_dir / "l.csv")
    rep = tmp_path / "report.json"
    res = runner.invoke(app, ["register", "import", str(f), "--database-url", url, "--report", str(rep)])
    assert res.exit_code == 0, res.output  # a phone typo is a field warning: imported, quarantined
    q = tmp_path / "quarantine.xlsx"
    assert runner.invoke(app, ["register", "quarantine", "export", str(q), "--database-url", url]).exit_code == 0
    archived = list((_var_dir / "archive").iterdir())
    assert len(archived) == 1
    for p in (db, rep, q, archived[0]):
        assert _mode(p) == 0o600, (p, oct(_mode(p)))
    for side in ("-wal", "-shm"):
        s = db.with_name(db.name + side)
        if s.exists():
            assert _mode(s) == 0o600, (s, oct(_mode(s)))
    assert _mode(_var_dir / "archive") == 0o700
    assert _mode(_var_dir) == 0o700
    # the CLI restored the caller's umask when it finished
    assert os.umask(0o022) == 0o022


def test_store_creates_sqlite_file_owner_only_and_tightens_an_old_one(tmp_path, open_umask):
    from gridmap.store.db import init_db, make_engine

    db = tmp_path / "new.sqlite"
    eng = make_engine(f"sqlite:///{db}")
    init_db(eng)
    eng.dispose()
    assert _mode(db) == 0o600
    old = tmp_path / "old.sqlite"
    old.touch(mode=0o644)
    wal = tmp_path / "old.sqlite-wal"
    wal.touch(mode=0o644)
    os.chmod(old, 0o644)
    os.chmod(wal, 0o644)
    make_engine(f"sqlite:///{old}").dispose()
    assert _mode(old) == 0o600 and _mode(wal) == 0o600


_SCRIPT = """
import sys
from gridmap.store.db import make_engine
from gridmap.register.importer import import_ledger

def cb(stage, done, total):
    print(f"PROGRESS {stage} {done} {total}", file=sys.stderr, flush=True)
    if stage == "merge":
        import time; time.sleep(60)  # hold the open transaction until killed

import_ledger(make_engine(sys.argv[1]), sys.argv[2], "民政", on_progress=cb)
print("FINISHED", file=sys.stderr, flush=True)
"""


@pytest.mark.slow
def test_killed_import_leaves_no_raw_copy_and_old_orphans_are_removed(engine, reference, ledger_dir, _var_dir):
    import_ledger(engine, write_csv(make_rows(3), ledger_dir / "first.csv"), "民政")
    archive = _var_dir / "archive"
    kept = set(archive.iterdir())
    assert len(kept) == 1
    f = write_csv(make_rows(30, start=500), ledger_dir / "killed.csv")
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, url, str(f)], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if line.startswith("PROGRESS merge"):
                break
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    engine.dispose()
    assert set(archive.iterdir()) == kept  # no copy that no import refers to
    # a copy left behind by an older version (or a kill during the copy) is removed once old enough
    orphan = archive / ("ab" * 32 + ".csv")
    orphan.write_bytes(b"x" * 1000)
    young = archive / ("cd" * 32 + ".xlsx")  # may belong to an import running right now: kept
    young.write_bytes(b"y")
    unrelated = archive / "README.txt"
    unrelated.write_text("not ours")
    past = time.time() - ORPHAN_AGE_S - 5
    os.utime(orphan, (past, past))
    os.utime(unrelated, (past, past))
    rep = ledger_dir / "r.json"
    res = runner.invoke(app, ["register", "import", str(f), "--database-url", url, "--report", str(rep)])
    assert res.exit_code == 0, res.output
    assert json.loads(rep.read_text(encoding="utf-8"))["archive_removed"] == [orphan.name]
    assert orphan.name in res.output and "interrupted" in res.output and "中断" in res.output
    assert not orphan.exists() and young.exists() and unrelated.exists()
    assert len([p for p in archive.iterdir() if p.suffix == ".csv"]) == 2  # first.csv and killed.csv
