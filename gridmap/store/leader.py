"""A lock one process at a time holds per database: who runs the scheduled jobs when several processes serve.

:class:`ProcessLock` is taken without waiting and held for as long as its
holder lives (or until :meth:`ProcessLock.release`):

* on PostgreSQL, a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection of its own, kept open in autocommit mode. It is per *database*,
  so it also holds across several servers (hosts, containers) on one database;
  the server releases it when the holder's connection ends, however the
  process ended.
* on a SQLite file, an exclusive ``flock`` on ``<database file>.<name>.lock``
  beside the database; the kernel releases it when the holder's process ends.
* on an in-memory SQLite database (one process by definition) it is always granted.

A process that did not get the lock tries again later (:meth:`ProcessLock.held`
is cheap); when the holder dies another process takes over at its next try.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

__all__ = ["ProcessLock", "advisory_key"]

log = logging.getLogger("gridmap.store")


def advisory_key(name: str) -> int:
    """The signed 64-bit PostgreSQL advisory-lock key of ``name`` (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(f"gridmap:{name}".encode()).digest()[:8], "big", signed=True)


class ProcessLock:
    """A named lock held by at most one process per database (see the module docstring).

    Parameters
    ----------
    engine
        The store the lock belongs to.
    name
        What the lock guards (e.g. ``"scheduler"``).
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self._conn: Connection | None = None
        self._fd: int | None = None
        self._memory = False
        url = make_url(str(engine.url))
        self._pg = engine.dialect.name == "postgresql"
        self.path: Path | None = None
        if not self._pg:
            db = url.database or ""
            if not db or db == ":memory:" or db.startswith("file:"):
                self._memory = True
            else:
                self.path = Path(db).resolve().with_name(Path(db).name + f".{name}.lock")

    # ------------------------------------------------------------ state
    def held(self) -> bool:
        """Whether this process holds the lock (on PostgreSQL its connection is checked)."""
        if self._memory:
            return True
        if self._pg:
            if self._conn is None:
                return False
            try:
                self._conn.execute(text("SELECT 1"))
            except Exception:  # noqa: BLE001 - the connection (and so the lock) is gone
                log.warning("lock %s: connection lost, lock released", self.name)
                self._drop_conn()
                return False
            return True
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it (never waits); ``True`` when this process holds it."""
        if self.held():
            return True
        if self._pg:
            return self._try_pg()
        return self._try_file()

    def release(self) -> None:
        """Give the lock up (nothing when not held)."""
        if self._pg and self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)})
            except Exception:  # noqa: BLE001 - closing the connection releases it anyway
                pass
            self._drop_conn()
        elif self._fd is not None:
            import fcntl

            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    # ------------------------------------------------------------ backends
    def _try_pg(self) -> bool:
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:  # noqa: BLE001 - database down: try again later
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(self.name)}).scalar())
        except Exception:  # noqa: BLE001
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _try_file(self) -> bool:
        import fcntl

        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def _drop_conn(self) -> None:
        conn: Any = self._conn
        self._conn = None
        if conn is not None:
            try:
                conn.invalidate()  # never back into the pool: the session (and any lock) must end
            except Exception:  # noqa: BLE001
                pass
