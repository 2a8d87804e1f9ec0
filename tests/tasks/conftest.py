"""Helpers of the service-task tests: a small register whose elders have a 服务管家, visits with needs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shapely.geometry import Point
from sqlalchemy import Engine, update

from gridmap.rules.config import load_rules
from gridmap.rules.visits import VisitRecord, parse_visit

RULES = load_rules()
NOW = datetime(2026, 12, 2, 4, tzinfo=UTC)
PARSE_NOW = datetime(2026, 12, 31, 4, tzinfo=UTC)
#: every item of 五 an in-home visit answers (effective by the default rules)
IN_HOME = dict(family_change="无变化", family_support="经常探望或来电", expression="无变化", mobility="无变化",
               reaction="无变化", illness="无变化", mood="无变化", gas_safety="安全", water_heating_safety="安全",
               electricity_safety="安全", housing_safety="安全", drinking_water_safety="安全",
               personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")


def phone(elder_id: int, on: str, **more: Any) -> VisitRecord:
    """A phone visit by the visit steward with the answers a phone visit needs (illness, mood, needs: 无)."""
    data = dict(elder_id=elder_id, visited_on=on, mode="电话问候", visitor_role="探访管家", illness="无变化",
                mood="无变化", needs=[])
    data.update(more)
    return parse_visit(data, RULES, now=PARSE_NOW)


def register(engine: Engine, n: int = 3) -> dict[str, Any]:
    """``n`` elders in 甲街道 (the last one without a 服务管家) and two 服务管家 (S-1 theirs, S-2 nobody's)."""
    from gridmap.domain.enums import Category, StewardKind
    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder, Steward
    from tests.rules.conftest import build_register

    ids = build_register(engine, [dict(categories=[Category.LIVING_ALONE]) for _ in range(n)])
    with session_scope(engine, user="test") as s:
        out = []
        for code in ("S-1", "S-2"):
            sw = Steward(code=code, name=f"服务管家{code[-1]}", kind=StewardKind.SERVICE, organisation="驿站",
                         community_id=ids["communities"]["甲街道"], base=Point(116.3, 39.98))
            s.add(sw)
            s.flush()
            out.append(sw.id)
        s.execute(update(Elder).where(Elder.id.in_(ids["elders"][:-1])).values(service_steward_id=out[0]))
    ids["service"] = {"S-1": out[0], "S-2": out[1]}
    return ids
