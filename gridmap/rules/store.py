"""Store layer of the visit rules: read facts, visits, hazards and events; record visits and follow-ups.

The only module of :mod:`gridmap.rules` that talks to the database (SQLAlchemy
Core/ORM, both backends). Reads select only the columns and rows needed
(aggregates such as the open-hazard count and the last visit are computed in
SQL); the domain modules get plain dataclasses and DataFrames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point
from sqlalchemy import Engine, LargeBinary, String, and_, func, or_, select, type_coerce

from gridmap._errors import ValidationError
from gridmap.domain.enums import DeviceStatus, HazardStatus, ReferralStatus, ReferralTarget
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.facts import ElderFacts, Event
from gridmap.rules.followups import hazards_from_visit, referrals_from_visit
from gridmap.rules.visits import ANSWER_FIELDS, VisitRecord
from gridmap.store.db import session_scope
from gridmap.store.models import (
    CalendarEvent,
    CareService,
    Community,
    Device,
    Elder,
    FirstContact,
    Hazard,
    Referral,
    RegisterChange,
    Steward,
    Street,
    Visit,
    utcnow,
)

_BEIJING = timezone(timedelta(hours=8))


def _effective_clause(rules: Rules) -> Any:
    return and_(Visit.effective.is_(True),
                Visit.mode.in_([m.value for m in rules.effective_modes]),
                Visit.visitor_role.in_([r.value for r in rules.credited_roles]))


def resolve_steward(engine: Engine, steward: str | int) -> int:
    """A steward's id from its id or code.

    Raises
    ------
    ValidationError
        When no steward has that id or code.
    """
    with engine.connect() as conn:
        q = select(Steward.id).where(Steward.code == str(steward))
        sid = conn.execute(q).scalar()
        if sid is None and str(steward).isdigit():
            sid = conn.execute(select(Steward.id).where(Steward.id == int(steward))).scalar()
    if sid is None:
        raise ValidationError("no steward with this id or code", "未找到该管家（编号或代码）",
                              field="steward", value=steward, code="unknown_steward")
    return int(sid)


def read_facts(
    engine: Engine,
    on: date,
    *,
    street: str | None = None,
    steward_id: int | None = None,
    elder_ids: Sequence[int] | None = None,
    rules: Rules | None = None,
    programme_only: bool = True,
    last_visits: bool = True,
) -> list[ElderFacts]:
    """ElderFacts of the register as of ``on`` (visits strictly before ``on`` count as "last").

    Parameters
    ----------
    street
        Only elders whose usual residence is in this street (name).
    steward_id
        Only elders of this visit steward.
    elder_ids
        Only these elders.
    programme_only
        Only elders whose status is in the programme (rules ``programme_statuses``).
    last_visits
        Read each elder's last effective visit and its answers (``False``: left
        empty, for writers that need only who and where the elder is).
    """
    rules = rules or load_rules()
    # the elders asked for, as a subquery: the visit and hazard aggregates below read only their rows
    # (through ix_visit_elder_date / ix_hazard_elder_id) instead of the whole tables
    scope = None
    if street is not None or steward_id is not None:
        scope = select(Elder.id)
        if street is not None:
            scope = scope.where(Elder.street_id.in_(select(Street.id).where(Street.name == street)))
        if steward_id is not None:
            scope = scope.where(Elder.visit_steward_id == steward_id)
    # last effective visit before `on`, with its answers (window function: both backends)
    rn = func.row_number().over(partition_by=Visit.elder_id,
                                order_by=(Visit.visited_on.desc(), Visit.id.desc())).label("rn")
    ans_cols = [getattr(Visit, k) for k in ANSWER_FIELDS]
    lv = (select(Visit.elder_id, Visit.visited_on, *ans_cols, rn)
          .where(Visit.visited_on < on, _effective_clause(rules)))
    hz = (select(Hazard.elder_id, func.count().label("n"))
          .where(Hazard.status != HazardStatus.CLOSED, Hazard.opened_on <= on))
    if elder_ids is not None:
        lv = lv.where(Visit.elder_id.in_(list(elder_ids)))
        hz = hz.where(Hazard.elder_id.in_(list(elder_ids)))
    if scope is not None:
        lv = lv.where(Visit.elder_id.in_(scope))
        hz = hz.where(Hazard.elder_id.in_(scope))
    lv = lv.subquery()
    # read on its own and matched by elder id here: outer-joined to the elders, SQLite scanned the whole
    # window result once per elder (no index on it), quadratic in a street's size
    lvq = select(*[c for c in lv.c if c.name != "rn"]).where(lv.c.rn == 1)
    hz = hz.group_by(Hazard.elder_id).subquery()
    fc = select(FirstContact.elder_id).where(FirstContact.valid.is_(True)).subquery()

    q = (select(Elder.id, Elder.birth_date, Elder.categories, Elder.disability_level,
                Elder.welfare_status, Elder.dispersed_support, Elder.willing_to_be_visited,
                Elder.signed_care_station, Elder.signed_home_care_bed, Elder.status,
                Elder.family_doctor_signed, Elder.wants_family_doctor, Elder.street_id,
                Street.name.label("street"), Elder.community_id, Community.name.label("community"),
                Elder.grid_id, Elder.visit_steward_id, Elder.service_steward_id, Elder.geom,
                func.coalesce(hz.c.n, 0).label("open_hazards"),
                fc.c.elder_id.label("fc"))
         .select_from(Elder)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .outerjoin(hz, hz.c.elder_id == Elder.id)
         .outerjoin(fc, fc.c.elder_id == Elder.id)
         .order_by(Elder.id))
    if programme_only:
        q = q.where(Elder.status.in_([s.value for s in rules.programme_statuses]))
    if street is not None:
        q = q.where(Street.name == street)
    if steward_id is not None:
        q = q.where(Elder.visit_steward_id == steward_id)
    if elder_ids is not None:
        q = q.where(Elder.id.in_(list(elder_ids)))
    dq = (select(Device.elder_id, Device.kind)
          .where(Device.status == DeviceStatus.INSTALLED))
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
        ids = [r["id"] for r in rows]
        last = {r["elder_id"]: r for r in conn.execute(lvq).mappings()} if ids and last_visits else {}
        devices: dict[int, set[Any]] = {}
        if ids:
            if elder_ids is not None or street is not None or steward_id is not None:
                dq = dq.where(Device.elder_id.in_(ids))
            for eid, kind in conn.execute(dq):
                devices.setdefault(eid, set()).add(kind)
    out = []
    none: dict[str, Any] = {}
    for r in rows:
        geom = r["geom"]
        lr = last.get(r["id"], none)
        out.append(ElderFacts(
            id=r["id"], birth_date=r["birth_date"], categories=frozenset(r["categories"] or ()),
            disability_level=r["disability_level"], welfare_status=r["welfare_status"],
            dispersed_support=bool(r["dispersed_support"]), willing=bool(r["willing_to_be_visited"]),
            signed_care_station=bool(r["signed_care_station"]),
            signed_home_care_bed=bool(r["signed_home_care_bed"]), status=r["status"],
            open_hazards=int(r["open_hazards"]), last_visit_on=lr.get("visited_on"),
            last_answers={k: str(lr[k]) for k in ANSWER_FIELDS if lr.get(k) is not None},
            has_first_contact=r["fc"] is not None, devices=frozenset(devices.get(r["id"], ())),
            family_doctor_signed=r["family_doctor_signed"], wants_family_doctor=r["wants_family_doctor"],
            street_id=r["street_id"], street=r["street"], community_id=r["community_id"],
            community=r["community"], grid_id=r["grid_id"], steward_id=r["visit_steward_id"],
            service_steward_id=r["service_steward_id"],
            lon=geom.x if geom is not None else None, lat=geom.y if geom is not None else None,
        ))
    return out


def elders_frame(facts: Iterable[ElderFacts], on: date) -> pd.DataFrame:
    """The ``elders`` DataFrame of :mod:`gridmap.rules.indicators` from ElderFacts."""
    rows = [{
        "elder_id": f.id, "street": f.street, "community": f.community, "grid_id": f.grid_id,
        "steward_id": f.steward_id, "status": str(f.status), "willing": f.willing,
        "age": f.age_on(on), "categories": sorted(str(c) for c in f.categories),
        "devices": sorted(str(d) for d in f.devices), "has_first_contact": f.has_first_contact,
        "has_location": f.lon is not None, "lon": f.lon, "lat": f.lat,
        "last_visit_on": f.last_visit_on,
    } for f in facts]
    cols = ["elder_id", "street", "community", "grid_id", "steward_id", "status", "willing", "age",
            "categories", "devices", "has_first_contact", "has_location", "lon", "lat",
            "last_visit_on"]
    return pd.DataFrame(rows, columns=cols)


def read_visits(
    engine: Engine, start: date, end: date, *, elder_ids: Sequence[int] | None = None, answers: bool = True
) -> pd.DataFrame:
    """Visits with ``start <= visited_on <= end`` (columns of :mod:`gridmap.rules.indicators`).

    ``answers=False`` leaves out the section 五 answer columns (the live dashboard
    does not use them; reading them is most of the time on a large register).
    """
    fields = list(ANSWER_FIELDS) if answers else []
    # codes and WKB read raw, decoded below column-wise (per-row type processing dominated on 850,000 visits)
    cols = [Visit.id, Visit.elder_id, Visit.visited_on, type_coerce(Visit.mode, String), Visit.effective,
            type_coerce(Visit.visitor_role, String), Visit.steward_id, Visit.started_at, Visit.ended_at,
            type_coerce(Visit.gps, LargeBinary), Visit.late_entry,
            *[type_coerce(getattr(Visit, k), String) for k in fields]]
    q = select(*cols).where(Visit.visited_on >= start, Visit.visited_on <= end).order_by(Visit.id)
    if elder_ids is not None:
        q = q.where(Visit.elder_id.in_(list(elder_ids)))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    keys = ["id", "elder_id", "visited_on", "mode", "effective", "visitor_role", "steward_id",
            "started_at", "ended_at", "gps", "late_entry", *fields]
    names = ["id", "elder_id", "visited_on", "mode", "effective", "visitor_role", "steward_id",
             "started_at", "ended_at", "gps_lon", "gps_lat", "late_entry", *fields]
    df = pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys)
    raw = df.pop("gps")
    # SQLite: WKB bytes; PostGIS: hex (E)WKB text; shapely reads both (None stays missing)
    wkb = np.array([bytes(x) if isinstance(x, (memoryview, bytearray)) else x if isinstance(x, (bytes, str)) else None
                    for x in raw], dtype=object)  # (a column of only NULLs arrives as NaN)
    pts = shapely.from_wkb(wkb) if len(wkb) else np.array([], dtype=object)
    df["gps_lon"] = pd.Series(shapely.get_x(pts), index=df.index, dtype=float)
    df["gps_lat"] = pd.Series(shapely.get_y(pts), index=df.index, dtype=float)
    return df[names]


def read_hazards(engine: Engine, on: date, *, since: date | None = None) -> pd.DataFrame:
    """Hazards opened by ``on`` and either still open or closed since ``since``."""
    q = select(Hazard.id, Hazard.elder_id, Hazard.kind, Hazard.severity, Hazard.status,
               Hazard.owner_unit, Hazard.opened_on, Hazard.deadline, Hazard.closed_on) \
        .where(Hazard.opened_on <= on)
    if since is not None:
        q = q.where(or_(Hazard.closed_on.is_(None), Hazard.closed_on >= since))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        for k in ("kind", "severity", "status"):
            r[k] = str(r[k])
    return pd.DataFrame(rows, columns=["id", "elder_id", "kind", "severity", "status", "owner_unit",
                                       "opened_on", "deadline", "closed_on"])


def read_referrals(engine: Engine, *, since: datetime | None = None) -> pd.DataFrame:
    """Referrals not closed, or closed since ``since``."""
    q = select(Referral.id, Referral.elder_id, Referral.target, Referral.target_name, Referral.need,
               Referral.emergency, Referral.status, Referral.opened_at, Referral.deadline,
               Referral.acknowledged_at, Referral.escalated_at, Referral.closed_at)
    if since is not None:
        q = q.where(or_(Referral.closed_at.is_(None), Referral.closed_at >= since))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["target"], r["status"] = str(r["target"]), str(r["status"])
    return pd.DataFrame(rows, columns=["id", "elder_id", "target", "target_name", "need", "emergency",
                                       "status", "opened_at", "deadline", "acknowledged_at",
                                       "escalated_at", "closed_at"])


def read_events(engine: Engine, start: date, end: date) -> list[Event]:
    """Calendar events overlapping ``[start, end]``."""
    q = (select(CalendarEvent, Street.name).outerjoin(Street, Street.id == CalendarEvent.street_id)
         .where(CalendarEvent.starts_on <= end, CalendarEvent.ends_on >= start))
    with session_scope(engine) as s:
        return [Event(kind=e.kind, name=e.name, starts_on=e.starts_on, ends_on=e.ends_on,
                      street_id=e.street_id, params=dict(e.params or {}))
                for e, _name in s.execute(q)]


def save_events(engine: Engine, events: Iterable[Event], *, user: str = "system") -> int:
    """Store calendar events (a street given by name is resolved to its id)."""
    n = 0
    with session_scope(engine, user=user, source="calendar") as s:
        for ev in events:
            sid = ev.street_id
            if sid is None and ev.street:
                sid = s.scalar(select(Street.id).where(Street.name == ev.street))
                if sid is None:
                    raise ValidationError("unknown street", "未知街道", field="street",
                                          value=ev.street, code="unknown_street")
            s.add(CalendarEvent(kind=ev.kind, name=ev.name, starts_on=ev.starts_on,
                                ends_on=ev.ends_on, street_id=sid, params=dict(ev.params)))
            n += 1
    return n


# ---------------------------------------------------------------- writing


@dataclass
class RecordResult:
    """What :func:`record_visit` wrote."""

    visit_id: int
    late_entry: bool
    hazard_ids: list[int] = field(default_factory=list)
    referral_ids: list[int] = field(default_factory=list)
    care_service_ids: list[int] = field(default_factory=list)


def _append_change(conn: Any, *, streets: Iterable[str], elder_ids: Iterable[int], user: str,
                   visits: int) -> None:
    """The one place where a batch of recorded visits appends its change-feed row (same transaction, last write).

    ``streets`` (names) and ``elder_ids`` are what the batch touched
    (:func:`gridmap.store.changes.record_change`, kind ``visit``).
    """
    try:
        from gridmap.store.changes import record_change
    except ImportError:  # pragma: no cover - a tree without the change feed (issue #15 item 1)
        return
    record_change(conn, "visit", streets=sorted(set(streets)), elders=sorted(set(elder_ids)), actor=user,
                  detail={"visits": visits})


def _created_history(table: str, ids: Sequence[int], elder_ids: Sequence[int], *, user: str,
                     changed_at: datetime) -> list[dict[str, Any]]:
    """``register_change`` creation rows (as the ORM history listener writes them) for records inserted in bulk."""
    return [{"entity": table, "entity_id": i, "elder_id": e, "field": "*created*", "old_value": None,
             "new_value": None, "changed_by": user, "changed_at": changed_at, "source": "visit",
             "reason": "探访记录"} for i, e in zip(ids, elder_ids, strict=True)]


def _insert_ids(conn: Any, table: Any, rows: list[dict[str, Any]], key: str) -> dict[Any, list[int]]:
    """Insert ``rows`` (executemany, batched on both backends) and return the new ids grouped by ``rows[key]``.

    The ids are read back as those above the table's maximum id before the
    insert, in id order; rows of one key keep their order.
    """
    if not rows:
        return {}
    before = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    for i in range(0, len(rows), 5000):
        conn.execute(table.insert(), rows[i:i + 5000])
    keys = {r[key] for r in rows}
    out: dict[Any, list[int]] = {}
    for rid, k in conn.execute(select(table.c.id, table.c[key]).where(table.c.id > before).order_by(table.c.id)):
        if k in keys:
            out.setdefault(k, []).append(int(rid))
    return out


def record_visits(
    engine: Engine,
    records: Sequence[VisitRecord],
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    user: str = "system",
) -> list[RecordResult]:
    """Write validated visits and apply their follow-ups, all in one transaction.

    Per visit exactly what a single visit gets: the visit (numbered after the
    elder's earlier visits), the care services of section 六, hazards for
    unsafe or fairly safe answers (:func:`gridmap.rules.followups.hazards_from_visit`:
    deadline and owner unit from the rules) and referrals routed by the
    document's rules (:func:`gridmap.rules.followups.referrals_from_visit`;
    emergencies to the first contact and the community), each hazard and
    referral with its creation in the register history. The rows are written
    in bulk; the batch appends one change-feed row (:func:`_append_change`).

    Parameters
    ----------
    records
        Visits validated by :func:`gridmap.rules.visits.parse_visit`.
    now
        When the visits are entered (referrals open then; default: now).

    Returns
    -------
    list of RecordResult
        One per record, in order.

    Raises
    ------
    ValidationError
        When an elder or a steward does not exist (nothing is written).
    """
    records = list(records)
    if not records:
        return []
    rules = rules or load_rules()
    now = now or datetime.now(timezone.utc)
    elder_ids = sorted({r.elder_id for r in records})
    facts = {f.id: f for f in read_facts(engine, max(r.visited_on for r in records), elder_ids=elder_ids,
                                         rules=rules, programme_only=False, last_visits=False)}
    for r in records:
        if r.elder_id not in facts:
            raise ValidationError("no elder with this id", "未找到该老人", field="elder_id",
                                  value=r.elder_id, code="unknown_elder")
    steward_ids = {r.steward_id for r in records if r.steward_id is not None}
    vt, ht, rt, ct = Visit.__table__, Hazard.__table__, Referral.__table__, CareService.__table__
    with engine.begin() as conn:
        if steward_ids:
            known = set(conn.execute(select(Steward.id).where(Steward.id.in_(sorted(steward_ids)))).scalars())
            for r in records:
                if r.steward_id is not None and r.steward_id not in known:
                    raise ValidationError("no steward with this id", "未找到该管家", field="steward_id",
                                          value=r.steward_id, code="unknown_steward")
        counts = dict(conn.execute(select(Visit.elder_id, func.count()).where(Visit.elder_id.in_(elder_ids))
                                   .group_by(Visit.elder_id)).all())
        fc_name: dict[int, str] = {}
        for eid, name in conn.execute(select(FirstContact.elder_id, FirstContact.name).where(
                FirstContact.elder_id.in_(elder_ids), FirstContact.valid.is_(True)).order_by(FirstContact.id)):
            fc_name.setdefault(eid, name)
        vrows = []
        for i, r in enumerate(records):
            counts[r.elder_id] = counts.get(r.elder_id, 0) + 1
            vrows.append({
                "elder_id": r.elder_id, "seq": r.seq or counts[r.elder_id], "visited_on": r.visited_on,
                "started_at": r.started_at, "ended_at": r.ended_at, "mode": r.mode, "effective": r.effective,
                "visitor_role": r.visitor_role, "visitor_name": r.visitor_name, "steward_id": r.steward_id,
                "family_change_count": r.family_change_count, "illness_name": r.illness_name,
                "needs": r.needs, "suggestions": r.suggestions, "visitor_signature": r.visitor_signature,
                "elder_signature": r.elder_signature, "recorder_signature": r.recorder_signature,
                "signed_at": r.signed_at, "gps": Point(*r.gps) if r.gps else None, "gps_time": r.gps_time,
                "entered_by": r.entered_by or user, "entered_at": r.entered_at, "late_entry": r.late_entry,
                "version": 1, **{k: r.answers.get(k) for k in ANSWER_FIELDS}, "_i": i,
            })
        # the visits' ids, matched back by (elder, number)
        by_elder = _insert_ids(conn, vt, [{k: v for k, v in row.items() if k != "_i"} for row in vrows], "elder_id")
        taken: dict[int, int] = {}
        visit_ids: list[int] = []
        for row in vrows:
            ids = by_elder[row["elder_id"]]
            j = taken.get(row["elder_id"], 0)
            taken[row["elder_id"]] = j + 1
            visit_ids.append(ids[j])
        results = [RecordResult(vid, r.late_entry) for vid, r in zip(visit_ids, records, strict=True)]

        crows, hrows, rrows = [], [], []
        for res, r in zip(results, records, strict=True):
            f = facts[r.elder_id]
            for cs in r.care_services:
                crows.append({"elder_id": r.elder_id, "visit_id": res.visit_id, "served_on": cs.served_on,
                              "kind": cs.kind, "description": cs.description, "provider": cs.provider,
                              "staff_signature": cs.staff_signature, "satisfaction": cs.satisfaction})
            geom = Point(f.lon, f.lat) if f.lon is not None and f.lat is not None else None
            for h in hazards_from_visit(r, rules):
                hrows.append({"elder_id": r.elder_id, "visit_id": res.visit_id, "kind": h.kind,
                              "severity": h.severity, "source": "visit", "description": h.description,
                              "owner_unit": h.owner_unit, "status": HazardStatus.OPEN, "opened_on": h.opened_on,
                              "deadline": h.deadline, "geom": geom, "version": 1})
            for spec in referrals_from_visit(r, f, rules, now=now, first_contact_name=fc_name.get(r.elder_id),
                                             community_name=f.community):
                rrows.append({"elder_id": r.elder_id, "visit_id": res.visit_id, "need": spec.need,
                              "target": spec.target, "target_name": spec.target_name, "emergency": spec.emergency,
                              "status": ReferralStatus.OPEN, "opened_at": now, "deadline": spec.deadline,
                              "version": 1})
        by_res = {res.visit_id: res for res in results}
        for vid, ids in _insert_ids(conn, ct, crows, "visit_id").items():
            by_res[vid].care_service_ids.extend(ids)
        stamp = utcnow()
        history: list[dict[str, Any]] = []
        elder_of = {res.visit_id: r.elder_id for res, r in zip(results, records, strict=True)}
        for table, rows, attr in ((ht, hrows, "hazard_ids"), (rt, rrows, "referral_ids")):
            for vid, ids in _insert_ids(conn, table, rows, "visit_id").items():
                getattr(by_res[vid], attr).extend(ids)
            made = [(i, res.visit_id) for res in results for i in getattr(res, attr)]
            history += _created_history(table.name, [i for i, _ in made], [elder_of[v] for _, v in made],
                                        user=user, changed_at=stamp)
        if history:
            conn.execute(RegisterChange.__table__.insert(), history)
        _append_change(conn, streets=[facts[e].street for e in elder_ids if facts[e].street],
                       elder_ids=elder_ids, user=user, visits=len(records))
    return results


def record_visit(
    engine: Engine,
    record: VisitRecord,
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    user: str = "system",
) -> RecordResult:
    """Write a validated visit and apply its follow-ups in one transaction (:func:`record_visits` of one).

    Opens hazards for unsafe or fairly safe answers (deadline and owner unit
    from the rules), referrals routed by the document's rules (emergencies to
    the first contact and the community), and the care services of section 六.

    Raises
    ------
    ValidationError
        When the elder or the steward does not exist.
    """
    return record_visits(engine, [record], rules=rules, now=now, user=user)[0]


def escalate_referrals(
    engine: Engine, now: datetime | None = None, *, rules: Rules | None = None, user: str = "system"
) -> list[int]:
    """Escalate emergency referrals not acknowledged by their deadline.

    Each is marked ``escalated`` and a new emergency referral goes to the
    street of usual residence. Returns the ids escalated.
    """
    rules = rules or load_rules()
    now = now or datetime.now(timezone.utc)
    with session_scope(engine, user=user, source="escalation") as s:
        due = s.scalars(select(Referral).where(
            Referral.emergency.is_(True), Referral.status == ReferralStatus.OPEN,
            Referral.deadline < now)).all()
        ids = []
        for r in due:
            r.status = ReferralStatus.ESCALATED
            r.escalated_at = now
            street = s.scalar(select(Street.name).join(Elder, Elder.street_id == Street.id)
                              .where(Elder.id == r.elder_id))
            s.add(Referral(elder_id=r.elder_id, visit_id=r.visit_id,
                           need=f"升级：{r.target.label}未在时限内确认。{r.need}",
                           target=ReferralTarget.STREET_OF_RESIDENCE, target_name=street,
                           emergency=True, status=ReferralStatus.OPEN, opened_at=now,
                           deadline=now + timedelta(minutes=rules.emergency_ack_minutes)))
            ids.append(r.id)
    return ids


def acknowledge_referral(engine: Engine, referral_id: int, now: datetime | None = None,
                         *, user: str = "system") -> None:
    """Mark a referral acknowledged (so it is not escalated)."""
    now = now or datetime.now(timezone.utc)
    with session_scope(engine, user=user) as s:
        r = s.get(Referral, referral_id)
        if r is None:
            raise ValidationError("no referral with this id", "未找到该转介", field="referral_id",
                                  value=referral_id, code="unknown_referral")
        r.status = ReferralStatus.ACKNOWLEDGED
        r.acknowledged_at = now


def indicator_inputs(
    engine: Engine, start: date, end: date, *, street: str | None = None,
    rules: Rules | None = None, history_days: int = 60, answers: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The four DataFrames of :func:`gridmap.rules.indicators.compute_indicators` for a period.

    Visits are read from ``history_days`` before ``start`` (for overdue days and
    copied answers) to ``end``; ``answers=False`` reads them without the section 五
    answers (no copied-answers check then).
    """
    rules = rules or load_rules()
    facts = read_facts(engine, end + timedelta(days=1), street=street, rules=rules)
    elders = elders_frame(facts, end)
    ids = elders["elder_id"].tolist() if street is not None else None
    visits = read_visits(engine, start - timedelta(days=history_days), end, elder_ids=ids, answers=answers)
    hazards = read_hazards(engine, end, since=start)
    since = datetime.combine(start, datetime.min.time(), tzinfo=_BEIJING)
    referrals = read_referrals(engine, since=since)
    if ids is not None:
        hazards = hazards[hazards["elder_id"].isin(ids)]
        referrals = referrals[referrals["elder_id"].isin(ids)]
    return elders, visits, hazards, referrals


__all__ = [
    "RecordResult", "acknowledge_referral", "elders_frame", "escalate_referrals", "indicator_inputs",
    "read_events", "read_facts", "read_hazards", "read_referrals", "read_visits", "record_visit",
    "record_visits",
    "resolve_steward", "save_events",
]
