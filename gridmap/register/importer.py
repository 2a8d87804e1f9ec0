"""Import a department's ledger (xlsx or csv) into the register in one transaction.

``read_ledger`` finds the header row (title rows such as 特殊困难老年人信息台账
are skipped; row numbers stay those the spreadsheet shows), maps the Chinese
headers (variants included) and returns raw cells. ``import_ledger`` validates
every row (:mod:`gridmap.register.validate`), then in **one** transaction
writes the import batch, merges good rows (:mod:`gridmap.register.merge`),
applies the monthly rules when asked (:mod:`gridmap.register.monthly`) and
puts rejected rows in the quarantine table. A crash or a killed process rolls
the whole file back.

Idempotence: a file whose SHA-256 was already imported from the same
department (and period) changes nothing — no batch, no history, no
quarantine rows; the report says ``already_imported`` and counts every valid
row as unchanged.

Raw files: the file is archived as ``var/archive/<sha256><suffix>`` (owner
only: 0600 in a 0700 directory; written to a temporary name, then renamed) at
the end of the import's transaction, just before it commits. A copy that no
import batch refers to (an import killed between the copy and the commit) is
deleted by the next successful import once it is :data:`ORPHAN_AGE_S` seconds
old, and the report lists it (``archive_removed``).

An xlsx is a zip container: it is refused (exit 2, :class:`UnreadableFile`)
unless its local header signature is at byte 0 and every member passes its
CRC check (:meth:`zipfile.ZipFile.testzip`) — a damaged ledger is suspicious
even when the spreadsheet library could still read part of it.

Privacy: every value in a report, an import batch, a quarantine row's errors
and the console is masked (:func:`gridmap.register.validate.mask_cell`); the
quarantine table keeps the raw cells (personal data at rest, like the
register) so a fixed row can be re-submitted; :func:`export_quarantine`
writes them masked unless asked otherwise, and a re-submitted masked cell is
filled back from the stored row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from gridmap._errors import GridmapError
from gridmap.domain.enums import Source
from gridmap.register.columns import CANONICAL_COLUMNS, MEMBER_SHEET, map_headers, normalize_header
from gridmap.register.form import attach_member_sheet
from gridmap.register.validate import (
    EXTRA_COLUMNS,
    Reference,
    RowError,
    cell_text,
    mask_cell,
    reference_from_layers,
    validate_frame,
)
from gridmap.sheets import restore_text

#: Column of an exported quarantine sheet holding the quarantine row id.
QUARANTINE_ID = "隔离编号"
#: Column of an exported quarantine sheet holding the errors (ignored on re-submit).
QUARANTINE_ERRORS = "错误原因 / errors"
#: Column of an exported quarantine sheet holding the original row number.
QUARANTINE_ROW = "原行号"

_SOURCE_NAMES = {"民政": Source.CIVIL_AFFAIRS, "卫健": Source.HEALTH, "卫健委": Source.HEALTH,
                 "残联": Source.DISABLED_FEDERATION, "医保": Source.MEDICAL_INSURANCE,
                 "街道": Source.STREET, "手工": Source.MANUAL,
                 # issue 20: 区人社局 and the district data bureau's big-data platform exports
                 "人社": Source.HUMAN_RESOURCES, "人社局": Source.HUMAN_RESOURCES, "区人社局": Source.HUMAN_RESOURCES,
                 "人力社保": Source.HUMAN_RESOURCES, "数据局": Source.DATA_BUREAU, "区数据局": Source.DATA_BUREAU,
                 "大数据平台": Source.DATA_BUREAU, "数据平台": Source.DATA_BUREAU,
                 "区民政局": Source.CIVIL_AFFAIRS, "区卫健委": Source.HEALTH, "区残联": Source.DISABLED_FEDERATION,
                 "区医保局": Source.MEDICAL_INSURANCE, "医保局": Source.MEDICAL_INSURANCE, "街镇": Source.STREET}


#: Seconds after which an archived raw file that no import batch refers to is removed.
ORPHAN_AGE_S = 600
#: Names of the files the archive holds (archived ledgers and their temporary copies).
_ARCHIVE_NAME = re.compile(r"^(?:[0-9a-f]{64}(?:\.[A-Za-z0-9]{1,8})?|\.[0-9a-f]{64}\.[0-9]+\.tmp)$")


class UnreadableFile(GridmapError):
    """The file is not a ledger that can be read at all (exit code 2)."""


@dataclass
class Ledger:
    """A read ledger: raw cells under canonical headers, spreadsheet row numbers, header mapping."""

    path: Path
    sha256: str
    frame: pd.DataFrame
    rows: list[int]
    header_row: int
    mapped: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    encoding: str | None = None


@dataclass
class ImportReport:
    """What an import did; :meth:`as_dict` is the ``--report`` JSON."""

    file: str
    sha256: str
    rows_total: int = 0
    rows_imported: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    source: str | None = None
    batch_id: int | None = None
    already_imported: bool = False
    conflicts: int = 0
    mapped_headers: dict[str, str] = field(default_factory=dict)
    unknown_headers: list[str] = field(default_factory=list)
    monthly: dict[str, Any] | None = None
    archive_removed: list[str] = field(default_factory=list)
    #: rows of new elders given their community's visit steward (三(二)3: nobody without a steward)
    stewards_defaulted: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when no row was rejected, else 1."""
        return 1 if self.rows_rejected else 0

    def as_dict(self) -> dict[str, Any]:
        """The report JSON (contract keys first, then extras)."""
        keys = ("row", "column", "value", "code", "message_zh", "message_en")
        return {
            "file": self.file, "sha256": self.sha256, "rows_total": self.rows_total,
            "rows_imported": self.rows_imported, "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged, "rows_rejected": self.rows_rejected,
            "errors": [{k: getattr(e, k) for k in keys} for e in self.errors],
            "warnings": [{k: getattr(e, k) for k in keys} for e in self.warnings],
            "source": self.source, "batch_id": self.batch_id, "already_imported": self.already_imported,
            "conflicts": self.conflicts, "mapped_headers": self.mapped_headers,
            "unknown_headers": self.unknown_headers, "monthly": self.monthly,
            "archive_removed": self.archive_removed, "stewards_defaulted": self.stewards_defaulted,
        }


