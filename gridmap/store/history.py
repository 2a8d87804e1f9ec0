"""History of the register: every change to a tracked record becomes ``register_change`` rows.

A ``before_flush`` listener compares each dirty object's attributes with their
loaded values and writes one :class:`~gridmap.store.models.RegisterChange` per
changed field (who, when, old and new value, source). Nothing is overwritten
silently, and elders are never deleted: they leave the programme with a
status, a date and a reason.

Who and why come from ``session.info``: ``user`` (default ``"system"``),
``source`` and ``reason``; :func:`gridmap.store.db.session_scope` sets them.

The same listeners feed the change feed (:mod:`gridmap.store.changes`): after each flush
the elders and streets of every written record of :data:`FEED_CLASSES` are noted, and right
before the commit one ``change_log`` row is appended for the whole transaction (none when the
transaction rolls back).
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from enum import Enum
from typing import Any

import shapely
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import get_history

from gridmap._errors import GridmapError
from gridmap.domain.enums import ChangeKind
from gridmap.store import changes
from gridmap.store.models import (
    CalendarEvent,
    CareService,
    Device,
    Elder,
    FirstContact,
    Grid,
    Hazard,
    HouseholdMember,
    Referral,
    RegisterChange,
    Steward,
    Visit,
    utcnow,
)

#: Classes whose changes are history; value: attribute naming the elder, if any.
TRACKED: dict[type, str | None] = {
    Elder: "id",
    HouseholdMember: "elder_id",
    FirstContact: "elder_id",
    Device: "elder_id",
    Hazard: "elder_id",
    Referral: "elder_id",
    Steward: None,
    Grid: None,
}
_SKIP = {"version", "updated_at", "created_at"}


def serialize(value: Any) -> str | None:
    """Render a column value as text for the history table."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    if isinstance(value, shapely.Geometry):
        return shapely.to_wkt(value, rounding_precision=7)
    if isinstance(value, (list, dict)):
        return json.dumps(
            [v.value if isinstance(v, Enum) else v for v in value] if isinstance(value, list) else value,
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
    return str(value)


def _elder_id(obj: Any) -> int | None:
    attr = TRACKED.get(type(obj))
    return getattr(obj, attr) if attr else None


def _record(session: Session, obj: Any, field: str, old: Any, new: Any) -> None:
    state = inspect(obj)
    session.add(
        RegisterChange(
            entity=state.mapper.local_table.name,
            entity_id=obj.id if obj.id is not None else -1,
            elder_id=_elder_id(obj),
            field=field,
            old_value=serialize(old),
            new_value=serialize(new),
            changed_by=session.info.get("user", "system"),
            changed_at=utcnow(),
            source=session.info.get("source"),
            reason=session.info.get("reason"),
        )
    )


@event.listens_for(Session, "before_flush")
def _write_history(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, Elder):
            raise GridmapError(
                "elders are never deleted: set status, exit date and reason instead",
                "老年人记录不可删除：请设置状态、退出日期和原因",
            )
    for obj in list(session.dirty):
        if type(obj) not in TRACKED or not session.is_modified(obj, include_collections=False):
            continue
        mapper = inspect(obj).mapper
        for attr in mapper.column_attrs:
            key = attr.key
            if key in _SKIP:
                continue
            hist = get_history(obj, key)
            if not hist.has_changes():
                continue
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if serialize(old) == serialize(new):
                continue
            _record(session, obj, key, old, new)


@event.listens_for(Session, "after_flush")
def _write_creations(session: Session, flush_context: Any) -> None:
    """Record the creation of tracked records (their ids exist only after the flush)."""
    created = [o for o in session.new if type(o) in TRACKED]
    if not created:
        return
    rows = []
    for obj in created:
        state = inspect(obj)
        rows.append(
            {
                "entity": state.mapper.local_table.name,
                "entity_id": obj.id,
                "elder_id": _elder_id(obj),
                "field": "*created*",
                "old_value": None,
                "new_value": None,
                "changed_by": session.info.get("user", "system"),
                "changed_at": utcnow(),
                "source": session.info.get("source"),
                "reason": session.info.get("reason"),
            }
        )
    session.execute(RegisterChange.__table__.insert(), rows)


# ------------------------------------------------------------ the change feed (gridmap.store.changes)

#: Classes whose writes go to the change feed, with the kind a new / a changed record means.
FEED_CLASSES: dict[type, tuple[ChangeKind, ChangeKind]] = {
    Elder: (ChangeKind.ELDER, ChangeKind.ELDER),
    HouseholdMember: (ChangeKind.ELDER, ChangeKind.ELDER),
    FirstContact: (ChangeKind.ELDER, ChangeKind.ELDER),
    Device: (ChangeKind.ELDER, ChangeKind.ELDER),
    Visit: (ChangeKind.VISIT, ChangeKind.VISIT),
    Hazard: (ChangeKind.HAZARD, ChangeKind.FOLLOWUP),
    Referral: (ChangeKind.REFERRAL, ChangeKind.FOLLOWUP),
    CareService: (ChangeKind.FOLLOWUP, ChangeKind.FOLLOWUP),
    Steward: (ChangeKind.STEWARD, ChangeKind.STEWARD),
    Grid: (ChangeKind.GRID, ChangeKind.GRID),
    CalendarEvent: (ChangeKind.CALENDAR, ChangeKind.CALENDAR),
}
#: When a transaction touched several kinds of record and named none, the first of these present is its kind.
KIND_PRIORITY = (ChangeKind.VISIT, ChangeKind.REFERRAL, ChangeKind.HAZARD, ChangeKind.FOLLOWUP,
                 ChangeKind.STEWARD, ChangeKind.GRID, ChangeKind.CALENDAR, ChangeKind.ELDER)
_STEWARD_FIELDS = {"visit_steward_id", "service_steward_id"}


def _values(obj: Any, key: str) -> set[Any]:
    """The current and the previous value of an attribute (both streets of an elder who moved)."""
    hist = get_history(obj, key)
    out = {getattr(obj, key, None), *hist.deleted, *hist.added}
    return {v for v in out if v is not None}


def _note_feed(p: changes.PendingChange, obj: Any, created: bool) -> None:
    cls = type(obj)
    kind = FEED_CLASSES[cls][0 if created else 1]
    if cls is Elder:
        if obj.id is not None:
            p.elders.add(int(obj.id))
        p.street_ids.update(_values(obj, "street_id"))
        if not created:
            changed = {a.key for a in inspect(obj).mapper.column_attrs
                       if a.key not in _SKIP and get_history(obj, a.key).has_changes()}
            if changed and changed <= _STEWARD_FIELDS:
                kind = ChangeKind.STEWARD
    elif cls in (Steward, Grid):
        p.community_ids.update(_values(obj, "community_id"))
    elif cls is CalendarEvent:
        if obj.street_id is None:
            p.all_streets = True
        p.street_ids.update(_values(obj, "street_id"))
    else:
        eids = _values(obj, "elder_id")
        p.elders.update(int(e) for e in eids)
        p.elders_to_place.update(int(e) for e in eids)
    if kind not in p.inferred:
        p.inferred.append(kind)
    name = inspect(obj).mapper.local_table.name
    p.counts[name] = p.counts.get(name, 0) + 1


@event.listens_for(Session, "after_flush")
def _collect_changes(session: Session, flush_context: Any) -> None:
    """Note the elders and streets of every feed record written by this flush (ids exist now)."""
    p = None
    for objs, created in ((session.new, True), (session.dirty, False), (session.deleted, False)):
        for obj in objs:
            if type(obj) not in FEED_CLASSES:
                continue
            if not created and objs is session.dirty and not session.is_modified(obj, include_collections=False):
                continue
            p = p or changes.pending(session)
            _note_feed(p, obj, created)


@event.listens_for(Session, "before_commit")
def _append_change(session: Session) -> None:
    """Right before the commit: flush what is left, then append the transaction's one feed row."""
    if session.info.get(changes.INFO_KEY) is None and not (session.new or session.dirty or session.deleted):
        return
    session.flush()
    p = session.info.get(changes.INFO_KEY)
    if p is not None and not p.explicit and p.inferred:
        p.inferred.sort(key=KIND_PRIORITY.index)
    seq = changes.flush_pending(session)
    if seq is not None:
        session.info["gridmap_change_seq"] = seq


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: Any) -> None:
    """A rolled-back transaction leaves no feed row (nor anything pending for the next one)."""
    if transaction.parent is None:
        session.info.pop(changes.INFO_KEY, None)
