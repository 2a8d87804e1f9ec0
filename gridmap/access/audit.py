"""The audit log: writing rows, unmasking personal fields, and the report of unusual access.

The ``audit_log`` table is append-only (triggers on both backends refuse
UPDATE and DELETE, see :mod:`gridmap.store.db`). Rows never hold personal
values: ``detail`` is passed through the masking policy, and an unmasking
records which fields were shown and why, not the values.

Actions written by gridmap: ``login``, ``login_failed``, ``login_limited``
(``detail.limit``: ``address``, ``account_address`` or ``account``),
``logout``, ``view`` (one record, or a list with ``detail.rows``),
``denied`` (outside one's area or without the permission), ``unmask``,
``update``, ``export``, ``user_admin``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from gridmap._errors import GridmapError, ValidationError
from gridmap.access.policy import PERSONAL_FIELDS, mask_value
from gridmap.access.scope import can_see_elder, can_unmask
from gridmap.store.db import session_scope
from gridmap.store.models import AuditLog, Elder, FirstContact

__all__ = [
    "UNMASKABLE",
    "PermissionDenied",
    "audit",
    "count_recent",
    "read_elder",
    "unmask",
    "unusual_access_report",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Fields :func:`unmask` can return in clear.
UNMASKABLE = ("name", "id_number", "phone", "address", "hukou_address",
              "first_contact_name", "first_contact_phone")


class PermissionDenied(GridmapError):
    """The user may not do this (or the record is outside their area); the attempt is audited."""


def _clean(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    return _CONTROL.sub("", str(value))[:limit]


def _clean_detail(value: Any, key: str | None = None, depth: int = 0) -> Any:
    if depth > 4:
        return None
    if isinstance(value, dict):
        return {(_clean(k, 60) or ""): _clean_detail(v, str(k), depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean_detail(v, key, depth + 1) for v in list(value)[:100]]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = _clean(value, 500)
    return mask_value(key, text) if key in PERSONAL_FIELDS else text


def _username(user: Any) -> str:
    name = user if isinstance(user, str) else getattr(user, "username", None) or str(user)
    return _clean(name, 60) or "?"


def audit(engine: Engine, user: Any, action: str, entity: str | None = None,
          entity_id: Any = None, client: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append one row to the audit log (its own transaction).

    Parameters
    ----------
    user
        A :class:`~gridmap.access.users.User` or a user name (as typed, for failed sign-ins).
    action
        What happened (see the module docstring).
    entity, entity_id
        The record concerned (``"elder"``, 123).
    client
        Where from: the remote address, or ``"cli"``.
    detail
        Extra facts; personal fields in it are masked, control characters dropped.
    """
    with session_scope(engine, user=_username(user)) as s:
        s.add(AuditLog(username=_username(user), action=_clean(action, 40) or "?",
                       entity=_clean(entity, 40), entity_id=_clean(entity_id, 40),
                       client=_clean(client, 80), detail=_clean_detail(detail or {})))


def count_recent(engine: Engine, action: str, since: datetime, *, username: str | None = None,
                 client: str | None = None) -> int:
    """Audit rows of ``action`` since ``since`` (for one user name and/or client)."""
    q = select(func.count()).select_from(AuditLog).where(AuditLog.action == action, AuditLog.at >= since)
    if username is not None:
        q = q.where(AuditLog.username == _clean(username, 60))
    if client is not None:
        q = q.where(AuditLog.client == _clean(client, 80))
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


# ------------------------------------------------------------------ records


def _elder_row(engine: Engine, elder_id: int) -> tuple[Elder | None, FirstContact | None]:
    with session_scope(engine) as s:
        e = s.get(Elder, int(elder_id))
        fc = None
        if e is not None:
            fc = s.scalars(select(FirstContact).where(FirstContact.elder_id == e.id)).first()
            s.expunge_all()
        return e, fc


def _not_found() -> PermissionDenied:
    # the same answer whether the record exists or is outside the area (no existence oracle)
    return PermissionDenied("no such elder in your area", "您的管辖范围内没有该老人")


