"""``gridmap register import``: report contract, exit codes, one transaction, idempotence, quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.register.importer import export_quarantine, import_ledger, list_quarantine
from gridmap.store.models import Elder, ImportBatch, QuarantineRow
from tests.register.conftest import make_rows, snapshot, write_csv, write_xlsx

runner = CliRunner()


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _cli(engine, *args: str):
    return runner.invoke(app, ["register", *args, "--database-url", _url(engine)])


def test_cli_import_report_contract_and_exit_codes(engine, reference, ledger_dir):
    rows = make_rows(30)
    rows[4]["联系电话"] = "12345"
    rows[9]["是否独居"] = "maybe"
    rows[14]["姓名"] = ""  # who is it? the only kind of error that rejects a row (issue 20)
    f = write_xlsx(rows, ledger_dir / "台账.xlsx", title="特殊困难老年人信息台账")
    rep = ledger_dir / "r.json"
    res = _cli(engine, "import", str(f), "--source", "民政", "--report", str(rep))
    assert res.exit_code == 1, res.output
    d = json.loads(rep.read_text(encoding="utf-8"))
    for k in ("file", "sha256", "rows_total", "rows_imported", "rows_updated", "rows_unchanged", "rows_rejected",
              "errors"):
        assert k in d
    assert d["rows_total"] == 30 and d["rows_imported"] == 29 and d["rows_rejected"] == 1
    # title row + blank row: header is row 3, data starts on row 4
    got = {(e["row"], e["column"], e["code"]) for e in d["errors"]}
    assert got == {(18, "姓名", "missing_required")}
    # field errors: the elder imported without the field, a warning with the same keys
    warned = {(e["row"], e["column"], e["code"]) for e in d["warnings"]}
    assert {(8, "联系电话", "phone_format"), (13, "是否独居", "yes_no_invalid")} <= warned
    keys = {"row", "column", "value", "code", "message_zh", "message_en"}
    assert all(set(e) == keys for e in d["errors"] + d["warnings"])
    assert next(e for e in d["warnings"] if e["row"] == 8)["value"] != "12345"  # masked
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Elder)) == 29
        assert s.scalar(select(Elder.phone).where(Elder.id_number == rows[4]["居民身份证号码"])) is None
        assert s.scalar(select(func.count()).select_from(QuarantineRow)) == 3
        b = s.scalars(select(ImportBatch)).one()
        assert Path(b.archive_path).read_bytes() == f.read_bytes()
        assert b.archive_path.endswith(d["sha256"] + ".xlsx")
    ok = write_csv(make_rows(3, start=100), ledger_dir / "ok.csv")
    assert _cli(engine, "import", str(ok), "--source", "health").exit_code == 0
    bad = ledger_dir / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02 not a ledger")
    res = _cli(engine, "import", str(bad))
    assert res.exit_code == 2 and "无法读取" in res.output and "cannot read" in res.output


def test_reimport_changes_nothing(engine, reference, ledger_dir):
    rows = make_rows(20)
    rows[3]["姓名"] = ""
    f = write_csv(rows, ledger_dir / "a.csv")
    first = import_ledger(engine, f, "民政")
    before = snapshot(engine)
    again = import_ledger(engine, f, "民政")
    assert snapshot(engine) == before
    assert again.already_imported and again.rows_imported == 0 and again.rows_updated == 0
    assert again.rows_unchanged == first.rows_imported == 19 and again.rows_rejected == 1
    # same content in another file (other bytes) from the same department: still nothing changes
    g = write_xlsx(rows, ledger_dir / "a.xlsx")
    third = import_ledger(engine, g, "民政")
    assert third.rows_unchanged == 19 and third.rows_imported == third.rows_updated == 0
    after = snapshot(engine)
    assert after["elder"] == before["elder"] and after["register_change"] == before["register_change"]
    assert after["quarantine_row"][0][1:4] == before["quarantine_row"][0][1:4]  # no duplicate quarantine row
    assert len(after["quarantine_row"]) == 1


def test_gbk_csv_and_header_variants(engine, reference, ledger_dir):
    rows = make_rows(5)
    renamed = [{("身份证号" if k == "居民身份证号码" else "老人姓名" if k == "姓名" else k): v for k, v in r.items()}
               for r in rows]
    f = write_csv(renamed, ledger_dir / "gbk.csv", encoding="gbk")
    rep = import_ledger(engine, f, "残联")
    assert rep.rows_imported == 5 and rep.mapped_headers == {"身份证号": "居民身份证号码", "老人姓名": "姓名"}
    assert "header_mapped" in {w.code for w in rep.warnings}


def test_quarantine_export_fix_resubmit(engine, reference, ledger_dir):
    rows = make_rows(6)
    rows[2]["联系电话"] = "0000"
    f = write_csv(rows, ledger_dir / "q.csv")
    import_ledger(engine, f, "民政")
    pending = list_quarantine(engine)
    assert len(pending) == 1 and pending[0]["row"] == 4 and pending[0]["errors"][0]["code"] == "phone_format"
    out = ledger_dir / "fix.xlsx"
    assert export_quarantine(engine, out) == 1
    import openpyxl

    wb = openpyxl.load_workbook(out)
    ws = wb.active
    headers = [c.value for c in ws[1]]
    ws.cell(row=2, column=headers.index("联系电话") + 1, value="13812345678")
    wb.save(out)
    res = _cli(engine, "quarantine", "resubmit", str(out))
    assert res.exit_code == 0, res.output
    assert list_quarantine(engine) == []
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Elder)) == 6
        assert s.scalar(select(Elder.phone).where(Elder.id_number == rows[2]["居民身份证号码"])) == "13812345678"


@pytest.mark.parametrize("content", [b"", b"   \n", "姓名,居民身份证号码,家庭住址\n".encode(),
                                     b"PK\x03\x04broken zip", "随便,什么,表\n1,2,3\n".encode("gbk")])
def test_unreadable_or_empty_files(engine, reference, ledger_dir, content):
    f = ledger_dir / ("x.xlsx" if content.startswith(b"PK") else "x.csv")
    f.write_bytes(content)
    before = snapshot(engine)
    res = _cli(engine, "import", str(f))
    if content.startswith("姓名".encode()):  # header only: a readable ledger with no rows
        assert res.exit_code == 0
    else:
        assert res.exit_code == 2, res.output
    assert snapshot(engine)["elder"] == before["elder"]
