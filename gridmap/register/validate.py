"""Validation of ledger rows: raw spreadsheet cells in, clean records and bilingual row errors out.

Pure functions over a :class:`pandas.DataFrame` whose columns are the
canonical Chinese headers of :mod:`gridmap.register.columns` (plus the
optional extra columns of :data:`EXTRA_COLUMNS`) and whose cells are the raw
values as read. Nothing here touches a database.

Decisions (documented rules of the importer)
--------------------------------------------
* Age: every category of the document is 老年人, so a person under 60 on the
  import date is rejected (``under_60``); there is no exception — a younger
  spouse of a 计划生育特殊家庭 elder belongs in the household members, not in
  the register.
* 重残 (document, 服务对象 4): 残疾等级 一、二级, or 三级 for 智力/精神 disability.
  Grade 3 with a known other type is rejected (``handicap_grade_invalid``);
  grade 3 with an unknown type is accepted with a warning
  (``handicap_type_unknown``). The type comes from an optional 残疾类别 column
  or from digit 19 of a 20-character 残疾人证号 (ID number + type + grade).
* 失能: the level column *is* the category; an optional ``是否失能`` column
  set to yes with an empty level is ``disability_level_missing``.
* Coordinates: empty 坐标系 means WGS84. If the whole file's WGS84 points sit
  clearly better in their streets after undoing a GCJ-02 offset
  (:func:`gridmap.layers.crs.detect_gcj02_offset`), they are converted and the
  file gets one ``coord_likely_gcj02`` warning — not a rejection, since the
  fix is certain. Swapped lon/lat are rejected (``coord_swapped``): a person
  should look at such a row.
* Rows without coordinates must geocode (``address_not_geocoded`` otherwise).
* A mistyped ID (checksum wrong, birth date readable) or a missing ID with an
  出生日期 column is kept *pending*: the importer attaches the row to an
  existing elder with the same name, birth date and address, else the error
  stands and the row is rejected.
* The same valid ID twice in a file: the later rows are rejected
  (``duplicate_in_file``, naming the first row).
* Birth dates (from the ID number or the 出生日期 column) in the future or
  more than :data:`MAX_AGE` years back are rejected (``birth_date_future``,
  ``birth_date_too_old``), never silently dropped.
* Every :class:`RowError` that leaves :func:`validate_frame` carries its value
  masked (:func:`mask_cell`: ID numbers as ``110108********123X``, names,
  phones, addresses and certificate numbers by the masking policy,
  coordinates rounded, birth dates to the year); messages never state the
  correct check digit or echo the digits of the ID number.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

import pandas as pd

from gridmap._errors import ValidationError
from gridmap.domain.enums import DisabilityLevel, FirstContactRule, WelfareStatus
from gridmap.domain.idcard import age_on, normalize_id_number, parse_id_number
from gridmap.domain.masking import mask_address, mask_id_number, mask_name, mask_phone
from gridmap.register.columns import (
    CANONICAL_COLUMNS,
    memo_parser,
    normalize_header,
    normalize_text,
    parse_yes_no_text,
)
from gridmap.register.form import field_keys, is_identity_error, parse_form_fields, parse_welfare_detail

#: Optional columns beyond the canonical form (header → key); variants map here too.
EXTRA_COLUMNS: dict[str, str] = {
    "出生日期": "birth_date",
    "出生年月日": "birth_date",
    "残疾类别": "disability_type",
    "残疾类型": "disability_type",
    "是否失能": "is_disabled",
    "户籍地址": "hukou_address",
    "户籍所在街道": "hukou_street",
}

#: Columns a row cannot do without.
REQUIRED = ("姓名", "居民身份证号码", "家庭住址")

#: Largest stored length per column (the database's limits).
MAX_LEN = {
    "姓名": 40, "家庭住址": 200, "残疾人证号": 40, "第一联系人": 40, "第一联系人关系": 20,
    "探访管家": 40, "服务管家": 40, "其他情况": 2000, "户籍地址": 200, "户籍所在街道": 40, "残疾类别": 20,
}

#: Ledger columns holding personal data → their masking function (as the policy
#: :data:`gridmap.access.policy.PERSONAL_FIELDS` masks the same fields).
PERSONAL_COLUMNS: dict[str, Callable[[str | None], str | None]] = {
    "姓名": mask_name, "居民身份证号码": mask_id_number, "联系电话": mask_phone, "家庭住址": mask_address,
    "户籍地址": mask_address, "残疾人证号": mask_id_number, "第一联系人": mask_name,
    "第一联系人电话": mask_phone, "帮扶责任人": mask_name, "帮扶责任人联系电话": mask_phone,
}
#: Household member columns (``家庭成员1居民身份证号码`` …) holding personal data → masking function.
MEMBER_PERSONAL_FIELDS: dict[str, Callable[[str | None], str | None]] = {
    "姓名": mask_name, "居民身份证号码": mask_id_number,
}
_MEMBER_COLUMN = re.compile(r"^家庭成员[0-9](.+)$")
#: Free-text columns: a report shows only their length.
FREE_TEXT_COLUMNS = ("其他情况", "其他特殊困难情形", "帮扶措施")
#: Oldest plausible age on the import date; an older birth date is a typing error.
MAX_AGE = 120

YES_NO_COLUMNS = ("是否居住在户籍所在地", "是否独居", "是否空巢", "是否重残", "是否计划生育特殊家庭",
                  "是否愿意接受探访", "是否签约驿站或家庭照护床位", "是否失能")

#: Digit 19 of a 残疾人证号 → disability type.
DISABILITY_TYPES = {"1": "视力", "2": "听力", "3": "言语", "4": "肢体", "5": "智力", "6": "精神", "7": "多重"}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_LANDLINE = re.compile(r"^(?:0[0-9]{2,3})?[2-9][0-9]{6,7}(?:(?:转|-|ext)[0-9]{1,5})?$")
_PHONE_SPLIT = re.compile(r"[/,，;；、]")
_GRADES = {"1": 1, "2": 2, "3": 3, "4": 4, "一": 1, "二": 2, "三": 3, "四": 4}
_RELATION_RULES: tuple[tuple[tuple[str, ...], FirstContactRule], ...] = (
    (("子", "女", "儿", "女儿", "儿子", "长子", "次子", "长女", "次女", "养子", "养女", "继子", "继女"),
     FirstContactRule.CHILD),
    (("社区", "居委", "村委", "工作人员", "网格员", "社工"), FirstContactRule.COMMUNITY_STAFF),
    (("继承人",), FirstContactRule.HEIR),
    (("街道指定", "社区指定", "指定"), FirstContactRule.COMMUNITY_DESIGNATED),
)


@dataclass(frozen=True)
class RowError:
    """One problem of one cell: row as the spreadsheet shows it (header = 1), column, value, reason."""

    row: int
    column: str
    value: str
    code: str
    message_zh: str
    message_en: str
    severity: str = "error"  # "error" rejects the row; "warning" is reported only

    def as_dict(self) -> dict[str, Any]:
        """The report form ``{row, column, value, code, message_zh, message_en}`` (+ severity)."""
        return asdict(self)

    def masked(self) -> RowError:
        """A copy whose value is masked for reports (:func:`mask_cell`)."""
        return replace(self, value=mask_cell(self.column, self.value))


@dataclass
class Reference:
    """What rows are checked against: street and community names, the district, a gazetteer.

    Build it with :func:`reference_from_layers`; ``None`` parts skip their checks.
    """

    streets: dict[str, str] = field(default_factory=dict)  # any name/alias → canonical street
    communities: dict[str, dict[str, str]] = field(default_factory=dict)  # street → {name/alias → code}
    community_street: dict[str, str] = field(default_factory=dict)  # code → street
    community_names: dict[str, str] = field(default_factory=dict)  # code → full name
    district: Any = None  # shapely polygon (WGS84)
    street_polygons: dict[str, Any] = field(default_factory=dict)  # street → polygon
    gazetteer: Any = None  # gridmap.layers.geocode.Gazetteer
    today: date = field(default_factory=date.today)


@dataclass
class ValidationResult:
    """Clean records (one dict per good row), errors of rejected rows, warnings, pending rows."""

    records: list[dict[str, Any]]
    errors: list[RowError]
    warnings: list[RowError]
    pending: list[dict[str, Any]]  # rows whose only fault is the ID: matched later by name + birth + address
    rows_total: int
    #: field errors (issue 20): the row is imported without the field; reported as warnings and quarantined
    field_errors: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> set[int]:
        """Row numbers with at least one error."""
        return {e.row for e in self.errors}


class _CellError(Exception):
    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(code)
        self.code, self.zh, self.en = code, zh, en


# ------------------------------------------------------------------ cells


def cell_text(value: object) -> str:
    """A raw cell as text: None/NaN → "", integral floats without ``.0``, stripped."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, (pd.Timestamp, date)):
        return value.strftime("%Y-%m-%d")
    text = _CONTROL.sub("", str(value)).strip()
    return "" if text.lower() in ("nan", "none", "null") else text


