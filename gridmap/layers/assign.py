"""Spatial assignment: the street, community and grid of each point, and its nearest station.

:func:`assign_areas` gives every elder, hazard, device or service point exactly
one street, community and grid by point-in-polygon (``geopandas.sjoin`` on the
spatial index), with deterministic tie-breaking on shared boundaries and a
nearest-polygon fallback for points in gaps between polygons.
:func:`nearest_station` finds each point's nearest service station by road (one
multi-source Dijkstra pass over the road graph) where the network reaches both,
else by straight line, and says which.
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from gridmap._errors import CoordinateError, ValidationError

__all__ = ["METRIC_EPSG", "assign_areas", "nearest_station"]

#: Metric CRS used for distances (UTM zone 50N), as in :mod:`gridmap.layers.crs`.
METRIC_EPSG = 32650

#: Status values of :func:`assign_areas`.
STATUSES = ("inside", "boundary", "nearest", "outside", "no_geometry")


def _check_crs(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(f"{what} must be a GeoDataFrame", f"{what}须为 GeoDataFrame", field=what, code="type")
    if gdf.crs is None:
        raise CoordinateError(
            f"the {what} layer has no CRS; set it first (EPSG:4326 for WGS84 longitude/latitude)",
            f"{what}图层没有坐标参考系，请先设置（WGS84 经纬度为 EPSG:4326）",
            field=what,
            code="no_crs",
        )
    return gdf if gdf.crs.to_epsg() == 4326 else gdf.to_crs(4326)


def _one_area(
    pts: gpd.GeoDataFrame,
    polys: gpd.GeoDataFrame,
    key: str,
    cols: dict[str, str],
    tolerance_m: float,
    gap_ok: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Assign each point (integer positional index) one polygon of ``polys``.

    Returns the chosen attribute columns (indexed by point position) and a
    status array (inside / boundary / nearest / outside).
    """
    n = len(pts)
    out = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in cols.values()})
    status = np.full(n, "outside", dtype=object)
    polys = _check_crs(polys, key).reset_index(drop=True)
    polys = polys[polys.geometry.notna() & ~polys.geometry.is_empty]
    if n == 0 or len(polys) == 0:
        return out, status
    right = polys[[*cols.keys(), "geometry"]].copy()
    right["_rpos"] = right.index.to_numpy()
    right["_key"] = polys[key].astype(str).to_numpy()
    j = gpd.sjoin(pts[["geometry"]], right, how="inner", predicate="intersects")
    if len(j):
        # interior hits beat boundary hits; among equals the smallest key wins (deterministic)
        geoms = polys.geometry.loc[j["_rpos"].to_numpy()].to_numpy()
        interior = shapely.contains_properly(geoms, pts.geometry.loc[j.index].to_numpy())
        j = j.assign(_interior=interior, _pos=j.index.to_numpy())
        j = j.sort_values(["_pos", "_interior", "_key", "_rpos"], ascending=[True, False, True, True], kind="stable")
        n_hits = j.groupby("_pos").size()
        j = j.drop_duplicates("_pos", keep="first")
        pos = j["_pos"].to_numpy()
        for src, dst in cols.items():
            out.loc[pos, dst] = j[src].to_numpy()
        on_edge = ~j["_interior"].to_numpy() | (n_hits.loc[pos].to_numpy() > 1)
        status[pos] = np.where(on_edge, "boundary", "inside")
    # gap fallback: nearest polygon within the tolerance
    todo = np.flatnonzero((status == "outside") & gap_ok)
    if len(todo) and tolerance_m > 0:
        left = pts.iloc[todo][["geometry"]].to_crs(METRIC_EPSG)
        left["_pos"] = todo
        r = right.to_crs(METRIC_EPSG)
        near = gpd.sjoin_nearest(left, r, how="inner", max_distance=tolerance_m, distance_col="_dist")
        if len(near):
            near = near.sort_values(["_pos", "_dist", "_key"], kind="stable").drop_duplicates("_pos")
            pos = near["_pos"].to_numpy()
            for src, dst in cols.items():
                out.loc[pos, dst] = near[src].to_numpy()
            status[pos] = "nearest"
    return out, status


