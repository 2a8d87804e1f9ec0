"""One visit, stored once (issue 16 item 7): how a submission is recognised when it comes again.

A form carries an idempotency key made when it opens; without one, the same elder, visitor and
start time is the same submission (a JSON given twice to ``gridmap visits record``). The visit
table's unique index on the key makes two writers racing with one submission store it once
(:func:`gridmap.rules.store.record_visits` retries and finds the first). Part of the rules' store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from gridmap.rules.visits import VisitRecord
from gridmap.store.models import CareService, Hazard, Referral, Visit

if TYPE_CHECKING:
    from gridmap.rules.store import RecordResult

_BEIJING = timezone(timedelta(hours=8))


def submission_key(record: VisitRecord) -> str | None:
    """The key of a submission without its own idempotency key: the same elder, visitor and start time
    is the same visit (None without a start time: such a visit cannot be told apart)."""
    if record.started_at is None:
        return None
    start = record.started_at if record.started_at.tzinfo else record.started_at.replace(tzinfo=_BEIJING)
    who = f"{record.steward_id or ''}|{record.visitor_role}|{(record.visitor_name or '').strip()}"
    raw = f"{record.elder_id}|{who}|{start.astimezone(UTC).isoformat()}"
    return "auto:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def stored_before(conn: Any, records: Sequence[VisitRecord], keys: Sequence[str | None]) -> dict[int, int]:
    """Index in ``records`` → id of the visit already stored for that submission."""
    out: dict[int, int] = {}
    wanted = sorted({k for k in keys if k})
    if wanted:
        found = dict(conn.execute(select(Visit.idempotency_key, Visit.id).where(Visit.idempotency_key.in_(wanted))).all())
        out.update({i: int(found[k]) for i, k in enumerate(keys) if k in found})
    # visits stored before keys existed (or with another key) by the same elder, visitor and start
    starts = [(i, r) for i, r in enumerate(records) if i not in out and r.started_at is not None]
    if starts:
        q = select(Visit.id, Visit.elder_id, Visit.started_at, Visit.steward_id, Visit.visitor_role,
                   Visit.visitor_name).where(Visit.elder_id.in_(sorted({r.elder_id for _, r in starts})),
                                             Visit.visited_on.in_(sorted({r.visited_on for _, r in starts})),
                                             Visit.started_at.is_not(None))
        rows = conn.execute(q).all()
        for i, r in starts:
            for vid, eid, st, sid, role, name in rows:
                if eid == r.elder_id and same_time(st, r.started_at) and sid == r.steward_id and \
                        str(role) == str(r.visitor_role) and (name or "") == (r.visitor_name or ""):
                    out[i] = int(vid)
                    break
    return out


def same_time(a: datetime | None, b: datetime | None) -> bool:
    """Whether a stored start time is ``b`` (SQLite keeps the wall time without its offset)."""
    if a is None or b is None:
        return False
    if a.tzinfo is None or b.tzinfo is None:
        a0 = a.replace(tzinfo=None)
        return a0 == b.replace(tzinfo=None) or (b.tzinfo is not None and
                                                a0 == b.astimezone(UTC).replace(tzinfo=None))
    return a == b


def stored_result(conn: Any, visit_id: int, late: bool) -> RecordResult:
    """The result of a submission stored before: its visit and the follow-ups it opened."""
    hz = list(conn.execute(select(Hazard.id).where(Hazard.visit_id == visit_id).order_by(Hazard.id)).scalars())
    rf = list(conn.execute(select(Referral.id).where(Referral.visit_id == visit_id).order_by(Referral.id)).scalars())
    cs = list(conn.execute(select(CareService.id).where(CareService.visit_id == visit_id)
                           .order_by(CareService.id)).scalars())
    from gridmap.rules.store import RecordResult

    return RecordResult(visit_id, late, hz, rf, cs, duplicate=True)


__all__ = ["same_time", "stored_before", "stored_result", "submission_key"]