def column_text(values: Sequence[object]) -> list[str]:
    """:func:`cell_text` of every cell of one column; each distinct text cleaned once."""
    if values and set(map(type, values)) == {str}:  # a CSV column: text only, mapped in C
        clean = {v: cell_text(v) for v in dict.fromkeys(values)}
        return list(map(clean.__getitem__, values))
    memo: dict[str, str] = {}
    out: list[str] = []
    append = out.append
    for v in values:
        if v.__class__ is str:
            t = memo.get(v)  # type: ignore[call-overload]
            if t is None:
                t = memo[v] = cell_text(v)  # type: ignore[index]
                if len(memo) > 50_000:
                    memo.clear()
            append(t)
        else:
            append(cell_text(v))
    return out


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def mask_cell(column: str, value: object) -> str:
    """A cell as a report may show it: personal columns masked, the rest as they are.

    Personal columns (:data:`PERSONAL_COLUMNS`) go through
    :mod:`gridmap.domain.masking` (an ID number shows as
    ``110108********123X``); 经度/纬度 numbers are rounded to 0.01° (about
    1 km); a 出生日期 keeps only its first four characters (the year); free
    text (其他情况) shows only its length.

    Parameters
    ----------
    column
        The canonical column the value came from (``"*"`` for file-level notes).
    value
        The raw cell.

    Returns
    -------
    str
        The text to show; ``""`` for an empty cell.
    """
    text = cell_text(value)
    if not text:
        return ""
    masker = PERSONAL_COLUMNS.get(column)
    if masker is None and column.startswith("家庭成员"):
        m = _MEMBER_COLUMN.match(column)
        masker = MEMBER_PERSONAL_FIELDS.get(m.group(1)) if m else None
    if masker is not None:
        return str(masker(text) or "")
    if column in ("经度", "纬度"):
        return _NUMBER.sub(lambda m: f"{float(m.group(0)):.2f}", text)
    if column == "出生日期":
        return text[:4] + re.sub(r"[0-9]", "*", text[4:])
    if column in FREE_TEXT_COLUMNS:
        return f"（{len(text)}字 / {len(text)} characters）"
    return text


