"""Stations (四(二)), family doctors (三(五)2) and 重点摸排 (二.1, 二.2): pure pandas, no database.

Inputs are the frames :mod:`gridmap.care.store` reads:

``elders``
    elder_id, street, community, status, willing, age, categories (codes), signed (a 驿站 or a home
    care bed), station_id, station (name), family_doctor_signed, wants_family_doctor, lon, lat.
``visits``
    elder_id, visited_on, mode, effective, visitor_role.
``points``
    id, name, kind, street, lon, lat (service points: care stations, health centres and stations).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import pandas as pd

from gridmap.care.rules import CareRules

STATION_COLUMNS = ["station_id", "station", "street", "signed", "visited", "rate", "steward_visited", "double_visits"]
DOUBLE_COLUMNS = ["elder_id", "station_id", "station", "street", "community", "station_visits", "steward_visits"]
DOCTOR_COLUMNS = ["elder_id", "street", "community", "centre_id", "centre", "centre_kind", "distance_m"]
SURVEY_COLUMNS = ["elder_id", "street", "community", "age", "category", "last_assessed_on"]


def _week_days(week: str) -> tuple[date, date]:
    from gridmap.rules.requirements import parse_week

    return parse_week(week)


def _effective(visits: pd.DataFrame, effective_modes: Iterable[str]) -> pd.DataFrame:
    if visits.empty:
        return visits
    m = visits["effective"].fillna(False).astype(bool) & visits["mode"].astype(str).isin({str(x) for x in effective_modes})
    return visits[m]


def _in(visits: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    if visits.empty:
        return visits
    d = pd.to_datetime(visits["visited_on"]).dt.date
    return visits[(d >= start) & (d <= end)]


def signed_elders(elders: pd.DataFrame, programme_statuses: Iterable[str]) -> pd.DataFrame:
    """Elders in the programme signed with a 驿站 or a home care bed (四(二))."""
    prog = {str(s) for s in programme_statuses}
    return elders[elders["signed"].astype(bool) & elders["status"].astype(str).isin(prog)]


def double_visits(elders: pd.DataFrame, visits: pd.DataFrame, week: str, care: CareRules, *,
                  programme_statuses: Iterable[str], effective_modes: Iterable[str]) -> pd.DataFrame:
    """Signed elders visited in ``week`` both by their station and by the government-purchased visit
    steward (四(二) 不再重复提供政府购买的探访关爱服务): :data:`DOUBLE_COLUMNS`."""
    mon, sun = _week_days(week)
    s = signed_elders(elders, programme_statuses)
    v = _in(_effective(visits, effective_modes), mon, sun)
    v = v[v["elder_id"].isin(s["elder_id"])] if not v.empty else v
    if v.empty:
        return pd.DataFrame(columns=DOUBLE_COLUMNS)
    role = v["visitor_role"].astype(str)
    st = v[role.isin({r.value for r in care.station_roles})].groupby("elder_id").size()
    sw = v[role.isin({r.value for r in care.steward_roles})].groupby("elder_id").size()
    both = sorted(set(st.index) & set(sw.index))
    out = s.set_index("elder_id").loc[both, ["station_id", "station", "street", "community"]].reset_index()
    out["station_visits"] = out["elder_id"].map(st).astype(int)
    out["steward_visits"] = out["elder_id"].map(sw).astype(int)
    return out[DOUBLE_COLUMNS]


def station_view(elders: pd.DataFrame, visits: pd.DataFrame, week: str, care: CareRules, *,
                 programme_statuses: Iterable[str], effective_modes: Iterable[str]) -> pd.DataFrame:
    """One row per 驿站 with signed elders: how many it visited in ``week`` (巡视探访, at least
    ``stations.weekly_min`` effective visits by the station's roles), its rate, and how many of its
    elders the visit steward visited too (``double_visits`` when both did).

    Columns :data:`STATION_COLUMNS`, the lowest rate first.
    """
    mon, sun = _week_days(week)
    s = signed_elders(elders, programme_statuses)
    if s.empty:
        return pd.DataFrame(columns=STATION_COLUMNS)
    v = _in(_effective(visits, effective_modes), mon, sun)
    v = v[v["elder_id"].isin(s["elder_id"])] if not v.empty else v
    role = v["visitor_role"].astype(str) if not v.empty else pd.Series(dtype=str)
    st_n = v[role.isin({r.value for r in care.station_roles})].groupby("elder_id").size() if not v.empty else pd.Series(dtype=int)
    sw_n = v[role.isin({r.value for r in care.steward_roles})].groupby("elder_id").size() if not v.empty else pd.Series(dtype=int)
    s = s.assign(
        _visited=s["elder_id"].map(st_n).fillna(0).astype(int) >= care.station_weekly_min,
        _steward=s["elder_id"].map(sw_n).fillna(0).astype(int) > 0,
        _both=(s["elder_id"].map(st_n).fillna(0).astype(int) > 0) & (s["elder_id"].map(sw_n).fillna(0).astype(int) > 0),
        station_id=s["station_id"].astype("Int64"),
        station=s["station"].fillna("（未登记驿站）"),
    )
    g = s.groupby(["station_id", "station"], dropna=False)
    out = pd.DataFrame({
        "street": g["street"].agg(lambda x: x.mode().iat[0] if len(x.dropna()) else None),
        "signed": g.size(), "visited": g["_visited"].sum(), "steward_visited": g["_steward"].sum(),
        "double_visits": g["_both"].sum()}).reset_index()
    out["rate"] = out["visited"] / out["signed"]
    for c in ("signed", "visited", "steward_visited", "double_visits"):
        out[c] = out[c].astype(int)
    return out[STATION_COLUMNS].sort_values(["rate", "signed"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _nearest(lon: np.ndarray, lat: np.ndarray, plon: np.ndarray, plat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest point and the great-circle distance (m), in chunks (elders × points)."""
    idx = np.full(len(lon), -1, dtype=int)
    dist = np.full(len(lon), np.nan)
    if not len(plon):
        return idx, dist
    p1, l1 = np.radians(plat)[None, :], np.radians(plon)[None, :]
    for i in range(0, len(lon), 2000):
        a2 = np.radians(lat[i:i + 2000])[:, None]
        o2 = np.radians(lon[i:i + 2000])[:, None]
        h = np.sin((p1 - a2) / 2) ** 2 + np.cos(a2) * np.cos(p1) * np.sin((l1 - o2) / 2) ** 2
        d = 2 * 6371008.8 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
        j = np.argmin(d, axis=1)
        idx[i:i + 2000] = j
        dist[i:i + 2000] = d[np.arange(len(j)), j]
    return idx, dist


def nearest_points(lon: Iterable[float], lat: Iterable[float], points: pd.DataFrame) -> pd.DataFrame:
    """For each (lon, lat) the nearest of ``points`` (straight line): ``point_index`` (positional,
    -1 without a location) and ``distance_m``."""
    lon = np.asarray(list(lon), dtype=float)
    lat = np.asarray(list(lat), dtype=float)
    ok = ~(np.isnan(lon) | np.isnan(lat))
    idx = np.full(len(lon), -1, dtype=int)
    dist = np.full(len(lon), np.nan)
    pts = points.dropna(subset=["lon", "lat"])
    i, d = _nearest(lon[ok], lat[ok], pts["lon"].to_numpy(dtype=float), pts["lat"].to_numpy(dtype=float))
    pos = np.array([points.index.get_loc(x) for x in pts.index], dtype=int)
    idx[ok] = np.where(i >= 0, pos[i] if len(pos) else -1, -1)
    dist[ok] = d
    return pd.DataFrame({"point_index": idx, "distance_m": dist})


def doctor_handover(elders: pd.DataFrame, points: pd.DataFrame, care: CareRules, *,
                    programme_statuses: Iterable[str]) -> pd.DataFrame:
    """Elders without a family-doctor contract who want one (三(五)2 居民自愿), each handed to the nearest
    community health service centre or station of ``family_doctors.point_kinds``: :data:`DOCTOR_COLUMNS`."""
    prog = {str(s) for s in programme_statuses}
    signed = elders["family_doctor_signed"].fillna(False).astype(bool)
    wants = elders["wants_family_doctor"].fillna(False).astype(bool)
    e = elders[elders["status"].astype(str).isin(prog) & ~signed & wants].reset_index(drop=True)
    pts = points[points["kind"].astype(str).isin({k.value for k in care.doctor_point_kinds})].reset_index(drop=True)
    near = nearest_points(e["lon"], e["lat"], pts)
    j = near["point_index"].to_numpy()
    has = j >= 0
    out = e[["elder_id", "street", "community"]].copy()
    jj = np.maximum(j, 0)
    if len(pts) and len(e):
        out["centre_id"] = pd.Series(pts["id"].to_numpy()[jj], dtype="Int64").where(has, pd.NA)
        out["centre"] = pd.Series(pts["name"].to_numpy()[jj], dtype=object).where(has, None)
        out["centre_kind"] = pd.Series(pts["kind"].astype(str).to_numpy()[jj], dtype=object).where(has, None)
    else:
        out["centre_id"] = pd.Series([pd.NA] * len(e), dtype="Int64")
        out["centre"] = out["centre_kind"] = None
    out["distance_m"] = near["distance_m"].round(0)
    return out[DOCTOR_COLUMNS].sort_values(["centre", "community", "elder_id"], kind="stable", na_position="last") \
        .reset_index(drop=True)


def key_survey(elders: pd.DataFrame, visits: pd.DataFrame, month: date, care: CareRules, *,
               programme_statuses: Iterable[str], effective_modes: Iterable[str]) -> pd.DataFrame:
    """重点摸排 (二.1, 二.2): elders of ``key_survey.min_age`` and over living alone or empty-nest not yet
    assessed in the month of ``month`` (no effective visit of ``key_survey.assessed_modes`` in it),
    per community: :data:`SURVEY_COLUMNS` (``last_assessed_on`` the last such visit before, if any)."""
    prog = {str(s) for s in programme_statuses}
    start = month.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    cats = {c.value for c in care.survey_categories}
    in_cat = elders["categories"].map(lambda cs: bool(cats & {str(c) for c in (cs or ())}))
    e = elders[elders["status"].astype(str).isin(prog) & (elders["age"].fillna(0) >= care.survey_min_age) & in_cat]
    v = _effective(visits, effective_modes)
    if not v.empty:
        v = v[v["mode"].astype(str).isin({m.value for m in care.survey_modes})]
    assessed = set(_in(v, start, end)["elder_id"]) if not v.empty else set()
    before = _in(v, date(2000, 1, 1), start - timedelta(days=1)) if not v.empty else v
    last: dict[int, date] = {}
    if not before.empty:
        for eid, d in zip(before["elder_id"], pd.to_datetime(before["visited_on"]).dt.date, strict=True):
            if eid not in last or d > last[eid]:
                last[int(eid)] = d
    out = e[~e["elder_id"].isin(assessed)].copy()
    order = [c.value for c in sorted(care.survey_categories, key=lambda c: c.value != "living_alone")]
    from gridmap.domain.enums import Category

    out["category"] = out["categories"].map(
        lambda cs: "、".join(Category(c).label for c in order if c in {str(x) for x in (cs or ())}))
    out["last_assessed_on"] = [last.get(int(e)) for e in out["elder_id"]]
    out["age"] = out["age"].astype(int)
    return out[SURVEY_COLUMNS].sort_values(["street", "community", "elder_id"], kind="stable").reset_index(drop=True)


def per_community(frame: pd.DataFrame, name: str = "count") -> pd.DataFrame:
    """Counts of a list per street and community."""
    if frame.empty:
        return pd.DataFrame(columns=["street", "community", name])
    return frame.groupby(["street", "community"], dropna=False).size().rename(name).reset_index()
