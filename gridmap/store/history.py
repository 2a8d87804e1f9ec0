"""History of the register: every change to a tracked record becomes ``register_change`` rows.

A ``before_flush`` listener compares each dirty object's attributes with their
loaded values and writes one :class:`~gridmap.store.models.RegisterChange` per
changed field (who, when, old and new value, source). Nothing is overwritten
silently, and elders are never deleted: they leave the programme with a
status, a date and a reason.

Who and why come from ``session.info``: ``user`` (default ``"system"``),
``source`` and ``reason``; :func:`gridmap.store.db.session_scope` sets them.
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
from gridmap.store.models import (
    Device,
    Elder,
    FirstContact,
    Grid,
    Hazard,
    HouseholdMember,
    Referral,
    RegisterChange,
    Steward,
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