def read_elder(engine: Engine, user: Any, elder_id: int, client: str | None = None) -> dict[str, Any] | None:
    """One elder's basic record, masked, if within the user's scope; audited either way.

    Returns ``None`` (and writes a ``denied`` row) when the elder does not exist
    or is outside the user's area.
    """
    try:
        eid = int(elder_id)
    except (TypeError, ValueError):
        eid = -1
    e, fc = _elder_row(engine, eid) if eid > 0 else (None, None)
    if e is None or not can_see_elder(user.scope, e):
        audit(engine, user, "denied", "elder", elder_id, client, {"reason": "outside_area"})
        return None
    audit(engine, user, "view", "elder", eid, client)
    rec = {"elder_id": e.id, "name": e.name, "id_number": e.id_number, "phone": e.phone,
           "address": e.address, "hukou_address": e.hukou_address, "street_id": e.street_id,
           "community_id": e.community_id, "grid_id": e.grid_id, "sex": e.sex,
           "birth_date": e.birth_date, "status": str(e.status),
           "first_contact_name": fc.name if fc else None, "first_contact_phone": fc.phone if fc else None}
    return {k: mask_value(k, v) for k, v in rec.items()}


def unmask(engine: Engine, user: Any, elder_id: int, fields: Sequence[str], reason: str | None,
           client: str | None = None) -> dict[str, Any]:
    """Personal fields of one elder in clear: needs the permission, the elder in scope and a reason.

    The ``unmask`` audit row names the fields and the reason, never the values.

    Returns
    -------
    dict
        ``{field: value}`` for the requested ``fields``.

    Raises
    ------
    PermissionDenied
        Without the permission, or when the elder is outside the user's area
        (or does not exist); a ``denied`` row is written.
    ValidationError
        ``reason_required`` without a reason; ``unknown_field`` for a field
        that is not personal.
    """
    bad = [f for f in fields if f not in UNMASKABLE]
    if bad or not fields:
        raise ValidationError(f"cannot unmask {bad or 'nothing'}; fields: {', '.join(UNMASKABLE)}",
                              f"无法显示字段 {bad or '（未指定）'}", field="fields", value=bad,
                              code="unknown_field")
    if not can_unmask(user):
        audit(engine, user, "denied", "elder", elder_id, client,
              {"reason": "no_unmask_permission", "fields": list(fields)})
        raise PermissionDenied("your role may not see personal data in clear",
                               "您的角色无权查看未脱敏的个人信息")
    if not (reason and reason.strip()):
        raise ValidationError("unmasking needs a reason", "查看未脱敏信息必须填写原因",
                              field="reason", code="reason_required")
    e, fc = _elder_row(engine, elder_id)
    if e is None or not can_see_elder(user.scope, e):
        audit(engine, user, "denied", "elder", elder_id, client,
              {"reason": "outside_area", "fields": list(fields)})
        raise _not_found()
    values = {"name": e.name, "id_number": e.id_number, "phone": e.phone, "address": e.address,
              "hukou_address": e.hukou_address, "first_contact_name": fc.name if fc else None,
              "first_contact_phone": fc.phone if fc else None}
    audit(engine, user, "unmask", "elder", e.id, client,
          {"fields": list(fields), "reason": reason.strip()[:200]})
    return {f: values[f] for f in fields}


# ------------------------------------------------------------------ report


@dataclass(frozen=True)
class _Thresholds:
    views: int
    window: timedelta
    failed: int
    unmasks: int
    spray: int


def _rows(engine: Engine, since: datetime, until: datetime | None) -> pd.DataFrame:
    q = select(AuditLog.id, AuditLog.at, AuditLog.username, AuditLog.action, AuditLog.entity,
               AuditLog.entity_id, AuditLog.client, AuditLog.detail).where(AuditLog.at >= since)
    if until is not None:
        q = q.where(AuditLog.at < until)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(AuditLog.at, AuditLog.id)).mappings().all()
    df = pd.DataFrame(rows, columns=["id", "at", "username", "action", "entity", "entity_id", "client", "detail"])
    if not df.empty:
        df["at"] = pd.to_datetime(df["at"], utc=True)
    return df


def _records(row: Any) -> int:
    """How many records one ``view`` row stands for (lists carry ``detail.rows``)."""
    d = row["detail"] if isinstance(row["detail"], dict) else {}
    n = d.get("rows")
    return int(n) if isinstance(n, (int, float)) and n > 0 else 1


def _bulk_views(views: pd.DataFrame, th: _Thresholds) -> list[dict[str, Any]]:
    out = []
    for user, g in views.groupby("username", sort=True):
        g = g.sort_values("at")
        times = g["at"].tolist()
        counts = g["records"].tolist()
        best, best_i, best_j, total, i = 0, 0, 0, 0, 0
        for j in range(len(times)):
            total += counts[j]
            while times[j] - times[i] > th.window:
                total -= counts[i]
                i += 1
            if total > best:
                best, best_i, best_j = total, i, j
        if best >= th.views:
            out.append({"kind": "bulk_view", "username": user,
                        "client": ", ".join(sorted({str(c) for c in g["client"].iloc[best_i:best_j + 1]})),
                        "count": int(best), "first_at": times[best_i], "last_at": times[best_j],
                        "detail": f"{best} records viewed within {int(th.window.total_seconds() // 60)} min / "
                                  f"{int(th.window.total_seconds() // 60)}分钟内查看{best}条记录"})
    return out


