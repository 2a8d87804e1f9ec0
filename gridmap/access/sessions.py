"""Server-side sign-in sessions: start, check, end one, end every session of a user, list.

A session is a row of ``user_session`` keyed by the SHA-256 of a random
256-bit token (:func:`secrets.token_urlsafe`); the browser's cookie carries the
token, the store only its hash, so a copy of the table cannot be replayed.
Every request checks the row by primary key (:func:`session_user_id`), so a
session ended here is refused at the very next request in every process.

A session ends when

* the user signs out (every session of that user ends, on every device),
* an administrator changes the user's password, role or area, or disables
  the user (:mod:`gridmap.access.users` ends them in the same transaction),
* ``expires_at`` (the absolute lifetime, 8 hours by default) has passed, or
* it was idle longer than the idle timeout (``last_seen_at`` is written at
  most once a minute per session, so the timeout is precise to a minute).

Domain code: SQLAlchemy only, no Flask.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update

from gridmap.access._revocation import revoke_open
from gridmap.store.models import AppUser, UserSession

__all__ = [
    "DEFAULT_IDLE",
    "DEFAULT_LIFETIME",
    "SessionInfo",
    "end_session",
    "end_user_sessions",
    "list_sessions",
    "session_user_id",
    "start_session",
    "token_hash",
]

#: Absolute lifetime of a session.
DEFAULT_LIFETIME = timedelta(hours=8)
#: A session unused for longer than this ends.
DEFAULT_IDLE = timedelta(hours=2)
#: ``last_seen_at`` is written at most this often per session.
TOUCH_EVERY = timedelta(seconds=60)
#: Ended or expired rows are deleted this long after they ended (at the user's next sign-in).
KEEP_ENDED = timedelta(days=30)
_TOKEN_MAX = 200


@dataclass(frozen=True)
class SessionInfo:
    """One session as listed for an administrator (never the token)."""

    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    client: str | None
    ended: str | None
    """Why it ended (``logout``, ``password``, ``role``, ``disabled``, ``admin``…) or ``None`` while open."""


def _utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite returns naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a session token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(engine: Engine, user_id: int, client: str | None, *,
                  lifetime: timedelta = DEFAULT_LIFETIME, now: datetime | None = None) -> str:
    """Open a session for ``user_id`` and return its token (put it in the cookie; it is not stored).

    Rows of this user that ended more than :data:`KEEP_ENDED` ago are deleted.
    """
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)  # 256 bits
    with engine.begin() as conn:
        conn.execute(delete(UserSession).where(UserSession.user_id == int(user_id),
                                               UserSession.expires_at < now - KEEP_ENDED))
        conn.execute(UserSession.__table__.insert().values(
            token_hash=token_hash(token), user_id=int(user_id), created_at=now, last_seen_at=now,
            expires_at=now + lifetime, revoked_at=None, revoked_reason=None, client=(client or "")[:80] or None))
    return token


def session_user_id(engine: Engine, token: Any, *, idle: timedelta = DEFAULT_IDLE,
                    now: datetime | None = None) -> int | None:
    """The user id of an open session with this token, or ``None`` (unknown, ended, expired or idle).

    An idle session is ended here (``revoked_reason='idle'``); ``last_seen_at``
    is moved on at most every :data:`TOUCH_EVERY`.
    """
    if not isinstance(token, str) or not token or len(token) > _TOKEN_MAX:
        return None
    now = now or datetime.now(UTC)
    key = token_hash(token)
    t = UserSession.__table__
    with engine.connect() as conn:
        row = conn.execute(select(t.c.user_id, t.c.expires_at, t.c.revoked_at, t.c.last_seen_at)
                           .where(t.c.token_hash == key)).first()
    if row is None or row.revoked_at is not None or _utc(row.expires_at) <= now:
        return None
    seen = _utc(row.last_seen_at)
    if now - seen > idle:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.token_hash == key, t.c.revoked_at.is_(None))
                         .values(revoked_at=now, revoked_reason="idle"))
        return None
    if now - seen >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.token_hash == key).values(last_seen_at=now))
    return int(row.user_id)


def end_session(engine: Engine, token: Any, reason: str = "logout", *, now: datetime | None = None) -> bool:
    """End one session; whether an open session with this token existed."""
    if not isinstance(token, str) or not token or len(token) > _TOKEN_MAX:
        return False
    t = UserSession.__table__
    return bool(revoke_open(engine, t, t.c.token_hash == token_hash(token), reason, now=now))


def end_user_sessions(target: Any, user_id: int, reason: str, *, now: datetime | None = None) -> int:
    """End every open session of ``user_id``; how many were open.

    Parameters
    ----------
    target
        An :class:`~sqlalchemy.Engine` (own transaction) or an ORM session or
        connection (the caller's transaction: the sessions end exactly when the
        change that ends them commits).
    reason
        Why (``logout``, ``password``, ``role``, ``disabled``, ``admin``).
    """
    t = UserSession.__table__
    return revoke_open(target, t, t.c.user_id == int(user_id), reason, now=now)


def list_sessions(engine: Engine, username: str | None = None, *, open_only: bool = True,
                  now: datetime | None = None) -> list[SessionInfo]:
    """Sessions (of one user, or of all), newest first; by default only those still open."""
    now = now or datetime.now(UTC)
    t = UserSession.__table__
    q = (select(AppUser.username, t.c.created_at, t.c.last_seen_at, t.c.expires_at, t.c.client,
                t.c.revoked_reason, t.c.revoked_at)
         .join(AppUser, AppUser.id == t.c.user_id).order_by(t.c.created_at.desc()))
    if username is not None:
        q = q.where(AppUser.username == username)
    if open_only:
        q = q.where(t.c.revoked_at.is_(None), t.c.expires_at > now)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [SessionInfo(username=r.username, created_at=_utc(r.created_at), last_seen_at=_utc(r.last_seen_at),
                        expires_at=_utc(r.expires_at), client=r.client,
                        ended=r.revoked_reason if r.revoked_at is not None else
                        ("expired" if _utc(r.expires_at) <= now else None)) for r in rows]
