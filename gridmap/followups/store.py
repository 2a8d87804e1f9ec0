"""Store of the follow-ups: the one module with the SQL of hazards, referrals, their events,
joint inspections, escalation and the notification outbox (both backends).

Reads return pandas DataFrames (the measures and the dashboard read them); every write is one
transaction with its change-feed row and the optimistic version check of the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from gridmap.domain.enums import HazardStatus, ReferralStatus
from gridmap.store.models import Community, Elder, Grid, Hazard, Referral, Street

HAZARD_COLUMNS = ["id", "elder_id", "street", "community", "grid", "owner_unit", "kind", "severity", "status",
                  "opened_on", "deadline", "closed_on", "reopened_count", "lon", "lat",
                  "description", "status_reason", "transferred_to", "inspection_id", "version"]
REFERRAL_COLUMNS = ["id", "elder_id", "street", "community", "target", "receiver", "emergency", "status",
                    "opened_at", "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at",
                    "resolved", "satisfaction", "kind", "need", "outcome", "version"]


def _statuses(status: Any, enum: type[HazardStatus] | type[ReferralStatus]) -> list[str] | None:
    """Codes of the statuses asked for: one code or Chinese label, or several; None: all."""
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    return [str(enum.from_label(str(s)).value) for s in items]


def read_hazard_frame(engine: Engine, *, street: str | None = None,
                      status: str | Iterable[str] | None = None,
                      elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Hazards with where they are: one row per hazard, oldest first.

    Columns: id, elder_id, street, community, grid (code), owner_unit, kind, severity, status (codes),
    opened_on, deadline (= due on, a date), closed_on, reopened_count, lon, lat, and description,
    status_reason, transferred_to, inspection_id, version.

    Parameters
    ----------
    street
        Only hazards of elders living in this street (name).
    status
        A status code or Chinese label (or several); None: every status.
    """
    q = (select(Hazard.id, Hazard.elder_id, Street.name.label("street"), Community.name.label("community"),
                Grid.code.label("grid"), Hazard.owner_unit, Hazard.kind, Hazard.severity, Hazard.status,
                Hazard.opened_on, Hazard.deadline, Hazard.closed_on, Hazard.reopened_count,
                Hazard.geom, Elder.geom.label("elder_geom"), Hazard.description, Hazard.status_reason,
                Hazard.transferred_to, Hazard.inspection_id, Hazard.version)
         .select_from(Hazard)
         .outerjoin(Elder, Elder.id == Hazard.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .outerjoin(Grid, Grid.id == Elder.grid_id)
         .order_by(Hazard.opened_on, Hazard.id))
    if street is not None:
        q = q.where(Street.name == street)
    codes = _statuses(status, HazardStatus)
    if codes is not None:
        q = q.where(Hazard.status.in_(codes))
    if elder_ids is not None:
        q = q.where(Hazard.elder_id.in_(list(elder_ids)))
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(q).mappings():
            d = dict(r)
            g = d.pop("geom")
            eg = d.pop("elder_geom")
            g = g if g is not None else eg
            d["lon"], d["lat"] = (g.x, g.y) if g is not None else (None, None)
            for k in ("kind", "severity", "status"):
                d[k] = str(d[k].value if hasattr(d[k], "value") else d[k])
            d["reopened_count"] = int(d["reopened_count"] or 0)
            rows.append(d)
    return pd.DataFrame(rows, columns=HAZARD_COLUMNS)


def read_referral_frame(engine: Engine, *, street: str | None = None,
                        status: str | Iterable[str] | None = None,
                        elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Referrals with where their elder lives: one row per referral, oldest first.

    Columns: id, elder_id, street, community, target (code), receiver (the target's name), emergency,
    status (code), opened_at, deadline, acknowledged_at, in_progress_at, closed_at, escalated_at
    (timestamps, UTC-aware), resolved, satisfaction (code or None), and kind ('emergency' or 'need'),
    need, outcome, version.
    """
    q = (select(Referral.id, Referral.elder_id, Street.name.label("street"), Community.name.label("community"),
                Referral.target, Referral.target_name.label("receiver"), Referral.emergency, Referral.status,
                Referral.opened_at, Referral.deadline, Referral.acknowledged_at, Referral.in_progress_at,
                Referral.closed_at, Referral.escalated_at, Referral.resolved, Referral.satisfaction,
                Referral.need, Referral.outcome, Referral.version)
         .select_from(Referral)
         .outerjoin(Elder, Elder.id == Referral.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .order_by(Referral.opened_at, Referral.id))
    if street is not None:
        q = q.where(Street.name == street)
    codes = _statuses(status, ReferralStatus)
    if codes is not None:
        q = q.where(Referral.status.in_(codes))
    if elder_ids is not None:
        q = q.where(Referral.elder_id.in_(list(elder_ids)))
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(q).mappings():
            d = dict(r)
            for k in ("target", "status", "satisfaction"):
                if d[k] is not None:
                    d[k] = str(d[k].value if hasattr(d[k], "value") else d[k])
            d["emergency"] = bool(d["emergency"])
            d["kind"] = "emergency" if d["emergency"] else "need"
            rows.append(d)
    df = pd.DataFrame(rows, columns=REFERRAL_COLUMNS)
    for k in ("opened_at", "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at"):
        df[k] = pd.to_datetime(df[k], utc=True)
    return df


__all__ = ["HAZARD_COLUMNS", "REFERRAL_COLUMNS", "read_hazard_frame", "read_referral_frame"]
