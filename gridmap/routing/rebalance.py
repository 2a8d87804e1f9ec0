"""Rebalance a street's visit stewards by moving whole grids: a proposal to preview, accept and undo.

:func:`propose_rebalance` reads the street (:func:`gridmap.routing.rebalance_store.load_street`),
assigns every grid to one 探访管家 with CP-SAT (:func:`gridmap.routing.territory.balance_territories`:
smallest largest weekly workload, then fewest elders changing steward, contiguous territories) and
lists the moves: for each grid, the elders whose visit steward changes (all elders of a grid end with
the grid's steward). Nothing is written; :func:`gridmap.routing.rebalance_store.apply_proposal` writes
an accepted proposal and :func:`~gridmap.routing.rebalance_store.undo_proposal` restores it.

The retired elder-moving greedy stays importable (``rebalance``, ``haversine_minutes``) for old callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Engine

from gridmap.routing._elder_greedy import Proposal, haversine_minutes, rebalance
from gridmap.routing.rebalance_store import (
    StreetUnits,
    grid_unit,
    load_street,
    neighbours_of,
)
from gridmap.routing.territory import (
    GridUnit,
    StewardUnit,
    TerritoryResult,
    _loads,
    balance_territories,
    elder_minutes,
)

#: A grid is cut into at most this many pieces when it alone weighs more than the street's mean workload.
MAX_PARTS = 3

__all__ = ["Proposal", "RebalanceProposal", "build_moves", "haversine_minutes", "propose_rebalance", "rebalance"]


@dataclass
class RebalanceProposal:
    """A grid rebalancing proposal of one street and week (``to_dict``: the CLI's JSON)."""

    street: str
    week: str
    allow_cross_community: bool
    units: StreetUnits
    result: TerritoryResult
    moves: list[dict[str, Any]]
    splits: list[dict[str, Any]] = field(default_factory=list)
    id: str | None = None
    applied: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def elders_moved(self) -> int:
        """Elders whose visit steward changes."""
        return sum(len(m["elders"]) for m in self.moves)

    def stewards(self) -> list[dict[str, Any]]:
        """Each steward's weekly workload (minutes) and grids, before and after."""
        before_grids: dict[str, list[str]] = {}
        for g in self.units.grids:
            if g.owner:
                before_grids.setdefault(g.owner, []).append(g.grid)
        after_grids: dict[str, list[str]] = {}
        for g, s in sorted(self.result.assignment.items()):
            after_grids.setdefault(s, []).append(g)
        out = []
        for s in self.units.stewards:
            out.append({"steward": s.code, "name": s.name, "community": s.community,
                        "community_name": self.units.community_names.get(s.community, s.community),
                        "capacity": round(s.capacity, 1),
                        "workload_before": round(self.result.before.get(s.code, 0.0), 1),
                        "workload_after": round(self.result.after.get(s.code, 0.0), 1),
                        "grids_before": sorted(before_grids.get(s.code, [])),
                        "grids_after": after_grids.get(s.code, [])})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The proposal as JSON: ``moves``, ``stewards``, ``bound``, ``gap``, ``status`` and the ratios."""
        r = self.result
        st = self.stewards()
        n = len(st) or 1
        mean_b = sum(s["workload_before"] for s in st) / n
        mean_a = sum(s["workload_after"] for s in st) / n
        public = [{k: v for k, v in m.items() if not k.endswith("_id")} for m in self.moves]
        splits = [{"grid": x["grid"], "community": x["community"], "new_grids": [n["grid"] for n in x["new_grids"]],
                   "elders": sum(len(n["elders"]) for n in x["new_grids"])} for x in self.splits]
        return {
            "id": self.id, "applied": self.applied, "street": self.street, "week": self.week,
            "allow_cross_community": self.allow_cross_community,
            "moves": public, "stewards": st, "splits": splits,
            "bound": round(r.bound, 1), "gap": round(r.gap, 4), "status": r.status,
            "solver": "OR-Tools CP-SAT", "seconds": round(r.seconds, 2),
            "max_before": round(r.max_before, 1), "max_after": round(r.max_after, 1),
            "mean_before": round(mean_b, 1), "mean_after": round(mean_a, 1),
            "ratio_before": round(r.ratio_before, 4), "ratio_after": round(r.ratio_after, 4),
            "grids_moved": len({m["grid"] for m in self.moves if m["whole_grid"]}),
            "elders_moved": self.elders_moved,
            "cross_community_moves": sum(1 for m in self.moves if m["cross_community"]),
            "notes": r.notes + self.notes,
        }


def build_moves(units: StreetUnits, result: TerritoryResult) -> list[dict[str, Any]]:
    """The moves of an assignment: per grid and former steward, the elders whose visit steward changes.

    ``whole_grid``: the grid's steward changes (its former majority steward ≠ the new one); otherwise the
    move gathers elders of the grid who had another steward (or none) under the grid's steward.
    """
    comm_of = {s.code: s.community for s in units.stewards}
    moves = []
    for g in units.grids:
        to = result.assignment.get(g.grid)
        if to is None:
            continue
        groups: dict[str | None, list[int]] = {}
        for e in g.elders:
            if e.steward != to:
                groups.setdefault(e.steward, []).append(e.elder_id)
        for frm in sorted(groups, key=lambda x: (x is None, x or "")):
            moves.append({
                "grid": g.grid, "community": g.community,
                "community_name": units.community_names.get(g.community, g.community),
                "from_steward": frm, "to_steward": to,
                "from_name": units.steward_names.get(frm or "", None), "to_name": units.steward_names.get(to),
                "elders": groups[frm], "whole_grid": frm is not None and frm == g.owner,
                "cross_community": comm_of.get(to) != g.community,
                "from_steward_id": units.steward_ids.get(frm) if frm else None,
                "to_steward_id": units.steward_ids[to],
            })
    return moves


def _split_heavy(units: StreetUnits, max_parts: int) -> tuple[list[GridUnit], dict[str, str], dict[str, Any]]:
    """Cut every grid heavier than the street's mean steward workload into pieces (:func:`split_grid`).

    Returns the units to optimise (pieces instead of the cut grids), piece code -> cut grid code, and
    piece code -> piece polygon.
    """
    from gridmap.layers.grids import road_lines, split_grid

    st = {s.code: s for s in units.stewards}
    loads = _loads(units.grids, st, None)
    mean = sum(loads.values()) / len(loads) if loads else 0.0
    out: list[GridUnit] = []
    parent: dict[str, str] = {}
    geoms: dict[str, Any] = {}
    for g in units.grids:
        owner = st.get(g.owner or "")
        w = sum(elder_minutes(e, g, owner) for e in g.elders) if owner else g.service_minutes
        geom = units.grid_geoms.get(g.grid)
        heavy = [e for e in g.elders if e.visits and e.elder_id in units.elder_xy]
        parts = min(max_parts, int(w // mean) + 1) if mean > 0 and w > mean else 1
        if parts < 2 or geom is None or len(heavy) < 2:
            out.append(g)
            continue
        xy = np.array([units.elder_xy[e.elder_id] for e in heavy])
        wt = np.array([e.service_minutes + e.visits * g.hop_minutes for e in heavy])
        roads = road_lines(units.graph, geom) if units.graph is not None else None
        pieces = split_grid(geom, xy, wt, parts, roads)  # along the walk graph's roads where they allow
        if len(pieces) < 2:
            out.append(g)
            continue
        polys = [p for p, _ in pieces]
        tree = shapely.STRtree(polys)
        members: list[list[Any]] = [[] for _ in polys]
        for e in g.elders:  # every home in exactly one piece: the first that covers it (else the nearest)
            xy_e = units.elder_xy.get(e.elder_id)
            if xy_e is None:
                members[0].append(e)
                continue
            pt = shapely.Point(xy_e)
            hit = [int(i) for i in tree.query(pt, predicate="intersects")]
            members[min(hit) if hit else int(tree.nearest(pt))].append(e)
        for i, (poly, m) in enumerate(zip(polys, members, strict=True)):
            code = f"{g.grid}#{i + 1}"
            parent[code] = g.grid
            geoms[code] = poly
            out.append(grid_unit(code, g.community, poly, tuple(m), units.elder_xy, graph=units.graph,
                                 access=dict(g.access) if g.access is not None else None))
    if parent:  # neighbours again, pieces included
        all_geoms = {u.grid: geoms.get(u.grid, units.grid_geoms.get(u.grid)) for u in out}
        nb = neighbours_of({k: v for k, v in all_geoms.items() if v is not None})
        out = [GridUnit(u.grid, u.community, u.centroid, frozenset(nb.get(u.grid, ())), u.hop_minutes, u.elders,
                        u.access) for u in out]
    return out, parent, geoms


def _next_code(community: str, used: set[str]) -> str:
    n = 1
    while f"{community}-{n:02d}" in used:
        n += 1
    used.add(f"{community}-{n:02d}")
    return f"{community}-{n:02d}"


def _merge_pieces(units: StreetUnits, pieces: list[GridUnit], parent: dict[str, str], geoms: dict[str, Any],
                  res: TerritoryResult, st: dict[str, StewardUnit]) -> tuple[list[dict[str, Any]], list[GridUnit],
                                                                            dict[str, str]]:
    """Pieces that stay with their grid's steward merge back into it; the others become new grids.

    Returns the splits (for the proposal), the final grid units and the final assignment.
    """
    from gridmap.layers.grids import merge_grids

    used = {g.grid for g in units.grids}
    orig = {g.grid: g for g in units.grids}
    final: list[GridUnit] = [u for u in pieces if u.grid not in parent]
    assign = {g: s for g, s in res.assignment.items() if g not in parent}
    splits = []
    by_parent: dict[str, list[GridUnit]] = {}
    for u in pieces:
        if u.grid in parent:
            by_parent.setdefault(parent[u.grid], []).append(u)
    for p, us in sorted(by_parent.items()):
        g0 = orig[p]
        geom_before = units.grid_geoms[p].wkt
        groups: dict[str, list[GridUnit]] = {}
        for u in us:
            groups.setdefault(res.assignment.get(u.grid, g0.owner or ""), []).append(u)
        keep_steward = g0.owner if g0.owner in groups else max(groups, key=lambda s: sum(len(u.elders) for u in groups[s]))
        new = []
        for s_, grp in sorted(groups.items(), key=lambda kv: (kv[0] != keep_steward, kv[0])):
            code = p if s_ == keep_steward else _next_code(g0.community, used)
            geom = merge_grids([geoms[u.grid] for u in grp])
            elders = tuple(e for u in grp for e in u.elders)
            final.append(grid_unit(code, g0.community, geom, elders, units.elder_xy))
            assign[code] = s_
            units.grid_geoms[code] = geom
            if code != p:
                new.append({"grid": code, "geom": geom.wkt, "elders": sorted(e.elder_id for e in elders),
                            "steward": s_})
            else:
                remaining = geom.wkt
        if new:
            splits.append({"grid": p, "community": g0.community, "community_id": units.community_ids.get(g0.community),
                           "geom_before": geom_before, "geom_after": remaining, "new_grids": new})
    return splits, final, assign


def propose_rebalance(engine: Engine, street: str, week: str, *, allow_cross_community: bool = False,
                      time_limit: float = 10.0, rules: Any = None, seed: int = 0,
                      split: bool = True) -> RebalanceProposal:
    """The grid rebalancing proposal of ``street`` for ``week`` (nothing written).

    With ``split``, a grid that alone weighs more than the street's mean workload is cut into up to
    :data:`MAX_PARTS` compact pieces of about equal workload first (redrawing grids,
    :func:`gridmap.layers.grids.split_grid`); pieces that end with the grid's steward are merged back,
    the others become new grids (``splits``), so a grid is only redrawn when that lowers the workload.

    Raises
    ------
    gridmap._errors.ValidationError
        Unknown street or malformed week.
    """
    units = load_street(engine, street, week, rules=rules)
    plain = RebalanceProposal(street, week, allow_cross_community, units, *_solve(units, units.grids,
                                                                                allow_cross_community,
                                                                                time_limit, seed))
    if not split:
        return plain
    pieces, parent, geoms = _split_heavy(units, MAX_PARTS)
    if not parent:
        return plain
    res = balance_territories(pieces, units.stewards, allow_cross_community=allow_cross_community,
                              time_limit=time_limit, seed=seed)
    splits: list[dict[str, Any]] = []
    if parent:
        st = {s.code: s for s in units.stewards}
        before = dict(res.before)
        splits, final, assign = _merge_pieces(units, pieces, parent, geoms, res, st)
        after = _loads(final, st, assign)
        comm = {s.code: s.community for s in units.stewards}
        res = TerritoryResult(assign, _loads(units.grids, st, None) or before, after,
                              min(res.bound, max(after.values(), default=0.0)), res.status, res.seconds,
                              {g: comm.get(s) != u.community for u in final for g, s in [(u.grid, assign.get(u.grid))]
                               if s}, res.notes)
        units = StreetUnits(units.street, units.street_id, final, units.stewards, units.steward_ids,
                            units.steward_names, units.community_names, units.grid_geoms, units.grid_pk,
                            units.elder_xy, units.community_ids, units.graph)
    prop = RebalanceProposal(street, week, allow_cross_community, units, res, build_moves(units, res), splits)
    # redraw only when it pays: a lower largest workload than moving whole grids alone (by a minute)
    if not splits or prop.result.max_after > plain.result.max_after - 1.0:
        plain.notes.append("拆分网格不能进一步降低最高负载，未拆分 / splitting grids would not lower the largest "
                           "workload: none split")
        return plain
    return prop


def _solve(units: StreetUnits, grids: list[GridUnit], cross: bool, time_limit: float, seed: int
           ) -> tuple[TerritoryResult, list[dict[str, Any]]]:
    res = balance_territories(grids, units.stewards, allow_cross_community=cross, time_limit=time_limit, seed=seed)
    return res, build_moves(units, res)


def plan_effect(engine: Engine, prop: RebalanceProposal, *, rules: Any = None) -> dict[str, Any]:
    """The effect of a proposal on the week's plan, computed by the planner for the stewards it touches.

    Each touched steward's weekly problem (:mod:`gridmap.routing.weekly`) is built with its elders before and
    after the moves and solved by :func:`gridmap.routing.solver.solve` (seeded first plan, ``time_limit=0``;
    straight-line travel × detour, as loading the road graph takes too long for a preview). Returns visits
    required and planned and travel minutes, before and after, summed over those stewards.
    """
    from sqlalchemy import select

    from gridmap.routing.matrix import problem_matrix
    from gridmap.routing.problem import parse_problem
    from gridmap.routing.solver import solve
    from gridmap.routing.weekly import steward_problem, weekly_problems
    from gridmap.store.models import Steward

    touched = {m["from_steward"] for m in prop.moves if m["from_steward"]} | {m["to_steward"] for m in prop.moves}
    out = {"stewards": len(touched), "visits_required_before": 0, "visits_required_after": 0,
           "visits_planned_before": 0, "visits_planned_after": 0, "travel_minutes_before": 0.0,
           "travel_minutes_after": 0.0, "travel": "straight line × detour"}
    if not touched:
        return out
    wp = weekly_problems(engine, prop.week, street=prop.street, rules=rules)
    visits_of: dict[str, list[dict[str, Any]]] = {}
    for sp in wp.problems:
        for v in sp.problem["visits"]:
            visits_of.setdefault(sp.code, []).append(v)
    new_of = {int(e): m["to_steward"] for m in prop.moves for e in m["elders"]}
    after_of: dict[str, list[dict[str, Any]]] = {}
    for code, vs in visits_of.items():
        for v in vs:
            after_of.setdefault(new_of.get(int(v["id"]), code), []).append(v)
    with engine.connect() as conn:
        rows = {r.code: r for r in conn.execute(select(
            Steward.id, Steward.code, Steward.name, Steward.kind, Steward.base, Steward.work_days, Steward.shift_start,
            Steward.shift_end, Steward.max_work_minutes, Steward.travel_mode).where(Steward.code.in_(touched))).all()}

    def run(code: str, vs: list[dict[str, Any]]) -> tuple[int, int, float]:
        st = rows.get(code)
        if st is None or st.base is None or not vs:
            return sum(int(v["count"]) for v in vs), 0, 0.0
        sp, _ = steward_problem(st, [{**v, "id": v["id"]} for v in vs], prop.week)
        if not sp.problem["days"]:
            return sp.size, 0, 0.0
        p = parse_problem(sp.problem)
        plan = solve(p, time_limit=0, matrix=problem_matrix(p, None, road_network=False))
        return plan.summary.visits_required, plan.summary.visits_planned, plan.summary.travel_seconds / 60.0

    for code in sorted(touched):
        for when, src in (("before", visits_of), ("after", after_of)):
            req, planned, travel = run(code, src.get(code, []))
            out[f"visits_required_{when}"] += req
            out[f"visits_planned_{when}"] += planned
            out[f"travel_minutes_{when}"] = round(out[f"travel_minutes_{when}"] + travel, 1)
    return out
