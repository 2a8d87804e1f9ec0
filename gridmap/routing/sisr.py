"""Slack induction by string removals (SISR): ruin and recreate over one day's routes.

OR-Tools' guided local search stalls on problems with time windows: where it ends
depends much on its first solution, and more time helps little. OR-Tools has an iterated
local search with ruin and recreate, but its Python build accepts the parameters without
running it. This module supplies that perturbation (Christiaens & Vanden Berghe, "Slack
induction by string removals for vehicle routing problems", Transportation Science 2020):

* **ruin**: pick a random routed visit; walk its nearest neighbours and, in each route met
  (up to a random number of routes), remove a random string of consecutive visits that
  contains the neighbour;
* **recreate**: put the removed visits — and any still unassigned — back one by one, in a
  random, far-first or demand-first order, each at its cheapest feasible position over all
  routes, skipping each position with a small probability ("blinks");
* **accept** by simulated annealing on the travel cost; a candidate that leaves a visit out
  costs that visit's drop penalty, so penalties (priorities) come first: a candidate with
  more penalty is never accepted, one with less always is.

Over a week (:func:`_run_week`) a removed visit loses all its copies and comes back on its
cheapest allowed day pattern; the recreate order may also be "shortest service first" or
"cheapest to put back first". While visits are left out, the search can run with SISR's
absence rule (visits left out less often so far may displace others of no higher priority:
finding which visits fit), or without it, when a candidate of the same penalty is judged on
its travel (which visits of one priority a full week leaves out is decided by walking time).

Feasibility is exact: time windows (several per visit), the shift, working minutes (travel
+ service) and capacity are checked by simulating the route from the insertion point. The
core is compiled with numba (cached on disk); without numba it runs as plain Python, slowly.
Iterations run in chunks so that the caller can keep a wall-clock limit; for a fixed number
of iterations and a seed the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # pragma: no cover - numba is a dependency; the fallback keeps the module importable
    from numba import njit
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):  # type: ignore[no-redef]
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


@dataclass
class DayArrays:
    """One day's routing problem in local indices (routes = vehicles, visits = nodes 0..n-1).

    ``T[mode]``/``C[mode]`` are over local locations: ``loc_visit[v]`` for visit ``v``,
    ``loc_start[r]``/``loc_end[r]`` for route ``r``.
    """

    T: np.ndarray  # (modes, locs, locs) int64 seconds
    C: np.ndarray  # (modes, locs, locs) float64 cost
    route_mode: np.ndarray  # (R,) int64
    loc_start: np.ndarray  # (R,)
    loc_end: np.ndarray  # (R,)
    shift_lo: np.ndarray  # (R,) int64
    shift_hi: np.ndarray  # (R,)
    max_work: np.ndarray  # (R,) int64
    capacity: np.ndarray  # (R,) float64
    loc_visit: np.ndarray  # (n,)
    service: np.ndarray  # (n,) int64
    demand: np.ndarray  # (n,) float64
    wlo: np.ndarray  # (n, W) int64 window starts (clipped to nothing outside a shift)
    whi: np.ndarray  # (n, W)
    nwin: np.ndarray  # (n,) int64, 0 = no window (the shift only)
    eligible: np.ndarray  # (n, R) bool
    penalty: np.ndarray  # (n,) float64 drop penalty (cost units)
    near: np.ndarray  # (n, K) int64 nearest visits


@njit(cache=True)
def _earliest(v, t, wlo, whi, nwin):
    """Earliest start >= t within visit v's windows, or -1."""
    if nwin[v] == 0:
        return t
    for w in range(nwin[v]):
        if t <= whi[v, w]:
            return t if t >= wlo[v, w] else wlo[v, w]
    return -1


@njit(cache=True)
def _eval_route(r, nodes, ln, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi, loc_visit, service,
                wlo, whi, nwin, E):
    """Fill E[0..ln-1] with earliest starts; return (feasible, cost, work)."""
    md = route_mode[r]
    t = shift_lo[r]
    prev = loc_start[r]
    prev_s = 0
    cost = 0.0
    work = 0
    ok = True
    for i in range(ln):
        v = nodes[i]
        lv = loc_visit[v]
        a = t + prev_s + T[md, prev, lv]
        e = _earliest(v, a, wlo, whi, nwin)
        if e < 0 or e > shift_hi[r]:
            ok = False
            e = a
        E[i] = e
        cost += C[md, prev, lv]
        work += T[md, prev, lv] + service[v]
        t = e
        prev = lv
        prev_s = service[v]
    a = t + prev_s + T[md, prev, loc_end[r]]
    if a > shift_hi[r]:
        ok = False
    cost += C[md, prev, loc_end[r]]
    work += T[md, prev, loc_end[r]]
    return ok, cost, work


