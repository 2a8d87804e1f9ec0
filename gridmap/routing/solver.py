"""The planner: a function from a :class:`Problem` to a :class:`Plan` (day patterns by insertion, routes by OR-Tools).

Method (two stages, repeated while time remains)
-------------------------------------------------
1. **Days.** Each steward-day is a vehicle. Every visit required ``count``
   times chooses one allowed day combination (``day_patterns`` or all
   combinations of allowed days at least ``min_gap_days`` apart); its copies
   are inserted into that pattern's days at the cheapest feasible positions
   (time windows, shift, working minutes, capacity checked exactly in O(1)
   per position with earliest/latest start times). Visits go in by priority
   (highest first), the most constrained first; a high-priority visit that
   fits nowhere may eject lower-priority ones. A pattern-change local search
   then moves whole visits to cheaper patterns. This always yields a feasible
   first solution (a visit that fits nowhere is unassigned with its reason).
2. **Routes.** Each day is routed by OR-Tools (C++ transit matrices, time and
   work dimensions, capacity, priority drop penalties) starting from the
   stage-1 routes (one-day problems: from OR-Tools' own first solution), with
   guided local search under a time limit and a wall-clock guard; then, for
   most of the day's time, by ruin and recreate (:mod:`gridmap.routing.sisr`:
   string removals, cheapest feasible reinsertion, simulated annealing), which
   escapes the local optima where guided local search stalls. Rounds of
   pattern search and day routing alternate while time remains. With
   ``workers`` > 1, one-day problems run a portfolio of first solutions and
   multi-day problems route their days side by side.

Dropping one visit of priority ``p`` always costs more than dropping any
number of visits of priority below ``p`` up to :data:`PRIORITY_BASE`, and more
than any route's travel cost, so high-priority elders are the last left out.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridmap.routing.matrix import ProblemMatrix, problem_matrix
from gridmap.routing.plan import Plan, Route, Stop, Summary, Unassigned
from gridmap.routing.problem import Problem

#: Penalty of dropping one visit of priority 1 (in cost units, above any route cost).
BASE_PENALTY = 10**8
#: Each priority level multiplies the drop penalty by this.
PRIORITY_BASE = 200
#: First-solution strategies of the one-day multi-start (each then improved by guided local search).
MULTI_START: tuple[str, ...] = ("PARALLEL_CHEAPEST_INSERTION", "SAVINGS")
#: With several workers, each runs guided local search from one of these first solutions for the whole time.
PORTFOLIO: tuple[str, ...] = ("PARALLEL_CHEAPEST_INSERTION", "SAVINGS", "PARALLEL_SAVINGS", "LOCAL_CHEAPEST_INSERTION")
#: Seconds a worker process costs to start and return its result (kept out of its search time).
_POOL_OVERHEAD = 0.3
#: Set by :func:`solve` with ``iterations`` (per thread): searches bounded by work, not by the clock.
_TLS = threading.local()


def _fixed() -> int | None:
    """The work bound of the solve running in this thread (None: bounded by the clock)."""
    return getattr(_TLS, "fixed", None)
#: The nominal time limit in work-bounded mode: every wall-clock check passes; work ends the search.
_FIXED_NOMINAL_SECONDS = 3600.0
#: Share of a day's routing time given to ruin and recreate after OR-Tools (0 switches it off).
SISR_SHARE = 0.8
#: Multi-day problems: share of the time after stage 1 for ruin and recreate over the whole week.
WEEK_SHARE = 0.8
#: Multi-day problems: while visits are left out, day routing and pattern search alternate up to this share.
PACK_SHARE = 0.4
#: Share of the week's ruin and recreate spent with SISR's absence rule (placing visits) before the rest
#: (travel, from the best so far)
WEEK_ABSENCE_SHARE = 0.5
#: Simulated annealing temperatures of the ruin-and-recreate search, in mean arc costs (start, end).
SISR_TEMPERATURE: tuple[float, float] = (1.0, 0.01)
_INF = math.inf


def _penalty(priority: int) -> int:
    return BASE_PENALTY * PRIORITY_BASE ** (priority - 1)


# ------------------------------------------------------------------ internal model


@dataclass
class _Vehicle:
    steward: int
    day: int
    start: int
    end: int
    shift: tuple[int, int]
    max_work: int
    capacity: float
    mode: str


@dataclass
class _Model:
    problem: Problem
    T: dict[str, np.ndarray]  # int seconds
    C: dict[str, np.ndarray]  # float cost (objective)
    vehicles: list[_Vehicle]
    by_day: list[list[int]]
    eligible: list[set[int]]  # per visit: allowed steward indices
    patterns: list[list[tuple[int, ...]]]  # feasible patterns per visit
    service: np.ndarray
    demand: np.ndarray
    windows: list[list[tuple[int, int]]]


def _build_model(problem: Problem, pm: ProblemMatrix) -> _Model:
    T = {s.mode: pm.seconds[pm.mode_of(s.mode)] for s in problem.stewards}
    src = pm.metres if problem.objective == "distance_metres" else pm.seconds
    C = {s.mode: np.asarray(src[pm.mode_of(s.mode)], dtype=float) for s in problem.stewards}
    vehicles, by_day = [], [[] for _ in problem.days]
    for si, s in enumerate(problem.stewards):
        for d in s.days:
            by_day[d].append(len(vehicles))
            vehicles.append(_Vehicle(si, d, s.start, s.end, s.shift, s.max_work_seconds,
                                     _INF if s.capacity is None else s.capacity, s.mode))
    sid = {s.id: i for i, s in enumerate(problem.stewards)}
    eligible, patterns = [], []
    for v in problem.visits:
        el = {sid[v.steward]} if v.steward else set(range(len(problem.stewards)))
        eligible.append(el)
        works = [any(vehicles[k].steward in el for k in by_day[d]) for d in range(len(problem.days))]
        patterns.append([p for p in v.patterns if all(works[d] for d in p)])
    service = np.array([v.service_seconds for v in problem.visits], dtype=np.int64)
    demand = np.array([v.demand for v in problem.visits], dtype=float)
    windows = [list(v.time_windows) for v in problem.visits]
    return _Model(problem, T, C, vehicles, by_day, eligible, patterns, service, demand, windows)


def _earliest(windows: list[tuple[int, int]], t: float) -> float | None:
    for lo, hi in windows:
        if t <= hi:
            return max(t, lo)
    return None


class _RouteState:
    """One vehicle's route with earliest/latest start times for O(1) insertion checks."""

    def __init__(self, m: _Model, k: int) -> None:
        self.m, self.k = m, k
        veh = m.vehicles[k]
        self.veh = veh
        self.T, self.C = m.T[veh.mode], m.C[veh.mode]
        self.seq: list[int] = []
        self.update()

    def win(self, v: int) -> list[tuple[int, int]]:
        w = self.m.windows[v]
        lo, hi = self.veh.shift
        return [(max(a, lo), min(b, hi)) for a, b in w if max(a, lo) <= min(b, hi)] if w else [(lo, hi)]

    def update(self) -> None:
        m, veh, T = self.m, self.veh, self.T
        locs = [veh.start] + [m.problem.visits[v].location for v in self.seq] + [veh.end]
        serv = [0] + [int(m.service[v]) for v in self.seq] + [0]
        self.locs = np.array(locs)
        self.serv = np.array(serv, dtype=float)
        n = len(locs)
        E = np.zeros(n)
        E[0] = veh.shift[0]
        ok = True
        for i in range(1, n):
            a = E[i - 1] + serv[i - 1] + T[locs[i - 1], locs[i]]
            if i == n - 1:
                e = a if a <= veh.shift[1] else None
            else:
                e = _earliest(self.win(self.seq[i - 1]), a)
            if e is None:
                ok = False
                e = a
            E[i] = e
        L = np.zeros(n)
        L[-1] = veh.shift[1]
        for i in range(n - 2, -1, -1):
            lim = L[i + 1] - serv[i] - T[locs[i], locs[i + 1]]
            if i == 0:
                L[i] = lim
                continue
            best = -_INF
            for lo, hi in self.win(self.seq[i - 1]):
                c = min(hi, lim)
                if c >= lo:
                    best = max(best, c)
            L[i] = best
        self.E, self.L, self.feasible = E, L, ok
        self.travel = float(T[self.locs[:-1], self.locs[1:]].sum())
        self.work = self.travel + float(self.serv.sum())
        self.load = float(m.demand[self.seq].sum()) if self.seq else 0.0
        self.cost = float(self.C[self.locs[:-1], self.locs[1:]].sum())

    def best_insertion(self, v: int) -> tuple[float, int] | None:
        """(cost delta, position) of the cheapest feasible insertion of visit ``v``, or None."""
        m = self.m
        if self.load + m.demand[v] > self.veh.capacity:
            return None
        u = m.problem.visits[v].location
        T, C = self.T, self.C
        prev, nxt = self.locs[:-1], self.locs[1:]
        a = self.E[:-1] + self.serv[:-1] + T[prev, u]
        eu = np.full(a.shape, _INF)
        for lo, hi in self.win(v):
            cand = np.where(a <= hi, np.maximum(a, lo), _INF)
            eu = np.minimum(eu, cand)
        arr_next = eu + m.service[v] + T[u, nxt]
        dwork = T[prev, u] + T[u, nxt] - T[prev, nxt] + m.service[v]
        ok = (arr_next <= self.L[1:]) & (self.work + dwork <= self.veh.max_work)
        if not ok.any():
            return None
        dc = C[prev, u] + C[u, nxt] - C[prev, nxt]
        dc = np.where(ok, dc, _INF)
        pos = int(np.argmin(dc))
        return float(dc[pos]), pos

    def insert(self, v: int, pos: int) -> None:
        self.seq.insert(pos, v)
        self.update()

    def remove(self, v: int) -> None:
        self.seq.remove(v)
        self.update()


