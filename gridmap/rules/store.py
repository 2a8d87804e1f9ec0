"""Store layer of the visit rules: read facts, visits, hazards and events; record visits and follow-ups.

The only module of :mod:`gridmap.rules` that talks to the database (SQLAlchemy
Core/ORM, both backends). Reads select only the columns and rows needed
(aggregates such as the open-hazard count and the last visit are computed in
SQL); the domain modules get plain dataclasses and DataFrames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import Point
from sqlalchemy import Engine, LargeBinary, String, and_, func, or_, select, type_coerce
from sqlalchemy.exc import IntegrityError

from gridmap._errors import ValidationError
from gridmap.domain.enums import DeviceStatus, ReferralStatus
from gridmap.followups.lifecycle import ACTIVE_HAZARD
from gridmap.followups.outbox import EMERGENCY_TEXT
from gridmap.followups.store import (
    Finding,
    apply_findings,
    created_history,
    escalate_due,
    insert_ids,
    queue_reminders,
    update_referral,
)
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.facts import ElderFacts, Event
from gridmap.rules.followups import hazards_from_visit, referrals_from_visit
from gridmap.rules.submissions import stored_before, stored_result, submission_key
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
    ReferralEvent,
    RegisterChange,
    Steward,
    Street,
    Visit,
    utcnow,
)

if TYPE_CHECKING:
    import pandas as pd

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
    # only hazards still open or in progress count (a fixed, unfixable or transferred one no longer
    # brings extra visits; a reopened one counts again)
    active = [s.value for s in ACTIVE_HAZARD]
    hz = (select(Hazard.elder_id, func.count().label("n"))
          .where(Hazard.status.in_(active), Hazard.opened_on <= on))
    hk = select(Hazard.elder_id, Hazard.kind, Hazard.status).where(Hazard.opened_on <= on)
    if elder_ids is not None:
        lv = lv.where(Visit.elder_id.in_(list(elder_ids)))
        hz = hz.where(Hazard.elder_id.in_(list(elder_ids)))
        hk = hk.where(Hazard.elder_id.in_(list(elder_ids)))
    if scope is not None:
        lv = lv.where(Visit.elder_id.in_(scope))
        hz = hz.where(Hazard.elder_id.in_(scope))
        hk = hk.where(Hazard.elder_id.in_(scope))
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
        # kinds whose hazards are all settled (fixed, unfixable, transferred): the unsafe answer that
        # found them no longer raises the risk either
        kinds_active: dict[int, set[str]] = {}
        kinds_settled: dict[int, set[str]] = {}
        if ids and last_visits:
            for eid, kind, st in conn.execute(hk.order_by(Hazard.id)):
                (kinds_active if str(st) in active else kinds_settled).setdefault(eid, set()).add(str(kind))
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
            settled_hazard_kinds=frozenset(kinds_settled.get(r["id"], set()) - kinds_active.get(r["id"], set())),
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
    import pandas as pd
    rows = [{
        "elder_id": f.id, "street": f.street, "community": f.community, "grid_id": f.grid_id,
        "steward_id": f.steward_id, "status": str(f.status), "willing": f.willing,
        "age": f.age_on(on), "categories": sorted(str(c) for c in f.categories),
        "devices": sorted(str(d) for d in f.devices), "has_first_contact": f.has_first_contact,
        "has_location": f.lon is not None, "lon": f.lon, "lat": f.lat,
        "last_visit_on": f.last_visit_on,
        "signed": f.signed,  # issue 17 part B: visited by their 驿站, not in the visit steward's rate
    } for f in facts]
    cols = ["elder_id", "street", "community", "grid_id", "steward_id", "status", "willing", "age",
            "categories", "devices", "has_first_contact", "has_location", "lon", "lat",
            "last_visit_on", "signed"]
    return pd.DataFrame(rows, columns=cols)


def read_visits(
    engine: Engine, start: date, end: date, *, elder_ids: Sequence[int] | None = None, answers: bool = True
) -> pd.DataFrame:
    """Visits with ``start <= visited_on <= end`` (columns of :mod:`gridmap.rules.indicators`).

    ``answers=False`` leaves out the section 五 answer columns (the live dashboard
    does not use them; reading them is most of the time on a large register).
    """
    import numpy as np
    import pandas as pd
    fields = list(ANSWER_FIELDS) if answers else []
    # codes and WKB read raw, decoded below column-wise (per-row type processing dominated on 850,000 visits)
    cols = [Visit.id, Visit.elder_id, Visit.visited_on, type_coerce(Visit.mode, String), Visit.effective,
            type_coerce(Visit.visitor_role, String), Visit.steward_id, Visit.started_at, Visit.ended_at,
            type_coerce(Visit.gps, LargeBinary), Visit.late_entry, Visit.position_distance_m,
            *[type_coerce(getattr(Visit, k), String) for k in fields]]
    q = select(*cols).where(Visit.visited_on >= start, Visit.visited_on <= end).order_by(Visit.id)
    if elder_ids is not None:
        q = q.where(Visit.elder_id.in_(list(elder_ids)))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    keys = ["id", "elder_id", "visited_on", "mode", "effective", "visitor_role", "steward_id",
            "started_at", "ended_at", "gps", "late_entry", "position_distance_m", *fields]
    names = ["id", "elder_id", "visited_on", "mode", "effective", "visitor_role", "steward_id",
             "started_at", "ended_at", "gps_lon", "gps_lat", "late_entry", "position_distance_m", *fields]
    df = pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys)
    raw = df.pop("gps")
    # SQLite: WKB bytes; PostGIS: hex (E)WKB text; shapely reads both (None stays missing)
    wkb = np.array([bytes(x) if isinstance(x, (memoryview, bytearray)) else x if isinstance(x, (bytes, str)) else None
                    for x in raw], dtype=object)  # (a column of only NULLs arrives as NaN)
    pts = shapely.from_wkb(wkb) if len(wkb) else np.array([], dtype=object)
    df["gps_lon"] = pd.Series(shapely.get_x(pts), index=df.index, dtype=float)
    df["gps_lat"] = pd.Series(shapely.get_y(pts), index=df.index, dtype=float)
    return df[names]


def read_hazards(engine: Engine, on: date, *, since: date | None = None,
                 elder_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Hazards opened by ``on`` and either still open or closed since ``since`` (of ``elder_ids`` only when
    given), in id order."""
    import pandas as pd
    q = select(Hazard.id, Hazard.elder_id, Hazard.kind, Hazard.severity, Hazard.status,
               Hazard.owner_unit, Hazard.opened_on, Hazard.deadline, Hazard.closed_on) \
        .where(Hazard.opened_on <= on).order_by(Hazard.id)
    if since is not None:
        q = q.where(or_(Hazard.closed_on.is_(None), Hazard.closed_on >= since))
    if elder_ids is not None:
        q = q.where(Hazard.elder_id.in_([int(i) for i in elder_ids]))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        for k in ("kind", "severity", "status"):
            r[k] = str(r[k])
    return pd.DataFrame(rows, columns=["id", "elder_id", "kind", "severity", "status", "owner_unit",
                                       "opened_on", "deadline", "closed_on"])