def _outside_area(engine: Engine, df: pd.DataFrame) -> list[dict[str, Any]]:
    from gridmap.access.users import load_user

    out = []
    denied = df[df["action"] == "denied"]
    for user, g in denied.groupby("username", sort=True):
        out.append({"kind": "denied", "username": user, "client": ", ".join(sorted({str(c) for c in g["client"]})),
                    "count": len(g), "first_at": g["at"].min(), "last_at": g["at"].max(),
                    "detail": f"{len(g)} denied requests (outside area or without permission) / "
                              f"{len(g)}次越权或无权限请求被拒绝"})
    # views and unmaskings of elders outside the user's *current* area (granted then, or a leak)
    seen = df[df["action"].isin(["view", "unmask", "update"]) & (df["entity"] == "elder")]
    for user, g in seen.groupby("username", sort=True):
        u = load_user(engine, str(user))
        ids = sorted({int(x) for x in g["entity_id"] if str(x).isdigit()})
        if u is None or u.scope.is_all or not ids:
            continue
        with engine.connect() as conn:
            rows = conn.execute(select(Elder.id, Elder.street_id, Elder.community_id, Elder.visit_steward_id,
                                       Elder.service_steward_id).where(Elder.id.in_(ids))).mappings().all()
        outside = {r["id"] for r in rows if not can_see_elder(u.scope, r)}
        if outside:
            hit = g[g["entity_id"].isin([str(i) for i in outside])]
            out.append({"kind": "outside_area", "username": user,
                        "client": ", ".join(sorted({str(c) for c in hit["client"]})), "count": len(hit),
                        "first_at": hit["at"].min(), "last_at": hit["at"].max(),
                        "detail": f"{len(outside)} elders outside the user's area were seen / "
                                  f"查看了{len(outside)}位管辖范围外的老人"})
    return out


