"""Alembic migrations: upgrade, downgrade and agreement with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from gridmap.store.db import current_revision, downgrade_db, init_db, make_engine
from gridmap.store.models import Base


def test_schema_from_migrations_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _include_object})
        diff = compare_metadata(ctx, Base.metadata)
    if engine.dialect.name == "sqlite":  # GiST indexes exist on PostGIS only, by design
        diff = [d for d in diff if not (d[0] == "add_index" and d[1].name.endswith("_gist"))]
    assert diff == []


def test_postgis_has_gist_indexes_and_typed_geometry(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostGIS only")
    with engine.connect() as conn:
        gist = set(conn.execute(text(
            "SELECT tablename FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")).scalars())
        types = dict(conn.execute(text(
            "SELECT f_table_name || '.' || f_geometry_column, type FROM geometry_columns "
            "WHERE srid = 4326")).all())
    assert {"street", "community", "grid", "elder", "hazard", "service_station"} <= gist
    assert types["elder.geom"] == "POINT" and types["community.geom"] == "MULTIPOLYGON"


def test_downgrade_then_upgrade(tmp_path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    init_db(eng)
    assert current_revision(eng) == _head()
    downgrade_db(eng, "base")
    assert current_revision(eng) is None
    assert "elder" not in inspect(eng).get_table_names()
    init_db(eng)
    init_db(eng)  # idempotent
    assert "elder" in inspect(eng).get_table_names()


def _include_object(obj, name, type_, reflected, compare_to):  # mirrors migrations/env.py
    return not (type_ == "table" and reflected and compare_to is None)


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gridmap.store.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_head_revision_is_alembics_head() -> None:
    from gridmap.store.db import head_revision

    assert head_revision() == _head()


def test_a_command_on_a_database_of_an_older_gridmap_migrates_it_first(tmp_path) -> None:
    """A database made before the change feed (revision 0004) is brought up to date by the command that
    opens it, which then works (no "no such table" traceback); a newer schema is refused in Chinese and English."""
    from typer.testing import CliRunner

    from gridmap.cli import app

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = make_engine(url)
    init_db(eng)
    downgrade_db(eng, "0004")
    assert "change_log" not in inspect(eng).get_table_names()
    res = CliRunner().invoke(app, ["users", "list", "--database-url", url])
    assert res.exit_code == 0, res.output
    assert current_revision(eng) == _head() and "change_log" in inspect(eng).get_table_names()
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    res = CliRunner().invoke(app, ["visits", "due", "--week", "2026-W49", "--database-url", url])
    assert res.exit_code != 0
    assert "9999" in res.output and "请升级" in res.output and "update gridmap" in res.output
    assert "Traceback" not in res.output
