"""Generate a city's synthetic register district by district in bounded chunks (elders, stewards, visits, hazards).

:func:`iter_city_chunks` yields :class:`CityChunk` objects of at most
``chunk`` elders each (with their visits and hazards), so a 1,200,000-elder
city is never held in memory at once: each chunk is made by
:func:`gridmap.synth.register.generate_register` on the district's layers and
written before the next is made (:func:`gridmap.scale.store.load_city`).

Deterministic for a seed. On top of the demo generator (all elders active,
all visits effective) a few records are varied so the indicators have
something to filter: 1% of elders are in hospital and 2% moved out, 2% of
visits are not effective. Hazards are opened from visits whose gas, water
heating or electricity answer is unsafe (deadline 7 days) or fairly safe
(30 days); 70% are closed 1–40 days later (those closing after the
reference date are still open).

Steward codes are those of the generator (``TF-<community code>`` visit
stewards, ``FW-<community code>-<n>`` service stewards) — unique across the
city because community codes are renamed per district; a steward made again
by a later chunk of the same district is not repeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from gridmap.scale.city import City

#: Elders per generated chunk by default.
CHUNK = 30000
#: Reference date of the city register ("today": visit history ends the week before).
REFERENCE_DATE = date(2026, 12, 1)
_SAFETY_KINDS = {"gas_safety": "gas", "water_heating_safety": "water_heating", "electricity_safety": "electricity"}


@dataclass
class CityChunk:
    """One chunk of a district's register, with city-wide ids.

    Attributes
    ----------
    district_code, index
        District and chunk number within it.
    elders
        id, district_code, street_code, street, community_code, visit_steward, service_steward,
        status, willing, birth_date, lon, lat, geocode_quality.
    stewards
        Stewards first seen in this chunk: code, district_code, street_code, community_code, name,
        kind, lon, lat, work_days, max_work_minutes, travel_mode.
    visits
        id, district_code, elder_id, visited_on, mode, effective, visitor_role, steward_code,
        started_at, ended_at.
    hazards
        id, district_code, elder_id, kind, severity, opened_on, deadline, closed_on.
    """

    district_code: str
    index: int
    elders: pd.DataFrame
    stewards: pd.DataFrame
    visits: pd.DataFrame
    hazards: pd.DataFrame


def _split(n: int, chunk: int) -> list[int]:
    k = max(1, -(-n // max(1, chunk)))
    base, extra = divmod(n, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def iter_city_chunks(
    city: City,
    elders: int,
    *,
    chunk: int = CHUNK,
    seed: int = 1,
    reference_date: date = REFERENCE_DATE,
) -> Iterator[CityChunk]:
    """Yield the city's register in chunks of at most ``chunk`` elders.

    Parameters
    ----------
    city
        The districts (:func:`gridmap.scale.city.make_city`).
    elders
        Elders in the whole city, split over districts by weight.
    chunk
        Most elders per chunk.
    seed
        Random seed (same seed and city, same chunks).
    reference_date
        "Today" of the register.
    """
    from gridmap.layers.service_points import generate_care_stations
    from gridmap.synth.register import generate_register

    shares = city.shares(int(elders))
    next_elder, next_visit, next_hazard = 1, 1, 1
    for di, d in enumerate(city.districts):
        n = shares[d.code]
        if n <= 0:
            continue
        if d.service_points is None:
            d.service_points = generate_care_stations(d.communities, d.streets, seed=seed)
        seen: set[str] = set()
        street_code = dict(zip(d.communities["code"].astype(str), d.communities["street_code"].astype(str),
                               strict=True))
        for ci, size in enumerate(_split(n, chunk)):
            cseed = int(seed) * 1_000_003 + di * 1009 + ci
            reg = generate_register(d.layers(), size, cseed, reference_date=reference_date, near_roads=False)
            rng = np.random.default_rng(cseed + 7)
            E = reg.elders
            ids = np.arange(next_elder, next_elder + len(E), dtype=np.int64)
            next_elder += len(E)
            u = rng.random(len(E))
            status = np.where(u < 0.01, "in_hospital", np.where(u < 0.03, "moved_out", "active"))
            el = pd.DataFrame({
                "id": ids, "district_code": d.code, "street_code": E["street_code"].astype(str).to_numpy(),
                "street": E["街道（乡镇）"].astype(str).to_numpy(),
                "community_code": E["community_code"].astype(str).to_numpy(),
                "visit_steward": E["visit_steward_code"].astype(str).to_numpy(),
                "service_steward": E["service_steward_code"].astype(str).to_numpy(),
                "status": status, "willing": E["是否愿意接受探访"].to_numpy(dtype=bool),
                "birth_date": pd.to_datetime(E["birth_date"]).dt.date.to_numpy(),
                "lon": E["经度"].to_numpy(dtype=float), "lat": E["纬度"].to_numpy(dtype=float),
                "geocode_quality": E["geocode_quality"].astype(str).to_numpy(),
            })
            S = reg.stewards
            S = S[~S["code"].isin(seen)]
            seen.update(S["code"])
            st = pd.DataFrame({
                "code": S["code"].to_numpy(), "district_code": d.code,
                "street_code": [street_code.get(str(c)) for c in S["community_code"]],
                "community_code": S["community_code"].astype(str).to_numpy(), "name": S["name"].to_numpy(),
                "kind": S["kind"].to_numpy(), "lon": S["base_lon"].to_numpy(dtype=float),
                "lat": S["base_lat"].to_numpy(dtype=float), "work_days": S["work_days"].to_numpy(),
                "max_work_minutes": S["max_work_minutes"].to_numpy(dtype=int),
                "travel_mode": S["travel_mode"].to_numpy(),
            })
            V = reg.visits
            vids = np.arange(next_visit, next_visit + len(V), dtype=np.int64)
            next_visit += len(V)
            vi = pd.DataFrame({
                "id": vids, "district_code": d.code, "elder_id": ids[V["elder_index"].to_numpy(dtype=int)],
                "visited_on": pd.to_datetime(V["visited_on"]).dt.date.to_numpy(), "mode": V["mode"].to_numpy(),
                "effective": rng.random(len(V)) >= 0.02, "visitor_role": V["visitor_role"].to_numpy(),
                "steward_code": V["steward_code"].to_numpy(), "started_at": V["started_at"].to_numpy(),
                "ended_at": V["ended_at"].to_numpy(),
            })
            hz = _hazards(rng, V, vi, reference_date, next_hazard, d.code)
            next_hazard += len(hz)
            yield CityChunk(d.code, ci, el, st, vi, hz)


def _hazards(rng: np.random.Generator, V: pd.DataFrame, vi: pd.DataFrame, ref: date, first_id: int,
             code: str) -> pd.DataFrame:
    parts = []
    for col, kind in _SAFETY_KINDS.items():
        if col not in V.columns:
            continue
        ans = V[col].astype(object).to_numpy()
        m = (ans == "unsafe") | (ans == "fairly_safe")
        if not m.any():
            continue
        unsafe = ans[m] == "unsafe"
        opened = pd.to_datetime(vi["visited_on"].to_numpy()[m])
        deadline = opened + pd.to_timedelta(np.where(unsafe, 7, 30), unit="D")
        closes = rng.random(int(m.sum())) < 0.7
        closed = opened + pd.to_timedelta(rng.integers(1, 41, int(m.sum())), unit="D")
        closed = pd.Series(closed).where(closes & (closed <= pd.Timestamp(ref)))
        parts.append(pd.DataFrame({
            "elder_id": vi["elder_id"].to_numpy()[m], "kind": kind,
            "severity": np.where(unsafe, "high", "low"), "opened_on": opened.date,
            "deadline": deadline.date, "closed_on": [None if pd.isna(x) else x.date() for x in closed],
        }))
    if not parts:
        return pd.DataFrame(columns=["id", "district_code", "elder_id", "kind", "severity", "opened_on", "deadline",
                                     "closed_on"])
    h = pd.concat(parts, ignore_index=True)
    h.insert(0, "district_code", code)
    h.insert(0, "id", np.arange(first_id, first_id + len(h), dtype=np.int64))
    return h


def reference_monday(reference_date: date = REFERENCE_DATE) -> date:
    """Monday of the reference date's week (the first week without history)."""
    return reference_date - timedelta(days=reference_date.weekday())


__all__ = ["CHUNK", "REFERENCE_DATE", "CityChunk", "iter_city_chunks", "reference_monday"]