def _sign_in_findings(df: pd.DataFrame, th: _Thresholds) -> list[dict[str, Any]]:
    """Failed sign-ins per account and address, password spraying and the limits that refused sign-ins."""
    out: list[dict[str, Any]] = []
    fails = df[df["action"].isin(["login_failed", "login_limited"])]
    for (user, client), g in fails.groupby(["username", "client"], sort=True, dropna=False):
        if len(g) >= th.failed:
            out.append({"kind": "failed_logins", "username": user, "client": client, "count": len(g),
                        "first_at": g["at"].min(), "last_at": g["at"].max(),
                        "detail": f"{len(g)} failed sign-ins / {len(g)}次登录失败"})
    failed = df[df["action"] == "login_failed"]
    # one address trying many user names (one password across accounts)
    for client, g in failed.groupby("client", sort=True, dropna=False):
        names = g["username"].nunique()
        if names >= th.spray:
            out.append({"kind": "password_spray", "username": f"{names} user names / {names}个用户名",
                        "client": client, "count": len(g), "first_at": g["at"].min(), "last_at": g["at"].max(),
                        "detail": f"failed sign-ins for {names} different user names from one address / "
                                  f"同一来源尝试登录{names}个不同用户名"})
    # failures spread across many accounts from several addresses within one window
    if not failed.empty:
        f = failed.sort_values("at")
        times, users, clients = f["at"].tolist(), f["username"].tolist(), [str(c) for c in f["client"]]
        ucount: dict[str, int] = {}
        ccount: dict[str, int] = {}
        best: tuple[int, int, int, int] | None = None  # accounts, addresses, i, j
        i = 0
        for j in range(len(times)):
            ucount[users[j]] = ucount.get(users[j], 0) + 1
            ccount[clients[j]] = ccount.get(clients[j], 0) + 1
            while times[j] - times[i] > th.window:
                for d, k in ((ucount, users[i]), (ccount, clients[i])):
                    d[k] -= 1
                    if not d[k]:
                        del d[k]
                i += 1
            if len(ucount) >= th.spray and len(ccount) >= 2 \
                    and (best is None or (len(ucount), len(ccount)) > best[:2]):
                best = (len(ucount), len(ccount), i, j)
        if best is not None:
            n_users, n_clients, i, j = best
            minutes = int(th.window.total_seconds() // 60)
            out.append({"kind": "distributed_spray", "username": f"{n_users} user names / {n_users}个用户名",
                        "client": f"{n_clients} addresses / {n_clients}个来源", "count": j - i + 1,
                        "first_at": times[i], "last_at": times[j],
                        "detail": f"{j - i + 1} failed sign-ins for {n_users} user names from {n_clients} addresses "
                                  f"within {minutes} min / {minutes}分钟内从{n_clients}个来源尝试登录"
                                  f"{n_users}个用户名，失败{j - i + 1}次"})
    limited = df[df["action"] == "login_limited"]
    if not limited.empty:
        limited = limited.assign(limit=[d.get("limit", "account_address") if isinstance(d, dict)
                                        else "account_address" for d in limited["detail"]])
        labels = {"address": ("address limit", "来源地址限流"), "account_address": ("account+address lock-out",
                  "账号在该来源被锁定"), "account": ("account lock-out for new addresses", "账号对新来源锁定")}
        for (user, client, limit), g in limited.groupby(["username", "client", "limit"], sort=True, dropna=False):
            en, zh = labels.get(str(limit), (str(limit), str(limit)))
            out.append({"kind": "login_limited", "username": user, "client": client, "count": len(g),
                        "first_at": g["at"].min(), "last_at": g["at"].max(),
                        "detail": f"{len(g)} sign-ins refused by the {en} / {zh}拒绝登录{len(g)}次"})
    return out


def unusual_access_report(engine: Engine, since: datetime, *, until: datetime | None = None,
                          view_threshold: int = 200, window_minutes: int = 10,
                          failed_threshold: int = 5, unmask_threshold: int = 20,
                          spray_threshold: int = 5) -> pd.DataFrame:
    """Unusual access found in the audit log since ``since``.

    Kinds of finding (one row per user and kind):

    ``bulk_view``
        ``view_threshold`` or more records viewed by one user within
        ``window_minutes`` (list views count their ``detail.rows``).
    ``denied``
        Requests refused: outside the user's area or without the permission.
    ``outside_area``
        Records viewed, unmasked or changed that are outside the user's
        *current* area (e.g. seen before a role change, or a gap in a view).
    ``failed_logins``
        ``failed_threshold`` or more failed or rate-limited sign-ins for one
        user name from one client.
    ``password_spray``
        Failed sign-ins for ``spray_threshold`` or more different user names
        from one client (one password tried across accounts).
    ``distributed_spray``
        Failed sign-ins for ``spray_threshold`` or more different user names
        from two or more clients within ``window_minutes`` (the most found in
        one window is reported).
    ``login_limited``
        Sign-ins refused by a limit (per address, per account and address, or
        the account lock-out for new addresses), per user name, client and limit.
    ``unmask``
        ``unmask_threshold`` or more unmaskings by one user.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind, username, client, count, first_at, last_at, detail``,
        most serious first.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    th = _Thresholds(view_threshold, timedelta(minutes=window_minutes), failed_threshold, unmask_threshold,
                     spray_threshold)
    cols = ["kind", "username", "client", "count", "first_at", "last_at", "detail"]
    df = _rows(engine, since, until)
    if df.empty:
        return pd.DataFrame(columns=cols)
    found: list[dict[str, Any]] = []
    views = df[df["action"] == "view"].copy()
    if not views.empty:
        views["records"] = views.apply(_records, axis=1)
        found += _bulk_views(views, th)
    found += _outside_area(engine, df)
    found += _sign_in_findings(df, th)
    unm = df[df["action"] == "unmask"]
    for user, g in unm.groupby("username", sort=True):
        if len(g) >= th.unmasks:
            found.append({"kind": "unmask", "username": user, "client": ", ".join(sorted({str(c) for c in g["client"]})),
                          "count": len(g), "first_at": g["at"].min(), "last_at": g["at"].max(),
                          "detail": f"{len(g)} unmaskings / {len(g)}次查看未脱敏信息"})
    order = {"outside_area": 0, "denied": 1, "bulk_view": 2, "distributed_spray": 3, "password_spray": 4,
             "login_limited": 5, "failed_logins": 6, "unmask": 7}
    out = pd.DataFrame(found, columns=cols)
    if out.empty:
        return out
    return out.sort_values(["kind", "count"], key=lambda s: s.map(order) if s.name == "kind" else -s,
                           kind="stable").reset_index(drop=True)

