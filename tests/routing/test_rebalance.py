"""Rebalancing moves whole grids between visit stewards (issue 19): the CP-SAT territory model, grid splitting,
and the proposal written, undone and refused through the store on both backends."""

from __future__ import annotations

import json
from collections import deque
from datetime import date
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as hs
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine, func, select

from gridmap.domain.enums import Category, StewardKind
from gridmap.layers.grids import split_grid
from gridmap.routing.territory import ElderLoad, GridUnit, StewardUnit, balance_territories

# ------------------------------------------------------------------ the model, by hand


def _row(weights: list[list[int]], owners: list[str], communities: list[str]) -> list[GridUnit]:
    """Grids g0..gn-1 in a row (each touches the next); grid i has elders of ``weights[i]`` minutes."""
    n = len(weights)
    out = []
    for i in range(n):
        nb = frozenset(f"g{j}" for j in (i - 1, i + 1) if 0 <= j < n)
        elders = tuple(ElderLoad(100 * i + k, owners[i], 1, float(w)) for k, w in enumerate(weights[i]))
        out.append(GridUnit(f"g{i}", communities[i], (116.30 + 0.001 * i, 39.98), nb, 0.0, elders))
    return out


def _connected(grids: set[str], units: list[GridUnit]) -> bool:
    if not grids:
        return True
    nb = {u.grid: u.neighbours for u in units}
    start = next(iter(grids))
    seen, q = {start}, deque([start])
    while q:
        for v in nb[q.popleft()]:
            if v in grids and v not in seen:
                seen.add(v)
                q.append(v)
    return seen == grids


def test_one_community_two_stewards_whole_grids_move_and_the_largest_workload_falls_to_the_bound() -> None:
    units = _row([[300, 300], [300, 300], [300, 300], [300, 300]], ["A"] * 4, ["c1"] * 4)
    stewards = [StewardUnit("A", "c1", None), StewardUnit("B", "c1", None)]
    r = balance_territories(units, stewards)
    assert r.max_before == pytest.approx(2400)
    assert r.max_after == pytest.approx(1200)  # two grids each
    assert r.status == "OPTIMAL" and r.bound == pytest.approx(1200) and r.gap == 0
    held = {s: {g for g, t in r.assignment.items() if t == s} for s in "AB"}
    assert all(_connected(h, units) for h in held.values())
    assert r.ratio_after < r.ratio_before
    assert not any(r.cross_community.values())


def test_grids_stay_in_their_community_unless_cross_community_is_allowed_and_then_it_is_flagged() -> None:
    units = _row([[600], [600], [600], [50]], ["A", "A", "A", "B"], ["c1", "c1", "c1", "c2"])
    stewards = [StewardUnit("A", "c1", None), StewardUnit("B", "c2", None)]
    within = balance_territories(units, stewards)
    assert within.assignment == {"g0": "A", "g1": "A", "g2": "A", "g3": "B"}
    assert within.max_after == within.max_before == pytest.approx(1800)
    cross = balance_territories(units, stewards, allow_cross_community=True)
    assert cross.max_after == pytest.approx(1200)
    # B takes the grid next to its own (contiguous), flagged as a cross-community move
    assert cross.assignment["g2"] == "B" and cross.cross_community["g2"] is True
    assert cross.cross_community["g3"] is False


def test_a_grid_not_touching_the_receiving_stewards_territory_cannot_go_to_it() -> None:
    # g0 is heavy; B's own grid g3 touches only g2: B can take g2 (and g1 through it), never g0 alone
    units = _row([[900], [100], [100], [10]], ["A", "A", "A", "B"], ["c1", "c1", "c1", "c2"])
    r = balance_territories(units, [StewardUnit("A", "c1", None), StewardUnit("B", "c2", None)],
                            allow_cross_community=True)
    held_b = {g for g, s in r.assignment.items() if s == "B"}
    assert _connected(held_b, units) and "g3" in held_b


@settings(max_examples=15, deadline=None)
@given(weights=hs.lists(hs.integers(0, 400), min_size=4, max_size=9),
       owners=hs.lists(hs.sampled_from("AB"), min_size=9, max_size=9),
       cross=hs.booleans())
