"""Retired: the elder-moving greedy rebalancing (kept importable for old callers; the planner moves grids, see :mod:`gridmap.routing.rebalance`).

:func:`rebalance` takes the stewards (capacity in minutes per week, base), the
elders (current steward, home, weekly minutes) and a travel function, and
greedily moves elders from the most loaded steward to a nearby steward while
that lowers the sum of squared minutes above the limit (capacity, or
``balance`` × the mean load), preferring elders close to the receiving
steward's base. It never writes anything; the dashboard (or a CLI)
shows the proposal and records it when accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridmap._errors import ValidationError

__all__ = ["Proposal", "haversine_minutes", "rebalance"]

TravelFn = Callable[[tuple[float, float], tuple[float, float]], float]


def haversine_minutes(a: tuple[float, float], b: tuple[float, float], *, metres_per_minute: float = 70.0,
                      detour: float = 1.3) -> float:
    """Walking minutes between two (lon, lat) points: great-circle distance × detour ÷ speed."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h)) * detour / metres_per_minute


@dataclass
class Proposal:
    """Moves (elder_id, from_steward, to_steward, minutes) and the load per steward before and after.

    ``capacity`` is the limit the proposal worked to: the weekly capacity, or
    ``balance`` × the mean load when that is lower.
    """

    moves: pd.DataFrame
    before: pd.Series
    after: pd.Series
    capacity: pd.Series
    notes: list[str] = field(default_factory=list)

    @property
    def overload_before(self) -> float:
        """Minutes above capacity, summed over stewards, before."""
        return float((self.before - self.capacity).clip(lower=0).sum())

    @property
    def imbalance_before(self) -> float:
        """Sum of squared minutes above the limit, before (what :func:`rebalance` lowers)."""
        return float(((self.before - self.capacity).clip(lower=0) ** 2).sum())

    @property
    def imbalance_after(self) -> float:
        """Sum of squared minutes above the limit, after."""
        return float(((self.after - self.capacity).clip(lower=0) ** 2).sum())

    @property
    def max_after(self) -> float:
        """Largest weekly load after the moves."""
        return float(self.after.max()) if len(self.after) else 0.0

    @property
    def overload_after(self) -> float:
        """Minutes above capacity, summed over stewards, after."""
        return float((self.after - self.capacity).clip(lower=0).sum())


