"""Need to know (issue 18): the visit steward of an elder sees that elder's address and phones in clear.

Everything personal is masked by default (:mod:`gridmap.access.policy`). A steward
cannot find the door, or ring the bell, with ``…知春里社区****`` and ``138****5678``:
the steward *assigned* to an elder (the elder's 探访管家, ``elder.visit_steward_id``)
gets, on their own route list, workbench and printed sheet, that elder's full
address, phone and first contact's phone. Decided here on the server from the
signed-in user and the store, never from the page:

* only a user with a steward of their own whose scope names the 探访管家 column
  (a community steward, :func:`gridmap.access.users._scope`) qualifies, and only
  for the elders whose ``visit_steward_id`` is that steward — not for the rest of
  their community, not for another steward's route they may look at;
* every other role (street supervisor, district, planner, inspector, service
  steward) gets nothing here: their masking is unchanged;
* each time the fields are shown, one ``view`` row per elder is written to the
  audit log (``entity`` ``elder``, ``detail``: the fields shown, ``basis``
  ``visit_steward`` and the view), in one transaction; never the values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select

from gridmap.access.audit import _clean, _clean_detail, _username
from gridmap.domain.enums import Role
from gridmap.store.db import session_scope
from gridmap.store.models import AuditLog, Elder, FirstContact

__all__ = ["NEED_TO_KNOW_FIELDS", "need_to_know", "own_visit_steward"]

#: The fields the assigned visit steward sees in clear.
NEED_TO_KNOW_FIELDS = ("address", "phone", "first_contact_phone")


def own_visit_steward(user: Any) -> int | None:
    """The steward id whose elders ``user`` may see in clear (their own 探访管家 record), else ``None``."""
    if user is None or getattr(user, "disabled", False):
        return None
    scope = getattr(user, "scope", None)
    if scope is None or scope.read_only or scope.steward_field != "visit_steward_id":
        return None
    if Role(user.role) is not Role.COMMUNITY or scope.steward_id is None:
        return None
    return int(scope.steward_id)


def need_to_know(engine: Engine, user: Any, elder_ids: Iterable[int], view: str,
                 client: str | None = None) -> dict[int, dict[str, str | None]]:
    """The need-to-know fields of those of ``elder_ids`` whose visit steward ``user`` is; audited.

    Parameters
    ----------
    user
        The signed-in :class:`~gridmap.access.users.User`.
    elder_ids
        The elders about to be shown (a route, the day's contacts).
    view
        Where they are shown (``route_list``, ``workbench``, ``print``…), written to the audit row.
    client
        The remote address, or ``"cli"``.

    Returns
    -------
    dict
        ``{elder_id: {"address", "phone", "first_contact_phone"}}`` for the user's own elders only
        (empty for every other user and elder).
    """
    sid = own_visit_steward(user)
    ids = sorted({int(i) for i in elder_ids if i is not None})
    if sid is None or not ids:
        return {}
    q = (select(Elder.id, Elder.address, Elder.phone, FirstContact.phone.label("fc"), FirstContact.valid)
         .outerjoin(FirstContact, FirstContact.elder_id == Elder.id)
         .where(Elder.id.in_(ids), Elder.visit_steward_id == sid))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    out = {int(r.id): {"address": r.address, "phone": r.phone,
                       "first_contact_phone": r.fc if r.valid is not False else None} for r in rows}
    if out:
        name = _username(user)
        with session_scope(engine, user=name) as s:
            for eid in sorted(out):
                s.add(AuditLog(username=name, action="view", entity="elder", entity_id=str(eid),
                               client=_clean(client, 80),
                               detail=_clean_detail({"fields": list(NEED_TO_KNOW_FIELDS), "basis": "visit_steward",
                                                     "view": view})))
    return out
