"""每月更新: next month's ledger records who left, died, returned or changed; nobody is deleted."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.enums import ElderStatus
from gridmap.register.importer import import_ledger
from gridmap.store.models import Elder, RegisterChange
from tests.register.conftest import make_rows, write_csv


def _by_id(engine):
    with Session(engine) as s:
        return {e.id_number: e for e in s.scalars(select(Elder))}


def test_monthly_ledger_records_exits_deaths_and_changes(engine, reference, ledger_dir):
    rows = make_rows(6)
    import_ledger(engine, write_csv(rows, ledger_dir / "m1.csv"), "民政", period="2025-01", monthly=True)
    may = [dict(r) for r in rows[1:]] + make_rows(1, start=300)  # row 0 absent, one newcomer
    may[0]["其他情况"] = "2025年1月20日去世"
    may[1]["是否独居"] = "是" if may[1]["是否独居"] == "否" else "否"
    runner = CliRunner()
    url = engine.url.render_as_string(hide_password=False)
    res = runner.invoke(app, ["register", "update", str(write_csv(may, ledger_dir / "m2.csv")), "--period", "2025-02",
                              "--source", "民政", "--database-url", url, "--report", str(ledger_dir / "r.json")])
    assert res.exit_code == 0, res.output
    elders = _by_id(engine)
    assert len(elders) == 7  # nobody deleted
    left = elders[rows[0]["居民身份证号码"]]
    assert left.status is ElderStatus.EXITED and left.exited_on == date(2025, 2, 1) and "2025-02" in left.exit_reason
    dead = elders[rows[1]["居民身份证号码"]]
    assert dead.status is ElderStatus.DECEASED and dead.exited_on == date(2025, 2, 1)
    new = elders[may[-1]["居民身份证号码"]]
    assert new.status is ElderStatus.ACTIVE and new.entered_on == date(2025, 2, 1)
    with Session(engine) as s:
        st = s.scalars(select(RegisterChange).where(RegisterChange.elder_id == left.id,
                                                    RegisterChange.field == "status")).one()
        assert (st.old_value, st.new_value) == ("active", "exited") and "2025-02" in st.reason
        cat = s.scalar(select(func.count()).select_from(RegisterChange).where(
            RegisterChange.elder_id == elders[rows[2]["居民身份证号码"]].id, RegisterChange.field == "categories"))
        assert cat == 1
    # returns in March
    import_ledger(engine, write_csv(rows, ledger_dir / "m3.csv"), "民政", period="2025-03", monthly=True)
    assert _by_id(engine)[rows[0]["居民身份证号码"]].status is ElderStatus.ACTIVE


def test_partial_file_or_other_department_does_not_make_anyone_leave(engine, reference, ledger_dir):
    rows = make_rows(5)
    import_ledger(engine, write_csv(rows, ledger_dir / "a.csv"), "民政", period="2025-01", monthly=True)
    import_ledger(engine, write_csv(rows[:1], ledger_dir / "b.csv"), "民政")  # plain import: partial
    import_ledger(engine, write_csv(rows[:2], ledger_dir / "c.csv"), "卫健", period="2025-02", monthly=True)
    assert all(e.status is ElderStatus.ACTIVE for e in _by_id(engine).values())