def parse_phone(value: object) -> str | None:
    """Normalise one or two phone numbers (mobile ``1[3-9]xxxxxxxxx`` or landline, ``+86`` allowed).

    Returns ``"a/b"`` for two numbers, None for empty.

    Raises
    ------
    ValueError
        When a number has neither form.
    """
    text = unicodedata.normalize("NFKC", cell_text(value))
    if not text:
        return None
    parts = [p for p in _PHONE_SPLIT.split(text) if p.strip()]
    if not parts or len(parts) > 2:
        raise ValueError(text)
    out = []
    for p in parts:
        s = re.sub(r"[\s\-()（）]", "", p) if "转" not in p and "ext" not in p else re.sub(r"[\s()（）]", "", p)
        s = re.sub(r"^(?:\+?86)(?=1[3-9][0-9]{9}$)", "", s)
        s = re.sub(r"^\+?86(?=10[0-9]{8}$)", "0", s)
        if not (_MOBILE.match(s) or _LANDLINE.match(s)):
            raise ValueError(text)
        out.append(s)
    joined = "/".join(out)
    return joined if len(joined) <= 20 else out[0]


def parse_disability_level(value: object) -> DisabilityLevel | None:
    """重度/中度/轻度 (also 一级重度, 重度失能, 完全失能 …) → :class:`DisabilityLevel`; empty → None."""
    text = normalize_header(cell_text(value))
    if text in ("", "无", "否", "-", "—", "/"):
        return None
    for key, level in (("重度", DisabilityLevel.SEVERE), ("完全失能", DisabilityLevel.SEVERE),
                       ("中度", DisabilityLevel.MODERATE), ("轻度", DisabilityLevel.MILD)):
        if key in text:
            return level
    try:
        return DisabilityLevel(text.lower())
    except ValueError:
        raise ValueError(text) from None


def parse_welfare(value: object) -> WelfareStatus | None:
    """低保 / 特困 / 低收入 (also 低保户, 特困人员, 低收入家庭) → :class:`WelfareStatus`; empty/无/否 → None."""
    text = normalize_header(cell_text(value))
    if text in ("", "无", "否", "-", "—", "/", "非低保"):
        return None
    for key, status in (("特困", WelfareStatus.TEKUN), ("低收入", WelfareStatus.LOW_INCOME),
                        ("低保", WelfareStatus.DIBAO)):
        if text.startswith(key):
            return status
    try:
        return WelfareStatus(text.lower())
    except ValueError:
        raise ValueError(text) from None


def parse_grade(value: object) -> int | None:
    """残疾等级 ``1``–``4``, ``一级``…``四级``, ``1级`` → int; empty → None."""
    text = normalize_header(cell_text(value))
    if not text:
        return None
    m = re.fullmatch(r"(?:残疾)?([1-4一二三四])级?(?:残疾)?", text)
    if not m:
        raise ValueError(text)
    return _GRADES[m.group(1)]


def parse_sex(value: object) -> str | None:
    """男/女 (also M/F, male/female, 1/2) → ``"男"``/``"女"``; empty → None."""
    text = normalize_header(cell_text(value)).lower()
    if not text:
        return None
    if text in ("男", "m", "male", "男性"):
        return "男"
    if text in ("女", "f", "female", "女性"):
        return "女"
    raise ValueError(text)


def infer_contact_rule(relation: str | None) -> FirstContactRule:
    """The first-contact rule implied by a relation word (子/女 → child, 社区工作人员 → staff, …).

    Any other relative (配偶, 侄子, 外甥 …) is a designated relative.
    """
    rel = normalize_header(relation or "")
    if rel in ("", "无"):
        return FirstContactRule.COMMUNITY_DESIGNATED
    for words, rule in _RELATION_RULES:
        if rule is FirstContactRule.CHILD and rel in words:
            return rule
        if rule is not FirstContactRule.CHILD and any(w in rel for w in words):
            return rule
    return FirstContactRule.DESIGNATED_RELATIVE


# Each distinct cell text parsed once (gridmap.register.columns.memo_parser): the per-row validation
# of a 60,000-row ledger is mostly dict look-ups of the same few values.
parse_sex_text = memo_parser(parse_sex)
_disability_level_text = memo_parser(parse_disability_level)
_grade_text = memo_parser(parse_grade)
_welfare_detail_text = memo_parser(parse_welfare_detail)


def _parse_crs(text: str) -> str:
    from gridmap.layers.crs import parse_crs

    return parse_crs(text).value


