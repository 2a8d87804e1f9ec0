"""The change feed: every write appends one ``change_log`` row in its own transaction; readers follow it by ``seq``.

Every write of the register and its follow-up (import, monthly update, visit, hazard,
referral, calendar event, plan, grid, steward) appends a row saying what kind of write it
was, which streets and elders it touched, who made it and when, *in the same transaction
as the write*: a write that rolls back leaves no row, a committed one always has one.
Each server process follows the feed (:meth:`gridmap.dashboard.data.DashboardData.follow_changes`)
and re-reads only the streets touched.

How rows get written
--------------------
* ORM sessions (``session_scope``, ``Session``): a listener (:mod:`gridmap.store.history`)
  collects the elders and streets of every changed record of :data:`FEED_CLASSES` while the
  session flushes; right before the commit one row is appended for the whole transaction.
  A caller may name the kind and add streets, elders or detail with :func:`record_change`
  (on a session it adds to that one row); without it the kind follows from what changed.
* Core connections (``engine.begin()``, bulk inserts): :func:`record_change` on the
  connection appends the row at once: call it last, just before the commit.

Sequence order equals commit order
----------------------------------
A follower reads ``seq > last``. On PostgreSQL a sequence value is taken at insert time,
so without care a transaction that took seq 11 could commit after one that took 12, and a
follower that already moved past 12 would never see 11. Here every append first takes a
transaction-level advisory lock (``pg_advisory_xact_lock``), held until the commit: the
appends of concurrent transactions are serialised from the insert to the commit, so a seq
becomes visible only after every smaller seq is committed or rolled back. The lock is taken
at the very end of a transaction (right before the commit of an ORM session; by Core callers
as their last statement), so it is held for milliseconds. On SQLite one writer at a time
holds the database from its first write to its commit, which gives the same order.
A rolled-back append leaves a gap in the sequence (PostgreSQL does not give a sequence
value back); followers re-check gaps for :data:`GAP_GRACE_S` seconds anyway, which also
covers rows appended without the lock (e.g. by hand), then forget them.

On PostgreSQL the append also sends ``NOTIFY gridmap_changes`` with the seq as payload
(delivered at commit); followers may ``LISTEN`` to wake up sooner, polling is the baseline.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from gridmap.domain.enums import ChangeKind
from gridmap.store.models import ChangeLog, Street, utcnow

__all__ = [
    "CHANNEL", "GAP_GRACE_S", "MAX_ELDERS", "Change", "PendingChange", "cli_actor", "latest_seq",
    "read_changes", "record_change",
]

#: At most this many elder ids are kept in one row; beyond, ``many`` is set (refresh the whole streets).
MAX_ELDERS = 10_000
#: PostgreSQL ``NOTIFY`` channel of the feed (payload: the new seq).
CHANNEL = "gridmap_changes"
#: Seconds a follower keeps re-checking a missing seq below its high-water mark.
GAP_GRACE_S = 10.0
#: ``pg_advisory_xact_lock`` key of the appends (``'gmch'`` as an integer).
_LOCK_KEY = 0x676D6368
#: Key of the pending row in ``Session.info``.
INFO_KEY = "gridmap_change"


def cli_actor() -> str:
    """``cli:<os user>``: the actor of a write made from the command line."""
    try:
        who = getpass.getuser()
    except Exception:  # no user name in the environment (containers)
        who = "unknown"
    return f"cli:{who}"


@dataclass(frozen=True)
class Change:
    """One row of the feed."""

    seq: int
    at: datetime
    kind: ChangeKind
    streets: tuple[str, ...]
    elders: tuple[int, ...]
    many: bool
    actor: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (kind as its code, with its Chinese label)."""
        return {"seq": self.seq, "at": self.at.isoformat(), "kind": self.kind.value,
                "kind_label": self.kind.label, "streets": list(self.streets), "elders": list(self.elders),
                "many": self.many, "actor": self.actor, "detail": dict(self.detail)}


@dataclass
class PendingChange:
    """What an ORM session's transaction has touched so far (written as one row before its commit)."""

    kind: ChangeKind | None = None
    inferred: list[ChangeKind] = field(default_factory=list)
    streets: set[str] = field(default_factory=set)
    street_ids: set[int] = field(default_factory=set)
    elders: set[int] = field(default_factory=set)
    #: elders whose street is to be looked up (visits, hazards… name the elder only)
    elders_to_place: set[int] = field(default_factory=set)
    community_ids: set[int] = field(default_factory=set)
    all_streets: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None
    explicit: bool = False

    def empty(self) -> bool:
        """Nothing of the feed was touched and nothing was recorded explicitly."""
        return not (self.explicit or self.counts)


def _as_kind(kind: ChangeKind | str) -> ChangeKind:
    return kind if isinstance(kind, ChangeKind) else ChangeKind(str(kind))


def pending(session: Session) -> PendingChange:
    """The pending row of ``session``'s transaction (created empty on first use)."""
    p = session.info.get(INFO_KEY)
    if p is None:
        p = session.info[INFO_KEY] = PendingChange()
    return p


