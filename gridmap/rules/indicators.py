"""The programme's indicators per district, street, community, grid or steward, for a week or a month.

Pure pandas on DataFrames the store layer provides (:mod:`gridmap.rules.store`):

``elders``
    elder_id, street, community, grid_id, steward_id, status, willing, age,
    categories (list), devices (list of installed kinds), has_first_contact,
    has_location, lon, lat.
``visits``
    id, elder_id, visited_on, mode, effective, visitor_role, started_at,
    ended_at, gps_lon, gps_lat, and the answer columns of section 五.
``hazards``
    id, elder_id, status, opened_on, deadline, closed_on.
``referrals``
    id, elder_id, status, emergency, opened_at, deadline, closed_at.

Definitions (the document's targets in brackets):

* 周探访率 weekly_rate [100%]: over the ISO weeks of the period, the share of
  (willing elder in the programme, week) pairs with at least one effective visit;
* for the current week (``as_of`` inside it) the period ends on ``as_of`` and
  本周进度 week_progress is the week's visited elders over those due by today
  (due_by_today: the willing elders times the share of the week's working days
  completed before ``as_of``, :func:`due_by_today`), beside the full-week rate;
* 月有效探访率 monthly_rate: share of elders in the programme with at least one
  effective visit in the month (the month of the period; for a week, the month of
  its Thursday, counted up to the week's Sunday);
* 逾期探访 overdue: elders whose last effective visit is more than 7 days (willing)
  or 31 days (monthly contact only) before the end of the period; days overdue
  beyond that interval;
* hazards open / overdue at the end of the period, closed within it, mean days
  to close; referrals open / overdue. Overdue (:mod:`gridmap.followups.measures`):
  the deadline (its date in Beijing) is before the as-of date — ``as_of`` when
  given and inside the period (a week or a month still running), else the
  period's last day — and the case is not closed by then: nothing is overdue
  before its due date;
* device coverage: smoke alarms among all elders, one-key terminals among 80+ and
  计划生育特殊家庭 elders; register completeness; 流于形式 signs: in-home visits
  shorter than ``formality.min_in_home_minutes``, answers identical to the previous
  ``copied_answers_visits - 1`` visits, GPS (or the phone's position at saving, given with consent:
  ``position_distance_m``, issue 18) farther than ``max_distance_m`` from home.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from gridmap._errors import ValidationError
from gridmap.domain.enums import Category, DeviceKind
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.requirements import month_end, parse_week, week_of
from gridmap.rules.visits import ANSWER_FIELDS

LEVELS = {"district": "district", "street": "street", "community": "community",
          "grid": "grid_id", "steward": "steward_id"}

#: Chinese column names of the indicators (report headers).
INDICATOR_LABELS: dict[str, str] = {
    "week_progress": "本周进度（对截至今日应访）",
    "visited_week": "本周已探访",
    "due_by_today": "截至今日应访",
    "elders": "在册老人",
    "willing": "有意愿接受探访",
    "weekly_rate": "周探访率",
    "monthly_rate": "月有效探访率",
    "overdue": "逾期探访",
    "overdue_days_mean": "平均逾期天数",
    "overdue_days_max": "最长逾期天数",
    "visits": "探访次数",
    "hazards_open": "未整改隐患",
    "hazards_overdue": "逾期未整改隐患",
    "hazards_closed": "本期整改隐患",
    "hazard_days_to_close": "平均整改天数",
    "referrals_open": "待处理转介",
    "referrals_overdue": "逾期转介",
    "smoke_alarm_coverage": "烟感覆盖率",
    "terminal_coverage": "一键式终端覆盖率（80岁以上及计生特殊）",
    "missing_first_contact": "缺第一联系人",
    "missing_steward": "缺探访管家",
    "missing_location": "缺位置",
    "short_visits": "过短上门探访",
    "copied_answers": "答案重复照抄",
    "far_visits": "定位偏离住址",
}


@dataclass(frozen=True)
class Period:
    """The time window of an indicator computation."""

    start: date
    end: date  # inclusive; "as of" date
    weeks: tuple[str, ...]
    month_start: date
    month_end: date  # inclusive, clipped to ``end``
    label: str


def working_days_done(week: str, as_of: date, work_days: int = 5) -> int:
    """Working days (Monday to Friday) of ``week`` completed before ``as_of`` (0 on its Monday, 5 from Saturday)."""
    monday, sunday = parse_week(week)
    if as_of <= monday:
        return 0
    if as_of > sunday:
        return work_days
    return min((as_of - monday).days, work_days)


def due_by_today(willing: int, week: str, as_of: date, work_days: int = 5) -> int:
    """Weekly visits due by ``as_of``: the willing elders' weekly visits, spread evenly over the working days.

    每周有效探访不少于1次: by the start of ``as_of`` the share of the week's working
    days already completed (Monday: none, Thursday: three of five) of the week's
    visits should be done. Rounded up.
    """
    done = working_days_done(week, as_of, work_days)
    return -(-willing * done // work_days)


def default_week(today: date) -> str:
    """The week a dashboard opens on: the current one once a working day of it is completed, else the last one.

    On a Monday nothing of the week is due yet, so the last complete week is
    shown (the current week is one click away).
    """
    if working_days_done(week_of(today), today) == 0:
        return week_of(today - timedelta(days=7))
    return week_of(today)


def period_of(week: str | None = None, month: str | None = None) -> Period:
    """A :class:`Period` for an ISO week (``2026-W49``) or a month (``2026-12``)."""
    if (week is None) == (month is None):
        raise ValidationError("give exactly one of week or month", "须且仅须指定周次或月份",
                              field="period", code="period")
    if week is not None:
        monday, sunday = parse_week(week)
        thursday = monday + timedelta(days=3)
        ms = thursday.replace(day=1)
        return Period(monday, sunday, (week.upper(),), ms, min(month_end(ms), sunday), week.upper())
    try:
        ms = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValidationError("expected a month like 2026-12", "月份格式应为 2026-12",
                              field="month", value=month, code="month") from None
    me = month_end(ms)
    weeks = []
    d = ms
    while d <= me:  # ISO weeks whose Thursday falls in the month
        if (d.isoweekday() == 4):
            weeks.append(week_of(d))
        d += timedelta(days=1)
    return Period(ms, me, tuple(weeks), ms, me, str(month))


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce").dt.normalize()


def effective_mask(visits: pd.DataFrame, rules: Rules) -> pd.Series:
    """Visits that count as effective: flagged effective, mode and visitor role allowed by the rules."""
    if visits.empty:
        return pd.Series([], dtype=bool)
    return (visits["effective"].fillna(False).astype(bool)
            & visits["mode"].astype(str).isin({str(m) for m in rules.effective_modes})
            & visits["visitor_role"].astype(str).isin({str(r) for r in rules.credited_roles}))


def _contains(lists: pd.Series, value: str) -> pd.Series:
    """Per row: the list (or set) holds ``value`` (compared as text); not a list: False."""
    kinds = (list, tuple, set, frozenset)
    return pd.Series([isinstance(c, kinds) and (value in c or value in map(str, c)) for c in lists.to_numpy()],
                     index=lists.index, dtype=bool)


def _haversine_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(a))


def visit_flags(visits: pd.DataFrame, elders: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Per visit: ``short``, ``copied`` and ``far`` (signs of visits done only on paper)."""
    v = visits.copy()
    if v.empty:
        for c in ("short", "copied", "far"):
            v[c] = pd.Series(dtype=bool)
        return v
    in_home = v["mode"].astype(str).isin({str(m) for m in rules.in_home_modes})
    minutes = (pd.to_datetime(v["ended_at"], utc=True, errors="coerce")
               - pd.to_datetime(v["started_at"], utc=True, errors="coerce")).dt.total_seconds() / 60
    v["short"] = in_home & minutes.notna() & (minutes < rules.min_in_home_minutes)
    cols = [c for c in ANSWER_FIELDS if c in v.columns]
    v = v.sort_values(["elder_id", "visited_on", "id"])
    # one hash per row of answers (vectorised; a row-wise string join took ~20 s on 850,000 visits)
    key = (pd.util.hash_pandas_object(v[cols].astype(str).where(v[cols].notna(), ""), index=False)
           if cols else pd.Series(0, index=v.index, dtype="uint64"))
    has_answers = v[cols].notna().any(axis=1) if cols else pd.Series(False, index=v.index)
    new_run = (key != key.groupby(v["elder_id"]).shift()) | ~has_answers
    run_id = new_run.cumsum()
    pos = v.groupby(run_id).cumcount() + 1
    v["copied"] = has_answers & (pos >= rules.copied_answers_visits)
    home = elders.set_index("elder_id")[["lon", "lat"]]
    hl = home.reindex(v["elder_id"].to_numpy())
    dist = _haversine_m(v["gps_lon"].to_numpy(dtype=float), v["gps_lat"].to_numpy(dtype=float),
                        hl["lon"].to_numpy(dtype=float), hl["lat"].to_numpy(dtype=float))
    far = np.nan_to_num(dist, nan=0.0) > rules.max_distance_m
    if "position_distance_m" in v.columns:  # issue 18: the phone's distance to the home at saving (with consent)
        far = far | (pd.to_numeric(v["position_distance_m"], errors="coerce").fillna(0.0).to_numpy()
                     > rules.max_distance_m)
    v["far"] = in_home & pd.Series(far, index=v.index)
    return v.sort_index()