_crs_text = memo_parser(_parse_crs, Exception)


def parse_phone_text(text: str) -> str | None:
    """:func:`parse_phone` of a cell text; a plain 11-digit mobile number is returned as it is."""
    if len(text) == 11 and _MOBILE.match(text):
        return text
    return parse_phone(text)


def _parse_date(text: str) -> date | None:
    if not text:
        return None
    t = unicodedata.normalize("NFKC", text).replace("年", "-").replace("月", "-").replace("日", "")
    t = t.replace("/", "-").replace(".", "-")
    m = re.fullmatch(r"([0-9]{4})-?([0-9]{1,2})-?([0-9]{1,2})(?:[ T]00:00:00)?", t)
    if not m:
        raise ValueError(text)
    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def normalize_address_key(text: str | None) -> str:
    """Address for matching: NFKC, no spaces or punctuation, 北京市/海淀区 prefixes dropped."""
    t = unicodedata.normalize("NFKC", text or "")
    t = re.sub(r"[\s,，。.·\-—_()（）#]", "", t)
    t = re.sub(r"^(北京市?)?(市辖区)?(海淀区)?", "", t)
    return t


# ------------------------------------------------------------------ reference


def reference_from_layers(layers: Any, *, gazetteer: Any = None, today: date | None = None) -> Reference:
    """A :class:`Reference` from :class:`gridmap.layers.build.Layers` (streets, communities, district)."""
    ref = Reference(today=today or date.today(), gazetteer=gazetteer)
    for row in layers.streets.itertuples():
        names = {row.name, *(getattr(row, "aliases", None) or ())}
        if getattr(row, "official_name", None):
            names.add(row.official_name)
        for n in names:
            if n:
                ref.streets[normalize_header(n)] = row.name
        ref.street_polygons[row.name] = row.geometry
    for row in layers.communities.itertuples():
        d = ref.communities.setdefault(row.street, {})
        ref.community_street[row.code] = row.street
        ref.community_names[row.code] = row.name
        short = getattr(row, "short_name", None) or ""
        names = {row.name, row.code, short}
        for suffix in ("社区居委会", "居委会", "村委会", "村民委员会", "居民委员会"):
            if row.name.endswith(suffix):
                stem = row.name[: -len(suffix)]
                names.update({stem, stem + "社区" if "居" in suffix or suffix == "社区居委会" else stem + "村"})
        if short:
            names.update({short + "社区", short + "村"})
        for n in names:
            if n:
                d[normalize_header(n)] = row.code
    ref.district = layers.district.geometry.union_all()
    return ref


# ------------------------------------------------------------------ validation


def _err(row: int, column: str, value: object, code: str, zh: str, en: str,
         severity: str = "error") -> RowError:
    v = cell_text(value)
    return RowError(row, column, v[:200], code, zh, en, severity)


#: Messages of the ID number's faults that neither echo its digits nor state the correct check digit.
_ID_MESSAGES: dict[str, tuple[str, str]] = {
    "id_checksum": ("校验码不正确，身份证号码可能录入有误，请核对原件",
                    "the check digit does not match: the ID number is probably mistyped; check the card"),
}


def _birth_problem(born: date, today: date) -> tuple[str, str, str] | None:
    """``(code, zh, en)`` when a birth date is in the future or more than :data:`MAX_AGE` years back."""
    if born > today:
        return ("birth_date_future", f"出生日期在将来（{born.year}年），请核对",
                f"the birth date is in the future (year {born.year}): check it")
    if age_on(born, today) > MAX_AGE:
        return ("birth_date_too_old", f"出生日期（{born.year}年）表示年龄超过{MAX_AGE}岁，请核对",
                f"the birth date (year {born.year}) means an age over {MAX_AGE}: check it")
    return None


def _id_birth_message(number: str, today: date) -> tuple[str, str]:
    """The message of an ID number whose digits 7-14 are no (plausible) birth date, without the digits."""
    n = normalize_id_number(number)
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return ("身份证号码第7-14位不是有效的出生日期", "digits 7-14 of the ID number are not a valid birth date")
    problem = _birth_problem(born, today)
    if problem is not None:
        return "身份证号码中的" + problem[1], "in the ID number, " + problem[2]
    return ("身份证号码中的出生日期不合理", "the birth date in the ID number is not plausible")


def _yes_no(cells: dict[str, str], col: str) -> bool | None:
    try:
        return parse_yes_no_text(cells.get(col, ""))
    except ValueError:
        raise _CellError("yes_no_invalid", "应填是/否（Y/N、1/0、√/×）",
                         "expected yes/no (是/否, Y/N, 1/0, √/×)") from None


