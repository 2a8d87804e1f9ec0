"""Ending sign-in credentials: stamp ``revoked_at``/``revoked_reason`` on the rows still open.

Sessions (``user_session``) and API tokens (``api_token``) end the same way; both
call :func:`revoke_open`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, update

__all__ = ["revoke_open"]


def revoke_open(target: Any, table: Table, where: ColumnElement[bool], reason: str, *,
                now: datetime | None = None) -> int:
    """Revoke the rows of ``table`` matching ``where`` that are not revoked yet; how many there were.

    Parameters
    ----------
    target
        An :class:`~sqlalchemy.Engine` (own transaction) or an ORM session or
        connection (the caller's transaction: the rows end exactly when the
        change that ends them commits).
    reason
        Why (``logout``, ``password``, ``role``, ``disabled``, ``revoked``…; cut to 40 characters).
    """
    stmt = (update(table).where(where, table.c.revoked_at.is_(None))
            .values(revoked_at=now or datetime.now(UTC), revoked_reason=reason[:40]))
    if isinstance(target, Engine):
        with target.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)
    return int(target.execute(stmt).rowcount or 0)