def elder_status(
    elders: pd.DataFrame, visits: pd.DataFrame, period: Period, rules: Rules
) -> pd.DataFrame:
    """Per elder in the programme: visited weeks, monthly visit, last visit, overdue days."""
    prog = {str(s) for s in rules.programme_statuses}
    e = elders[elders["status"].astype(str).isin(prog)].copy()
    v = visits[effective_mask(visits, rules)] if not visits.empty else visits
    vd = _dates(v["visited_on"]) if not v.empty else pd.Series(dtype="datetime64[ns]")
    end = pd.Timestamp(period.end)
    upto = v[vd <= end] if not v.empty else v
    vd_upto = vd[vd <= end] if not v.empty else vd
    for w in period.weeks:
        mon, sun = parse_week(w)
        in_w = upto[(vd_upto >= pd.Timestamp(mon)) & (vd_upto <= pd.Timestamp(sun))]
        e[f"visited_{w}"] = e["elder_id"].isin(in_w["elder_id"])
    in_m = upto[(vd_upto >= pd.Timestamp(period.month_start)) & (vd_upto <= pd.Timestamp(period.month_end))]
    e["visited_month"] = e["elder_id"].isin(in_m["elder_id"])
    if upto.empty:
        e["last_visit"] = pd.Series(pd.NaT, index=e.index, dtype="datetime64[ns]")
    else:
        last = vd_upto.groupby(upto["elder_id"]).max()
        e["last_visit"] = _dates(e["elder_id"].map(last)).astype("datetime64[ns]")
    if "last_visit_on" in e.columns:  # the store's last visit, for visits older than those read
        known = _dates(e["last_visit_on"]).astype("datetime64[ns]")
        known = known.where(known <= end)
        cur = e["last_visit"]
        e["last_visit"] = cur.where(cur.notna() & (known.isna() | (cur >= known)), known)
    interval = np.where(e["willing"].astype(bool), 7, 31)
    ref = e["last_visit"].fillna(pd.Timestamp(period.start) - pd.Timedelta(days=1))
    days = (end - ref).dt.days - interval
    e["overdue_days"] = np.where(days > 0, days, 0)
    e["overdue"] = e["overdue_days"] > 0
    return e