@njit(cache=True)
def _fits(r, nodes, ln, pos, v, E, T, route_mode, loc_start, loc_end, shift_lo, shift_hi, loc_visit, service,
          wlo, whi, nwin):
    """Exact check: does visit v fit at position pos (before nodes[pos]) of route r?"""
    md = route_mode[r]
    if pos == 0:
        t = shift_lo[r]
        prev = loc_start[r]
        prev_s = 0
    else:
        t = E[pos - 1]
        prev = loc_visit[nodes[pos - 1]]
        prev_s = service[nodes[pos - 1]]
    lv = loc_visit[v]
    a = t + prev_s + T[md, prev, lv]
    e = _earliest(v, a, wlo, whi, nwin)
    if e < 0 or e > shift_hi[r]:
        return False
    t = e
    prev = lv
    prev_s = service[v]
    for i in range(pos, ln):
        u = nodes[i]
        lu = loc_visit[u]
        a = t + prev_s + T[md, prev, lu]
        if a <= E[i]:
            return True  # arrives no later than before: the rest of the route is unchanged
        e = _earliest(u, a, wlo, whi, nwin)
        if e < 0 or e > shift_hi[r]:
            return False
        t = e
        prev = lu
        prev_s = service[u]
    return t + prev_s + T[md, prev, loc_end[r]] <= shift_hi[r]


@njit(cache=True)
def _best_insertion(v, routes, lens, E, loads, works, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
                    max_work, capacity, loc_visit, service, demand, wlo, whi, nwin, eligible, blink, route_day, day):
    """(route, position, cost delta) of the cheapest feasible insertion of v (on routes of ``day``; -1: any)."""
    best_r = -1
    best_p = -1
    best_d = np.inf
    lv = loc_visit[v]
    for r in range(routes.shape[0]):
        if day >= 0 and route_day[r] != day:
            continue
        if not eligible[v, r] or loads[r] + demand[v] > capacity[r]:
            continue
        md = route_mode[r]
        ln = lens[r]
        for p in range(ln + 1):
            if blink > 0.0 and np.random.random() < blink:
                continue
            a = loc_start[r] if p == 0 else loc_visit[routes[r, p - 1]]
            b = loc_end[r] if p == ln else loc_visit[routes[r, p]]
            d = C[md, a, lv] + C[md, lv, b] - C[md, a, b]
            if d >= best_d:
                continue
            dw = T[md, a, lv] + T[md, lv, b] - T[md, a, b] + service[v]
            if works[r] + dw > max_work[r]:
                continue
            if _fits(r, routes[r], ln, p, v, E[r], T, route_mode, loc_start, loc_end, shift_lo, shift_hi, loc_visit,
                     service, wlo, whi, nwin):
                best_r, best_p, best_d = r, p, d
    return best_r, best_p, best_d


@njit(cache=True)
def _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
             loc_visit, service, demand, wlo, whi, nwin):
    ok, c, w = _eval_route(r, routes[r], lens[r], T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
                           loc_visit, service, wlo, whi, nwin, E[r])
    costs[r] = c
    works[r] = w
    feas[r] = ok and w <= max_work[r]
    ld = 0.0
    for i in range(lens[r]):
        ld += demand[routes[r, i]]
    loads[r] = ld
    return ok


#: Unassigned visits offered to the recreate step per iteration (the highest priorities, random within one):
#: an overloaded day or week can leave hundreds out, and trying them all every time slows the search.
UNASSIGNED_PER_ITERATION = 16


@njit(cache=True)
def _best_pattern(v, k, routes, lens, E, loads, works, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
                  max_work, capacity, loc_visit, service, demand, wlo, whi, nwin, eligible, blink, route_day, pat_days,
                  pat_ptr, best_rs, best_ps, cand_rs, cand_ps):
    """The allowed day pattern of v whose copies fit most (then cheapest); fills ``best_rs``/``best_ps``
    (route, position per copy, -1 where a copy does not fit) and returns (copies that fit, their cost)."""
    best_ok = 0
    best_total = np.inf
    for q in range(pat_ptr[v], pat_ptr[v + 1]):
        total_d = 0.0
        n_ok = 0
        for j in range(k):
            r, p, d = _best_insertion(v, routes, lens, E, loads, works, T, C, route_mode, loc_start, loc_end,
                                      shift_lo, shift_hi, max_work, capacity, loc_visit, service, demand, wlo,
                                      whi, nwin, eligible, blink, route_day, pat_days[q, j])
            cand_rs[j] = r
            cand_ps[j] = p
            if r >= 0:
                total_d += d
                n_ok += 1
        if n_ok > best_ok or (n_ok == best_ok and n_ok > 0 and total_d < best_total):
            best_ok = n_ok
            best_total = total_d
            for j in range(k):
                best_rs[j] = cand_rs[j]
                best_ps[j] = cand_ps[j]
    return best_ok, best_total