class _Days:
    """Stage 1: day patterns and insertion routes for all steward-days."""

    def __init__(self, m: _Model, rng: np.random.Generator) -> None:
        self.m = m
        self.rng = rng
        self.routes = [_RouteState(m, k) for k in range(len(m.vehicles))]
        self.where: dict[int, dict[int, int]] = {i: {} for i in range(len(m.problem.visits))}  # visit -> day -> vehicle

    def _best_day(self, v: int, d: int) -> tuple[float, int, int] | None:
        best = None
        for k in self.m.by_day[d]:
            if self.m.vehicles[k].steward not in self.m.eligible[v]:
                continue
            r = self.routes[k].best_insertion(v)
            if r is not None and (best is None or r[0] < best[0]):
                best = (r[0], k, r[1])
        return best

    def place(self, v: int, prefer: tuple[int, ...] | None = None) -> int:
        """Insert visit ``v`` with its cheapest (or preferred) feasible pattern; return copies placed."""
        pats = self.m.patterns[v]
        if not pats:
            return 0
        cache: dict[int, tuple[float, int, int] | None] = {}

        def day(d: int):
            if d not in cache:
                cache[d] = self._best_day(v, d)
            return cache[d]

        best, best_key = None, None
        for p in pats:
            ins = [day(d) for d in p]
            placed = sum(x is not None for x in ins)
            cost = sum(x[0] for x in ins if x is not None)
            key = (-placed, 0 if p == prefer else 1, cost)
            if best_key is None or key < best_key:
                best, best_key = (p, ins), key
        p, ins = best
        n = 0
        for d, x in zip(p, ins):
            if x is not None:
                self.routes[x[1]].insert(v, x[2])
                self.where[v][d] = x[1]
                n += 1
        return n

    def unplace(self, v: int) -> None:
        for d, k in self.where[v].items():
            self.routes[k].remove(v)
        self.where[v] = {}

    def cost(self) -> float:
        return sum(r.cost for r in self.routes)

    def construct(self, order: list[int], prefer: dict[int, tuple[int, ...]]) -> None:
        for v in order:
            self.place(v, prefer.get(v))

    def eject_for(self, v: int) -> None:
        """Try to place a high-priority visit by removing lower-priority ones from its best pattern's days."""
        prio = self.m.problem.visits[v].priority
        had = len(self.where[v])
        self.unplace(v)
        for p in self.m.patterns[v][:20]:
            removed: list[int] = []
            for d in p:
                if self._best_day(v, d) is not None:
                    continue
                done = False
                cands = [(self.m.problem.visits[w].priority, w, k) for k in self.m.by_day[d]
                         for w in self.routes[k].seq if self.m.problem.visits[w].priority < prio
                         and self.m.vehicles[k].steward in self.m.eligible[v]]
                for _, w, k in sorted(cands):
                    self.unplace(w)
                    removed.append(w)
                    if self._best_day(v, d) is not None:
                        done = True
                        break
                if not done:
                    break
            if self.place(v, p) == len(p):
                for w in removed:  # put back what still fits
                    self.place(w)
                return
            self.unplace(v)
            for w in removed:
                self.place(w)
        if self.place(v) < had:  # pragma: no cover - the earlier placement was still available
            self.unplace(v)

    def pattern_search(self, deadline: float, visits: list[int]) -> None:
        """Move whole visits to cheaper patterns until no move improves or time is up."""
        improved = True
        while improved and time.monotonic() < deadline:
            improved = False
            for v in visits:
                if time.monotonic() >= deadline:
                    return
                if len(self.m.patterns[v]) <= 1 and self.m.problem.visits[v].count == 1 and len(self.m.by_day) == 1:
                    continue
                before_n = len(self.where[v])
                if before_n == 0:
                    if self.place(v):
                        improved = True
                    continue
                old = {d: (k, self.routes[k].seq.index(v)) for d, k in self.where[v].items()}
                c0 = self.cost()
                self.unplace(v)
                n = self.place(v)
                if n > before_n or (n == before_n and self.cost() < c0 - 1e-6):
                    improved = True
                    continue
                self.unplace(v)
                for d, (k, pos) in sorted(old.items(), key=lambda kv: kv[1][1]):
                    self.routes[k].insert(v, pos)
                    self.where[v][d] = k


