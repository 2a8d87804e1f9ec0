"""Travel matrices of a planning problem: the given matrix, or road-network times per travel mode with flagged estimates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmap._errors import GridmapError
from gridmap.routing.problem import Problem


@dataclass
class ProblemMatrix:
    """Integer travel times and float distances per travel mode.

    Attributes
    ----------
    seconds
        ``mode -> int64 array`` (seconds, rounded up so plans stay feasible at second precision).
    metres
        ``mode -> float array``.
    estimated
        ``mode -> bool array``: pairs estimated from the straight line.
    """

    seconds: dict[str, np.ndarray]
    metres: dict[str, np.ndarray]
    estimated: dict[str, np.ndarray]

    def mode_of(self, mode: str) -> str:
        """The key to use for a steward's mode (a given matrix serves every mode)."""
        return mode if mode in self.seconds else next(iter(self.seconds))


def _int_seconds(a: np.ndarray) -> np.ndarray:
    return np.ceil(np.asarray(a, dtype=float) - 1e-9).astype(np.int64)


def metric_closure(seconds: np.ndarray, metres: np.ndarray, estimated: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Travel times where going via another point of the problem is never faster than going direct.

    Times from a road network between snapped points can break the triangle inequality (points
    snapped to different parts of the network, straight-line estimates next to network times); a
    steward would then walk through the third point. Shortest paths over the complete matrix
    (Dijkstra on the dense graph, scipy) give times that do not, with the metres and the
    estimate flag of the same paths.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    n = seconds.shape[0]
    if n < 3:
        return seconds, metres, estimated
    T0 = np.asarray(seconds, dtype=float)
    G = np.where(T0 > 0, T0, 1e-9)  # a dense graph's zeros are missing edges: points at the same place stay 0
    np.fill_diagonal(G, 0.0)
    # (a sparse graph: the dense input path of scipy drops tiny weights)
    dist, pred = shortest_path(csr_matrix(G), method="D", directed=True, return_predecessors=True)
    if (dist >= T0 - 0.5).all():
        return seconds, metres, estimated
    direct = dist >= T0 - 0.5
    dist = np.where(direct, T0, dist)
    pred = np.where(direct, np.arange(n)[:, None].repeat(n, 1), pred)
    M0 = np.asarray(metres, dtype=float)
    E0 = np.asarray(estimated, dtype=bool)
    M = M0.copy()
    E = E0.copy()
    for i in range(n):
        order = np.argsort(dist[i], kind="stable")
        for j in order:
            p = pred[i, j]
            if p < 0 or p == i:
                continue
            M[i, j] = M[i, p] + M0[p, j]
            E[i, j] = E[i, p] or E0[p, j]
    return _int_seconds(dist), M, E


def _straight_line(points: list[tuple[float, float]], mode: str) -> tuple[np.ndarray, np.ndarray]:
    from gridmap.layers._osm_sources import to_utm
    from gridmap.layers.roads import SPEED_KMH
    from gridmap.layers.travel import DEFAULT_DETOUR

    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    x, y = to_utm(lon, lat)
    metres = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) * DEFAULT_DETOUR
    return metres / (SPEED_KMH[mode] / 3.6), metres


def problem_matrix(problem: Problem, graphs: dict | None = None, road_network: bool = True) -> ProblemMatrix:
    """The travel matrix of every mode the problem's stewards use.

    Parameters
    ----------
    problem
        A parsed problem.
    graphs
        Optional ``mode -> road graph`` (else built with
        :func:`gridmap.layers.roads.build_road_graph`, cached on disk).
    road_network
        False to skip the road network and use straight-line estimates for all pairs.

    Returns
    -------
    ProblemMatrix
        From the problem's own matrix when it has one (all modes share it,
        nothing estimated); else from :func:`gridmap.layers.travel.travel_matrix`,
        falling back to straight line × detour (flagged) when no road data is available.
    """
    if problem.has_matrix:
        s = _int_seconds(np.asarray(problem.seconds, dtype=float))
        m = np.asarray(problem.metres, dtype=float)
        return ProblemMatrix({"*": s}, {"*": m}, {"*": np.zeros(s.shape, dtype=bool)})
    out = ProblemMatrix({}, {}, {})
    lons = [p[0] for p in problem.points]
    lats = [p[1] for p in problem.points]
    for mode in sorted({s.mode for s in problem.stewards}):
        tm = None
        if road_network:
            try:
                G = (graphs or {}).get(mode)
                if G is None:
                    from gridmap.layers.roads import build_road_graph

                    G = build_road_graph(mode="bike" if mode == "ebike" else mode)
                from gridmap.layers.travel import travel_matrix

                tm = travel_matrix(G, lons, lats, mode)
            except GridmapError:
                tm = None
        if tm is not None:
            out.seconds[mode], out.metres[mode], out.estimated[mode] = metric_closure(
                _int_seconds(tm.seconds), np.asarray(tm.metres, dtype=float), np.asarray(tm.estimated, dtype=bool))
        else:
            sec, met = _straight_line(problem.points, mode)
            out.seconds[mode] = _int_seconds(sec)
            out.metres[mode] = met
            est = np.ones(sec.shape, dtype=bool)
            np.fill_diagonal(est, False)
            out.estimated[mode] = est
    return out


__all__ = ["ProblemMatrix", "metric_closure", "problem_matrix"]
