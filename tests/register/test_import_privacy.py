"""Import output never shows a full ID number (issue 14, item 4): report, batch, quarantine, console.

A ledger with a mistyped ID (check digit wrong), the same ID twice and a bad
phone is imported through the CLI; the raw ID numbers (and the check digit
they should have) appear nowhere a user reads: the ``--report`` JSON, the
stored import batch, the quarantine rows' errors, ``quarantine list`` and the
console. Values are shown masked (``110108********123X``). A row attached to
an existing elder by name, birth date and address does not echo that elder's
ID number. The quarantine export is masked too, and a masked export can
still be fixed and re-submitted.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.idcard import check_digit, make_id_number
from gridmap.register.importer import export_quarantine, import_ledger
from gridmap.register.validate import mask_cell, validate_frame
from gridmap.store.models import Elder, ImportBatch, QuarantineRow
from tests.register.conftest import make_rows, write_csv

runner = CliRunner()


def _cli(engine, *args: str):
    return runner.invoke(app, ["register", *args, "--database-url", engine.url.render_as_string(hide_password=False)])


def _wrong_check(number: str) -> str:
    """``number`` with a wrong check digit."""
    good = check_digit(number[:17])
    return number[:17] + ("1" if good != "1" else "2")


def _stored_texts(engine) -> str:
    """Everything the import stored that users are shown: batch reports and quarantine errors."""
    with Session(engine) as s:
        batches = [b.report for b in s.scalars(select(ImportBatch))]
        errors = [q.errors for q in s.scalars(select(QuarantineRow))]
    return json.dumps([batches, errors], ensure_ascii=False)


def test_report_batch_quarantine_and_console_show_id_numbers_masked(engine, reference, ledger_dir):
    rows = make_rows(6, start=40)
    mistyped = _wrong_check(rows[1]["居民身份证号码"])
    rows[1]["居民身份证号码"] = mistyped
    rows[1]["家庭住址"] = "无此人的住址99号"  # matches nobody: the checksum error stands
    dup = rows[2]["居民身份证号码"]
    rows[4]["居民身份证号码"] = dup  # the same ID twice in the file (same sex)
    rows[3]["联系电话"] = "12345"
    f = write_csv(rows, ledger_dir / "ids.csv")
    rep = ledger_dir / "r.json"
    res = _cli(engine, "import", str(f), "--report", str(rep))
    assert res.exit_code == 1, res.output
    report = rep.read_text(encoding="utf-8")
    d = json.loads(report)
    by_code = {e["code"]: e for e in d["errors"]}
    # row, column and reason are named; the value is masked
    chk = by_code["id_checksum"]
    assert (chk["row"], chk["column"]) == (3, "居民身份证号码")
    assert chk["value"] == mistyped[:6] + "*" * 8 + mistyped[-4:]
    dup_err = by_code["duplicate_in_file"]
    assert (dup_err["row"], dup_err["column"]) == (6, "居民身份证号码")
    assert "row 4" in dup_err["message_en"] and "第4行" in dup_err["message_zh"]
    assert dup_err["value"] == dup[:6] + "*" * 8 + dup[-4:]
    field = {e["code"]: e for e in d["warnings"]}  # a field error: the elder imported, warned (issue 20)
    assert field["phone_format"]["row"] == 5 and field["phone_format"]["value"] != "12345"
    # the checksum message does not give away the right check digit
    assert not any(c.isdigit() for c in chk["message_zh"] + chk["message_en"])
    assert "应为" not in chk["message_zh"] and "expected" not in chk["message_en"]
    listing = _cli(engine, "quarantine", "list")
    assert listing.exit_code == 0
    shown = report + res.output + listing.output + _stored_texts(engine)
    for raw in (mistyped, dup, *[r["居民身份证号码"] for r in rows]):
        assert raw not in shown
        assert raw[6:14] not in shown  # not even the birth date digits
    for name in (r["姓名"] for r in rows[1:5]):
        assert name not in listing.output


def test_row_attached_by_name_does_not_echo_the_existing_elders_id(engine, reference, ledger_dir):
    rows = make_rows(3, start=60)
    import_ledger(engine, write_csv(rows, ledger_dir / "first.csv"), "民政")
    existing = rows[0]["居民身份证号码"]
    again = [dict(rows[0])]
    again[0]["居民身份证号码"] = _wrong_check(existing)
    rep = ledger_dir / "r.json"
    res = _cli(engine, "import", str(write_csv(again, ledger_dir / "second.csv")), "--source", "卫健",
               "--report", str(rep))
    assert res.exit_code == 0, res.output
    report = rep.read_text(encoding="utf-8")
    warns = [w for w in json.loads(report)["warnings"] if w["code"] == "id_matched_by_name"]
    assert len(warns) == 1 and warns[0]["row"] == 2
    shown = report + res.output + _stored_texts(engine)
    assert existing not in shown and again[0]["居民身份证号码"] not in shown


def test_masked_quarantine_export_can_be_fixed_and_resubmitted(engine, reference, ledger_dir):
    rows = make_rows(4, start=70)
    rows[1]["联系电话"] = "0000"
    import_ledger(engine, write_csv(rows, ledger_dir / "q.csv"), "民政")
    out = ledger_dir / "fix.xlsx"
    assert export_quarantine(engine, out) == 1
    import openpyxl

    wb = openpyxl.load_workbook(out)
    ws = wb.active
    headers = [c.value for c in ws[1]]
    values = [c.value for c in ws[2]]
    text = json.dumps(values, ensure_ascii=False, default=str)
    for col in ("居民身份证号码", "姓名", "家庭住址", "第一联系人"):
        assert rows[1][col] not in text, col  # masked in the file
    assert values[headers.index("居民身份证号码")] == mask_cell("居民身份证号码", rows[1]["居民身份证号码"])
    ws.cell(row=2, column=headers.index("联系电话") + 1, value="13812345678")  # fix only the phone
    wb.save(out)
    res = _cli(engine, "quarantine", "resubmit", str(out))
    assert res.exit_code == 0, res.output
    with Session(engine) as s:
        e = s.scalars(select(Elder).where(Elder.id_number == rows[1]["居民身份证号码"])).one()
        assert (e.name, e.address, e.phone) == (rows[1]["姓名"], rows[1]["家庭住址"], "13812345678")
        assert s.scalars(select(QuarantineRow)).one().status == "resubmitted"


_ID = st.builds(lambda born, seq, sex: make_id_number("110108", born, seq, sex),
                st.dates(date(1900, 1, 1), date(1965, 12, 31)), st.integers(0, 99), st.sampled_from(["男", "女"]))


@given(number=_ID, how=st.sampled_from(["check", "digit", "twice", "short", "lower"]))
@example(number="11010819400305128X", how="check")
@example(number="11010819400305128X", how="lower")
def test_no_validation_message_or_value_holds_the_id_digits(number, how):
    if how == "check":
        typed = _wrong_check(number)
    elif how == "digit":
        typed = number[:10] + str((int(number[10]) + 1) % 2) + number[11:]  # month digit changed
    elif how == "short":
        typed = number[:17]
    elif how == "lower":
        typed = number.lower()
    else:
        typed = number
    rows = make_rows(2)
    for r in rows:
        r["居民身份证号码"], r["性别"] = typed, ""
    res = validate_frame(pd.DataFrame(rows), ref=None)
    out = [e for e in res.errors + res.warnings if e.column == "居民身份证号码"]
    assert out  # the second row at least is a duplicate or both are wrong
    for e in out:
        text = " ".join((e.value, e.message_zh, e.message_en))
        assert typed.upper() not in text.upper() and number not in text
        assert number[6:14] not in text  # the birth date digits stay hidden
        if e.code == "id_checksum":
            assert not any(c.isdigit() for c in e.message_zh + e.message_en)


def test_formula_like_text_written_by_gridmap_reads_back_as_it_was(engine, reference, ledger_dir):
    """A sheet gridmap wrote (export, quarantine export) puts ``'`` before formula-like text; importing it
    back stores the text as it was, not with the quote (and a text that itself began with a quote keeps it)."""
    from gridmap.sheets import write_csv as write_inert_csv
    from gridmap.store.models import Elder

    rows = make_rows(3, start=70)
    notes = ['=HYPERLINK("http://x.example/a","点击")', "'=1+1", "-独居，子女在外地"]
    for r, note in zip(rows, notes):
        r["其他情况"] = note
    path = write_inert_csv(ledger_dir / "roundtrip.csv", pd.DataFrame(rows))
    text = path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "''=1+1" in text  # the file itself is inert
    rep = import_ledger(engine, path, "民政")
    assert rep.rows_rejected == 0, rep.errors
    ids = [r["居民身份证号码"] for r in rows]
    with Session(engine) as s:
        got = {e.id_number: e.other_notes for e in s.scalars(select(Elder).where(Elder.id_number.in_(ids)))}
    assert [got[i] for i in ids] == notes
