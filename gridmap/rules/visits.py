"""Visit records (section 五 of the record form) and care services (section 六): parse and validate.

:func:`parse_visit` turns a mapping (the JSON of ``gridmap visits record``,
a form of the dashboard) into a validated :class:`VisitRecord`; answers may be
given as codes (``unsafe``) or the form's Chinese labels (``不安全``). A paper
record entered more than ``late_entry_days`` after the visit is marked late; a
visit dated after today, or before the programme began (rules
``programme_start``, 2024-01-01 by default), is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Change,
    FamilyChange,
    IllnessChange,
    Safety,
    Satisfaction,
    VisitMode,
    VisitorRole,
)
from gridmap.rules.config import Rules, load_rules


class FamilySupport(StrEnum):
    """赡养: whether the children (or other relatives) visit or call the elder."""

    REGULAR = "regular"
    OCCASIONAL = "occasional"
    NONE = "none"

    @property
    def label(self) -> str:
        """The Chinese answer."""
        return {"regular": "经常探望或来电", "occasional": "偶尔探望或来电", "none": "无人探望或来电"}[self.value]

    @classmethod
    def from_label(cls, text: str) -> FamilySupport:
        """Parse a code or a Chinese answer (ValueError otherwise)."""
        t = str(text).strip()
        for m in cls:
            if t in (m.value, m.label):
                return m
        raise ValueError(f"{t!r} is not a valid FamilySupport")


#: Answer fields of section 五 and their enumerations (form order).
ANSWER_FIELDS: dict[str, type] = {
    "family_change": FamilyChange,
    "family_support": FamilySupport,  # issue 17: 赡养
    "expression": Change,
    "mobility": Change,
    "reaction": Change,  # issue 17: 反应能力
    "illness": IllnessChange,
    "mood": Change,
    "gas_safety": Safety,
    "water_heating_safety": Safety,
    "electricity_safety": Safety,
    "housing_safety": Safety,  # issue 17: 房屋安全
    "drinking_water_safety": Safety,  # issue 17: 饮水安全
    "personal_hygiene": Change,
    "home_hygiene": Change,
    "indoor_environment": Change,
}

#: The items an in-home visit is refused without (the record form before issue 17); the later items
#: (反应能力, 赡养, 房屋安全, 饮水安全) count towards an effective visit by the rules ``effective_answers``.
IN_HOME_REQUIRED: tuple[str, ...] = (
    "family_change", "expression", "mobility", "illness", "mood", "gas_safety", "water_heating_safety",
    "electricity_safety", "personal_hygiene", "home_hygiene", "indoor_environment",
)

#: Chinese names of the answer fields (the form's row labels).
ANSWER_LABELS: dict[str, str] = {
    "family_change": "家庭人口",
    "family_support": "赡养情况（子女等探望或来电）",
    "expression": "表达能力",
    "mobility": "行动能力",
    "reaction": "反应能力",
    "illness": "疾病状况",
    "mood": "情绪状态",
    "gas_safety": "燃气安全",
    "water_heating_safety": "水暖安全",
    "electricity_safety": "用电安全",
    "housing_safety": "房屋安全",
    "drinking_water_safety": "饮水安全",
    "personal_hygiene": "个人卫生",
    "home_hygiene": "家庭卫生",
    "indoor_environment": "室内环境",
}

#: The Chinese name of the needs item (老年人服务需求) among the items an effective visit answers.
NEEDS_LABEL = "老年人服务需求"
#: Words that answer the needs item with "no need" (an empty list does too).
NO_NEED_WORDS = frozenset({"无", "无需求", "无服务需求", "none"})


def item_label(item: str) -> str:
    """The Chinese name of an item of 五 (an answer field or ``needs``)."""
    return NEEDS_LABEL if item == "needs" else ANSWER_LABELS.get(item, item)


def effective_gaps(mode: VisitMode | str, answers: Mapping[str, Any], needs_answered: bool,
                   rules: Rules) -> list[str]:
    """The items of 五 the rules (``effective_answers``) require for this mode and the visit left unanswered."""
    req = rules.effective_answers.get(VisitMode(mode), ())
    return [k for k in req if not (needs_answered if k == "needs" else answers.get(k) not in (None, ""))]


def parse_needs(value: Any, rules: Rules, *, fieldname: str = "needs") -> tuple[str, ...]:
    """Need codes from a list of labels, codes or aliases (rules ``service_needs``); 无 / 无需求 alone: none.

    Raises
    ------
    ValidationError
        An unknown label (naming the field and the labels allowed), or not a list.
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _bad(fieldname, value, "expected a list of need labels", "应为服务需求列表", "type")
    words = {}
    for n in rules.service_needs:
        for w in (n.code, n.label, *n.aliases):
            words[w] = n.code
    out: list[str] = []
    for i, v in enumerate(value):
        t = str(v).strip() if v is not None else ""
        if t in NO_NEED_WORDS or t == "":
            continue
        if t not in words:
            allowed = "、".join(n.label for n in rules.service_needs)
            raise _bad(f"{fieldname}[{i}]", v, f"unknown need {t!r}; allowed: {allowed} (or 无)",
                       f"未知的服务需求“{t}”；可选：{allowed}（或“无”）", "unknown_need")
        if words[t] not in out:
            out.append(words[t])
    return tuple(out)

