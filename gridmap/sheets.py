"""Write spreadsheets (xlsx and CSV) safely: ledger text is inert, files are owner-only.

Every xlsx and CSV file gridmap writes goes through this module (the register,
first-contact and quarantine exports, the record form, the supervision report,
the dashboard export, the CSV outputs of ``visits due``, ``audit report`` and
``city indicators``). Two things are done here, in one place:

**Formula injection (OWASP "CSV injection").** Ledger text comes from outside
(department ledgers, the dashboard); a name or address such as
``=HYPERLINK("http://x.example/a","点击")`` or ``=cmd|' /C calc'!A0`` must never
become a live formula in the user's spreadsheet program. Text is *dangerous*
(:func:`is_dangerous`) when it begins with ``=``, ``+``, ``-``, ``@``, their
full-width forms ``＝＋－＠`` (and the small forms ``﹦﹢﹣﹫``), a tab, a
carriage return or a line feed, or when such a character follows leading
blanks (spaces, the ideographic space, zero-width characters), which Excel,
WPS and LibreOffice may trim on import. Dangerous text is written with a
single quote in front (:func:`inert_text`) — the OWASP recommendation — *in
CSV and in xlsx alike*, and in xlsx always as a string cell (openpyxl
``data_type == "s"``; XlsxWriter ``write_string`` with ``strings_to_formulas``,
``strings_to_urls`` and ``strings_to_numbers`` off), never as a formula.

Why the visible quote in xlsx too, rather than only a string cell with
Excel's ``quotePrefix`` style: a string cell is already inert when the file is
opened, but the text itself still starts with ``=`` and becomes a formula
again as soon as it leaves the cell — when a user edits the cell in a
program that ignores ``quotePrefix``, saves the sheet as CSV, or copies the
column into another sheet. The quote travels with the text, behaves the same
in every program (Excel, WPS, LibreOffice, Numbers, pandas) and makes the one
rule of this module the same for both formats: *no cell text starts with a
formula character*. Masking happens before writing, so a masked value such as
``=*****)`` is neutralised too. :func:`restore_text` is the exact inverse
for a reader (a quote is also added in front of text that would otherwise be
read back wrongly, e.g. ``'=1`` becomes ``''=1``).

**Owner-only files.** Every file is written to a temporary file created with
mode ``0600`` in the target directory and then moved over the target
(:func:`owner_only_output`), so a reader never sees a half-written file and
nobody else on the machine can read the personal data in it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import pandas as pd

__all__ = [
    "FORMULA_CHARS", "XLSXWRITER_OPTIONS", "add_sheet", "cell_value", "inert_text", "is_dangerous", "openpyxl_cell",
    "openpyxl_row", "owner_only_output", "restore_text", "save_openpyxl", "set_openpyxl_cell",
    "write_csv", "write_frame", "write_frames_xlsx", "write_row", "xlsx_bytes", "xlsxwriter_workbook",
]

#: Characters that make a spreadsheet program read text as a formula (or DDE command).
FORMULA_CHARS = frozenset("=+-@＝＋－＠﹦﹢﹣﹫")
#: Characters that are dangerous as the very first character (cell separators and line breaks).
_FIRST_CONTROLS = frozenset("\t\r\n\x0b\x0c")
#: Blanks a spreadsheet program may drop before looking at the first character.
_BLANKS = " \t\r\n\x0b\x0c\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
          "\u200b\u200c\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
QUOTE = "'"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

#: Workbook options of every XlsxWriter workbook: strings are never turned into formulas, links or numbers.
XLSXWRITER_OPTIONS: dict[str, Any] = {"strings_to_formulas": False, "strings_to_urls": False,
                                      "strings_to_numbers": False, "nan_inf_to_errors": False}


# ------------------------------------------------------------------ the rule


def is_dangerous(text: str) -> bool:
    """Whether ``text`` would be read as a formula: see the module docstring."""
    if not text:
        return False
    if text[0] in _FIRST_CONTROLS:
        return True
    rest = text.lstrip(_BLANKS)
    return bool(rest) and rest[0] in FORMULA_CHARS


def _needs_quote(text: str) -> bool:
    # a quote is also added in front of text that restore_text would otherwise strip
    return is_dangerous(text) or (text.startswith(QUOTE) and _needs_quote(text[1:]))


def inert_text(value: Any) -> Any:
    """``value`` as it is written to a sheet: dangerous text gets a leading ``'``; anything else unchanged.

    Examples
    --------
    >>> inert_text('=HYPERLINK("http://x.example/a","点击")')
    '\\'=HYPERLINK("http://x.example/a","点击")'
    >>> inert_text("王秀兰"), inert_text(-3)
    ('王秀兰', -3)
    """
    if isinstance(value, str) and _needs_quote(value):
        return QUOTE + value
    return value


def restore_text(value: Any) -> Any:
    """The inverse of :func:`inert_text` (for a reader of a sheet gridmap wrote)."""
    if isinstance(value, str) and value.startswith(QUOTE) and _needs_quote(value[1:]):
        return value[1:]
    return value


def cell_value(value: Any) -> Any:
    """A Python value ready for a cell: None for missing values, plain Python numbers, inert text.

    Lists and tuples become text joined by ``、``; other objects their ``str``. Control
    characters other than tab and line breaks cannot be stored in xlsx (XML) and are dropped
    (before the text is made inert).
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 0) == 0:
        return cell_value(value.item())  # numpy scalar
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, (bool, int, float, datetime, date, time)):
        return value
    if isinstance(value, (list, tuple, set)):
        value = "、".join(str(v) for v in value)
    return inert_text(_XML_ILLEGAL.sub("", str(value)))