# ------------------------------------------------------------------ OR-Tools stage


#: Local-search operators switched on beyond OR-Tools' defaults (measured on Solomon R1/RC1: fewer stalls).
EXTRA_OPERATORS: tuple[str, ...] = ("use_or_opt", "use_relocate_expensive_chain", "use_cross_exchange",
                                    "use_exchange_subtrip")


#: Operators switched off in greedy descent (the work-bounded mode): the cheap moves only.
POLISH_OFF: frozenset[str] = frozenset({"use_exchange_subtrip", "use_relocate_expensive_chain", "use_lin_kernighan",
                                        "use_tsp_opt", "use_make_chain_inactive", "use_extended_swap_active"})


class _DayRouting:
    """One OR-Tools routing model over some vehicles and visits, solvable repeatedly from given routes.

    With ``joint`` the vehicles span several days: a visit needed once may move to any
    vehicle of an allowed day; copies of visits needed more often stay on their day.
    """

    def __init__(self, m: _Model, vehicles: list[int], seqs: list[list[int]], optional: list[int],
                 cost_scale: float, joint: bool = False) -> None:
        from ortools.constraint_solver import pywrapcp

        self.m, self.vehicles, self.cost_scale = m, vehicles, cost_scale
        horizon = int(max(m.vehicles[k].shift[1] for k in vehicles)) + 1
        optional = [v for v in optional if not m.windows[v] or any(a < horizon for a, _ in m.windows[v])]
        self.optional = optional
        nodes_v = [v for s in seqs for v in s] + list(optional)
        self.nodes_v = nodes_v
        self.routing = None
        if not nodes_v:
            return
        nv = len(vehicles)
        self.nv = nv
        locs = []
        for k in vehicles:
            locs += [m.vehicles[k].start, m.vehicles[k].end]
        locs += [m.problem.visits[v].location for v in nodes_v]
        locs = np.array(locs)
        serv = np.r_[np.zeros(2 * nv, dtype=np.int64), m.service[nodes_v]]
        manager = pywrapcp.RoutingIndexManager(len(locs), nv, [2 * i for i in range(nv)], [2 * i + 1 for i in range(nv)])
        routing = pywrapcp.RoutingModel(manager)
        # RegisterTransitMatrix / RegisterUnaryTransitVector are indexed by node (not by routing index)
        time_cb, cost_cb = {}, {}
        for mode in {m.vehicles[k].mode for k in vehicles}:
            Tm = m.T[mode][np.ix_(locs, locs)] + serv[:, None]
            time_cb[mode] = routing.RegisterTransitMatrix(Tm.astype(np.int64).tolist())
            Cm = np.rint(m.C[mode][np.ix_(locs, locs)] * cost_scale).astype(np.int64)
            cost_cb[mode] = routing.RegisterTransitMatrix(Cm.tolist())
        tcbs = [time_cb[m.vehicles[k].mode] for k in vehicles]
        routing.AddDimensionWithVehicleTransits(tcbs, horizon, horizon, False, "time")
        tdim = routing.GetDimensionOrDie("time")
        for i, k in enumerate(vehicles):
            veh = m.vehicles[k]
            routing.SetArcCostEvaluatorOfVehicle(cost_cb[veh.mode], i)
            tdim.CumulVar(routing.Start(i)).SetRange(veh.shift[0], veh.shift[1])
            tdim.CumulVar(routing.End(i)).SetRange(veh.shift[0], veh.shift[1])
        if any(m.vehicles[k].max_work < m.vehicles[k].shift[1] - m.vehicles[k].shift[0] for k in vehicles):
            routing.AddDimensionWithVehicleTransitAndCapacity(
                tcbs, 0, [int(m.vehicles[k].max_work) for k in vehicles], True, "work")
        if any(np.isfinite(m.vehicles[k].capacity) for k in vehicles) and m.demand[nodes_v].any():
            dem = np.r_[np.zeros(2 * nv), m.demand[nodes_v]]
            dcb = routing.RegisterUnaryTransitVector(np.rint(dem).astype(np.int64).tolist())
            caps = [int(min(m.vehicles[k].capacity, 2**40)) for k in vehicles]
            routing.AddDimensionWithVehicleCapacity(dcb, 0, caps, True, "load")
        stew = [m.vehicles[k].steward for k in vehicles]
        for j, v in enumerate(nodes_v):
            node = 2 * nv + j
            index = manager.NodeToIndex(node)
            w = m.windows[v]
            if w:
                cv = tdim.CumulVar(index)
                w = [(a, min(b, horizon - 1)) for a, b in w if a < horizon]
                cv.SetRange(int(w[0][0]), int(w[-1][1]))
                for (a, b), (c, _) in zip(w[:-1], w[1:]):
                    if c - 1 >= b + 1:
                        cv.RemoveInterval(int(b + 1), int(c - 1))
            routing.AddDisjunction([index], _penalty(m.problem.visits[v].priority))
        # fixed stewards: a zero-capacity dimension counting visits the vehicle's steward may not make
        # (SetAllowedVehiclesForIndex does not accept Python lists in this OR-Tools build)
        if joint:
            node_day = [m.vehicles[k].day for k, sq in zip(vehicles, seqs) for _ in sq] + [-1] * len(optional)
            free = [m.problem.visits[v].count == 1 for v in nodes_v]
            ok_days = [{p[0] for p in m.patterns[v]} if f else set() for v, f in zip(nodes_v, free)]
            vecs = []
            for k in vehicles:
                veh = m.vehicles[k]
                vecs.append(tuple([0] * (2 * nv) + [
                    0 if (veh.steward in m.eligible[v] and ((veh.day in ok_days[j]) if free[j] else veh.day == node_day[j]))
                    else 1 for j, v in enumerate(nodes_v)]))
            if any(any(vec) for vec in vecs):
                reg = {vec: routing.RegisterUnaryTransitVector(list(vec)) for vec in set(vecs)}
                routing.AddDimensionWithVehicleTransits([reg[vec] for vec in vecs], 0, 0, True, "allowed")
        elif any(len(m.eligible[v]) < len(m.problem.stewards) for v in nodes_v):
            cbs = {}
            for st_ in set(stew):
                forbid = [0] * (2 * nv) + [0 if st_ in m.eligible[v] else 1 for v in nodes_v]
                cbs[st_] = routing.RegisterUnaryTransitVector(forbid)
            routing.AddDimensionWithVehicleTransits([cbs[st_] for st_ in stew], 0, 0, True, "steward")
        self.manager, self.routing = manager, routing
        self._deadline = [math.inf]
        cp_solver = routing.solver()  # captured instead of `routing`: a closure over the model leaked it (~30 MB a solve)
        deadline = self._deadline

        def guard() -> None:  # wall-clock guard: GLS can overrun its limit on a loaded machine
            if time.monotonic() > deadline[0]:
                cp_solver.FinishCurrentSearch()

        routing.AddAtSolutionCallback(guard)
        self.extra = not joint
        routing.CloseModelWithParameters(self.params("PARALLEL_CHEAPEST_INSERTION", "GUIDED_LOCAL_SEARCH", 1.0,
                                                     self.extra))

    @staticmethod
    def params(first: str, meta: str, time_limit: float, extra: bool = True):
        from ortools.constraint_solver import pywrapcp, routing_enums_pb2

        params = pywrapcp.DefaultRoutingSearchParameters()
        params.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, first)
        params.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, meta)
        ops = params.local_search_operators
        for op in EXTRA_OPERATORS if extra else ():  # not on the large all-days model (they slow it down)
            setattr(ops, op, 3)  # BOOL_TRUE
        if meta == "GREEDY_DESCENT":  # cheap moves only, no large neighbourhoods
            for f in ops.DESCRIPTOR.fields:
                if "lns" in f.name or f.name in POLISH_OFF:
                    setattr(ops, f.name, 2)  # BOOL_FALSE
        params.time_limit.FromMilliseconds(max(10, int(time_limit * 1000)))
        params.log_search = False
        return params

    def solve(self, seqs: list[list[int]], time_limit: float, first: str = "PARALLEL_CHEAPEST_INSERTION",
              meta: str = "GUIDED_LOCAL_SEARCH", positions: bool = True, scratch: bool = True
              ) -> list[list[int]] | None:
        """New sequences (visit indices) from a search starting at ``seqs``; None when nothing is found.

        ``positions``: the sequences are in the order of the model's nodes (as given at construction);
        otherwise visits are looked up by index (each visit at most once in the model). ``scratch``:
        when the start cannot be read, search from OR-Tools' own first solution.
        """
        routing, manager, nv = self.routing, self.manager, self.nv
        if _fixed() is not None:  # work-bounded: greedy descent ends at its local optimum, not on the clock
            meta, time_limit = "GREEDY_DESCENT", _FIXED_NOMINAL_SECONDS
        params = self.params(first, meta, time_limit, self.extra)
        self._deadline[0] = time.monotonic() + time_limit * 1.05 + 0.5
        init = []
        if positions:
            pos = 2 * nv
            for s in seqs:
                init.append([manager.NodeToIndex(pos + j) for j in range(len(s))])
                pos += len(s)
        else:
            node = getattr(self, "_node_of", None)
            if node is None:
                node = self._node_of = {v: 2 * nv + j for j, v in enumerate(self.nodes_v)}
            init = [[manager.NodeToIndex(node[v]) for v in s] for s in seqs]
        sol = None
        start_assign = None
        if any(init):
            # RoutesToAssignment, not ReadAssignmentFromRoutes: the latter runs a search under the model's
            # search limit, which a previous solve on this model may have used up (it then fails at random)
            start_assign = routing.solver().Assignment()
            if not routing.RoutesToAssignment(init, True, True, start_assign):
                start_assign = None
        if start_assign is not None:
            sol = routing.SolveFromAssignmentWithParameters(start_assign, params)
        if sol is None and (scratch or not any(init)):
            sol = routing.SolveWithParameters(params)
        if sol is None:
            return None
        out = []
        for i in range(nv):
            idx = sol.Value(routing.NextVar(routing.Start(i)))
            seq = []
            while not routing.IsEnd(idx):
                seq.append(self.nodes_v[manager.IndexToNode(idx) - 2 * nv])
                idx = sol.Value(routing.NextVar(idx))
            out.append(seq)
        return out

    def cost(self, seqs: list[list[int]], dropped: set[int]) -> float:
        m = self.m
        return sum(_seq_cost(m, k, s) for k, s in zip(self.vehicles, seqs)) + sum(
            _penalty(m.problem.visits[v].priority) / self.cost_scale for v in dropped)


