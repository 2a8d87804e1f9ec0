"""Plain inputs of the visit rules: what is known about one elder, and calendar events.

:class:`ElderFacts` is read from the store by :mod:`gridmap.rules.store` (or
built by hand in tests); the rules engine never touches the database.
:class:`Event` is an extreme-weather alert or a holiday; :func:`load_events`
imports a list of them from a CSV, YAML or JSON file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    DeviceKind,
    DisabilityLevel,
    ElderStatus,
    EventKind,
    WelfareStatus,
)
from gridmap.domain.idcard import age_on

if TYPE_CHECKING:
    import pandas as pd

#: Answers of section 五 that describe health, mood and hygiene (worse = 较差 / 严重).
HEALTH_ANSWERS = ("expression", "mobility", "illness", "mood", "personal_hygiene",
                  "home_hygiene", "indoor_environment")
#: Answers of section 五 about safety (安全 / 较安全 / 不安全).
SAFETY_ANSWERS = ("gas_safety", "water_heating_safety", "electricity_safety")
#: The hazard kind (HazardKind code) an unsafe answer opens.
SAFETY_HAZARD_KIND = {"gas_safety": "gas", "water_heating_safety": "water_heating",
                      "electricity_safety": "electricity"}


@dataclass(frozen=True)
class ElderFacts:
    """What the visit rules need to know about one elder.

    Parameters
    ----------
    id
        The elder's id in the register.
    birth_date, age
        Either; ``age`` wins when both are given (age on the Monday of the week otherwise).
    categories
        服务人群 categories (独居, 空巢, 失能, 重残, 计划生育特殊家庭, 其他).
    disability_level
        失能等级 (重度/中度/轻度) or None.
    welfare_status, dispersed_support
        低保/特困/低收入, and whether a 特困 elder is 分散供养.
    willing
        Accepts visits (有意愿接受探访服务).
    signed_care_station, signed_home_care_bed
        Signed with a care station or a home care bed (四.(二)).
    status
        Programme status (在册, 住院, 迁出, 去世, 退出).
    open_hazards
        Hazards still open or in progress (待处理, 整改中).
    settled_hazard_kinds
        Hazard kinds (codes) whose hazards are all fixed, unfixable or transferred: an unsafe
        answer of the last visit about such a kind no longer raises the risk.
    last_visit_on
        Date of the last *effective* visit before the period, or None.
    last_answers
        Answers of section 五 at the last visit (``{"gas_safety": "unsafe", ...}``).
    has_first_contact
        A valid 第一联系人 is recorded.
    devices
        Kinds of devices installed and working.
    """

    id: int
    birth_date: date | None = None
    age: int | None = None
    categories: frozenset[Category] = frozenset()
    disability_level: DisabilityLevel | None = None
    welfare_status: WelfareStatus | None = None
    dispersed_support: bool = False
    willing: bool = True
    signed_care_station: bool = False
    signed_home_care_bed: bool = False
    status: ElderStatus = ElderStatus.ACTIVE
    open_hazards: int = 0
    last_visit_on: date | None = None
    last_answers: Mapping[str, str] = field(default_factory=dict)
    has_first_contact: bool = True
    devices: frozenset[DeviceKind] = frozenset()
    family_doctor_signed: bool | None = None
    wants_family_doctor: bool | None = None
    street_id: int | None = None
    street: str | None = None
    community_id: int | None = None
    community: str | None = None
    grid_id: int | None = None
    steward_id: int | None = None
    service_steward_id: int | None = None
    lon: float | None = None
    lat: float | None = None
    settled_hazard_kinds: frozenset[str] = frozenset()

    def age_on(self, day: date) -> int | None:
        """Age in whole years on ``day`` (``age`` if given)."""
        if self.age is not None:
            return self.age
        if self.birth_date is None:
            return None
        return age_on(self.birth_date, day)

    @property
    def signed(self) -> bool:
        """Signed with a care station or a home care bed."""
        return self.signed_care_station or self.signed_home_care_bed


def facts_from_frame(frame: pd.DataFrame) -> list[ElderFacts]:
    """ElderFacts from a DataFrame whose columns are (a subset of) the dataclass fields."""
    import pandas as pd
    names = {f.name for f in fields(ElderFacts)}
    out = []
    for rec in frame.to_dict("records"):
        kw = {}
        for k, v in rec.items():
            if k not in names:
                continue
            if not isinstance(v, (list, tuple, set, frozenset, dict)) and pd.isna(v):
                v = None
            kw[k] = v
        kw["categories"] = frozenset(Category(c) for c in (kw.get("categories") or ()))
        kw["devices"] = frozenset(DeviceKind(c) for c in (kw.get("devices") or ()))
        kw["settled_hazard_kinds"] = frozenset(str(k) for k in (kw.get("settled_hazard_kinds") or ()))
        for k, enum in (("disability_level", DisabilityLevel), ("welfare_status", WelfareStatus)):
            if kw.get(k) is not None:
                kw[k] = enum(kw[k])
        if kw.get("status") is not None:
            kw["status"] = ElderStatus(kw["status"])
        else:
            kw.pop("status", None)
        for k in ("birth_date", "last_visit_on"):
            if isinstance(kw.get(k), pd.Timestamp):
                kw[k] = kw[k].date()
        for k in ("dispersed_support", "willing", "signed_care_station", "signed_home_care_bed",
                  "has_first_contact"):
            if kw.get(k) is None:
                kw.pop(k, None)
        for k in ("open_hazards",):
            kw[k] = int(kw.get(k) or 0)
        for k in ("age", "street_id", "community_id", "grid_id", "steward_id", "service_steward_id"):
            if kw.get(k) is not None:
                kw[k] = int(kw[k])
        kw["last_answers"] = kw.get("last_answers") or {}
        out.append(ElderFacts(**kw))
    return out


def facts_to_frame(facts: Iterable[ElderFacts]) -> pd.DataFrame:
    """One row per elder; categories and devices as sorted lists of codes."""
    import pandas as pd
    rows = []
    for f in facts:
        d = asdict(f)
        d["categories"] = sorted(str(c) for c in f.categories)
        d["devices"] = sorted(str(c) for c in f.devices)
        d["last_answers"] = dict(f.last_answers)
        rows.append(d)
    cols = [f.name for f in fields(ElderFacts)]
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """A calendar event: extreme weather (高温/寒潮/暴雨 alerts) or a traditional holiday.

    Parameters
    ----------
    kind
        极端天气, 传统节假日 or 其他.
    name
        E.g. ``寒潮蓝色预警``, ``春节``.
    starts_on, ends_on
        Inclusive date range.
    street_id, street
        Only elders of this street (by id or name); both None = the whole district.
    params
        Optional narrowing and overrides: ``categories`` (list of codes or labels:
        only elders with one of them), ``min_age``, ``min_score``, and any key of the
        event rule (``remote_per_day``, ``extra_in_home``, ``in_home_min_score``,
        ``extra_remote``).
    """

    kind: EventKind
    name: str
    starts_on: date
    ends_on: date
    street_id: int | None = None
    street: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def days_in(self, start: date, end: date) -> int:
        """Number of the event's days within ``[start, end]``."""
        lo, hi = max(self.starts_on, start), min(self.ends_on, end)
        return max(0, (hi - lo).days + 1)


