"""Helpers of the rules tests: small hand-built registers in the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine

from gridmap.domain.enums import FirstContactRule, StewardKind
from gridmap.store.db import session_scope
from gridmap.store.models import Community, District, Elder, FirstContact, Steward, Street

#: Two streets of the test register, side by side west of Zhongguancun.
STREETS = {"甲街道": (116.30, 39.98), "乙街道": (116.32, 39.98)}


def build_register(engine: Engine, elders: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Two streets, one community and one visit steward each, and ``elders``.

    Each elder dict may name ``street`` (default 甲街道), ``first_contact`` (bool,
    default True) and any Elder column. Returns ids: streets, communities,
    stewards (by street name) and elders (in order).
    """
    ids: dict[str, Any] = {"streets": {}, "communities": {}, "stewards": {}, "elders": []}
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
            sw = Steward(code=f"T-{i + 1}", name=f"管家{i + 1}", kind=StewardKind.VISIT,
                         organisation=c.name, community_id=c.id, base=Point(lon, lat))
            s.add(sw)
            s.flush()
            ids["streets"][name], ids["communities"][name], ids["stewards"][name] = st.id, c.id, sw.id
        for k, spec in enumerate(elders):
            spec = dict(spec)
            street = spec.pop("street", "甲街道")
            has_fc = spec.pop("first_contact", True)
            lon, lat = STREETS[street]
            kw: dict[str, Any] = dict(
                name=f"老人{k}", birth_date=date(1950, 1, 1), street_id=ids["streets"][street],
                community_id=ids["communities"][street], visit_steward_id=ids["stewards"][street],
                geom=Point(lon + 0.001 * (k % 5), lat + 0.001 * (k // 5 % 5)), categories=[],
            )
            kw.update(spec)
            e = Elder(**kw)
            s.add(e)
            s.flush()
            if has_fc:
                s.add(FirstContact(elder_id=e.id, name=f"子女{k}", relation="子", phone="13800000000",
                                   rule=FirstContactRule.CHILD))
            ids["elders"].append(e.id)
    return ids


@pytest.fixture
def register_builder():
    """The :func:`build_register` helper."""
    return build_register
