"""The measures of 接诉即办 for hazards (风险隐患) and referrals (转介), per unit, for a week or a month.

Pure pandas (no SQL, no Dash): the store provides the frames
(:func:`gridmap.followups.store.read_hazard_frame` / ``read_referral_frame``, or
:func:`gridmap.rules.store.read_hazards` / ``read_referrals`` with a ``street``
column added from the register).

``hazards``
    id, elder_id, street, community, owner_unit, status, opened_on, deadline
    (dates), closed_on (date or empty).
``referrals``
    id, elder_id, street, community, receiver (or target), status, emergency,
    opened_at, deadline, acknowledged_at, in_progress_at, closed_at,
    escalated_at (timestamps; naive ones are UTC), resolved (bool at closing),
    satisfaction (满意 / 基本满意 / 不满意 or the stored codes satisfied / neutral /
    dissatisfied / very_satisfied, or empty).

Time
----
The period is an ISO week (``2026-W49``) or a month (``2026-12``), from its
first day ``start`` to its last ``end``. The **as-of date** ``C`` is ``end``
for a past period and today (``as_of``) for the period still running:
``C = min(end, as_of)``. Every timestamp is read as its date in Beijing
(Asia/Shanghai). A case counts in a period by the date of the event the
measure is about (found, fixed, closed, due) lying in ``[start, C]``; a case is
*closed at C* when its closing date is on or before ``C``.

**Nothing is overdue before its due date**: a hazard or referral is overdue at
``C`` when its deadline date is **before** ``C``, it was opened on or before
``C`` and it is not closed at ``C`` (any closing state: 已整改, 无法整改,
已移交 for hazards; 已办结 for referrals). Run on 12-07 for the running week,
a hazard due 12-10 is not overdue.

Hazard measures (:func:`hazard_measures`)
-----------------------------------------
* 新发现隐患 ``found``: opened on a date in ``[start, C]``;
* 已整改 ``fixed``: status 已整改 (fixed) with ``closed_on`` in ``[start, C]``;
* 未整改 ``open``: opened on or before ``C`` and not closed at ``C``;
* 整改率 ``fix_rate``: fixed / (fixed + open) — of the hazards fixed in the
  period or still waiting at ``C``, the share fixed (NaN when both are 0;
  无法整改 and 已移交 are in neither);
* 平均整改天数 ``fix_days``: mean of ``closed_on - opened_on`` in days over the
  hazards fixed in the period;
* 逾期未整改 ``overdue``: overdue at ``C`` (above).

Referral measures (:func:`referral_measures`)
---------------------------------------------
* 新转介 ``new``: opened (``opened_at``) on a date in ``[start, C]``;
* the response of a referral is its first of ``acknowledged_at``,
  ``in_progress_at``, ``closed_at``; it is *in time* when not later than the
  ``deadline`` (the moment, not the date);
* 应响应 ``due``: referrals whose deadline date is in ``[start, C]`` and that
  are decided at ``C``: responded by the end of ``C`` or with the deadline date
  before ``C`` (a referral due today and not yet answered is not counted
  against anyone until tomorrow);
* 响应率 ``response_rate``: of ``due``, the share responded in time;
* 已办结 ``closed``: closed on a date in ``[start, C]``;
* 解决率 ``resolution_rate``: of ``closed``, the share closed as resolved;
* 满意率 ``satisfaction_rate``: of ``closed`` with a satisfaction, the share
  满意 or 基本满意 (非常满意 too; codes ``satisfied``, ``neutral``, ``very_satisfied``);
* 平均办结天数 ``close_days``: mean of ``closed_at - opened_at`` in days
  (fractional) over ``closed``;
* 逾期转介 ``overdue``: overdue at ``C`` (above);
* 已升级 ``escalated``: escalated (``escalated_at``) on a date in
  ``[start, C]`` — one referral is counted once however often it is looked at.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd

from gridmap.rules.indicators import Period, period_of

__all__ = ["FOLLOWUP_COLUMNS", "HAZARD_LABELS", "REFERRAL_LABELS", "DISTRICT", "as_of_date", "attach_area",
           "followup_sheet", "hazard_measures", "hazard_overdue", "local_dates", "referral_measures",
           "referral_overdue"]

TZ = "Asia/Shanghai"
DISTRICT = "海淀区"
#: Satisfaction answers that count as satisfied: the labels and the stored codes (:class:`~gridmap.domain.enums.Satisfaction`).
SATISFIED = ("满意", "基本满意", "非常满意", "satisfied", "neutral", "very_satisfied")
HAZARD_CLOSED_STATES = ("fixed", "cannot_fix", "transferred", "closed")

#: Chinese names of the hazard measures.
HAZARD_LABELS: dict[str, str] = {
    "found": "新发现隐患", "fixed": "已整改", "fix_rate": "整改率", "fix_days": "平均整改天数",
    "overdue": "逾期未整改", "open": "未整改",
}
#: Chinese names of the referral measures.
REFERRAL_LABELS: dict[str, str] = {
    "new": "新转介", "due": "应响应", "responded": "按时响应", "response_rate": "响应率",
    "closed": "已办结", "resolution_rate": "解决率", "satisfaction_rate": "满意率",
    "close_days": "平均办结天数", "overdue": "逾期转介", "escalated": "已升级",
}
#: The columns of the report sheet 隐患与转介, in order.
FOLLOWUP_COLUMNS = ["街道", "新发现隐患", "已整改", "整改率", "平均整改天数", "逾期未整改", "未整改",
                    "新转介", "响应率", "解决率", "满意率", "平均办结天数", "逾期转介", "已升级"]

_HAZARD_UNITS = ("street", "community", "grid", "owner_unit", "district")
_REFERRAL_UNITS = ("street", "community", "receiver", "district")


def as_of_date(period: Period, as_of: date | None) -> date:
    """The as-of date ``C``: the period's last day, or ``as_of`` (today) when that is earlier."""
    if as_of is None or as_of >= period.end:
        return period.end
    return as_of


