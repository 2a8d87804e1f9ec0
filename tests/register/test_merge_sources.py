"""Merge across departments: one entry per person, field sources, conflicts flagged, never overwritten silently."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridmap.domain.enums import Category, DisabilityLevel
from gridmap.register.importer import import_ledger
from gridmap.register.merge import list_conflicts, resolve_conflict
from gridmap.store.models import Elder, FieldConflict, RegisterChange
from tests.register.conftest import make_rows, write_csv


def _elder(engine, id_number):
    with Session(engine) as s:
        return s.scalars(select(Elder).where(Elder.id_number == id_number)).one()


def test_same_person_from_two_departments_is_one_entry_with_sources(engine, reference, ledger_dir):
    rows = make_rows(4)
    import_ledger(engine, write_csv(rows, ledger_dir / "mz.csv"), "民政")
    rows[0]["失能等级"] = ""  # 残联 does not know; must not erase
    rows[0]["是否重残"], rows[0]["残疾等级"], rows[0]["残疾人证号"] = "是", "1", rows[0]["居民身份证号码"] + "41"
    rep = import_ledger(engine, write_csv(rows, ledger_dir / "cl.csv"), "残联")
    assert rep.rows_imported == 0
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Elder)) == 4
    e = _elder(engine, rows[0]["居民身份证号码"])
    assert e.field_sources["disability_grade"] == ["disabled_federation"]
    assert set(e.field_sources["name"]) == {"civil_affairs", "disabled_federation"}
    assert set(e.field_sources["_listed_by"]) == {"civil_affairs", "disabled_federation"}
    assert Category.SEVERELY_HANDICAPPED in e.categories and e.disability_grade == 1


def test_conflict_is_flagged_and_stored_value_kept(engine, reference, ledger_dir):
    rows = make_rows(3)
    import_ledger(engine, write_csv(rows, ledger_dir / "mz.csv"), "民政")
    phone = rows[1]["联系电话"]
    rows[1]["联系电话"] = "13700000000"
    rep = import_ledger(engine, write_csv(rows, ledger_dir / "wj.csv"), "卫健")
    assert rep.conflicts == 1
    assert _elder(engine, rows[1]["居民身份证号码"]).phone == phone
    (c,) = list_conflicts(engine)
    assert (c["field"], c["current_value"], c["incoming_value"], c["status"]) == ("phone", phone, "13700000000", "open")
    # importing the same disagreement again does not duplicate it
    write_csv(rows, ledger_dir / "wj2.csv").write_text((ledger_dir / "wj.csv").read_text(encoding="utf-8-sig") + "\n",
                                                       encoding="utf-8-sig")
    import_ledger(engine, ledger_dir / "wj2.csv", "卫健")
    assert len(list_conflicts(engine)) == 1
    resolve_conflict(engine, c["id"], "13700000000", user="tester")
    e = _elder(engine, rows[1]["居民身份证号码"])
    assert e.phone == "13700000000" and e.field_sources["phone"] == ["health"]
    with Session(engine) as s:
        hist = s.scalars(select(RegisterChange).where(RegisterChange.elder_id == e.id,
                                                      RegisterChange.field == "phone")).all()
        assert hist and hist[-1].changed_by == "tester" and hist[-1].old_value == phone
    assert list_conflicts(engine) == []


def test_authority_wins_but_conflict_recorded(engine, reference, ledger_dir):
    rows = make_rows(2)
    rows[0]["失能等级"] = "轻度"
    import_ledger(engine, write_csv(rows, ledger_dir / "mz.csv"), "民政")
    rows[0]["失能等级"] = "重度"
    import_ledger(engine, write_csv(rows, ledger_dir / "wj.csv"), "卫健")
    e = _elder(engine, rows[0]["居民身份证号码"])
    assert e.disability_level is DisabilityLevel.SEVERE
    with Session(engine) as s:
        c = s.scalars(select(FieldConflict)).one()
        assert (c.field, c.status, c.current_value, c.incoming_value) == ("disability_level", "auto_resolved",
                                                                          "mild", "severe")


def test_same_department_change_is_an_update_with_history(engine, reference, ledger_dir):
    rows = make_rows(2)
    import_ledger(engine, write_csv(rows, ledger_dir / "m1.csv"), "民政")
    rows[0]["联系电话"] = "13611112222"
    rep = import_ledger(engine, write_csv(rows, ledger_dir / "m2.csv"), "民政")
    assert rep.rows_updated == 1 and rep.rows_unchanged == 1 and rep.conflicts == 0
    e = _elder(engine, rows[0]["居民身份证号码"])
    assert e.phone == "13611112222"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RegisterChange).where(
            RegisterChange.elder_id == e.id, RegisterChange.field == "phone")) == 1


def test_mistyped_id_attaches_by_name_birth_and_address(engine, reference, ledger_dir):
    rows = make_rows(2)
    import_ledger(engine, write_csv(rows, ledger_dir / "a.csv"), "民政")
    good = rows[0]["居民身份证号码"]
    rows[0]["居民身份证号码"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    rows[0]["第一联系人电话"] = "13522223333"
    rep = import_ledger(engine, write_csv(rows[:1], ledger_dir / "b.csv"), "卫健")
    assert rep.rows_rejected == 0 and rep.rows_imported == 0
    assert "id_matched_by_name" in {w.code for w in rep.warnings}
    # an unknown person with a bad checksum is still rejected
    other = make_rows(1, start=500)[0]
    other["居民身份证号码"] = other["居民身份证号码"][:-1] + ("0" if other["居民身份证号码"][-1] != "0" else "1")
    rep2 = import_ledger(engine, write_csv([other], ledger_dir / "c.csv"), "卫健")
    assert rep2.rows_rejected == 1 and rep2.errors[0].code == "id_checksum"


def test_conflicts_list_masks_personal_values_and_resolves_by_side(engine, reference, ledger_dir):
    """``conflicts list`` showed phones and names in clear (issue 14, item 9): masked, resolvable by side."""
    import json

    from typer.testing import CliRunner

    from gridmap.cli import app

    rows = make_rows(3, start=20)
    import_ledger(engine, write_csv(rows, ledger_dir / "mz.csv"), "民政")
    phone = rows[1]["联系电话"]
    rows[1]["联系电话"] = "13700001234"
    import_ledger(engine, write_csv(rows, ledger_dir / "wj.csv"), "卫健")
    url = engine.url.render_as_string(hide_password=False)
    run = CliRunner().invoke
    for extra in ([], ["--json"]):
        res = run(app, ["register", "conflicts", "list", "--database-url", url, *extra])
        assert res.exit_code == 0, res.output
        for secret in (phone, "13700001234", rows[1]["姓名"]):
            assert secret not in res.output
    (c,) = json.loads(run(app, ["register", "conflicts", "list", "--json", "--database-url", url]).output)
    assert c["incoming_value"] == "137****1234" and c["field"] == "phone"
    res = run(app, ["register", "conflicts", "resolve", str(c["id"]), "--value", "incoming", "--database-url", url])
    assert res.exit_code == 0, res.output
    assert _elder(engine, rows[1]["居民身份证号码"]).phone == "13700001234"