def record_change(
    target: Session | Connection,
    kind: ChangeKind | str,
    *,
    streets: Iterable[str] = (),
    elders: Iterable[int] = (),
    actor: str | None = None,
    detail: Mapping[str, Any] | None = None,
    many: bool = False,
) -> int | None:
    """Append a change to the feed in the transaction of ``target``.

    Parameters
    ----------
    target
        An ORM session: the change is added to the one row the session's transaction writes
        right before its commit (with whatever else it changed; ``kind`` wins over the kind
        inferred from the records). A Core connection inside a transaction: the row is
        appended now (call this last, just before the commit, see the module docstring).
    kind
        What kind of write (:class:`~gridmap.domain.enums.ChangeKind` or its code).
    streets
        Street names touched; ``"*"`` means the whole district.
    elders
        Elder ids touched (cut at :data:`MAX_ELDERS`, then ``many`` is set).
    actor
        Who wrote (a user name, or :func:`cli_actor`); default: the session's ``user`` or ``"system"``.
    detail
        Small JSON-able facts (batch id, week, counts…).
    many
        Readers should re-read the whole streets (set automatically when the elders are cut).

    Returns
    -------
    int or None
        The seq appended (Core connection); ``None`` for a session (the seq is in
        ``session.info["gridmap_change_seq"]`` after the commit).
    """
    k = _as_kind(kind)
    if isinstance(target, Session):
        p = pending(target)
        p.kind, p.explicit = k, True
        for s in streets:
            if s == "*":
                p.all_streets = True
            else:
                p.streets.add(str(s))
        p.elders.update(int(e) for e in elders)
        p.detail.update(dict(detail or {}))
        if actor:
            p.actor = actor
        if many:
            p.counts["many"] = 1
        return None
    return append(target, k, streets=streets, elders=elders, actor=actor or "system", detail=detail, many=many)


def append(conn: Connection, kind: ChangeKind, *, streets: Iterable[str], elders: Iterable[int], actor: str,
           detail: Mapping[str, Any] | None = None, many: bool = False) -> int:
    """Append one row now, on ``conn``'s transaction (lock first on PostgreSQL, then ``NOTIFY``); returns its seq."""
    ids = sorted({int(e) for e in elders})
    if len(ids) > MAX_ELDERS:
        ids, many = ids[:MAX_ELDERS], True
    names = sorted({str(s) for s in streets})
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    seq = conn.execute(ChangeLog.__table__.insert().returning(ChangeLog.seq), {
        "at": utcnow(), "kind": kind, "streets": names, "elders": ids, "many": bool(many),
        "actor": str(actor)[:60], "detail": dict(detail or {})}).scalar_one()
    if pg:
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(seq)})
    return int(seq)


def flush_pending(session: Session) -> int | None:
    """Write the session's pending row (called by the listener right before the commit); its seq or ``None``."""
    p: PendingChange | None = session.info.pop(INFO_KEY, None)
    if p is None or p.empty():
        return None
    from gridmap.store.models import Community, Elder

    conn = session.connection()
    if p.elders_to_place:
        ids = sorted(p.elders_to_place)
        for i in range(0, len(ids), 1000):
            p.street_ids.update(x for x in conn.execute(
                select(Elder.street_id).where(Elder.id.in_(ids[i:i + 1000])).distinct()).scalars() if x is not None)
    if p.community_ids:
        p.street_ids.update(x for x in conn.execute(
            select(Community.street_id).where(Community.id.in_(sorted(p.community_ids))).distinct()).scalars()
            if x is not None)
    if p.street_ids:
        p.streets.update(conn.execute(select(Street.name).where(Street.id.in_(sorted(p.street_ids)))).scalars())
    kind = p.kind or (p.inferred[0] if p.inferred else ChangeKind.ELDER)
    detail = dict(p.detail)
    counts = {k: v for k, v in p.counts.items() if k != "many"}
    if counts:
        detail.setdefault("records", counts)
    streets = ["*"] if p.all_streets else sorted(p.streets)
    actor = p.actor or str(session.info.get("user") or "system")
    return append(conn, kind, streets=streets, elders=p.elders, actor=actor, detail=detail,
                  many="many" in p.counts)


def latest_seq(engine: Engine | Connection) -> int:
    """The highest seq in the feed (0 when empty)."""
    q = select(func.coalesce(func.max(ChangeLog.seq), 0))
    if isinstance(engine, Connection):
        return int(engine.execute(q).scalar_one())
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def _row(r: Any) -> Change:
    at = r.at
    return Change(seq=int(r.seq), at=at, kind=ChangeKind(str(getattr(r.kind, "value", r.kind))),
                  streets=tuple(r.streets or ()), elders=tuple(int(e) for e in (r.elders or ())),
                  many=bool(r.many), actor=r.actor, detail=dict(r.detail or {}))


def read_changes(engine: Engine, since: int = 0, limit: int = 1000, *, seqs: Iterable[int] = ()) -> list[Change]:
    """Changes with ``seq > since`` (oldest first, at most ``limit``), plus any of ``seqs`` (re-checked gaps)."""
    cols = [ChangeLog.seq, ChangeLog.at, ChangeLog.kind, ChangeLog.streets, ChangeLog.elders, ChangeLog.many,
            ChangeLog.actor, ChangeLog.detail]
    out: dict[int, Change] = {}
    with engine.connect() as conn:
        for r in conn.execute(select(*cols).where(ChangeLog.seq > int(since)).order_by(ChangeLog.seq)
                              .limit(int(limit))):
            out[int(r.seq)] = _row(r)
        gaps = sorted({int(s) for s in seqs})
        for i in range(0, len(gaps), 500):
            for r in conn.execute(select(*cols).where(ChangeLog.seq.in_(gaps[i:i + 500]))):
                out[int(r.seq)] = _row(r)
    return [out[k] for k in sorted(out)]
