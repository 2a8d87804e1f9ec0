"""Fixtures of the scale tests: a tiny two-street register and a shared 2-worker Dask LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine

from gridmap.domain.enums import FirstContactRule, StewardKind, TravelMode
from gridmap.store.db import session_scope
from gridmap.store.models import (
    Community,
    District,
    Elder,
    FirstContact,
    Steward,
    Street,
)

#: Two streets side by side in Haidian (inside the road data, so road graphs apply).
STREETS = {"甲街道": (116.300, 39.980), "乙街道": (116.320, 39.980)}
WEEK = "2026-W49"


def build_tiny_register(engine: Engine, per_street: int = 6) -> dict[str, Any]:
    """Two streets, each with one visit steward (walk) and one service steward (ebike), and elders.

    Besides ``per_street`` elders of each street's own steward, two elders of
    甲街道's visit steward live in 乙街道 (so that steward's problem is built from
    two streets) and one elder of each street has no visit steward (its
    service steward plans it). Returns ids by name.
    """
    ids: dict[str, Any] = {"streets": {}, "visit": {}, "service": {}, "elders": []}
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区"))
        s.flush()
        for i, (name, (lon, lat)) in enumerate(STREETS.items()):
            st = Street(name=name, code=f"11010800{i + 1}000", district_code="110108000000",
                        geom=MultiPolygon([box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)]))
            s.add(st)
            s.flush()
            c = Community(name=f"{name[0]}社区居委会", code=f"11010800{i + 1}001", street_id=st.id,
                          centre=Point(lon, lat))
            s.add(c)
            s.flush()
            v = Steward(code=f"T-{i + 1}", name=f"探访{i + 1}", kind=StewardKind.VISIT, organisation=c.name,
                        community_id=c.id, base=Point(lon, lat))
            f = Steward(code=f"F-{i + 1}", name=f"服务{i + 1}", kind=StewardKind.SERVICE, organisation=c.name,
                        community_id=c.id, base=Point(lon + 0.002, lat), travel_mode=TravelMode.EBIKE,
                        work_days=[1, 2, 3, 4, 5, 6])
            s.add_all([v, f])
            s.flush()
            ids["streets"][name] = (st.id, c.id)
            ids["visit"][name], ids["service"][name] = v.id, f.id
        specs = []
        for name in STREETS:
            specs += [(name, name, True)] * per_street + [(name, name, False)]
        specs += [("乙街道", "甲街道", True)] * 2
        for k, (home, steward_street, has_visit) in enumerate(specs):
            lon, lat = STREETS[home]
            sid, cid = ids["streets"][home]
            e = Elder(name=f"老人{k}", birth_date=date(1940 + k % 15, 1 + k % 12, 1), street_id=sid,
                      community_id=cid, categories=["living_alone"] if k % 3 == 0 else [],
                      visit_steward_id=ids["visit"][steward_street] if has_visit else None,
                      service_steward_id=ids["service"][steward_street],
                      geom=Point(lon - 0.004 + 0.0015 * (k % 6), lat - 0.003 + 0.0012 * (k // 6 % 5)))
            s.add(e)
            s.flush()
            s.add(FirstContact(elder_id=e.id, name=f"子女{k}", relation="子", phone="13800000000",
                               rule=FirstContactRule.CHILD))
            ids["elders"].append(e.id)
    return ids


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A ``distributed.Client`` on a LocalCluster of 2 worker processes (one thread each)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def engine_url(engine: Engine) -> str:
    """The URL workers connect with (password kept)."""
    return engine.url.render_as_string(hide_password=False)