def assign_areas(
    points: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame | None = None,
    *,
    district: gpd.GeoDataFrame | None = None,
    tolerance_m: float = 300.0,
) -> gpd.GeoDataFrame:
    """Add the street, community and grid of each point.

    Parameters
    ----------
    points
        Points (elders, hazards, devices, service points) in any CRS; other
        geometry types are placed by their representative point. Rows with a
        null or empty geometry get no area and status ``no_geometry``.
    streets
        Street polygons with ``name`` and ``code``.
    communities
        Community polygons with ``code`` and ``name``.
    grids
        Optional grid polygons with ``grid_id``.
    district
        Optional district outline: when given, only points inside it get the
        nearest-polygon fallback.
    tolerance_m
        Largest distance (metres) for the nearest-polygon fallback; 0 turns
        it off.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``points`` (same index, same row order, same CRS as given,
        never more rows) with columns ``street``, ``street_code``,
        ``community``, ``community_code``, ``grid_id`` (None where none),
        ``area_status`` (of the street: ``inside``; ``boundary`` — on a shared
        edge, the polygon with the smallest code was chosen; ``nearest`` — in
        a gap, the nearest polygon within ``tolerance_m``; ``outside``;
        ``no_geometry``) and ``outside`` (True when no street was found for a
        point that has a geometry).

    Raises
    ------
    CoordinateError
        If a layer has no CRS.

    Notes
    -----
    Each layer is joined on its own (predicate ``intersects`` so that points
    exactly on an edge are found); a point hitting several polygons keeps the
    one whose interior contains it, then the smallest code (``grid_id``), so
    every point gets at most one area per layer and the result never has
    duplicate rows.
    """
    pts_in = _check_crs(points, "points")
    result = points.copy()
    n = len(points)
    geom = pts_in.geometry.to_numpy()
    valid = ~(pd.isna(geom) | shapely.is_empty(geom)) if n else np.zeros(0, dtype=bool)
    geom = np.where(valid, geom, None)
    if n:
        is_pt = np.array([g is not None and g.geom_type == "Point" for g in geom])
        geom = np.where(valid & ~is_pt, shapely.point_on_surface(geom), geom)
    pts = gpd.GeoDataFrame(geometry=gpd.GeoSeries(geom, crs=4326), index=pd.RangeIndex(n))
    pts_valid = pts[valid].reset_index(drop=True)
    gap_ok = valid.copy()
    if district is not None and n:
        d = _check_crs(district, "district").union_all()
        gap_ok = valid & np.asarray(shapely.intersects(d, geom), dtype=bool)

    def run(layer: gpd.GeoDataFrame, key: str, cols: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray]:
        sub, st = _one_area(pts_valid, layer, key, cols, tolerance_m, gap_ok[valid])
        full = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in cols.values()})
        status = np.full(n, "no_geometry", dtype=object)
        full.iloc[np.flatnonzero(valid)] = sub.to_numpy()
        status[valid] = st
        return full, status

    s_cols, s_status = run(streets, "code" if "code" in streets.columns else "name",
                           {"name": "street", **({"code": "street_code"} if "code" in streets.columns else {})})
    if "street_code" not in s_cols:
        s_cols["street_code"] = None
    c_cols, _ = run(communities, "code", {"name": "community", "code": "community_code"})
    if grids is not None:
        g_cols, _ = run(grids, "grid_id", {"grid_id": "grid_id"})
    else:
        g_cols = pd.DataFrame({"grid_id": pd.Series([None] * n, dtype=object)})
    for frame in (s_cols, c_cols, g_cols):
        for c in frame.columns:
            col = frame[c].astype(object)
            result[c] = pd.Series(col.where(col.notna(), None).to_numpy(), index=result.index, dtype=object)
    result["area_status"] = pd.Series(s_status, index=result.index, dtype=object)
    result["outside"] = s_status == "outside"
    return result