# a generous box around Beijing for GPS fixes (lon, lat)
_GPS_BOX = (115.4, 39.4, 117.6, 41.1)


@dataclass(frozen=True)
class CareServiceRecord:
    """六、关爱服务情况: one care service with the elder's satisfaction."""

    served_on: date
    kind: str | None = None
    description: str | None = None
    provider: str | None = None
    staff_signature: str | None = None
    satisfaction: Satisfaction | None = None


@dataclass(frozen=True)
class VisitRecord:
    """A validated visit: every field of section 五, who visited, where and when."""

    elder_id: int
    visited_on: date
    mode: VisitMode
    visitor_role: VisitorRole
    visitor_name: str | None = None
    steward_id: int | None = None
    seq: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    answers: Mapping[str, str] = field(default_factory=dict)
    family_change_count: int | None = None
    illness_name: str | None = None
    needs: str | None = None  # 老年人服务需求 as free text (needs_note, or a plain-string needs)
    suggestions: str | None = None
    emergency: bool = False
    visitor_signature: str | None = None
    elder_signature: str | None = None
    recorder_signature: str | None = None
    signed_at: datetime | None = None
    gps: tuple[float, float] | None = None
    gps_time: datetime | None = None
    # issue 18: the phone's position at saving, given with the visitor's consent (``position_consent``); the
    # store keeps only its distance to the home (visit.position_distance_m), never the position
    position: tuple[float, float] | None = None
    entered_by: str | None = None
    entered_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    late_entry: bool = False
    effective: bool = True
    care_services: tuple[CareServiceRecord, ...] = ()
    # issue 17: the needs as codes of rules ``service_needs`` (None: the needs item was not answered; ()
    # answered 无), and the items the rules ``effective_answers`` require that the visit left out
    need_kinds: tuple[str, ...] | None = None
    missing_answers: tuple[str, ...] = ()

    @property
    def ineffective_reason(self) -> str | None:
        """Why the visit is not effective, in Chinese (None when it is)."""
        if self.effective:
            return None
        if self.missing_answers:
            return "未答：" + "、".join(item_label(k) for k in self.missing_answers)
        return "探访方式或探访人身份不计入有效探访"

    @property
    def minutes(self) -> float | None:
        """Duration in minutes when start and end are known."""
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds() / 60
        return None


def _bad(fieldname: str, value: Any, en: str, zh: str, code: str) -> ValidationError:
    return ValidationError(en, zh, field=fieldname, value=value, code=code)


def _date(d: Mapping[str, Any], key: str, required: bool = False) -> date | None:
    v = d.get(key)
    if v in (None, ""):
        if required:
            raise _bad(key, v, "is required", "必填", "required")
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise _bad(key, v, "expected a date YYYY-MM-DD", "日期格式应为 YYYY-MM-DD", "date") from None


def _dt(d: Mapping[str, Any], key: str) -> datetime | None:
    v = d.get(key)
    if v in (None, ""):
        return None
    if isinstance(v, datetime):
        dt = v
    else:
        try:
            dt = datetime.fromisoformat(str(v))
        except ValueError:
            raise _bad(key, v, "expected a time YYYY-MM-DDTHH:MM[:SS][+08:00]",
                       "时间格式应为 YYYY-MM-DDTHH:MM", "datetime") from None
    if dt.tzinfo is None:  # local Beijing time
        dt = dt.replace(tzinfo=timezone(timedelta(hours=8)))
    return dt


def _enum(enum: type, key: str, v: Any) -> Any:
    try:
        return enum.from_label(v)
    except ValueError:
        allowed = " / ".join(f"{m.value} {m.label}" for m in enum)
        raise _bad(key, v, f"unknown answer; allowed: {allowed}", f"无效选项；可选：{allowed}",
                   "answer") from None