def _route_day(m: _Model, vehicles: list[int], seqs: list[list[int]], time_limit: float, optional: list[int],
               cost_scale: float, joint: bool = False, first: str = "PARALLEL_CHEAPEST_INSERTION") -> list[list[int]]:
    """Route vehicles with OR-Tools from the given sequences; returns new sequences (visit indices)."""
    deadline = time.monotonic() + time_limit * 1.05 + 0.5
    dr = _DayRouting(m, vehicles, seqs, optional, cost_scale, joint)
    if dr.routing is None:
        return [list(s) for s in seqs]
    out = dr.solve(seqs, time_limit, first)
    if out is None and first != "PARALLEL_CHEAPEST_INSERTION":  # e.g. savings on tight windows
        return _route_day(m, vehicles, seqs, max(0.05, deadline - 0.5 - time.monotonic()), optional, cost_scale,
                          joint)
    if out is None:
        return [list(s) for s in seqs]
    old = dr.cost(seqs, set(dr.optional))
    new = dr.cost(out, set(dr.nodes_v) - {v for s in out for v in s})
    return out if new <= old + 1e-6 else [list(s) for s in seqs]


def _seq_cost(m: _Model, k: int, seq: list[int]) -> float:
    veh = m.vehicles[k]
    locs = [veh.start] + [m.problem.visits[v].location for v in seq] + [veh.end]
    C = m.C[veh.mode]
    return float(sum(C[a, b] for a, b in zip(locs[:-1], locs[1:])))


# ------------------------------------------------------------------ reasons


def _reason(m: _Model, days: _Days, v: int) -> str:
    visit = m.problem.visits[v]
    if not m.patterns[v]:
        if visit.count > 1 and not visit.explicit_patterns and len(visit.patterns) == 0 and visit.days:
            return "spacing"
        return "days"
    pat_days = sorted({d for p in m.patterns[v] for d in p})
    ks = [k for d in pat_days for k in m.by_day[d] if m.vehicles[k].steward in m.eligible[v]]
    if all(m.demand[v] > m.vehicles[k].capacity for k in ks):
        return "capacity"
    any_plain = any_tw = False
    for k in ks:
        veh = m.vehicles[k]
        T = m.T[veh.mode]
        u = visit.location
        go, back = T[veh.start, u], T[u, veh.end]
        if go + back + visit.service_seconds > veh.max_work:
            continue
        lo, hi = veh.shift
        if lo + go + visit.service_seconds + back > hi:
            continue
        any_plain = True
        for a, b in (visit.time_windows or [(lo, hi)]):
            s = max(a, lo + go)
            if s <= b and s + visit.service_seconds + back <= hi:
                any_tw = True
    if any_plain and not any_tw:
        return "time_window"
    if not any_plain:
        return "no_time"
    if m.demand[v] > 0 and all(days.routes[k].load + m.demand[v] > m.vehicles[k].capacity for k in ks):
        return "capacity"
    return "no_time"


