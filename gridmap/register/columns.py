"""The register's spreadsheet columns: canonical Chinese headers (the form's own words) and variants.

The canonical order is the contract of ``gridmap synth register`` output and of
``gridmap register import`` input. The importer also accepts the variants
listed in :data:`HEADER_VARIANTS` and reports which it mapped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

#: Canonical headers, in order, with the elder attribute each fills.
CANONICAL_COLUMNS: dict[str, str] = {
    "姓名": "name",
    "性别": "sex",
    "居民身份证号码": "id_number",
    "联系电话": "phone",
    "街道（乡镇）": "street",
    "居（村）": "community",
    "家庭住址": "address",
    "经度": "lon",
    "纬度": "lat",
    "坐标系": "crs",
    "是否居住在户籍所在地": "lives_at_hukou",
    "是否独居": "living_alone",
    "是否空巢": "empty_nest",
    "失能等级": "disability_level",
    "是否重残": "severely_handicapped",
    "残疾人证号": "disability_cert_no",
    "残疾等级": "disability_grade",
    "是否计划生育特殊家庭": "family_planning_special",
    "低保特困情况": "welfare_status",
    "是否愿意接受探访": "willing_to_be_visited",
    "是否签约驿站或家庭照护床位": "signed_care",
    "第一联系人": "first_contact_name",
    "第一联系人关系": "first_contact_relation",
    "第一联系人电话": "first_contact_phone",
    "探访管家": "visit_steward",
    "服务管家": "service_steward",
    "其他情况": "other_notes",
    # 其他 category (服务对象 6): non-empty text = the elder is in the category, for that reason
    "其他特殊困难情形": "other_reason",
    # 三、家庭生活条件
    "饮水是否安全": "water_safe",
    "生活用电是否安全": "electricity_safe",
    "住房是否安全": "housing_safe",
    "家庭每月收入（元）": "monthly_income",
    "家庭每月领取养老保险、社会救助和社会福利补贴等情况": "benefits",
    # 四、已享受帮扶情况
    "帮扶单位（组织）": "assistance_units",
    "帮扶责任人": "assistance_person",
    "帮扶责任人联系电话": "assistance_phone",
    "帮扶措施": "assistance_measures",
    # 关爱服务: family doctor contracted on the elder's own wish
    "家庭医生签约意愿": "family_doctor",
}

#: 二、家庭基本情况: the fields of one household member, as repeated groups ``家庭成员1姓名`` … ``家庭成员9…``.
MEMBER_FIELDS: dict[str, str] = {
    "姓名": "name",
    "性别": "sex",
    "居民身份证号码": "id_number",
    "与户主关系": "relation",
    "健康状况": "health",
    "是否为低保对象/特困人员": "welfare_status",
}
#: Variants of a member field's label → the form's label.
MEMBER_FIELD_VARIANTS: dict[str, str] = {
    "身份证号码": "居民身份证号码", "身份证号": "居民身份证号码", "公民身份号码": "居民身份证号码",
    "关系": "与户主关系", "与老人关系": "与户主关系", "健康": "健康状况", "身体状况": "健康状况",
    "是否为低保对象/特困人员": "是否为低保对象/特困人员", "是否低保特困": "是否为低保对象/特困人员",
    "低保特困情况": "是否为低保对象/特困人员", "是否为低保对象特困人员": "是否为低保对象/特困人员",
}
#: Most household members a ledger row may carry (the form prints three; departments add more).
MAX_MEMBERS = 9
#: Name of the optional second sheet of household members, keyed by the elder's 居民身份证号码.
MEMBER_SHEET = "家庭成员"
#: The household sheet's key column (the elder's ID number) and its variants.
MEMBER_SHEET_KEY = "老人居民身份证号码"
MEMBER_SHEET_KEY_VARIANTS = ("老人居民身份证号码", "老人身份证号码", "老人身份证号", "户主居民身份证号码",
                             "被探访人居民身份证号码", "探访对象居民身份证号码", "老人公民身份号码")
_MEMBER_RE = re.compile(r"^家庭成员([1-9])(.+)$")


def member_column(n: int, label: str) -> str:
    """The canonical header of field ``label`` of household member ``n`` (``家庭成员1姓名``)."""
    return f"家庭成员{n}{label}"


def member_columns(n_members: int = 3) -> list[str]:
    """The household headers for ``n_members`` members, in the form's order."""
    return [member_column(i, f) for i in range(1, n_members + 1) for f in MEMBER_FIELDS]