@example(weights=[0, 0, 0, 0], owners=list("AAAAAAAAA"), cross=False)
@example(weights=[400, 0, 0, 400, 0, 0, 400], owners=list("ABABABABA"), cross=True)
def test_every_grid_has_one_steward_territories_are_connected_and_never_worse(weights: list[int], owners: list[str],
                                                                             cross: bool) -> None:
    n = len(weights)
    comm = ["c1" if i < n // 2 else "c2" for i in range(n)]
    own = ["A" if c == "c1" else "B" for c in comm]
    # elders may currently have the other steward (earlier elder-by-elder moves): the grid's owner is the majority
    units = _row([[w, w // 2] for w in weights], own, comm)
    units = [GridUnit(u.grid, u.community, u.centroid, u.neighbours, u.hop_minutes,
                      (u.elders[0], ElderLoad(u.elders[1].elder_id, owners[i], 1, u.elders[1].service_minutes)))
             for i, u in enumerate(units)]
    r = balance_territories(units, [StewardUnit("A", "c1", None), StewardUnit("B", "c2", None)],
                            allow_cross_community=cross, time_limit=2)
    assert set(r.assignment) == {u.grid for u in units}
    for s in "AB":
        assert _connected({g for g, t in r.assignment.items() if t == s}, units)
    if not cross:
        assert all(r.assignment[u.grid] == ("A" if u.community == "c1" else "B") for u in units)
    assert r.max_after <= max(r.max_before, max(sum(e.service_minutes for e in u.elders) for u in units) * n) + 1e-6
    assert r.bound <= r.max_after + 1e-6


# ------------------------------------------------------------------ redrawing a grid


@settings(max_examples=20, deadline=None)
@given(n=hs.integers(2, 40), parts=hs.integers(2, 4), seed=hs.integers(0, 1000))
@example(n=2, parts=4, seed=0)
def test_split_grid_tiles_the_grid_and_puts_every_home_in_exactly_one_piece(n: int, parts: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    poly = box(116.30, 39.98, 116.31, 39.985)
    pts = np.column_stack([rng.uniform(116.3001, 116.3099, n), rng.uniform(39.9801, 39.9849, n)])
    w = rng.uniform(10, 100, n)
    pieces = split_grid(poly, pts, w, parts)
    assert 1 <= len(pieces) <= parts
    assert sorted(i for _, idx in pieces for i in idx) == list(range(n))
    assert sum(p.area for p, _ in pieces) == pytest.approx(poly.area, rel=1e-6)
    for (a, _), (b, _) in zip(pieces, pieces[1:]):
        assert shapely.intersection(a, b).area < 1e-12
    for p, idx in pieces:
        assert all(p.buffer(1e-9).contains(Point(*pts[i])) for i in idx)


# ------------------------------------------------------------------ through the store, both backends

LON, LAT = 116.30, 39.98


def _register(engine: Engine) -> dict[str, Any]:
    """One street, two communities side by side (two grids each, a row of four), one visit steward each;
    community 1 has 40 elders living alone, community 2 has 4."""
    from gridmap.store.db import session_scope
    from gridmap.store.models import Community, District, Elder, Grid, Steward, Street

    ids: dict[str, Any] = {"grids": {}, "stewards": {}}
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区"))
        s.flush()
        st = Street(name="甲街道", code="110108001000", district_code="110108000000",
                    geom=MultiPolygon([box(LON, LAT, LON + 0.04, LAT + 0.01)]))
        s.add(st)
        s.flush()
        ids["street"] = st.id
        for c in range(2):
            cm = Community(name=f"社区{c + 1}", code=f"11010800100{c + 1}", street_id=st.id,
                           centre=Point(LON + 0.02 * c + 0.01, LAT + 0.005),
                           geom=MultiPolygon([box(LON + 0.02 * c, LAT, LON + 0.02 * c + 0.02, LAT + 0.01)]))
            s.add(cm)
            s.flush()
            sw = Steward(code=f"T-{c + 1}", name=f"管家{c + 1}", kind=StewardKind.VISIT, organisation=cm.name,
                         community_id=cm.id, base=Point(LON + 0.02 * c + 0.01, LAT + 0.005))
            s.add(sw)
            s.flush()
            ids["stewards"][sw.code] = sw.id
            for k in range(2):
                x0 = LON + 0.02 * c + 0.01 * k
                g = Grid(code=f"11010800100{c + 1}-0{k + 1}", community_id=cm.id,
                         geom=MultiPolygon([box(x0, LAT, x0 + 0.01, LAT + 0.01)]))
                s.add(g)
                s.flush()
                ids["grids"][g.code] = g.id
                for j in range(20 if c == 0 else 2):
                    s.add(Elder(name=f"老人{c}{k}{j}", birth_date=date(1940, 1, 1), street_id=st.id,
                                community_id=cm.id, grid_id=g.id, visit_steward_id=sw.id,
                                categories=[Category.LIVING_ALONE],
                                geom=Point(x0 + 0.001 + 0.0004 * j, LAT + 0.002 + 0.0003 * (j % 7))))
    return ids


def _stewards_by_grid(engine: Engine) -> dict[str, set[int | None]]:
    from gridmap.store.models import Elder, Grid

    with engine.connect() as conn:
        rows = conn.execute(select(Grid.code, Elder.visit_steward_id).join(Elder, Elder.grid_id == Grid.id)).all()
    out: dict[str, set[int | None]] = {}
    for g, s in rows:
        out.setdefault(g, set()).add(s)
    return out


def test_accepting_moves_grids_with_history_and_change_feed_and_undo_restores(engine: Engine) -> None:
    from gridmap.routing.rebalance import propose_rebalance
    from gridmap.routing.rebalance_store import account_id, apply_proposal, keep_proposal, undo_proposal
    from gridmap.store.models import ChangeLog, RegisterChange

    _register(engine)
    before = _stewards_by_grid(engine)
    grids_before = {g.code: g.geom.wkt for g in _grids(engine)}
    within = propose_rebalance(engine, "甲街道", "2026-W50", time_limit=2)
    assert within.moves == [] and within.result.max_after == pytest.approx(within.result.max_before)
    p = propose_rebalance(engine, "甲街道", "2026-W50", allow_cross_community=True, time_limit=2)
    d = p.to_dict()
    assert d["moves"] and all(m["cross_community"] for m in d["moves"])
    assert d["ratio_after"] < d["ratio_before"] and d["bound"] <= d["max_after"] + 1e-6
    assert {x["steward"] for x in d["stewards"]} == {"T-1", "T-2"}
    assert all({"steward", "workload_before", "workload_after"} <= set(x) for x in d["stewards"])
    json.dumps(d)  # the CLI prints it
    assert _stewards_by_grid(engine) == before  # a proposal writes nothing

    uid = account_id(engine, "cli", create=True)
    pid = keep_proposal(engine, uid, "甲街道", "2026-W50", {**d, "moves": p.moves, "splits": p.splits})
    with engine.connect() as conn:
        seq0 = conn.execute(select(func.max(ChangeLog.seq))).scalar() or 0
        hist0 = conn.execute(select(func.count()).select_from(RegisterChange)).scalar()
    apply_proposal(engine, pid, "tester")
    after = _stewards_by_grid(engine)
    assert all(len(s) == 1 for s in after.values())  # all elders of a grid share one visit steward
    moved = {m["grid"] for m in p.moves}
    t2 = {g for g, s in after.items() if s == {p.units.steward_ids["T-2"]}}
    assert moved <= t2
    with engine.connect() as conn:
        feed = conn.execute(select(ChangeLog.kind, ChangeLog.streets).where(ChangeLog.seq > seq0)).all()
        hist1 = conn.execute(select(func.count()).select_from(RegisterChange)).scalar()
    assert [c.kind.value for c in feed] == ["plan"] and feed[0].streets == ["甲街道"]  # other processes see it
    assert hist1 - hist0 >= p.elders_moved  # one history row per elder changed at least
    with pytest.raises(Exception, match="already accepted|已采纳"):
        apply_proposal(engine, pid, "tester")

    undo_proposal(engine, pid, "tester")
    assert _stewards_by_grid(engine) == before
    assert {g.code: g.geom.wkt for g in _grids(engine)} == grids_before  # split grids merged back
    with pytest.raises(Exception, match="undone already|已撤销"):
        undo_proposal(engine, pid, "tester")


def _grids(engine: Engine) -> list[Any]:
    from gridmap.store.models import Grid

    with engine.connect() as conn:
        return list(conn.execute(select(Grid.code, Grid.geom)).all())


def test_a_proposal_overtaken_by_another_change_is_refused_whole(engine: Engine) -> None:
    from gridmap.routing.rebalance import propose_rebalance
    from gridmap.routing.rebalance_store import account_id, apply_proposal, keep_proposal
    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder

    ids = _register(engine)
    p = propose_rebalance(engine, "甲街道", "2026-W50", allow_cross_community=True, time_limit=2)
    assert p.moves
    pid = keep_proposal(engine, account_id(engine, "cli", create=True), "甲街道", "2026-W50",
                        {**p.to_dict(), "moves": p.moves, "splits": p.splits})
    victim = p.moves[-1]["elders"][-1]
    with session_scope(engine, user="other") as s:
        s.get(Elder, victim).visit_steward_id = None
    before = _stewards_by_grid(engine)
    grids = _grids(engine)
    with pytest.raises(Exception, match="nothing was written"):
        apply_proposal(engine, pid, "tester")
    assert _stewards_by_grid(engine) == before and _grids(engine) == grids
    assert ids["stewards"]


def test_cli_refuses_an_unknown_street_in_chinese_and_english(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from gridmap.cli import app
    from gridmap.store.db import init_db, make_engine

    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    init_db(make_engine(url))
    r = CliRunner().invoke(app, ["plan", "rebalance", "--street", "无此街道", "--week", "2026-W50", "--json",
                                 "--database-url", url])
    assert r.exit_code == 1
    assert "未找到街道" in r.output and "no street named" in r.output and "Traceback" not in r.output