def _fallback(reason: str, priority: int, n_stewards: int) -> str:
    if reason in ("no_time", "capacity") and n_stewards > 1:
        return "other_steward"
    if priority >= 4:
        return "video"
    if priority == 3 or reason == "time_window":
        return "phone"
    return "next_week"


# ------------------------------------------------------------------ public


def solve(
    problem: Problem,
    time_limit: float = 10.0,
    seed: int = 0,
    initial: Plan | None = None,
    matrix: ProblemMatrix | None = None,
    geometry: bool = False,
    graphs: dict | None = None,
    rounds: int | None = None,
    method: str = "two_stage",
    workers: int = 1,
    iterations: int | None = None,
) -> Plan:
    """Plan the problem's visits; never fails for lack of a solution.

    Parameters
    ----------
    problem
        A parsed problem (:func:`gridmap.routing.problem.parse_problem`).
    time_limit
        Seconds of search (wall clock, guarded).
    seed
        Random seed (tie-breaking in the day stage); same seed and time → same plan
        unless the machine's load cuts the search at a different point.
    initial
        A previous plan (e.g. last week's) to start from: visits keep their
        weekdays and order where still feasible.
    matrix
        Precomputed matrices (default :func:`gridmap.routing.matrix.problem_matrix`).
    geometry
        Draw each route along the roads (needs the road network; problems with coordinates only).
    graphs
        ``mode -> road graph`` for matrices and geometry.
    rounds
        Day/route alternations over several days (default 4; 2 with a warm start).
    method
        ``"two_stage"``: each day routed on its own; ``"one_model"``: all steward-days in one
        OR-Tools model where visits needed once may also change day (both alternate with the
        pattern search of stage 1).
    workers
        Processes for one problem (guided local search is single-threaded): a one-day problem
        runs a portfolio of first solutions side by side and keeps the best; a multi-day
        problem routes its days side by side. District planning keeps 1 and solves
        stewards' problems in parallel instead.

    Returns
    -------
    Plan
    """
    if SISR_SHARE > 0:
        from gridmap.routing.sisr import warm_up

        warm_up()  # loads the compiled search once per process (about 0.7 s; compiles on first use ever)
    if iterations is not None:
        time_limit = _FIXED_NOMINAL_SECONDS
    _TLS.fixed = None if iterations is None else max(0, int(iterations))
    try:
        return _solve(problem, time_limit, seed, initial, matrix, geometry, graphs, rounds, method, workers)
    finally:
        _TLS.fixed = None


def _solve(problem: Problem, time_limit: float, seed: int, initial: Plan | None, matrix: ProblemMatrix | None,
           geometry: bool, graphs: dict | None, rounds: int | None, method: str, workers: int) -> Plan:
    t0 = time.monotonic()
    deadline = t0 + max(time_limit, 0.05)
    pm = matrix if matrix is not None else problem_matrix(problem, graphs)
    m = _build_model(problem, pm)
    rng = np.random.default_rng(seed)
    n_days = len(problem.days)
    visits = problem.visits
    nvis = len(visits)
    if n_days == 1 and initial is None:
        # one day: OR-Tools builds and improves (its C++ insertion beats ours; ours is the fallback), then
        # ruin and recreate; with several workers, a portfolio of first solutions side by side
        days = _Days(m, rng)
        ks = m.by_day[0]
        todo = [v for v in range(nvis) if m.patterns[v]]
        best_seqs, best_cost = None, _INF

        def keep(seqs: list[list[int]]) -> None:
            nonlocal best_seqs, best_cost
            done = {v for sq in seqs for v in sq}
            cost = sum(_seq_cost(m, k, sq) for k, sq in zip(ks, seqs)) + sum(
                _penalty(visits[v].priority) for v in todo if v not in done)
            if cost < best_cost - 1e-9:
                best_seqs, best_cost = seqs, cost

        if workers > 1 and time_limit >= 2.0:
            firsts = list(PORTFOLIO[:workers])
            end = deadline - _POOL_OVERHEAD
            tasks = [(m, ks, todo, time.monotonic(), end, f, seed + i) for i, f in enumerate(firsts)]
            for seqs in _parallel(_one_day_task, tasks, workers):
                keep(seqs)
        else:
            keep(_one_day(m, ks, todo, t0, deadline, None, seed))
        seqs = best_seqs
        for k, s in zip(m.by_day[0], seqs):
            days.routes[k].seq = list(s)
            days.routes[k].update()
            for v in s:
                days.where[v][0] = k
        if not all(r.feasible for r in days.routes):  # pragma: no cover - OR-Tools keeps feasibility
            days = _Days(m, rng)
            days.construct(_order(m, rng), {})
    else:
        days = _Days(m, rng)
        prefer = _preferences(problem, initial, m)
        days.construct(_order(m, rng, prefer), prefer)
        for v in sorted(range(nvis), key=lambda v: -visits[v].priority):
            if len(days.where[v]) < visits[v].count and m.patterns[v] and visits[v].priority > 1:
                if any(visits[w].priority < visits[v].priority for w in range(nvis) if days.where[w]):
                    days.eject_for(v)
        week_sisr = (initial is None and SISR_SHARE > 0 and time_limit >= 1.0 and method == "two_stage"
                     and _fixed() != 0)
        if initial is None:
            days.pattern_search(t0 + 0.2 * time_limit, _order(m, rng))
        if week_sisr:
            # while visits are still left out, alternate day routing and pattern search (shorter routes
            # make room), for a while; then days and routes together by ruin and recreate
            pre_end = t0 + PACK_SHARE * time_limit
            packs, missing = 0, _missing(m, days)
            while missing and time.monotonic() < pre_end - 0.1 and (_fixed() is None or packs < 2):
                packs += 1
                _route_all_days(m, days, 0.5 * (pre_end - time.monotonic()), workers, seed)
                days.pattern_search(pre_end, _order(m, rng))
                now_missing = _missing(m, days)
                if now_missing >= missing:  # an overloaded week: more room will not come from packing
                    break
                missing = now_missing
            _sisr_week(m, days, time.monotonic() + WEEK_SHARE * (deadline - time.monotonic()), seed, workers)
        n_rounds = rounds or (2 if initial is not None else (1 if week_sisr else 4))
        for rnd in range(n_rounds):
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                break
            budget = remaining * (0.85 / (n_rounds - rnd) if rnd < n_rounds - 1 else 0.97)
            if method == "one_model":
                _route_joint(m, days, budget)
            else:
                _route_all_days(m, days, budget, workers, seed + 101 * rnd)
            if rnd < n_rounds - 1 and initial is None:  # a warm start keeps last week's days
                days.pattern_search(time.monotonic() + 0.15 * (deadline - time.monotonic()), _order(m, rng))
    _repair_routes(m, days)
    return _to_plan(m, pm, days, geometry, graphs)


