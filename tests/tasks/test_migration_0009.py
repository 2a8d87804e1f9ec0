"""Migration 0009 brings a database at 0008 (visits and care services of the older form) to service tasks."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from gridmap.store.db import _alembic_config, current_revision, downgrade_db, init_db

_NOW = "2026-12-01 09:00:00+00:00"


def test_a_database_at_0008_upgrades_keeping_its_visits_and_care_services(engine: Engine) -> None:
    downgrade_db(engine, "0008")
    assert current_revision(engine) == "0008"
    assert "service_task" not in inspect(engine).get_table_names()
    with engine.begin() as c:
        c.execute(text("INSERT INTO district (code, name, approximate) VALUES ('110108', '海淀区', false)"))
        c.execute(text("INSERT INTO street (id, name, district_code, approximate) VALUES (1, '学院路街道', '110108', false)"))
        c.execute(text(
            "INSERT INTO elder (id, version, name, categories, dispersed_support, assistance_units, "
            "willing_to_be_visited, signed_care_station, signed_home_care_bed, status, geocode_quality, "
            "field_sources, created_at, updated_at, street_id) VALUES (1, 1, '张三', '[]', false, '[]', true, false, "
            f"false, 'active', 'failed', '{{}}', '{_NOW}', '{_NOW}', 1)"))
        c.execute(text("INSERT INTO visit (id, version, elder_id, visited_on, mode, effective, visitor_role, needs, "
                       "entered_at, late_entry) VALUES (1, 1, 1, '2026-11-30', 'phone', true, 'visit_steward', "
                       f"'助餐', '{_NOW}', false)"))
        c.execute(text("INSERT INTO care_service (id, elder_id, visit_id, served_on, kind) "
                       "VALUES (1, 1, 1, '2026-11-30', '助餐')"))
    command.upgrade(_alembic_config(engine), "0009")  # this migration alone (the later ones are other issues')
    assert current_revision(engine) == "0009"
    names = set(inspect(engine).get_table_names())
    assert {"service_task", "service_task_event"} <= names
    visit_cols = {c["name"] for c in inspect(engine).get_columns("visit")}
    assert {"reaction", "family_support", "housing_safety", "drinking_water_safety", "need_kinds",
            "ineffective_reason"} <= visit_cols
    assert {"task_id", "recorded_by"} <= {c["name"] for c in inspect(engine).get_columns("care_service")}
    with engine.connect() as c:
        v = c.execute(text("SELECT needs, need_kinds, effective, reaction FROM visit")).one()
        cs = c.execute(text("SELECT kind, task_id FROM care_service")).one()
    assert v[0] == "助餐" and v[1] is None and v[2] in (True, 1) and v[3] is None  # the old visit as it was
    assert tuple(cs) == ("助餐", None)
    with engine.begin() as c:  # clean up for the next test on the shared PostGIS database
        for t in ("care_service", "visit", "elder", "street", "district"):
            c.execute(text(f"DELETE FROM {t}"))
    init_db(engine)