@njit(cache=True)
def _pick(cands, m, penalty, cap):
    """At most ``cap`` of ``cands[:m]``: highest penalty first, random among equals."""
    if m <= cap:
        return cands[:m].copy()
    sub = cands[:m].copy()
    np.random.shuffle(sub)
    keys = np.empty(m)
    for i in range(m):
        keys[i] = -penalty[sub[i]]
    sub = sub[np.argsort(keys, kind="mergesort")]
    return sub[:cap].copy()


@njit(cache=True)
def _run(T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi, max_work, capacity, loc_visit, service, demand,
         wlo, whi, nwin, eligible, penalty, near, routes, lens, iters, temp0, temp1, seed, avg_removed, max_string,
         blink):
    """Run ``iters`` SISR iterations from (routes, lens); returns the best (routes, lens, iterations accepted)."""
    np.random.seed(seed)
    R = routes.shape[0]
    n = loc_visit.shape[0]
    route_day0 = np.zeros(R, dtype=np.int64)
    E = np.zeros((R, n + 1), dtype=np.int64)
    costs = np.zeros(R)
    works = np.zeros(R, dtype=np.int64)
    loads = np.zeros(R)
    feas = np.ones(R, dtype=np.bool_)
    route_of = np.full(n, -1, dtype=np.int64)
    for r in range(R):
        _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
                 loc_visit, service, demand, wlo, whi, nwin)
        for i in range(lens[r]):
            route_of[routes[r, i]] = r
    pen = 0.0
    for v in range(n):
        if route_of[v] < 0:
            pen += penalty[v]
    cur_feas = feas.copy()
    cur_routes = routes.copy()
    cur_lens = lens.copy()
    cur_cost = costs.sum()
    cur_pen = pen
    best_routes = routes.copy()
    best_lens = lens.copy()
    best_cost = cur_cost
    best_pen = cur_pen
    removed = np.zeros(n, dtype=np.int64)
    todo = np.zeros(n, dtype=np.int64)
    extra = np.zeros(n, dtype=np.int64)
    ruined = np.zeros(R, dtype=np.bool_)
    accepted = 0
    total_len = 0
    n_routes = 0
    for r in range(R):
        if lens[r] > 0:
            total_len += lens[r]
            n_routes += 1
    for it in range(iters):
        temp = temp0 * (temp1 / temp0) ** (it / max(iters, 1))
        # ---------------- ruin
        n_removed = 0
        routed = 0
        for v in range(n):
            if route_of[v] >= 0:
                routed += 1
        ruined[:] = False
        if routed > 0:
            avg_len = max(1.0, routed / max(1, n_routes))
            ls_max = min(float(max_string), avg_len)
            ks_max = 4.0 * avg_removed / (1.0 + ls_max) - 1.0
            k_routes = int(np.random.random() * max(ks_max, 1.0)) + 1
            # a random routed seed visit
            pick = int(np.random.random() * routed)
            seed_v = -1
            for v in range(n):
                if route_of[v] >= 0:
                    if pick == 0:
                        seed_v = v
                        break
                    pick -= 1
            done_routes = 0
            for j in range(-1, near.shape[1]):
                if done_routes >= k_routes:
                    break
                c = seed_v if j < 0 else near[seed_v, j]
                if c < 0:
                    continue
                r = route_of[c]
                if r < 0 or ruined[r]:
                    continue
                ln = lens[r]
                lmax = min(ls_max, float(ln))
                size = int(np.random.random() * lmax) + 1
                p = 0
                for i in range(ln):
                    if routes[r, i] == c:
                        p = i
                        break
                lo_min = max(0, p - size + 1)
                lo_max = min(p, ln - size)
                lo = lo_min + int(np.random.random() * (lo_max - lo_min + 1))
                for i in range(lo, lo + size):
                    u = routes[r, i]
                    removed[n_removed] = u
                    n_removed += 1
                    route_of[u] = -1
                for i in range(lo + size, ln):
                    routes[r, i - size] = routes[r, i]
                lens[r] = ln - size
                ruined[r] = True
                done_routes += 1
                _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo,
                         shift_hi, loc_visit, service, demand, wlo, whi, nwin)
        # ---------------- recreate: removed visits and every unassigned one
        m = 0
        for i in range(n_removed):
            todo[m] = removed[i]
            m += 1
        n_extra = 0
        for v in range(n):
            if route_of[v] < 0:
                found = False
                for i in range(n_removed):
                    if removed[i] == v:
                        found = True
                        break
                if not found:
                    extra[n_extra] = v
                    n_extra += 1
        picked = _pick(extra, n_extra, penalty, UNASSIGNED_PER_ITERATION)
        for i in range(picked.shape[0]):
            todo[m] = picked[i]
            m += 1
        order = todo[:m].copy()
        kind = np.random.random()
        if kind < 0.4:
            np.random.shuffle(order)
        elif kind < 0.8:  # largest demand first (ties random)
            np.random.shuffle(order)
            keys = np.empty(m)
            for i in range(m):
                keys[i] = -demand[order[i]]
            order = order[np.argsort(keys, kind="mergesort")]
        else:  # farthest from the routes' starts first
            np.random.shuffle(order)
            keys = np.empty(m)
            for i in range(m):
                keys[i] = -C[route_mode[0], loc_start[0], loc_visit[order[i]]]
            order = order[np.argsort(keys, kind="mergesort")]
        # higher drop penalty first, keeping the order within a penalty class
        keys = np.empty(m)
        for i in range(m):
            keys[i] = -penalty[order[i]]
        order = order[np.argsort(keys, kind="mergesort")]
        pen = 0.0
        for i in range(m):
            v = order[i]
            r, p, d = _best_insertion(v, routes, lens, E, loads, works, T, C, route_mode, loc_start, loc_end,
                                      shift_lo, shift_hi, max_work, capacity, loc_visit, service, demand, wlo, whi,
                                      nwin, eligible, blink, route_day0, -1)
            if r < 0:
                pen += penalty[v]
                continue
            ln = lens[r]
            for k in range(ln, p, -1):
                routes[r, k] = routes[r, k - 1]
            routes[r, p] = v
            lens[r] = ln + 1
            route_of[v] = r
            _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo,
                     shift_hi, loc_visit, service, demand, wlo, whi, nwin)
        cost = costs.sum()
        # ---------------- accept
        if pen < cur_pen - 1e-9:
            ok = True
        elif pen > cur_pen + 1e-9:
            ok = False
        else:
            ok = cost < cur_cost - temp * np.log(np.random.random())
        if ok:
            for r in range(R):
                if cur_feas[r] and not feas[r]:
                    ok = False  # a non-metric matrix: a removal made a route late (it stays as it was)
                    break
        if ok:
            accepted += 1
            cur_feas[:] = feas
            cur_routes[:, :] = routes
            cur_lens[:] = lens
            cur_cost = cost
            cur_pen = pen
            n_routes = 0
            for r in range(R):
                if lens[r] > 0:
                    n_routes += 1
            if pen < best_pen - 1e-9 or (pen <= best_pen + 1e-9 and cost < best_cost - 1e-9):
                best_routes[:, :] = routes
                best_lens[:] = lens
                best_cost = cost
                best_pen = pen
        else:
            routes[:, :] = cur_routes
            lens[:] = cur_lens
            for v in range(n):
                route_of[v] = -1
            for r in range(R):
                _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo,
                         shift_hi, loc_visit, service, demand, wlo, whi, nwin)
                for i in range(lens[r]):
                    route_of[routes[r, i]] = r
    return best_routes, best_lens, accepted, best_cost, best_pen