def _day_arrays(m: _Model, ks: list[int], visits: list[int]):
    """The day's vehicles ``ks`` and ``visits`` as :class:`gridmap.routing.sisr.DayArrays` (local indices)."""
    from gridmap.routing.sisr import DayArrays

    modes = sorted({m.vehicles[k].mode for k in ks})
    locs = sorted({m.vehicles[k].start for k in ks} | {m.vehicles[k].end for k in ks}
                  | {m.problem.visits[v].location for v in visits})
    li = {loc: i for i, loc in enumerate(locs)}
    ix = np.ix_(locs, locs)
    T = np.stack([np.asarray(m.T[md], dtype=np.int64)[ix] for md in modes])
    C = np.stack([np.asarray(m.C[md], dtype=float)[ix] for md in modes])
    W = max([len(m.windows[v]) for v in visits] + [1])
    n = len(visits)
    wlo = np.zeros((n, W), dtype=np.int64)
    whi = np.zeros((n, W), dtype=np.int64)
    nwin = np.zeros(n, dtype=np.int64)
    for j, v in enumerate(visits):
        w = sorted(m.windows[v])
        nwin[j] = len(w)
        for i, (a, b) in enumerate(w):
            wlo[j, i], whi[j, i] = a, b
    vehs = [m.vehicles[k] for k in ks]
    eligible = np.array([[veh.steward in m.eligible[v] for veh in vehs] for v in visits], dtype=bool).reshape(n, len(ks))
    loc_visit = np.array([li[m.problem.visits[v].location] for v in visits], dtype=np.int64)
    K = min(max(n - 1, 0), 40)
    if K:
        Cv = C[0][np.ix_(loc_visit, loc_visit)]
        Cv = Cv + Cv.T
        np.fill_diagonal(Cv, np.inf)
        near = np.argsort(Cv, axis=1, kind="stable")[:, :K].astype(np.int64)
    else:
        near = np.full((n, 1), -1, dtype=np.int64)
    return DayArrays(
        T=T, C=C, route_mode=np.array([modes.index(veh.mode) for veh in vehs], dtype=np.int64),
        loc_start=np.array([li[veh.start] for veh in vehs], dtype=np.int64),
        loc_end=np.array([li[veh.end] for veh in vehs], dtype=np.int64),
        shift_lo=np.array([veh.shift[0] for veh in vehs], dtype=np.int64),
        shift_hi=np.array([veh.shift[1] for veh in vehs], dtype=np.int64),
        max_work=np.array([min(int(veh.max_work), 2**40) for veh in vehs], dtype=np.int64),
        capacity=np.array([min(float(veh.capacity), 1e18) for veh in vehs], dtype=float),
        loc_visit=loc_visit, service=np.asarray(m.service[visits], dtype=np.int64).reshape(n),
        demand=np.asarray(m.demand[visits], dtype=float).reshape(n), wlo=wlo, whi=whi, nwin=nwin, eligible=eligible,
        penalty=np.array([float(_penalty(m.problem.visits[v].priority)) for v in visits]), near=near)


def _sisr_day(m: _Model, ks: list[int], seqs: list[list[int]], optional: list[int], deadline: float,
              seed: int) -> list[list[int]]:
    """Improve one day's routes by ruin and recreate (:mod:`gridmap.routing.sisr`) until ``deadline``."""
    from gridmap.routing.sisr import Search

    visits = sorted({v for s in seqs for v in s} | set(optional))
    if len(visits) < 2 or time.monotonic() >= deadline - 0.01:
        return seqs
    local = {v: j for j, v in enumerate(visits)}
    day = _day_arrays(m, ks, visits)
    search = Search(day, [[local[v] for v in s] for s in seqs], seed=seed)
    _anneal(search, len(visits) + sum(1 for s in seqs if s), deadline)
    return [[visits[j] for j in s] for s in search.seqs()]


def _anneal(search, n_arcs: int, deadline: float, scale: int = 1, **run: Any) -> None:
    """Run a :class:`gridmap.routing.sisr.Search` in chunks until ``deadline``, cooling geometrically
    (work-bounded mode: ``scale`` × the fixed iterations in ten chunks); ``run`` is passed to
    :meth:`~gridmap.routing.sisr.Search.run`."""
    mean_arc = search.cost / max(n_arcs, 1)
    t_hi, t_lo = SISR_TEMPERATURE[0] * mean_arc, SISR_TEMPERATURE[1] * mean_arc
    if t_hi <= 0:
        t_hi, t_lo = 1.0, 0.01
    if _fixed() is not None:
        total = _fixed() * scale
        for i in range(10):
            n = total // 10 + (1 if i < total % 10 else 0)
            if n:
                search.run(n, t_hi * (t_lo / t_hi) ** (i / 10), t_hi * (t_lo / t_hi) ** ((i + 1) / 10), **run)
        return
    start = time.monotonic()
    span = max(deadline - start, 1e-6)
    chunk, step = 50, 0.05
    while True:
        now = time.monotonic()
        if now >= deadline - 0.005:
            break
        f0 = (now - start) / span
        f1 = min(1.0, f0 + step)
        search.run(chunk, t_hi * (t_lo / t_hi) ** f0, t_hi * (t_lo / t_hi) ** f1, **run)
        took = max(time.monotonic() - now, 1e-4)
        rate = chunk / took
        left = max(deadline - time.monotonic(), 0.0)
        # about 20 chunks over the run (a quarter of a second at most), never past the deadline
        chunk = int(max(10, min(rate * min(0.25, span / 20), rate * left)))
        step = min(1.0, chunk / rate / span)


def _repair_routes(m: _Model, days: _Days) -> None:
    """Safety net: a route that is late or over its working time loses visits (lowest priority first).

    Insertions are checked exactly, but with a travel matrix that breaks the triangle inequality
    (a given matrix is used as it is) taking a visit out can make the rest of a route longer.
    """
    for k, r in enumerate(days.routes):
        while r.seq and (not r.feasible or r.work > r.veh.max_work):
            visits = m.problem.visits

            def after(v: int, r: Any = r, k: int = k, visits: Any = visits) -> tuple:
                rest = [w for w in r.seq if w != v]
                probe = _RouteState(m, k)
                probe.seq = rest
                probe.update()
                return (visits[v].priority, not probe.feasible, probe.work)

            v = min(r.seq, key=after)
            r.remove(v)
            days.where[v].pop(m.vehicles[k].day, None)