def read_referrals(engine: Engine, *, since: datetime | None = None,
                   elder_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Referrals not closed, or closed since ``since`` (of ``elder_ids`` only when given), in id order."""
    import pandas as pd
    q = select(Referral.id, Referral.elder_id, Referral.target, Referral.target_name, Referral.need,
               Referral.emergency, Referral.status, Referral.opened_at, Referral.deadline,
               Referral.acknowledged_at, Referral.escalated_at, Referral.closed_at).order_by(Referral.id)
    if since is not None:
        q = q.where(or_(Referral.closed_at.is_(None), Referral.closed_at >= since))
    if elder_ids is not None:
        q = q.where(Referral.elder_id.in_([int(i) for i in elder_ids]))
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
    """What :func:`record_visit` wrote (``duplicate``: the submission was stored before; nothing new written)."""

    visit_id: int
    late_entry: bool
    hazard_ids: list[int] = field(default_factory=list)
    referral_ids: list[int] = field(default_factory=list)
    care_service_ids: list[int] = field(default_factory=list)
    duplicate: bool = False
    reopened_hazard_ids: list[int] = field(default_factory=list)
    # issue 17 (A): service tasks opened by the visit's needs, and whether the visit is effective
    task_ids: list[int] = field(default_factory=list)
    effective: bool = True
    missing_answers: tuple[str, ...] = ()


def _append_change(conn: Any, *, streets: Iterable[str], elder_ids: Iterable[int], user: str,
                   visits: int) -> None:
    """The one place where a batch of recorded visits appends its change-feed row (same transaction, last write).

    ``streets`` (names) and ``elder_ids`` are what the batch touched
    (:func:`gridmap.store.changes.record_change`, kind ``visit``).
    """
    from gridmap.store.changes import record_change

    record_change(conn, "visit", streets=sorted(set(streets)), elders=sorted(set(elder_ids)), actor=user,
                  detail={"visits": visits})


def _utc(now: datetime | None) -> datetime:
    """When the visits are entered, in UTC (SQLite keeps a time without its offset: every writer stores UTC)."""
    if now is None:
        return datetime.now(UTC)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def record_visits(
    engine: Engine,
    records: Sequence[VisitRecord],
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    user: str = "system",
    idempotency_keys: Sequence[str | None] | None = None,
) -> list[RecordResult]:
    """Write validated visits and apply their follow-ups, all in one transaction; each submission once.

    Per visit exactly what a single visit gets: the visit (numbered after the
    elder's earlier visits), the care services of section 六, hazards for
    unsafe or fairly safe answers (:func:`gridmap.rules.followups.hazards_from_visit`:
    deadline and owner unit from the rules; an elder's hazard of that kind still open is not
    duplicated, a fixed or unfixable one is reopened: :func:`gridmap.followups.store.apply_findings`)
    and referrals routed by the document's rules (:func:`gridmap.rules.followups.referrals_from_visit`),
    each with its opening event and its creation in the register history; reminders to the first
    contact are queued for hazards and emergencies. The batch appends one change-feed row.

    One submission is stored once: a visit whose idempotency key (``idempotency_keys``, e.g. made
    when a form opens; without one: the same elder, visitor and start time) was stored before is
    not written again — its result has ``duplicate`` set and the stored visit's id. Two writers
    racing with the same key: the unique index refuses the second, which then returns the first.

    Parameters
    ----------
    records
        Visits validated by :func:`gridmap.rules.visits.parse_visit`.
    now
        When the visits are entered (referrals open then; default: now).
    idempotency_keys
        One per record (None: derived from elder, visitor and start time).

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
    keys = list(idempotency_keys) if idempotency_keys is not None else [None] * len(records)
    if len(keys) != len(records):
        raise ValueError("one idempotency key per record")
    keys = [str(k).strip()[:80] if k else submission_key(r) for k, r in zip(keys, records, strict=True)]
    for attempt in range(3):
        try:
            return _record_visits(engine, records, keys, rules=rules or load_rules(),
                                  now=_utc(now), user=user)
        except IntegrityError as exc:  # another writer stored one of these submissions meanwhile
            if attempt == 2 or "idempotency" not in str(exc.orig).lower():
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _distance_to_home(position: Any, f: Any) -> float | None:
    """Metres (great circle, rounded to 0.1 m) from ``position`` (lon, lat) to the elder's home; None without either."""
    if not position or f.lon is None or f.lat is None:
        return None
    import math

    lon1, lat1, lon2, lat2 = map(math.radians, (float(position[0]), float(position[1]), float(f.lon), float(f.lat)))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return round(2 * 6371008.8 * math.asin(math.sqrt(h)), 1)


def _record_visits(engine: Engine, records: list[VisitRecord], keys: list[str | None], *, rules: Rules,
                   now: datetime, user: str) -> list[RecordResult]:
    elder_ids = sorted({r.elder_id for r in records})
    facts = {f.id: f for f in read_facts(engine, max(r.visited_on for r in records), elder_ids=elder_ids,
                                         rules=rules, programme_only=False, last_visits=False)}
    for r in records:
        if r.elder_id not in facts:
            raise ValidationError("no elder with this id", "未找到该老人", field="elder_id",
                                  value=r.elder_id, code="unknown_elder")
    steward_ids = {r.steward_id for r in records if r.steward_id is not None}
    vt, rt, ct = Visit.__table__, Referral.__table__, CareService.__table__
    with engine.begin() as conn:
        if steward_ids:
            known = set(conn.execute(select(Steward.id).where(Steward.id.in_(sorted(steward_ids)))).scalars())
            for r in records:
                if r.steward_id is not None and r.steward_id not in known:
                    raise ValidationError("no steward with this id", "未找到该管家", field="steward_id",
                                          value=r.steward_id, code="unknown_steward")
        before = stored_before(conn, records, keys)
        first_of: dict[str, int] = {}  # a key given twice in this batch: the first one is stored
        dup_of: dict[int, int] = {}
        for i, k in enumerate(keys):
            if i in before or not k:
                continue
            if k in first_of:
                dup_of[i] = first_of[k]
            else:
                first_of[k] = i
        todo = [i for i in range(len(records)) if i not in before and i not in dup_of]
        counts = dict(conn.execute(select(Visit.elder_id, func.count()).where(Visit.elder_id.in_(elder_ids))
                                   .group_by(Visit.elder_id)).all())
        fc_name: dict[int, str] = {}
        for eid, name in conn.execute(select(FirstContact.elder_id, FirstContact.name).where(
                FirstContact.elder_id.in_(elder_ids), FirstContact.valid.is_(True)).order_by(FirstContact.id)):
            fc_name.setdefault(eid, name)
        service_ids = sorted({f.service_steward_id for f in facts.values() if f.service_steward_id})
        ss_name = dict(conn.execute(select(Steward.id, Steward.name).where(Steward.id.in_(service_ids))).all()) \
            if service_ids else {}
        vrows = []
        for i in todo:
            r = records[i]
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
                "version": 1, "idempotency_key": keys[i], **{k: r.answers.get(k) for k in ANSWER_FIELDS},
                # issue 17 (A): the needs as codes, why the visit is not effective
                "need_kinds": list(r.need_kinds) if r.need_kinds is not None else None,
                "ineffective_reason": r.ineffective_reason,
                # issue 18: only the distance of the phone (given with consent) to the home, never the position
                "position_distance_m": _distance_to_home(getattr(r, "position", None), facts[r.elder_id]),
            })
        # the visits' ids, matched back by (elder, number)
        by_elder = insert_ids(conn, vt, vrows, "elder_id")
        taken: dict[int, int] = {}
        results: list[RecordResult | None] = [None] * len(records)
        for i, row in zip(todo, vrows, strict=True):
            ids = by_elder[row["elder_id"]]
            j = taken.get(row["elder_id"], 0)
            taken[row["elder_id"]] = j + 1
            results[i] = RecordResult(ids[j], records[i].late_entry, effective=records[i].effective,
                                      missing_answers=tuple(records[i].missing_answers))

        crows, rrows, findings, fvisit = [], [], [], []
        for i in todo:
            r, res = records[i], results[i]
            assert res is not None
            f = facts[r.elder_id]
            for cs in r.care_services:
                crows.append({"elder_id": r.elder_id, "visit_id": res.visit_id, "served_on": cs.served_on,
                              "kind": cs.kind, "description": cs.description, "provider": cs.provider,
                              "staff_signature": cs.staff_signature, "satisfaction": cs.satisfaction})
            geom = Point(f.lon, f.lat) if f.lon is not None and f.lat is not None else None
            for h in hazards_from_visit(r, rules):
                findings.append(Finding(elder_id=r.elder_id, kind=h.kind, severity=h.severity, found_on=h.opened_on,
                                        deadline=h.deadline, owner_unit=h.owner_unit, description=h.description,
                                        source="visit", visit_id=res.visit_id, geom=geom))
                fvisit.append(res)
            for spec in referrals_from_visit(r, f, rules, now=now, first_contact_name=fc_name.get(r.elder_id),
                                             community_name=f.community,
                                             service_steward_name=ss_name.get(f.service_steward_id)):
                rrows.append({"elder_id": r.elder_id, "visit_id": res.visit_id, "need": spec.need,
                              "target": spec.target, "target_name": spec.target_name, "emergency": spec.emergency,
                              "status": ReferralStatus.OPEN, "opened_at": now, "deadline": spec.deadline,
                              "version": 1})
        by_res = {res.visit_id: res for res in results if res is not None}
        for vid, ids in insert_ids(conn, ct, crows, "visit_id").items():
            by_res[vid].care_service_ids.extend(ids)
        stamp = utcnow()
        for res, (hid, action) in zip(fvisit, apply_findings(conn, findings, by=user, now=now, rules=rules),
                                      strict=True):
            if action == "opened":
                res.hazard_ids.append(hid)
            elif action == "reopened":
                res.reopened_hazard_ids.append(hid)
        for vid, ids in insert_ids(conn, rt, rrows, "visit_id").items():
            by_res[vid].referral_ids.extend(ids)
        # issue 17 (A): each need becomes a service task (not duplicated while the same need is open)
        from gridmap.tasks.lifecycle import tasks_from_visit
        from gridmap.tasks.store import open_tasks

        tspecs, tres = [], []
        for i in todo:
            r, res = records[i], results[i]
            for spec in tasks_from_visit(r, rules, service_steward_id=facts[r.elder_id].service_steward_id):
                tspecs.append((spec, res.visit_id))  # type: ignore[union-attr]
                tres.append(res)
        for res, (tid, action) in zip(tres, open_tasks(conn, tspecs, by=user, now=now), strict=True):
            if action == "opened":
                res.task_ids.append(tid)
        elder_of = {res.visit_id: records[i].elder_id for i, res in enumerate(results) if res is not None}
        made = [(rid, res.visit_id) for res in by_res.values() for rid in res.referral_ids]
        if made:
            conn.execute(RegisterChange.__table__.insert(), created_history(
                "referral", [i for i, _ in made], [elder_of[v] for _, v in made], user=user, changed_at=stamp))
            conn.execute(ReferralEvent.__table__.insert(), [
                {"referral_id": rid, "at": now, "by_user": user, "from_status": None, "to_status": "open",
                 "note": "探访转介", "photo_ref": None} for rid, _ in made])
            # an emergency: the first contact (or family) is told at once (提醒第一联系人)
            emerg = conn.execute(select(Referral.id, Referral.elder_id).where(
                Referral.id.in_([rid for rid, _ in made]), Referral.emergency.is_(True),
                Referral.target == "first_contact")).all()
            queue_reminders(conn, [(int(e), None, int(rid), EMERGENCY_TEXT) for rid, e in emerg], rules=rules, now=now)
        for i in range(len(records)):
            if i in before or i in dup_of:
                vid = before[i] if i in before else results[dup_of[i]].visit_id  # type: ignore[union-attr]
                results[i] = stored_result(conn, vid, records[i].late_entry)
        if todo:
            _append_change(conn, streets=[facts[e].street for e in elder_ids if facts[e].street],
                           elder_ids=sorted({records[i].elder_id for i in todo}), user=user, visits=len(todo))
    return [r for r in results if r is not None]


