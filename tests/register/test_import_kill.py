"""A killed import (SIGKILL in a separate process, half-way through writing) leaves the register unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gridmap.register.importer import import_ledger
from tests.register.conftest import make_rows, snapshot, write_csv

_SCRIPT = """
import sys
from gridmap.store.db import make_engine
from gridmap.register.importer import import_ledger

def cb(stage, done, total):
    print(f"PROGRESS {stage} {done} {total}", file=sys.stderr, flush=True)
    if stage == "merge":
        import time; time.sleep(30)  # hold the open transaction until killed

import_ledger(make_engine(sys.argv[1]), sys.argv[2], "民政", on_progress=cb)
print("FINISHED", file=sys.stderr, flush=True)
"""


@pytest.mark.slow
def test_sigkill_half_way_leaves_register_unchanged(engine, reference, ledger_dir):
    import_ledger(engine, write_csv(make_rows(10), ledger_dir / "first.csv"), "民政")
    before = snapshot(engine)
    big = write_csv(make_rows(20000, start=1000), ledger_dir / "big.csv")
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, url, str(big)], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    seen = []
    deadline = time.monotonic() + 300
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("PROGRESS merge"):
                break
            assert time.monotonic() < deadline, "import did not start writing"
        assert any(s.startswith("PROGRESS batch") for s in seen), "".join(seen)[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not any("FINISHED" in s for s in seen)
    engine.dispose()
    assert snapshot(engine) == before
    # the register still works: the same file imports cleanly afterwards
    rep = import_ledger(engine, big, "民政")
    assert rep.rows_imported == 20000 and not rep.already_imported