def local_dates(values: pd.Series) -> pd.Series:
    """Dates (``datetime64`` at midnight) in Beijing of dates or timestamps; naive timestamps are UTC."""
    if values.empty:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    ts = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    return ts.dt.tz_convert(TZ).dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")


def _plain_dates(values: pd.Series) -> pd.Series:
    """Dates (``datetime64``) of values that are dates already (no time zone shift)."""
    return pd.to_datetime(values, errors="coerce").dt.normalize().astype("datetime64[ns]")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")


def _period(week: str | None, month: str | None, period: Period | None) -> Period:
    return period if period is not None else period_of(week, month)


def _units(frame: pd.DataFrame, by: str) -> pd.Series:
    if by == "district":
        return pd.Series(DISTRICT, index=frame.index, dtype=object)
    if by == "receiver" and "receiver" not in frame.columns:
        return frame["target"].astype(object)
    return frame[by].astype(object)


def attach_area(frame: pd.DataFrame, elders: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the ``street``, ``community`` and ``grid`` of its elder (from ``elders``) where it lacks them."""
    out = frame.copy()
    e = elders.drop_duplicates("elder_id").set_index("elder_id")
    for col, src in (("street", "street"), ("community", "community"), ("grid", "grid_id")):
        if col not in out.columns and src in e.columns:
            out[col] = out["elder_id"].map(e[src]).astype(object)
    return out


def hazard_overdue(hazards: pd.DataFrame, on: date) -> pd.Series:
    """Per hazard: overdue on ``on`` (deadline before ``on``, opened by ``on``, not closed by ``on``)."""
    c = pd.Timestamp(on)
    op, cl, dl = (_plain_dates(hazards[k]) for k in ("opened_on", "closed_on", "deadline"))
    return ((op <= c) & (cl.isna() | (cl > c)) & dl.notna() & (dl < c)).astype(bool)


def referral_overdue(referrals: pd.DataFrame, on: date) -> pd.Series:
    """Per referral: overdue on ``on`` (deadline date before ``on``, opened by ``on``, not closed by ``on``)."""
    c = pd.Timestamp(on)
    op, cl, dl = (local_dates(referrals[k]) for k in ("opened_at", "closed_at", "deadline"))
    return ((op <= c) & (cl.isna() | (cl > c)) & dl.notna() & (dl < c)).astype(bool)


def hazard_measures(
    hazards: pd.DataFrame,
    *,
    week: str | None = None,
    month: str | None = None,
    period: Period | None = None,
    as_of: date | None = None,
    by: str = "street",
    units: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Hazard measures of one period per unit (module docstring), one row per unit.

    ``by`` is ``street``, ``community``, ``grid``, ``owner_unit`` or
    ``district``; ``units`` adds rows (zeros) for units without hazards.
    Columns: found, fixed, open, fix_rate, fix_days, overdue (see :data:`HAZARD_LABELS`).
    """
    if by not in _HAZARD_UNITS:
        raise ValueError(f"unknown unit {by!r}; use one of {_HAZARD_UNITS}")
    p = _period(week, month, period)
    c = pd.Timestamp(as_of_date(p, as_of))
    s = pd.Timestamp(p.start)
    h = hazards
    unit = _units(h, by)
    op, cl = _plain_dates(h["opened_on"]), _plain_dates(h["closed_on"])
    status = h["status"].astype(str)
    found = (op >= s) & (op <= c)
    fixed = (status == "fixed") | (status == "closed")
    fixed_in = fixed & cl.notna() & (cl >= s) & (cl <= c)
    open_ = (op <= c) & (cl.isna() | (cl > c))
    overdue = hazard_overdue(h, c.date())
    days = (cl - op).dt.days.astype(float)
    frame = pd.DataFrame({"_u": unit, "found": found, "fixed": fixed_in, "open": open_, "overdue": overdue,
                          "_days": days.where(fixed_in)})
    g = frame.groupby("_u", dropna=True)
    out = pd.DataFrame({k: g[k].sum() for k in ("found", "fixed", "open", "overdue")})
    out["fix_days"] = g["_days"].mean()
    out = _with_units(out, units, ("found", "fixed", "open", "overdue"))
    denom = out["fixed"] + out["open"]
    out["fix_rate"] = (out["fixed"] / denom.where(denom > 0)).astype(float)
    out.index.name = by
    return out[["found", "fixed", "open", "fix_rate", "fix_days", "overdue"]]


def referral_measures(
    referrals: pd.DataFrame,
    *,
    week: str | None = None,
    month: str | None = None,
    period: Period | None = None,
    as_of: date | None = None,
    by: str = "street",
    units: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Referral measures of one period per unit (module docstring), one row per unit.

    ``by`` is ``street``, ``community``, ``receiver`` (the ``target`` column when
    the frame has no ``receiver``) or ``district``.
    Columns: new, due, responded, response_rate, closed, resolved, resolution_rate,
    rated, satisfied, satisfaction_rate, close_days, overdue, escalated.
    """
    if by not in _REFERRAL_UNITS:
        raise ValueError(f"unknown unit {by!r}; use one of {_REFERRAL_UNITS}")
    p = _period(week, month, period)
    c = pd.Timestamp(as_of_date(p, as_of))
    s = pd.Timestamp(p.start)
    r = referrals
    unit = _units(r, by)
    op, cl, dl, esc = (local_dates(r[k]) for k in ("opened_at", "closed_at", "deadline", "escalated_at"))
    first = pd.concat([_utc(r[k]) if k in r.columns else pd.Series(pd.NaT, index=r.index, dtype="datetime64[ns, UTC]")
                       for k in ("acknowledged_at", "in_progress_at", "closed_at")], axis=1).min(axis=1)
    first_day = local_dates(first)
    deadline = _utc(r["deadline"])
    in_time = first.notna() & deadline.notna() & (first <= deadline)
    responded_by_c = first_day.notna() & (first_day <= c)
    due = dl.notna() & (dl >= s) & (dl <= c) & (responded_by_c | (dl < c))
    responded = due & in_time
    closed = cl.notna() & (cl >= s) & (cl <= c)
    resolved_col = r["resolved"] if "resolved" in r.columns else pd.Series(True, index=r.index)
    resolved = closed & pd.Series([bool(v) if v is not None and v is not pd.NA and v == v else False
                                   for v in resolved_col.astype(object).to_numpy()], index=r.index, dtype=bool)
    sat = r["satisfaction"] if "satisfaction" in r.columns else pd.Series(None, index=r.index, dtype=object)
    sat_text = [None if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v == "" else str(v)
                for v in sat.astype(object).to_numpy()]
    rated = closed & pd.Series([v is not None for v in sat_text], index=r.index, dtype=bool)
    satisfied = rated & pd.Series([v in SATISFIED for v in sat_text], index=r.index, dtype=bool)
    days = (_utc(r["closed_at"]) - _utc(r["opened_at"])).dt.total_seconds() / 86400.0
    frame = pd.DataFrame({
        "_u": unit, "new": (op >= s) & (op <= c), "due": due, "responded": responded, "closed": closed,
        "resolved": resolved, "rated": rated, "satisfied": satisfied,
        "overdue": referral_overdue(r, c.date()), "escalated": esc.notna() & (esc >= s) & (esc <= c),
        "_days": days.where(closed)})
    counts = ("new", "due", "responded", "closed", "resolved", "rated", "satisfied", "overdue", "escalated")
    g = frame.groupby("_u", dropna=True)
    out = pd.DataFrame({k: g[k].sum() for k in counts})
    out["close_days"] = g["_days"].mean()
    out = _with_units(out, units, counts)
    out["response_rate"] = _ratio(out["responded"], out["due"])
    out["resolution_rate"] = _ratio(out["resolved"], out["closed"])
    out["satisfaction_rate"] = _ratio(out["satisfied"], out["rated"])
    out.index.name = by
    return out[["new", "due", "responded", "response_rate", "closed", "resolved", "resolution_rate", "rated",
                "satisfied", "satisfaction_rate", "close_days", "overdue", "escalated"]]


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).astype(float)


def _with_units(out: pd.DataFrame, units: Iterable[str] | None, counts: Iterable[str]) -> pd.DataFrame:
    if units is not None:
        idx = list(dict.fromkeys([*out.index.tolist(), *units]))
        out = out.reindex(idx)
    for k in counts:
        out[k] = out[k].fillna(0).astype(int)
    return out


def followup_sheet(
    hazards: pd.DataFrame,
    referrals: pd.DataFrame,
    *,
    week: str | None = None,
    month: str | None = None,
    period: Period | None = None,
    as_of: date | None = None,
    streets: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The report sheet 隐患与转介: one row per street, then the 海淀区 total (columns :data:`FOLLOWUP_COLUMNS`).

    The total row is computed over all the cases (rates are not averages of the
    street rates). ``streets`` lists the streets to show first, in that order,
    even without cases; streets of cases not in it follow, sorted.
    """
    p = _period(week, month, period)
    kw = dict(period=p, as_of=as_of)
    given = list(dict.fromkeys(streets or ()))
    seen = set(hazards["street"].dropna().astype(str)) | set(referrals["street"].dropna().astype(str))
    names = given + sorted(seen - set(given))
    rows = []
    for by, unit_names in (("street", names), ("district", [DISTRICT])):
        hm = hazard_measures(hazards, by=by, units=unit_names, **kw).reindex(unit_names)
        rm = referral_measures(referrals, by=by, units=unit_names, **kw).reindex(unit_names)
        for name in unit_names:
            h, r = hm.loc[name], rm.loc[name]
            rows.append({"街道": name, "新发现隐患": int(h["found"]), "已整改": int(h["fixed"]),
                         "整改率": h["fix_rate"], "平均整改天数": _round(h["fix_days"]),
                         "逾期未整改": int(h["overdue"]), "未整改": int(h["open"]),
                         "新转介": int(r["new"]), "响应率": r["response_rate"], "解决率": r["resolution_rate"],
                         "满意率": r["satisfaction_rate"], "平均办结天数": _round(r["close_days"]),
                         "逾期转介": int(r["overdue"]), "已升级": int(r["escalated"])})
    return pd.DataFrame(rows, columns=FOLLOWUP_COLUMNS)


def _round(v: float) -> float:
    return float(np.round(v, 1)) if v == v else float("nan")
