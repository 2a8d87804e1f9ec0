"""Users of gridmap: adding, disabling and changing roles, signing in with rate limiting.

A user has one role (:class:`~gridmap.domain.enums.Role`) scoped to an area
(:mod:`gridmap.access.scope`). Passwords are stored as Argon2id hashes only,
and new passwords must be strong (:func:`gridmap.access.passwords.password_problem`:
10+ characters, zxcvbn score 3+).

Changing a user's password, role or area, or disabling the user, ends every
session of the user in the same transaction (:mod:`gridmap.access.sessions`):
a browser signed in before the change gets 401 at its next request.

Sign-in limits
--------------
Two layers, so that a stranger cannot lock the owner out:

1. **Per address** (the web layer, :mod:`gridmap.dashboard.auth`, with
   flask-limiter): failed sign-ins from one client address, whatever the user
   names, are limited (default 10 a minute and 50 an hour); this stops one
   password tried across many user names (password spraying) from one place.
2. **Per account**, here, counted from the audit log (so it holds across
   restarts and worker processes):

   * :data:`MAX_FAILURES` failures for one account from one address within
     :data:`WINDOW` block that account *from that address* (the password is
     then not checked);
   * :data:`MAX_FAILURES_PER_USER` failures for one account from all addresses
     within :data:`WINDOW` block the account only for addresses that have
     **never signed in to it successfully** (within :data:`KNOWN_ADDRESS_FOR`).
     Failures sent from many other addresses therefore never stop the owner
     signing in from an address they used before; an attacker (or the owner on
     a new address) waits until the window has passed.

Every refusal is audited as ``login_limited`` (``detail.limit``: ``address``,
``account_address`` or ``account``), and ``gridmap audit report`` reports
password spraying (one address trying many user names, or failures spread
across many accounts from several addresses) and the limits hit.

A user name that is not a known user is never stored as typed (it may be a
password typed into the wrong box): the audit log gets ``未知用户#`` and a keyed
hash of it (HMAC-SHA256 with the session key), so repeated attempts at the same
unknown name can still be counted without keeping the text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gridmap._errors import GridmapError, ValidationError
from gridmap.access.audit import audit, count_recent
from gridmap.access.keys import session_secret
from gridmap.access.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from gridmap.access.scope import UNMASK_ROLES, Scope
from gridmap.access.sessions import end_user_sessions
from gridmap.access.tokens import end_user_tokens
from gridmap.domain.enums import Role, StewardKind
from gridmap.store.db import session_scope
from gridmap.store.models import AppUser, Community, Elder, Steward, Street, UserArea

__all__ = [
    "MAX_FAILURES",
    "MAX_FAILURES_PER_USER",
    "WINDOW",
    "RateLimited",
    "User",
    "add_user",
    "audit_name",
    "authenticate",
    "create_demo_users",
    "end_sessions",
    "disable_user",
    "list_users",
    "load_user",
    "load_user_by_id",
    "set_password",
    "set_role",
]

#: Failed sign-ins allowed per user name and client within :data:`WINDOW`.
MAX_FAILURES = 5
#: Failed sign-ins allowed per user name from all clients within :data:`WINDOW`
#: (then refused only from addresses that never signed in to the account).
MAX_FAILURES_PER_USER = 20
WINDOW = timedelta(minutes=5)
#: An address that signed in to an account within this time is the owner's: never blocked by
#: :data:`MAX_FAILURES_PER_USER`.
KNOWN_ADDRESS_FOR = timedelta(days=90)
#: How an unknown user name is written in the audit log (followed by a keyed hash).
UNKNOWN_USER = "未知用户#"
_USERNAME_MAX = 60


class RateLimited(GridmapError):
    """Too many failed sign-ins: try again later."""


@dataclass(frozen=True)
class User:
    """A signed-in (or looked-up) user with the scope of their role."""

    id: int
    username: str
    display_name: str | None
    role: Role
    scope: Scope
    disabled: bool = False
    street: str | None = None
    community: str | None = None
    steward_id: int | None = None

    @property
    def name(self) -> str:
        """The name shown in pages: display name, else user name."""
        return self.display_name or self.username

    @property
    def label(self) -> str:
        """``name（role in Chinese）`` for the page header."""
        return f"{self.name}（{self.role.label}）"

    @property
    def can_unmask(self) -> bool:
        """May ask to see personal fields in clear (with a reason, audited)."""
        return not self.disabled and self.role in UNMASK_ROLES and not self.scope.read_only


# ------------------------------------------------------------------ lookups


def _norm_username(name: str) -> str:
    return unicodedata.normalize("NFKC", str(name)).strip()


def _lookup_name(name: Any) -> str | None:
    """The normalised name to look up, or ``None`` when no user can have it (never sent to the DB)."""
    if not isinstance(name, str):
        return None
    n = _norm_username(name)
    if not n or len(n) > _USERNAME_MAX or any(unicodedata.category(c)[0] == "C" for c in n):
        return None
    return n


def _check_username(name: str) -> str:
    n = _norm_username(name)
    if not n or len(n) > _USERNAME_MAX or any(unicodedata.category(c)[0] in "CZ" and c != " " for c in n) \
            or " " in n:
        raise ValidationError("a user name is 1-60 characters without spaces or control characters",
                              "用户名须为1至60个字符，不含空格或控制字符", field="username", value=name,
                              code="username")
    return n


def _street_id(s: Any, name: str | None) -> int | None:
    if not name:
        return None
    t = str(name).strip()
    for cand in (t, t + "街道", t + "镇"):
        sid = s.scalar(select(Street.id).where((Street.name == cand) | (Street.code == cand)))
        if sid is not None:
            return sid
    raise ValidationError(f"no street named {t!r}", f"没有名为“{t}”的街道（乡镇）", field="street", value=t,
                          code="unknown_street")


def _community_id(s: Any, name: str | None, street_id: int | None) -> int | None:
    if not name:
        return None
    t = str(name).strip()
    q = select(Community.id, Community.street_id).where(
        (Community.code == t) | (Community.name == t) | (Community.name == t + "居委会")
        | (Community.name == t + "社区居委会") | (Community.name == t + "村委会"))
    if street_id is not None:
        q = q.where(Community.street_id == street_id)
    rows = s.execute(q).all()
    if len(rows) != 1:
        raise ValidationError(
            f"{'no' if not rows else 'more than one'} community named {t!r}"
            + (" (give --street or the 12-digit code)" if rows else ""),
            f"{'没有' if not rows else '有多个'}名为“{t}”的社区" + ("（请加 --street 或使用12位代码）" if rows else ""),
            field="community", value=t, code="unknown_community" if not rows else "ambiguous_community")
    return rows[0][0]


def _steward_id(s: Any, code: str | None, kind: StewardKind | None) -> int | None:
    if not code:
        return None
    t = str(code).strip()
    q = select(Steward.id, Steward.kind).where(Steward.code == t)
    row = s.execute(q).first()
    if row is None and t.isdigit():
        row = s.execute(select(Steward.id, Steward.kind).where(Steward.id == int(t))).first()
    if row is None:
        raise ValidationError(f"no steward with code {t!r}", f"没有编号为“{t}”的管家", field="steward",
                              value=t, code="unknown_steward")
    if kind is not None and row[1] != kind:
        raise ValidationError(f"steward {t} is not a {kind.value} steward", f"管家{t}不是{kind.label}",
                              field="steward", value=t, code="steward_kind")
    return row[0]


def _scope(s: Any, u: AppUser) -> tuple[Scope, str | None, str | None]:
    role = Role(u.role)
    street = s.get(Street, u.street_id) if u.street_id else None
    community = s.get(Community, u.community_id) if u.community_id else None
    granted = set(s.scalars(select(UserArea.street_id).where(UserArea.user_id == u.id)))

    def names(ids: set[int]) -> tuple[str, ...]:
        return tuple(sorted(s.scalars(select(Street.name).where(Street.id.in_(sorted(ids)))))) if ids else ()

    sc: Scope
    if role is Role.DISTRICT:
        sc = Scope(role=role, street_ids=None, street_names=None)
    elif role is Role.STREET:
        ids = {u.street_id} if u.street_id else set()
        sc = Scope(role=role, street_ids=frozenset(ids), street_names=names(ids))
    elif role is Role.COMMUNITY:
        cids = {u.community_id} if u.community_id else set()
        home = {community.street_id} if community else set()
        sc = Scope(role=role, street_ids=frozenset(), community_ids=frozenset(cids),
                   steward_id=u.steward_id, steward_field="visit_steward_id" if u.steward_id else None,
                   street_names=names(home), community_names=(community.name,) if community else (),
                   home_street_ids=frozenset(home))
    elif role is Role.SERVICE:
        sc = Scope(role=role, street_ids=frozenset(), steward_id=u.steward_id,
                   steward_field="service_steward_id" if u.steward_id else None)
    elif role is Role.PLANNER:
        ids = granted | ({u.street_id} if u.street_id else set())
        sc = Scope(role=role, street_ids=frozenset(ids), street_names=names(ids))
    else:  # inspector: read-only, granted streets or the whole district
        ids = granted | ({u.street_id} if u.street_id else set())
        sc = Scope(role=role, street_ids=frozenset(ids) if ids else None,
                   street_names=names(ids) if ids else None, read_only=True)
    return sc, street.name if street else None, community.name if community else None


def _user(s: Any, u: AppUser) -> User:
    sc, street, community = _scope(s, u)
    return User(id=u.id, username=u.username, display_name=u.display_name, role=Role(u.role), scope=sc,
                disabled=bool(u.disabled), street=street, community=community, steward_id=u.steward_id)


def load_user(engine: Engine, username: str) -> User | None:
    """The user called ``username`` with their scope, or ``None``."""
    with session_scope(engine) as s:
        n = _lookup_name(username)
        u = s.scalar(select(AppUser).where(AppUser.username == n)) if n else None
        return _user(s, u) if u is not None else None


def load_user_by_id(engine: Engine, user_id: int) -> User | None:
    """The user with id ``user_id`` with their scope, or ``None``."""
    with session_scope(engine) as s:
        u = s.get(AppUser, int(user_id))
        return _user(s, u) if u is not None else None


def list_users(engine: Engine) -> list[User]:
    """Every user, by user name."""
    with session_scope(engine) as s:
        return [_user(s, u) for u in s.scalars(select(AppUser).order_by(AppUser.username))]


# ------------------------------------------------------------------ changes


def _apply_role(s: Any, u: AppUser, role: Role | str, street: str | None, community: str | None,
                steward: str | None, grant: list[str] | None) -> None:
    r = Role(role) if not isinstance(role, Role) else role
    sid = _street_id(s, street)
    cid = _community_id(s, community, sid)
    if cid is not None and sid is None:
        sid = s.get(Community, cid).street_id
    kind = {Role.COMMUNITY: StewardKind.VISIT, Role.SERVICE: StewardKind.SERVICE}.get(r)
    stid = _steward_id(s, steward, kind)
    if r is Role.STREET and sid is None:
        raise ValidationError("a street supervisor needs --street", "街镇督导须指定 --street",
                              field="street", code="street_required")
    if r is Role.COMMUNITY and cid is None:
        raise ValidationError("a community steward needs --community", "社区探访管家须指定 --community",
                              field="community", code="community_required")
    if r is Role.SERVICE and stid is None:
        raise ValidationError("a service steward needs --steward (the 服务管家's code)",
                              "服务管家须指定 --steward（管家编号）", field="steward", code="steward_required")
    if r is Role.PLANNER and sid is None and not grant:
        raise ValidationError("a planner needs --street or --grant streets", "规划人员须指定 --street 或 --grant",
                              field="street", code="street_required")
    u.role = r
    u.street_id = sid if r in (Role.STREET, Role.COMMUNITY, Role.PLANNER, Role.INSPECTOR) else None
    u.community_id = cid if r is Role.COMMUNITY else None
    u.steward_id = stid if r in (Role.COMMUNITY, Role.SERVICE) else None
    if grant is not None or r not in (Role.PLANNER, Role.INSPECTOR):
        ids = {_street_id(s, g) for g in (grant or [])} if r in (Role.PLANNER, Role.INSPECTOR) else set()
        u.areas.clear()
        s.flush()
        u.areas.extend(UserArea(street_id=i) for i in sorted(i for i in ids if i is not None))


def add_user(engine: Engine, name: str, role: Role | str, street: str | None = None,
             community: str | None = None, steward: str | None = None, *, password: str,
             display_name: str | None = None, grant: list[str] | None = None, by: str = "system") -> User:
    """Create a user.

    Parameters
    ----------
    name
        User name (1-60 characters, no spaces).
    role
        ``district``, ``street``, ``community``, ``service``, ``planner`` or ``inspector``.
    street, community
        Street (name or code) and community (name or 12-digit code) of the role.
    steward
        Code of the user's steward (community: their 探访管家 record; service: their 服务管家).
    password
        The password (stored as an Argon2id hash only): at least 10 characters and not easy to guess
        (zxcvbn score 3 or more, see :func:`gridmap.access.passwords.password_problem`).
    grant
        Streets granted to a planner or inspector.
    by
        Who adds the user (audited).

    Raises
    ------
    ValidationError
        Bad name, role, area or password, or the name is taken (``username_taken``).
    """
    n = _check_username(name)
    _check_password(password, n, display_name)
    with session_scope(engine, user=by) as s:
        if s.scalar(select(AppUser.id).where(AppUser.username == n)) is not None:
            raise ValidationError(f"user {n!r} exists", f"用户“{n}”已存在", field="username", value=n,
                                  code="username_taken")
        u = AppUser(username=n, display_name=(display_name or None), password_hash=hash_password(password),
                    role=Role.DISTRICT, disabled=False)
        s.add(u)
        _apply_role(s, u, _role(role), street, community, steward, grant)
        s.flush()
        user = _user(s, u)
    audit(engine, by, "user_admin", "app_user", user.id, "cli", {"op": "add", "user": n, "role": user.role.value})
    return user


def _role(role: Role | str) -> Role:
    try:
        return role if isinstance(role, Role) else Role.from_label(role)  # type: ignore[return-value]
    except ValueError:
        raise ValidationError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}",
                              f"未知角色“{role}”", field="role", value=role, code="unknown_role") from None


def _check_password(password: str, *user_inputs: str | None) -> None:
    """Refuse a new password that is too short, too long or too weak (bilingual, never echoing it)."""
    problem = password_problem(password, [w for w in user_inputs if w])
    if problem is not None:
        short = not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
        raise ValidationError(problem[0], problem[1], field="password", code="password" if short else "weak_password")


def _get(s: Any, name: str) -> AppUser:
    n = _lookup_name(name)
    u = s.scalar(select(AppUser).where(AppUser.username == n)) if n else None
    if u is None:
        raise ValidationError(f"no user {name!r}", f"没有用户“{name}”", field="username", value=name,
                              code="unknown_user")
    return u


def disable_user(engine: Engine, name: str, *, by: str = "system", disabled: bool = True) -> User:
    """Disable (or with ``disabled=False`` re-enable) a user; disabling ends every session of the user at once."""
    with session_scope(engine, user=by) as s:
        u = _get(s, name)
        u.disabled = disabled
        s.flush()
        ended = end_user_sessions(s, u.id, "disabled") if disabled else 0
        if disabled:  # API tokens end with the sessions (gridmap.access.tokens)
            end_user_tokens(s, u.id, "disabled")
        user = _user(s, u)
    audit(engine, by, "user_admin", "app_user", user.id, "cli",
          {"op": "disable" if disabled else "enable", "user": user.username, "sessions_ended": ended})
    return user


def set_role(engine: Engine, name: str, role: Role | str, street: str | None = None,
             community: str | None = None, steward: str | None = None, *, grant: list[str] | None = None,
             by: str = "system") -> User:
    """Change a user's role and area (same arguments as :func:`add_user`); ends every session of the user."""
    with session_scope(engine, user=by) as s:
        u = _get(s, name)
        _apply_role(s, u, _role(role), street, community, steward, grant)
        s.flush()
        ended = end_user_sessions(s, u.id, "role")
        end_user_tokens(s, u.id, "role")
        user = _user(s, u)
    audit(engine, by, "user_admin", "app_user", user.id, "cli",
          {"op": "set_role", "user": user.username, "role": user.role.value, "sessions_ended": ended})
    return user


