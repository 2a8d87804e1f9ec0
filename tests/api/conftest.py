"""Fixtures of the read API tests: the access tests' two-street register with more elders and visits around
2025-W11, users of every role, and the dashboard app (sign-in required) with the API, on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import Engine, select

from gridmap.domain.enums import DeviceKind, DeviceStatus, HazardStatus, VisitMode, VisitorRole
from gridmap.domain.idcard import make_id_number
from gridmap.store.db import session_scope
from gridmap.store.models import Device, Elder, Hazard, Visit
from tests.access.conftest import PASSWORD, World, add_users, seed_world

#: The week the tests ask about (Monday 2025-03-10 to Sunday 2025-03-16; its month is March).
WEEK = "2025-W11"
SECRET = "api-test-secret-0123456789abcdef"


@dataclass
class ApiWorld:
    """The seeded register (``world``) and the elders added here by short name."""

    world: World
    elders: dict[str, int]


def seed_more(engine: Engine, w: World) -> dict[str, int]:
    """Around the access world (e1-e4, one visit each on 2025-03-03 = W10):

    * e1 (甲): visited again in W11 (in home), its hazard closed on 2025-03-12, a smoke alarm;
    * e4 (乙): a phone call in W11;
    * e5 (甲/A1, not willing: monthly contact): last visit 2025-02-10 → overdue at W11's end;
    * e6 (乙/B1): never visited → overdue; e7 (甲/A2): visited in W11.
    e2 (甲) and e3 (乙) are not visited in W11 (overdue 6 days at its end).
    """
    with session_scope(engine) as s:
        def elder(key: str, i: int, street: str, comm: str, willing: bool = True) -> Elder:
            e = Elder(name=f"王{'五六七'[i]}英", id_number=make_id_number("110108", date(1938, 4, 1 + i), 30 + i, "女"),
                      phone=f"1391234560{i}", address=f"乙二路{i + 7}号楼1单元10{i}", street_id=w.streets[street],
                      community_id=w.communities[comm], grid_id=w.grids[comm], willing_to_be_visited=willing,
                      visit_steward_id=w.stewards["V-A1"] if street == "A" else w.stewards["V-B1"])
            s.add(e)
            s.flush()
            return e

        e5 = elder("e5", 0, "A", "A1", willing=False)
        e6 = elder("e6", 1, "B", "B1")
        e7 = elder("e7", 2, "A", "A2")
        visits = [(w.elders["e1"], date(2025, 3, 12), VisitMode.IN_HOME),
                  (w.elders["e4"], date(2025, 3, 11), VisitMode.PHONE),
                  (e5.id, date(2025, 2, 10), VisitMode.IN_HOME),
                  (e7.id, date(2025, 3, 14), VisitMode.IN_HOME)]
        for eid, on, mode in visits:
            s.add(Visit(elder_id=eid, visited_on=on, mode=mode, visitor_role=VisitorRole.VISIT_STEWARD))
        h = s.scalars(select(Hazard).where(Hazard.elder_id == w.elders["e1"])).one()
        h.status, h.closed_on = HazardStatus.CLOSED, date(2025, 3, 12)
        s.add(Device(elder_id=w.elders["e1"], kind=DeviceKind.SMOKE_ALARM, status=DeviceStatus.INSTALLED))
        s.flush()
        return {"e5": e5.id, "e6": e6.id, "e7": e7.id}


@pytest.fixture
def api_world(engine: Engine) -> ApiWorld:
    """The register above on each backend, with the users of every role (password :data:`PASSWORD`)."""
    w = seed_world(engine)
    add_users(engine)
    return ApiWorld(world=w, elders={**w.elders, **seed_more(engine, w)})


@pytest.fixture
def app(engine: Engine, api_world: ApiWorld):  # noqa: ANN201
    """The dashboard app (sign-in required) serving the API, on the register above."""
    from gridmap.dashboard.app import create_app

    return create_app(engine, warm=False, secret_key=SECRET, today=date(2025, 3, 17))


def session_client(app, username: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    """A Flask test client signed in as ``username`` through /login."""
    from tests.dashboard.conftest import http_login

    client = app.server.test_client()
    r = http_login(client, username, password)
    assert r.status_code == 303, r.text
    return client