def _missing(m: _Model, days: _Days) -> int:
    """Visit copies not placed (of visits that have a feasible pattern)."""
    return sum(max(0, m.problem.visits[v].count - len(days.where[v])) for v in days.where if m.patterns[v])


def _week_task(args: tuple) -> tuple[list[list[int]], float, float]:
    from gridmap.routing.sisr import Search

    week, seqs, seed, n_arcs, deadline = args
    search = Search(week, seqs, seed=seed)
    # first which visits fit (SISR's absence rule moves the visits left out around), then from the best
    # of that, with the same visits left out or fewer, travel by simulated annealing
    mid = time.monotonic() + WEEK_ABSENCE_SHARE * max(deadline - time.monotonic(), 0.0)
    _anneal(search, n_arcs, mid, scale=1, absence_rule=True)
    _anneal(search, n_arcs, deadline, scale=1, absence_rule=False)
    return search.seqs(), search.penalty, search.cost


def _sisr_week(m: _Model, days: _Days, deadline: float, seed: int, workers: int = 1) -> None:
    """Ruin and recreate over the whole week: visits change days (patterns) as well as routes."""
    from gridmap.routing.sisr import WeekArrays

    visits = [v for v in range(len(m.problem.visits)) if m.patterns[v]]
    if len(visits) < 2 or time.monotonic() >= deadline - 0.01:
        return
    local = {v: j for j, v in enumerate(visits)}
    ks = list(range(len(m.vehicles)))
    base = _day_arrays(m, ks, visits)
    maxk = max(m.problem.visits[v].count for v in visits)
    rows, ptr = [], [0]
    for v in visits:
        for p in m.patterns[v]:
            rows.append(list(p) + [0] * (maxk - len(p)))
        ptr.append(len(rows))
    week = WeekArrays(**{f: getattr(base, f) for f in base.__dataclass_fields__},
                      route_day=np.array([m.vehicles[k].day for k in ks], dtype=np.int64),
                      count=np.array([m.problem.visits[v].count for v in visits], dtype=np.int64),
                      pat_days=np.array(rows, dtype=np.int64).reshape(len(rows), maxk),
                      pat_ptr=np.array(ptr, dtype=np.int64))
    seqs = [[local[v] for v in days.routes[k].seq] for k in ks]
    n_arcs = sum(map(len, seqs)) + sum(1 for s in seqs if s)
    if workers > 1 and deadline - time.monotonic() > 2 * _POOL_OVERHEAD:
        # independent searches side by side (different seeds); the best is kept
        end = deadline - _POOL_OVERHEAD
        results = _parallel(_week_task, [(week, seqs, seed + i, n_arcs, end) for i in range(workers)], workers)
        out = min(results, key=lambda r: (r[1], r[2]))[0]
    else:
        out = _week_task((week, seqs, seed, n_arcs, deadline))[0]
    for v in days.where:
        days.where[v] = {}
    for k, s in zip(ks, out):
        days.routes[k].seq = [visits[j] for j in s]
        days.routes[k].update()
        for v in days.routes[k].seq:
            days.where[v][m.vehicles[k].day] = k


def _cost_scale(m: _Model) -> float:
    mx = max(float(np.max(c)) if c.size else 0.0 for c in m.C.values())
    return 100.0 if mx < 1e5 else 1.0


def _route_all_days(m: _Model, days: _Days, budget: float, workers: int = 1, seed: int = 0) -> None:
    sizes = [sum(len(days.routes[k].seq) for k in m.by_day[d]) for d in range(len(m.by_day))]
    total = sum(sizes) or 1
    start = time.monotonic()
    todo = [d for d in range(len(m.by_day)) if sizes[d]]
    if workers > 1 and len(todo) > 1 and budget >= 1.0:
        # days side by side: each day gets its share of all workers' time
        lanes = min(workers, len(todo))
        tasks = [(m, m.by_day[d], [days.routes[k].seq for k in m.by_day[d]],
                  max(0.05, sizes[d] / total * budget * lanes - _POOL_OVERHEAD), seed + d) for d in todo]
        for d, seqs in zip(todo, _parallel(_improve_day_task, tasks, lanes)):
            _set_day(m, days, d, seqs)
        return
    for d in todo:
        spent = time.monotonic() - start
        share = sizes[d] / total * budget
        share = min(share, max(0.05, budget - spent))
        ks = m.by_day[d]
        _set_day(m, days, d, _improve_day(m, ks, [days.routes[k].seq for k in ks], share, seed + d))


def _improve_day(m: _Model, ks: list[int], seqs: list[list[int]], budget: float, seed: int) -> list[list[int]]:
    """Improve one day's routes (same visits): OR-Tools guided local search, then ruin and recreate."""
    t0 = time.monotonic()
    use_sisr = SISR_SHARE > 0 and budget >= 0.5 and sum(map(len, seqs)) >= 3 and _fixed() != 0
    gls = budget * (1 - SISR_SHARE) if use_sisr else budget
    seqs = _route_day(m, ks, seqs, gls, [], _cost_scale(m))
    if use_sisr:
        seqs = _sisr_day(m, ks, seqs, [], t0 + budget, seed)
    return seqs


def _improve_day_task(args: tuple) -> list[list[int]]:
    return _improve_day(*args)


def _set_day(m: _Model, days: _Days, d: int, seqs: list[list[int]]) -> None:
    ks = m.by_day[d]
    for k, s in zip(ks, seqs):
        days.routes[k].seq = list(s)
        days.routes[k].update()
    for v in {v for s in seqs for v in s} | {v for v, w in days.where.items() if d in w}:
        where = days.where[v]
        where.pop(d, None)
        for k, s in zip(ks, seqs):
            if v in s:
                where[d] = k
    dropped = [v for v in range(len(m.problem.visits)) if d in days.where[v] and days.where[v][d] not in ks]
    for v in dropped:  # pragma: no cover
        days.where[v].pop(d)


def _one_day(m: _Model, ks: list[int], todo: list[int], t0: float, deadline: float, first: str | None,
             seed: int) -> list[list[int]]:
    """One day from nothing: OR-Tools first solutions + guided local search, then ruin and recreate."""
    time_limit = deadline - t0
    use_sisr = SISR_SHARE > 0 and time_limit >= 1.0 and _fixed() != 0
    gls_end = t0 + (1 - SISR_SHARE) * time_limit if use_sisr else deadline
    starts = [first] if first else (list(MULTI_START) if time_limit >= 2.0 and not use_sisr else [MULTI_START[0]])
    best_seqs, best_cost = None, _INF
    for i, fs in enumerate(starts):
        share = max(0.05, (gls_end - time.monotonic()) * 0.97 / (len(starts) - i))
        seqs = _route_day(m, ks, [[] for _ in ks], share, todo, _cost_scale(m), first=fs)
        done = {v for sq in seqs for v in sq}
        cost = sum(_seq_cost(m, k, sq) for k, sq in zip(ks, seqs)) + sum(
            _penalty(m.problem.visits[v].priority) for v in todo if v not in done)
        if cost < best_cost - 1e-9:
            best_seqs, best_cost = seqs, cost
    if use_sisr:
        done = {v for sq in best_seqs for v in sq}
        best_seqs = _sisr_day(m, ks, best_seqs, [v for v in todo if v not in done], deadline, seed)
    return best_seqs