def set_password(engine: Engine, name: str, password: str, *, by: str = "system") -> None:
    """Replace a user's password (refused when weak, see :func:`add_user`); ends every session of the user."""
    with session_scope(engine, user=by) as s:
        u = _get(s, name)
        _check_password(password, u.username, u.display_name)
        u.password_hash = hash_password(password)
        uid, uname = u.id, u.username
        ended = end_user_sessions(s, uid, "password")
    audit(engine, by, "user_admin", "app_user", uid, "cli",
          {"op": "set_password", "user": uname, "sessions_ended": ended})


def end_sessions(engine: Engine, name: str, *, by: str = "system") -> int:
    """End every session of a user now (e.g. a lost phone); how many were open."""
    with session_scope(engine, user=by) as s:
        u = _get(s, name)
        uid, uname = u.id, u.username
        ended = end_user_sessions(s, uid, "admin")
    audit(engine, by, "user_admin", "app_user", uid, "cli",
          {"op": "end_sessions", "user": uname, "sessions_ended": ended})
    return ended


# ------------------------------------------------------------------ sign-in


def _unknown_name(typed: str) -> str:
    """What the audit log keeps of a user name that is no user: a keyed hash, never the text."""
    digest = hmac.new(session_secret(), typed.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return UNKNOWN_USER + digest[:16]


def _audit_name(s: Session, typed: Any) -> tuple[str, AppUser | None]:
    lookup = _lookup_name(typed)
    u = s.scalar(select(AppUser).where(AppUser.username == lookup)) if lookup else None
    if u is not None:
        return u.username, u
    cleaned = _norm_username(typed if isinstance(typed, str) else "")
    return _unknown_name(cleaned), None


def audit_name(engine: Engine, typed: Any) -> str:
    """The name under which a sign-in attempt with user name ``typed`` is audited and counted.

    A known user's name, else ``未知用户#`` and a keyed hash of what was typed
    (a password typed into the user-name box is never stored).
    """
    with session_scope(engine) as s:
        return _audit_name(s, typed)[0]


def _limit(engine: Engine, name: str, client: str, now: datetime) -> str | None:
    """Which account limit refuses this attempt (``account_address``, ``account``) or ``None``."""
    since = now - WINDOW
    if count_recent(engine, "login_failed", since, username=name, client=client) >= MAX_FAILURES:
        return "account_address"
    if count_recent(engine, "login_failed", since, username=name) >= MAX_FAILURES_PER_USER \
            and count_recent(engine, "login", now - KNOWN_ADDRESS_FOR, username=name, client=client) == 0:
        return "account"
    return None


def authenticate(engine: Engine, username: str, password: str, client: str | None,
                 *, now: datetime | None = None) -> User | None:
    """The user if ``password`` is right, the account enabled and attempts not rate limited.

    Every attempt is audited (``login``, ``login_failed`` or ``login_limited``);
    an unknown user name only as a keyed hash (see :func:`audit_name`).

    Returns
    -------
    User or None
        ``None`` for a wrong name or password or a disabled account (one answer for all).

    Raises
    ------
    RateLimited
        After :data:`MAX_FAILURES` failures for this account from this client,
        or :data:`MAX_FAILURES_PER_USER` from all clients when this client never
        signed in to the account, within :data:`WINDOW` (see the module
        docstring); the password is then not checked.
    """
    now = now or datetime.now(UTC)
    client = (client or "")[:80]
    with session_scope(engine) as s:
        name, _ = _audit_name(s, username)
    limit = _limit(engine, name, client, now)
    if limit is not None:
        audit(engine, name, "login_limited", "app_user", None, client, {"limit": limit})
        minutes = int(WINDOW.total_seconds() // 60)
        raise RateLimited(f"too many failed sign-ins; try again in {minutes} minutes",
                          f"登录失败次数过多，请{minutes}分钟后再试")
    lookup = _lookup_name(username)
    with session_scope(engine) as s:
        u = s.scalar(select(AppUser).where(AppUser.username == lookup)) if lookup else None
        ok = verify_password(u.password_hash if u is not None else None, password)
        if u is None or u.disabled or not ok:
            reason = "unknown_user" if u is None else "disabled" if u.disabled else "wrong_password"
            failed = True
        else:
            failed = False
            if needs_rehash(u.password_hash or ""):
                u.password_hash = hash_password(password)
            user = _user(s, u)
    if failed:
        audit(engine, name, "login_failed", "app_user", None, client, {"reason": reason})
        return None
    audit(engine, user, "login", "app_user", user.id, client)
    return user


# ------------------------------------------------------------------ demo


def create_demo_users(engine: Engine) -> dict[str, str]:
    """One user per role on the demo register, with fresh random passwords (print them once).

    Users ``demo_district``, ``demo_street``, ``demo_community``, ``demo_service``,
    ``demo_planner`` and ``demo_inspector``; the street and community are those
    with the most elders, the stewards are theirs, the planner is granted the
    two streets with the most elders. Existing demo users are updated (new
    passwords), so the demo can be rebuilt.

    Returns
    -------
    dict
        ``{user name: password}``.

    Raises
    ------
    GridmapError
        When the store has no streets (build the layers first).
    """
    with session_scope(engine) as s:
        streets = s.execute(select(Street.name, func.count(Elder.id)).outerjoin(Elder, Elder.street_id == Street.id)
                            .group_by(Street.id, Street.name).order_by(func.count(Elder.id).desc(), Street.name)
                            ).all()
        if not streets:
            raise GridmapError("the store has no streets: build the layers first", "数据库中没有街道，请先构建图层")
        top = streets[0][0]
        comm = s.execute(select(Community.code, func.count(Elder.id)).join(Street, Street.id == Community.street_id)
                         .outerjoin(Elder, Elder.community_id == Community.id).where(Street.name == top)
                         .group_by(Community.id, Community.code).order_by(func.count(Elder.id).desc())).first()
        comm_code = comm[0] if comm else None
        visit = s.execute(select(Steward.code).join(Community, Community.id == Steward.community_id)
                          .where(Community.code == comm_code, Steward.kind == StewardKind.VISIT)
                          .order_by(Steward.code)).scalar() if comm_code else None
        service = s.execute(select(Steward.code, func.count(Elder.id))
                            .join(Elder, Elder.service_steward_id == Steward.id)
                            .where(Steward.kind == StewardKind.SERVICE).group_by(Steward.id, Steward.code)
                            .order_by(func.count(Elder.id).desc())).first()
    plan: list[tuple[str, Role, dict[str, Any], str]] = [
        ("demo_district", Role.DISTRICT, {}, "演示·区民政局"),
        ("demo_street", Role.STREET, {"street": top}, f"演示·{top}"),
        ("demo_planner", Role.PLANNER, {"grant": [n for n, _ in streets[:2]]}, "演示·规划人员"),
        ("demo_inspector", Role.INSPECTOR, {}, "演示·检查人员"),
    ]
    if comm_code:
        plan.insert(2, ("demo_community", Role.COMMUNITY, {"community": comm_code, "steward": visit},
                        "演示·社区探访管家"))
    if service:
        plan.insert(3, ("demo_service", Role.SERVICE, {"steward": service[0]}, "演示·服务管家"))
    out: dict[str, str] = {}
    for name, role, kw, display in plan:
        pw = secrets.token_urlsafe(12)
        while password_problem(pw, [name]) is not None:  # practically never: 96 random bits
            pw = secrets.token_urlsafe(12)
        with session_scope(engine) as s:
            exists = s.scalar(select(AppUser.id).where(AppUser.username == name)) is not None
        if exists:
            set_role(engine, name, role, grant=kw.pop("grant", None), **kw)
            set_password(engine, name, pw)
            disable_user(engine, name, disabled=False)
        else:
            add_user(engine, name, role, password=pw, display_name=display, **kw)
        out[name] = pw
    return out


