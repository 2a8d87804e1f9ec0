"""Helpers of the follow-up tests: a small register, visits that find hazards, a clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine

from gridmap.rules.config import load_rules
from gridmap.rules.visits import VisitRecord, parse_visit

RULES = load_rules()
NOW = datetime(2026, 12, 2, 4, tzinfo=UTC)
PARSE_NOW = datetime(2026, 12, 31, 4, tzinfo=UTC)  # visits are validated as entered by then
SAFE = dict(family_change="无变化", expression="无变化", mobility="无变化", illness="无变化", mood="无变化",
            gas_safety="安全", water_heating_safety="安全", electricity_safety="安全",
            personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")


def visit(elder_id: int, on: str, *, gas: str = "安全", start: str | None = None, **more: Any) -> VisitRecord:
    """An in-home visit by a volunteer on ``on`` with the gas answer ``gas``."""
    data = dict(elder_id=elder_id, visited_on=on, mode="上门探访", visitor_role="志愿者", visitor_name="志愿者小李",
                **{**SAFE, "gas_safety": gas})
    if start:
        data.update(started_at=f"{on}T{start}", ended_at=f"{on}T{start[:2]}:59")
    data.update(more)
    return parse_visit(data, RULES, now=PARSE_NOW)


def register(engine: Engine, n: int = 2, **elder: Any) -> dict[str, Any]:
    """``n`` living-alone elders in 甲街道 with a first contact (phone 13800000000)."""
    from gridmap.domain.enums import Category
    from tests.rules.conftest import build_register

    return build_register(engine, [dict(categories=[Category.LIVING_ALONE], **elder) for _ in range(n)])


def day(s: str) -> date:
    return date.fromisoformat(s)
