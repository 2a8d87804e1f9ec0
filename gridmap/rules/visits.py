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
from datetime import date, datetime, timedelta, timezone
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

#: Answer fields of section 五 and their enumerations.
ANSWER_FIELDS: dict[str, type] = {
    "family_change": FamilyChange,
    "expression": Change,
    "mobility": Change,
    "illness": IllnessChange,
    "mood": Change,
    "gas_safety": Safety,
    "water_heating_safety": Safety,
    "electricity_safety": Safety,
    "personal_hygiene": Change,
    "home_hygiene": Change,
    "indoor_environment": Change,
}

#: Chinese names of the answer fields (the form's row labels).
ANSWER_LABELS: dict[str, str] = {
    "family_change": "家庭人口",
    "expression": "表达能力",
    "mobility": "行动能力",
    "illness": "疾病状况",
    "mood": "情绪状态",
    "gas_safety": "燃气安全",
    "water_heating_safety": "水暖安全",
    "electricity_safety": "用电安全",
    "personal_hygiene": "个人卫生",
    "home_hygiene": "家庭卫生",
    "indoor_environment": "室内环境",
}

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
    needs: str | None = None
    suggestions: str | None = None
    emergency: bool = False
    visitor_signature: str | None = None
    elder_signature: str | None = None
    recorder_signature: str | None = None
    signed_at: datetime | None = None
    gps: tuple[float, float] | None = None
    gps_time: datetime | None = None
    entered_by: str | None = None
    entered_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    late_entry: bool = False
    effective: bool = True
    care_services: tuple[CareServiceRecord, ...] = ()

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
    ``gps`` is ``[lon, lat]`` (WGS84) with ``gps_time``. ``needs`` is the
    free text 老年人服务需求; ``emergency`` marks a danger to the elder's life.

    Raises
    ------
    ValidationError
        Naming the field, in English and Chinese.
    """
    rules = rules or load_rules()
    now = now or datetime.now(timezone.utc)
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
        missing = [k for k in ANSWER_FIELDS if k not in answers]
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

    effective = bool(data.get("effective", True)) and mode in rules.effective_modes \
        and role in rules.credited_roles
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
        needs=_text(data, "needs", 4000),
        suggestions=_text(data, "suggestions", 4000),
        emergency=bool(data.get("emergency", False)),
        visitor_signature=_text(data, "visitor_signature", 40),
        elder_signature=_text(data, "elder_signature", 40),
        recorder_signature=_text(data, "recorder_signature", 40),
        signed_at=_dt(data, "signed_at"),
        gps=gps_pt,
        gps_time=gps_time,
        entered_by=_text(data, "entered_by", 60),
        entered_at=entered_at,
        late_entry=late,
        effective=effective,
        care_services=tuple(services),
    )
