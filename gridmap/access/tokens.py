"""Bearer tokens of the read API: create (printed once), check, list (never the token), revoke.

A token lets a machine (the district data bureau's platform, the 12345 hotline
system, a BI tool) call ``/api/v1`` as one user, with exactly that user's
scope (:mod:`gridmap.access.scope`). Like a sign-in session
(:mod:`gridmap.access.sessions`) only the SHA-256 of the random 256-bit token
is stored (``api_token``); the token is shown once, by ``gridmap users token``.

A token stops working when

* it is revoked (``gridmap users token-revoke ID``),
* it has expired (``--expires DAYS``; without it the token does not expire),
* its user is disabled, or its user's role or area changed since it was made:
  :func:`gridmap.access.users.disable_user` and :func:`~gridmap.access.users.set_role`
  end the user's tokens in the same transaction as the change (as they end the
  sessions), and the user's role and area at creation are kept as a fingerprint
  (``scope_key``) that every check compares with the user's current ones, so
  a change made any other way ends the token too.

Every check reads the row by its unique hash, so a revoked token is refused
at the very next request in every server process.

Domain code: SQLAlchemy only, no Flask.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update

from gridmap._errors import ValidationError
from gridmap.access._revocation import revoke_open
from gridmap.store.models import ApiToken, AppUser, UserArea

if TYPE_CHECKING:
    from gridmap.access.users import User

__all__ = [
    "TOKEN_PREFIX",
    "TokenInfo",
    "create_token",
    "end_user_tokens",
    "list_tokens",
    "revoke_token",
    "token_user",
]

#: Every token starts with this (so secret scanners and people recognise one).
TOKEN_PREFIX = "gmt_"
#: ``last_used_at`` is written at most this often per token.
TOUCH_EVERY = timedelta(seconds=60)
#: Longest lifetime ``--expires`` accepts (days).
MAX_DAYS = 3650
_TOKEN_MAX = 200


@dataclass(frozen=True)
class TokenInfo:
    """One token as listed for an administrator (never the token itself)."""

    id: int
    username: str
    label: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    state: str
    """``active``, ``expired``, or why it was revoked (``revoked``, ``disabled``, ``role``)."""


def _utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite returns naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _scope_key(conn: Any, user_id: int) -> str | None:
    """A fingerprint of the user's role and area (role, street, community, steward, granted streets)."""
    row = conn.execute(select(AppUser.role, AppUser.street_id, AppUser.community_id, AppUser.steward_id)
                       .where(AppUser.id == int(user_id))).first()
    if row is None:
        return None
    granted = sorted(conn.execute(select(UserArea.street_id).where(UserArea.user_id == int(user_id))).scalars())
    role = getattr(row.role, "value", row.role)
    text = f"{role}|{row.street_id}|{row.community_id}|{row.steward_id}|{','.join(map(str, granted))}"
    return hashlib.sha256(text.encode()).hexdigest()


def _user_id(conn: Any, username: str) -> int:
    from gridmap.access.users import _lookup_name

    n = _lookup_name(username)
    uid = conn.execute(select(AppUser.id).where(AppUser.username == n)).scalar() if n else None
    if uid is None:
        raise ValidationError(f"no user {username!r}", f"没有用户“{username}”", field="username", value=username,
                              code="unknown_user")
    return int(uid)


def create_token(engine: Engine, username: str, *, expires_days: float | None = None, label: str | None = None,
                 by: str = "system", now: datetime | None = None) -> tuple[int, str]:
    """Make a token for ``username``; returns ``(id, token)`` (the token is not stored: show it once).

    Parameters
    ----------
    username
        The user the token acts as (same role and area).
    expires_days
        Lifetime in days (``None``: no expiry); more than 0 and at most :data:`MAX_DAYS`.
    label
        What the token is for (``12345热线``), shown in the list.
    by
        Who made it (kept with the token).

    Raises
    ------
    ValidationError
        Unknown or disabled user, bad lifetime.
    """
    if expires_days is not None and not 0 < expires_days <= MAX_DAYS:
        raise ValidationError(f"--expires is a number of days, more than 0 and at most {MAX_DAYS}",
                              f"--expires 须为天数（大于0，至多{MAX_DAYS}）", field="expires", value=expires_days,
                              code="expires")
    now = now or datetime.now(UTC)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        if conn.execute(select(AppUser.disabled).where(AppUser.id == uid)).scalar():
            raise ValidationError(f"user {username!r} is disabled", f"用户“{username}”已停用", field="username",
                                  value=username, code="user_disabled")
        res = conn.execute(ApiToken.__table__.insert().values(
            token_hash=_hash(token), user_id=uid, label=(label or "").strip()[:60] or None,
            scope_key=_scope_key(conn, uid), created_at=now, created_by=(by or "")[:60] or None,
            expires_at=now + timedelta(days=expires_days) if expires_days is not None else None,
            last_used_at=None, revoked_at=None, revoked_reason=None))
        tid = int(res.inserted_primary_key[0])
    return tid, token


