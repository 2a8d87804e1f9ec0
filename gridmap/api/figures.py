"""What the read API answers: indicator rows, overdue elders and the change feed, within a user's scope.

No Flask here (the HTTP layer is :mod:`gridmap.api.views`) and no SQL of its
own beyond :mod:`gridmap.api.store`. The figures are those of ``gridmap report``
(:func:`gridmap.rules.cli.report_command`) and the dashboard's cards: the
register is read with :func:`gridmap.rules.store.indicator_inputs` for the
same window as the report (from the earlier of the week's Monday and its
month's first day, to its Sunday), the elders are cut to the caller's scope
(:func:`gridmap.access.filter_frame`) and the street asked for, and
:func:`gridmap.rules.indicators.compute_indicators` computes them: no second
implementation of any indicator. Overdue elders are the ``overdue`` rows of
:func:`gridmap.rules.indicators.elder_status` on the same inputs (so the list
is exactly as long as the ``overdue`` figure), with names and addresses
masked by :mod:`gridmap.access.policy`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from gridmap._errors import GridmapError
from gridmap.access import User, filter_frame, mask_value
from gridmap.api import store as api_store
from gridmap.domain.enums import Category
from gridmap.rules.config import Rules
from gridmap.rules.indicators import LEVELS, compute_indicators, elder_status, period_of
from gridmap.rules.requirements import parse_week
from gridmap.rules.store import indicator_inputs

__all__ = [
    "DISTRICT", "ApiError", "ChangesQuery", "IndicatorQuery", "OverdueQuery", "change_items", "indicator_rows",
    "overdue_items", "parse_changes", "parse_indicators", "parse_overdue",
]

#: The name of the one row of level ``district``.
DISTRICT = "海淀区"
_WEEK = re.compile(r"[0-9]{4}-W[0-9]{2}")  # ASCII digits only (\\d matches full-width ones)
#: Most overdue elders one call returns, and the default.
MAX_LIMIT = 100_000
DEFAULT_OVERDUE_LIMIT = 10_000
#: Most changes one call returns, and the default.
MAX_CHANGES = 1000
DEFAULT_CHANGES = 500


class ApiError(GridmapError):
    """A request the API refuses: ``status`` 400 (bad parameter) or 403 (outside the caller's area)."""

    def __init__(self, message_en: str, message_zh: str, *, status: int = 400, field: str | None = None,
                 code: str = "invalid") -> None:
        super().__init__(message_en, message_zh)
        self.status = status
        self.field = field
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body: ``error`` (English), ``error_zh`` (Chinese), ``field``, ``code``."""
        return {"error": self.message_en, "error_zh": self.message_zh, "field": self.field, "code": self.code}


# ------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class IndicatorQuery:
    """``/indicators``: the ISO week, the street (``None`` = every street the caller sees), the level."""

    week: str
    street: str | None
    level: str


@dataclass(frozen=True)
class OverdueQuery:
    """``/overdue``: the ISO week, the street, how many items from which position."""

    week: str
    street: str | None
    limit: int
    offset: int


@dataclass(frozen=True)
class ChangesQuery:
    """``/changes``: changes after sequence number ``since``, at most ``limit``."""

    since: int
    limit: int


def _single(args: Mapping[str, Sequence[str]], allowed: Sequence[str]) -> dict[str, str]:
    """One value per known parameter; unknown or repeated parameters refused."""
    unknown = sorted(k for k in args if k not in allowed)
    if unknown:
        names = ", ".join(unknown)
        raise ApiError(f"unknown parameter(s): {names}; allowed: {', '.join(allowed)}",
                       f"未知参数：{names}；可用参数：{', '.join(allowed)}", field=unknown[0], code="unknown_parameter")
    out = {}
    for k, values in args.items():
        if len(values) != 1:
            raise ApiError(f"parameter {k} given {len(values)} times; give it once",
                           f"参数 {k} 出现了{len(values)}次，只能给一次", field=k, code="repeated_parameter")
        out[k] = values[0]
    return out


def _week(value: str | None) -> str:
    if value is None or value == "":
        raise ApiError("week is required, as an ISO week like 2026-W49", "缺少参数 week（ISO 周次，如 2026-W49）",
                       field="week", code="week_required")
    text = value.strip().upper()
    if not _WEEK.fullmatch(text):
        raise ApiError(f"week {value!r} is not an ISO week like 2026-W49 (YYYY-Www)",
                       f"week“{value}”不是 ISO 周次（格式 YYYY-Www，如 2026-W49）", field="week", code="week")
    try:
        parse_week(text)
    except (GridmapError, ValueError):
        raise ApiError(f"week {value!r} does not exist (that year has no such week)",
                       f"周次“{value}”不存在（该年没有这一周）", field="week", code="week") from None
    return text


def _street(value: str | None, engine: Engine, user: User) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if name not in set(api_store.street_names(engine)):
        raise ApiError(f"unknown street {value!r} (give the street's full name, e.g. 学院路街道)",
                       f"未知街道“{value}”（请使用街道全称，如 学院路街道）", field="street", code="unknown_street")
    sc = user.scope
    if not sc.is_all and name not in set(sc.street_names or ()):
        raise ApiError(f"street {name} is outside your area", f"街道“{name}”不在您的权限范围内", status=403,
                       field="street", code="outside_scope")
    return name


def _int(value: str | None, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise ApiError(f"{field} {value!r} is not a whole number ({low} to {high})",
                       f"{field}“{value}”不是整数（{low}至{high}）", field=field, code=field)
    n = int(text)
    if not low <= n <= high:
        raise ApiError(f"{field} {n} is out of range ({low} to {high})", f"{field} {n} 超出范围（{low}至{high}）",
                       field=field, code=field)
    return n


def parse_indicators(args: Mapping[str, Sequence[str]], engine: Engine, user: User) -> IndicatorQuery:
    """Check the parameters of ``/indicators`` (``week``; optional ``street``, ``level``).

    ``level`` defaults to ``district`` without a street and to ``street`` with one.
    """
    a = _single(args, ("week", "street", "level"))
    week = _week(a.get("week"))
    street = _street(a.get("street"), engine, user)
    level = a.get("level")
    if level is None:
        level = "street" if street else "district"
    elif level not in LEVELS:
        raise ApiError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}",
                       f"未知统计层级“{level}”；可选 {', '.join(LEVELS)}", field="level", code="level")
    return IndicatorQuery(week, street, level)


def parse_overdue(args: Mapping[str, Sequence[str]], engine: Engine, user: User) -> OverdueQuery:
    """Check the parameters of ``/overdue`` (``week``; optional ``street``, ``limit``, ``offset``)."""
    a = _single(args, ("week", "street", "limit", "offset"))
    return OverdueQuery(_week(a.get("week")), _street(a.get("street"), engine, user),
                        _int(a.get("limit"), "limit", DEFAULT_OVERDUE_LIMIT, 1, MAX_LIMIT),
                        _int(a.get("offset"), "offset", 0, 0, 10**9))


def parse_changes(args: Mapping[str, Sequence[str]]) -> ChangesQuery:
    """Check the parameters of ``/changes`` (optional ``since``, default 0; ``limit``)."""
    a = _single(args, ("since", "limit"))
    return ChangesQuery(_int(a.get("since"), "since", 0, 0, 2**62),
                        _int(a.get("limit"), "limit", DEFAULT_CHANGES, 1, MAX_CHANGES))


# ------------------------------------------------------------------ figures


def _inputs(engine: Engine, user: User, week: str, street: str | None,
            rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The report's inputs for the week (and street), cut to the caller's scope."""
    period = period_of(week, None)
    elders, visits, hazards, referrals = indicator_inputs(
        engine, min(period.start, period.month_start), period.end, street=street, rules=rules)
    if not user.scope.is_all:
        elders = filter_frame(elders, user.scope, engine=engine)
        ids = elders["elder_id"]
        visits = visits[visits["elder_id"].isin(ids)]
        hazards = hazards[hazards["elder_id"].isin(ids)]
        referrals = referrals[referrals["elder_id"].isin(ids)]
    return elders, visits, hazards, referrals


def _num(value: Any) -> float | None:
    """A finite float, or ``None`` (JSON has no NaN)."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _count(value: Any) -> int:
    x = _num(value)
    return int(round(x)) if x is not None else 0


def _rate(value: Any, denominator: int) -> dict[str, Any]:
    """``{"value", "numerator", "denominator"}`` of a share (the numerator recovered from the share)."""
    v = _num(value)
    den = int(denominator)
    return {"value": v if den else None, "numerator": int(round(v * den)) if v is not None and den else 0,
            "denominator": den}


def _term_needed(elders: pd.DataFrame, key: str, rules: Rules) -> pd.Series:
    """Per unit: elders in the programme who should have a one-key terminal (80+ or 计生特殊), as in
    ``compute_indicators``' ``terminal_coverage``."""
    prog = {str(s) for s in rules.programme_statuses}
    e = elders[elders["status"].astype(str).isin(prog)].assign(district=DISTRICT)
    fps = pd.Series([isinstance(c, (list, tuple, set, frozenset)) and Category.FAMILY_PLANNING_SPECIAL.value
                     in {str(x) for x in c} for c in e["categories"].to_numpy()], index=e.index, dtype=bool)
    need = (e["age"].fillna(0) >= rules.min_age) | fps
    return need.groupby(e[key]).sum()


#: Levels at which the rows carry the 接诉即办 measures (``followups``).
FOLLOWUP_LEVELS = ("district", "street", "community")


def followup_measures(engine: Engine, elders: pd.DataFrame, week: str, level: str,
                      today: Any = None) -> dict[str, dict[str, Any]]:
    """Per unit of ``level`` (district, street, community): the 接诉即办 measures of the week as of today
    (:mod:`gridmap.followups.measures`) over the hazards and referrals of ``elders`` (the caller's scope).

    Keys: hazards_found, hazards_fixed, fix_rate, fix_days, hazards_overdue, referrals_new, response_rate,
    resolution_rate, satisfaction_rate, close_days, referrals_overdue, escalated (rates and means null
    when there is nothing to measure).
    """
    from datetime import timedelta, timezone

    from gridmap.followups.measures import hazard_measures, referral_measures
    from gridmap.followups.store import read_hazard_frame, read_referral_frame

    if level not in FOLLOWUP_LEVELS:
        return {}
    ids = set(elders["elder_id"].dropna().astype(int))
    h = read_hazard_frame(engine)
    r = read_referral_frame(engine)
    h, r = h[h["elder_id"].isin(ids)], r[r["elder_id"].isin(ids)]
    as_of = today or datetime.now(timezone(timedelta(hours=8))).date()
    hm = hazard_measures(h, week=week, as_of=as_of, by=level)
    rm = referral_measures(r, week=week, as_of=as_of, by=level)
    out: dict[str, dict[str, Any]] = {}
    for unit in set(map(str, hm.index)) | set(map(str, rm.index)):
        hr = hm.loc[unit] if unit in hm.index else None
        rr = rm.loc[unit] if unit in rm.index else None
        out[unit] = {
            "hazards_found": _count(hr["found"]) if hr is not None else 0,
            "hazards_fixed": _count(hr["fixed"]) if hr is not None else 0,
            "fix_rate": _num(hr["fix_rate"]) if hr is not None else None,
            "fix_days": _num(hr["fix_days"]) if hr is not None else None,
            "hazards_overdue": _count(hr["overdue"]) if hr is not None else 0,
            "referrals_new": _count(rr["new"]) if rr is not None else 0,
            "response_rate": _num(rr["response_rate"]) if rr is not None else None,
            "resolution_rate": _num(rr["resolution_rate"]) if rr is not None else None,
            "satisfaction_rate": _num(rr["satisfaction_rate"]) if rr is not None else None,
            "close_days": _num(rr["close_days"]) if rr is not None else None,
            "referrals_overdue": _count(rr["overdue"]) if rr is not None else 0,
            "escalated": _count(rr["escalated"]) if rr is not None else 0,
        }
    return out


_NO_FOLLOWUPS = {"hazards_found": 0, "hazards_fixed": 0, "fix_rate": None, "fix_days": None, "hazards_overdue": 0,
                 "referrals_new": 0, "response_rate": None, "resolution_rate": None, "satisfaction_rate": None,
                 "close_days": None, "referrals_overdue": 0, "escalated": 0}


def indicator_rows(engine: Engine, user: User, q: IndicatorQuery, rules: Rules) -> list[dict[str, Any]]:
    """The indicators of the week at ``q.level`` over the elders the caller sees (of ``q.street``).

    One dict per unit, laggards first (as ``gridmap report``): ``area`` (the
    unit's name: 海淀区, the street, community, grid code or steward
    ``name（code）``), ``area_id`` (grid and steward levels), ``weekly_rate``,
    ``monthly_rate``, ``smoke_alarm_coverage``, ``terminal_coverage`` as
    ``{"value", "numerator", "denominator"}``, and the counts ``overdue``,
    ``open_hazards``, ``pending_referrals`` and the others of
    :data:`gridmap.rules.indicators.INDICATOR_LABELS`; at the district, street and community levels
    also ``followups``, the 接诉即办 measures of the week as of today (:func:`followup_measures`).
    """
    elders, visits, hazards, referrals = _inputs(engine, user, q.week, q.street, rules)
    if elders.empty:
        return []
    if visits.empty:  # compute_indicators needs at least an empty frame with the visit columns it reads
        visits = visits.reindex(columns=list(dict.fromkeys([*visits.columns, "id", "elder_id", "visited_on",
                                                            "mode", "effective", "visitor_role"])))
    ind = compute_indicators(elders, visits, hazards, referrals, week=q.week, level=q.level, rules=rules)
    key = LEVELS[q.level]
    term = _term_needed(elders, key, rules)
    nweeks = len(ind.attrs["period"].weeks)
    names: dict[Any, str] = {}
    if q.level == "steward":
        names = api_store.steward_labels(engine)
    elif q.level == "grid":
        names = api_store.grid_codes(engine)
    fmeas = followup_measures(engine, elders, q.week, q.level)
    rows = []
    for unit, r in ind.iterrows():
        elders_n = _count(r.get("elders"))
        willing = _count(r.get("willing"))
        row: dict[str, Any] = {"area": names.get(unit, str(unit)) if names else str(unit)}
        if q.level in ("steward", "grid"):
            row["area_id"] = int(unit) if _num(unit) is not None else None
        by_mode = {c.removeprefix("visits_"): _count(r[c]) for c in ind.columns
                   if c.startswith("visits_")}
        row.update({
            "elders": elders_n,
            "willing": willing,
            "weekly_rate": _rate(r.get("weekly_rate"), willing * nweeks),
            "monthly_rate": _rate(r.get("monthly_rate"), elders_n),
            "overdue": _count(r.get("overdue")),
            "overdue_days_mean": _num(r.get("overdue_days_mean")),
            "overdue_days_max": _num(r.get("overdue_days_max")),
            "open_hazards": _count(r.get("hazards_open")),
            "hazards_overdue": _count(r.get("hazards_overdue")),
            "hazards_closed": _count(r.get("hazards_closed")),
            "hazard_days_to_close": _num(r.get("hazard_days_to_close")),
            "pending_referrals": _count(r.get("referrals_open")),
            "referrals_overdue": _count(r.get("referrals_overdue")),
            "visits": _count(r.get("visits")),
            "visits_by_mode": by_mode,
            "smoke_alarm_coverage": _rate(r.get("smoke_alarm_coverage"), elders_n),
            "terminal_coverage": _rate(r.get("terminal_coverage"), _count(term.get(unit, 0))),
            "missing_first_contact": _count(r.get("missing_first_contact")),
            "missing_steward": _count(r.get("missing_steward")),
            "missing_location": _count(r.get("missing_location")),
            "short_visits": _count(r.get("short_visits")),
            "copied_answers": _count(r.get("copied_answers")),
            "far_visits": _count(r.get("far_visits")),
        })
        if q.level in FOLLOWUP_LEVELS:
            row["followups"] = fmeas.get(str(unit), dict(_NO_FOLLOWUPS))
        rows.append(row)
    return rows


def overdue_items(engine: Engine, user: User, q: OverdueQuery, rules: Rules) -> tuple[list[dict[str, Any]], int]:
    """Overdue elders of the week (most overdue first) the caller sees, masked; and how many there are.

    Each item: ``elder_id`` (the store's id, as ``gridmap visits record`` takes it),
    ``name`` and ``address`` masked, ``street``, ``community``, ``grid``,
    ``steward`` (``name（code）``), ``steward_id``, ``last_visit`` (ISO date or
    ``null``), ``overdue_days``, ``willing``.
    """
    elders, visits, _h, _r = _inputs(engine, user, q.week, q.street, rules)
    if elders.empty:
        return [], 0
    st = elder_status(elders, visits, period_of(q.week, None), rules)
    od = st[st["overdue"]].sort_values(["overdue_days", "elder_id"], ascending=[False, True], kind="stable")
    total = len(od)
    od = od.iloc[q.offset:q.offset + q.limit]
    if od.empty:
        return [], total
    ids = od["elder_id"].astype(int).tolist()
    people = api_store.elder_names(engine, ids)
    stewards = api_store.steward_labels(engine)
    grids = api_store.grid_codes(engine)
    items = []
    for r in od.itertuples(index=False):
        eid = int(r.elder_id)
        name, address = people.get(eid, (None, None))
        sid = int(r.steward_id) if _num(r.steward_id) is not None else None
        gid = int(r.grid_id) if _num(r.grid_id) is not None else None
        last = r.last_visit
        items.append({
            "elder_id": eid,
            "name": mask_value("name", name),
            "address": mask_value("address", address),
            "street": r.street if isinstance(r.street, str) else None,
            "community": r.community if isinstance(r.community, str) else None,
            "grid": grids.get(gid) if gid is not None else None,
            "steward": stewards.get(sid) if sid is not None else None,
            "steward_id": sid,
            "last_visit": pd.Timestamp(last).date().isoformat() if last is not None and not pd.isna(last) else None,
            "overdue_days": int(r.overdue_days),
            "willing": bool(r.willing),
        })
    return items, total


# ------------------------------------------------------------------ change feed


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


#: A gap in the sequence numbers younger than this may be a write still committing: the feed stops before it.
GAP_WAIT_S = 10.0


def change_items(engine: Engine, user: User, q: ChangesQuery, *,
                 now: datetime | None = None) -> tuple[list[dict[str, Any]], int, bool]:
    """Changes after ``q.since`` the caller may know of, the last sequence number read, whether more follow.

    A whole-district caller sees every change. Any other caller sees a change
    when it names a street of their area (``scope.street_names``) or an elder
    they see, with its streets and elder ids cut to those. The sequence number
    returned is that of the last change read (shown or not): a client polls on
    with ``since`` set to it. Sequence numbers are handed out before commit, so
    a missing number followed by a change younger than :data:`GAP_WAIT_S` may
    be a write still committing: the answer stops before such a gap (``more``
    is then true), so that a client polling on never skips a change; an older
    gap is a rolled-back write and is passed over.
    """
    from gridmap.access import visible_elder_ids
    from gridmap.store.changes import read_changes

    now = now or datetime.now(UTC)
    rows = list(read_changes(engine, q.since, q.limit))
    last = q.since
    more = len(rows) >= q.limit
    sc = user.scope
    streets = None if sc.is_all else set(sc.street_names or ())
    ids = None if sc.is_all else (visible_elder_ids(engine, sc) or frozenset())
    items = []
    for row in rows:
        seq = int(_field(row, "seq"))
        at = _field(row, "at")
        if isinstance(at, datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # SQLite gives naive UTC
        if seq != last + 1 and isinstance(at, datetime) and (now - at).total_seconds() < GAP_WAIT_S:
            more = True
            break
        last = seq
        st_names = [str(s) for s in (_field(row, "streets") or [])]
        elder_ids = [int(e) for e in (_field(row, "elders") or []) if _num(e) is not None]
        if streets is not None and ids is not None:
            st_names = [s for s in st_names if s in streets]
            elder_ids = [e for e in elder_ids if e in ids]
            if not st_names and not elder_ids:
                continue
        kind = _field(row, "kind")
        items.append({
            "seq": seq,
            "at": at.isoformat() if hasattr(at, "isoformat") else (str(at) if at is not None else None),
            "kind": str(getattr(kind, "value", kind)),
            "streets": st_names,
            "elders": elder_ids,
            "many": bool(_field(row, "many")),
        })
    return items, last, more