# ------------------------------------------------------------------ reading


def parse_source(text: str | Source | None) -> Source:
    """民政 / 卫健 / 残联 / 医保 or a :class:`Source` code → :class:`Source` (default 民政)."""
    if text is None or text == "":
        return Source.CIVIL_AFFAIRS
    if isinstance(text, Source):
        return text
    t = str(text).strip()
    if t in _SOURCE_NAMES:
        return _SOURCE_NAMES[t]
    try:
        return Source.from_label(t)  # type: ignore[return-value]
    except ValueError:
        raise GridmapError(
            f"unknown source {t!r}: use 民政, 卫健, 残联, 医保, 人社局 or 数据局 (or civil_affairs, health, "
            "disabled_federation, medical_insurance, human_resources, data_bureau)",
            f"未知来源“{t}”：应为民政、卫健、残联、医保、人社局或数据局",
        ) from None


def _unreadable(path: Path, en: str, zh: str) -> UnreadableFile:
    return UnreadableFile(f"cannot read {path.name}: {en}", f"无法读取文件{path.name}：{zh}")


def _find_header(rows: list[list[Any]], path: Path) -> tuple[int, dict[int, str], dict[str, str], list[str]]:
    best: tuple[int, int, dict[int, str], dict[str, str], list[str]] | None = None
    for i, row in enumerate(rows[:10]):
        mapping, mapped, unknown = map_headers(list(row))
        canon = set(mapping.values())
        if len(mapping) >= 3 and canon & {"姓名", "居民身份证号码"} and (best is None or len(mapping) > best[0]):
            best = (len(mapping), i, mapping, mapped, unknown)
    if best is None:
        raise _unreadable(path, "no header row with the register's columns (姓名, 居民身份证号码 …) in the first 10 rows",
                          "前10行中没有台账表头（姓名、居民身份证号码等）")
    _, i, mapping, mapped, unknown = best
    first_of_key: dict[str, str] = {}
    for k, v in EXTRA_COLUMNS.items():
        first_of_key.setdefault(v, k)
    known = {normalize_header(k): first_of_key[v] for k, v in EXTRA_COLUMNS.items()}
    known.update({normalize_header(h): h for h in (QUARANTINE_ID, QUARANTINE_ERRORS, QUARANTINE_ROW)})
    used = set(mapping.values())
    still_unknown = []
    for j, h in enumerate(rows[i]):
        n = normalize_header(h)
        if j in mapping or not n:
            continue
        header = known.get(n)
        if header is None:
            still_unknown.append(str(h))
            continue
        if header in used:
            continue
        mapping[j] = header
        used.add(header)
        if str(h) != header and header not in (QUARANTINE_ERRORS,):
            mapped[str(h)] = header
    return i, mapping, mapped, still_unknown


def _frame(rows: list[list[Any]], header_idx: int, mapping: dict[int, str]) -> tuple[pd.DataFrame, list[int]]:
    cols = list(mapping.values())
    data: list[list[Any]] = []
    numbers: list[int] = []
    idx = list(mapping)
    width = max(idx, default=-1) + 1
    for k in range(header_idx + 1, len(rows)):
        row = rows[k]
        vals = [row[j] for j in idx] if len(row) >= width else [row[j] if j < len(row) else None for j in idx]
        # a sheet gridmap wrote (an export re-submitted) carries formula-like text behind a quote: take it off
        vals = [restore_text(v) if isinstance(v, str) and v[:1] == "'" else v for v in vals]
        k += 1  # the spreadsheet's row number (header_idx is 0-based)
        if all(cell_text(v) == "" for v in vals):
            continue
        data.append(vals)
        numbers.append(k)
    frame = pd.DataFrame(data, columns=cols, dtype=object) if data else pd.DataFrame(columns=cols, dtype=object)
    return frame, numbers


def _check_zip(path: Path, raw: bytes) -> None:
    """Refuse a damaged zip container: wrong signature at byte 0, unreadable directory or a bad member.

    Raises
    ------
    UnreadableFile
        "文件已损坏 / the file is damaged", naming what is wrong.
    """
    def damaged(en: str, zh: str) -> UnreadableFile:
        return _unreadable(path, f"the file is damaged: {en}", f"文件已损坏：{zh}")

    if raw[:4] != b"PK\x03\x04":
        raise damaged("the zip signature at byte 0 is wrong (not an intact xlsx)",
                      "第0字节处的zip签名不正确（不是完整的xlsx文件）")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            bad = z.testzip()
    except Exception as exc:  # noqa: BLE001 - any failure means the container is damaged
        raise damaged(f"the zip structure is broken ({type(exc).__name__})", "压缩结构损坏") from None
    if bad is not None:
        raise damaged(f"the part {bad[:80]!r} fails its CRC check", f"其中的“{bad[:80]}”校验失败")


def _read_xlsx(path: Path, raw: bytes) -> tuple[list[list[Any]], list[list[Any]] | None]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the workbook is unreadable
        raise _unreadable(path, f"not a readable xlsx workbook ({type(exc).__name__})",
                          "不是可读取的xlsx工作簿") from None
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise _unreadable(path, "the workbook has no sheet", "工作簿中没有工作表")
        members = next((w for w in wb.worksheets[1:] if normalize_header(w.title) == MEMBER_SHEET), None)
        return ([list(r) for r in ws.iter_rows(values_only=True)],
                [list(r) for r in members.iter_rows(values_only=True)] if members is not None else None)
    except UnreadableFile:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt sheet data
        raise _unreadable(path, f"the sheet is corrupt ({type(exc).__name__})", "工作表已损坏") from None
    finally:
        wb.close()


def _read_csv(path: Path, raw: bytes) -> tuple[list[list[Any]], str]:
    text = None
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    if text is None or "\x00" in text:
        raise _unreadable(path, "not a text file in UTF-8 or GBK", "不是UTF-8或GBK编码的文本文件")
    csv.field_size_limit(1 << 30)
    # the delimiter is chosen on the first lines only; the whole file is parsed once
    head = "\n".join(text.splitlines()[:12])
    best_delim: str | None = None
    best_n = -1
    for delim in (",", "\t", ";"):
        try:
            rows = list(csv.reader(io.StringIO(head, newline=""), delimiter=delim))
        except csv.Error:
            continue
        n = max((len(map_headers(r)[0]) for r in rows[:10]), default=0)
        if n > best_n:
            best_delim, best_n = delim, n
    if best_delim is None:
        raise _unreadable(path, "not a CSV table", "不是CSV表格")
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=best_delim)), enc
    except csv.Error:
        raise _unreadable(path, "not a CSV table", "不是CSV表格") from None


def read_ledger(path: str | Path) -> Ledger:
    """Read an xlsx or csv ledger (UTF-8 or GBK) into raw cells under canonical headers.

    Raises
    ------
    UnreadableFile
        When the file is missing, empty, not a spreadsheet, in an unknown
        encoding, or has no recognizable header in its first 10 rows.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _unreadable(path, f"{exc.strerror or exc}", "文件不存在或无法打开") from None
    if not raw.strip():
        raise _unreadable(path, "the file is empty", "文件为空")
    sha = hashlib.sha256(raw).hexdigest()
    encoding = None
    member_rows: list[list[Any]] | None = None
    if raw[:4] == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        if not zipfile.is_zipfile(io.BytesIO(raw)):
            raise _unreadable(path, "not a readable xlsx workbook (damaged zip)", "不是可读取的xlsx工作簿（压缩结构损坏）")
        _check_zip(path, raw)
        rows, member_rows = _read_xlsx(path, raw)
    elif raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _unreadable(path, "old .xls format: save it as .xlsx", "旧版.xls格式：请另存为.xlsx")
    else:
        rows, encoding = _read_csv(path, raw)
    header_idx, mapping, mapped, unknown = _find_header(rows, path)
    frame, numbers = _frame(rows, header_idx, mapping)
    if member_rows:
        # a second sheet 家庭成员 keyed by the elder's 居民身份证号码: folded into 家庭成员N… columns
        cols, data, notes = attach_member_sheet(list(frame.columns), frame.to_numpy(dtype=object).tolist(),
                                                member_rows)
        frame = pd.DataFrame(data, columns=cols, dtype=object) if data else pd.DataFrame(columns=cols, dtype=object)
        unknown = unknown + notes
    return Ledger(path, sha, frame, numbers, header_idx + 1, mapped, unknown, encoding)


# ------------------------------------------------------------------ reference

_REFERENCE: dict[str, tuple[Any, Reference]] = {}


def load_reference(data_dir: str | Path | None = None) -> tuple[Any, Reference]:
    """Layers and a :class:`Reference` with a gazetteer, built once per data directory and cached."""
    from gridmap.config import get_settings
    from gridmap.layers.build import build_layers
    from gridmap.layers.geocode import build_gazetteer

    key = str(Path(data_dir) if data_dir else get_settings().data_dir)
    if key not in _REFERENCE:
        layers = build_layers(data_dir)
        gz = build_gazetteer(layers.streets, layers.communities, layers.service_points)
        _REFERENCE[key] = (layers, reference_from_layers(layers, gazetteer=gz))
    layers, ref = _REFERENCE[key]
    ref.today = datetime.now().date()
    return layers, ref


def _assign_grids(records: list[dict[str, Any]], layers: Any) -> None:
    import geopandas as gpd
    import shapely

    from gridmap.layers.assign import assign_areas

    located = [r for r in records if r.get("lon") is not None]
    if not located:
        return
    pts = gpd.GeoDataFrame(geometry=shapely.points([r["lon"] for r in located], [r["lat"] for r in located]),
                           crs=4326)
    out = assign_areas(pts, layers.streets, layers.communities, layers.grids, district=layers.district)
    for r, street, comm, grid in zip(located, out["street"], out["community_code"], out["grid_id"], strict=True):
        street = street if isinstance(street, str) and street else None
        comm = comm if isinstance(comm, str) and comm else None
        if not r.get("street") and street:
            r["street"] = street
        if not r.get("community_code") and comm and (r.get("street") in (None, street)):
            r["community_code"] = comm
        r["grid_code"] = grid if grid and (comm == r.get("community_code")) else None


# ------------------------------------------------------------------ archive


def archive_dir() -> Path:
    """``var/archive``, created owner-only (0700, as is ``var`` when created here)."""
    from gridmap.config import get_settings

    var = get_settings().var_dir
    target_dir = var / "archive"
    for d in (var, target_dir):
        if not d.is_dir():
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.chmod(d, 0o700)
        except OSError:  # not ours: leave it
            pass
    return target_dir


def archive_target(path: Path, sha256: str) -> Path:
    """Where the raw file of ``sha256`` is archived: ``var/archive/<sha256><suffix>``."""
    from gridmap.config import get_settings

    return get_settings().var_dir / "archive" / f"{sha256}{path.suffix.lower()}"


def archive_file(path: Path, sha256: str) -> Path:
    """Copy the raw file to ``var/archive/<sha256><suffix>``, owner-only (idempotent; temp name, then rename).

    Raises
    ------
    GridmapError
        When the file changed since it was read (its SHA-256 differs).
    """
    target_dir = archive_dir()
    target = target_dir / f"{sha256}{path.suffix.lower()}"
    if target.exists():
        os.chmod(target, 0o600)
        os.utime(target)  # fresh: a concurrent clean-up keeps it
        return target
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise GridmapError(f"{path.name} changed while it was imported; import it again",
                           f"文件{path.name}在导入过程中被修改，请重新导入")
    tmp = target_dir / f".{sha256}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return target


def clean_orphan_archives(engine: Engine, *, keep: set[str] | frozenset[str] = frozenset(),
                          min_age_s: float = ORPHAN_AGE_S) -> list[str]:
    """Delete archived raw files that no import batch refers to (left by killed imports).

    Only files named like the archive's own (``<sha256><suffix>`` or their
    temporary copies) and older than ``min_age_s`` seconds are removed, so an
    import running beside this one keeps the copy it is about to commit.

    Returns
    -------
    list of str
        The names of the removed files.
    """
    from gridmap.config import get_settings
    from gridmap.store.models import ImportBatch

    target_dir = get_settings().var_dir / "archive"
    if not target_dir.is_dir():
        return []
    with engine.connect() as conn:
        referenced = {Path(p).name for p in conn.execute(select(ImportBatch.archive_path)).scalars() if p}
    now = time.time()
    removed = []
    for f in sorted(target_dir.iterdir()):
        if (f.name in referenced or f.name in keep or not _ARCHIVE_NAME.match(f.name)
                or not f.is_file() or now - f.stat().st_mtime < min_age_s):
            continue
        try:
            f.unlink()
        except FileNotFoundError:
            continue
        removed.append(f.name)
    return removed


# ------------------------------------------------------------------ import


def _row_errors(errors: list[RowError]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in errors:
        out.setdefault(e.row, []).append(e.as_dict())
    return out


def import_ledger(
    engine: Engine,
    path: str | Path,
    source: str | Source | None = None,
    *,
    period: str | None = None,
    monthly: bool = False,
    user: str = "system",
    data_dir: str | Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    bulk: bool = True,
) -> ImportReport:
    """Validate and import one ledger file in one transaction.

    Parameters
    ----------
    engine
        The register database (migrated).
    path
        An xlsx or csv file (UTF-8 or GBK).
    source
        The department: 民政 / 卫健 / 残联 / 医保 or a :class:`Source` code.
    period
        ``YYYY-MM`` of a monthly ledger (required with ``monthly``).
    monthly
        Apply the monthly rules (:func:`gridmap.register.monthly.apply_monthly`):
        the file is the department's whole list for ``period``.
    user
        Who imports (written to the history).
    data_dir
        Geodata directory for the reference layers (default from settings).
    on_progress
        Called as ``on_progress(stage, done, total)`` while writing.
    bulk
        New elders in multi-row INSERTs (default); False: one ORM object per row (reference path).

    Returns
    -------
    ImportReport

    Raises
    ------
    UnreadableFile
        When the file cannot be read at all.
    GridmapError
        Bad source or period, or a database problem.
    """
    from gridmap.domain.enums import ChangeKind
    from gridmap.register.merge import AreaIndex, merge_records
    from gridmap.register.monthly import apply_monthly, parse_period
    from gridmap.store.changes import record_change
    from gridmap.store.db import session_scope
    from gridmap.store.models import ImportBatch, QuarantineRow, utcnow

    src = parse_source(source)
    if monthly and not period:
        raise GridmapError("a monthly update needs --period YYYY-MM", "每月更新须指定 --period YYYY-MM")
    if period:
        parse_period(period)
    again = _already_imported(engine, path, src, period)
    if again is not None:
        return again
    ledger = read_ledger(path)
    quarantine_ids = _quarantine_ids(ledger)
    if quarantine_ids:
        _fill_masked_cells(engine, ledger, quarantine_ids)
    layers, ref = load_reference(data_dir)
    result = validate_frame(ledger.frame, ledger.rows, ref)
    report = ImportReport(file=ledger.path.name, sha256=ledger.sha256, rows_total=len(ledger.rows),
                          source=src.label, mapped_headers=ledger.mapped, unknown_headers=ledger.unknown)
    report.warnings = list(result.warnings) + list(result.field_errors)
    if ledger.mapped:
        report.warnings.append(RowError(ledger.header_row, "*", ", ".join(f"{k}→{v}" for k, v in ledger.mapped.items()),
                                        "header_mapped", "表头已按常见写法映射：" + "，".join(
                                            f"“{k}”→“{v}”" for k, v in ledger.mapped.items()),
                                        "headers mapped from variants: " + ", ".join(
                                            f"{k} -> {v}" for k, v in ledger.mapped.items()), "warning"))
    _assign_grids(result.records + result.pending, layers)
    if monthly and period:
        start = parse_period(period)
        for r in result.records:
            r["_entered_on"] = start  # a new elder of a monthly ledger enters on the period's first day
    target = archive_target(ledger.path, ledger.sha256)

    with session_scope(engine, user=user, source=src.value,
                       reason=(f"每月更新 {period} " if monthly else "导入 ") + ledger.path.name[:120]) as s:
        prior = s.scalars(select(ImportBatch).where(ImportBatch.sha256 == ledger.sha256,
                                                    ImportBatch.source == src.label)).all()
        prior = [b for b in prior if (b.period or None) == (period or None)]
        if prior:
            pend_rows = {r["row"] for r in result.pending}
            report.errors = list(result.errors)
            report.rows_rejected = len({e.row for e in result.errors})
            # pending rows attached last time are still unchanged
            b = prior[0]
            attached = set((b.report or {}).get("attached_rows", []))
            report.errors = [e for e in report.errors if e.row not in (attached & pend_rows)]
            report.rows_rejected = len({e.row for e in report.errors})
            report.rows_unchanged = report.rows_total - report.rows_rejected
            report.already_imported = True
            report.batch_id = b.id
            report.warnings.append(RowError(0, "*", ledger.sha256[:12], "already_imported",
                                            f"该文件已于{b.imported_at:%Y-%m-%d %H:%M}导入（批次{b.id}），未做任何更改",
                                            f"this file was already imported (batch {b.id}); nothing changed",
                                            "warning"))
            s.rollback()
            report.archive_removed = clean_orphan_archives(engine, keep={target.name})
            return report
        batch = ImportBatch(file_name=ledger.path.name[:255], sha256=ledger.sha256, source=src.label,
                            archive_path=str(target), imported_by=user, period=period,
                            rows_total=report.rows_total)
        s.add(batch)
        s.flush()
        if on_progress:
            on_progress("batch", 0, len(result.records))
        outcome = merge_records(s, result.records, result.pending, src, batch_id=batch.id,
                                areas=AreaIndex.load(s), on_progress=on_progress, bulk=bulk)
        attached = set(outcome.attached)
        errors = [e for e in result.errors if e.row not in attached]
        report.errors = errors
        report.warnings += outcome.warnings
        report.rows_imported, report.rows_updated = outcome.imported, outcome.updated
        report.rows_unchanged = outcome.unchanged
        report.rows_rejected = len({e.row for e in errors})
        report.stewards_defaulted = sorted(outcome.stewards_defaulted)
        report.conflicts = outcome.conflicts
        if monthly:
            report.monthly = apply_monthly(s, outcome, src, period or "")
        # the change feed: one row at the commit, with every elder and street the merge touched
        record_change(s, ChangeKind.MONTHLY_UPDATE if monthly else ChangeKind.IMPORT,
                      detail={"batch": batch.id, "file": ledger.path.name[:120], "source": src.value,
                              **({"period": period} if period else {})})
        # quarantine: rejected rows, and imported rows with field errors (fixed and re-submitted later)
        merged_rows = {r["row"] for r in result.records} | attached
        field_rows = _row_errors([e for e in result.field_errors if e.row in merged_rows])
        by_row = _row_errors(errors)
        for rn, errs in field_rows.items():
            by_row.setdefault(rn, []).extend(errs)
        cells = {r["row"]: r["_cells"] for r in result.records + result.pending if "_cells" in r}
        missing_cells = [rn for rn in by_row if rn not in cells]
        if missing_cells:
            idx = {rn: i for i, rn in enumerate(ledger.rows)}
            for rn in missing_cells:
                i = idx.get(rn)
                if i is not None:
                    cells[rn] = {c: cell_text(v) for c, v in ledger.frame.iloc[i].items()}
        pending_q = {json.dumps(q.data, sort_keys=True, ensure_ascii=False): q
                     for q in s.scalars(select(QuarantineRow).where(QuarantineRow.status == "pending"))}
        now = utcnow()
        for rn, qid in quarantine_ids.items():
            q = s.get(QuarantineRow, qid)
            if q is None or q.status != "pending":
                continue
            if rn in by_row:
                q.errors = by_row[rn]
            elif rn in merged_rows:
                q.status, q.resolved_at, q.resolved_by = "resubmitted", now, user
        for rn, errs in by_row.items():
            if rn in quarantine_ids:
                continue
            data = {k: v for k, v in cells.get(rn, {}).items()
                    if k not in (QUARANTINE_ID, QUARANTINE_ERRORS, QUARANTINE_ROW)}
            key = json.dumps(data, sort_keys=True, ensure_ascii=False)
            if key in pending_q:
                pending_q[key].errors = errs
                continue
            q = QuarantineRow(batch_id=batch.id, row_number=rn, data=data, errors=errs, status="pending")
            s.add(q)
            pending_q[key] = q
        batch.rows_imported, batch.rows_updated = report.rows_imported, report.rows_updated
        batch.rows_unchanged, batch.rows_rejected = report.rows_unchanged, report.rows_rejected
        d = report.as_dict()
        d["attached_rows"] = sorted(attached)
        # the streets this ledger lists (gridmap.register.missing: whose monthly ledger arrived)
        d["streets"] = sorted({r["street"] for r in result.records + result.pending
                               if r.get("street") and (r["row"] in merged_rows)})
        batch.report = d
        report.batch_id = batch.id
        # the raw copy last, just before the commit: a kill before this point leaves no copy behind
        archive_file(ledger.path, ledger.sha256)
        if on_progress:
            on_progress("commit", len(result.records), len(result.records))
    report.archive_removed = clean_orphan_archives(engine, keep={target.name})
    return report


def _already_imported(engine: Engine, path: str | Path, src: Source, period: str | None) -> ImportReport | None:
    """The report of a file already imported from the same department (and period), or None.

    Decided on the file's SHA-256 before anything is read or validated, so a
    re-sent unchanged ledger costs one hash and one query; the counts come from
    the batch that imported it (every row that was not rejected is unchanged).
    """
    from sqlalchemy.orm import Session

    from gridmap.store.models import ImportBatch

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError:
        return None  # read_ledger reports it
    sha = hashlib.sha256(raw).hexdigest()
    with Session(engine) as s:
        prior = [b for b in s.scalars(select(ImportBatch).where(ImportBatch.sha256 == sha,
                                                                ImportBatch.source == src.label)
                                      .order_by(ImportBatch.id))
                 if (b.period or None) == (period or None)]
        if not prior:
            return None
        b = prior[0]
        old = dict(b.report or {})
        imported_at, bid = b.imported_at, b.id
    keys = ("row", "column", "value", "code", "message_zh", "message_en")

    def errs(items: list[dict[str, Any]]) -> list[RowError]:
        return [RowError(*(e.get(k, "") for k in keys), severity=e.get("severity", "error")) for e in items or []]

    report = ImportReport(file=p.name, sha256=sha, rows_total=int(old.get("rows_total", b.rows_total) or 0),
                          source=src.label, mapped_headers=old.get("mapped_headers") or {},
                          unknown_headers=old.get("unknown_headers") or [])
    report.errors = errs(old.get("errors", []))
    report.warnings = [w for w in errs(old.get("warnings", [])) if w.code != "already_imported"]
    report.rows_rejected = len({e.row for e in report.errors})
    report.rows_unchanged = report.rows_total - report.rows_rejected
    report.already_imported = True
    report.batch_id = bid
    report.warnings.append(RowError(0, "*", sha[:12], "already_imported",
                                    f"该文件已于{imported_at:%Y-%m-%d %H:%M}导入（批次{bid}），未做任何更改",
                                    f"this file was already imported (batch {bid}); nothing changed", "warning"))
    report.archive_removed = clean_orphan_archives(engine, keep={archive_target(p, sha).name})
    return report


def _quarantine_ids(ledger: Ledger) -> dict[int, int]:
    """Spreadsheet row → quarantine row id, for a re-submitted quarantine export."""
    out: dict[int, int] = {}
    if QUARANTINE_ID in ledger.frame.columns:
        for rn, qid in zip(ledger.rows, ledger.frame[QUARANTINE_ID], strict=True):
            try:
                out[rn] = int(float(cell_text(qid)))
            except (ValueError, OverflowError):
                pass
    return out


def _fill_masked_cells(engine: Engine, ledger: Ledger, quarantine_ids: dict[int, int]) -> None:
    """Put the stored raw value back into every re-submitted cell still showing it masked.

    A masked quarantine export shows ``110108********123X``; whoever fixes
    another column re-submits that text. A cell equal to the masked form of
    the stored value (and not to the value itself) is replaced by the stored
    value; any other cell is taken as typed.
    """
    from sqlalchemy.orm import Session

    from gridmap.store.models import QuarantineRow

    wanted = set(quarantine_ids.values())
    with Session(engine) as s:
        stored = {q.id: dict(q.data or {}) for q in s.scalars(
            select(QuarantineRow).where(QuarantineRow.id.in_(wanted), QuarantineRow.status == "pending"))}
    if not stored:
        return
    frame = ledger.frame
    cols = list(frame.columns)
    for i, rn in enumerate(ledger.rows):
        data = stored.get(quarantine_ids.get(rn, -1))
        if not data:
            continue
        for j, col in enumerate(cols):
            if col not in data:
                continue
            raw = cell_text(data[col])
            cell = cell_text(frame.iat[i, j])  # the quote before formula-like text was taken off by _frame
            if cell and (cell == raw or cell == mask_cell(col, raw)):
                frame.iat[i, j] = raw


def write_report(report: ImportReport, path: str | Path) -> None:
    """Write the report JSON (UTF-8, Chinese kept readable), created owner-only (0600)."""
    text = json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


# ------------------------------------------------------------------ quarantine


def list_quarantine(engine: Engine, status: str | None = "pending", *, mask: bool = True) -> list[dict[str, Any]]:
    """Quarantined rows (id, batch, file, row, data, errors, status); ``data`` masked unless ``mask=False``.

    Only callers that checked the unmask permission (or never show the data)
    pass ``mask=False``.
    """
    from sqlalchemy.orm import Session

    from gridmap.store.models import ImportBatch, QuarantineRow

    with Session(engine) as s:
        q = select(QuarantineRow, ImportBatch.file_name, ImportBatch.source).join(
            ImportBatch, ImportBatch.id == QuarantineRow.batch_id).order_by(QuarantineRow.id)
        if status:
            q = q.where(QuarantineRow.status == status)
        return [{"id": r.id, "batch_id": r.batch_id, "file": fn, "source": src, "row": r.row_number,
                 "data": {k: mask_cell(k, v) for k, v in (r.data or {}).items()} if mask else r.data,
                 "errors": [{**e, "value": mask_cell(e.get("column", ""), e.get("value"))}
                            if mask and e.get("value") and "*" not in str(e.get("value")) else e
                            for e in (r.errors or [])],
                 "status": r.status} for r, fn, src in s.execute(q)]


def export_quarantine(engine: Engine, out: str | Path, source: str | Source | None = None, *,
                      mask: bool = True) -> int:
    """Write pending quarantined rows to an xlsx a user can fix: canonical columns + id + errors.

    Personal cells are masked unless ``mask=False`` (the caller checked the
    unmask permission and audits it); a masked cell re-submitted unchanged is
    filled back from the stored row (see :func:`import_ledger`). The file is
    created owner-only (0600).

    Returns the number of rows written.
    """
    import openpyxl

    from gridmap.sheets import openpyxl_row

    rows = list_quarantine(engine, "pending", mask=mask)
    if source is not None:
        label = parse_source(source).label
        rows = [r for r in rows if r["source"] == label]
    extra = sorted({k for r in rows for k in r["data"] if k not in CANONICAL_COLUMNS})
    headers = [QUARANTINE_ID, QUARANTINE_ROW, *CANONICAL_COLUMNS, *extra, QUARANTINE_ERRORS]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "待修正"
    ws.append(openpyxl_row(ws, headers))  # gridmap.sheets: text inert, never a formula
    for r in rows:
        errs = "；".join(f"{e['column']}：{e['message_zh']} / {e['message_en']}" for e in r["errors"])
        ws.append(openpyxl_row(ws, [r["id"], r["row"], *[r["data"].get(c, "") for c in CANONICAL_COLUMNS],
                                    *[r["data"].get(c, "") for c in extra], errs]))
    for col in ws.iter_cols(min_row=1, max_row=ws.max_row):
        for c in col:
            c.number_format = "@"
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(tmp, 0o600)
    wb.save(tmp)
    os.replace(tmp, out)
    return len(rows)


def now_utc() -> datetime:
    """Timezone-aware now."""
    return datetime.now(UTC)