def nearest_station(
    points: gpd.GeoDataFrame,
    stations: gpd.GeoDataFrame,
    graph: nx.MultiDiGraph | None = None,
    *,
    name_column: str = "name",
    weight: str = "length",
    max_network_m: float = 10_000.0,
    far_m: float | None = None,
) -> pd.DataFrame:
    """Find each point's nearest station, by road where possible.

    Parameters
    ----------
    points, stations
        GeoDataFrames of points (any CRS; not both empty of a CRS).
    graph
        A road graph from :func:`gridmap.layers.roads.build_road_graph`
        (edge attribute ``weight`` in metres). Without it every distance is
        straight-line.
    name_column
        Column of ``stations`` giving the name.
    weight
        Edge attribute used as distance.
    max_network_m
        Network searches stop at this distance; points farther from every
        station by road fall back to the straight-line nearest.
    far_m
        Points and stations farther than this from the nearest road edge are
        off the network (default :data:`gridmap.layers.roads.FAR_M`).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``points``: ``station_index`` (the station's index
        label), ``station_name``, ``distance_m`` (by road, including the
        straight legs from point and station to their nearest edges, when
        ``by_road``; else straight-line), ``straight_m`` (straight-line
        distance to that station) and ``by_road``. Points without a geometry
        get NaN/None and ``by_road=False``.

    Notes
    -----
    The road search is one multi-source Dijkstra pass: every station becomes a
    virtual node joined to both ends of its nearest edge (by the distances
    along that edge), and ``scipy.sparse.csgraph.dijkstra(..., min_only=True)``
    returns for every junction the distance to and the index of the nearest
    station. A point then takes the better of its edge's two ends.
    """
    pts = _check_crs(points, "points")
    sts = _check_crs(stations, "stations")
    n = len(pts)
    out = pd.DataFrame(
        {
            "station_index": pd.Series([None] * n, dtype=object),
            "station_name": pd.Series([None] * n, dtype=object),
            "distance_m": np.full(n, np.nan),
            "straight_m": np.full(n, np.nan),
            "by_road": np.zeros(n, dtype=bool),
        },
        index=points.index,
    )
    s_valid = ~(sts.geometry.isna() | sts.geometry.is_empty).to_numpy()
    p_valid = ~(pts.geometry.isna() | pts.geometry.is_empty).to_numpy() if n else np.zeros(0, dtype=bool)
    if n == 0 or not s_valid.any() or not p_valid.any():
        return out
    sts = sts[s_valid]
    s_labels = sts.index.to_numpy()
    s_names = sts[name_column].to_numpy() if name_column in sts.columns else np.full(len(sts), None)
    s_xy = np.c_[sts.to_crs(METRIC_EPSG).geometry.centroid.x, sts.to_crs(METRIC_EPSG).geometry.centroid.y]
    pv = pts[p_valid]
    pm = pv.to_crs(METRIC_EPSG).geometry.centroid
    p_xy = np.c_[pm.x, pm.y]
    tree = cKDTree(s_xy)
    d_line, j_line = tree.query(p_xy)
    best_j = j_line.astype(int)
    best_d = d_line.astype(float)
    by_road = np.zeros(len(pv), dtype=bool)

    if graph is not None and graph.number_of_nodes() > 0:
        from gridmap.layers.roads import FAR_M, snap_points

        far = FAR_M if far_m is None else far_m
        ll_s = sts.geometry.representative_point()
        ll_p = pv.geometry.representative_point()
        sp = snap_points(graph, ll_s.x.to_numpy(), ll_s.y.to_numpy(), far_m=far)
        pp = snap_points(graph, ll_p.x.to_numpy(), ll_p.y.to_numpy(), far_m=far)
        nodes = list(graph.nodes)
        node_pos = {u: i for i, u in enumerate(nodes)}
        n_nodes = len(nodes)
        rows, cols, w = [], [], []
        for u, v, d in graph.edges(data=True):
            rows.append(node_pos[u])
            cols.append(node_pos[v])
            w.append(float(d.get(weight, np.nan)))
        rows_a, cols_a, w_a = np.asarray(rows, int), np.asarray(cols, int), np.asarray(w, float)
        # station virtual nodes: n_nodes + s, joined to both ends of the station's edge
        on = np.flatnonzero(~sp.far)
        s_u = np.array([node_pos[x] for x in sp.u[on]], dtype=int)
        s_v = np.array([node_pos[x] for x in sp.v[on]], dtype=int)
        s_len = sp.edge_length[on].astype(float)
        s_pos = sp.position[on].astype(float)
        virt = n_nodes + np.arange(len(on))
        rows_a = np.r_[rows_a, virt, virt]
        cols_a = np.r_[cols_a, s_u, s_v]
        w_a = np.r_[w_a, s_pos * s_len + sp.distance_m[on], (1 - s_pos) * s_len + sp.distance_m[on]]
        ok = np.isfinite(w_a)
        rows_a, cols_a, w_a = rows_a[ok], cols_a[ok], w_a[ok]
        # parallel edges: keep the lightest (csr_matrix would add them up)
        order = np.lexsort((w_a, cols_a, rows_a))
        rows_a, cols_a, w_a = rows_a[order], cols_a[order], w_a[order]
        first = np.r_[True, (np.diff(rows_a) != 0) | (np.diff(cols_a) != 0)]
        size = n_nodes + len(on)
        A = csr_matrix((np.maximum(w_a[first], 1e-9), (rows_a[first], cols_a[first])), shape=(size, size))
        if len(on):
            dist, _, src = dijkstra(A, directed=True, indices=virt, min_only=True,
                                    return_predecessors=True, limit=max_network_m)
            pu = np.array([node_pos[x] for x in pp.u], dtype=int)
            pvv = np.array([node_pos[x] for x in pp.v], dtype=int)
            via_u = dist[pu] + pp.position * pp.edge_length + pp.distance_m
            via_v = dist[pvv] + (1 - pp.position) * pp.edge_length + pp.distance_m
            use_u = via_u <= via_v
            d_net = np.where(use_u, via_u, via_v)
            src_node = np.where(use_u, src[pu], src[pvv])
            good = np.isfinite(d_net) & ~pp.far & (src_node >= n_nodes) & (d_net <= max_network_m)
            best_j = np.where(good, on[np.clip(src_node - n_nodes, 0, len(on) - 1)], best_j)
            best_d = np.where(good, d_net, best_d)
            by_road = good
    straight = np.hypot(*(p_xy - s_xy[best_j]).T)
    idx = np.flatnonzero(p_valid)
    sidx = np.full(n, None, dtype=object)
    sname = np.full(n, None, dtype=object)
    sidx[idx] = s_labels[best_j]
    sname[idx] = s_names[best_j]
    out["station_index"] = pd.Series(sidx, index=out.index, dtype=object)
    out["station_name"] = pd.Series(sname, index=out.index, dtype=object)
    out.iloc[idx, out.columns.get_loc("distance_m")] = best_d
    out.iloc[idx, out.columns.get_loc("straight_m")] = straight
    out.iloc[idx, out.columns.get_loc("by_road")] = by_road
    return out
