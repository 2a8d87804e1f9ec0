"""Fixtures of the access tests: a small hand-made register with two streets, users of every role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
import shapely
from sqlalchemy import Engine

from gridmap.domain.enums import (
    HazardKind,
    ReferralTarget,
    Severity,
    StewardKind,
    VisitMode,
    VisitorRole,
)
from gridmap.domain.idcard import make_id_number
from gridmap.store.db import session_scope
from gridmap.store.models import (
    Community,
    District,
    Elder,
    Grid,
    Hazard,
    Referral,
    Steward,
    Street,
    Visit,
)

#: The password of every test user.
PASSWORD = "correct horse battery"


@dataclass
class World:
    """Ids of the seeded records, by short name."""

    streets: dict[str, int]
    communities: dict[str, int]
    stewards: dict[str, int]
    elders: dict[str, int]
    grids: dict[str, int]


def seed_world(engine: Engine) -> World:
    """Two streets (甲 with communities A1, A2; 乙 with B1), three stewards, four elders.

    e1: 甲/A1, 探访管家 V-A1, 服务管家 S-1      e2: 甲/A2, no stewards
    e3: 乙/B1, 探访管家 V-A1 (moved, still V-A1's)  e4: 乙/B1, 探访管家 V-B1, 服务管家 S-1
    Each elder has one visit, one hazard and one referral; one hazard has no elder.
    """
    pt = shapely.Point(116.3, 39.96)
    with session_scope(engine) as s:
        s.add(District(code="110108", name="海淀区"))
        st = {k: Street(name=n, code=c, district_code="110108") for k, n, c in
              [("A", "甲街道", "110108001"), ("B", "乙街道", "110108002")]}
        s.add_all(st.values())
        s.flush()
        cm = {k: Community(name=n, code=c, street_id=st[k[0]].id) for k, n, c in
              [("A1", "甲一社区居委会", "110108001001"), ("A2", "甲二社区居委会", "110108001002"),
               ("B1", "乙一社区居委会", "110108002001")]}
        s.add_all(cm.values())
        s.flush()
        gr = {k: Grid(code=f"G-{k}", community_id=c.id) for k, c in cm.items()}
        sw = {"V-A1": Steward(code="V-A1", name="王管家", kind=StewardKind.VISIT, organisation="甲一社区",
                              community_id=cm["A1"].id),
              "V-B1": Steward(code="V-B1", name="李管家", kind=StewardKind.VISIT, organisation="乙一社区",
                              community_id=cm["B1"].id),
              "S-1": Steward(code="S-1", name="赵管家", kind=StewardKind.SERVICE, organisation="某养老驿站")}
        s.add_all([*gr.values(), *sw.values()])
        s.flush()
        spec = {"e1": ("A", "A1", "V-A1", "S-1"), "e2": ("A", "A2", None, None),
                "e3": ("B", "B1", "V-A1", None), "e4": ("B", "B1", "V-B1", "S-1")}
        el = {}
        for i, (k, (sk, ck, vk, sv)) in enumerate(spec.items()):
            el[k] = Elder(name=f"张{'一二三四'[i]}丰", id_number=make_id_number("110108", date(1940, 3, 5 + i), 10 + i, "女"),
                          phone=f"1381234567{i}", address=f"甲一路{i + 1}号楼2单元30{i}",
                          street_id=st[sk].id, community_id=cm[ck].id, grid_id=gr[ck].id,
                          visit_steward_id=sw[vk].id if vk else None,
                          service_steward_id=sw[sv].id if sv else None, geom=pt)
        s.add_all(el.values())
        s.flush()
        for e in el.values():
            v = Visit(elder_id=e.id, visited_on=date(2025, 3, 3), mode=VisitMode.IN_HOME,
                      visitor_role=VisitorRole.VISIT_STEWARD)
            s.add(v)
            s.flush()
            s.add(Hazard(elder_id=e.id, visit_id=v.id, kind=HazardKind.GAS, severity=Severity.LOW,
                         source="visit", opened_on=date(2025, 3, 3)))
            s.add(Referral(elder_id=e.id, visit_id=v.id, need="助餐", target=ReferralTarget.FIRST_CONTACT))
        s.add(Hazard(elder_id=None, kind=HazardKind.GAS, severity=Severity.LOW, source="joint inspection",
                     opened_on=date(2025, 3, 3)))
        s.flush()
        return World(streets={k: v.id for k, v in st.items()}, communities={k: v.id for k, v in cm.items()},
                     stewards={k: v.id for k, v in sw.items()}, elders={k: v.id for k, v in el.items()},
                     grids={k: v.id for k, v in gr.items()})


#: (user name, role, keyword arguments of add_user) of the users of every role.
USERS = [
    ("dist", "district", {}),
    ("street_a", "street", {"street": "甲街道"}),
    ("comm_a1", "community", {"community": "甲一社区", "steward": "V-A1"}),
    ("svc_1", "service", {"steward": "S-1"}),
    ("plan_b", "planner", {"grant": ["乙街道"]}),
    ("insp", "inspector", {}),
    ("insp_a", "inspector", {"grant": ["甲街道"]}),
]

#: Elders each user sees (by the rules in gridmap.access.scope and the world above).
VISIBLE = {
    "dist": {"e1", "e2", "e3", "e4"},
    "street_a": {"e1", "e2"},
    "comm_a1": {"e1", "e3"},
    "svc_1": {"e1", "e4"},
    "plan_b": {"e3", "e4"},
    "insp": {"e1", "e2", "e3", "e4"},
    "insp_a": {"e1", "e2"},
}


def add_users(engine: Engine) -> None:
    """Create the users of :data:`USERS` (password :data:`PASSWORD`)."""
    from gridmap.access import add_user

    for name, role, kw in USERS:
        add_user(engine, name, role, password=PASSWORD, **kw)


@pytest.fixture
def world(engine: Engine) -> World:
    """The seeded register on each backend, with users of every role."""
    w = seed_world(engine)
    add_users(engine)
    return w
