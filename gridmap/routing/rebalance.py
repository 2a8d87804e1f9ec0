"""Rebalance elders between visit stewards: a pure proposal of moves that evens out weekly workload.

:func:`rebalance` takes the stewards (capacity in minutes per week, base), the
elders (current steward, home, weekly minutes) and a travel function, and
greedily moves elders from the most loaded steward to a nearby steward with
spare capacity while that lowers the overload, preferring elders close to the
receiving steward's base. It never writes anything; the dashboard (or a CLI)
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
        Columns ``steward_id``, ``capacity`` (minutes/week), ``lon``, ``lat`` (base).
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
        lowers the total overload.

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
    cap = stewards.set_index("steward_id")["capacity"].astype(float)
    base = {s: (float(x), float(y)) for s, x, y in stewards[["steward_id", "lon", "lat"]].itertuples(index=False)}
    owner = dict(zip(elders["elder_id"], elders["steward_id"], strict=True))
    minutes = dict(zip(elders["elder_id"], elders["minutes"].astype(float), strict=True))
    home = {e: (float(x), float(y)) for e, x, y in elders[["elder_id", "lon", "lat"]].itertuples(index=False)}
    load = elders.groupby("steward_id")["minutes"].sum().reindex(cap.index, fill_value=0.0).astype(float)
    before = load.copy()
    if balance is not None and len(load):
        cap = cap.clip(upper=max(float(load.mean()) * balance, 1.0))
    moves: list[dict[str, object]] = []
    notes: list[str] = []
    tcache: dict[tuple[object, object], float] = {}
    by_steward: dict[object, list[object]] = {}
    for e, s in owner.items():
        by_steward.setdefault(s, []).append(e)
    while len(moves) < max_moves:
        over = (load - cap)
        if over.max() <= 1e-9:
            break
        moved = False
        for s in over[over > 1e-9].sort_values(ascending=False).index:
            best: tuple[float, object, object] | None = None
            for e in by_steward.get(s, []):
                if any(np.isnan(home[e])):
                    continue
                for t, b in base.items():
                    if t == s or any(np.isnan(b)):
                        continue
                    tt = tcache.get((e, t))
                    if tt is None:
                        tt = tcache[(e, t)] = travel(home[e], b)
                    if tt > max_travel_minutes:
                        continue
                    m = minutes[e]
                    gain = (max(load[s] - cap[s], 0) + max(load[t] - cap[t], 0)
                            - max(load[s] - m - cap[s], 0) - max(load[t] + m - cap[t], 0))
                    if gain <= 1e-9:
                        continue
                    score = gain - 0.1 * tt
                    if best is None or score > best[0]:
                        best = (score, e, t)
            if best is not None:
                _score, e, t = best
                m = minutes[e]
                load[s] -= m
                load[t] += m
                by_steward[s].remove(e)
                by_steward.setdefault(t, []).append(e)
                owner[e] = t
                moves.append({"elder_id": e, "from_steward": s, "to_steward": t, "minutes": m})
                moved = True
                break
        if not moved:
            notes.append("部分管家仍超负荷：附近没有有余量的管家（需增加人手或调整网格）")
            break
    return Proposal(pd.DataFrame(moves, columns=["elder_id", "from_steward", "to_steward", "minutes"]),
                    before, load, cap, notes)
