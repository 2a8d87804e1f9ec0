"""Balance whole grids between visit stewards with OR-Tools CP-SAT: minimise the largest weekly workload.

A *territory* is the set of grids (网格) one 探访管家 looks after. :func:`balance_territories`
assigns every grid of a street to one steward so that

1. the largest weekly workload of a steward is as small as possible (phase 1, CP-SAT, with the
   solver's proven lower bound: ``bound``, ``gap``),
2. then, with the largest workload held at that value, as few elders as possible change steward,
   and the grids lie close to their steward's base (phase 2);

subject to:

* a grid goes to a steward of its own community, or, only when ``allow_cross_community``, to the
  steward of a community whose grids touch it (such moves are flagged ``cross_community``);
* each steward keeps at least one grid of its own community (a *root*, at most one per connected
  part of the community) and its territory stays contiguous: every grid it holds is connected to a
  root through grids it holds (a single-commodity flow from the roots over the grid-adjacency graph,
  linear in the variables); the current assignment is feasible, so the result is never worse.

Workload of a steward (minutes per week, documented estimate)
-------------------------------------------------------------
For each elder with ``visits`` in-home visits this week and ``service`` minutes of service (from the
rules) in grid ``g`` held by steward ``s``::

    minutes = service + visits × (hop_g + 2 × t(base_s, centroid_g) / VISITS_PER_TRIP)

``hop_g`` is the travel per home of a closed tour through the grid's homes on the road network
(walking minutes of the OSM walk graph between the homes, :func:`gridmap.layers.travel.travel_matrix`,
tour by nearest neighbour + 2-opt, divided by the homes: ``rebalance_store.road_tour_minutes``); the
access term is a round trip on the road network from the steward's base to the grid
(``GridUnit.access``), shared by the :data:`VISITS_PER_TRIP` homes one day's round serves. Without
road data both fall back to straight line × :data:`DETOUR` (flagged in the notes).
``tests/routing/test_rebalance_travel.py`` compares the estimate with the travel of the plans
``gridmap plan week`` stores; ``bench/rebalance.py`` does so for the district.

The module is pure: plain dataclasses in and out, no database.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gridmap._errors import ValidationError

__all__ = ["DETOUR", "VISITS_PER_TRIP", "WALK_M_PER_MIN", "ElderLoad", "GridUnit", "StewardUnit",
           "TerritoryResult", "balance_territories", "straight_minutes", "travel_minutes"]

#: Homes served by one round from the steward's base (the access trip is shared among them).
VISITS_PER_TRIP = 4.0
#: Road distance / straight distance (typical urban value; :func:`gridmap.layers.travel.detour_factor`).
DETOUR = 1.3
#: The CP-SAT model counts tenths of minutes.
SCALE = 10
#: Phase 2: minutes above the street's mean workload one elder changing steward must relieve to be worth it.
MOVE_COST = 5.0
#: Walking speed, metres per minute (4.5 km/h, :data:`gridmap.layers.roads.SPEED_KMH`).
WALK_M_PER_MIN = 4500.0 / 60.0


def straight_minutes(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Walking minutes between two (lon, lat) points: great-circle metres × :data:`DETOUR` ÷ walking speed."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(min(1.0, h))) * DETOUR / WALK_M_PER_MIN


@dataclass(frozen=True)
class ElderLoad:
    """One elder of a grid: id, current visit steward (code or ``None``), visits and service minutes this week."""

    elder_id: int
    steward: str | None
    visits: int = 0
    service_minutes: float = 0.0


@dataclass(frozen=True)
class GridUnit:
    """One grid: code, community, centroid (lon, lat), neighbouring grid codes, in-grid hop minutes, elders."""

    grid: str
    community: str
    centroid: tuple[float, float]
    neighbours: frozenset[str] = frozenset()
    hop_minutes: float = 0.0
    elders: tuple[ElderLoad, ...] = ()
    #: One-way walking minutes on the road network from each steward's base (code -> minutes) to the grid;
    #: ``None``: straight line × detour.
    access: Mapping[str, float] | None = field(default=None, hash=False, compare=False)

    @property
    def visits(self) -> int:
        """In-home visit occurrences of the week."""
        return sum(e.visits for e in self.elders)

    @property
    def service_minutes(self) -> float:
        """Service minutes of the week."""
        return sum(e.service_minutes for e in self.elders)

    @property
    def owner(self) -> str | None:
        """The steward most of its elders have (ties: the smaller code); ``None`` without elders with one."""
        counts: dict[str, int] = {}
        for e in self.elders:
            if e.steward is not None:
                counts[e.steward] = counts.get(e.steward, 0) + 1
        return min(counts, key=lambda s: (-counts[s], s)) if counts else None


@dataclass(frozen=True)
class StewardUnit:
    """One visit steward: code, name, community, base (lon, lat) or ``None``, weekly capacity (minutes)."""

    code: str
    community: str
    base: tuple[float, float] | None
    capacity: float = 1800.0
    name: str = ""


@dataclass
class TerritoryResult:
    """The assignment of grids to stewards and what the optimiser proved.

    ``before``/``after``: minutes per steward (estimated as in the module docstring). ``bound``: the
    CP-SAT lower bound of the largest workload (minutes); ``gap`` = (largest after − bound) / largest
    after; ``status``: ``OPTIMAL``, ``FEASIBLE`` or ``UNCHANGED`` (nothing to decide).
    """

    assignment: dict[str, str]
    before: dict[str, float]
    after: dict[str, float]
    bound: float
    status: str
    seconds: float
    cross_community: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def max_before(self) -> float:
        """Largest workload before."""
        return max(self.before.values(), default=0.0)

    @property
    def max_after(self) -> float:
        """Largest workload after."""
        return max(self.after.values(), default=0.0)

    @property
    def gap(self) -> float:
        """Relative distance of the largest workload after to the proven bound (0: optimal)."""
        return 0.0 if self.max_after <= 0 else max(0.0, (self.max_after - self.bound) / self.max_after)

    @staticmethod
    def _ratio(loads: Mapping[str, float]) -> float:
        vals = list(loads.values())
        mean = sum(vals) / len(vals) if vals else 0.0
        return max(vals) / mean if mean > 0 else 1.0

    @property
    def ratio_before(self) -> float:
        """Largest / mean workload before."""
        return self._ratio(self.before)

    @property
    def ratio_after(self) -> float:
        """Largest / mean workload after."""
        return self._ratio(self.after)


def _access(st: StewardUnit, g: GridUnit) -> float:
    if st.base is None:
        return 0.0
    one_way = g.access.get(st.code) if g.access is not None else None
    if one_way is None:
        one_way = straight_minutes(st.base, g.centroid)
    return 2.0 * one_way / VISITS_PER_TRIP


def travel_minutes(grids: Sequence[GridUnit], stewards: Mapping[str, StewardUnit]) -> dict[str, float]:
    """Estimated weekly travel minutes per steward for the current assignment (the workload without service)."""
    out = {c: 0.0 for c in stewards}
    for g in grids:
        for e in g.elders:
            if e.steward in stewards:
                out[e.steward] += e.visits * (g.hop_minutes + _access(stewards[e.steward], g))
    return out


def elder_minutes(e: ElderLoad, g: GridUnit, st: StewardUnit) -> float:
    """Weekly minutes of elder ``e`` (of grid ``g``) for steward ``st``: service + visits × (hop + access)."""
    return e.service_minutes + e.visits * (g.hop_minutes + _access(st, g))


def _loads(grids: Sequence[GridUnit], stewards: Mapping[str, StewardUnit],
           owner_of: Mapping[str, str] | None) -> dict[str, float]:
    """Minutes per steward: with ``owner_of`` (grid -> steward) every elder follows its grid, else its own steward."""
    out = {c: 0.0 for c in stewards}
    for g in grids:
        for e in g.elders:
            s = owner_of.get(g.grid) if owner_of is not None else e.steward
            if s in stewards:
                out[s] += elder_minutes(e, g, stewards[s])
    return out


def _bfs(start: Sequence[str], allowed: set[str], nbrs: Mapping[str, frozenset[str]],
         dist: dict[str, int] | None = None) -> dict[str, int]:
    d = dict(dist or {})
    q = deque(start)
    while q:
        u = q.popleft()
        for v in sorted(nbrs.get(u, ())):
            if v in allowed and v not in d:
                d[v] = d[u] + 1
                q.append(v)
    return d


def _components(nodes: Sequence[str], nbrs: Mapping[str, frozenset[str]]) -> list[list[str]]:
    left, out = set(nodes), []
    for n in nodes:
        if n in left:
            comp = _bfs([n], left, nbrs, {n: 0})
            left -= set(comp)
            out.append(sorted(comp))
    return out


def _contiguity(model: Any, s: str, own: list[str], held: list[str], nbrs: Mapping[str, frozenset[str]],
                x: Mapping[tuple[str, str], Any], roots: dict[tuple[str, str], Any]) -> None:
    """Every grid steward ``s`` holds is connected, through grids it holds, to a root: one grid of its own
    community per connected part of the community (single-commodity flow from the roots)."""
    if not held:
        return
    n = len(held)
    for comp in _components(own, nbrs):
        rs = []
        for g in comp:
            r = model.new_bool_var(f"root[{g},{s}]")
            model.add_implication(r, x[g, s])
            roots[g, s] = r
            rs.append(r)
        model.add_at_most_one(rs)
    model.add_bool_or([roots[g, s] for g in own])  # the steward keeps at least one grid of its own
    hs = set(held)
    flow_in: dict[str, list[Any]] = {g: [] for g in held}
    flow_out: dict[str, list[Any]] = {g: [] for g in held}
    for u in held:
        for v in sorted(nbrs[u]):
            if v not in hs:
                continue
            f = model.new_int_var(0, n, f"f[{u},{v},{s}]")
            model.add(f <= n * x[u, s])
            model.add(f <= n * x[v, s])
            flow_out[u].append(f)
            flow_in[v].append(f)
    for g in held:
        r = roots.get((g, s))
        model.add(sum(flow_in[g]) - sum(flow_out[g]) >= x[g, s] - (n * r if r is not None else 0))


def balance_territories(
    grids: Sequence[GridUnit],
    stewards: Sequence[StewardUnit],
    *,
    allow_cross_community: bool = False,
    time_limit: float = 10.0,
    seed: int = 0,
    workers: int = 1,
) -> TerritoryResult:
    """Assign every grid to one steward, minimising the largest weekly workload (see the module docstring).

    Parameters
    ----------
    grids
        The grids of the street (codes unique; neighbours outside the list are ignored).
    stewards
        The active visit stewards who may hold grids (codes unique).
    allow_cross_community
        Let a grid go to the steward of a neighbouring community (flagged in ``cross_community``).
    time_limit
        Seconds for each of the two CP-SAT phases.
    seed, workers
        CP-SAT random seed and search workers (1: the same answer on every run and machine load).

    Returns
    -------
    TerritoryResult
        Grids no allowed steward can hold (a community without a visit steward, cross-community not
        allowed) keep their current owner and are named in ``notes``.

    Raises
    ------
    ValidationError
        On duplicate grid or steward codes.
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    codes = [g.grid for g in grids]
    if len(set(codes)) != len(codes):
        raise ValidationError("duplicate grid codes", "网格编号重复", field="grid", code="duplicate")
    if len({s.code for s in stewards}) != len(stewards):
        raise ValidationError("duplicate steward codes", "管家编号重复", field="steward", code="duplicate")
    by_grid = {g.grid: g for g in grids}
    st = {s.code: s for s in stewards}
    nbrs = {g.grid: frozenset(n for n in g.neighbours if n in by_grid and n != g.grid) for g in grids}
    for g in grids:  # adjacency is symmetric even if the input lists one side only
        for n in nbrs[g.grid]:
            nbrs[n] = nbrs[n] | {g.grid}
    by_comm: dict[str, list[str]] = {}
    for s in stewards:
        by_comm.setdefault(s.community, []).append(s.code)
    comm_of = {g.grid: g.community for g in grids}
    notes: list[str] = []

    # candidate stewards of each grid
    cand: dict[str, list[str]] = {}
    for g in grids:
        c = set(by_comm.get(g.community, []))
        if allow_cross_community:
            for n in nbrs[g.grid]:
                c.update(by_comm.get(comm_of[n], []))
        cand[g.grid] = sorted(c)
    # a steward may hold a grid only if it has grids of its own community to connect it to
    own: dict[str, list[str]] = {s.code: [g for g in codes if comm_of[g] == s.community and s.code in cand[g]]
                                 for s in stewards}
    for g in codes:
        cand[g] = [s for s in cand[g] if own[s]]
    stuck = [g for g in codes if not cand[g]]
    current = {g.grid: g.owner for g in grids}
    loads_before = _loads(grids, st, None)
    if stuck:
        notes.append("以下网格没有可接手的探访管家（本社区无在岗探访管家），保持不变 / grids without an allowed "
                     "steward keep their current one: " + "、".join(stuck))

    model = cp_model.CpModel()
    x: dict[tuple[str, str], cp_model.IntVar] = {}
    for g in codes:
        for s in cand[g]:
            x[g, s] = model.new_bool_var(f"x[{g},{s}]")
        if cand[g]:
            model.add_exactly_one(x[g, s] for s in cand[g])
    roots: dict[tuple[str, str], cp_model.IntVar] = {}
    for s in st:
        _contiguity(model, s, own[s], [g for g in codes if (g, s) in x], nbrs, x, roots)
    w = {(g, s): int(round(SCALE * sum(elder_minutes(e, by_grid[g], st[s]) for e in by_grid[g].elders)))
         for (g, s) in x}
    fixed = {s: 0.0 for s in st}  # stuck grids stay with their owner
    for g in stuck:
        o = current[g]
        if o in st:
            fixed[o] += sum(elder_minutes(e, by_grid[g], st[o]) for e in by_grid[g].elders)
    ub = int(sum(max((w[g, s] for s in cand[g] if (g, s) in x), default=0) for g in codes)
             + max(fixed.values(), default=0.0)) + 1
    big = model.new_int_var(0, ub, "max_load")
    load_expr = {}
    for s in st:
        terms = [w[g, s] * x[g, s] for g in codes if (g, s) in x]
        load_expr[s] = sum(terms) + int(round(SCALE * fixed[s]))
        model.add(load_expr[s] <= big)
    # the current assignment as a hint (feasible by construction when each grid's owner is a candidate)
    for (g, s), var in x.items():
        model.add_hint(var, current[g] == s)

    def solver() -> cp_model.CpSolver:
        sv = cp_model.CpSolver()
        sv.parameters.max_time_in_seconds = float(time_limit)
        sv.parameters.num_search_workers = int(workers)
        sv.parameters.random_seed = int(seed)
        return sv

    if not x:
        return TerritoryResult({g: current[g] for g in codes if current[g]}, loads_before, loads_before, 0.0,
                               "UNCHANGED", time.perf_counter() - t0, {}, notes)
    model.minimize(big)
    s1 = solver()
    r1 = s1.solve(model)
    if r1 not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        notes.append(f"CP-SAT 未找到可行解 / no feasible assignment ({s1.status_name(r1)}): unchanged")
        return TerritoryResult({g: current[g] for g in codes if current[g]}, loads_before, loads_before, 0.0,
                               s1.status_name(r1), time.perf_counter() - t0, {}, notes)
    best, bound = int(s1.objective_value), float(s1.best_objective_bound) / SCALE
    status = s1.status_name(r1)
    # phase 2: hold the largest workload; relieve whoever is above the mean; move few elders; stay near
    model.add(big <= best)
    target = int(round(sum(loads_before.values()) * SCALE / max(1, len(st))))
    over = []
    for s_ in st:
        o = model.new_int_var(0, ub, f"over[{s_}]")
        model.add(o >= load_expr[s_] - target)
        over.append(o)
    moved = {(g, s): sum(1 for e in by_grid[g].elders if e.steward != s) for (g, s) in x}
    near = {(g, s): int(round(_access(st[s], by_grid[g]))) for (g, s) in x}
    model.minimize(sum(over) + sum((int(MOVE_COST * SCALE) * moved[k] + near[k]) * v for k, v in x.items()))
    model.clear_hints()
    for (g, s), var in x.items():
        model.add_hint(var, bool(s1.value(var)))
    s2 = solver()
    r2 = s2.solve(model)
    sol = s2 if r2 in (cp_model.OPTIMAL, cp_model.FEASIBLE) else s1
    assignment = {g: current[g] for g in stuck if current[g]}
    for (g, s), var in x.items():
        if sol.value(var):
            assignment[g] = s
    after = _loads(grids, st, assignment)
    bound = min(bound, max(after.values(), default=0.0))  # rounding to tenths: never above what was found
    cross = {g: comm_of[g] != st[s].community for g, s in assignment.items() if s in st}
    return TerritoryResult(assignment, loads_before, after, bound, status, time.perf_counter() - t0, cross, notes)