@njit(cache=True)
def _remove_at(r, i, routes, lens):
    ln = lens[r]
    for k in range(i + 1, ln):
        routes[r, k - 1] = routes[r, k]
    lens[r] = ln - 1


@njit(cache=True)
def _insert_at(r, p, v, routes, lens):
    ln = lens[r]
    for k in range(ln, p, -1):
        routes[r, k] = routes[r, k - 1]
    routes[r, p] = v
    lens[r] = ln + 1


@njit(cache=True)
def _run_week(T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi, max_work, capacity, loc_visit, service,
              demand, wlo, whi, nwin, eligible, penalty, near, route_day, count, pat_days, pat_ptr, routes, lens,
              iters, temp0, temp1, seed, avg_removed, max_string, blink, absence_rule):
    """SISR over a week: a removed visit loses all its copies and comes back with its cheapest day pattern."""
    np.random.seed(seed)
    R = routes.shape[0]
    n = loc_visit.shape[0]
    E = np.zeros((R, routes.shape[1]), dtype=np.int64)
    costs = np.zeros(R)
    works = np.zeros(R, dtype=np.int64)
    loads = np.zeros(R)
    feas = np.ones(R, dtype=np.bool_)
    placed = np.zeros(n, dtype=np.bool_)
    for r in range(R):
        _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi,
                 loc_visit, service, demand, wlo, whi, nwin)
        for i in range(lens[r]):
            placed[routes[r, i]] = True
    copies = np.zeros(n, dtype=np.int64)
    for r in range(R):
        for i in range(lens[r]):
            copies[routes[r, i]] += 1
    cur_pen = 0.0
    for v in range(n):
        cur_pen += penalty[v] * max(count[v] - copies[v], 0)
    absence = np.zeros(n)
    cur_abs = 0.0
    cur_max_missing = 0.0
    for v in range(n):
        if copies[v] < count[v] and penalty[v] > cur_max_missing:
            cur_max_missing = penalty[v]
    cur_feas = feas.copy()
    cur_routes = routes.copy()
    cur_lens = lens.copy()
    cur_cost = costs.sum()
    best_routes = routes.copy()
    best_lens = lens.copy()
    best_cost = cur_cost
    best_pen = cur_pen
    removed = np.zeros(n, dtype=np.int64)
    is_removed = np.zeros(n, dtype=np.bool_)
    ruined = np.zeros(R, dtype=np.bool_)
    maxk = pat_days.shape[1]
    best_rs = np.zeros(maxk, dtype=np.int64)
    best_ps = np.zeros(maxk, dtype=np.int64)
    cand_rs = np.zeros(maxk, dtype=np.int64)
    cand_ps = np.zeros(maxk, dtype=np.int64)
    accepted = 0
    for it in range(iters):
        temp = temp0 * (temp1 / temp0) ** (it / max(iters, 1))
        # ---------------- ruin
        n_removed = 0
        ruined[:] = False
        routed = 0
        used = 0
        total = 0
        for r in range(R):
            if lens[r] > 0:
                used += 1
                total += lens[r]
        for v in range(n):
            if placed[v]:
                routed += 1
        if routed > 0:
            avg_len = max(1.0, total / max(1, used))
            ls_max = min(float(max_string), avg_len)
            ks_max = 4.0 * avg_removed / (1.0 + ls_max) - 1.0
            k_routes = int(np.random.random() * max(ks_max, 1.0)) + 1
            pick = int(np.random.random() * routed)
            seed_v = -1
            for v in range(n):
                if placed[v]:
                    if pick == 0:
                        seed_v = v
                        break
                    pick -= 1
            done_routes = 0
            for j in range(-1, near.shape[1]):
                if done_routes >= k_routes:
                    break
                c = seed_v if j < 0 else near[seed_v, j]
                if c < 0 or not placed[c] or is_removed[c]:
                    continue
                # a random route holding c that is not ruined yet
                n_hold = 0
                r = -1
                for rr in range(R):
                    if ruined[rr]:
                        continue
                    for i in range(lens[rr]):
                        if routes[rr, i] == c:
                            n_hold += 1
                            if np.random.random() * n_hold < 1.0:
                                r = rr
                            break
                if r < 0:
                    continue
                ln = lens[r]
                lmax = min(ls_max, float(ln))
                size = int(np.random.random() * lmax) + 1
                p = 0
                for i in range(ln):
                    if routes[r, i] == c:
                        p = i
                        break
                lo_min = max(0, p - size + 1)
                lo_max = min(p, ln - size)
                lo = lo_min + int(np.random.random() * (lo_max - lo_min + 1))
                for i in range(lo, lo + size):
                    u = routes[r, i]
                    if not is_removed[u]:
                        is_removed[u] = True
                        removed[n_removed] = u
                        n_removed += 1
                ruined[r] = True
                done_routes += 1
            # visits placed on fewer days than they need are taken out too (they come back whole or as
            # many copies as fit)
            copies[:] = 0
            for r in range(R):
                for i in range(lens[r]):
                    copies[routes[r, i]] += 1
            for v in range(n):
                if 0 < copies[v] < count[v] and not is_removed[v]:
                    is_removed[v] = True
                    removed[n_removed] = v
                    n_removed += 1
            # take every copy of the removed visits out of every route
            for r in range(R):
                k = 0
                changed = False
                for i in range(lens[r]):
                    u = routes[r, i]
                    if is_removed[u]:
                        changed = True
                    else:
                        routes[r, k] = u
                        k += 1
                if changed:
                    lens[r] = k
                    _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo,
                             shift_hi, loc_visit, service, demand, wlo, whi, nwin)
            for i in range(n_removed):
                placed[removed[i]] = False
        # ---------------- recreate: the removed visits and every unassigned one, best pattern each
        m = 0
        todo = np.zeros(n, dtype=np.int64)
        for i in range(n_removed):
            todo[m] = removed[i]
            m += 1
        n_extra = 0
        extra = np.zeros(n, dtype=np.int64)
        for v in range(n):
            if not placed[v] and not is_removed[v]:
                extra[n_extra] = v
                n_extra += 1
        picked = _pick(extra, n_extra, penalty, UNASSIGNED_PER_ITERATION)
        for i in range(picked.shape[0]):
            todo[m] = picked[i]
            m += 1
        for i in range(n_removed):
            is_removed[removed[i]] = False
        order = todo[:m].copy()
        np.random.shuffle(order)
        kind = np.random.random()
        if kind >= 0.2:
            keys = np.empty(m)
            for i in range(m):
                v = order[i]
                if kind < 0.4:  # most demand first
                    keys[i] = -demand[v] * count[v]
                elif kind < 0.6:  # shortest service first (a full week packs more of them)
                    keys[i] = service[v] * count[v]
                elif kind < 0.8:  # cheapest to put back first (as the routes stand after the ruin)
                    n_ok, d = _best_pattern(v, count[v], routes, lens, E, loads, works, T, C, route_mode,
                                            loc_start, loc_end, shift_lo, shift_hi, max_work, capacity, loc_visit,
                                            service, demand, wlo, whi, nwin, eligible, 0.0, route_day, pat_days,
                                            pat_ptr, best_rs, best_ps, cand_rs, cand_ps)
                    keys[i] = -1e12 * n_ok + (d / n_ok if n_ok > 0 else 0.0)
                else:  # farthest from the routes' starts first
                    keys[i] = -C[route_mode[0], loc_start[0], loc_visit[v]]
            order = order[np.argsort(keys, kind="mergesort")]
        if np.random.random() < 0.5:  # the visits most often left out first
            keys = np.empty(m)
            for i in range(m):
                keys[i] = -absence[order[i]]
            order = order[np.argsort(keys, kind="mergesort")]
        # higher drop penalty (of one copy) first, keeping the order within a penalty class
        keys = np.empty(m)
        for i in range(m):
            keys[i] = -penalty[order[i]]
        order = order[np.argsort(keys, kind="mergesort")]
        pen = 0.0
        abs_sum = 0.0
        max_missing = 0.0
        for i in range(m):
            v = order[i]
            k = count[v]
            best_ok, best_total = _best_pattern(v, k, routes, lens, E, loads, works, T, C, route_mode, loc_start,
                                                loc_end, shift_lo, shift_hi, max_work, capacity, loc_visit, service,
                                                demand, wlo, whi, nwin, eligible, blink, route_day, pat_days, pat_ptr,
                                                best_rs, best_ps, cand_rs, cand_ps)
            pen += penalty[v] * (k - best_ok)
            if best_ok < k:
                abs_sum += absence[v]
                if penalty[v] > max_missing:
                    max_missing = penalty[v]
            if best_ok == 0:
                continue
            for j in range(k):
                if best_rs[j] >= 0:
                    _insert_at(best_rs[j], best_ps[j], v, routes, lens)
                    _refresh(best_rs[j], routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end,
                             shift_lo, shift_hi, loc_visit, service, demand, wlo, whi, nwin)
            placed[v] = True
        # the penalty of the candidate: every missing copy of every visit
        copies[:] = 0
        for r in range(R):
            for i in range(lens[r]):
                copies[routes[r, i]] += 1
        pen = 0.0
        abs_sum = 0.0
        max_missing = 0.0
        for v in range(n):
            if copies[v] < count[v]:
                pen += penalty[v] * (count[v] - copies[v])
                abs_sum += absence[v]
                if penalty[v] > max_missing:
                    max_missing = penalty[v]
        cost = costs.sum()
        # ---------------- accept: less penalty always; the same penalty with visits left out less often
        # before (absence counters, as in SISR's fleet minimisation); else simulated annealing on cost
        tol = 1e-9 * max(1.0, cur_pen)
        if pen < cur_pen - tol:
            ok = True
        elif absence_rule and cur_pen > 0 and abs_sum < cur_abs - 1e-9 and max_missing <= cur_max_missing:
            # SISR's absence rule: visits left out less often before, even if more of them (of no higher
            # priority than those left out now); the best solution is kept apart, penalty first
            ok = True
        elif pen > cur_pen + tol:
            ok = False
        elif absence_rule and pen > 0 and abs_sum > cur_abs + 1e-9:
            ok = False
        else:
            # the same penalty (without the absence rule: which visits of one priority an overloaded
            # week leaves out is decided by travel), simulated annealing
            ok = cost < cur_cost - temp * np.log(np.random.random())
        if ok:
            for r in range(R):
                if cur_feas[r] and not feas[r]:
                    ok = False  # a non-metric matrix: a removal made a route late (it stays as it was)
                    break
        if ok:
            accepted += 1
            cur_feas[:] = feas
            cur_routes[:, :] = routes
            cur_lens[:] = lens
            cur_cost = cost
            cur_pen = pen
            cur_abs = abs_sum
            cur_max_missing = max_missing
            if pen < best_pen - 1e-9 or (pen <= best_pen + 1e-9 and cost < best_cost - 1e-9):
                best_routes[:, :] = routes
                best_lens[:] = lens
                best_cost = cost
                best_pen = pen
        else:
            routes[:, :] = cur_routes
            lens[:] = cur_lens
            placed[:] = False
            for r in range(R):
                _refresh(r, routes, lens, E, costs, works, loads, feas, max_work, T, C, route_mode, loc_start, loc_end, shift_lo,
                         shift_hi, loc_visit, service, demand, wlo, whi, nwin)
                for i in range(lens[r]):
                    placed[routes[r, i]] = True
        if cur_pen > 0:
            copies[:] = 0
            for r in range(R):
                for i in range(lens[r]):
                    copies[routes[r, i]] += 1
            cur_abs = 0.0
            for v in range(n):
                if copies[v] < count[v]:
                    absence[v] += 1.0
                    cur_abs += absence[v]
    return best_routes, best_lens, accepted, best_cost, best_pen


