"""Saving register records without losing anyone's change.

Elders, visits, hazards and referrals carry a version column. A save based on
a stale copy fails at flush time (``StaleDataError``); :func:`update_elder`
then re-reads the record and re-applies the change when it does not touch a
field someone else changed meanwhile, and refuses it with a clear message when
it does. Every applied change is history (see :mod:`gridmap.store.history`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm.exc import StaleDataError

from gridmap._errors import ConflictError, GridmapError
from gridmap.store.db import session_scope
from gridmap.store.history import serialize
from gridmap.store.models import Elder, RegisterChange

#: Fields of an elder that are set only by the system, never by an edit.
READ_ONLY_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})


def update_elder(
    engine: Engine,
    elder_id: int,
    changes: Mapping[str, Any],
    *,
    user: str,
    base: Mapping[str, Any] | None = None,
    source: str | None = None,
    reason: str | None = None,
    max_retries: int = 20,
) -> Elder:
    """Apply ``changes`` to one elder, keeping concurrent edits of other fields.

    Parameters
    ----------
    engine
        The store.
    elder_id
        Primary key of the elder.
    changes
        Field name → new value.
    user
        Who makes the change (written to the history).
    base
        Field name → the value the user saw before editing. When given, a field
        whose stored value differs from both ``base`` and the new value was
        changed by someone else: the save is refused with
        :class:`~gridmap._errors.ConflictError`. When omitted, the values read
        at the start of this call are the base.
    source, reason
        Written to the history.
    max_retries
        How often a save that lost a race is re-applied.

    Returns
    -------
    Elder
        The saved elder (detached).
    """
    bad = set(changes) - {c.key for c in Elder.__mapper__.column_attrs} | (set(changes) & READ_ONLY_FIELDS)
    if bad:
        raise GridmapError(
            f"cannot edit field(s) {sorted(bad)} of an elder",
            f"老年人记录的字段{sorted(bad)}不可编辑",
        )
    seen = dict(base) if base is not None else None
    for _attempt in range(max_retries):
        try:
            with session_scope(engine, user=user, source=source, reason=reason) as session:
                elder = session.get(Elder, elder_id, populate_existing=True)
                if elder is None:
                    raise GridmapError(f"no elder with id {elder_id}", f"不存在编号为{elder_id}的老年人")
                if seen is None:
                    seen = {f: getattr(elder, f) for f in changes}
                for field, new in changes.items():
                    current = serialize(getattr(elder, field))
                    if field in seen and current not in (serialize(seen[field]), serialize(new)):
                        raise ConflictError(
                            f"elder {elder_id}: field {field} was changed by someone else meanwhile "
                            f"(now {current!r}); reload and edit again",
                            f"老年人{elder_id}的字段“{field}”已被他人修改（现为{current!r}），请刷新后重新编辑",
                        )
                for field, new in changes.items():
                    setattr(elder, field, new)
            return elder
        except StaleDataError:
            # lost a race: back off a little (jittered) and re-apply on a fresh read
            time.sleep(random.uniform(0, 0.005 * (2 ** min(_attempt, 6))))
            continue
    raise ConflictError(
        f"elder {elder_id}: could not save after {max_retries} attempts (too many concurrent edits)",
        f"老年人{elder_id}：并发修改过多，{max_retries}次尝试后仍未保存",
    )


def elder_history(engine: Engine, elder_id: int) -> list[RegisterChange]:
    """Every history row of an elder and its household, first contact, devices, oldest first."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(RegisterChange)
            .where(RegisterChange.elder_id == elder_id)
            .order_by(RegisterChange.changed_at, RegisterChange.id)
        ).all()
        return list(rows)