def _one_day_task(args: tuple) -> list[list[int]]:
    return _one_day(*args)


def _route_day_task(args: tuple) -> list[list[int]]:
    return _route_day(*args)


def _parallel(fn, tasks: list, workers: int) -> list:
    """``[fn(t) for t in tasks]`` in ``workers`` forked processes (in order); serially if forking is unavailable."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    try:
        ctx = mp.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        return [fn(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        return list(ex.map(fn, tasks))


def _route_joint(m: _Model, days: _Days, budget: float) -> None:
    """Route all steward-days in one OR-Tools model (visits needed once may change day)."""
    ks = list(range(len(m.vehicles)))
    seqs = _route_day(m, ks, [days.routes[k].seq for k in ks], budget, [], _cost_scale(m), joint=True)
    for k, sq in zip(ks, seqs):
        days.routes[k].seq = list(sq)
        days.routes[k].update()
    for v in days.where:
        days.where[v] = {}
    for k, sq in zip(ks, seqs):
        for v in sq:
            days.where[v][m.vehicles[k].day] = k


def _order(m: _Model, rng: np.random.Generator, prefer: dict | None = None) -> list[int]:
    visits = m.problem.visits
    noise = rng.random(len(visits))
    prefer = prefer or {}
    # farthest from the stewards' bases first (within priority and flexibility classes)
    bases = sorted({k.start for k in m.vehicles})
    C = next(iter(m.C.values()))
    far = [-float(min(C[b, visits[v].location] for b in bases)) if bases else 0.0 for v in range(len(visits))]
    return sorted(range(len(visits)), key=lambda v: (
        v not in prefer, -visits[v].priority, len(m.patterns[v]) / max(visits[v].count, 1), -visits[v].count,
        (sum(b - a for a, b in m.windows[v]) if m.windows[v] else 10**9), far[v] * (1 + 0.1 * noise[v])))


def _preferences(problem: Problem, initial: Plan | None, m: _Model) -> dict[int, tuple[int, ...]]:
    if initial is None:
        return {}
    import datetime as dt

    weekday_to_day = {}
    for i, d in enumerate(problem.days):
        weekday_to_day.setdefault(d.weekday(), i)
    vid = {v.id: i for i, v in enumerate(problem.visits)}
    seen: dict[int, set[int]] = {}
    for r in initial.routes:
        try:
            wd = dt.date.fromisoformat(r.day).weekday()
        except ValueError:
            continue
        d = weekday_to_day.get(wd)
        if d is None:
            continue
        for s in r.stops:
            if s.visit in vid:
                seen.setdefault(vid[s.visit], set()).add(d)
    out = {}
    for v, ds in seen.items():
        target = tuple(sorted(ds))
        if target in m.patterns[v]:
            out[v] = target
    return out


def _to_plan(m: _Model, pm: ProblemMatrix, days: _Days, geometry: bool, graphs: dict | None) -> Plan:
    p = m.problem
    routes: list[Route] = []
    est_s = tot_s = 0.0
    for k, r in enumerate(days.routes):
        if not r.seq:
            continue
        veh = m.vehicles[k]
        mode = pm.mode_of(veh.mode)
        T, M, E = pm.seconds[mode], pm.metres[mode], pm.estimated[mode]
        stops = []
        t = float(veh.shift[0])
        prev = veh.start
        travel = dist = serv = 0.0
        # leave as late as possible without delaying the first start (shorter working day)
        first = r.seq[0]
        lat0 = r.L[1] - T[prev, p.visits[first].location]
        t = max(t, min(lat0, r.E[1] - T[prev, p.visits[first].location]))
        for v in r.seq:
            loc = p.visits[v].location
            arr = t + T[prev, loc]
            start = _earliest(r.win(v), arr)
            start = arr if start is None else start
            end = start + p.visits[v].service_seconds
            stops.append(Stop(p.visits[v].id, int(arr), int(start), int(end)))
            travel += T[prev, loc]
            dist += M[prev, loc]
            if E[prev, loc]:
                est_s += T[prev, loc]
            serv += p.visits[v].service_seconds
            t, prev = end, loc
        travel += T[prev, veh.end]
        dist += M[prev, veh.end]
        if E[prev, veh.end]:
            est_s += T[prev, veh.end]
        tot_s += travel
        geom = _geometry(p, veh, r.seq, graphs) if geometry else None
        routes.append(Route(p.stewards[veh.steward].id, p.day_str(veh.day), stops, float(travel), float(dist),
                            round((travel + serv) / 60.0, 2), geom))
    routes.sort(key=lambda r: (r.day, r.steward))
    unassigned = []
    for v, visit in enumerate(p.visits):
        placed = len(days.where[v])
        if placed < visit.count:
            reason = _reason(m, days, v)
            unassigned.append(Unassigned(visit.id, visit.count - placed, reason,
                                         _fallback(reason, visit.priority, len(p.stewards))))
    required = sum(v.count for v in p.visits)
    planned = sum(len(r.stops) for r in routes)
    summary = Summary(required, planned, float(sum(r.travel_seconds for r in routes)),
                      float(sum(r.distance_metres for r in routes)), round(est_s / tot_s, 4) if tot_s else 0.0)
    return Plan(routes, unassigned, summary)


def _geometry(p: Problem, veh: _Vehicle, seq: list[int], graphs: dict | None) -> dict | None:
    if not p.points:
        return None
    try:
        from gridmap.layers.travel import route_geometry

        G = (graphs or {}).get(veh.mode)
        if G is None:
            from gridmap.layers.roads import build_road_graph

            G = build_road_graph(mode="bike" if veh.mode == "ebike" else veh.mode)
        locs = [veh.start] + [p.visits[v].location for v in seq] + [veh.end]
        coords: list = []
        for a, b in zip(locs[:-1], locs[1:]):
            (xa, ya), (xb, yb) = p.points[a], p.points[b]
            line = route_geometry(G, xa, ya, xb, yb).geometry
            c = [list(map(float, xy)) for xy in line.coords]
            coords += c if not coords else c[1:]
        return {"type": "LineString", "coordinates": coords}
    except Exception:  # noqa: BLE001 - drawing is optional; the plan stands without it
        return None


__all__ = ["BASE_PENALTY", "PRIORITY_BASE", "solve"]