@njit(cache=True)
def route_costs(T, C, route_mode, loc_start, loc_end, shift_lo, shift_hi, loc_visit, service, wlo, whi, nwin,
                routes, lens):
    """(feasible per route, cost per route, work per route) of the given routes."""
    R = routes.shape[0]
    n = loc_visit.shape[0]
    E = np.zeros(n + 1, dtype=np.int64)
    ok = np.zeros(R, dtype=np.bool_)
    cost = np.zeros(R)
    work = np.zeros(R, dtype=np.int64)
    for r in range(R):
        ok[r], cost[r], work[r] = _eval_route(r, routes[r], lens[r], T, C, route_mode, loc_start, loc_end, shift_lo,
                                              shift_hi, loc_visit, service, wlo, whi, nwin, E)
    return ok, cost, work


@dataclass
class WeekArrays(DayArrays):
    """A week: routes are steward-days (``route_day``); visit ``v`` needs ``count[v]`` copies on the
    days of one of its patterns ``pat_days[pat_ptr[v]:pat_ptr[v + 1], :count[v]]``."""

    route_day: np.ndarray = None  # (R,) int64
    count: np.ndarray = None  # (n,) int64
    pat_days: np.ndarray = None  # (P, maxk) int64
    pat_ptr: np.ndarray = None  # (n + 1,) int64