def token_user(engine: Engine, token: Any, *, now: datetime | None = None) -> tuple[User, int] | None:
    """The user a bearer token acts as, and the token's id; ``None`` when it is unknown or no longer works.

    Refused: revoked, expired, user disabled, user's role or area changed since
    the token was made (the token is then revoked with reason ``role``).
    ``last_used_at`` is moved on at most every :data:`TOUCH_EVERY`.
    """
    from gridmap.access.users import load_user_by_id

    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > _TOKEN_MAX:
        return None
    now = now or datetime.now(UTC)
    t = ApiToken.__table__
    with engine.connect() as conn:
        row = conn.execute(select(t.c.id, t.c.user_id, t.c.scope_key, t.c.expires_at, t.c.revoked_at,
                                  t.c.last_used_at).where(t.c.token_hash == _hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        exp = _utc(row.expires_at)
        if exp is not None and exp <= now:
            return None
        key = _scope_key(conn, row.user_id)
    if key != row.scope_key:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == row.id, t.c.revoked_at.is_(None))
                         .values(revoked_at=now, revoked_reason="role"))
        return None
    user = load_user_by_id(engine, row.user_id)
    if user is None or user.disabled:
        return None
    seen = _utc(row.last_used_at)
    if seen is None or now - seen >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == row.id).values(last_used_at=now))
    return user, int(row.id)


def revoke_token(engine: Engine, token_id: int, *, reason: str = "revoked", now: datetime | None = None) -> bool:
    """Revoke one token by its id; whether a working (not yet revoked) token had that id.

    Raises
    ------
    ValidationError
        No token has that id.
    """
    t = ApiToken.__table__
    with engine.begin() as conn:
        if conn.execute(select(t.c.id).where(t.c.id == int(token_id))).first() is None:
            raise ValidationError(f"no API token with id {token_id}", f"没有编号为 {token_id} 的接口令牌",
                                  field="id", value=token_id, code="unknown_token")
        n = revoke_open(conn, t, t.c.id == int(token_id), reason, now=now)
    return bool(n)


def end_user_tokens(target: Any, user_id: int, reason: str, *, now: datetime | None = None) -> int:
    """Revoke every working token of ``user_id``; how many there were.

    Parameters
    ----------
    target
        An :class:`~sqlalchemy.Engine` (own transaction) or an ORM session or
        connection (the caller's transaction: the tokens end exactly when the
        change that ends them commits).
    reason
        Why (``disabled``, ``role``…).
    """
    t = ApiToken.__table__
    return revoke_open(target, t, t.c.user_id == int(user_id), reason, now=now)


def list_tokens(engine: Engine, username: str | None = None, *, now: datetime | None = None) -> list[TokenInfo]:
    """Every token (of one user, or of all), newest first, with its state; never the token."""
    now = now or datetime.now(UTC)
    t = ApiToken.__table__
    q = (select(t.c.id, AppUser.username, t.c.label, t.c.created_at, t.c.created_by, t.c.expires_at,
                t.c.last_used_at, t.c.revoked_at, t.c.revoked_reason)
         .join(AppUser, AppUser.id == t.c.user_id).order_by(t.c.id.desc()))
    with engine.connect() as conn:
        if username is not None:
            q = q.where(t.c.user_id == _user_id(conn, username))
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        exp = _utc(r.expires_at)
        state = (r.revoked_reason or "revoked") if r.revoked_at is not None else (
            "expired" if exp is not None and exp <= now else "active")
        out.append(TokenInfo(id=int(r.id), username=r.username, label=r.label, created_at=_utc(r.created_at),
                             created_by=r.created_by, expires_at=exp, last_used_at=_utc(r.last_used_at),
                             state=state))
    return out