def _validate_row(cells: dict[str, str], row: int, ref: Reference | None,
                  errors: list[RowError], warnings: list[RowError]) -> tuple[dict[str, Any], bool]:
    """Validate one row; append its problems; return the record and whether only the ID failed."""
    rec: dict[str, Any] = {"row": row}
    id_problem = False

    def add(col: str, code: str, zh: str, en: str, severity: str = "error") -> None:
        (errors if severity == "error" else warnings).append(
            _err(row, col, cells.get(col, ""), code, zh, en, severity))

    for col in REQUIRED:
        if not cells.get(col):
            add(col, "missing_required", f"必填项“{col}”为空", f"required column {col} is empty")
    for col, limit in MAX_LEN.items():
        if len(cells.get(col, "")) > limit:
            add(col, "too_long", f"长度超过{limit}个字符", f"longer than {limit} characters")
    rec["name"] = re.sub(r"\s+", "", unicodedata.normalize("NFKC", cells.get("姓名", "")))[:40] or None
    rec["address"] = cells.get("家庭住址", "")[:200] or None
    rec["other_notes"] = cells.get("其他情况") or None

    # ID, birth date, age, sex
    id_raw = cells.get("居民身份证号码", "")
    today = ref.today if ref is not None else date.today()
    rec["id_number"] = rec["birth_date"] = rec["sex"] = None
    birth_text = cells.get("出生日期", "")
    given_birth: date | None = None
    if birth_text:
        try:
            given_birth = _parse_date(birth_text)
        except ValueError:
            add("出生日期", "birth_date_invalid", "出生日期无法识别（应为YYYY-MM-DD）",
                "birth date not understood (use YYYY-MM-DD)")
        problem = _birth_problem(given_birth, today) if given_birth is not None else None
        if problem is not None:
            add("出生日期", *problem)
            given_birth = None
    rec["birth_date"] = given_birth
    if id_raw:
        try:
            if not unicodedata.normalize("NFKC", id_raw).isascii():
                raise ValidationError("an ID number has 17 digits and a check digit or X",
                                      "身份证号码应为17位数字加1位校验码（数字或X）", code="id_format")
            number, born, sex = parse_id_number(unicodedata.normalize("NFKC", id_raw))
            rec.update(id_number=number, birth_date=born, sex=sex)
        except ValidationError as exc:
            zh, en = _ID_MESSAGES.get(exc.code, (exc.message_zh.split("：", 1)[-1],
                                                 exc.message_en.split(": ", 1)[-1]))
            if exc.code == "id_birth_date":
                zh, en = _id_birth_message(unicodedata.normalize("NFKC", id_raw), today)
            add("居民身份证号码", exc.code, zh, en)
            if exc.code == "id_checksum":
                n = normalize_id_number(id_raw)
                id_problem = True
                rec["id_given"] = n
                try:
                    rec["birth_date"] = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
                    rec["sex"] = "男" if int(n[16]) % 2 == 1 else "女"
                except ValueError:
                    id_problem = False
        from_id = rec["id_number"] is not None or "id_given" in rec
        if from_id and rec["birth_date"] is not None:
            problem = _birth_problem(rec["birth_date"], today)
            if problem is not None:
                add("居民身份证号码", problem[0], "身份证号码中的" + problem[1], "in the ID number, " + problem[2])
                rec["birth_date"] = None
                id_problem = False
            elif given_birth is not None and given_birth != rec["birth_date"]:
                add("出生日期", "birth_date_mismatch", "出生日期与身份证号码中的出生日期不符",
                    "the birth date contradicts the one in the ID number")
    elif rec["birth_date"] is not None:
        id_problem = True  # missing ID but a birth date: may match an existing elder
    if rec["birth_date"] is not None and ref is not None:
        age = age_on(rec["birth_date"], ref.today)
        if age < 60:
            add("居民身份证号码" if id_raw else "出生日期", "under_60",
                f"年龄{age}岁，未满60周岁，不属于服务对象", f"age {age} is under 60: not in the programme")
            id_problem = False
    try:
        given_sex = parse_sex_text(cells.get("性别", ""))
    except ValueError:
        add("性别", "sex_invalid", "性别应为男或女", "sex must be 男 or 女")
        given_sex = None
    if given_sex and rec["sex"] and given_sex != rec["sex"]:
        add("性别", "sex_mismatch", f"性别“{given_sex}”与身份证号码（{rec['sex']}）不符",
            f"sex {given_sex} contradicts the ID number ({rec['sex']})")
    rec["sex"] = rec["sex"] or given_sex

    # phones
    for col, key in (("联系电话", "phone"), ("第一联系人电话", "first_contact_phone")):
        try:
            rec[key] = parse_phone_text(cells.get(col, ""))
        except ValueError:
            rec[key] = None
            add(col, "phone_format", "电话号码格式不正确（手机11位或固话7-8位，可带区号）",
                "not a phone number (11-digit mobile or 7-8 digit landline with optional area code)")

    # yes/no
    flags: dict[str, bool | None] = {}
    for col in YES_NO_COLUMNS:
        try:
            flags[col] = _yes_no(cells, col)
        except _CellError as ce:
            add(col, ce.code, ce.zh, ce.en)
            flags[col] = None
    rec["lives_at_hukou"] = flags["是否居住在户籍所在地"]
    rec["living_alone"] = flags["是否独居"]
    rec["empty_nest"] = flags["是否空巢"]
    rec["severely_handicapped"] = flags["是否重残"]
    rec["family_planning_special"] = flags["是否计划生育特殊家庭"]
    rec["willing_to_be_visited"] = flags["是否愿意接受探访"]
    rec["signed_care"] = flags["是否签约驿站或家庭照护床位"]
    rec["hukou_address"] = cells.get("户籍地址") or None
    rec["hukou_street"] = cells.get("户籍所在街道") or None

    # 失能
    try:
        rec["disability_level"] = _disability_level_text(cells.get("失能等级", ""))
    except ValueError:
        rec["disability_level"] = None
        add("失能等级", "disability_level_invalid", "失能等级应为重度、中度、轻度或空",
            "disability level must be 重度, 中度, 轻度 or empty")
    if flags["是否失能"] and rec["disability_level"] is None and cells.get("失能等级", "") == "":
        add("失能等级", "disability_level_missing", "失能老年人须填写失能等级",
            "a disabled elder needs a disability level")

    # 重残
    cert = re.sub(r"\s+", "", unicodedata.normalize("NFKC", cells.get("残疾人证号", ""))).upper()
    rec["disability_cert_no"] = cert[:40] or None
    try:
        rec["disability_grade"] = _grade_text(cells.get("残疾等级", ""))
    except ValueError:
        rec["disability_grade"] = None
        add("残疾等级", "handicap_grade_invalid", "残疾等级应为一级至四级", "disability grade must be 1 to 4")
    dtype = cells.get("残疾类别") or None
    if dtype is None and len(cert) == 20 and cert[18] in DISABILITY_TYPES:
        dtype = DISABILITY_TYPES[cert[18]]
    if dtype is not None:
        dtype = normalize_text(dtype).removesuffix("残疾")[:20]
    rec["disability_type"] = dtype
    if len(cert) == 20 and rec["id_number"] and cert[:18] != rec["id_number"]:
        add("残疾人证号", "handicap_cert_invalid", "残疾人证号前18位应与身份证号码一致",
            "the first 18 characters of the disability certificate must equal the ID number")
    if rec["severely_handicapped"]:
        if cells.get("残疾等级", "") == "":
            add("残疾等级", "handicap_grade_missing", "重残老年人须填写残疾等级",
                "a severely handicapped elder needs a disability grade")
        if not cert:
            add("残疾人证号", "handicap_cert_missing", "重残老年人须填写残疾人证号",
                "a severely handicapped elder needs a disability certificate number")
        g = rec["disability_grade"]
        if g == 4 or (g == 3 and dtype is not None and dtype not in ("智力", "精神")):
            add("残疾等级", "handicap_grade_invalid",
                f"重残须为一、二级，或三级智力/精神残疾（此处为{g}级{dtype or ''}）",
                f"severely handicapped means grade 1-2, or grade 3 intellectual/mental (got grade {g} {dtype or ''})")
        elif g == 3 and dtype is None:
            add("残疾等级", "handicap_type_unknown", "三级残疾需为智力或精神残疾方为重残，残疾类别未知，已接受",
                "grade 3 counts as severe only for intellectual/mental disability; type unknown, accepted",
                severity="warning")

    # welfare: 低保、低收入、特困（城乡）、分散供养特困、生活困难 … (gridmap.register.form)
    try:
        rec["welfare_status"], rec["dispersed_support"] = _welfare_detail_text(cells.get("低保特困情况", ""))
    except ValueError:
        rec["welfare_status"] = rec["dispersed_support"] = None
        add("低保特困情况", "welfare_invalid",
            "低保特困情况应为低保、低收入、特困（城乡）、分散供养特困、生活困难或空",
            "welfare status must be 低保, 低收入, 特困, 分散供养特困, 生活困难 or empty")
    # sections 二–四, 家庭医生签约意愿 and 其他特殊困难情形
    parse_form_fields(cells, rec, lambda col, code, zh, en: add(col, code, zh, en), parse_phone_text)

    # first contact and stewards
    rec["first_contact_name"] = cells.get("第一联系人") or None
    rec["first_contact_relation"] = cells.get("第一联系人关系") or None
    rec["visit_steward"] = cells.get("探访管家") or None
    rec["service_steward"] = cells.get("服务管家") or None

    # street / community names
    rec["street"] = rec["community_code"] = None
    street_text, comm_text = cells.get("街道（乡镇）", ""), cells.get("居（村）", "")
    if ref is not None and ref.streets:
        if street_text:
            rec["street"] = ref.streets.get(normalize_text(street_text))
            if rec["street"] is None:
                add("街道（乡镇）", "street_unknown", "海淀区没有这个街道（乡镇）", "no such street or town in Haidian")
        if comm_text:
            key = normalize_text(comm_text)
            if rec["street"]:
                rec["community_code"] = ref.communities.get(rec["street"], {}).get(key)
                if rec["community_code"] is None:
                    other = [s for s, d in ref.communities.items() if key in d]
                    if other:
                        add("居（村）", "community_not_in_street",
                            f"该社区（村）属于{other[0]}，不属于{rec['street']}",
                            f"this community belongs to {other[0]}, not {rec['street']}")
                    else:
                        add("居（村）", "community_unknown", "该街道没有这个社区（村）",
                            "no such community in this street")
            elif not street_text:
                hits = {s: d[key] for s, d in ref.communities.items() if key in d}
                if len(hits) == 1:
                    rec["street"], rec["community_code"] = next(iter(hits.items()))
                elif not hits:
                    add("居（村）", "community_unknown", "海淀区没有这个社区（村）", "no such community in Haidian")
    else:
        rec["street_text"], rec["community_text"] = street_text or None, comm_text or None

    # coordinates (numbers and CRS; the Haidian check is vectorised later)
    lon_t, lat_t, crs_t = cells.get("经度", ""), cells.get("纬度", ""), cells.get("坐标系", "")
    rec["lon"] = rec["lat"] = None
    rec["crs"] = "WGS84"
    if crs_t:
        try:
            rec["crs"] = _crs_text(crs_t)
        except Exception:  # noqa: BLE001 - any parse failure is a bad cell
            add("坐标系", "crs_invalid", "坐标系应为WGS84、GCJ-02或BD-09", "CRS must be WGS84, GCJ-02 or BD-09")
    if lon_t or lat_t:
        try:
            lon, lat = float(unicodedata.normalize("NFKC", lon_t)), float(unicodedata.normalize("NFKC", lat_t))
            if not (math.isfinite(lon) and math.isfinite(lat)):
                raise ValueError
            rec["lon"], rec["lat"] = lon, lat
        except ValueError:
            add("经度" if not _is_float(lon_t) else "纬度", "coord_invalid",
                "经纬度须同时填写且为数字", "longitude and latitude must both be numbers")
    return rec, id_problem


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_coordinates(recs: list[dict[str, Any]], ref: Reference, errors: list[RowError],
                       warnings: list[RowError]) -> None:
    """Convert to WGS84, detect GCJ-02-as-WGS84 over the whole file, reject points outside Haidian."""
    from gridmap.layers.crs import check_in_haidian, detect_gcj02_offset

    with_xy = [r for r in recs if r["lon"] is not None]
    if not with_xy or ref.district is None:
        return
    # whole-file GCJ-02 detection among points declared WGS84 whose street is known
    paired = [r for r in with_xy if r["crs"] == "WGS84" and r.get("street") in ref.street_polygons]
    if len(paired) >= 5:
        verdict = detect_gcj02_offset([r["lon"] for r in paired], [r["lat"] for r in paired],
                                      [ref.street_polygons[r["street"]] for r in paired])
        if verdict.likely_gcj02:
            for r in with_xy:
                if r["crs"] == "WGS84":
                    r["crs"] = "GCJ-02"
                    r["crs_detected"] = True
            warnings.append(RowError(1, "坐标系", "WGS84", "coord_likely_gcj02",
                                     verdict.message_zh + "；已按GCJ-02转换",
                                     verdict.message_en + "; converted as GCJ-02", "warning"))
    for crs in sorted({r["crs"] for r in with_xy}):
        group = [r for r in with_xy if r["crs"] == crs]
        chk = check_in_haidian([r["lon"] for r in group], [r["lat"] for r in group], ref.district, crs,
                               rows=[r["row"] for r in group], raise_errors=False, tolerance_m=100.0)
        bad = {}
        for e in chk.errors:
            bad[e.row] = e
        for i, r in enumerate(group):
            e = bad.get(r["row"])
            if e is None:
                r["lon"], r["lat"] = float(chk.lon[i]), float(chk.lat[i])
                continue
            code = {"swapped_lonlat": "coord_swapped", "outside_haidian": "coord_outside_haidian",
                    "not_lonlat": "coord_invalid", "missing": "coord_invalid"}.get(e.code, "coord_invalid")
            zh = e.message_zh.split("：", 1)[-1]
            en = e.message_en.split(": ", 1)[-1]
            errors.append(RowError(r["row"], "经度", f"{r['lon']},{r['lat']}", code, zh, en))