def parse_member_header(text: object) -> tuple[int, str] | None:
    """``家庭成员2身份证号`` → ``(2, "居民身份证号码")``; None for any other header."""
    n = normalize_header(text)
    m = _MEMBER_RE.match(n)
    if not m:
        return None
    label = m.group(2)
    norm = {normalize_header(k): k for k in MEMBER_FIELDS}
    norm.update({normalize_header(k): v for k, v in MEMBER_FIELD_VARIANTS.items()})
    field = norm.get(label)
    return (int(m.group(1)), field) if field else None

#: Common variants seen in departments' ledgers → canonical header.
HEADER_VARIANTS: dict[str, str] = {
    "老人姓名": "姓名",
    "被探访人姓名": "姓名",
    "被探访人": "姓名",
    "身份证号": "居民身份证号码",
    "身份证号码": "居民身份证号码",
    "公民身份号码": "居民身份证号码",
    "身份证": "居民身份证号码",
    "电话": "联系电话",
    "手机": "联系电话",
    "手机号": "联系电话",
    "联系方式": "联系电话",
    "街道": "街道（乡镇）",
    "街乡": "街道（乡镇）",
    "街道乡镇": "街道（乡镇）",
    "街道(乡镇)": "街道（乡镇）",
    "所属街道": "街道（乡镇）",
    "社区": "居（村）",
    "社区（村）": "居（村）",
    "居村": "居（村）",
    "居(村)": "居（村）",
    "所属社区": "居（村）",
    "住址": "家庭住址",
    "现住址": "家庭住址",
    "居住地址": "家庭住址",
    "地址": "家庭住址",
    "lon": "经度",
    "lng": "经度",
    "longitude": "经度",
    "lat": "纬度",
    "latitude": "纬度",
    "坐标类型": "坐标系",
    "crs": "坐标系",
    "是否人户一致": "是否居住在户籍所在地",
    "独居": "是否独居",
    "空巢": "是否空巢",
    "失能": "失能等级",
    "失能程度": "失能等级",
    "重残": "是否重残",
    "残疾证号": "残疾人证号",
    "残疾级别": "残疾等级",
    "计生特殊家庭": "是否计划生育特殊家庭",
    "计划生育特殊家庭": "是否计划生育特殊家庭",
    "是否计生特殊家庭": "是否计划生育特殊家庭",
    "低保特困": "低保特困情况",
    "是否为低保对象/特困人员": "低保特困情况",
    "是否愿意探访": "是否愿意接受探访",
    "探访意愿": "是否愿意接受探访",
    "是否签约驿站": "是否签约驿站或家庭照护床位",
    "是否签约家庭照护床位": "是否签约驿站或家庭照护床位",
    "第一联系人姓名": "第一联系人",
    "与老人关系": "第一联系人关系",
    "联系人关系": "第一联系人关系",
    "第一联系人联系电话": "第一联系人电话",
    "联系人电话": "第一联系人电话",
    "备注": "其他情况",
    "其他特殊困难": "其他特殊困难情形",
    "其他困难情形": "其他特殊困难情形",
    "其他类别原因": "其他特殊困难情形",
    "饮水安全": "饮水是否安全",
    "用电是否安全": "生活用电是否安全",
    "用电安全": "生活用电是否安全",
    "住房安全": "住房是否安全",
    "家庭月收入": "家庭每月收入（元）",
    "家庭每月收入": "家庭每月收入（元）",
    "家庭每月收入(元)": "家庭每月收入（元）",
    "月收入（元）": "家庭每月收入（元）",
    "家庭每月领取养老保险、社会救助和社会福利补贴情况": "家庭每月领取养老保险、社会救助和社会福利补贴等情况",
    "养老保险、社会救助和社会福利补贴": "家庭每月领取养老保险、社会救助和社会福利补贴等情况",
    "领取补贴情况": "家庭每月领取养老保险、社会救助和社会福利补贴等情况",
    "帮扶单位": "帮扶单位（组织）",
    "帮扶单位(组织)": "帮扶单位（组织）",
    "帮扶组织": "帮扶单位（组织）",
    "帮扶责任人电话": "帮扶责任人联系电话",
    "帮扶人": "帮扶责任人",
    "帮扶人电话": "帮扶责任人联系电话",
    "家庭医生签约": "家庭医生签约意愿",
    "是否愿意签约家庭医生": "家庭医生签约意愿",
    "家庭医生": "家庭医生签约意愿",
}

