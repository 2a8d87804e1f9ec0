"""Store of issue 17 part B's views: the one module with the SQL of stations, family doctors and 重点摸排
(reads), and the one write: an elder's 驿站 (``elder.station_id``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update

from gridmap.store.models import (
    Community,
    Elder,
    RegisterChange,
    ServiceStation,
    Street,
    Visit,
)

if TYPE_CHECKING:
    import pandas as pd

CARE_ELDER_COLUMNS = ["elder_id", "street", "community", "status", "willing", "age", "categories", "signed",
                      "station_id", "station", "family_doctor_signed", "wants_family_doctor", "lon", "lat"]


def read_care_elders(engine: Engine, on: date, *, street: str | None = None) -> pd.DataFrame:
    """Elders as :mod:`gridmap.care.domain` needs them (:data:`CARE_ELDER_COLUMNS`; age on ``on``)."""
    import pandas as pd

    from gridmap.domain.idcard import age_on

    q = (select(Elder.id, Street.name.label("street"), Community.name.label("community"), Elder.status,
                Elder.willing_to_be_visited, Elder.birth_date, Elder.categories, Elder.signed_care_station,
                Elder.signed_home_care_bed, Elder.station_id, ServiceStation.name.label("station"),
                Elder.family_doctor_signed, Elder.wants_family_doctor, Elder.geom)
         .select_from(Elder).outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .outerjoin(ServiceStation, ServiceStation.id == Elder.station_id).order_by(Elder.id))
    if street is not None:
        q = q.where(Street.name == street)
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(q).mappings():
            g = r["geom"]
            rows.append({
                "elder_id": int(r["id"]), "street": r["street"], "community": r["community"],
                "status": str(r["status"]), "willing": bool(r["willing_to_be_visited"]),
                "age": age_on(r["birth_date"], on) if r["birth_date"] else None,
                "categories": [str(c) for c in (r["categories"] or [])],
                "signed": bool(r["signed_care_station"]) or bool(r["signed_home_care_bed"]),
                "station_id": r["station_id"], "station": r["station"],
                "family_doctor_signed": r["family_doctor_signed"], "wants_family_doctor": r["wants_family_doctor"],
                "lon": g.x if g is not None else None, "lat": g.y if g is not None else None})
    df = pd.DataFrame(rows, columns=CARE_ELDER_COLUMNS)
    df["station_id"] = df["station_id"].astype("Int64")
    return df


def read_care_visits(engine: Engine, start: date, end: date, *, elder_ids: Any = None) -> pd.DataFrame:
    """Visits from ``start`` to ``end``: elder_id, visited_on, mode, effective, visitor_role (codes)."""
    import pandas as pd

    q = (select(Visit.elder_id, Visit.visited_on, Visit.mode, Visit.effective, Visit.visitor_role)
         .where(Visit.visited_on >= start, Visit.visited_on <= end).order_by(Visit.id))
    if elder_ids is not None:
        q = q.where(Visit.elder_id.in_([int(e) for e in elder_ids]))
    with engine.connect() as conn:
        rows = [(int(e), d, str(m), bool(ef), str(r)) for e, d, m, ef, r in conn.execute(q)]
    return pd.DataFrame(rows, columns=["elder_id", "visited_on", "mode", "effective", "visitor_role"])


def read_points(engine: Engine) -> pd.DataFrame:
    """Service points: id, name, kind (code), street, lon, lat."""
    import pandas as pd

    q = (select(ServiceStation.id, ServiceStation.name, ServiceStation.kind, Street.name.label("street"),
                ServiceStation.geom).select_from(ServiceStation)
         .outerjoin(Street, Street.id == ServiceStation.street_id).order_by(ServiceStation.id))
    with engine.connect() as conn:
        rows = [(int(i), n, str(k), s, g.x if g is not None else None, g.y if g is not None else None)
                for i, n, k, s, g in conn.execute(q)]
    return pd.DataFrame(rows, columns=["id", "name", "kind", "street", "lon", "lat"])


def assign_stations(engine: Engine, *, user: str, only_missing: bool = True,
                    elder_ids: Any = None) -> int:
    """Give each elder signed with a 驿站 or a home care bed (and without one recorded) the nearest care
    station; returns how many were set. History rows and one change-feed row in the same transaction."""

    from gridmap.care.domain import nearest_points

    pts = read_points(engine)
    pts = pts[pts["kind"] == "care_station"].reset_index(drop=True)
    if pts.empty:
        return 0
    q = (select(Elder.id, Elder.station_id, Elder.geom)
         .where((Elder.signed_care_station.is_(True)) | (Elder.signed_home_care_bed.is_(True))))
    if only_missing:
        q = q.where(Elder.station_id.is_(None))
    if elder_ids is not None:
        q = q.where(Elder.id.in_([int(e) for e in elder_ids]))
    with engine.connect() as conn:
        rows = [(int(i), s, g) for i, s, g in conn.execute(q) if g is not None]
    if not rows:
        return 0
    near = nearest_points([g.x for _, _, g in rows], [g.y for _, _, g in rows], pts)
    now = datetime.now(UTC)
    changes = []
    for (eid, old, _), j in zip(rows, near["point_index"], strict=True):
        if j < 0:
            continue
        sid = int(pts["id"].iat[int(j)])
        if old != sid:
            changes.append((eid, old, sid))
    if not changes:
        return 0
    et = Elder.__table__
    with engine.begin() as conn:
        for eid, old, sid in changes:
            conn.execute(update(et).where(et.c.id == eid).values(station_id=sid, version=et.c.version + 1))
        hist = [{"entity": "elder", "entity_id": e, "elder_id": e, "field": "station_id",
                 "old_value": None if o is None else str(o), "new_value": str(s), "changed_by": user,
                 "changed_at": now, "source": "station", "reason": "签约驿站：就近养老服务驿站"} for e, o, s in changes]
        for i in range(0, len(hist), 5000):
            conn.execute(RegisterChange.__table__.insert(), hist[i:i + 5000])
        from gridmap.followups.store import _feed

        _feed(conn, "elder", [e for e, _, _ in changes], by=user, detail={"stations_assigned": len(changes)})
    return len(changes)
