"""Travel times and distances on the road graph, with flagged straight-line estimates off the network.

:func:`travel_matrix` computes many-to-many shortest paths with one
:func:`scipy.sparse.csgraph.dijkstra` call per block of sources on the graph's
CSR matrix. Each point joins the network where it snaps (see
:func:`gridmap.layers.roads.snap_points`): an access leg (straight distance to
the edge, at the mode's speed; walking speed for cars) plus the part of the
edge to its ``u`` or ``v`` end. For a pair where either point is ``far`` from
the network (or no path exists), the distance is the straight line times the
detour factor calibrated on the network (:func:`detour_factor`) and the pair
is flagged ``estimated``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from gridmap._errors import ValidationError
from gridmap.layers._osm_sources import to_utm, to_wgs
from gridmap.layers.roads import FAR_M, SPEED_KMH, _edge_index, snap_points

#: Detour factor used when a graph is too small to calibrate one (typical urban value).
DEFAULT_DETOUR = 1.3
_BLOCK = 128
_CSR: weakref.WeakKeyDictionary[nx.MultiDiGraph, dict[str, csr_matrix]] = weakref.WeakKeyDictionary()


@dataclass
class TravelMatrix:
    """Square travel matrices between points (row = from, column = to).

    Attributes
    ----------
    seconds
        Fastest travel time.
    metres
        Shortest network distance (including access legs).
    estimated
        True where the pair used the straight-line × detour estimate.
    mode
        The travel mode.
    detour
        The detour factor used for estimates.
    """

    seconds: np.ndarray
    metres: np.ndarray
    estimated: np.ndarray
    mode: str
    detour: float


@dataclass
class Route:
    """A drawn route: geometry (EPSG:4326), length in metres, and whether it is an estimate."""

    geometry: shapely.LineString
    metres: float
    estimated: bool

    def __iter__(self):  # allows ``line, metres = route_geometry(...)``
        return iter((self.geometry, self.metres))


def _csr(G: nx.MultiDiGraph, weight: str) -> csr_matrix:
    cache = _CSR.setdefault(G, {})
    if weight in cache:
        return cache[weight]
    idx = _edge_index(G)
    pos = idx.node_pos
    rows, cols, w = [], [], []
    for u, v, d in G.edges(data=True):
        rows.append(pos[u])
        cols.append(pos[v])
        w.append(d[weight])
    rows_a, cols_a, w_a = np.array(rows), np.array(cols), np.array(w, dtype=float)
    # parallel edges: keep the lightest (csr_matrix would add them up)
    order = np.lexsort((w_a, cols_a, rows_a))
    rows_a, cols_a, w_a = rows_a[order], cols_a[order], w_a[order]
    first = np.r_[True, (np.diff(rows_a) != 0) | (np.diff(cols_a) != 0)]
    n = len(idx.node_ids)
    w_a = np.maximum(w_a[first], 1e-9)  # csgraph drops explicit zeros
    m = csr_matrix((w_a, (rows_a[first], cols_a[first])), shape=(n, n))
    cache[weight] = m
    return m


def _edge_weight(G: nx.MultiDiGraph, u: np.ndarray, v: np.ndarray, k: np.ndarray, weight: str) -> np.ndarray:
    return np.array([G.edges[a, b, c][weight] for a, b, c in zip(u, v, k)], dtype=float)


def detour_factor(G: nx.MultiDiGraph, sample: int = 400, seed: int = 0, min_straight_m: float = 500.0) -> float:
    """Median ratio of network distance to straight-line distance between random node pairs.

    Parameters
    ----------
    G
        Road graph.
    sample
        Number of random origin nodes (each paired with ``sample`` random destinations).
    seed
        Random seed.
    min_straight_m
        Ignore pairs closer than this (short hops inflate the ratio).

    Returns
    -------
    float
        The factor (``DEFAULT_DETOUR`` if the graph is too small).
    """
    idx = _edge_index(G)
    n = len(idx.node_ids)
    if n < 10:
        return DEFAULT_DETOUR
    rng = np.random.default_rng(seed)
    src = rng.choice(n, size=min(sample // 4 or 1, n), replace=False)
    dst = rng.choice(n, size=min(sample, n), replace=False)
    D = dijkstra(_csr(G, "length"), directed=True, indices=src)[:, dst]
    xs = np.array([G.nodes[i]["x"] for i in idx.node_ids])
    ys = np.array([G.nodes[i]["y"] for i in idx.node_ids])
    x, y = to_utm(xs, ys)
    S = np.hypot(x[src][:, None] - x[dst][None, :], y[src][:, None] - y[dst][None, :])
    ok = (S >= min_straight_m) & np.isfinite(D)
    if ok.sum() < 20:
        return DEFAULT_DETOUR
    return float(np.median(D[ok] / S[ok]))


def _detour(G: nx.MultiDiGraph) -> float:
    f = G.graph.get("detour_factor")
    if f is None:
        f = detour_factor(G)
        G.graph["detour_factor"] = f
    return float(f)


def travel_matrix(
    G: nx.MultiDiGraph,
    lons: Sequence[float] | np.ndarray,
    lats: Sequence[float] | np.ndarray,
    mode: str | None = None,
    far_m: float = FAR_M,
) -> TravelMatrix:
    """Travel times and distances between all pairs of points.

    Parameters
    ----------
    G
        Road graph of the mode (from :func:`gridmap.layers.roads.build_road_graph`).
    lons, lats
        WGS84 coordinates of the points.
    mode
        Travel mode; default ``G.graph["mode"]``; the graph must carry
        ``travel_time_<mode>`` (a bike graph also carries ``ebike``).
    far_m
        Points farther than this from the network use straight-line estimates.

    Returns
    -------
    TravelMatrix
    """
    mode = mode or G.graph.get("mode", "walk")
    weight = f"travel_time_{mode}"
    sample = next(iter(G.edges(data=True)))[2]
    if weight not in sample:
        raise ValidationError(
            f"the {G.graph.get('mode')} graph has no travel times for mode {mode!r}",
            f"{G.graph.get('mode')} 路网没有“{mode}”方式的通行时间", field="mode", value=mode, code="mode",
        )
    snap = snap_points(G, lons, lats, far_m=far_m)
    idx = _edge_index(G)
    pos = idx.node_pos
    ui = np.array([pos[a] for a in snap.u], dtype=int)
    vi = np.array([pos[a] for a in snap.v], dtype=int)
    speed = SPEED_KMH[mode] / 3.6
    access_speed = SPEED_KMH["walk"] / 3.6 if mode == "car" else speed
    w_len = snap.edge_length
    w_time = _edge_weight(G, snap.u, snap.v, snap.key, weight)
    out = {}
    for name, w_edge, acc in (("metres", w_len, snap.distance_m), ("seconds", w_time, snap.distance_m / access_speed)):
        wt = "length" if name == "metres" else weight
        cu = acc + snap.position * w_edge  # point -> u end
        cv = acc + (1 - snap.position) * w_edge  # point -> v end
        M = _many_to_many(_csr(G, wt), ui, vi, cu, cv)
        # same edge: along the edge directly
        same = (snap.u[:, None] == snap.u[None, :]) & (snap.v[:, None] == snap.v[None, :]) & (
            snap.key[:, None] == snap.key[None, :])
        direct = acc[:, None] + acc[None, :] + np.abs(snap.position[:, None] - snap.position[None, :]) * w_edge[:, None]
        M = np.where(same, np.minimum(M, direct), M)
        out[name] = M
    straight = np.hypot(snap.x[:, None] - snap.x[None, :], snap.y[:, None] - snap.y[None, :])
    detour = _detour(G)
    est = snap.far[:, None] | snap.far[None, :] | ~np.isfinite(out["metres"]) | ~np.isfinite(out["seconds"])
    metres = np.where(est, straight * detour, out["metres"])
    seconds = np.where(est, straight * detour / speed, out["seconds"])
    zero = straight < 1e-6
    metres[zero] = 0.0
    seconds[zero] = 0.0
    est[zero] = False
    np.fill_diagonal(est, False)
    return TravelMatrix(seconds, metres, est, mode, detour)


def _many_to_many(A: csr_matrix, ui: np.ndarray, vi: np.ndarray, cu: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """min over origin end {u,v} and destination end {u,v} of cost + network + cost."""
    n = len(ui)
    nodes = np.unique(np.concatenate([ui, vi]))
    col_of = {c: i for i, c in enumerate(nodes)}
    uc = np.array([col_of[c] for c in ui])
    vc = np.array([col_of[c] for c in vi])
    D = np.empty((len(nodes), len(nodes)))
    for s in range(0, len(nodes), _BLOCK):
        block = nodes[s : s + _BLOCK]
        D[s : s + len(block)] = dijkstra(A, directed=True, indices=block)[:, nodes]
    best = np.full((n, n), np.inf)
    for oc, ocost in ((uc, cu), (vc, cv)):
        for dc, dcost in ((uc, cu), (vc, cv)):
            best = np.minimum(best, ocost[:, None] + D[np.ix_(oc, dc)] + dcost[None, :])
    return best


def route_geometry(
    G: nx.MultiDiGraph, lon_a: float, lat_a: float, lon_b: float, lat_b: float,
    weight: str = "length", far_m: float = FAR_M,
) -> Route:
    """The route between two points along the roads, for drawing.

    Parameters
    ----------
    G
        Road graph.
    lon_a, lat_a, lon_b, lat_b
        WGS84 coordinates of the start and the end.
    weight
        Edge attribute to minimise (``"length"`` or ``"travel_time_<mode>"``).
    far_m
        If either point is farther than this from the network the route is a
        straight line with length straight × detour factor, ``estimated=True``.

    Returns
    -------
    Route
        ``geometry`` (EPSG:4326 LineString: access leg, part of the first
        edge, the path, part of the last edge, access leg), ``metres``,
        ``estimated``. Unpacks as ``(geometry, metres)``.
    """
    snap = snap_points(G, [lon_a, lon_b], [lat_a, lat_b], far_m=far_m)
    ax, bx = snap.x
    ay, by = snap.y
    if snap.far.any():
        straight = float(np.hypot(bx - ax, by - ay))
        return Route(shapely.LineString([(lon_a, lat_a), (lon_b, lat_b)]), straight * _detour(G), True)
    idx = _edge_index(G)
    lines = []
    for i in range(2):
        e = idx.lines[np.flatnonzero((idx.u == snap.u[i]) & (idx.v == snap.v[i]) & (idx.key == snap.key[i]))[0]]
        lines.append(e)
    A = _csr(G, "length" if weight == "length" else weight)
    pos = idx.node_pos
    ends = [(snap.u[0], snap.position[0] * snap.edge_length[0]), (snap.v[0], (1 - snap.position[0]) * snap.edge_length[0])]
    tails = [(snap.u[1], snap.position[1] * snap.edge_length[1]), (snap.v[1], (1 - snap.position[1]) * snap.edge_length[1])]
    src = np.array([pos[n] for n, _ in ends])
    D, pred = dijkstra(A, directed=True, indices=src, return_predecessors=True)
    best = (np.inf, None, None)
    for si, (sn, sc) in enumerate(ends):
        for tn, tc in tails:
            c = sc + D[si, pos[tn]] + tc
            if c < best[0]:
                best = (c, si, tn)
    same_edge = snap.u[0] == snap.u[1] and snap.v[0] == snap.v[1] and snap.key[0] == snap.key[1]
    pa = shapely.Point(ax, ay)
    pb = shapely.Point(bx, by)
    from shapely.ops import substring

    if same_edge:
        d0 = snap.position[0] * snap.edge_length[0]
        d1 = snap.position[1] * snap.edge_length[1]
        if abs(d1 - d0) <= best[0]:
            mid = substring(lines[0], snap.position[0], snap.position[1], normalized=True)
            coords = [pa.coords[0], *shapely.get_coordinates(mid), pb.coords[0]]
            return _route_out(coords, snap.distance_m.sum() + abs(d1 - d0))
    if not np.isfinite(best[0]):
        straight = float(np.hypot(bx - ax, by - ay))
        return Route(shapely.LineString([(lon_a, lat_a), (lon_b, lat_b)]), straight * _detour(G), True)
    _, si, tn = best
    # node path
    path = [pos[tn]]
    while path[-1] != src[si]:
        path.append(pred[si, path[-1]])
    path = [idx.node_ids[i] for i in reversed(path)]
    coords: list = [pa.coords[0]]
    first = substring(lines[0], snap.position[0], 0.0 if si == 0 else 1.0, normalized=True)
    coords += list(shapely.get_coordinates(first))
    length = snap.distance_m[0] + (ends[si][1])
    for a, b in zip(path[:-1], path[1:]):
        data = min(G[a][b].values(), key=lambda d: d[weight])
        c = shapely.get_coordinates(data["geometry"])
        x, y = to_utm(c[:, 0], c[:, 1])
        coords += list(zip(x, y))
        length += data["length"]
    last = substring(lines[1], 0.0 if tn == snap.u[1] else 1.0, snap.position[1], normalized=True)
    coords += list(shapely.get_coordinates(last))
    coords.append(pb.coords[0])
    length += snap.distance_m[1] + (tails[0][1] if tn == snap.u[1] else tails[1][1])
    return _route_out(coords, float(length))


def _route_out(coords: list, metres: float) -> Route:
    c = np.asarray(coords, dtype=float)
    keep = np.r_[True, np.hypot(np.diff(c[:, 0]), np.diff(c[:, 1])) > 1e-6]
    c = c[keep]
    if len(c) < 2:
        c = np.vstack([c, c])
    lon, lat = to_wgs(c[:, 0], c[:, 1])
    return Route(shapely.LineString(np.column_stack([lon, lat])), float(metres), False)


__all__ = ["DEFAULT_DETOUR", "Route", "TravelMatrix", "detour_factor", "route_geometry", "travel_matrix"]