class Search:
    """A SISR search over one day's routes (or a week's, with :class:`WeekArrays`), advanced in chunks."""

    def __init__(self, day: DayArrays, seqs: list[list[int]], seed: int = 0, avg_removed: float = 10.0,
                 max_string: int = 10, blink: float = 0.01) -> None:
        self.day = day
        n, R = len(day.loc_visit), len(day.loc_start)
        self.routes = np.full((R, max(n, 1) + 1), -1, dtype=np.int64)
        self.lens = np.zeros(R, dtype=np.int64)
        for r, s in enumerate(seqs):
            self.routes[r, : len(s)] = s
            self.lens[r] = len(s)
        self.seed = int(seed)
        self.avg_removed, self.max_string, self.blink = float(avg_removed), int(max_string), float(blink)
        self.iterations = 0
        self.accepted = 0
        self.cost, self.penalty = self._evaluate()

    def _evaluate(self) -> tuple[float, float]:
        d = self.day
        ok, cost, _ = route_costs(d.T, d.C, d.route_mode, d.loc_start, d.loc_end, d.shift_lo, d.shift_hi, d.loc_visit,
                                  d.service, d.wlo, d.whi, d.nwin, self.routes, self.lens)
        copies = np.zeros(len(d.loc_visit), dtype=np.int64)
        for r in range(len(self.lens)):
            np.add.at(copies, self.routes[r, : self.lens[r]], 1)
        need = d.count if isinstance(d, WeekArrays) else np.ones(len(copies), dtype=np.int64)
        return float(cost.sum()), float((d.penalty * np.maximum(need - copies, 0)).sum())

    def run(self, iterations: int, temp0: float, temp1: float, absence_rule: bool = True) -> None:
        """Advance by ``iterations`` from the best routes so far, cooling from ``temp0`` to ``temp1``.

        ``absence_rule`` (a week only): while visits are left out, also accept a candidate that leaves out
        visits left out less often so far (SISR's fleet minimisation); without it a candidate of the same
        penalty is judged on its travel."""
        d = self.day
        self.seed = (self.seed * 1_000_003 + 7) % (2**31 - 1)
        if isinstance(d, WeekArrays):
            routes, lens, acc, cost, pen = _run_week(
                d.T, d.C, d.route_mode, d.loc_start, d.loc_end, d.shift_lo, d.shift_hi, d.max_work, d.capacity,
                d.loc_visit, d.service, d.demand, d.wlo, d.whi, d.nwin, d.eligible, d.penalty, d.near, d.route_day,
                d.count, d.pat_days, d.pat_ptr, self.routes.copy(), self.lens.copy(), int(iterations), float(temp0),
                float(max(temp1, 1e-9)), self.seed, self.avg_removed, self.max_string, self.blink, absence_rule)
        else:
            routes, lens, acc, cost, pen = _run(
                d.T, d.C, d.route_mode, d.loc_start, d.loc_end, d.shift_lo, d.shift_hi, d.max_work, d.capacity,
                d.loc_visit, d.service, d.demand, d.wlo, d.whi, d.nwin, d.eligible, d.penalty, d.near,
                self.routes.copy(), self.lens.copy(), int(iterations), float(temp0), float(max(temp1, 1e-9)),
                self.seed, self.avg_removed, self.max_string, self.blink)
        self.iterations += int(iterations)
        self.accepted += int(acc)
        if pen < self.penalty - 1e-9 or (pen <= self.penalty + 1e-9 and cost < self.cost - 1e-9):
            self.routes, self.lens, self.cost, self.penalty = routes, lens, float(cost), float(pen)

    def seqs(self) -> list[list[int]]:
        return [list(map(int, self.routes[r, : self.lens[r]])) for r in range(len(self.lens))]



