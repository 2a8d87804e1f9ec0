"""Sections 二–四 of the record form 附件1-2 and the 其他 category: parsers and row/field error rules.

Pure functions, no database. :mod:`gridmap.register.validate` calls
:func:`parse_form_fields` for every ledger row; the importer calls
:func:`attach_member_sheet` when a workbook carries a second sheet 家庭成员.

Row errors and field errors (issue 20)
--------------------------------------
Only an error in *who the elder is* rejects a row (:func:`is_identity_error`):
the 居民身份证号码, the 姓名, a birth date that makes the person under 60 or
cannot be read when there is no ID number, a point outside Haidian, and a
duplicate ID in the file. Any other error is a *field error*: the elder is
imported, the field is left as it was (empty for a new elder: the record keys
of :func:`field_keys` are cleared and skipped by the merge), and the report
lists it under ``warnings``; the row also goes to the quarantine so the field
can be fixed and re-submitted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from gridmap.domain.enums import WelfareStatus
from gridmap.register.columns import (
    CANONICAL_COLUMNS,
    MAX_MEMBERS,
    MEMBER_FIELDS,
    member_column,
    memo_parser,
    normalize_header,
    normalize_text,
    parse_yes_no,
    parse_yes_no_text,
)

#: Error codes that reject the row whatever the column.
IDENTITY_CODES = frozenset({"under_60", "coord_outside_haidian", "duplicate_in_file"})
#: Columns whose every error rejects the row.
IDENTITY_COLUMNS = frozenset({"居民身份证号码", "姓名"})

#: A column → the record keys a field error in it leaves untouched (beyond the column's own key).
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "性别": (),
    "出生日期": (),
    "经度": ("lon", "lat"),
    "纬度": ("lon", "lat"),
    "坐标系": ("lon", "lat"),
    "街道（乡镇）": ("street",),
    "居（村）": ("community_code",),
    "家庭住址": ("address",),
    "联系电话": ("phone",),
    "第一联系人": ("first_contact",),
    "第一联系人关系": ("first_contact",),
    "第一联系人电话": ("first_contact",),
    "失能等级": ("disability_level",),
    "残疾等级": ("disability_grade", "severely_handicapped"),
    "残疾人证号": ("disability_cert_no", "severely_handicapped"),
    "低保特困情况": ("welfare_status", "dispersed_support"),
    "家庭医生签约意愿": ("wants_family_doctor", "family_doctor_signed"),
    "是否失能": ("disability_level",),
}

_WELFARE_WORDS: tuple[tuple[str, WelfareStatus, bool | None], ...] = (
    ("分散供养特困", WelfareStatus.TEKUN, True),
    ("分散供养", WelfareStatus.TEKUN, True),
    ("集中供养特困", WelfareStatus.TEKUN, False),
    ("城乡特困", WelfareStatus.TEKUN, None),
    ("特困", WelfareStatus.TEKUN, None),
    ("低收入", WelfareStatus.LOW_INCOME, None),
    ("低保边缘", WelfareStatus.LOW_INCOME, None),
    ("城乡低保", WelfareStatus.DIBAO, None),
    ("低保", WelfareStatus.DIBAO, None),
    ("生活困难", WelfareStatus.HARDSHIP, None),
    ("困难", WelfareStatus.HARDSHIP, None),
)
_WELFARE_NONE = {"", "无", "否", "-", "—", "/", "非低保", "不是", "非"}
_UNIT_SPLIT = re.compile(r"[、,，;；/|\n]+")
_MONEY = re.compile(r"^(?:约|大约)?([0-9]+(?:\.[0-9]+)?)(?:元|元/月|元每月)?$")


def parse_welfare_detail(value: object) -> tuple[WelfareStatus | None, bool | None]:
    """A benefit value → ``(status, dispersed)``.

    低保 / 城乡低保 → 低保; 低收入 / 低保边缘 → 低收入; 特困 / 特困（城乡）/ 城乡特困 /
    特困人员 → 特困; 分散供养特困 → 特困 and ``dispersed`` True; 集中供养特困 → 特困 and
    ``dispersed`` False; 生活困难 → 生活困难; 无 / 否 / empty → ``(None, None)``.
    ``dispersed`` is None when the value does not say.

    Raises
    ------
    ValueError
        For any other text.
    """
    from gridmap.register.validate import cell_text

    text = normalize_header(cell_text(value))
    text = re.sub(r"[()（）]", "", text)
    if text in _WELFARE_NONE:
        return None, None
    for word, status, dispersed in _WELFARE_WORDS:
        if word in text:
            return status, (dispersed if status is WelfareStatus.TEKUN else False)
    try:
        status = WelfareStatus(text.lower())
        return status, (None if status is WelfareStatus.TEKUN else False)
    except ValueError:
        raise ValueError(text) from None


def parse_income(value: object) -> float | None:
    """家庭每月收入（元）: ``3500``, ``3,500``, ``3500元``, ``约3500`` → 3500.0; empty → None.

    Raises
    ------
    ValueError
        For text that is no amount, a negative amount, or more than 10,000,000.
    """
    from gridmap.register.validate import cell_text

    text = unicodedata.normalize("NFKC", cell_text(value)).replace(",", "").replace(" ", "")
    if text in ("", "无", "-", "—", "/"):
        return None
    m = _MONEY.match(text)
    if not m:
        raise ValueError(text)
    amount = float(m.group(1))
    if amount > 10_000_000:
        raise ValueError(text)
    return amount


def parse_family_doctor(value: object) -> tuple[bool | None, bool | None]:
    """家庭医生签约意愿 → ``(wants, signed)``.

    已签约 → (True, True); 愿意 / 是 / 有意愿 → (True, None); 不愿意 / 否 → (False, None);
    未签约 → (None, False); empty → (None, None).

    Raises
    ------
    ValueError
        For any other text.
    """
    from gridmap.register.validate import cell_text

    text = normalize_header(cell_text(value))
    if not text:
        return None, None
    if text in ("已签约", "已签", "签约"):
        return True, True
    if text in ("未签约", "未签"):
        return None, False
    if text in ("愿意", "有意愿", "愿意签约", "希望签约"):
        return True, None
    if text in ("不愿意", "无意愿", "不愿签约", "不愿意签约"):
        return False, None
    return parse_yes_no(text), None


def parse_units(value: object) -> list[str]:
    """帮扶单位（组织）: one or more names separated by 、，; / → list (empty → [])."""
    from gridmap.register.validate import cell_text

    text = cell_text(value)
    return [u.strip()[:120] for u in _UNIT_SPLIT.split(text) if u.strip()]


# ------------------------------------------------------------------ row / field errors


def is_identity_error(column: str, code: str, *, has_id: bool) -> bool:
    """True when an error in ``column`` (code ``code``) means the row cannot say who the elder is."""
    if code in IDENTITY_CODES or column in IDENTITY_COLUMNS:
        return True
    if column == "出生日期" and not has_id:
        return True
    return False


def field_keys(column: str) -> tuple[str, ...]:
    """The record keys a field error in ``column`` leaves as they were (empty for a new elder)."""
    if column in _FIELD_KEYS:
        return _FIELD_KEYS[column]
    if column.startswith("家庭成员"):
        return ("household",)
    key = CANONICAL_COLUMNS.get(column)
    if key == "family_doctor":
        return ("wants_family_doctor", "family_doctor_signed")
    if key == "other_reason":
        return ("other_reason",)
    from gridmap.register.validate import EXTRA_COLUMNS

    key = key or EXTRA_COLUMNS.get(column)
    return (key,) if key else ()


# ------------------------------------------------------------------ the form's fields


AddError = Callable[[str, str, str, str], None]

# each distinct cell text parsed once per process (gridmap.register.columns.memo_parser)
_income_text = memo_parser(parse_income)
_family_doctor_text = memo_parser(parse_family_doctor)
_welfare_text = memo_parser(parse_welfare_detail)
_member_cols: dict[int, dict[str, str]] = {}
_present_members: dict[tuple[str, ...], list[int]] = {}


def _yes_no(cells: dict[str, str], col: str, add: AddError) -> bool | None:
    try:
        return parse_yes_no_text(cells.get(col, ""))
    except ValueError:
        add(col, "yes_no_invalid", "应填是/否（Y/N、1/0、√/×）", "expected yes/no (是/否, Y/N, 1/0, √/×)")
        return None


def parse_form_fields(cells: dict[str, str], rec: dict[str, Any], add: AddError,
                      parse_phone: Callable[[object], str | None]) -> None:
    """Sections 三 and 四, 家庭医生签约意愿, 其他特殊困难情形 and the household members into ``rec``.

    Problems are reported through ``add(column, code, message_zh, message_en)``;
    the field is then None (the caller turns them into field errors).
    """
    for col, key in (("饮水是否安全", "water_safe"), ("生活用电是否安全", "electricity_safe"),
                     ("住房是否安全", "housing_safe")):
        rec[key] = _yes_no(cells, col, add)
    try:
        rec["monthly_income"] = _income_text(cells.get("家庭每月收入（元）", ""))
    except ValueError:
        rec["monthly_income"] = None
        add("家庭每月收入（元）", "income_invalid", "家庭每月收入应为金额（元），如3500",
            "monthly household income must be an amount in yuan, e.g. 3500")
    rec["benefits"] = cells.get("家庭每月领取养老保险、社会救助和社会福利补贴等情况") or None
    units = cells.get("帮扶单位（组织）", "")
    rec["assistance_units"] = (parse_units(units) or None) if units else None
    rec["assistance_person"] = cells.get("帮扶责任人") or None
    rec["assistance_measures"] = cells.get("帮扶措施") or None
    try:
        rec["assistance_phone"] = parse_phone(cells.get("帮扶责任人联系电话", ""))
    except ValueError:
        rec["assistance_phone"] = None
        add("帮扶责任人联系电话", "phone_format", "电话号码格式不正确（手机11位或固话7-8位，可带区号）",
            "not a phone number (11-digit mobile or 7-8 digit landline with optional area code)")
    try:
        rec["wants_family_doctor"], rec["family_doctor_signed"] = _family_doctor_text(cells.get("家庭医生签约意愿", ""))
    except ValueError:
        rec["wants_family_doctor"] = rec["family_doctor_signed"] = None
        add("家庭医生签约意愿", "family_doctor_invalid", "家庭医生签约意愿应为愿意、不愿意、已签约或是/否",
            "family-doctor wish must be 愿意, 不愿意, 已签约 or yes/no")
    reason = cells.get("其他特殊困难情形", "")
    rec["other_reason"] = reason[:500] or None
    rec["other"] = True if rec["other_reason"] else None  # 其他 category: the reason given means the category
    if len(reason) > 500:
        add("其他特殊困难情形", "too_long", "长度超过500个字符", "longer than 500 characters")
    rec["household"] = parse_members(cells, add, parse_phone)


def parse_members(cells: dict[str, str], add: AddError,
                  parse_phone: Callable[[object], str | None]) -> list[dict[str, Any]] | None:
    """The household members of a row (``家庭成员1姓名`` …): a list in order, None when the row has none.

    A member needs a 姓名; a member's 居民身份证号码 must be valid (checksum) and
    its 性别 agree with it; 是否为低保对象/特困人员 takes the benefit values of
    :func:`parse_welfare_detail` or 是/否 (是 → 低保).
    """
    from gridmap.domain.idcard import parse_id_number
    from gridmap.register.validate import parse_sex_text

    members: list[dict[str, Any]] = []
    any_cell = False
    keys = tuple(cells)
    present = _present_members.get(keys)
    if present is None:  # the same columns on every row of a ledger: worked out once
        present = sorted({int(c[4]) for c in cells if c.startswith("家庭成员") and c[4:5].isdigit()})
        if len(_present_members) > 64:
            _present_members.clear()
        _present_members[keys] = present
    for n in present:
        cols = _member_cols.get(n)
        if cols is None:
            cols = _member_cols[n] = {f: member_column(n, f) for f in MEMBER_FIELDS}
        vals = {f: cells.get(c, "") for f, c in cols.items()}
        if not any(vals.values()):
            continue
        any_cell = True
        m: dict[str, Any] = {"seq": n, "name": re.sub(r"\s+", "", vals["姓名"])[:40] or None}
        if m["name"] is None:
            add(cols["姓名"], "member_name_missing", f"家庭成员{n}缺少姓名", f"household member {n} has no name")
        m["id_number"] = m["sex"] = None
        if vals["居民身份证号码"]:
            try:
                m["id_number"], _, m["sex"] = parse_id_number(unicodedata.normalize("NFKC", vals["居民身份证号码"]))
            except Exception:  # noqa: BLE001 - any fault of the number is a bad cell
                add(cols["居民身份证号码"], "member_id_invalid", f"家庭成员{n}的身份证号码有误，请核对原件",
                    f"household member {n}: the ID number is not valid; check the card")
        try:
            given = parse_sex_text(vals["性别"])
        except ValueError:
            given = None
            add(cols["性别"], "sex_invalid", "性别应为男或女", "sex must be 男 or 女")
        if given and m["sex"] and given != m["sex"]:
            add(cols["性别"], "sex_mismatch", f"家庭成员{n}的性别与身份证号码不符",
                f"household member {n}: sex contradicts the ID number")
        m["sex"] = m["sex"] or given
        m["relation"] = vals["与户主关系"][:20] or None
        m["health"] = vals["健康状况"][:40] or None
        w = vals["是否为低保对象/特困人员"]
        try:
            yn = parse_yes_no_text(w) if normalize_text(w) in ("是", "否", "y", "n", "1", "0") else None
            m["welfare_status"] = (WelfareStatus.DIBAO if yn else None) if yn is not None else _welfare_text(w)[0]
        except ValueError:
            m["welfare_status"] = None
            add(cols["是否为低保对象/特困人员"], "welfare_invalid",
                "应为低保、低收入、特困、分散供养特困、生活困难、是/否或空",
                "must be 低保, 低收入, 特困, 分散供养特困, 生活困难, yes/no or empty")
        members.append(m)
    return members if any_cell else None


# ------------------------------------------------------------------ the 家庭成员 sheet


def attach_member_sheet(frame_cols: list[str], frame_rows: list[list[Any]], sheet_rows: list[list[Any]],
                        id_col: str = "居民身份证号码") -> tuple[list[str], list[list[Any]], list[str]]:
    """Fold a 家庭成员 sheet (one row per member, keyed by the elder's ID number) into repeated groups.

    The sheet's header row is the first row holding a key column
    (:data:`gridmap.register.columns.MEMBER_SHEET_KEY_VARIANTS`) and 姓名.
    Members are numbered per elder in sheet order (or by a 序号 column).

    Returns
    -------
    (columns, rows, notes)
        The main sheet's columns and rows with ``家庭成员N…`` cells added, and
        notes (English) on sheet rows whose elder is not in the main sheet.
    """
    from gridmap.domain.idcard import normalize_id_number
    from gridmap.register.columns import MEMBER_FIELD_VARIANTS, MEMBER_SHEET_KEY_VARIANTS
    from gridmap.register.validate import cell_text

    keys = {normalize_header(k) for k in MEMBER_SHEET_KEY_VARIANTS}
    labels = {normalize_header(k): k for k in MEMBER_FIELDS}
    labels.update({normalize_header(k): v for k, v in MEMBER_FIELD_VARIANTS.items()})
    labels[normalize_header("成员居民身份证号码")] = "居民身份证号码"
    labels[normalize_header("成员姓名")] = "姓名"
    header_idx, key_j, seq_j = -1, -1, -1
    fields: dict[int, str] = {}
    for i, row in enumerate(sheet_rows[:10]):
        names = [normalize_header(c) for c in row]
        kj = next((j for j, n in enumerate(names) if n in keys), -1)
        if kj >= 0 and any(labels.get(n) == "姓名" for n in names):
            header_idx, key_j = i, kj
            fields = {j: labels[n] for j, n in enumerate(names) if j != kj and n in labels}
            seq_j = next((j for j, n in enumerate(names) if n == "序号"), -1)
            break
    notes: list[str] = []
    if header_idx < 0:
        return frame_cols, frame_rows, ["sheet 家庭成员 has no header with 老人居民身份证号码 and 姓名: ignored"]
    if id_col not in frame_cols:
        return frame_cols, frame_rows, notes
    idj = frame_cols.index(id_col)
    by_id: dict[str, int] = {}
    for r, row in enumerate(frame_rows):
        k = normalize_id_number(cell_text(row[idj]))
        if k:
            by_id.setdefault(k, r)
    per_elder: dict[int, list[dict[str, str]]] = {}
    for i, row in enumerate(sheet_rows[header_idx + 1:], start=header_idx + 2):
        key = normalize_id_number(cell_text(row[key_j] if key_j < len(row) else ""))
        vals = {f: cell_text(row[j]) if j < len(row) else "" for j, f in fields.items()}
        if not key and not any(vals.values()):
            continue
        r = by_id.get(key)
        if r is None:
            notes.append(f"sheet 家庭成员 row {i}: no elder with this ID number in the main sheet")
            continue
        seq = cell_text(row[seq_j]) if 0 <= seq_j < len(row) else ""
        per_elder.setdefault(r, []).append({"_seq": seq, **vals})
    cols = list(frame_cols)
    used = {c for c in cols if c.startswith("家庭成员")}
    rows = [list(x) for x in frame_rows]
    for r, members in per_elder.items():
        members.sort(key=lambda m: (int(m["_seq"]) if m["_seq"].isdigit() else 99))
        for n, m in enumerate(members[:MAX_MEMBERS], start=1):
            for f in MEMBER_FIELDS:
                c = member_column(n, f)
                if c not in used:
                    used.add(c)
                    cols.append(c)
                    for x in rows:
                        x.append(None)
                j = cols.index(c)
                if m.get(f) and not cell_text(rows[r][j]):
                    rows[r][j] = m[f]
    return cols, rows, notes