def rebalance(
    stewards: pd.DataFrame,
    elders: pd.DataFrame,
    travel: TravelFn = haversine_minutes,
    *,
    max_travel_minutes: float = 30.0,
    max_moves: int = 500,
    balance: float | None = 1.3,
) -> Proposal:
    """Propose elder moves that reduce minutes above each steward's weekly capacity.

    Parameters
    ----------
    stewards
        Columns ``steward_id``, ``capacity`` (minutes/week), ``lon``, ``lat`` (base), and optionally
        ``receives`` (bool): only those may be given an elder (e.g. active 探访管家 of the street; an
        elder of any steward listed may be moved away). Without it every steward may receive.
    elders
        Columns ``elder_id``, ``steward_id``, ``minutes`` (weekly), ``lon``, ``lat``.
    travel
        Minutes between two (lon, lat) points; an elder moves only to a steward
        whose base is within ``max_travel_minutes`` of the elder's home.
    max_moves
        Upper bound on moves (keeps proposals reviewable).
    balance
        Also treat minutes above ``balance`` × the mean load as overload, so that
        the proposal evens out the work even when nobody exceeds the capacity
        (``None``: capacity only).

    Returns
    -------
    Proposal
        Never worse than the current assignment: a move is made only when it
        lowers the sum of squared minutes above the limit.

    Raises
    ------
    ValidationError
        When a required column is missing.
    """
    for name, df, cols in (("stewards", stewards, ("steward_id", "capacity", "lon", "lat")),
                           ("elders", elders, ("elder_id", "steward_id", "minutes", "lon", "lat"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValidationError(f"{name} lacks columns {missing}", f"{name} 缺少列 {missing}", field=name,
                                  code="columns")
    cap_s = stewards.set_index("steward_id")["capacity"].astype(float)
    sids = list(cap_s.index)
    eids = list(elders["elder_id"])
    sidx = {s: i for i, s in enumerate(sids)}
    owner = np.array([sidx.get(s, -1) for s in elders["steward_id"]])
    minutes = elders["minutes"].to_numpy(dtype=float)
    load0 = np.bincount(owner[owner >= 0], weights=minutes[owner >= 0], minlength=len(sids)).astype(float)
    cap = cap_s.to_numpy(dtype=float).copy()
    if balance is not None and len(load0):
        cap = np.minimum(cap, max(float(load0.mean()) * balance, 1.0))
    # travel minutes elder home -> steward base (inf where unknown or beyond the limit)
    ex, ey = elders["lon"].to_numpy(dtype=float), elders["lat"].to_numpy(dtype=float)
    bx = stewards.set_index("steward_id").loc[sids, "lon"].to_numpy(dtype=float)
    by = stewards.set_index("steward_id").loc[sids, "lat"].to_numpy(dtype=float)
    if travel is haversine_minutes:
        lon1, lat1, lon2, lat2 = (np.radians(a) for a in (ex[:, None], ey[:, None], bx[None, :], by[None, :]))
        h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        T = 2 * 6371008.8 * np.arcsin(np.sqrt(h)) * 1.3 / 70.0
    else:
        T = np.array([[travel((x, y), (u, v)) for u, v in zip(bx, by, strict=True)]
                      for x, y in zip(ex, ey, strict=True)]).reshape(len(ex), len(bx))
    T = np.where(np.isnan(T) | (T > max_travel_minutes), np.inf, T)
    if "receives" in stewards.columns:  # a steward that may not receive an elder is never a move's target
        receives = stewards.set_index("steward_id").loc[sids, "receives"].eq(True).to_numpy(dtype=bool)
        T[:, ~receives] = np.inf
    load = load0.copy()
    moves: list[dict[str, object]] = []
    notes: list[str] = []

    def sq(x: np.ndarray, c: np.ndarray | float) -> np.ndarray:
        return np.maximum(x - c, 0.0) ** 2

    while len(moves) < max_moves:
        excess = load - cap
        if not len(excess) or excess.max() <= 1e-9:
            break
        moved = False
        for s in np.argsort(-excess):
            if excess[s] <= 1e-9:
                break
            mine = np.flatnonzero(owner == s)
            if not len(mine):
                continue
            m = minutes[mine][:, None]
            # squared excess: also evens out load when everybody is above the limit
            gain = (sq(load[s], cap[s]) + sq(load, cap)[None, :]
                    - sq(load[s] - m, cap[s]) - sq(load[None, :] + m, cap[None, :]))
            gain[:, s] = -np.inf
            score = np.where(np.isfinite(T[mine]) & (gain > 1e-9), gain - 0.1 * T[mine], -np.inf)
            k = int(np.argmax(score))
            i, t = divmod(k, len(sids))
            if not np.isfinite(score[i, t]):
                continue
            e = mine[i]
            load[s] -= minutes[e]
            load[t] += minutes[e]
            owner[e] = t
            moves.append({"elder_id": eids[e], "from_steward": sids[s], "to_steward": sids[t],
                          "minutes": float(minutes[e])})
            moved = True
            break
        if not moved:
            if (load > cap_s.to_numpy(dtype=float)).any():
                notes.append("部分管家仍超出每周可用时长：附近没有有余量的管家（需增加人手或调整网格）")
            break
    # one row per elder: where it started and where it ends (an elder may have moved twice)
    final: dict[object, dict[str, object]] = {}
    for mv in moves:
        if mv["elder_id"] in final:
            final[mv["elder_id"]]["to_steward"] = mv["to_steward"]
        else:
            final[mv["elder_id"]] = dict(mv)
    moves = [mv for mv in final.values() if mv["from_steward"] != mv["to_steward"]]
    before = pd.Series(load0, index=cap_s.index)
    after = pd.Series(load, index=cap_s.index)
    cap = pd.Series(cap, index=cap_s.index)
    return Proposal(pd.DataFrame(moves, columns=["elder_id", "from_steward", "to_steward", "minutes"]),
                    before, after, cap, notes)
