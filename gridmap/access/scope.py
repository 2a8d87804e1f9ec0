"""Roles scoped to areas: what each user may see and change, as SQL clauses and DataFrame filters.

The scope of a role (decided here, see :func:`scope_of`):

================  =========================================================
district          the whole district (区民政局)
street            the elders of the user's street (街镇督导)
community         the elders of the user's community, plus the elders whose
                  探访管家 is the user's steward (moved away, still theirs)
service           the elders whose 服务管家 is the user's steward, nothing else
planner           the streets granted (``user_area`` rows, plus ``street_id``
                  if set); may edit grids and plans there, not the register
inspector         read-only; the granted streets if any, else the whole
                  district
================  =========================================================

An elder is visible when any of: the scope covers every street; the elder's
street is one of ``street_ids``; the elder's community is one of
``community_ids``; the elder's ``steward_field`` is ``steward_id``.
Visits, hazards, referrals, care services, devices and first contacts
follow their elder (a hazard with no elder is seen by whole-district scopes
only). The clauses are SQLAlchemy expressions usable in any ``select``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Engine, false, or_, select, true

from gridmap.domain.enums import Role
from gridmap.store.models import Community, Elder, Grid, ServiceStation, Steward, Street

__all__ = [
    "EDITABLE",
    "Scope",
    "can_edit",
    "can_see_elder",
    "can_unmask",
    "community_clause",
    "elder_clause",
    "filter_frame",
    "grid_clause",
    "related_clause",
    "steward_clause",
    "street_clause",
    "visible_elder_ids",
]

#: What each role may change: entity kind → roles. Elder-bound kinds also need the elder in scope;
#: area-bound kinds (grid, plan, steward) need the street in scope.
EDITABLE: dict[str, frozenset[Role]] = {
    "elder": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY}),
    "visit": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE}),
    # issue 17 (A): service tasks; a 服务管家 only their own (checked against the task's steward)
    "service_task": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE}),
    "hazard": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE}),
    "referral": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE}),
    "care_service": frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE}),
    "grid": frozenset({Role.DISTRICT, Role.STREET, Role.PLANNER}),
    "plan": frozenset({Role.DISTRICT, Role.STREET, Role.PLANNER}),
    "steward": frozenset({Role.DISTRICT, Role.STREET}),
}
_AREA_KINDS = {"grid", "plan", "steward"}
#: Roles that may ask to see personal fields in clear (with a reason, audited).
UNMASK_ROLES = frozenset({Role.DISTRICT, Role.STREET, Role.COMMUNITY, Role.SERVICE})


@dataclass(frozen=True)
class Scope:
    """The part of the register a user may see (hashable: usable as a cache key).

    Parameters
    ----------
    role
        The user's role.
    street_ids
        Streets whose whole register is visible; ``None`` = every street.
    community_ids
        Communities whose whole register is visible.
    steward_id, steward_field
        The user's steward and which elder column names it
        (``visit_steward_id`` or ``service_steward_id``): "own elders".
    street_names, community_names
        Names of the streets and communities above (for views and frames).
    read_only
        Nothing may be changed (inspector).
    """

    role: Role
    street_ids: frozenset[int] | None = frozenset()
    community_ids: frozenset[int] = frozenset()
    steward_id: int | None = None
    steward_field: str | None = None
    street_names: tuple[str, ...] | None = ()
    community_names: tuple[str, ...] = ()
    read_only: bool = False
    #: Streets of ``community_ids`` (for area-level views of a community user).
    home_street_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_all(self) -> bool:
        """The scope covers the whole district."""
        return self.street_ids is None

    @property
    def is_empty(self) -> bool:
        """The scope covers nothing (e.g. a service user with no steward)."""
        return (self.street_ids is not None and not self.street_ids and not self.community_ids
                and self.steward_id is None)


# ------------------------------------------------------------------ SQL


def elder_clause(scope: Scope, elder: Any = Elder) -> ColumnElement[bool]:
    """A ``where`` clause on the elder table (or an alias of it) selecting the visible elders."""
    if scope.is_all:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.street_ids:
        parts.append(elder.street_id.in_(sorted(scope.street_ids)))
    if scope.community_ids:
        parts.append(elder.community_id.in_(sorted(scope.community_ids)))
    if scope.steward_id is not None and scope.steward_field:
        parts.append(getattr(elder, scope.steward_field) == scope.steward_id)
    return or_(*parts) if parts else false()


def related_clause(scope: Scope, elder_id_column: Any) -> ColumnElement[bool]:
    """A clause on a table linked to an elder (visit, hazard, referral, care service, device…).

    ``elder_id_column`` is that table's ``elder_id`` column, e.g. ``Visit.elder_id``.
    Rows with no elder (some hazards) are visible to whole-district scopes only.
    """
    if scope.is_all:
        return true()
    return elder_id_column.in_(select(Elder.id).where(elder_clause(scope)))


def _own_street_ids(scope: Scope) -> frozenset[int]:
    return (scope.street_ids or frozenset())


def street_clause(scope: Scope) -> ColumnElement[bool]:
    """Streets the user may see as areas (their own, granted, or their community's)."""
    if scope.is_all:
        return true()
    ids = _own_street_ids(scope) | scope.home_street_ids
    return Street.id.in_(sorted(ids)) if ids else false()


def community_clause(scope: Scope) -> ColumnElement[bool]:
    """Communities the user may see as areas."""
    if scope.is_all:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.street_ids:
        parts.append(Community.street_id.in_(sorted(scope.street_ids)))
    if scope.community_ids:
        parts.append(Community.id.in_(sorted(scope.community_ids)))
    return or_(*parts) if parts else false()


def grid_clause(scope: Scope) -> ColumnElement[bool]:
    """Grids the user may see: those of visible communities, or holding the user's own elders."""
    if scope.is_all:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.street_ids or scope.community_ids:
        parts.append(Grid.community_id.in_(select(Community.id).where(community_clause(scope))))
    if scope.steward_id is not None and scope.steward_field:
        parts.append(Grid.id.in_(select(Elder.grid_id).where(
            getattr(Elder, scope.steward_field) == scope.steward_id)))
    return or_(*parts) if parts else false()


def steward_clause(scope: Scope) -> ColumnElement[bool]:
    """Stewards the user may see: of visible communities or stations of visible streets; oneself."""
    if scope.is_all:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.street_ids or scope.community_ids:
        parts.append(Steward.community_id.in_(select(Community.id).where(community_clause(scope))))
    if scope.street_ids:
        parts.append(Steward.station_id.in_(select(ServiceStation.id).where(
            ServiceStation.street_id.in_(sorted(scope.street_ids)))))
    if scope.steward_id is not None:
        parts.append(Steward.id == scope.steward_id)
    return or_(*parts) if parts else false()


def visible_elder_ids(engine: Engine, scope: Scope) -> frozenset[int] | None:
    """Ids of the elders the scope sees (``None`` = all; cache it per scope and data version)."""
    if scope.is_all:
        return None
    with engine.connect() as conn:
        return frozenset(conn.execute(select(Elder.id).where(elder_clause(scope))).scalars())


# ------------------------------------------------------------------ pandas


def filter_frame(df: pd.DataFrame, scope: Scope, *, visible_ids: frozenset[int] | None = None,
                 engine: Engine | None = None, id_col: str = "elder_id") -> pd.DataFrame:
    """Rows of ``df`` (one per elder or linked to one by ``id_col``) within ``scope``.

    Pass ``visible_ids`` (from :func:`visible_elder_ids`, cached) or ``engine``.
    Rows whose ``id_col`` is missing are kept for whole-district scopes only.

    Raises
    ------
    ValueError
        When neither ``visible_ids`` nor ``engine`` is given for a limited scope.
    """
    if scope.is_all:
        return df
    if visible_ids is None:
        if engine is None:
            raise ValueError("filter_frame needs visible_ids or engine for a limited scope")
        visible_ids = visible_elder_ids(engine, scope) or frozenset()
    return df[df[id_col].isin(visible_ids)]


# ------------------------------------------------------------------ checks


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def can_see_elder(scope: Scope, elder: Any) -> bool:
    """Whether ``elder`` (an :class:`Elder`, or a mapping with ``street_id``, ``community_id``,
    ``visit_steward_id``, ``service_steward_id``) is within ``scope``."""
    if elder is None:
        return False
    if scope.is_all:
        return True
    if scope.street_ids and _get(elder, "street_id") in scope.street_ids:
        return True
    if scope.community_ids and _get(elder, "community_id") in scope.community_ids:
        return True
    if scope.steward_id is not None and scope.steward_field:
        return _get(elder, scope.steward_field) == scope.steward_id
    return False


def can_edit(scope: Scope, entity: str, *, elder: Any = None, street_id: int | None = None) -> bool:
    """Whether the user may change a record of kind ``entity`` (see :data:`EDITABLE`).

    Elder-bound kinds (elder, visit, hazard, referral, care_service) need ``elder``
    within the scope; area-bound kinds (grid, plan, steward) need ``street_id`` to
    be one of the scope's streets (any street for whole-district scopes).
    """
    if scope.read_only or scope.role not in EDITABLE.get(entity, frozenset()):
        return False
    if entity in _AREA_KINDS:
        if scope.is_all:
            return True
        return street_id is not None and street_id in (scope.street_ids or frozenset())
    return can_see_elder(scope, elder)


def can_unmask(user: Any) -> bool:
    """Whether ``user`` may ask to see personal fields in clear (always with a reason, audited)."""
    if user is None or getattr(user, "disabled", False):
        return False
    scope = getattr(user, "scope", None)
    return Role(user.role) in UNMASK_ROLES and not (scope is not None and scope.read_only)