def _geocode(recs: list[dict[str, Any]], ref: Reference, community_names: dict[str, str],
             errors: list[RowError], warnings: list[RowError]) -> None:
    """Locate every record: exact from coordinates, else geocode street + community + address."""
    gz = ref.gazetteer
    if gz is None:
        return
    for r in recs:
        if r["lon"] is not None:
            # a coordinate is exact; its street and community come from the vectorised point-in-polygon
            # of the importer (gridmap.register.importer._assign_grids), not one polygon search per row
            r["geocode_quality"] = "exact"
            continue
        else:
            addr = r["address"] or ""
            prefix = ""
            if r.get("street") and r["street"].removesuffix("街道").removesuffix("镇") not in addr:
                prefix += r["street"]
            cname = community_names.get(r.get("community_code") or "")
            if cname:
                stem = re.sub(r"(社区居委会|居委会|村委会)$", "", cname)
                if stem not in addr:
                    prefix += cname
            res = gz.geocode(prefix + addr)
            if res.quality.value == "failed":
                errors.append(RowError(r["row"], "家庭住址", addr[:200], "address_not_geocoded",
                                       f"无坐标且地址无法定位：{res.message_zh or ''}",
                                       f"no coordinates and the address cannot be located: {res.message_en or ''}"))
                continue
            r["lon"], r["lat"] = float(res.lon), float(res.lat)
            if r.get("community_code") and res.community_code and res.community_code != r["community_code"]:
                # the ledger's community is authoritative for the place; keep its centre if the address is vague
                pass
        r["geocode_quality"] = res.quality.value
        if not r.get("street") and res.street:
            r["street"] = res.street
        if not r.get("community_code") and res.community_code:
            r["community_code"] = res.community_code