def compute_indicators(
    elders: pd.DataFrame,
    visits: pd.DataFrame,
    hazards: pd.DataFrame,
    referrals: pd.DataFrame,
    *,
    week: str | None = None,
    month: str | None = None,
    level: str = "street",
    rules: Rules | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """Indicators for one period, one row per unit of ``level``.

    Parameters
    ----------
    elders, visits, hazards, referrals
        DataFrames as described in the module docstring.
    week, month
        Exactly one: ISO week ``2026-W49`` or month ``2026-12``.
    level
        ``district``, ``street``, ``community``, ``grid`` or ``steward``.
    rules
        Visit rules (effective modes, credited roles, 流于形式 thresholds).
    as_of
        Today, for the current week: when it falls inside the week the period
        ends on it (overdue visits, open hazards and referrals as of today, visits
        up to today) and ``visited_week``, ``due_by_today`` and ``week_progress``
        (本周进度, NaN while nothing is due) measure the week so far;
        ``weekly_rate`` stays the share of the full week's target.

    Returns
    -------
    pandas.DataFrame
        Indexed by the unit (column named after ``level``), columns of
        :data:`INDICATOR_LABELS` plus ``visits_<mode>`` per visit mode; sorted
        with the laggards first (lowest weekly rate, then most overdue visits).
    """
    rules = rules or load_rules()
    if level not in LEVELS:
        raise ValidationError(f"unknown level; use one of {', '.join(LEVELS)}",
                              f"未知统计层级；可选 {', '.join(LEVELS)}", field="level", value=level,
                              code="level")
    period = period_of(week, month)
    partial = as_of is not None and week is not None and period.start <= as_of < period.end
    if partial:
        assert as_of is not None
        period = replace(period, end=as_of, month_end=min(period.month_end, as_of))
    elders = elders.copy()
    if level == "steward" and "signed" in elders.columns:  # issue 17 part B: 四(二) signed elders are the 驿站's
        elders = elders[~elders["signed"].fillna(False).astype(bool)].copy()
    elders["district"] = "海淀区"
    key = LEVELS[level]
    st = elder_status(elders, visits, period, rules)
    g = st.groupby(key, dropna=False)
    out = pd.DataFrame(index=pd.Index(sorted(st[key].dropna().unique(), key=str), name=level))
    out["elders"] = g.size()
    willing = st[st["willing"].astype(bool)]
    wk_cols = [f"visited_{w}" for w in period.weeks]
    gw = willing.groupby(key)
    out["willing"] = gw.size()
    visited_pairs = gw[wk_cols].sum().sum(axis=1) if wk_cols else 0
    out["weekly_rate"] = visited_pairs / (out["willing"] * len(wk_cols))
    if partial:
        assert as_of is not None and week is not None
        out["visited_week"] = gw[wk_cols[0]].sum()
        willing_n = out["willing"].fillna(0).astype(int)
        out["due_by_today"] = [due_by_today(int(w), week, as_of) for w in willing_n]
        due = out["due_by_today"].where(out["due_by_today"] > 0)
        out["week_progress"] = (out["visited_week"] / due).clip(upper=1.0)
    out["monthly_rate"] = g["visited_month"].mean()
    out["overdue"] = g["overdue"].sum()
    od = st[st["overdue"]].groupby(key)["overdue_days"]
    out["overdue_days_mean"] = od.mean()
    out["overdue_days_max"] = od.max()

    # visits in the period, attributed to the elder's unit
    unit = st.set_index("elder_id")[key]
    if not visits.empty:
        vd = _dates(visits["visited_on"])
        vp = visits[(vd >= pd.Timestamp(period.start)) & (vd <= pd.Timestamp(period.end))]
        vp = vp[vp["elder_id"].isin(unit.index)]
        vp = vp.assign(_unit=vp["elder_id"].map(unit).to_numpy())
        flags = visit_flags(vp, st, rules)
    else:
        vp = visits.assign(_unit=pd.Series(dtype=object))
        flags = visit_flags(vp, st, rules)
    out["visits"] = vp.groupby("_unit").size() if not vp.empty else 0
    if not vp.empty:
        by_mode = vp.groupby(["_unit", vp["mode"].astype(str)]).size().unstack(fill_value=0)
        for m in by_mode.columns:
            out[f"visits_{m}"] = by_mode[m]
        # copied answers need the history before the period as well (none without answer columns)
        if any(c in visits.columns for c in ANSWER_FIELDS):
            hist = visits[_dates(visits["visited_on"]) <= pd.Timestamp(period.end)]
            hist = hist[hist["elder_id"].isin(unit.index)]
            hflags = visit_flags(hist, st, rules).set_index("id")["copied"]
            flags = flags.assign(copied=flags["id"].map(hflags).fillna(False).astype(bool))
        else:
            flags = flags.assign(copied=False)
        for c, name in (("short", "short_visits"), ("copied", "copied_answers"), ("far", "far_visits")):
            out[name] = flags.groupby("_unit")[c].sum()

    # hazards and referrals at the end of the period
    from gridmap.followups.measures import hazard_overdue, referral_overdue

    end = pd.Timestamp(period.end)
    cut = as_of if as_of is not None and as_of < period.end else period.end
    if not hazards.empty:
        h = hazards[hazards["elder_id"].isin(unit.index)].copy()
        h["_unit"] = h["elder_id"].map(unit)
        op, cl = _dates(h["opened_on"]), _dates(h["closed_on"])
        is_open = (op <= end) & (cl.isna() | (cl > end))
        closed_in = cl.notna() & (cl >= pd.Timestamp(period.start)) & (cl <= end)
        out["hazards_open"] = h[is_open].groupby("_unit").size()
        # nothing is overdue before its due date: as of today for a period still running (a month too)
        out["hazards_overdue"] = h[hazard_overdue(h, cut)].groupby("_unit").size()
        out["hazards_closed"] = h[closed_in].groupby("_unit").size()
        out["hazard_days_to_close"] = ((cl - op).dt.days)[closed_in].groupby(h["_unit"][closed_in]).mean()
    if not referrals.empty:
        r = referrals[referrals["elder_id"].isin(unit.index)].copy()
        r["_unit"] = r["elder_id"].map(unit)
        ra = pd.to_datetime(r["opened_at"], utc=True, errors="coerce")
        rc = pd.to_datetime(r["closed_at"], utc=True, errors="coerce")
        end_utc = pd.Timestamp(period.end + timedelta(days=1), tz="Asia/Shanghai").tz_convert("UTC")
        r_open = (ra < end_utc) & (rc.isna() | (rc >= end_utc))
        out["referrals_open"] = r[r_open].groupby("_unit").size()
        out["referrals_overdue"] = r[referral_overdue(r, cut)].groupby("_unit").size()

    # devices and register completeness (one pass per list column; vectorised group sums)
    st = st.assign(_smoke=_contains(st["devices"], DeviceKind.SMOKE_ALARM.value),
                   _term=_contains(st["devices"], DeviceKind.EMERGENCY_TERMINAL.value))
    needs_term = (st["age"].fillna(0) >= rules.min_age) | _contains(st["categories"],
                                                                    Category.FAMILY_PLANNING_SPECIAL.value)
    g = st.groupby(key, dropna=False)
    out["smoke_alarm_coverage"] = g["_smoke"].mean()
    out["terminal_coverage"] = st[needs_term].groupby(key)["_term"].mean()
    by = st[key]
    out["missing_first_contact"] = (~st["has_first_contact"].astype(bool)).groupby(by).sum()
    out["missing_steward"] = st["steward_id"].isna().groupby(by).sum()
    out["missing_location"] = (~st["has_location"].astype(bool)).groupby(by).sum()

    counts = [c for c in out.columns if c in (
        "elders", "willing", "overdue", "visits", "visited_week", "due_by_today", "hazards_open", "hazards_overdue", "hazards_closed",
        "referrals_open", "referrals_overdue", "missing_first_contact", "missing_steward",
        "missing_location", "short_visits", "copied_answers", "far_visits") or c.startswith("visits_")]
    for c in ("hazards_open", "hazards_overdue", "hazards_closed", "referrals_open", "referrals_overdue",
              "short_visits", "copied_answers", "far_visits", "visits"):
        if c not in out.columns:
            out[c] = 0
            counts.append(c)
    out[counts] = out[counts].fillna(0).astype(int)
    out = out.sort_values(["weekly_rate", "monthly_rate", "overdue", "hazards_open"],
                          ascending=[True, True, False, False], na_position="last", kind="stable")
    out.attrs["period"] = period
    return out
