"""The read API's own queries: street names, elders' names and addresses, steward and grid labels.

The only SQL of :mod:`gridmap.api`; the figures come from the rules' store
(:func:`gridmap.rules.store.indicator_inputs`, as in ``gridmap report``) and
the change feed from :mod:`gridmap.store.changes`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select

from gridmap.store.models import Elder, Grid, Steward, Street

__all__ = ["elder_names", "grid_codes", "steward_labels", "street_names"]


def street_names(engine: Engine) -> list[str]:
    """Every street's name, sorted."""
    with engine.connect() as conn:
        return sorted(conn.execute(select(Street.name)).scalars())


def elder_names(engine: Engine, ids: Iterable[int]) -> dict[int, tuple[str | None, str | None]]:
    """Elder id → (name, address) as stored (the caller masks them)."""
    ids = sorted({int(i) for i in ids})
    out: dict[int, tuple[str | None, str | None]] = {}
    with engine.connect() as conn:
        for k in range(0, len(ids), 5000):  # bounded IN lists
            for i, n, a in conn.execute(select(Elder.id, Elder.name, Elder.address)
                                        .where(Elder.id.in_(ids[k:k + 5000]))):
                out[int(i)] = (n, a)
    return out


def steward_labels(engine: Engine) -> dict[int, str]:
    """Steward id → ``name（code）`` (as the dashboard shows stewards)."""
    with engine.connect() as conn:
        return {int(i): f"{n}（{c}）" for i, n, c in conn.execute(select(Steward.id, Steward.name, Steward.code))}


def grid_codes(engine: Engine) -> dict[int, str]:
    """Grid id → grid code."""
    with engine.connect() as conn:
        return {int(i): str(c) for i, c in conn.execute(select(Grid.id, Grid.code))}
