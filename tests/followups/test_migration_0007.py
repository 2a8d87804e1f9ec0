"""Migration 0007 brings a database of the older life-cycles (hazard closed, referral escalated) to the new ones."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from gridmap.store.db import current_revision, downgrade_db, init_db

_NOW = "2026-12-01 09:00:00+00:00"


def _old_rows(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO district (code, name, approximate) VALUES ('110108', '海淀区', false)"))
        c.execute(text("INSERT INTO street (id, name, district_code, approximate) VALUES (1, '学院路街道', '110108', false)"))
        c.execute(text(
            "INSERT INTO elder (id, version, name, categories, dispersed_support, assistance_units, "
            "willing_to_be_visited, signed_care_station, signed_home_care_bed, status, geocode_quality, "
            "field_sources, created_at, updated_at, street_id) VALUES (1, 1, '张三', '[]', false, '[]', true, false, "
            f"false, 'active', 'failed', '{{}}', '{_NOW}', '{_NOW}', 1)"))
        for hid, status, closed in ((1, "open", None), (2, "in_progress", None), (3, "closed", "2026-11-20")):
            c.execute(text("INSERT INTO hazard (id, version, elder_id, kind, severity, source, status, opened_on, "
                           "closed_on) VALUES (:i, 1, 1, 'gas', 'high', 'visit', :s, '2026-11-10', :c)"),
                      {"i": hid, "s": status, "c": closed})
        for rid, status, ack in ((1, "escalated", None), (2, "escalated", _NOW), (3, "closed", _NOW), (4, "open", None)):
            c.execute(text("INSERT INTO referral (id, version, elder_id, need, target, emergency, status, opened_at, "
                           "acknowledged_at, escalated_at) VALUES (:i, 1, 1, '助餐', 'community', true, :s, :o, :a, :e)"),
                      {"i": rid, "s": status, "o": _NOW, "a": ack, "e": _NOW if status == "escalated" else None})


def test_an_old_database_at_0006_upgrades_with_its_follow_ups_in_the_new_states(engine: Engine) -> None:
    downgrade_db(engine, "0006")
    assert current_revision(engine) == "0006"
    assert "hazard_event" not in inspect(engine).get_table_names()
    _old_rows(engine)
    init_db(engine)
    assert current_revision(engine) >= "0007"
    names = set(inspect(engine).get_table_names())
    assert {"hazard_event", "referral_event", "joint_inspection", "notification"} <= names
    with engine.connect() as c:
        hz = dict(c.execute(text("SELECT id, status FROM hazard ORDER BY id")).all())
        assert hz == {1: "open", 2: "in_progress", 3: "fixed"}
        assert set(c.execute(text("SELECT reopened_count FROM hazard")).scalars()) == {0}
        rf = {r[0]: (r[1], r[2] is not None, r[3]) for r in
              c.execute(text("SELECT id, status, escalated_at, resolved FROM referral ORDER BY id"))}
    # escalated is a flag now: back to open / acknowledged, the flag kept; a closed one counts as resolved
    assert rf[1] == ("open", True, None)
    assert rf[2] == ("acknowledged", True, None)
    assert rf[3][0] == "closed" and rf[3][2] in (True, 1)
    assert rf[4] == ("open", False, None)
    visit_cols = {c["name"] for c in inspect(engine).get_columns("visit")}
    assert "idempotency_key" in visit_cols
    # and the new code reads the upgraded rows
    from gridmap.followups.store import read_hazard_frame, read_referral_frame

    h = read_hazard_frame(engine, status="已整改")
    assert h["id"].tolist() == [3] and h["street"].tolist() == ["学院路街道"]
    r = read_referral_frame(engine, status=["open", "acknowledged"])
    assert sorted(r["id"]) == [1, 2, 4]
    # clean up for the next test on the shared PostGIS database
    with engine.begin() as c:
        for t in ("referral", "hazard", "elder", "street", "district"):
            c.execute(text(f"DELETE FROM {t}"))
