"""Load and validate the visit rules (a YAML file a district can edit).

The defaults are ``gridmap/rules/default_rules.yaml``, taken from the programme
document. :func:`load_rules` reads a file, merges it over the defaults (so a
district file may set only the keys it changes) and validates every key; an
error names the key in English and Chinese.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    ElderStatus,
    EventKind,
    HazardKind,
    Severity,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
RESPONSIBILITIES_PATH = Path(__file__).with_name("responsibilities.yaml")

RISK_FACTORS = (
    "age_80_plus",
    "living_alone",
    "empty_nest",
    "disabled_severe",
    "disabled_moderate",
    "severely_handicapped",
    "family_planning_special",
    "open_hazard",
    "worse_last_visit",
    "unsafe_last_visit",
    "no_recent_visit",
    "no_first_contact",
)


@dataclass(frozen=True)
class EventRule:
    """How a calendar event of one kind raises the visits of a week."""

    remote_per_day: int = 0
    extra_in_home: int = 0
    in_home_min_score: int = 99
    extra_remote: int = 0


@dataclass(frozen=True)
class ServiceNeed:
    """A need label of 老年人服务需求 (rules ``service_needs``): who takes it and in how many days."""

    code: str
    label: str
    receiver: str  # "service_steward" or a unit's name
    due_days: int
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    """The validated visit rules. Build with :func:`load_rules`; ``raw`` keeps the merged mapping."""

    monthly_min: int
    weekly_min_willing: int
    effective_modes: frozenset[VisitMode]
    in_home_modes: frozenset[VisitMode]
    credited_roles: frozenset[VisitorRole]
    programme_statuses: frozenset[ElderStatus]
    remote_only_statuses: frozenset[ElderStatus]
    min_age: int
    no_visit_days: int
    weights: dict[str, int]
    in_home_per_week: tuple[tuple[int, int], ...]  # (min_score, count), ascending
    priority_thresholds: tuple[int, ...]
    max_gap_days: int
    service_minutes: dict[str, int]
    deadline_weekday: int
    overdue_deadline_days: int
    signed_visited_by: str
    refused_mode: str
    tekun_daily_checks: int
    tekun_mode: str
    events: dict[EventKind, EventRule]
    late_entry_days: int
    programme_start: date
    hazard_deadline_days: dict[str, int]
    hazard_severity: dict[str, Severity]
    owner_units: dict[HazardKind, str]
    referral_deadline_days: int
    emergency_ack_minutes: int
    min_in_home_minutes: int
    copied_answers_visits: int
    max_distance_m: float
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    # issue 16: follow-ups worked to closure
    hazard_due_days: dict[Severity, int] = field(default_factory=dict)
    referral_ack_hours: int = 24
    to_street_welfare: frozenset[WelfareStatus] = frozenset()
    to_street_categories: frozenset[Category] = frozenset()
    care_need_words: tuple[str, ...] = ()
    jobs_every_seconds: float = 300.0
    remind_first_contact: bool = True
    notify_channel: str = "sms"
    notify_gateway: str = "file"
    # issue 17 (A): needs as service tasks, effective visits, hazards from the answers of 五
    service_needs: tuple[ServiceNeed, ...] = ()
    service_needs_fallback: str = "村（居）委会"
    effective_answers: dict[VisitMode, tuple[str, ...]] = field(default_factory=dict)
    answer_hazards: dict[str, HazardKind] = field(default_factory=dict)

    def in_home_count(self, score: int) -> int:
        """In-home visits per week for a willing elder with this risk score."""
        count = 0
        for min_score, n in self.in_home_per_week:
            if score >= min_score:
                count = n
        return count

    def priority(self, score: int) -> int:
        """Priority 1..5 for a risk score."""
        return max(1, min(5, sum(score >= t for t in self.priority_thresholds)))


def _err(key: str, value: object, en: str, zh: str) -> ValidationError:
    return ValidationError(
        f"rules key '{key}': {en} (got {value!r})",
        f"规则项“{key}”：{zh}（当前值 {value!r}）",
        field=key,
        value=value,
        code="rules",
    )


def _get(d: dict[str, Any], key: str, path: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _err(path, None, "is missing", "缺失")
    return d[key]


def _int(d: dict[str, Any], key: str, path: str, *, lo: int = 0, hi: int | None = None) -> int:
    v = _get(d, key, path)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _err(path, v, "must be an integer", "必须是整数")
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise _err(path, v, f"must be in {rng}", f"取值须在 {rng}")
    return v


def _date(d: dict[str, Any], key: str, path: str) -> date:
    """A date key (YAML ``2024-01-01`` or an ISO string) between 2000 and 2100."""
    v = _get(d, key, path)
    if isinstance(v, datetime):
        v = v.date()
    if isinstance(v, str):
        try:
            v = date.fromisoformat(v)
        except ValueError:
            raise _err(path, v, "must be a date YYYY-MM-DD", "须为日期 YYYY-MM-DD") from None
    if not isinstance(v, date) or not date(2000, 1, 1) <= v <= date(2100, 1, 1):
        raise _err(path, v, "must be a date YYYY-MM-DD between 2000 and 2100", "须为2000至2100年间的日期 YYYY-MM-DD")
    return v


def _enum_set(d: dict[str, Any], key: str, path: str, enum: type) -> frozenset[Any]:
    v = _get(d, key, path)
    if not isinstance(v, list):
        raise _err(path, v, "must be a list", "必须是列表")
    out = set()
    for item in v:
        try:
            out.add(enum.from_label(item))
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise _err(path, item, f"unknown value; allowed: {allowed}",
                       f"未知取值；可选：{allowed}") from None
    return frozenset(out)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def validate_rules(raw: dict[str, Any]) -> Rules:
    """Validate a rules mapping (already merged over the defaults) into :class:`Rules`.

    Raises
    ------
    ValidationError
        Naming the key (``field``) in English and Chinese, code ``rules``.
    """
    if not isinstance(raw, dict):
        raise _err("<root>", raw, "must be a mapping", "必须是键值映射")
    known = set(yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8")))
    for k in raw:
        if k not in known:
            raise _err(str(k), raw[k], "is not a known rules key", "不是已知的规则项")

    monthly_min = _int(raw, "monthly_min", "monthly_min", lo=1)
    weekly_min = _int(raw, "weekly_min_willing", "weekly_min_willing", lo=1)
    effective = _enum_set(raw, "effective_modes", "effective_modes", VisitMode)
    if not effective:
        raise _err("effective_modes", [], "must name at least one mode", "至少须列出一种探访方式")
    in_home_modes = _enum_set(raw, "in_home_modes", "in_home_modes", VisitMode)
    roles = _enum_set(raw, "credited_roles", "credited_roles", VisitorRole)
    prog = _enum_set(raw, "programme_statuses", "programme_statuses", ElderStatus)
    remote_only = _enum_set(raw, "remote_only_statuses", "remote_only_statuses", ElderStatus)

    risk = _get(raw, "risk", "risk")
    min_age = _int(risk, "min_age", "risk.min_age", lo=60, hi=120)
    no_visit_days = _int(risk, "no_visit_days", "risk.no_visit_days", lo=1)
    w = _get(risk, "weights", "risk.weights")
    if not isinstance(w, dict):
        raise _err("risk.weights", w, "must be a mapping", "必须是键值映射")
    for k in w:
        if k not in RISK_FACTORS:
            raise _err(f"risk.weights.{k}", w[k], f"unknown risk factor; allowed: {', '.join(RISK_FACTORS)}",
                       "未知风险因素")
    weights = {k: _int(w, k, f"risk.weights.{k}", lo=0, hi=10) for k in RISK_FACTORS}

    table = _get(raw, "in_home_per_week", "in_home_per_week")
    if not isinstance(table, list) or not table:
        raise _err("in_home_per_week", table, "must be a non-empty list", "必须是非空列表")
    rows = []
    for i, row in enumerate(table):
        p = f"in_home_per_week[{i}]"
        rows.append((_int(row, "min_score", f"{p}.min_score", lo=0),
                     _int(row, "count", f"{p}.count", lo=0, hi=7)))
    if [r[0] for r in rows] != sorted({r[0] for r in rows}) or \
            [r[1] for r in rows] != sorted(r[1] for r in rows):
        raise _err("in_home_per_week", table, "min_score and count must increase row by row",
                   "min_score 与 count 须逐行递增")

    thr = _get(raw, "priority_thresholds", "priority_thresholds")
    if not isinstance(thr, list) or len(thr) != 5 or any(
        isinstance(t, bool) or not isinstance(t, int) for t in thr
    ) or thr != sorted(thr) or thr[0] != 0:
        raise _err("priority_thresholds", thr, "must be 5 ascending integers starting at 0",
                   "须为从0开始的5个递增整数")

    sm = _get(raw, "service_minutes", "service_minutes")
    service = {k: _int(sm, k, f"service_minutes.{k}", lo=0, hi=240) for k in sm}
    if service.get("base", 0) < 1:
        raise _err("service_minutes.base", sm.get("base"), "must be at least 1", "至少为1")

    signed = _get(raw, "signed_visited_by", "signed_visited_by")
    if signed not in ("care_station", "steward"):
        raise _err("signed_visited_by", signed, "must be care_station or steward",
                   "须为 care_station 或 steward")
    refused_mode = _get(raw, "refused_mode", "refused_mode")
    if refused_mode not in ("remote", "in_home"):
        raise _err("refused_mode", refused_mode, "must be remote or in_home", "须为 remote 或 in_home")
    dt = _get(raw, "dispersed_tekun", "dispersed_tekun")
    tekun_checks = _int(dt, "daily_checks_per_week", "dispersed_tekun.daily_checks_per_week", lo=0, hi=21)
    tekun_mode = _get(dt, "mode", "dispersed_tekun.mode")
    if tekun_mode not in ("remote", "in_home"):
        raise _err("dispersed_tekun.mode", tekun_mode, "must be remote or in_home", "须为 remote 或 in_home")

    ev_raw = _get(raw, "events", "events")
    events: dict[EventKind, EventRule] = {}
    for kind in EventKind:
        e = _get(ev_raw, kind.value, f"events.{kind.value}")
        p = f"events.{kind.value}"
        events[kind] = EventRule(
            remote_per_day=_int(e, "remote_per_day", f"{p}.remote_per_day", hi=5),
            extra_in_home=_int(e, "extra_in_home", f"{p}.extra_in_home", hi=5),
            in_home_min_score=_int(e, "in_home_min_score", f"{p}.in_home_min_score"),
            extra_remote=_int(e, "extra_remote", f"{p}.extra_remote", hi=7),
        )

    hz = _get(raw, "hazards", "hazards")
    dd = _get(hz, "deadline_days", "hazards.deadline_days")
    sev = _get(hz, "severity", "hazards.severity")
    deadline_days = {a: _int(dd, a, f"hazards.deadline_days.{a}", lo=0, hi=365)
                     for a in ("unsafe", "fairly_safe")}
    severity: dict[str, Severity] = {}
    for a in ("unsafe", "fairly_safe"):
        v = _get(sev, a, f"hazards.severity.{a}")
        try:
            severity[a] = Severity.from_label(v)  # type: ignore[assignment]
        except ValueError:
            raise _err(f"hazards.severity.{a}", v, "unknown severity", "未知严重程度") from None
    ou = _get(hz, "owner_units", "hazards.owner_units")
    owners: dict[HazardKind, str] = {}
    for kind in HazardKind:
        v = _get(ou, kind.value, f"hazards.owner_units.{kind.value}")
        if not isinstance(v, str) or not v.strip():
            raise _err(f"hazards.owner_units.{kind.value}", v, "must be a unit name", "须为责任单位名称")
        owners[kind] = v.strip()

    due_raw = _get(hz, "due_days", "hazards.due_days")
    due_days = {sv: _int(due_raw, sv.value, f"hazards.due_days.{sv.value}", lo=0, hi=365) for sv in Severity}

    rf = _get(raw, "referrals", "referrals")
    ts = _get(rf, "to_street", "referrals.to_street")
    to_welfare = _enum_set(ts, "welfare", "referrals.to_street.welfare", WelfareStatus)
    to_cats = _enum_set(ts, "categories", "referrals.to_street.categories", Category)
    words = _get(rf, "care_need_words", "referrals.care_need_words")
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        raise _err("referrals.care_need_words", words, "must be a list of words", "须为词语列表")
    jobs = _get(raw, "jobs", "jobs")
    every = _get(jobs, "every_seconds", "jobs.every_seconds")
    if isinstance(every, bool) or not isinstance(every, (int, float)) or every <= 0:
        raise _err("jobs.every_seconds", every, "must be a positive number of seconds", "须为正的秒数")
    nt = _get(raw, "notifications", "notifications")
    remind = _get(nt, "remind_first_contact", "notifications.remind_first_contact")
    if not isinstance(remind, bool):
        raise _err("notifications.remind_first_contact", remind, "must be true or false", "须为 true 或 false")
    channel = _get(nt, "channel", "notifications.channel")
    if channel not in ("sms", "wechat"):
        raise _err("notifications.channel", channel, "must be sms or wechat", "须为 sms 或 wechat")
    gateway = _get(nt, "gateway", "notifications.gateway")
    if gateway not in ("file", "log"):
        raise _err("notifications.gateway", gateway, "must be file or log", "须为 file 或 log")
    fm = _get(raw, "formality", "formality")
    dist = _get(fm, "max_distance_m", "formality.max_distance_m")
    if isinstance(dist, bool) or not isinstance(dist, (int, float)) or dist <= 0:
        raise _err("formality.max_distance_m", dist, "must be a positive number", "须为正数")
    from gridmap.care.rules import check_care_rules  # issue 17 part B: devices, stations, doctors, 重点摸排

    check_care_rules(raw)

    return Rules(
        monthly_min=monthly_min,
        weekly_min_willing=weekly_min,
        effective_modes=effective,
        in_home_modes=in_home_modes,
        credited_roles=roles,
        programme_statuses=prog,
        remote_only_statuses=remote_only,
        min_age=min_age,
        no_visit_days=no_visit_days,
        weights=weights,
        in_home_per_week=tuple(rows),
        priority_thresholds=tuple(thr),
        max_gap_days=_int(raw, "max_gap_days", "max_gap_days", lo=1, hi=6),
        service_minutes=service,
        deadline_weekday=_int(raw, "deadline_weekday", "deadline_weekday", lo=1, hi=7),
        overdue_deadline_days=_int(raw, "overdue_deadline_days", "overdue_deadline_days", lo=0, hi=6),
        signed_visited_by=signed,
        refused_mode=refused_mode,
        tekun_daily_checks=tekun_checks,
        tekun_mode=tekun_mode,
        events=events,
        late_entry_days=_int(raw, "late_entry_days", "late_entry_days", lo=0),
        programme_start=_date(raw, "programme_start", "programme_start"),
        hazard_deadline_days=deadline_days,
        hazard_severity=severity,
        owner_units=owners,
        referral_deadline_days=_int(rf, "deadline_days", "referrals.deadline_days", lo=0, hi=90),
        emergency_ack_minutes=_int(rf, "emergency_ack_minutes", "referrals.emergency_ack_minutes", lo=1),
        min_in_home_minutes=_int(fm, "min_in_home_minutes", "formality.min_in_home_minutes", lo=0),
        copied_answers_visits=_int(fm, "copied_answers_visits", "formality.copied_answers_visits", lo=2),
        max_distance_m=float(dist),
        raw=raw,
        hazard_due_days=due_days,
        referral_ack_hours=_int(rf, "ack_hours", "referrals.ack_hours", lo=1, hi=24 * 30),
        to_street_welfare=to_welfare,
        to_street_categories=to_cats,
        care_need_words=tuple(w.strip() for w in words),
        jobs_every_seconds=float(every),
        remind_first_contact=remind,
        notify_channel=str(channel),
        notify_gateway=str(gateway),
        **_service_and_effective(raw),
    )


def _service_and_effective(raw: dict[str, Any]) -> dict[str, Any]:
    """issue 17 (A): ``service_needs``, ``service_needs_fallback``, ``effective_answers``, ``answer_hazards``."""
    from gridmap.rules.visits import ANSWER_FIELDS

    sn = _get(raw, "service_needs", "service_needs")
    if not isinstance(sn, dict) or not sn:
        raise _err("service_needs", sn, "must be a non-empty mapping of need codes", "须为非空的需求映射")
    needs = []
    seen: set[str] = set()
    for code, d in sn.items():
        p = f"service_needs.{code}"
        if not isinstance(d, dict):
            raise _err(p, d, "must be a mapping with label, receiver, due_days", "须包含 label、receiver、due_days")
        label = _get(d, "label", f"{p}.label")
        receiver = _get(d, "receiver", f"{p}.receiver")
        for k, v in (("label", label), ("receiver", receiver)):
            if not isinstance(v, str) or not v.strip():
                raise _err(f"{p}.{k}", v, "must be a non-empty text", "须为非空文字")
        aliases = d.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise _err(f"{p}.aliases", aliases, "must be a list of words", "须为词语列表")
        words = [str(code), label.strip(), *[a.strip() for a in aliases]]
        for w in words:
            if w in seen:
                raise _err(p, w, "a need label, code or alias is used twice", "需求名称、代码或别名重复")
            seen.add(w)
        needs.append(ServiceNeed(code=str(code), label=label.strip(), receiver=receiver.strip(),
                                 due_days=_int(d, "due_days", f"{p}.due_days", lo=0, hi=365),
                                 aliases=tuple(a.strip() for a in aliases)))
    fallback = _get(raw, "service_needs_fallback", "service_needs_fallback")
    if not isinstance(fallback, str) or not fallback.strip():
        raise _err("service_needs_fallback", fallback, "must be a unit name", "须为单位名称")
    ea = _get(raw, "effective_answers", "effective_answers")
    if not isinstance(ea, dict):
        raise _err("effective_answers", ea, "must be a mapping of visit modes", "须为探访方式映射")
    allowed = [*ANSWER_FIELDS, "needs"]
    effective: dict[VisitMode, tuple[str, ...]] = {}
    for mode, items in ea.items():
        try:
            m = VisitMode(VisitMode.from_label(str(mode)))
        except ValueError:
            raise _err(f"effective_answers.{mode}", mode, "unknown visit mode", "未知的探访方式") from None
        if not isinstance(items, list) or any(i not in allowed for i in items):
            raise _err(f"effective_answers.{mode}", items, f"must list items of: {', '.join(allowed)}",
                       "须为第五部分的项目列表")
        effective[m] = tuple(items)
    ah = _get(raw, "answer_hazards", "answer_hazards")
    if not isinstance(ah, dict):
        raise _err("answer_hazards", ah, "must be a mapping answer -> hazard kind", "须为 答案项 -> 隐患类别 的映射")
    hazards: dict[str, HazardKind] = {}
    for k, v in ah.items():
        if k not in ANSWER_FIELDS:
            raise _err(f"answer_hazards.{k}", k, "not an answer of section 五", "不是第五部分的项目")
        try:
            hazards[k] = HazardKind(HazardKind.from_label(str(v)))
        except ValueError:
            raise _err(f"answer_hazards.{k}", v, "unknown hazard kind", "未知的隐患类别") from None
    return {"service_needs": tuple(needs), "service_needs_fallback": fallback.strip(),
            "effective_answers": effective, "answer_hazards": hazards}


@lru_cache(maxsize=1)
def _defaults_raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def load_rules(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Rules:
    """Load the rules: the defaults, then the file at ``path``, then ``overrides``.

    Parameters
    ----------
    path
        A YAML file of the district (may set only some keys), or None: the file named by the
        environment variable ``GRIDMAP_RULES`` if set (how ``gridmap serve`` and its scheduler
        get a district's rules), else the defaults.
    overrides
        A mapping merged last (handy in tests).

    Raises
    ------
    ValidationError
        For a malformed file or a bad key, naming the key.
    """
    raw = _defaults_raw()
    if path is None and os.environ.get("GRIDMAP_RULES"):
        path = os.environ["GRIDMAP_RULES"]
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(
                f"cannot read the rules file {path}: {exc}",
                f"无法读取规则文件 {path}：{exc}",
                field=str(path), code="rules_file",
            ) from exc
        if not isinstance(loaded, dict):
            raise _err("<root>", loaded, "must be a mapping", "必须是键值映射")
        raw = _merge(raw, loaded)
    if overrides:
        raw = _merge(raw, overrides)
    return validate_rules(copy.deepcopy(raw))


def load_responsibilities() -> list[dict[str, Any]]:
    """The 20 rows of 附件1-1 (序号 ``number``, 责任单位 ``unit``, 主要任务 ``task``)."""
    return yaml.safe_load(RESPONSIBILITIES_PATH.read_text(encoding="utf-8"))