def _text(d: Mapping[str, Any], key: str, limit: int) -> str | None:
    v = d.get(key)
    if v in (None, ""):
        return None
    s = str(v).strip()
    if len(s) > limit:
        raise _bad(key, v, f"longer than {limit} characters", f"超过{limit}个字符", "too_long")
    return s or None


def parse_visit(
    data: Mapping[str, Any],
    rules: Rules | None = None,
    *,
    now: datetime | None = None,
) -> VisitRecord:
    """Validate a visit record given as a mapping.

    Required: ``elder_id``, ``visited_on``, ``mode``, ``visitor_role``. For an
    in-home visit the health and safety answers of section 五 are required.
    ``gps`` is ``[lon, lat]`` (WGS84) with ``gps_time``. ``needs`` (老年人服务需求) is a list of need
    labels of the rules ``service_needs`` (``["助餐", "助医"]``; ``[]`` or ``["无"]``: no need) and
    ``needs_note`` free text; a plain string ``needs`` is taken as the note. ``emergency`` marks a
    danger to the elder's life. A visit that leaves out an item the rules ``effective_answers`` require
    for its mode is valid but not effective (``missing_answers`` names the items).

    Raises
    ------
    ValidationError
        Naming the field, in English and Chinese.
    """
    rules = rules or load_rules()
    now = now or datetime.now(UTC)
    if not isinstance(data, Mapping):
        raise _bad("<record>", data, "a visit must be a JSON object", "探访记录须为 JSON 对象", "type")
    try:
        elder_id = int(data.get("elder_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _bad("elder_id", data.get("elder_id"), "is required (an integer)", "必填（整数）",
                   "required") from None
    visited_on = _date(data, "visited_on", required=True)
    assert visited_on is not None
    if visited_on > now.astimezone(timezone(timedelta(hours=8))).date():
        raise _bad("visited_on", str(visited_on), "is in the future", "不能晚于今天", "future")
    if visited_on < rules.programme_start:
        start = rules.programme_start
        raise _bad("visited_on", str(visited_on),
                   f"is before the programme began on {start.isoformat()} (rules programme_start); "
                   "check the year",
                   f"早于探访关爱工作开始日期 {start.year}年{start.month}月{start.day}日（规则项 programme_start），"
                   "请核对年份", "too_early")
    if data.get("mode") in (None, ""):
        raise _bad("mode", None, "is required", "必填", "required")
    mode = _enum(VisitMode, "mode", data["mode"])
    if data.get("visitor_role") in (None, ""):
        raise _bad("visitor_role", None, "is required", "必填", "required")
    role = _enum(VisitorRole, "visitor_role", data["visitor_role"])

    answers: dict[str, str] = {}
    for key, enum in ANSWER_FIELDS.items():
        v = data.get(key, (data.get("answers") or {}).get(key))
        if v not in (None, ""):
            answers[key] = str(_enum(enum, key, v))
    if mode in rules.in_home_modes:
        missing = [k for k in IN_HOME_REQUIRED if k not in answers]
        if missing:
            raise _bad(missing[0], None,
                       f"an in-home visit must answer every item of section 五; missing {', '.join(missing)}",
                       "上门探访须填写第五部分全部项目；缺少" + "、".join(ANSWER_LABELS[m] for m in missing),
                       "required")
    fcc = data.get("family_change_count")
    if fcc not in (None, ""):
        try:
            fcc = int(fcc)
        except (TypeError, ValueError):
            raise _bad("family_change_count", fcc, "must be an integer", "须为整数", "integer") from None
        if fcc < 0 or fcc > 20:
            raise _bad("family_change_count", fcc, "must be 0..20", "须在0到20之间", "range")
    else:
        fcc = None

    started, ended = _dt(data, "started_at"), _dt(data, "ended_at")
    if started and ended and ended < started:
        raise _bad("ended_at", data.get("ended_at"), "is before started_at", "结束时间早于开始时间",
                   "time_order")
    if started and ended and ended - started > timedelta(hours=8):
        raise _bad("ended_at", data.get("ended_at"), "a visit longer than 8 hours", "探访时长超过8小时",
                   "too_long")

    gps = data.get("gps")
    gps_pt: tuple[float, float] | None = None
    if gps not in (None, "", []):
        try:
            lon, lat = (float(x) for x in gps)
        except (TypeError, ValueError):
            raise _bad("gps", gps, "expected [lon, lat]", "应为 [经度, 纬度]", "gps") from None
        if not (_GPS_BOX[0] <= lon <= _GPS_BOX[2] and _GPS_BOX[1] <= lat <= _GPS_BOX[3]):
            if _GPS_BOX[0] <= lat <= _GPS_BOX[2] and _GPS_BOX[1] <= lon <= _GPS_BOX[3]:
                raise _bad("gps", gps, "longitude and latitude look swapped; give [lon, lat]",
                           "经纬度似乎颠倒；应为 [经度, 纬度]", "swapped_lonlat")
            raise _bad("gps", gps, "outside Beijing", "不在北京范围内", "outside")
        gps_pt = (lon, lat)
    gps_time = _dt(data, "gps_time")
    if gps_pt and gps_time is None:
        raise _bad("gps_time", None, "required with gps", "填写GPS位置时须填写定位时间", "required")

    # issue 18: the phone's position at saving, only with consent (without it, it is dropped unread)
    position: tuple[float, float] | None = None
    if data.get("position_consent") is True and data.get("position") not in (None, "", []):
        try:
            plon, plat = (float(x) for x in data["position"])
        except (TypeError, ValueError):
            raise _bad("position", data.get("position"), "expected [lon, lat]", "应为 [经度, 纬度]",
                       "position") from None
        if not (_GPS_BOX[0] <= plon <= _GPS_BOX[2] and _GPS_BOX[1] <= plat <= _GPS_BOX[3]):
            raise _bad("position", data.get("position"), "outside Beijing", "不在北京范围内", "outside")
        position = (plon, plat)

    entered_at = _dt(data, "entered_at") or now
    late = (entered_at.astimezone(timezone(timedelta(hours=8))).date() - visited_on).days \
        > rules.late_entry_days
    late = late or bool(data.get("late_entry"))

    services = []
    for i, s in enumerate(data.get("care_services") or []):
        try:
            sat = s.get("satisfaction")
            services.append(CareServiceRecord(
                served_on=_date(s, "served_on") or visited_on,
                kind=_text(s, "kind", 40),
                description=_text(s, "description", 2000),
                provider=_text(s, "provider", 120),
                staff_signature=_text(s, "staff_signature", 40),
                satisfaction=_enum(Satisfaction, "satisfaction", sat) if sat not in (None, "") else None,
            ))
        except ValidationError as exc:
            raise _bad(f"care_services[{i}].{exc.field}", exc.value, exc.message_en, exc.message_zh,
                       exc.code) from None

    # 老年人服务需求: a list of need labels (service tasks), needs_note free text; a plain string is a note
    raw_needs = data.get("needs")
    need_kinds: tuple[str, ...] | None = None
    note_key = "needs_note" if data.get("needs_note") not in (None, "") else "needs"
    if isinstance(raw_needs, (list, tuple)):
        need_kinds = parse_needs(raw_needs, rules)
        note_key = "needs_note"
    elif isinstance(raw_needs, str) and raw_needs.strip() in NO_NEED_WORDS:
        need_kinds, note_key = (), "needs_note"
    elif raw_needs not in (None, "") and not isinstance(raw_needs, str):
        raise _bad("needs", raw_needs, "expected a list of need labels or a text",
                   "应为服务需求列表或文字", "type")
    needs_note = _text(data, note_key, 4000)
    needs_answered = need_kinds is not None or needs_note is not None
    missing = tuple(effective_gaps(mode, answers, needs_answered, rules))
    effective = bool(data.get("effective", True)) and mode in rules.effective_modes \
        and role in rules.credited_roles and not missing
    steward_id = data.get("steward_id")
    return VisitRecord(
        elder_id=elder_id,
        visited_on=visited_on,
        mode=mode,
        visitor_role=role,
        visitor_name=_text(data, "visitor_name", 40),
        steward_id=int(steward_id) if steward_id not in (None, "") else None,
        seq=int(data["seq"]) if data.get("seq") not in (None, "") else None,
        started_at=started,
        ended_at=ended,
        answers=answers,
        family_change_count=fcc,
        illness_name=_text(data, "illness_name", 80),
        needs=needs_note,
        suggestions=_text(data, "suggestions", 4000),
        emergency=bool(data.get("emergency", False)),
        visitor_signature=_text(data, "visitor_signature", 40),
        elder_signature=_text(data, "elder_signature", 40),
        recorder_signature=_text(data, "recorder_signature", 40),
        signed_at=_dt(data, "signed_at"),
        gps=gps_pt,
        gps_time=gps_time,
        position=position,
        entered_by=_text(data, "entered_by", 60),
        entered_at=entered_at,
        late_entry=late,
        effective=effective,
        care_services=tuple(services),
        need_kinds=need_kinds,
        missing_answers=missing,
    )
