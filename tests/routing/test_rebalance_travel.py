"""Issue 19, item 1: the travel part of a steward's weekly workload comes from the road network and is about
the travel of the weekly plans ``gridmap plan week`` stores (a small demo on the real roads)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gridmap.routing.district import plan_week, read_run
from gridmap.routing.rebalance_store import load_street, street_names
from gridmap.routing.territory import travel_minutes

from .test_district_week import WEEK, populate

#: Stated tolerance: the estimate of the streets' visit stewards lies within this factor of the planned travel.
FACTOR = 1.6


def _estimate_vs_planned(engine, streets: list[str], plans: dict[str, dict], graph) -> tuple[float, float]:
    """(estimated, planned) travel minutes of the streets' visit stewards with planned visits; the estimate
    per visit × the visits the plan holds (a plan that leaves visits out travels less)."""
    est_total = planned_total = 0.0
    for street in streets:
        units = load_street(engine, street, WEEK, graph=graph)
        stewards = {s.code: s for s in units.stewards}
        est = travel_minutes(units.grids, stewards)
        for code in stewards:
            p = plans.get(code)
            visits = sum(e.visits for g in units.grids for e in g.elders if e.steward == code)
            if p and p["visits_planned"] > 0 and visits > 0:
                est_total += est[code] / visits * p["visits_planned"]
                planned_total += p["travel_seconds"] / 60.0
    return est_total, planned_total


@pytest.mark.slow
def test_workload_travel_on_the_road_network_is_within_a_factor_of_the_planned_travel(
        data_dir: Path, tmp_path: Path) -> None:
    from gridmap.routing.rebalance_store import walk_graph
    from gridmap.store.db import init_db, make_engine

    G = walk_graph()
    if G is None:
        pytest.skip("no road data")
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    init_db(engine)
    populate(engine, 1500)
    visits = {s: sum(g.visits for g in load_street(engine, s, WEEK, graph=None).grids) for s in street_names(engine)}
    streets = sorted(visits, key=lambda s: (-visits[s], s))[:4]
    plans: dict[str, dict] = {}
    for i, street in enumerate(streets):
        plan_week(engine, WEEK, street=street, out_dir=tmp_path / f"run{i}", time_limit=0.3, workers=1)
        plans |= {s["code"]: s for s in read_run(tmp_path / f"run{i}")["stewards"]}

    est, planned = _estimate_vs_planned(engine, streets, plans, G)
    assert planned > 100  # minutes of planned travel to compare with
    assert planned / FACTOR <= est <= planned * FACTOR, (est, planned)
    # the former straight-line estimate (nearest neighbour × detour) was much farther from the plans
    straight, _ = _estimate_vs_planned(engine, streets, plans, None)
    assert abs(math.log(est / planned)) < abs(math.log(straight / planned)), (est, straight, planned)