def _parse_date(value: Any, fieldname: str, row: int | None) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(
            "expected a date YYYY-MM-DD", "日期格式应为 YYYY-MM-DD",
            field=fieldname, value=value, code="date", row=row,
        ) from None


def event_from_mapping(d: Mapping[str, Any], row: int | None = None) -> Event:
    """One :class:`Event` from a mapping (keys kind, name, starts_on, ends_on, street, params)."""
    try:
        kind = EventKind.from_label(d.get("kind", ""))
    except ValueError:
        raise ValidationError(
            "unknown event kind; use extreme_weather/holiday/other or 极端天气/传统节假日/其他",
            "未知事件类型；应为 极端天气、传统节假日 或 其他",
            field="kind", value=d.get("kind"), code="event_kind", row=row,
        ) from None
    start = _parse_date(d.get("starts_on"), "starts_on", row)
    end = _parse_date(d.get("ends_on") or d.get("starts_on"), "ends_on", row)
    if end < start:
        raise ValidationError("ends before it starts", "结束日期早于开始日期",
                              field="ends_on", value=str(end), code="event_range", row=row)
    params = d.get("params") or {}
    if isinstance(params, str):
        params = json.loads(params) if params.strip() else {}
    street_id = d.get("street_id")
    street = d.get("street") or None
    return Event(kind=kind, name=str(d.get("name") or kind.label), starts_on=start, ends_on=end,
                 street_id=int(street_id) if street_id not in (None, "") else None,
                 street=street, params=dict(params))


def load_events(path: str | Path) -> list[Event]:
    """Import events from a CSV (header kind,name,starts_on,ends_on[,street][,params]), YAML or JSON list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValidationError(f"cannot read {p}: {exc}", f"无法读取 {p}：{exc}",
                              field=str(p), code="events_file") from exc
    if p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        return [event_from_mapping(r, row=i + 2) for i, r in enumerate(rows)]
    data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, list):
        raise ValidationError("expected a list of events", "应为事件列表", field=str(p), code="events_file")
    return [event_from_mapping(r, row=i + 1) for i, r in enumerate(data)]