# ------------------------------------------------------------------ files


@contextlib.contextmanager
def owner_only_output(path: str | Path) -> Iterator[Path]:
    """A temporary path (mode 0600, same directory) that replaces ``path`` when the block succeeds.

    The parent directory is created if needed; on an error the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o600)
        yield tmp
        os.chmod(tmp, 0o600)  # a writer that recreated the file gets the mode back
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ CSV


def write_csv(path: str | Path, frame: pd.DataFrame, *, index: bool = False,
              encoding: str = "utf-8-sig") -> Path:
    """Write ``frame`` as CSV (UTF-8 with BOM for Excel by default), text inert, owner-only.

    Headers, index labels and every text cell go through :func:`inert_text`;
    numbers, booleans and dates are written as pandas writes them. Rows end with
    CRLF and fields holding a line break are quoted.
    """
    out = frame.copy()
    out.columns = [inert_text(str(c)) if not isinstance(c, str) else inert_text(c) for c in out.columns]
    if index:
        out.index = out.index.map(lambda v: inert_text(v) if isinstance(v, str) else v)
        if isinstance(out.index.name, str):
            out.index.name = inert_text(out.index.name)
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col)):
            out.isetitem(i, col.astype(object).map(_csv_cell))
    with owner_only_output(path) as tmp:
        # CRLF rows (RFC 4180): the csv module then quotes every field holding \r or \n, so a
        # carriage return inside a value can never start a new row (and a formula) in Excel
        out.to_csv(tmp, index=index, encoding=encoding, lineterminator="\r\n")
    return Path(path)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str):
        return inert_text(value)
    if isinstance(value, (list, tuple, dict, set)):
        return inert_text(str(value))
    return value


# ------------------------------------------------------------------ openpyxl


def openpyxl_cell(ws: Any, value: Any, **style: Any) -> Any:
    """A write-only openpyxl cell holding ``value`` (:func:`cell_value`), text as a string cell.

    ``style`` sets cell attributes such as ``font``, ``fill``, ``alignment``, ``number_format``.
    """
    from openpyxl.cell import WriteOnlyCell

    c = WriteOnlyCell(ws, value=cell_value(value))
    if isinstance(c.value, str):
        c.data_type = "s"
    for k, v in style.items():
        setattr(c, k, v)
    return c


def openpyxl_row(ws: Any, values: Iterable[Any], **style: Any) -> list[Any]:
    """A row of :func:`openpyxl_cell` for ``ws.append`` (write-only or normal worksheets)."""
    return [openpyxl_cell(ws, v, **style) for v in values]


def set_openpyxl_cell(ws: Any, row: int, column: int, value: Any) -> Any:
    """Set a cell of a normal openpyxl worksheet to ``value`` (:func:`cell_value`), text as a string cell."""
    c = ws.cell(row=row, column=column)
    v = cell_value(value)
    c.value = v
    if isinstance(v, str):
        c.data_type = "s"
    return c


def save_openpyxl(wb: Any, path: str | Path) -> Path:
    """Save an openpyxl workbook to ``path`` owner-only (temporary file, then moved)."""
    with owner_only_output(path) as tmp:
        wb.save(tmp)
    return Path(path)


# ------------------------------------------------------------------ XlsxWriter


@contextlib.contextmanager
def xlsxwriter_workbook(target: str | Path | IO[bytes], **options: Any) -> Iterator[Any]:
    """An XlsxWriter workbook with :data:`XLSXWRITER_OPTIONS`, closed (and saved owner-only) at the end.

    ``target`` is a path (written through :func:`owner_only_output`) or a binary buffer.
    """
    import xlsxwriter

    opts = {**XLSXWRITER_OPTIONS, **options}
    if isinstance(target, (str, Path)):
        with owner_only_output(target) as tmp:
            wb = xlsxwriter.Workbook(str(tmp), opts)
            try:
                yield wb
            finally:
                wb.close()
    else:
        wb = xlsxwriter.Workbook(target, opts)
        try:
            yield wb
        finally:
            wb.close()


def write_row(ws: Any, row: int, values: Sequence[Any], fmt: Any = None, *, col: int = 0,
              formats: Mapping[int, Any] | None = None) -> None:
    """Write one row to an XlsxWriter worksheet with typed calls (text always ``write_string``).

    ``formats`` maps a column offset within ``values`` to its format (else ``fmt``).
    """
    for j, raw in enumerate(values):
        f = (formats or {}).get(j, fmt)
        v = cell_value(raw)
        c = col + j
        if v is None:
            if f is not None:
                ws.write_blank(row, c, None, f)
        elif isinstance(v, str):
            ws.write_string(row, c, v, f)
        elif isinstance(v, bool):
            ws.write_boolean(row, c, v, f)
        elif isinstance(v, (int, float)):
            if isinstance(v, float) and math.isinf(v):
                ws.write_string(row, c, str(v), f)
            else:
                ws.write_number(row, c, v, f)
        elif isinstance(v, (datetime, date, time)):
            if isinstance(v, datetime) and v.tzinfo is not None:
                v = v.replace(tzinfo=None)
            ws.write_datetime(row, c, v, f if f is not None else _book_format(ws, v))
        else:  # pragma: no cover - cell_value returns only the types above
            ws.write_string(row, c, inert_text(str(v)), f)


def _book_format(ws: Any, v: Any) -> Any:
    book = getattr(ws, "gridmap_book", None)
    if book is None:
        return None
    cache = book.__dict__.setdefault("_gridmap_formats", {})
    kind = "datetime" if isinstance(v, datetime) else "time" if isinstance(v, time) else "date"
    if kind not in cache:
        cache[kind] = book.add_format({"num_format": {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm",
                                                      "time": "hh:mm"}[kind]})
    return cache[kind]


def add_sheet(wb: Any, name: str) -> Any:
    """A new worksheet of an XlsxWriter workbook that knows its workbook (for date formats)."""
    ws = wb.add_worksheet(name)
    ws.gridmap_book = wb
    return ws


def write_frame(ws: Any, frame: pd.DataFrame, *, index: bool = False, row: int = 0,
                header_fmt: Any = None, column_formats: Mapping[str, Any] | None = None) -> int:
    """Write ``frame`` (header first) to an XlsxWriter worksheet; returns the next free row.

    ``column_formats`` maps a column name to the format of its data cells.
    """
    head: list[Any] = []
    if index:
        names = [n for n in frame.index.names]
        head = [("" if n is None else n) for n in names]
    head += [str(c) for c in frame.columns]
    write_row(ws, row, head, header_fmt)
    formats: dict[int, Any] = {}
    offset = frame.index.nlevels if index else 0
    for j, c in enumerate(frame.columns):
        if column_formats and str(c) in column_formats:
            formats[offset + j] = column_formats[str(c)]
    for i, rec in enumerate(frame.itertuples(index=index, name=None), start=row + 1):
        vals = list(rec)
        if index and frame.index.nlevels > 1:
            vals = list(vals[0]) + vals[1:]
        write_row(ws, i, vals, formats=formats)
    return row + 1 + len(frame)


def write_frames_xlsx(target: str | Path | IO[bytes], sheets: Mapping[str, pd.DataFrame], *,
                      index: bool | Mapping[str, bool] = False,
                      number_formats: Mapping[str, str] | None = None,
                      widths: bool = True) -> None:
    """Write frames to one xlsx, one sheet each (XlsxWriter, bold header, text inert, owner-only).

    Parameters
    ----------
    target
        A path or a binary buffer.
    sheets
        Sheet name → frame.
    index
        Write the index as the first columns (for all sheets or per sheet name).
    number_formats
        Column header → Excel number format of its data cells (e.g. ``"0.0%"``).
    widths
        Set each column's width from its header (2 per character, 10 to 60).
    """
    with xlsxwriter_workbook(target) as wb:
        bold = wb.add_format({"bold": True})
        fmts = {h: wb.add_format({"num_format": f}) for h, f in (number_formats or {}).items()}
        for name, frame in sheets.items():
            ws = add_sheet(wb, name)
            idx = index.get(name, False) if isinstance(index, Mapping) else index
            write_frame(ws, frame, index=idx, header_fmt=bold, column_formats=fmts)
            if widths:
                heads = ([str(n or "") for n in frame.index.names] if idx else []) + [str(c) for c in frame.columns]
                for j, h in enumerate(heads):
                    ws.set_column(j, j, min(60, max(10, 2 * len(h) + 2)))


def xlsx_bytes(sheets: Mapping[str, pd.DataFrame], **kwargs: Any) -> bytes:
    """:func:`write_frames_xlsx` into memory."""
    buf = io.BytesIO()
    write_frames_xlsx(buf, sheets, **kwargs)
    return buf.getvalue()
