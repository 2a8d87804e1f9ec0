"""The rules of issue 17 part B, read from the rules YAML (keys ``devices``, ``stations``,
``family_doctors``, ``key_survey``) and checked: an error names the key in English and Chinese.

:func:`check_care_rules` runs when the rules are loaded (:func:`gridmap.rules.config.validate_rules`);
:func:`care_rules` gives the parsed :class:`CareRules` of a :class:`~gridmap.rules.config.Rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    DeviceKind,
    StationKind,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)

#: The device kinds of the work lists (CLI ``--kind``) and the stored :class:`DeviceKind` of each.
KIND_CODES: dict[str, DeviceKind] = {
    "smoke_alarm": DeviceKind.SMOKE_ALARM,
    "one_key": DeviceKind.EMERGENCY_TERMINAL,
    "fire_kit": DeviceKind.FIRE_KIT,
    "home_safety": DeviceKind.HOME_SAFETY,
}
#: Stored kind → work-list kind (other stored kinds keep their own code).
STORED_TO_KIND: dict[str, str] = {v.value: k for k, v in KIND_CODES.items()}


@dataclass(frozen=True)
class DeviceRule:
    """Who is entitled to one device kind and who installs it."""

    kind: str
    label: str
    installer: str
    all: bool = False
    min_age: int | None = None
    hukou_district: str | None = None
    categories: frozenset[Category] = frozenset()
    welfare: frozenset[WelfareStatus] = frozenset()
    on_request_own_cost: bool = False


@dataclass(frozen=True)
class AlarmRule:
    """What an alarm type from a monitoring platform becomes."""

    alarm_type: str
    label: str
    emergency: bool = False
    need: str = ""
    device_state: str | None = None
    ignore: bool = False


@dataclass(frozen=True)
class CareRules:
    """The parsed sections."""

    devices: dict[str, DeviceRule]
    alarms: dict[str, AlarmRule]
    station_weekly_min: int
    station_roles: frozenset[VisitorRole]
    steward_roles: frozenset[VisitorRole]
    doctor_point_kinds: frozenset[StationKind]
    survey_min_age: int
    survey_categories: frozenset[Category]
    survey_modes: frozenset[VisitMode]


def _err(key: str, value: object, en: str, zh: str) -> ValidationError:
    return ValidationError(f"rules key '{key}': {en} (got {value!r})", f"规则项“{key}”：{zh}（当前值 {value!r}）",
                           field=key, value=value, code="rules")


def _map(d: Any, key: str, path: str) -> dict[str, Any]:
    if not isinstance(d, dict) or key not in d:
        raise _err(path, None, "is missing", "缺失")
    v = d[key]
    if not isinstance(v, dict):
        raise _err(path, v, "must be a mapping", "必须是键值映射")
    return v


def _text(d: dict[str, Any], key: str, path: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _err(path, v, "must be a non-empty text", "须为非空文字")
    return v.strip()


def _bool(d: dict[str, Any], key: str, path: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise _err(path, v, "must be true or false", "须为 true 或 false")
    return v


def _int(d: dict[str, Any], key: str, path: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _err(path, v, f"must be an integer in {lo}..{hi}", f"须为 {lo}..{hi} 之间的整数")
    return v


def _enums(d: dict[str, Any], key: str, path: str, enum: type) -> frozenset[Any]:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise _err(path, v, "must be a list", "必须是列表")
    out = set()
    for item in v:
        try:
            out.add(enum.from_label(item))
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise _err(path, item, f"unknown value; allowed: {allowed}", f"未知取值；可选：{allowed}") from None
    return frozenset(out)


_DEVICE_KEYS = {"label", "installer", "all", "min_age", "hukou_district", "categories", "welfare",
                "on_request_own_cost"}
_ALARM_KEYS = {"label", "emergency", "need", "device_state", "ignore"}


def check_care_rules(raw: dict[str, Any]) -> CareRules:
    """Parse and check the four sections of a merged rules mapping.

    Raises
    ------
    ValidationError
        Naming the key, code ``rules``.
    """
    dv = _map(raw, "devices", "devices")
    kinds = _map(dv, "kinds", "devices.kinds")
    devices: dict[str, DeviceRule] = {}
    for k, spec in kinds.items():
        p = f"devices.kinds.{k}"
        if k not in KIND_CODES:
            raise _err(p, k, f"unknown device kind; allowed: {', '.join(KIND_CODES)}",
                       f"未知设备类型；可选：{', '.join(KIND_CODES)}")
        if not isinstance(spec, dict):
            raise _err(p, spec, "must be a mapping", "必须是键值映射")
        for extra in set(spec) - _DEVICE_KEYS:
            raise _err(f"{p}.{extra}", spec[extra], "is not a known key", "不是已知的规则项")
        rule = DeviceRule(
            kind=k, label=_text(spec, "label", f"{p}.label"), installer=_text(spec, "installer", f"{p}.installer"),
            all=_bool(spec, "all", f"{p}.all"),
            min_age=_int(spec, "min_age", f"{p}.min_age", 60, 120) if "min_age" in spec else None,
            hukou_district=_text(spec, "hukou_district", f"{p}.hukou_district") if "hukou_district" in spec else None,
            categories=_enums(spec, "categories", f"{p}.categories", Category),
            welfare=_enums(spec, "welfare", f"{p}.welfare", WelfareStatus),
            on_request_own_cost=_bool(spec, "on_request_own_cost", f"{p}.on_request_own_cost"))
        if not (rule.all or rule.min_age is not None or rule.categories or rule.welfare):
            raise _err(p, spec, "names nobody: give all, min_age, categories or welfare",
                       "未规定配备对象：须给出 all、min_age、categories 或 welfare")
        devices[k] = rule
    missing = set(KIND_CODES) - set(devices)
    if missing:
        raise _err(f"devices.kinds.{sorted(missing)[0]}", None, "is missing", "缺失")
    alarms: dict[str, AlarmRule] = {}
    for a, spec in _map(dv, "alarms", "devices.alarms").items():
        p = f"devices.alarms.{a}"
        if not isinstance(spec, dict):
            raise _err(p, spec, "must be a mapping", "必须是键值映射")
        for extra in set(spec) - _ALARM_KEYS:
            raise _err(f"{p}.{extra}", spec[extra], "is not a known key", "不是已知的规则项")
        ignore = _bool(spec, "ignore", f"{p}.ignore")
        state = spec.get("device_state")
        if state is not None and state not in ("faulty", "installed"):
            raise _err(f"{p}.device_state", state, "must be faulty or installed", "须为 faulty 或 installed")
        alarms[str(a)] = AlarmRule(
            alarm_type=str(a), label=_text(spec, "label", f"{p}.label"),
            emergency=_bool(spec, "emergency", f"{p}.emergency"),
            need="" if ignore else _text(spec, "need", f"{p}.need"), device_state=state, ignore=ignore)
    st = _map(raw, "stations", "stations")
    fd = _map(raw, "family_doctors", "family_doctors")
    ks = _map(raw, "key_survey", "key_survey")
    out = CareRules(
        devices=devices, alarms=alarms,
        station_weekly_min=_int(st, "weekly_min", "stations.weekly_min", 1, 7),
        station_roles=_enums(st, "station_roles", "stations.station_roles", VisitorRole),
        steward_roles=_enums(st, "steward_roles", "stations.steward_roles", VisitorRole),
        doctor_point_kinds=_enums(fd, "point_kinds", "family_doctors.point_kinds", StationKind),
        survey_min_age=_int(ks, "min_age", "key_survey.min_age", 60, 120),
        survey_categories=_enums(ks, "categories", "key_survey.categories", Category),
        survey_modes=_enums(ks, "assessed_modes", "key_survey.assessed_modes", VisitMode),
    )
    if out.station_roles & out.steward_roles:
        raise _err("stations.station_roles", sorted(str(r) for r in out.station_roles & out.steward_roles),
                   "a role cannot be both the station's and the visit steward's", "同一角色不能既属驿站又属探访管家")
    if not out.doctor_point_kinds:
        raise _err("family_doctors.point_kinds", [], "must name at least one kind", "至少须列出一种机构")
    return out


_CACHE: dict[int, tuple[Any, CareRules]] = {}


def care_rules(rules: Any = None) -> CareRules:
    """The :class:`CareRules` of ``rules`` (a :class:`~gridmap.rules.config.Rules`; default: the loaded rules)."""
    if rules is None:
        from gridmap.rules.config import load_rules

        rules = load_rules()
    key = id(rules.raw)
    got = _CACHE.get(key)
    if got is None or got[0] is not rules.raw:
        got = _CACHE[key] = (rules.raw, check_care_rules(rules.raw))
    return got[1]
