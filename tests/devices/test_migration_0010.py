"""Migration 0010 upgrades a populated register: an elder with a visit keeps both, and gains station_id."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from gridmap.store.db import _alembic_config, current_revision, downgrade_db, init_db, make_engine

NOW = "2026-12-01 09:00:00+00:00"


def test_0010_upgrades_an_sqlite_register_whose_elders_have_visits(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/g.sqlite")
    init_db(engine)
    downgrade_db(engine, "0009")
    with engine.begin() as c:
        c.execute(text("INSERT INTO district (code, name, approximate) VALUES ('110108', '海淀区', false)"))
        c.execute(text("INSERT INTO street (id, name, district_code, approximate) "
                       "VALUES (1, '学院路街道', '110108', false)"))
        c.execute(text("INSERT INTO elder (id, version, name, categories, dispersed_support, assistance_units, "
                       "willing_to_be_visited, signed_care_station, signed_home_care_bed, status, geocode_quality, "
                       "field_sources, created_at, updated_at, street_id) VALUES (1, 1, '张三', '[]', false, '[]', "
                       "true, false, false, 'active', 'failed', '{}', :n, :n, 1)"), {"n": NOW})
        c.execute(text("INSERT INTO visit (id, version, elder_id, visited_on, mode, effective, visitor_role, "
                       "entered_at, late_entry) VALUES (1, 1, 1, '2026-11-30', 'phone', true, 'visit_steward', :n, "
                       "false)"), {"n": NOW})
    command.upgrade(_alembic_config(engine), "head")
    assert current_revision(engine) >= "0010"
    assert "station_id" in {c["name"] for c in inspect(engine).get_columns("elder")}
    with engine.connect() as c:
        assert c.execute(text("SELECT name, station_id FROM elder")).all() == [("张三", None)]
        assert c.execute(text("SELECT elder_id FROM visit")).scalars().all() == [1]
        c.exec_driver_sql("PRAGMA foreign_keys=ON")
        assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == []
