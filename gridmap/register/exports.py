"""Exports of the register: the ledger to xlsx and the record form 附件1-2 of one elder (xlsx/PDF).

Everything exported is masked by default (ID numbers, phones, names, exact
addresses and coordinates, the first contact's name and phone) with
:mod:`gridmap.domain.masking`; an unmasked export needs a reason and is written
to the audit log (``export_unmasked`` / ``form_unmasked``). Every file carries a
watermark — who exported it and when — in the first row and in the printed
page header.

The store is read by :func:`read_register_frame` and :func:`load_record_form`
(SQLAlchemy); the layout of the form (:func:`record_form_layout`) is plain data
rendered by openpyxl (xlsx) or reportlab (PDF). Every file is written through
:mod:`gridmap.sheets`: ledger text that a spreadsheet program would take for a
formula is written inert, and the file is created owner-only.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gridmap import sheets
from gridmap._errors import GridmapError, ValidationError
from gridmap.access.policy import PERSONAL_FIELDS, mask_value
from gridmap.domain.enums import (
    Category,
    Change,
    DisabilityLevel,
    ElderStatus,
    FamilyChange,
    FirstContactRule,
    GeocodeQuality,
    IllnessChange,
    Safety,
    Satisfaction,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)
from gridmap.register.columns import CANONICAL_COLUMNS
from gridmap.register.residence import decide_serving_street

TICK, BOX = "☑", "□"

#: Extra columns of the register export after the canonical ones: header → frame column.
EXTRA_COLUMNS: dict[str, str] = {
    "状态": "status",
    "网格": "grid",
    "定位精度": "geocode_quality",
    "户籍所在街道": "hukou_street",
    "户籍地址": "hukou_address",
    "第一联系人确定规则": "first_contact_rule_label",
    "第一联系人是否有效": "first_contact_valid",
    "系统编号": "elder_id",
}

class ExportError(GridmapError):
    """An export cannot be made (unknown elder, unsupported format…)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    rows: int
    masked: bool
    watermark: str


def watermark_text(user: str, *, masked: bool, reason: str | None = None,
                   at: datetime | None = None) -> str:
    """The watermark line: who exported, when, masked or not (and why not)."""
    at = at or datetime.now()
    state = "已脱敏" if masked else f"未脱敏（原因：{reason}）"
    return (f"导出人：{user}　导出时间：{at:%Y-%m-%d %H:%M}　{state}　"
            "仅限探访关爱工作使用，注意保护老年人隐私，不得外传")


def _require_reason(mask: bool, reason: str | None) -> None:
    if not mask and not (reason and reason.strip()):
        raise ValidationError(
            "an unmasked export needs a reason (--reason)",
            "导出未脱敏数据必须填写原因（--reason）",
            field="reason", code="reason_required",
        )


def write_audit(engine: Any, *, user: str, action: str, entity: str | None = None,
                entity_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append one row to the audit log."""
    from gridmap.store.db import session_scope
    from gridmap.store.models import AuditLog

    with session_scope(engine, user=user) as s:
        s.add(AuditLog(username=user, action=action, entity=entity, entity_id=entity_id,
                       client="cli", detail=detail or {}))


# ================================================================ store readers


def _street_filter(stmt: Any, street: str | None) -> Any:
    from sqlalchemy import select

    from gridmap.store.models import Elder, Street

    if street:
        stmt = stmt.where(Elder.street_id.in_(select(Street.id).where(Street.name == street)))
    return stmt


def _known_street(engine: Any, street: str | None) -> None:
    if not street:
        return
    from sqlalchemy import select

    from gridmap.store.models import Street

    with engine.connect() as conn:
        names = list(conn.execute(select(Street.name)).scalars())
    if street not in names:
        near = [n for n in names if street.rstrip("街道镇乡") in n][:5]
        raise ValidationError(
            f"unknown street {street!r}" + (f"; did you mean {', '.join(near)}?" if near else ""),
            f"没有名为“{street}”的街道（乡镇）" + (f"，是否为：{'、'.join(near)}？" if near else ""),
            field="street", value=street, code="unknown_street",
        )


def read_register_frame(engine: Any, *, street: str | None = None) -> pd.DataFrame:
    """The register as a DataFrame: one row per elder, unmasked, frame columns of the export.

    Columns are the attribute names of :data:`CANONICAL_COLUMNS` (``name``, ``id_number``,
    ``street``, ``lon``…) plus ``elder_id``, ``status``, ``grid``, ``geocode_quality``,
    ``hukou_street``, ``hukou_address``, ``first_contact_rule``, ``first_contact_valid``,
    ``household_relations`` and ``household_names`` (lists, from 二、家庭基本情况).
    """
    from sqlalchemy import select
    from sqlalchemy.orm import aliased

    from gridmap.store.models import (
        Community,
        Elder,
        FirstContact,
        Grid,
        HouseholdMember,
        Steward,
        Street,
    )

    _known_street(engine, street)
    vs, ss = aliased(Steward), aliased(Steward)
    stmt = (
        select(Elder.id, Elder.name, Elder.sex, Elder.id_number, Elder.phone, Street.name,
               Community.name, Elder.address, Elder.geom, Elder.lives_at_hukou, Elder.categories,
               Elder.disability_level, Elder.disability_cert_no, Elder.disability_grade,
               Elder.welfare_status, Elder.willing_to_be_visited, Elder.signed_care_station,
               Elder.signed_home_care_bed, FirstContact.name, FirstContact.relation,
               FirstContact.phone, FirstContact.rule, FirstContact.valid, vs.name, ss.name,
               Elder.other_notes, Elder.status, Grid.code, Elder.geocode_quality,
               Elder.hukou_street, Elder.hukou_address)
        .outerjoin(Street, Street.id == Elder.street_id)
        .outerjoin(Community, Community.id == Elder.community_id)
        .outerjoin(Grid, Grid.id == Elder.grid_id)
        .outerjoin(FirstContact, FirstContact.elder_id == Elder.id)
        .outerjoin(vs, vs.id == Elder.visit_steward_id)
        .outerjoin(ss, ss.id == Elder.service_steward_id)
        .order_by(Street.name, Community.name, Elder.id)
    )
    stmt = _street_filter(stmt, street)
    hh_stmt = _street_filter(
        select(HouseholdMember.elder_id, HouseholdMember.name, HouseholdMember.relation)
        .join(Elder, Elder.id == HouseholdMember.elder_id)
        .order_by(HouseholdMember.elder_id, HouseholdMember.seq), street)
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        hh_rel: dict[int, list[str]] = defaultdict(list)
        hh_name: dict[int, list[str]] = defaultdict(list)
        for eid, hname, rel in conn.execute(hh_stmt):
            hh_rel[eid].append(rel or "")
            hh_name[eid].append(hname or "")
        for r in conn.execute(stmt):
            (eid, name, sex, idn, phone, st_name, co_name, addr, geom, lah, cats, dis, cert, grade,
             welfare, willing, signed_st, signed_bed, fc_name, fc_rel, fc_phone, fc_rule, fc_valid,
             v_name, s_name, notes, status, grid, gq, h_street, h_addr) = r
            cats = set(cats or [])
            rows.append({
                "elder_id": eid, "name": name, "sex": sex, "id_number": idn, "phone": phone,
                "street": st_name, "community": co_name, "address": addr,
                "lon": None if geom is None else round(geom.x, 6),
                "lat": None if geom is None else round(geom.y, 6),
                "crs": "WGS84" if geom is not None else None,
                "lives_at_hukou": lah,
                "living_alone": Category.LIVING_ALONE in cats,
                "empty_nest": Category.EMPTY_NEST in cats,
                "disability_level": DisabilityLevel(dis).label if dis else None,
                "severely_handicapped": Category.SEVERELY_HANDICAPPED in cats,
                "disability_cert_no": cert, "disability_grade": grade,
                "family_planning_special": Category.FAMILY_PLANNING_SPECIAL in cats,
                "welfare_status": WelfareStatus(welfare).label if welfare else None,
                "willing_to_be_visited": willing,
                "signed_care": bool(signed_st or signed_bed),
                "first_contact_name": fc_name, "first_contact_relation": fc_rel,
                "first_contact_phone": fc_phone,
                "first_contact_rule": str(fc_rule) if fc_rule else None,
                "first_contact_rule_label": FirstContactRule(fc_rule).label if fc_rule else None,
                "first_contact_valid": fc_valid,
                "visit_steward": v_name, "service_steward": s_name, "other_notes": notes,
                "status": ElderStatus(status).label if status else None,
                "grid": grid,
                "geocode_quality": GeocodeQuality(gq).label if gq else None,
                "hukou_street": h_street, "hukou_address": h_addr,
                "household_relations": hh_rel.get(eid, []),
                "household_names": hh_name.get(eid, []),
            })
    cols = list(CANONICAL_COLUMNS.values()) + [
        "elder_id", "status", "grid", "geocode_quality", "hukou_street", "hukou_address",
        "first_contact_rule", "first_contact_rule_label", "first_contact_valid",
        "household_relations", "household_names"]
    return pd.DataFrame(rows, columns=cols)


# ============================================================ register export


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return _cell(value.item())
    return value


def masked_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a register frame with personal data masked (coordinates rounded to ~1 km).

    The personal columns and their masks are those of
    :data:`gridmap.access.policy.PERSONAL_FIELDS` (the one masking table).
    """
    out = df.copy()
    for col in PERSONAL_FIELDS:
        if col in out:
            out[col] = [mask_value(col, v) if isinstance(v, (str, list)) else v for v in out[col]]
    for col in ("lon", "lat"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce").round(2)
    return out


def export_register(
    source: Any,
    path: str | Path,
    *,
    mask: bool = True,
    street: str | None = None,
    user: str = "system",
    reason: str | None = None,
    audit_engine: Any = None,
    progress: bool = False,
) -> ExportResult:
    """Write the register to an xlsx file with the canonical Chinese columns.

    Parameters
    ----------
    source
        An engine (the store is read with :func:`read_register_frame`) or a register
        frame with the same columns.
    path
        The ``.xlsx`` file to write (written to a temporary name, then moved).
    mask
        Mask personal data (default). ``False`` needs ``reason`` and is audited.
    street
        Only this street (by canonical name, e.g. ``学院路街道``).
    user, reason
        Who exports, and why when unmasked; both go into the watermark and the audit log.
    audit_engine
        Where to write the audit row when ``source`` is a frame (default: ``source``
        when it is an engine).
    progress
        Show a progress bar (CLI).

    Returns
    -------
    ExportResult

    Raises
    ------
    ValidationError
        ``reason_required`` when unmasked without a reason; ``unknown_street``.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    _require_reason(mask, reason)
    is_frame = isinstance(source, pd.DataFrame)
    engine = None if is_frame else source
    audit_engine = audit_engine if audit_engine is not None else engine
    df = source if is_frame else read_register_frame(source, street=street)
    if is_frame and street and "street" in df:
        df = df[df["street"] == street]
    view = masked_frame(df) if mask else df
    wm = watermark_text(user, masked=mask, reason=reason)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    headers = list(CANONICAL_COLUMNS) + list(EXTRA_COLUMNS)
    attrs = list(CANONICAL_COLUMNS.values()) + list(EXTRA_COLUMNS.values())
    for a in attrs:
        if a not in view:
            view = view.assign(**{a: None})

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("台账")
    ws.freeze_panes = "C3"
    widths = {"姓名": 10, "居民身份证号码": 21, "联系电话": 14, "街道（乡镇）": 14, "居（村）": 20,
              "家庭住址": 36, "第一联系人电话": 14, "其他情况": 24, "第一联系人确定规则": 16}
    from openpyxl.utils import get_column_letter

    for i, h in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(h, max(8, len(h) * 2 + 2))
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = 9  # A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.print_title_rows = "2:2"
    ws.oddHeader.center.text = wm.replace("&", "&&")
    ws.oddHeader.center.size = 8
    ws.oddFooter.center.text = "第 &P 页 共 &N 页"

    ws.append([sheets.openpyxl_cell(ws, f"海淀区特殊困难老年人台账　{wm}",
                                    font=Font(color="C00000", bold=True))])
    ws.append(sheets.openpyxl_row(ws, headers, font=Font(bold=True), fill=PatternFill("solid", fgColor="DDEBF7"),
                                  alignment=Alignment(horizontal="center", vertical="center", wrap_text=True)))

    records = view[attrs].itertuples(index=False, name=None)
    if progress:
        from tqdm import tqdm

        records = tqdm(records, total=len(view), desc="导出台账 export", unit="行")
    n = 0
    for rec in records:
        ws.append([sheets.cell_value(_cell(v)) for v in rec])  # text inert, never a formula
        n += 1
    sheets.save_openpyxl(wb, path)

    if audit_engine is not None:
        write_audit(audit_engine, user=user, action="export" if mask else "export_unmasked",
                    entity="register", entity_id=street,
                    detail={"file": path.name, "rows": n, "masked": mask, "reason": reason,
                            "street": street})
    return ExportResult(path, n, mask, wm)


def export_first_contact_gaps(
    gaps: pd.DataFrame,
    path: str | Path,
    *,
    mask: bool = True,
    reason: str | None = None,
    user: str = "system",
    audit_engine: Any = None,
    street: str | None = None,
) -> ExportResult:
    """Write the elders without a valid first contact (see
    :func:`gridmap.register.first_contact.elders_without_valid_first_contact`) to xlsx.

    Masked by default; unmasked needs ``reason`` and is audited when ``audit_engine`` is given.
    """
    from openpyxl import Workbook

    _require_reason(mask, reason)
    view = masked_frame(gaps) if mask else gaps.copy()
    wm = watermark_text(user, masked=mask, reason=reason)
    headers = {"elder_id": "系统编号", "name": "姓名", "street": "街道（乡镇）", "community": "居（村）",
               "first_contact_name": "第一联系人", "first_contact_relation": "第一联系人关系",
               "first_contact_phone": "第一联系人电话", "first_contact_rule": "登记的确定规则",
               "problems": "问题代码", "reason_zh": "原因", "reason_en": "reason"}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("无有效第一联系人")
    ws.oddHeader.center.text = wm.replace("&", "&&")
    ws.append(sheets.openpyxl_row(ws, [f"无有效第一联系人的老年人　{wm}"]))
    ws.append(sheets.openpyxl_row(ws, headers.values()))
    for rec in view[list(headers)].itertuples(index=False, name=None):
        ws.append(sheets.openpyxl_row(ws, [", ".join(v) if isinstance(v, list) else _cell(v) for v in rec]))
    path = Path(path)
    sheets.save_openpyxl(wb, path)
    if audit_engine is not None:
        write_audit(audit_engine, user=user, action="export" if mask else "export_unmasked",
                    entity="first_contact_gaps", entity_id=street,
                    detail={"file": path.name, "rows": len(view), "masked": mask, "reason": reason})
    return ExportResult(path, len(view), mask, wm)


# ============================================================ record form data


@dataclass
class RecordForm:
    """Everything the record form 附件1-2 shows for one elder (unmasked; masking at layout)."""

    elder: dict[str, Any]
    household: list[dict[str, Any]] = field(default_factory=list)
    visits: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    first_contact: dict[str, Any] | None = None


def _as_dict(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


def load_record_form(engine: Any, elder_id: int, *, visits: int = 3,
                     services: int = 3) -> RecordForm:
    """Read one elder, the household, the latest visits and care services.

    Raises
    ------
    ExportError
        When there is no elder with this id.
    """
    from sqlalchemy import select

    from gridmap.store.db import session_scope
    from gridmap.store.models import CareService, Community, Elder, Steward, Street, Visit

    with session_scope(engine) as s:
        e = s.get(Elder, elder_id)
        if e is None:
            raise ExportError(f"no elder with id {elder_id}", f"没有编号为 {elder_id} 的老年人")
        d = _as_dict(e, [c.key for c in Elder.__table__.columns if c.key != "geom"])
        d["street"] = s.get(Street, e.street_id).name if e.street_id else None
        d["community"] = s.get(Community, e.community_id).name if e.community_id else None
        d["visit_steward"] = e.visit_steward.name if e.visit_steward else None
        d["service_steward"] = e.service_steward.name if e.service_steward else None
        hh = [_as_dict(m, ["seq", "name", "sex", "id_number", "relation", "health",
                           "welfare_status"]) for m in e.household]
        fc = None
        if e.first_contact is not None:
            fc = _as_dict(e.first_contact, ["name", "relation", "phone", "rule", "valid"])
        vrows = list(s.scalars(select(Visit).where(Visit.elder_id == elder_id)
                               .order_by(Visit.visited_on.desc(), Visit.id.desc()).limit(visits)))
        vcols = [c.key for c in Visit.__table__.columns if c.key != "gps"]
        vlist = [_as_dict(v, vcols) for v in reversed(vrows)]
        for v in vlist:
            if v.get("steward_id") and not v.get("visitor_name"):
                st = s.get(Steward, v["steward_id"])
                v["visitor_name"] = st.name if st else None
        srows = list(s.scalars(select(CareService).where(CareService.elder_id == elder_id)
                               .order_by(CareService.served_on.desc(), CareService.id.desc())
                               .limit(services)))
        scols = [c.key for c in CareService.__table__.columns]
        slist = [_as_dict(c, scols) for c in reversed(srows)]
    return RecordForm(d, hh, vlist, slist, fc)


# ============================================================ record form layout


@dataclass
class FormCell:
    """One (possibly merged) cell of the form layout."""

    text: str
    cols: int = 1
    rows: int = 1
    style: str = "value"  # title / date / note / section / label / value / text / remark
    align: str = "center"  # center / left / right


FormRow = list[FormCell]
NCOLS = 8
#: Relative column widths of the form (xlsx character units).
COL_WIDTHS = [11.0, 10.0, 10.0, 13.0, 11.0, 11.0, 11.0, 13.0]


def _boxes(options: Sequence[tuple[Any, str]], chosen: Any, sep: str = "  ") -> str:
    return sep.join(f"{TICK if chosen is not None and str(chosen) == str(v) else BOX}{label}"
                    for v, label in options)


def _yes_no(value: bool | None) -> str:
    return _boxes([(True, "是"), (False, "否")], value)


def _ymd(d: date | datetime | None) -> str:
    if d is None:
        return "    年    月    日"
    return f"{d.year} 年 {d.month:>2} 月 {d.day:>2} 日"


_CHANGE = [(Change.UNCHANGED.value, "无变化"), (Change.BETTER.value, "较好"), (Change.WORSE.value, "较差")]
_SAFETY = [(Safety.SAFE.value, "安全"), (Safety.FAIRLY_SAFE.value, "较安全"),
           (Safety.UNSAFE.value, "不安全")]
#: issue 17: 赡养 — whether the children (or other relatives) visit or call
_FAMILY_SUPPORT = [("regular", "经常探望或来电"), ("occasional", "偶尔探望或来电"), ("none", "无人探望或来电")]
_UNITS: list[tuple[str, tuple[str, ...]]] = [
    ("党政机关、群团组织和乡镇（街道）、村（居）民委会",
     ("党政", "群团", "机关", "乡镇", "街道", "居委", "村委", "民委")),
    ("养老服务设施网", ("养老服务设施", "驿站", "养老服务中心", "养老机构", "照料中心")),
    ("企业", ("企业", "公司")),
    ("社会工作服务机构", ("社会工作服务机构", "社工机构", "社工站", "社会组织")),
    ("专业社会工作者", ("社会工作者", "社工")),
    ("家庭医生", ("家庭医生", "卫生服务", "医生")),
    ("养老服务志愿者", ("志愿",)),
    ("邻里亲属", ("邻里", "邻居", "亲属")),
]


def _units_text(units: Sequence[Any]) -> str:
    ticked: set[str] = set()
    others: list[str] = []
    for u in units or []:
        t = str(u)
        hit = next((label for label, keys in _UNITS if any(k in t for k in keys)), None)
        if hit is None:
            others.append(t)
        else:
            ticked.add(hit)
    parts = [f"{TICK if label in ticked else BOX}{label}" for label, _ in _UNITS]
    parts.append(f"{TICK if others else BOX}其他" + (f"：{'、'.join(others)}" if others else ""))
    return "  ".join(parts)


def _strip_suffix(name: str | None, pattern: str) -> str:
    return re.sub(pattern, "", name or "")


def _visit_block(v: dict[str, Any] | None, mask: bool) -> list[FormRow]:
    v = v or {}
    mode = v.get("mode")
    mode_opts = [(VisitMode.PHONE.value, "电话问候"), (VisitMode.IN_HOME.value, "上门探访"),
                 (VisitMode.VIDEO.value, "互联网音（视）频探访")]
    other = mode in (VisitMode.OTHER.value, VisitMode.REMOTE_MONITORING.value)
    mode_txt = _boxes(mode_opts, mode) + f"  {TICK if other else BOX}其他" + (
        "（远程监测）" if mode == VisitMode.REMOTE_MONITORING.value else "")
    fc, n = v.get("family_change"), v.get("family_change_count")
    inc = n if fc == FamilyChange.INCREASED.value and n else "  "
    dec = n if fc == FamilyChange.DECREASED.value and n else "  "
    fam = (f"{TICK if fc == FamilyChange.UNCHANGED.value else BOX}无变化    "
           f"{TICK if fc == FamilyChange.INCREASED.value else BOX}增加 {inc} 人    "
           f"{TICK if fc == FamilyChange.DECREASED.value else BOX}减少 {dec} 人")
    ill = _boxes([(IllnessChange.UNCHANGED.value, "无变化"), (IllnessChange.SERIOUS.value, "严重"),
                  (IllnessChange.IMPROVED.value, "转好")], v.get("illness"), "    ")
    ill += f"    疾病名称：{v.get('illness_name') or ''}"
    seq = v.get("seq") or " "
    role = v.get("visitor_role")
    visitor = v.get("visitor_signature") or v.get("visitor_name") or ""
    if role and visitor:
        visitor += f"（{VisitorRole(role).label}）"
    elder_sig = v.get("elder_signature") or ""
    if mask and elder_sig:
        elder_sig = mask_value("elder_signature", elder_sig) or ""

    def opt(label: str, key: str, options: list[tuple[str, str]]) -> list[FormCell]:
        return [FormCell(label, style="label"), FormCell(_boxes(options, v.get(key), "    "), 6,
                                                         align="left")]

    return [
        [FormCell(f"第 {seq} 次开展探访　{_ymd(v.get('visited_on'))}", 3, style="label"),
         FormCell("探访方式", style="label"), FormCell(mode_txt, 4, align="left")],
        # issue 17: 赡养 (family visits or calls), 反应能力, 房屋安全 and 饮水安全 asked too
        [FormCell("家庭状况", rows=2, style="label"), FormCell("家庭人口", style="label"),
         FormCell(fam, 6, align="left")],
        opt("赡养情况", "family_support", _FAMILY_SUPPORT),
        [FormCell("健康状况", rows=4, style="label"), *opt("表达能力", "expression", _CHANGE)],
        opt("行动能力", "mobility", _CHANGE),
        opt("反应能力", "reaction", _CHANGE),
        [FormCell("疾病状况", style="label"), FormCell(ill, 6, align="left")],
        [FormCell("精神状态", style="label"), *opt("情绪状态", "mood", _CHANGE)],
        [FormCell("安全情况", rows=5, style="label"), *opt("燃气安全", "gas_safety", _SAFETY)],
        opt("水暖安全", "water_heating_safety", _SAFETY),
        opt("用电安全", "electricity_safety", _SAFETY),
        opt("房屋安全", "housing_safety", _SAFETY),
        opt("饮水安全", "drinking_water_safety", _SAFETY),
        [FormCell("卫生状况", rows=2, style="label"), *opt("个人卫生", "personal_hygiene", _CHANGE)],
        opt("家庭卫生", "home_hygiene", _CHANGE),
        [FormCell("居住环境", style="label"), *opt("室内环境", "indoor_environment", _CHANGE)],
        [FormCell(f"老年人服务需求：{_needs_text(v)}", 8, style="text", align="left")],
        [FormCell(f"实施关爱服务建议：{v.get('suggestions') or ''}", 8, style="text", align="left")],
        [FormCell(f"探访人员（签字）：{visitor}", 3, style="text", align="left"),
         FormCell(f"被探访人（签字）：{elder_sig}", 3, style="text", align="left"),
         FormCell(f"信息录入人（签字）：{v.get('recorder_signature') or v.get('entered_by') or ''}",
                  2, style="text", align="left")],
        [FormCell(_ymd(v.get("signed_at") or v.get("visited_on") if v else None), 8,
                  style="text", align="right")],
    ]


def _needs_text(v: dict[str, Any]) -> str:
    """issue 17: the needs as ticked labels of the rules' service_needs (无 when none), then the note."""
    kinds = v.get("need_kinds")
    if kinds is None:
        return v.get("needs") or ""
    from gridmap.rules.config import load_rules

    labels = {n.code: n.label for n in load_rules().service_needs}
    text = "、".join(labels.get(k, str(k)) for k in kinds) or "无"
    return text + (f"（{v['needs']}）" if v.get("needs") else "")


def _service_block(c: dict[str, Any] | None) -> list[FormRow]:
    c = c or {}
    seq = c.get("seq") or " "
    what = "：".join(x for x in (c.get("kind"), c.get("description")) if x)
    if c.get("provider"):
        what += f"（{c['provider']}）"
    sat = _boxes([(s.value, s.label) for s in Satisfaction], c.get("satisfaction"))
    return [
        [FormCell(f"第 {seq} 次开展关爱　{_ymd(c.get('served_on'))}", 3, style="label"),
         FormCell(f"关爱服务情况：{what}", 5, style="text", align="left")],
        [FormCell(f"服务人员签字（盖章）：{c.get('staff_signature') or ''}　{_ymd(c.get('served_on') if c else None)}",
                  4, style="text", align="left"),
         FormCell(f"老年人服务满意度评价：{sat}", 4, style="text", align="left")],
    ]


def record_form_layout(form: RecordForm, *, mask: bool = True, watermark: str = "",
                       on: date | None = None) -> list[FormRow]:
    """The record form 附件1-2 filled for one elder, as rows of (merged) cells on 8 columns.

    Parameters
    ----------
    form
        What :func:`load_record_form` read.
    mask
        Mask the elder's and the household's personal data (default).
    watermark
        The watermark line (first row).
    on
        The date printed under the title (default today).
    """
    e = form.elder
    m = (lambda f, v: mask_value(f, v) if (mask and v) else v)  # noqa: E731 - masks of access.policy
    fc = form.first_contact or {}
    cats = {str(c) for c in (e.get("categories") or [])}
    rows: list[FormRow] = []
    rows.append([FormCell(watermark, 8, style="note", align="left")])
    rows.append([FormCell("特殊困难老年人探访关爱服务记录表", 8, style="title")])
    rows.append([FormCell(_ymd(on or date.today()), 8, style="date", align="right")])

    # 一、探访对象基本情况
    rows.append([FormCell("一、探访对象基本情况", 8, style="section", align="left")])
    street = _strip_suffix(e.get("street"), r"街道$")
    community = _strip_suffix(e.get("community"), r"(社区)?(居委会|村委会|居民委员会|村民委员会)$")
    addr = (f"海淀 区 {street or '    '} 街道（乡镇） {community or '    '} 居（村）\n"
            f"{m('address', e.get('address')) or ''}")
    rows.append([FormCell("家庭住址", style="label"), FormCell(addr, 4, align="left"),
                 FormCell("是否居住在户籍所在地", 2, style="label"),
                 FormCell(_yes_no(e.get("lives_at_hukou")))])
    fc_name = m("first_contact_name", fc.get("name")) or ""
    if fc.get("relation"):
        fc_name += f"（{fc['relation']}）"
    rows.append([FormCell("被探访人姓名", style="label"), FormCell(m("name", e.get("name")) or ""),
                 FormCell("联系电话", style="label"), FormCell(m("phone", e.get("phone")) or ""),
                 FormCell("第一联系人", style="label"), FormCell(fc_name),
                 FormCell("联系电话", style="label"), FormCell(m("first_contact_phone", fc.get("phone")) or "")])
    alone = bool(cats & {Category.LIVING_ALONE.value, Category.EMPTY_NEST.value})
    rows.append([FormCell("是否重残", style="label"),
                 FormCell(_yes_no(Category.SEVERELY_HANDICAPPED.value in cats)),
                 FormCell("残疾人证号", style="label"),
                 FormCell(m("disability_cert_no", e.get("disability_cert_no")) or "", 2),
                 FormCell("是否独居、空巢", 2, style="label"), FormCell(_yes_no(alone))])
    rows.append([FormCell("失能等级", style="label"),
                 FormCell(_boxes([(d.value, d.label) for d in DisabilityLevel],
                                 e.get("disability_level")), 3),
                 FormCell("是否计划生育特殊家庭老年人", 3, style="label"),
                 FormCell(_yes_no(Category.FAMILY_PLANNING_SPECIAL.value in cats))])
    notes: list[str] = []
    if e.get("other_notes"):
        notes.append(str(e["other_notes"]))
    if e.get("id_number"):
        notes.append(f"身份证号：{m('id_number', e['id_number'])}")
    if fc.get("rule"):
        notes.append(f"第一联系人确定规则：{FirstContactRule(fc['rule']).label}"
                     + ("" if fc.get("valid", True) else "（无效，需核实）"))
    dec = decide_serving_street(e.get("hukou_street"), e.get("street"), e.get("lives_at_hukou"))
    if dec.separated:
        notes.append(f"人户分离：户籍{e.get('hukou_street') or ''}"
                     f"{m('hukou_address', e.get('hukou_address')) or ''}，由经常居住地街镇服务")
    if e.get("visit_steward") or e.get("service_steward"):
        notes.append(f"探访管家：{e.get('visit_steward') or '未配置'}；"
                     f"服务管家：{e.get('service_steward') or '未配置'}")
    rows.append([FormCell("其他情况", style="label"), FormCell("；".join(notes), 7, align="left")])

    # 二、家庭基本情况
    rows.append([FormCell("二、家庭基本情况", 8, style="section", align="left")])
    rows.append([FormCell("序号", style="label"), FormCell("姓名", style="label"),
                 FormCell("性别", style="label"), FormCell("居民身份证号码", 2, style="label"),
                 FormCell("与户主关系", style="label"), FormCell("健康状况", style="label"),
                 FormCell("是否为低保对象/特困人员", style="label")])
    members = list(form.household) + [{}] * max(0, 3 - len(form.household))
    for i, h in enumerate(members, start=1):
        ws_ = h.get("welfare_status")
        rows.append([FormCell(str(i)), FormCell(m("household_name", h.get("name")) or ""),
                     FormCell(h.get("sex") or ""),
                     FormCell(m("household_id_number", h.get("id_number")) or "", 2),
                     FormCell(h.get("relation") or ""), FormCell(h.get("health") or ""),
                     FormCell(WelfareStatus(ws_).label if ws_ else ("否" if h else ""))])

    # 三、家庭生活条件
    rows.append([FormCell("三、家庭生活条件", 8, style="section", align="left")])
    for label, key in (("饮水是否安全", "water_safe"), ("生活用电是否安全", "electricity_safe"),
                       ("住房是否安全", "housing_safe")):
        rows.append([FormCell(label, 3, style="label"), FormCell(_yes_no(e.get(key)), 5, align="left")])
    inc = e.get("monthly_income")
    rows.append([FormCell("家庭每月收入（元）", 3, style="label"),
                 FormCell("" if inc is None else f"{inc:,.0f}", 5, align="left")])
    ben = [str(e["benefits"])] if e.get("benefits") else []
    if e.get("welfare_status"):
        ben.append(WelfareStatus(e["welfare_status"]).label
                   + ("（分散供养）" if e.get("dispersed_support") else ""))
    rows.append([FormCell("家庭每月领取养老保险、社会救助和社会福利补贴等情况", 3, style="label"),
                 FormCell("；".join(ben), 5, align="left")])

    # 四、已享受帮扶情况
    rows.append([FormCell("四、已享受帮扶情况", 8, style="section", align="left")])
    person = " ".join(x for x in (e.get("assistance_person"), e.get("assistance_phone")) if x)
    rows.append([FormCell("帮扶单位（组织）", style="label"),
                 FormCell(_units_text(e.get("assistance_units") or []), 5, align="left"),
                 FormCell("帮扶责任人及联系电话", style="label"), FormCell(person)])
    rows.append([FormCell(f"帮扶措施：{e.get('assistance_measures') or ''}", 8, style="text",
                          align="left")])

    # 五、探访情况
    rows.append([FormCell("五、探访情况", 8, style="section", align="left")])
    for v in form.visits or [None]:
        rows.extend(_visit_block(v, mask))

    # 六、关爱服务情况
    rows.append([FormCell("六、关爱服务情况", 8, style="section", align="left")])
    for c in form.services or [None]:
        rows.extend(_service_block(c))

    rows.append([FormCell("备注：此表一式两份，区级民政部门、街道（乡镇）各存档一份。", 8,
                          style="remark", align="left")])
    return rows


def _placed(rows: list[FormRow]) -> Iterator[tuple[int, int, FormCell]]:
    """(row index, column index, cell) of every cell, honouring row spans of earlier rows."""
    taken: set[tuple[int, int]] = set()
    for r, row in enumerate(rows):
        col = 0
        for cell in row:
            while (r, col) in taken:
                col += 1
            yield r, col, cell
            for dr in range(cell.rows):
                for dc in range(cell.cols):
                    taken.add((r + dr, col + dc))
            col += cell.cols


def _lines(text: str, width_chars: float) -> int:
    n = 0
    for part in str(text).split("\n"):
        units = sum(2 if ord(ch) > 0x2E80 or ch in (TICK, BOX) else 1 for ch in part)
        n += max(1, math.ceil(units / max(width_chars * 0.95, 1)))
    return n


# ------------------------------------------------------------------ xlsx form


def render_form_xlsx(rows: list[FormRow], path: Path, *, watermark: str = "") -> None:
    """Write the form layout to xlsx: merged cells, borders, A4 portrait print setup."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    wb = Workbook()
    ws = wb.active
    ws.title = "探访关爱服务记录表"
    for i, w in enumerate(COL_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    fonts = {
        "title": Font(name="宋体", size=16, bold=True), "date": Font(name="宋体", size=10.5),
        "note": Font(name="宋体", size=8, color="C00000"), "section": Font(name="黑体", size=11, bold=True),
        "label": Font(name="宋体", size=10.5, bold=True), "remark": Font(name="宋体", size=10),
    }
    plain = Font(name="宋体", size=10.5)
    fill = PatternFill("solid", fgColor="E7E6E6")
    heights: dict[int, float] = defaultdict(lambda: 18.0)
    for r, c, cell in _placed(rows):
        xr, xc = r + 1, c + 1
        x = sheets.set_openpyxl_cell(ws, xr, xc, cell.text)  # text inert, never a formula
        x.font = fonts.get(cell.style, plain)
        x.alignment = Alignment(horizontal=cell.align, vertical="center", wrap_text=True)
        if cell.cols > 1 or cell.rows > 1:
            ws.merge_cells(start_row=xr, start_column=xc, end_row=xr + cell.rows - 1,
                           end_column=xc + cell.cols - 1)
        if cell.style not in ("title", "date", "note", "remark"):
            for rr in range(xr, xr + cell.rows):
                for cc in range(xc, xc + cell.cols):
                    ws.cell(row=rr, column=cc).border = border
                    if cell.style == "section":
                        ws.cell(row=rr, column=cc).fill = fill
        if cell.rows == 1:
            width = sum(COL_WIDTHS[c:c + cell.cols])
            h = {"title": 30.0}.get(cell.style, 16.0 * _lines(cell.text, width) + 6)
            heights[xr] = max(heights[xr], h)
    for r in range(1, len(rows) + 1):
        ws.row_dimensions[r].height = heights[r]
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "portrait"
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.print_area = f"A1:{get_column_letter(NCOLS)}{len(rows)}"
    ws.print_title_rows = "2:2"
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.5
    ws.oddHeader.center.text = watermark.replace("&", "&&")
    ws.oddHeader.center.size = 8
    ws.oddFooter.center.text = "第 &P 页 共 &N 页"
    sheets.save_openpyxl(wb, path)


# ------------------------------------------------------------------ PDF form

_CJK_FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "/System/Library/Fonts/STHeiti Light.ttc",
]
_SYMBOL_FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "C:/Windows/Fonts/seguisym.ttf",
]


def _fc_list_truetype() -> list[str]:
    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.split(":")[0].strip() for ln in out.splitlines()
            if ln.split(":")[0].strip().lower().endswith((".ttf", ".ttc"))]


def _register_fonts() -> tuple[str, str | None]:
    """Register a CJK font for reportlab: an embeddable TrueType one if found, else STSong-Light.

    Returns (CJK font name, symbol font name or None).
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    cjk = None
    if "GridmapCJK" in pdfmetrics.getRegisteredFontNames():
        cjk = "GridmapCJK"
    else:
        env = os.environ.get("GRIDMAP_CJK_FONT")
        for p in ([env] if env else []) + _CJK_FONT_CANDIDATES + _fc_list_truetype():
            if not p or not Path(p).is_file():
                continue
            try:
                pdfmetrics.registerFont(TTFont("GridmapCJK", p, subfontIndex=0))
            except (TTFError, OSError, Exception):  # CFF-based OTF/TTC cannot be embedded
                continue
            cjk = "GridmapCJK"
            break
    if cjk is None:
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        cjk = "STSong-Light"
    sym = "GridmapSym" if "GridmapSym" in pdfmetrics.getRegisteredFontNames() else None
    if sym is None:
        for p in _SYMBOL_FONT_CANDIDATES:
            if Path(p).is_file():
                try:
                    pdfmetrics.registerFont(TTFont("GridmapSym", p))
                except Exception:  # noqa: BLE001
                    continue
                sym = "GridmapSym"
                break
    return cjk, sym


def _para_markup(text: str, sym: str | None) -> str:
    from xml.sax.saxutils import escape

    t = escape(text).replace("\n", "<br/>")
    if sym:
        t = t.replace(TICK, f'<font name="{sym}">{TICK}</font>')
        t = t.replace(BOX, f'<font name="{sym}">{BOX}</font>')
    else:
        t = t.replace(TICK, "■")
    return t.replace("  ", "&nbsp; ")


def render_form_pdf(rows: list[FormRow], path: Path, *, watermark: str = "") -> None:
    """Write the form layout to a printable A4 PDF (reportlab, CJK font)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    cjk, sym = _register_fonts()
    base = ParagraphStyle("f", fontName=cjk, fontSize=9, leading=12, wordWrap="CJK")
    styles = {
        "title": ParagraphStyle("t", parent=base, fontSize=16, leading=22, alignment=1),
        "note": ParagraphStyle("n", parent=base, fontSize=7, leading=9,
                               textColor=colors.HexColor("#C00000")),
        "section": ParagraphStyle("s", parent=base, fontSize=10.5, leading=14),
        "label": ParagraphStyle("l", parent=base, alignment=1),
        "remark": ParagraphStyle("r", parent=base, fontSize=9),
    }
    align = {"center": 1, "left": 0, "right": 2}
    width = A4[0] - 24 * mm
    col_w = [width * w / sum(COL_WIDTHS) for w in COL_WIDTHS]

    # the watermark ("note" row) is drawn on every page by on_page below
    head = [r for r in rows if r and r[0].style in ("title", "date")]
    tail = [r for r in rows if r and r[0].style == "remark"]
    body = [r for r in rows if r and r[0].style not in ("note", "title", "date", "remark")]

    def para(cell: FormCell) -> Paragraph:
        st = styles.get(cell.style, base)
        st = ParagraphStyle(f"{cell.style}-{cell.align}", parent=st,
                            alignment=align[cell.align] if cell.style != "title" else 1)
        return Paragraph(_para_markup(cell.text, sym), st)

    data: list[list[Any]] = [["" for _ in range(NCOLS)] for _ in body]
    cmds: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for r, c, cell in _placed(body):
        data[r][c] = para(cell)
        if cell.cols > 1 or cell.rows > 1:
            cmds.append(("SPAN", (c, r), (c + cell.cols - 1, r + cell.rows - 1)))
        if cell.style == "section":
            cmds.append(("BACKGROUND", (c, r), (c + cell.cols - 1, r), colors.HexColor("#E7E6E6")))
    table = Table(data, colWidths=col_w, style=TableStyle(cmds), repeatRows=0)

    story: list[Any] = []
    for r in head:
        story.append(para(r[0]))
        story.append(Spacer(1, 2 * mm))
    story.append(table)
    story.append(Spacer(1, 2 * mm))
    for r in tail:
        story.append(para(r[0]))

    def on_page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(cjk, 7)
        canvas.setFillColor(colors.HexColor("#C00000"))
        canvas.drawString(12 * mm, A4[1] - 8 * mm, watermark)
        canvas.setFillColor(colors.black)
        canvas.drawCentredString(A4[0] / 2, 8 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    with sheets.owner_only_output(path) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=12 * mm, rightMargin=12 * mm,
                                topMargin=12 * mm, bottomMargin=14 * mm,
                                title="特殊困难老年人探访关爱服务记录表", author="gridmap")
        doc.build(story, onFirstPage=on_page, onLaterPages=on_page)


def export_record_form(
    engine: Any,
    elder_id: int,
    path: str | Path,
    *,
    mask: bool = True,
    reason: str | None = None,
    user: str = "system",
    visits: int = 3,
    services: int = 3,
) -> ExportResult:
    """Write the record form 附件1-2 of one elder, filled in, as ``.xlsx`` or ``.pdf``.

    Parameters
    ----------
    engine
        The store.
    elder_id
        The elder's id (系统编号).
    path
        ``.xlsx`` (merged cells, borders, A4 print setup) or ``.pdf`` (printable A4).
    mask
        Mask personal data (default); ``False`` needs ``reason`` and is audited
        (``form_unmasked``), e.g. for the paper file the document asks for.
    user, reason
        Who and why (watermark and audit log).
    visits, services
        How many of the latest visits (section 五) and care services (section 六) to show.

    Raises
    ------
    ValidationError
        ``reason_required``.
    ExportError
        Unknown elder or unsupported suffix.
    """
    _require_reason(mask, reason)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".pdf"):
        raise ExportError(f"unsupported form format {suffix!r}: use .xlsx or .pdf",
                          f"不支持的格式“{suffix}”：请使用 .xlsx 或 .pdf")
    form = load_record_form(engine, elder_id, visits=visits, services=services)
    wm = watermark_text(user, masked=mask, reason=reason)
    rows = record_form_layout(form, mask=mask, watermark=wm)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        render_form_xlsx(rows, path, watermark=wm)
    else:
        render_form_pdf(rows, path, watermark=wm)
    write_audit(engine, user=user, action="export_form" if mask else "form_unmasked",
                entity="elder", entity_id=str(elder_id),
                detail={"file": path.name, "masked": mask, "reason": reason})
    return ExportResult(path, 1, mask, wm)


__all__ = [
    "EXTRA_COLUMNS", "ExportError", "ExportResult", "FormCell", "RecordForm",
    "export_first_contact_gaps", "export_record_form", "export_register", "load_record_form", "masked_frame",
    "read_register_frame", "record_form_layout", "render_form_pdf", "render_form_xlsx",
    "watermark_text", "write_audit",
]
