"""Engines, sessions and schema set-up for both backends (PostGIS and embedded SQLite).

One code path serves both: the schema is created by the Alembic migrations in
``gridmap/store/migrations`` whichever the backend, and the ORM models use
portable types (:mod:`gridmap.store.types`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import gridmap.store.history  # noqa: F401  (registers the history listeners)
from gridmap._errors import GridmapError
from gridmap.config import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Tables that are append-only: no UPDATE or DELETE through any connection of the app.
APPEND_ONLY_TABLES = ("audit_log", "register_change")


class DatabaseUnavailable(GridmapError):
    """The database server cannot be reached."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: Suffixes of the files SQLite keeps beside the database.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: str | Path) -> None:
    """Create the SQLite database file owner-only (0600) before SQLite does; tighten existing ones.

    A new parent directory is created 0700. An existing database, and its
    ``-wal``/``-shm``/``-journal`` files, are set to 0600 (SQLite creates the
    side files with the database file's mode). Files of another owner are left
    alone.
    """
    p = Path(path)
    if not p.parent.is_dir():
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not p.exists():
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    for f in (p, *(p.with_name(p.name + s) for s in SQLITE_SIDE_FILES)):
        try:
            if f.exists() and f.stat().st_mode & 0o077:
                os.chmod(f, 0o600)
        except OSError:  # another owner's file: not ours to change
            pass


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (default: ``GRIDMAP_DATABASE_URL`` or the embedded file).

    For SQLite the parent directory is created, the database file is created
    owner-only (:func:`private_sqlite_file`), foreign keys are enforced and
    WAL journaling is used so readers do not block the writer.
    """
    url = url or get_settings().database_url
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            private_sqlite_file(u.database)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() == "postgresql":
        import geoalchemy2  # noqa: F401 - PostGIS types and DDL hooks, before any table or query is compiled
    if u.get_backend_name() == "postgresql" and u.get_driver_name() in ("", "psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **kwargs)


def backend(engine: Engine) -> str:
    """``"postgis"`` or ``"sqlite"``."""
    return "postgis" if engine.dialect.name == "postgresql" else engine.dialect.name


def check_connection(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailable` with a clear message when the server is down."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}",
            f"无法连接数据库 {engine.url.render_as_string(hide_password=True)}",
        ) from exc


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def init_db(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (idempotent).

    On PostgreSQL the ``postgis`` extension is created first if missing.
    """
    from alembic import command

    check_connection(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    command.upgrade(_alembic_config(engine), "head")


def downgrade_db(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema (used by migration tests)."""
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None when it has no schema."""
    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest migration this gridmap ships (its file name starts with the revision: ``0006_…``)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def ensure_schema(engine: Engine) -> None:
    """Bring the database's schema up to this gridmap's (what every command does before it reads or writes).

    One query when the schema is current; otherwise the migrations run (:func:`init_db`, idempotent), so a
    database made by an older gridmap keeps working instead of failing on a table it lacks.

    Raises
    ------
    DatabaseUnavailable
        When the database cannot be reached.
    GridmapError
        When the database was made by a newer gridmap (its revision is unknown here).
    """
    check_connection(engine)
    rev = current_revision(engine)
    head = head_revision()
    if rev == head:
        return
    if rev is not None and rev > head:
        raise GridmapError(
            f"the database's schema is at revision {rev}, newer than this gridmap's {head}: update gridmap",
            f"数据库结构版本为 {rev}，比本程序支持的 {head} 新：请升级 gridmap")
    init_db(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(
    engine: Engine, *, user: str = "system", source: str | None = None, reason: str | None = None
) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on any error.

    ``user``, ``source`` and ``reason`` are written into the register history
    of every change made in the session.
    """
    session = Session(engine, expire_on_commit=False)
    session.info.update(user=user, source=source, reason=reason)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
