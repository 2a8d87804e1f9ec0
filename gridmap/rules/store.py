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
    Steward,
    Street,
    Visit,
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
        last = {r["elder_id"]: r for r in conn.execute(lvq).mappings()} if ids else {}
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


def record_visit(
    engine: Engine,
    record: VisitRecord,
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    user: str = "system",
) -> RecordResult:
    """Write a validated visit and apply its follow-ups in one transaction.

    Opens hazards for unsafe or fairly safe answers (deadline and owner unit
    from the rules), referrals routed by the document's rules (emergencies to
    the first contact and the community), and the care services of section 六.

    Raises
    ------
    ValidationError
        When the elder or the steward does not exist.
    """
    rules = rules or load_rules()
    now = now or datetime.now(timezone.utc)
    facts = read_facts(engine, record.visited_on, elder_ids=[record.elder_id], rules=rules,
                       programme_only=False)
    if not facts:
        raise ValidationError("no elder with this id", "未找到该老人", field="elder_id",
                              value=record.elder_id, code="unknown_elder")
    f = facts[0]
    with session_scope(engine, user=user, source="visit", reason="探访记录") as s:
        if record.steward_id is not None and s.get(Steward, record.steward_id) is None:
            raise ValidationError("no steward with this id", "未找到该管家", field="steward_id",
                                  value=record.steward_id, code="unknown_steward")
        elder = s.get(Elder, record.elder_id)
        assert elder is not None
        seq = record.seq or (s.scalar(select(func.count()).select_from(Visit)
                                      .where(Visit.elder_id == record.elder_id)) or 0) + 1
        v = Visit(
            elder_id=record.elder_id, seq=seq, visited_on=record.visited_on,
            started_at=record.started_at, ended_at=record.ended_at, mode=record.mode,
            effective=record.effective, visitor_role=record.visitor_role,
            visitor_name=record.visitor_name, steward_id=record.steward_id,
            family_change_count=record.family_change_count, illness_name=record.illness_name,
            needs=record.needs, suggestions=record.suggestions,
            visitor_signature=record.visitor_signature, elder_signature=record.elder_signature,
            recorder_signature=record.recorder_signature, signed_at=record.signed_at,
            gps=Point(*record.gps) if record.gps else None, gps_time=record.gps_time,
            entered_by=record.entered_by or user, entered_at=record.entered_at,
            late_entry=record.late_entry,
            **{k: val for k, val in record.answers.items()},
        )
        s.add(v)
        s.flush()
        res = RecordResult(v.id, record.late_entry)
        for cs in record.care_services:
            c = CareService(elder_id=record.elder_id, visit_id=v.id, served_on=cs.served_on,
                            kind=cs.kind, description=cs.description, provider=cs.provider,
                            staff_signature=cs.staff_signature, satisfaction=cs.satisfaction)
            s.add(c)
            s.flush()
            res.care_service_ids.append(c.id)
        for h in hazards_from_visit(record, rules):
            hz = Hazard(elder_id=record.elder_id, visit_id=v.id, kind=h.kind, severity=h.severity,
                        source="visit", description=h.description, owner_unit=h.owner_unit,
                        status=HazardStatus.OPEN, opened_on=h.opened_on, deadline=h.deadline,
                        geom=elder.geom)
            s.add(hz)
            s.flush()
            res.hazard_ids.append(hz.id)
        fc = s.scalar(select(FirstContact).where(FirstContact.elder_id == record.elder_id,
                                                 FirstContact.valid.is_(True)))
        for r in referrals_from_visit(record, f, rules, now=now,
                                      first_contact_name=fc.name if fc else None,
                                      community_name=f.community):
            ref = Referral(elder_id=record.elder_id, visit_id=v.id, need=r.need, target=r.target,
                           target_name=r.target_name, emergency=r.emergency,
                           status=ReferralStatus.OPEN, opened_at=now, deadline=r.deadline)
            s.add(ref)
            s.flush()
            res.referral_ids.append(ref.id)
    return res


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
    "resolve_steward", "save_events",
]