_YES = {"是", "y", "yes", "1", "√", "✓", "true", "t", "有"}
_NO = {"否", "n", "no", "0", "×", "✗", "x", "false", "f", "无"}


def normalize_header(text: object) -> str:
    """NFKC, strip spaces and line breaks (``居 （村）`` → ``居(村)`` → variant lookup)."""
    t = unicodedata.normalize("NFKC", str(text or ""))
    return re.sub(r"\s+", "", t)


def map_headers(headers: list[object]) -> tuple[dict[int, str], dict[str, str], list[str]]:
    """Map a file's headers to canonical ones.

    Returns
    -------
    (index → canonical header, mapped variants {given: canonical}, unknown headers)
    """
    canon_norm = {normalize_header(c): c for c in CANONICAL_COLUMNS}
    variant_norm = {normalize_header(k): v for k, v in HEADER_VARIANTS.items()}
    mapping: dict[int, str] = {}
    mapped: dict[str, str] = {}
    unknown: list[str] = []
    for i, h in enumerate(headers):
        n = normalize_header(h)
        if not n:
            continue
        canon = canon_norm.get(n) or variant_norm.get(n) or variant_norm.get(n.lower())
        if canon is None:
            member = parse_member_header(n)
            if member is not None:
                canon = member_column(*member)
        if canon is None:
            unknown.append(str(h))
            continue
        if canon in mapping.values():
            continue  # first occurrence wins
        mapping[i] = canon
        if str(h) != canon:
            mapped[str(h)] = canon
    return mapping, mapped, unknown


def parse_yes_no(value: object) -> bool | None:
    """是/否, Y/N, 1/0, √/× (and true/false) → bool; empty → None.

    Raises
    ------
    ValueError
        For any other text.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    t = normalize_header(value).lower()
    if t in ("", "nan", "none"):
        return None
    if t in _YES:
        return True
    if t in _NO:
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


# ------------------------------------------------------------------ memoised cell parsers (issue 20: speed)

#: Distinct texts one memoised parser keeps before it starts over (bounded memory on any ledger).
MEMO_LIMIT = 20_000


def memo_parser(fn: Callable[[str], Any], errors: type[BaseException] | tuple[type[BaseException], ...] = ValueError
                ) -> Callable[[str], Any]:
    """``fn`` over cell *texts*, each distinct text parsed once (its result or its error remembered).

    A ledger repeats the same few values in most columns (是/否, 男/女, 低保, street
    names …): parsing each distinct text once turns per-row work into a dict look-up.
    A remembered error is raised again as a fresh :class:`ValueError` with the same
    message, so callers catch it as they catch ``fn``'s own (``errors`` lists the
    exception types of ``fn`` that are remembered; any other propagates).
    ``fn`` must be pure and return an immutable value.
    """
    cache: dict[str, tuple[bool, Any]] = {}

    def parse(text: str) -> Any:
        hit = cache.get(text)
        if hit is None:
            try:
                hit = (True, fn(text))
            except errors as exc:
                hit = (False, str(exc))
            if len(cache) >= MEMO_LIMIT:
                cache.clear()
            cache[text] = hit
        if hit[0]:
            return hit[1]
        raise ValueError(hit[1])

    parse.__wrapped__ = fn  # type: ignore[attr-defined]
    return parse


#: :func:`normalize_header` of a cell text, memoised.
normalize_text = memo_parser(normalize_header)
#: :func:`parse_yes_no` of a cell text, memoised.
parse_yes_no_text = memo_parser(parse_yes_no)
