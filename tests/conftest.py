"""Shared fixtures: the real data directory and (see tests/store) the two database backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmap.config import get_settings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real geodata directory (``GRIDMAP_DATA_DIR``); tests needing it skip when it is absent."""
    path = get_settings().data_dir
    if not (path / "haidian").is_dir():
        pytest.skip(f"real geodata not found under {path} (set GRIDMAP_DATA_DIR)")
    return path


# ------------------------------------------------------------------ databases

import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from sqlalchemy import Engine, text  # noqa: E402

DEFAULT_POSTGIS_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridmap_test"


def postgis_url() -> str:
    """``GRIDMAP_TEST_POSTGIS_URL`` or the local server's ``gridmap_test`` database."""
    return os.environ.get("GRIDMAP_TEST_POSTGIS_URL", DEFAULT_POSTGIS_URL)


def _postgis_unavailable(reason: str) -> None:
    if os.environ.get("GRIDMAP_REQUIRE_POSTGIS") == "1":
        pytest.fail(f"PostGIS is required (GRIDMAP_REQUIRE_POSTGIS=1) but unavailable: {reason}")
    pytest.skip(f"PostGIS unavailable ({reason}); set GRIDMAP_TEST_POSTGIS_URL")


def _private_database(url: str) -> tuple[str, object]:
    """Create a database of this test process beside ``url`` (so parallel runs don't collide).

    Returns the new URL and a cleanup callable; falls back to ``url`` itself when
    the server refuses to create databases.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{os.getpid()}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        return url, lambda: None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def _postgis_engine() -> Iterator[Engine]:
    """An engine on a fresh PostGIS database of this test session (created and dropped here)."""
    from gridmap.store.db import DatabaseUnavailable, check_connection, init_db, make_engine
    from gridmap.store.models import Base

    probe = make_engine(postgis_url())
    try:
        check_connection(probe)
    except DatabaseUnavailable as exc:
        _postgis_unavailable(exc.message_en)
    finally:
        probe.dispose()
    url, drop = _private_database(postgis_url())
    engine = make_engine(url, pool_size=10)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        Base.metadata.drop_all(engine)
        init_db(engine)
    except Exception as exc:  # e.g. the postgis extension is not installed
        engine.dispose()
        drop()
        _postgis_unavailable(f"{type(exc).__name__}: {exc}")
    yield engine
    engine.dispose()
    drop()


def _truncate_all(engine: Engine) -> None:
    from gridmap.store.models import Base

    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgis"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated store on each backend: embedded SQLite and PostGIS."""
    from gridmap.store.db import init_db, make_engine

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'gridmap.sqlite'}")
        init_db(eng)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("_postgis_engine")
        _truncate_all(eng)
        yield eng


# ------------------------------------------------------------------ hypothesis

from hypothesis import settings as _hypothesis_settings  # noqa: E402

#: ``ci`` (default): the same examples on every run and machine (derandomized, no example database),
#: with the reproduce blob printed on failure; ``HYPOTHESIS_PROFILE=dev`` explores randomly.
_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("dev", print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
