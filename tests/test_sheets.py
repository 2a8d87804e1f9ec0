"""gridmap.sheets: every xlsx/CSV writer writes formula-like text inert and files owner-only (issue 14, item 1).

Strings that start with ``=``, ``+``, ``-``, ``@`` (or their full-width forms), a
tab, a carriage return or a line feed — possibly after blanks — are generated
and written by every writer function of the module; each file is read back:
no formula cell (openpyxl ``data_type == "f"``), no text starting with a
formula character unless escaped with a leading ``'`` (the one rule, see the
module docstring), the text restored exactly by :func:`restore_text`, and the
file mode 0600.
"""

from __future__ import annotations

import csv
import io
import re
import stat
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from gridmap import sheets

PAYLOADS = ['=HYPERLINK("http://x.example/a","点击")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1", "\n=1", " =1+1", "\u3000＝1+1", "＋1", "－1", "＠SUM(A1)", "=*********)",
            "'=1", "''=1", "-", "=", "\u200b=1"]
HARMLESS = ["王秀兰", "北京市海淀区知春里社区****", "a=1", "1-2", "'quoted", "", "—破折号"]

FORMULA_START = tuple("=+-@＝＋－＠﹦﹢﹣﹫")


def _escaped_ok(text: str) -> bool:
    """The acceptance rule: no text starts (after blanks) with a formula character or a tab/CR/LF."""
    if text[:1] in ("\t", "\r", "\n"):
        return False
    return not text.lstrip(" \u3000\u00a0\u200b\ufeff\t\r\n").startswith(FORMULA_START)


def _xml_unescape(text: str) -> str:
    """Excel's ``_xHHHH_`` escapes (XlsxWriter writes \r as ``_x000D_``; openpyxl does not decode them)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _same(read: str, written: str) -> bool:
    # XML (xlsx) keeps \r only escaped; a reader may give \n for it — the text is otherwise identical
    read = _xml_unescape(read)
    return sheets.restore_text(read) == written or \
        sheets.restore_text(read).replace("\r", "\n") == written.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize("text", PAYLOADS)
def test_payloads_are_made_inert_and_restored(text: str) -> None:
    out = sheets.inert_text(text)
    assert out.startswith("'") and _escaped_ok(out)
    assert sheets.restore_text(out) == text


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_is_unchanged(text: str) -> None:
    assert sheets.inert_text(text) == text and sheets.restore_text(text) == text


# ------------------------------------------------------------------ generated strings through every writer

_lead = st.sampled_from(["", "", " ", "  ", "\u3000", "\t", "\r", "\n", "\u200b"])
_trigger = st.sampled_from(list("=+-@＝＋－＠") + ["'=", "''+"])
_body = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("\t\n=+-@'\"|!")),
                max_size=20)
formula_like = st.builds(lambda a, b, c: a + b + c, _lead, _trigger, _body)
texts = st.lists(st.one_of(formula_like, _body), min_size=1, max_size=6)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _no_formula_cells(path: Path) -> list[list[object]]:
    wb = load_workbook(path)
    rows = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", (ws.title, c.coordinate, c.value)
            rows.append([c.value for c in row])
    return rows


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(values=texts)
@example(values=['=HYPERLINK("http://x.example/a","点击")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
                 "\t=1", "\r=1"])
def test_write_csv(tmp_path_factory: pytest.TempPathFactory, values: list[str]) -> None:
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    frame = pd.DataFrame({"=head": values, "n": range(len(values))}, index=pd.Index(values, name="@idx"))
    sheets.write_csv(path, frame, index=True)
    assert _mode(path) == 0o600
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["'@idx", "'=head", "n"]
    for r, v in zip(rows[1:], values, strict=True):
        assert _escaped_ok(r[0]) and _escaped_ok(r[1]), r
        assert sheets.restore_text(r[1]) == v and sheets.restore_text(r[0]) == v


@SETTINGS
@given(values=texts)
@example(values=["=1", "\r=1", "@SUM(A1)"])
def test_write_frames_xlsx(tmp_path_factory: pytest.TempPathFactory, values: list[str]) -> None:
    path = tmp_path_factory.mktemp("xw") / "out.xlsx"
    frame = pd.DataFrame({"文本": values, "数值": [-1.5] * len(values)})
    sheets.write_frames_xlsx(path, {"表": frame, "索引": frame.set_index("文本")}, index={"索引": True})
    assert _mode(path) == 0o600
    rows = _no_formula_cells(path)
    body = [r for r in rows if r[0] != "文本"]
    assert len(body) == 2 * len(values)
    for r, v in zip(body, values + values, strict=True):
        read = "" if r[0] is None else r[0]
        assert _escaped_ok(read) and _same(read, v), (read, v)
        assert r[1] == -1.5  # numbers stay numbers


@SETTINGS
@given(values=texts)
@example(values=['=HYPERLINK("http://x.example/a","点击")', "\t=1"])
def test_xlsxwriter_rows_in_memory(values: list[str]) -> None:
    buf = io.BytesIO()
    with sheets.xlsxwriter_workbook(buf) as wb:
        ws = sheets.add_sheet(wb, "s")
        sheets.write_row(ws, 0, values)
        sheets.write_row(ws, 1, [-3, 2.5, None, True])
    wb2 = load_workbook(io.BytesIO(buf.getvalue()))
    cells = list(wb2.active.iter_rows())
    assert all(c.data_type != "f" for row in cells for c in row)
    for c, v in zip(cells[0], values, strict=False):
        read = "" if c.value is None else c.value
        assert _escaped_ok(read) and _same(read, v), (read, v)
    assert [c.value for c in cells[1]][:2] == [-3, 2.5]


@SETTINGS
@given(values=texts)
@example(values=["=1+1", "-2+3", "'=1"])
def test_openpyxl_write_only_and_normal(tmp_path_factory: pytest.TempPathFactory, values: list[str]) -> None:
    d = tmp_path_factory.mktemp("op")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    ws.append(sheets.openpyxl_row(ws, values))
    ws.append([sheets.cell_value(v) for v in values])  # plain values, as the register export appends them
    sheets.save_openpyxl(wb, d / "wo.xlsx")
    wb2 = Workbook()
    for j, v in enumerate(values, start=1):
        sheets.set_openpyxl_cell(wb2.active, 1, j, v)
    sheets.save_openpyxl(wb2, d / "n.xlsx")
    for p in (d / "wo.xlsx", d / "n.xlsx"):
        assert _mode(p) == 0o600
        for row in _no_formula_cells(p):
            for read, v in zip(row, values, strict=False):
                read = "" if read is None else read
                assert _escaped_ok(read) and _same(read, v), (p.name, read, v)


def test_owner_only_output_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.csv"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    with pytest.raises(RuntimeError), sheets.owner_only_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["x.csv"]
    with sheets.owner_only_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _mode(target) == 0o600