_WARM = False


def warm_up() -> None:
    """Load (or, the first time ever, compile) the search once in this process."""
    global _WARM
    if _WARM:
        return
    z = np.zeros
    day = DayArrays(T=z((1, 3, 3), dtype=np.int64), C=np.ones((1, 3, 3)), route_mode=z(1, dtype=np.int64),
                    loc_start=z(1, dtype=np.int64), loc_end=z(1, dtype=np.int64), shift_lo=z(1, dtype=np.int64),
                    shift_hi=np.full(1, 1000, dtype=np.int64), max_work=np.full(1, 1000, dtype=np.int64),
                    capacity=np.full(1, 10.0), loc_visit=np.array([1, 2], dtype=np.int64),
                    service=z(2, dtype=np.int64), demand=z(2), wlo=z((2, 1), dtype=np.int64),
                    whi=z((2, 1), dtype=np.int64), nwin=z(2, dtype=np.int64), eligible=np.ones((2, 1), dtype=bool),
                    penalty=np.ones(2), near=np.array([[1], [0]], dtype=np.int64))
    Search(day, [[0, 1]]).run(5, 1.0, 0.1)
    week = WeekArrays(**{f: getattr(day, f) for f in day.__dataclass_fields__}, route_day=z(1, dtype=np.int64),
                      count=np.ones(2, dtype=np.int64), pat_days=z((2, 1), dtype=np.int64),
                      pat_ptr=np.array([0, 1, 2], dtype=np.int64))
    Search(week, [[0, 1]]).run(5, 1.0, 0.1)
    _WARM = True


__all__ = ["DayArrays", "Search", "WeekArrays", "route_costs", "warm_up"]
