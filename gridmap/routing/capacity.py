"""Workforce sizing (人手测算): per community, the steward-hours the rules require, the hours available, the gap.

Required hours of a community = the weekly workload of its grids as :mod:`gridmap.routing.territory`
estimates it (service minutes from the rules + travel), each grid counted for the steward who holds it
now. Available hours = the weekly hours of the community's active 探访管家 (``max_work_minutes`` × working
days). A gap is closed by ``stewards_needed`` more visit stewards of :data:`STEWARD_WEEK_MINUTES` each, or
by the 服务管家 of the street whose base is within :data:`NEAR_MINUTES` walking minutes of the community's
centre (nearest first, each lending up to :data:`HELPER_SHARE` of its week, a documented assumption: most
of a service steward's week goes to care services).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from gridmap.routing.territory import GridUnit, StewardUnit, elder_minutes, straight_minutes

__all__ = ["HELPER_SHARE", "NEAR_MINUTES", "STEWARD_WEEK_MINUTES", "CommunityCapacity", "community_capacity",
           "street_capacity"]

#: A full-time visit steward's week (6 h × 5 days), minutes.
STEWARD_WEEK_MINUTES = 1800.0
#: A service steward within this many walking minutes of a community's centre counts as nearby.
NEAR_MINUTES = 30.0
#: Share of a nearby service steward's week assumed free for visits.
HELPER_SHARE = 0.25


@dataclass
class CommunityCapacity:
    """One community's week: hours required and available, the gap and who could close it."""

    street: str
    community: str
    community_name: str
    stewards: int
    required_hours: float
    available_hours: float
    gap_hours: float
    stewards_needed: int
    helpers: list[dict[str, Any]] = field(default_factory=list)
    helper_hours: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def community_capacity(street: str, grids: list[GridUnit], stewards: list[StewardUnit],
                       community_names: dict[str, str], helpers: list[dict[str, Any]],
                       centres: dict[str, tuple[float, float]]) -> list[CommunityCapacity]:
    """Required and available hours per community of one street (pure; see the module docstring)."""
    st = {s.code: s for s in stewards}
    req: dict[str, float] = {}
    for g in grids:
        owner = st.get(g.owner or "")
        if owner is None:  # nobody holds it: the community's own steward would
            owner = next((s for s in stewards if s.community == g.community), None)
        req[g.community] = req.get(g.community, 0.0) + sum(
            elder_minutes(e, g, owner) if owner else e.service_minutes + e.visits * g.hop_minutes for e in g.elders)
    out = []
    for c in sorted(set(req) | {s.community for s in stewards}):
        mine = [s for s in stewards if s.community == c]
        need, have = req.get(c, 0.0), sum(s.capacity for s in mine)
        gap = max(0.0, need - have)
        near = []
        if gap > 0 and c in centres:
            for h in sorted(helpers, key=lambda h: straight_minutes(h["base"], centres[c])):
                d = straight_minutes(h["base"], centres[c])
                if d > NEAR_MINUTES or sum(x["hours"] for x in near) * 60 >= gap:
                    break
                near.append({"steward": h["steward"], "name": h["name"], "organisation": h["organisation"],
                             "kind": "service", "minutes_away": round(d, 1),
                             "hours": round(h["minutes"] * HELPER_SHARE / 60, 1)})
        out.append(CommunityCapacity(street, c, community_names.get(c, c), len(mine), round(need / 60, 1),
                                     round(have / 60, 1), round(gap / 60, 1),
                                     math.ceil(gap / STEWARD_WEEK_MINUTES - 1e-9) if gap > 0 else 0, near,
                                     round(sum(x["hours"] for x in near), 1)))
    return out


def street_capacity(engine: Engine, street: str, week: str, *, rules: Any = None) -> list[CommunityCapacity]:
    """:func:`community_capacity` of ``street`` read from the store."""
    from gridmap.routing.rebalance_store import helpers_near, load_street

    u = load_street(engine, street, week, rules=rules)
    helpers, centres = helpers_near(engine, street)
    return community_capacity(street, u.grids, u.stewards, u.community_names, helpers, centres)