def validate_frame(frame: pd.DataFrame, rows: Sequence[int] | None = None,
                   ref: Reference | None = None) -> ValidationResult:
    """Validate every row of a ledger.

    Parameters
    ----------
    frame
        One column per canonical (or extra) header, raw cell values.
    rows
        The spreadsheet row number of each frame row (default ``2, 3, …``:
        header = 1).
    ref
        Names, district and gazetteer to check against; None checks only the
        cells themselves (no street, coordinate or geocoding checks).

    Returns
    -------
    ValidationResult
        ``records`` are the good rows (keys: name, id_number, birth_date, sex,
        phone, address, street, community_code, lon, lat, crs,
        geocode_quality, the yes/no flags, disability and welfare fields,
        first contact, stewards, other_notes, row); every bad row has at least
        one entry in ``errors``; ``pending`` rows failed only on the ID and
        may still match an existing elder.
    """
    n = len(frame)
    row_numbers = list(rows) if rows is not None else list(range(2, n + 2))
    errors: list[RowError] = []
    warnings: list[RowError] = []
    field_errors: list[RowError] = []
    cols = list(frame.columns)
    # the cells as text, column by column (each distinct text of a column cleaned once)
    texts = [column_text(frame.iloc[:, j].tolist()) for j in range(len(cols))]
    # a column empty on every row adds nothing to a row's cells (every look-up defaults to "")
    live = [j for j, t in enumerate(texts) if any(t)]
    live_cols = [cols[j] for j in live]
    live_texts = [texts[j] for j in live]
    recs: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    by_row: dict[int, dict[str, Any]] = {}

    def demote(rec: dict[str, Any], e: RowError) -> None:
        """A field error: the elder stays, the field is left as it was (empty when new)."""
        skip = rec.setdefault("_skip", set())
        for k in field_keys(e.column):
            skip.add(k)
            rec[k] = None
        field_errors.append(replace(e, severity="warning"))

    for i, row_texts in enumerate(zip(*live_texts)) if live else enumerate([()] * n):
        cells = dict(zip(live_cols, row_texts))
        row_errs: list[RowError] = []
        rec, id_problem = _validate_row(cells, row_numbers[i], ref, row_errs, warnings)
        if row_errs:
            # raw cells (every column) kept only for rows that may go to the quarantine (bounded memory); a
            # row failing a later check (coordinates, geocoding, duplicates) has its cells taken from the frame
            rec["_cells"] = {c: texts[j][i] for j, c in enumerate(cols)}
        by_row[rec["row"]] = rec
        has_id = rec.get("id_number") is not None or "id_given" in rec
        ident = [e for e in row_errs if is_identity_error(e.column, e.code, has_id=has_id)]
        if ident:
            errors.extend(row_errs)  # the row is rejected: every problem it has is an error
        else:
            for e in row_errs:
                demote(rec, e)
        only_id = id_problem and bool(ident) and all(
            e.column == "居民身份证号码" and e.code in ("id_checksum", "missing_required") for e in ident)
        if only_id:
            errors[:] = [e for e in errors if e.row != rec["row"] or e in ident]
            for e in row_errs:
                if e not in ident:
                    demote(rec, e)
            pending.append(rec)
        elif not ident:
            recs.append(rec)
    if ref is not None:
        cnames = ref.community_names
        coord_errs: list[RowError] = []
        bad = {e.row for e in errors}
        _check_coordinates([r for r in recs + pending if r["row"] not in bad], ref, coord_errs, warnings)
        for e in coord_errs:
            if is_identity_error(e.column, e.code, has_id=True):
                errors.append(e)
            else:
                demote(by_row[e.row], e)
        bad = {e.row for e in errors}
        geo_errs: list[RowError] = []
        _geocode([r for r in recs + pending if r["row"] not in bad], ref, cnames, geo_errs, warnings)
        for e in geo_errs:
            demote(by_row[e.row], e)
    bad_nonid = {e.row for e in errors if not (e.column == "居民身份证号码" and e.code in ("id_checksum", "missing_required"))}
    pending = [r for r in pending if r["row"] not in bad_nonid]
    bad = {e.row for e in errors}
    good = [r for r in recs if r["row"] not in bad]
    # duplicates of a valid ID inside the file
    first_row: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    for r in good:
        k = r["id_number"]
        if k in first_row:
            errors.append(RowError(r["row"], "居民身份证号码", k, "duplicate_in_file",
                                   f"与本文件第{first_row[k]}行身份证号码重复",
                                   f"duplicate of a row in this file (row {first_row[k]}): same ID number"))
            continue
        first_row[k] = r["row"]
        unique.append(r)
    errors.sort(key=lambda e: (e.row, e.column, e.code))
    dup_rows = {e.row for e in errors}
    field_errors = [e for e in field_errors if e.row not in dup_rows]
    field_errors.sort(key=lambda e: (e.row, e.column, e.code))
    # values leave this module masked: reports, import batches, quarantine errors and the console
    errors = [e.masked() for e in errors]
    warnings = [w.masked() for w in warnings]
    field_errors = [w.masked() for w in field_errors]
    return ValidationResult(unique, errors, warnings, pending, n, field_errors)


def canonical_columns() -> list[str]:
    """The canonical headers in order (the form's own words)."""
    return list(CANONICAL_COLUMNS)
