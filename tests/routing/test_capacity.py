"""Workforce sizing (issue 19 item 4): per community, hours the rules require, hours available, the gap, how many
more visit stewards close it and which service stewards nearby could help."""

from __future__ import annotations

from gridmap.routing.capacity import HELPER_SHARE, NEAR_MINUTES, community_capacity
from gridmap.routing.territory import ElderLoad, GridUnit, StewardUnit


def _grid(code: str, community: str, steward: str, minutes: float, n: int) -> GridUnit:
    return GridUnit(code, community, (116.30, 39.98), frozenset(), 0.0,
                    tuple(ElderLoad(i, steward, 1, minutes / n) for i in range(n)))


def test_a_community_short_of_hours_needs_more_stewards_and_lists_nearby_service_stewards() -> None:
    grids = [_grid("g1", "c1", "A", 3000, 30), _grid("g2", "c1", "A", 1400, 10), _grid("g3", "c2", "B", 600, 6)]
    stewards = [StewardUnit("A", "c1", (116.30, 39.98), 1800.0), StewardUnit("B", "c2", (116.30, 39.98), 1800.0)]
    helpers = [{"steward": "F1", "name": "服务甲", "organisation": "驿站", "base": (116.301, 39.98), "minutes": 2400.0},
               {"steward": "F2", "name": "服务乙", "organisation": "驿站", "base": (116.50, 39.98), "minutes": 2400.0}]
    rows = {c.community: c for c in community_capacity("甲街道", grids, stewards, {"c1": "一社区", "c2": "二社区"},
                                                       helpers, {"c1": (116.30, 39.98), "c2": (116.30, 39.98)})}
    c1, c2 = rows["c1"], rows["c2"]
    assert (c1.required_hours, c1.available_hours, c1.gap_hours) == (round(4400 / 60, 1), 30.0, round(2600 / 60, 1))
    assert c1.stewards_needed == 2  # 2,600 minutes short: two more full weeks of 1,800 minutes
    assert [h["steward"] for h in c1.helpers] == ["F1"]  # F2 is far beyond NEAR_MINUTES
    assert c1.helpers[0]["minutes_away"] <= NEAR_MINUTES and c1.helpers[0]["hours"] == 2400 * HELPER_SHARE / 60
    assert c2.gap_hours == 0 and c2.stewards_needed == 0 and c2.helpers == []


def test_a_community_without_a_visit_steward_needs_one() -> None:
    rows = community_capacity("甲街道", [_grid("g1", "c1", None, 300, 3)], [], {}, [], {})  # type: ignore[arg-type]
    assert rows[0].available_hours == 0 and rows[0].stewards_needed == 1


def test_plan_capacity_json_lists_every_community_of_the_street(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from gridmap.cli import app
    from gridmap.store.db import init_db, make_engine
    from tests.routing.test_rebalance import _register

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    _register(engine)
    r = CliRunner().invoke(app, ["plan", "capacity", "--street", "甲街道", "--week", "2026-W50", "--json",
                                 "--database-url", url])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {c["community"] for c in d["communities"]} == {"110108001001", "110108001002"}
    for c in d["communities"]:
        assert {"required_hours", "available_hours", "gap_hours", "stewards_needed", "helpers"} <= set(c)
        assert c["available_hours"] == 30.0
    busy = max(d["communities"], key=lambda c: c["required_hours"])
    assert busy["community"] == "110108001001"  # 40 elders living alone against 4