def record_visit(
    engine: Engine,
    record: VisitRecord,
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    user: str = "system",
    idempotency_key: str | None = None,
) -> RecordResult:
    """Write a validated visit and apply its follow-ups in one transaction (:func:`record_visits` of one).

    Opens hazards for unsafe or fairly safe answers (deadline and owner unit
    from the rules; reopens a fixed one of the same kind), referrals routed by the document's
    rules (emergencies to the first contact and the community), and the care services of
    section 六. The same submission (``idempotency_key``, else the same elder, visitor and start
    time) is stored once: again, it returns the stored visit with ``duplicate`` set.

    Raises
    ------
    ValidationError
        When the elder or the steward does not exist.
    """
    return record_visits(engine, [record], rules=rules, now=now, user=user, idempotency_keys=[idempotency_key])[0]


def escalate_referrals(
    engine: Engine, now: datetime | None = None, *, rules: Rules | None = None, user: str = "system"
) -> list[int]:
    """Escalate emergency referrals not acknowledged by their deadline, each once
    (:func:`gridmap.followups.store.escalate_due`; ``gridmap visits escalate``). Returns the ids escalated."""
    return escalate_due(engine, now, rules=rules, by=user)


def acknowledge_referral(engine: Engine, referral_id: int, now: datetime | None = None,
                         *, user: str = "system") -> None:
    """Mark a referral acknowledged (so it is not escalated): :func:`gridmap.followups.store.update_referral`."""
    update_referral(engine, referral_id, ReferralStatus.ACKNOWLEDGED, by=user, now=now)


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
    "RecordResult", "acknowledge_referral", "submission_key", "elders_frame", "escalate_referrals", "indicator_inputs",
    "read_events", "read_facts", "read_hazards", "read_referrals", "read_visits", "record_visit",
    "record_visits",
    "resolve_steward", "save_events",
]
