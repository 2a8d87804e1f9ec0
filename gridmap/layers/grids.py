"""Split communities into grids (网格) that one steward each can look after.

A grid is a compact piece of one community whose workload (elders in the
programme, or visit-minutes per week) does not exceed a steward's capacity.
Grids are plain data (a GeoDataFrame): a planner may redraw them, and
:func:`grid_workloads` recomputes the workloads of any set of grids.

Workload
--------
* **Points** (a GeoDataFrame of elders' homes, optionally with a weight
  column such as visit-minutes per week): each point counts its weight (1 if
  no weight column). Points are given to communities by ``community_code``
  when present, else by location.
* **Totals per community** (a Series indexed by community code): spread
  evenly over the community's area.
* **None**: estimated. Each community gets an equal share of its street's
  2020 census population (no population per community is published; equal
  shares are the documented assumption), times :data:`AGED_60_SHARE` (18.4 %
  of Haidian's residents were 60 or over in 2020) times
  :data:`PROGRAMME_SHARE` (assumed share of those aged 60+ who are in the
  visiting programme for older people with special difficulties: living
  alone, empty-nest, disabled, very old…), spread evenly over its area.

Split
-----
Recursive bisection in UTM 50N: a community (or part) whose workload exceeds
``capacity`` gets ``k = ceil(workload / capacity)`` grids; it is cut
perpendicular to the long side of its minimum rotated rectangle at the
weighted quantile ``floor(k/2) / k`` of the workload, and each side is split
again. Cuts are straight lines, so the pieces stay compact (about as long as
wide) and tile the community exactly; the workload of each grid is at most
``capacity`` unless a single point (or several at one spot) already weighs
more (such grids are flagged ``over_capacity``). An evenly spread workload
(totals or estimate) is cut into pieces of equal area instead (the cut found
by bisection), each carrying the workload in proportion to its area. Grid ids are ``<community code>-<2-digit sequence>`` numbered from
north-west to south-east; same input, same grids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap._errors import ValidationError
from gridmap.layers.crs import METRIC_CRS, WGS84

__all__ = [
    "AGED_60_SHARE",
    "GRID_COLUMNS",
    "PROGRAMME_SHARE",
    "build_grids",
    "estimate_community_workload",
    "grid_workloads",
    "merge_grids",
    "polsby_popper",
    "road_lines",
    "split_grid",
]

#: Share of Haidian residents aged 60 or over (2020 census).
AGED_60_SHARE: float = 0.184
#: Assumed share of residents aged 60+ who are in the visiting programme.
PROGRAMME_SHARE: float = 0.10

#: Columns of the grid layer.
GRID_COLUMNS: list[str] = [
    "grid_id", "community_code", "community", "street", "street_code", "workload", "capacity",
    "over_capacity", "n_points", "workload_source", "area_km2", "compactness", "approximate", "geometry",
]


def polsby_popper(geoms: gpd.GeoSeries | Iterable[BaseGeometry]) -> np.ndarray:
    """Polsby–Popper compactness ``4πA / P²`` (1 for a disc, ~0.785 for a square), metric geometries."""
    arr = np.asarray(list(geoms) if not isinstance(geoms, gpd.GeoSeries) else geoms.to_numpy(), dtype=object)
    area = shapely.area(arr)
    perim = shapely.length(arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(perim > 0, 4 * np.pi * area / perim**2, 0.0)


def estimate_community_workload(
    communities: pd.DataFrame,
    streets: pd.DataFrame,
    *,
    aged_share: float = AGED_60_SHARE,
    programme_share: float = PROGRAMME_SHARE,
) -> pd.Series:
    """Estimate the elders in the programme per community from the street census population.

    Parameters
    ----------
    communities
        Needs ``code`` and ``street_code``.
    streets
        Needs ``code`` and ``pop_2020``.
    aged_share, programme_share
        See the module docstring.

    Returns
    -------
    pandas.Series
        Estimated elders (float) indexed by community code.
    """
    per_street = communities.groupby("street_code")["code"].transform("size")
    pop = communities["street_code"].map(dict(zip(streets["code"], streets["pop_2020"], strict=True)))
    est = pop / per_street * aged_share * programme_share
    return pd.Series(est.to_numpy(dtype=float), index=communities["code"].to_numpy(), name="workload")


def _long_axis(poly: BaseGeometry, pts: np.ndarray) -> np.ndarray:
    """Unit vector along the long side of the minimum rotated rectangle of ``poly``."""
    rect = shapely.minimum_rotated_rectangle(poly)
    c = shapely.get_coordinates(rect)
    if len(c) < 4:
        span = pts.max(axis=0) - pts.min(axis=0) if len(pts) else np.array([1.0, 0.0])
        return np.array([1.0, 0.0]) if span[0] >= span[1] else np.array([0.0, 1.0])
    e1, e2 = c[1] - c[0], c[2] - c[1]
    v = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    n = np.hypot(*v)
    return v / n if n > 0 else np.array([1.0, 0.0])


def _half_plane(poly: BaseGeometry, u: np.ndarray, t: float, below: bool) -> BaseGeometry:
    """The part of ``poly`` with ``p·u <= t`` (below) or ``>= t``."""
    minx, miny, maxx, maxy = poly.bounds
    r = math.hypot(maxx - minx, maxy - miny) + 10.0
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    c_proj = cx * u[0] + cy * u[1]
    w = np.array([-u[1], u[0]])
    base = np.array([cx, cy]) + (t - c_proj) * u
    far = -r if below else r
    ring = [base + r * w, base - r * w, base - r * w + far * u, base + r * w + far * u]
    piece = shapely.intersection(poly, shapely.Polygon(ring))
    return _polygonal(piece)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 0]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _split(
    poly: BaseGeometry, pts: np.ndarray, w: np.ndarray, capacity: float, out: list[tuple[BaseGeometry, np.ndarray]],
    idx: np.ndarray,
) -> None:
    total = float(w.sum())
    if total <= capacity * (1 + 1e-9) or len(pts) < 2:
        out.append((poly, idx))
        return
    k = math.ceil(total / capacity - 1e-9)
    k1 = k // 2
    u = _long_axis(poly, pts)
    proj = pts @ u
    order = np.argsort(proj, kind="stable")
    cum = np.cumsum(w[order])
    target = total * k1 / k
    j = int(np.searchsorted(cum, target - 1e-9 * total))
    j = min(max(j, 0), len(order) - 2)
    # cut between point j and j+1 of the sorted projection, skipping ties
    while j < len(order) - 1 and proj[order[j + 1]] - proj[order[j]] < 1e-6:
        j += 1
    if j >= len(order) - 1:
        j = int(np.searchsorted(cum, target - 1e-9 * total))
        while j > 0 and proj[order[j]] - proj[order[j - 1]] < 1e-6:
            j -= 1
        j -= 1
        if j < 0:
            out.append((poly, idx))  # all points at one spot: cannot split
            return
    t = (proj[order[j]] + proj[order[j + 1]]) / 2
    low = proj <= t
    a = _half_plane(poly, u, t, below=True)
    b = _half_plane(poly, u, t, below=False)
    if a.is_empty or b.is_empty or a.area < 1.0 or b.area < 1.0:
        out.append((poly, idx))
        return
    _split(a, pts[low], w[low], capacity, out, idx[low])
    _split(b, pts[~low], w[~low], capacity, out, idx[~low])


def _split_area(
    poly: BaseGeometry, total: float, capacity: float, out: list[tuple[BaseGeometry, float]]
) -> None:
    """Split ``poly`` carrying an evenly spread ``total`` into pieces of at most ``capacity`` (equal areas)."""
    if total <= capacity * (1 + 1e-9):
        out.append((poly, total))
        return
    k = math.ceil(total / capacity - 1e-9)
    k1 = k // 2
    u = _long_axis(poly, np.empty((0, 2)))
    proj = shapely.get_coordinates(poly) @ u
    lo, hi = float(proj.min()), float(proj.max())
    target = poly.area * k1 / k
    for _ in range(40):  # bisection on the cut position: area below the cut = target
        t = (lo + hi) / 2
        if _half_plane(poly, u, t, below=True).area < target:
            lo = t
        else:
            hi = t
        if hi - lo < 1e-3:  # a millimetre
            break
    t = (lo + hi) / 2
    a = _half_plane(poly, u, t, below=True)
    b = _half_plane(poly, u, t, below=False)
    if a.is_empty or b.is_empty:
        out.append((poly, total))
        return
    # the cut is exact to a millimetre; book the intended shares so ceil() stays stable
    _split_area(a, total * k1 / k, capacity, out)
    _split_area(b, total * (k - k1) / k, capacity, out)


def _points_per_community(
    communities_m: gpd.GeoDataFrame, workload: gpd.GeoDataFrame, weight_col: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (community position, xy, weight) of workload points in metric CRS."""
    pts = workload.to_crs(METRIC_CRS) if workload.crs is not None else workload.set_crs(WGS84).to_crs(METRIC_CRS)
    if weight_col is None:
        weight_col = "weight" if "weight" in pts.columns else None
    w = pts[weight_col].to_numpy(dtype=float) if weight_col else np.ones(len(pts))
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValidationError("workload weights must be finite and non-negative", "工作量权重须为非负有限数",
                              field=weight_col or "weight", code="invalid_weight")
    pos_by_code = {c: i for i, c in enumerate(communities_m["code"])}
    if "community_code" in pts.columns:
        pos = np.array([pos_by_code.get(c, -1) for c in pts["community_code"]], dtype=int)
    else:
        pos = np.full(len(pts), -1, dtype=int)
    missing = pos < 0
    if missing.any():
        joined = gpd.sjoin(pts.loc[missing, ["geometry"]], communities_m[["geometry"]], predicate="within", how="left")
        joined = joined[~joined.index.duplicated(keep="first")]
        found = joined["index_right"].to_numpy()
        pos[missing] = np.where(pd.isna(found), -1, found).astype(int)
    xy = shapely.get_coordinates(pts.geometry.to_numpy())
    return pos, xy, w


def build_grids(
    communities: gpd.GeoDataFrame,
    workload: gpd.GeoDataFrame | pd.Series | None,
    capacity: float,
    *,
    streets: gpd.GeoDataFrame | None = None,
    weight_col: str | None = None,
    programme_share: float = PROGRAMME_SHARE,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Split every community into compact grids of at most ``capacity`` workload.

    Parameters
    ----------
    communities
        From :func:`~gridmap.layers.admin.load_communities` (``code``,
        ``name``, ``street``, ``street_code``, polygon ``geometry``).
    workload
        Points (GeoDataFrame, one per elder, optional weight column and
        ``community_code``), totals per community (Series indexed by code), or
        None to estimate from the census (then ``streets`` is needed).
    capacity
        Largest workload one steward carries (elders, or visit-minutes per
        week when the points carry minutes).
    streets
        From :func:`~gridmap.layers.admin.load_streets`; needed when
        ``workload`` is None.
    weight_col
        Column of point weights; default ``"weight"`` if present, else 1 per point.
    programme_share
        Share of the 60+ population in the programme (estimate only).
    progress
        Show a progress bar (tqdm).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`GRID_COLUMNS` in EPSG:4326: ``grid_id`` (``<community
        code>-NN``), ``community_code``, ``community`` (community name),
        ``street``, ``street_code``, ``workload``, ``capacity``,
        ``over_capacity``, ``n_points`` (workload points; 0 for estimates),
        ``workload_source`` (``points``, ``given`` or ``estimate``),
        ``area_km2``, ``compactness`` (Polsby–Popper), ``approximate``
        (True), ``geometry``.

    Raises
    ------
    ValidationError
        If ``capacity`` is not positive, or no workload and no streets are given.
    """
    if not (capacity > 0 and math.isfinite(capacity)):
        raise ValidationError(f"capacity must be a positive number, got {capacity!r}",
                              f"承载量须为正数，实际为 {capacity!r}", field="capacity", value=capacity,
                              code="invalid_capacity")
    comm = communities.sort_values("code").reset_index(drop=True)
    cm = comm.to_crs(METRIC_CRS)
    n = len(cm)
    per_comm_pts: list[tuple[np.ndarray, np.ndarray]] = []
    per_comm_totals: list[float] = []
    if isinstance(workload, gpd.GeoDataFrame):
        source = "points"
        pos, xy, w = _points_per_community(cm, workload, weight_col)
        for i in range(n):
            sel = pos == i
            per_comm_pts.append((xy[sel], w[sel]))
    else:
        if workload is None:
            if streets is None:
                raise ValidationError("give workload points/totals or the streets to estimate them from",
                                      "请提供工作量（点或各社区合计），或提供街道人口以便估算",
                                      field="workload", code="missing_workload")
            totals = estimate_community_workload(comm, streets, programme_share=programme_share)
            source = "estimate"
        else:
            totals = pd.Series(workload, dtype=float)
            source = "given"
        for i in range(n):
            total = float(totals.get(comm["code"].iloc[i], 0.0))
            if not (total >= 0 and math.isfinite(total)):
                raise ValidationError("workload totals must be finite and non-negative",
                                      "工作量合计须为非负有限数", field="workload", value=total,
                                      code="invalid_weight")
            per_comm_totals.append(total)
    iterator: Iterable[int] = range(n)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="grids", unit="community")
    rows: list[dict[str, object]] = []
    geoms: list[BaseGeometry] = []
    for i in iterator:
        poly = cm.geometry.iloc[i]
        leaves: list[tuple[BaseGeometry, float, int]] = []
        if source == "points":
            xy, w = per_comm_pts[i]
            found: list[tuple[BaseGeometry, np.ndarray]] = []
            _split(poly, xy, w, capacity, found, np.arange(len(xy)))
            leaves = [(g, float(w[idx].sum()), len(idx)) for g, idx in found]
        else:
            pieces: list[tuple[BaseGeometry, float]] = []
            _split_area(poly, per_comm_totals[i], capacity, pieces)
            leaves = [(g, load, 0) for g, load in pieces]
        # number north-west to south-east by the leaf's representative point
        keys = []
        for g, _, _ in leaves:
            rp = g.representative_point()
            keys.append((-round(rp.y, -1), round(rp.x, -1)))
        order = sorted(range(len(leaves)), key=lambda j: keys[j])
        for seq, j in enumerate(order, start=1):
            g, load, n_pts = leaves[j]
            rows.append({
                "grid_id": f"{comm['code'].iloc[i]}-{seq:02d}",
                "community_code": comm["code"].iloc[i],
                "community": comm["name"].iloc[i],
                "street": comm["street"].iloc[i],
                "street_code": comm["street_code"].iloc[i],
                "workload": load,
                "capacity": float(capacity),
                "over_capacity": load > capacity * (1 + 1e-9),
                "n_points": n_pts,
                "workload_source": source,
                "area_km2": g.area / 1e6,
                "approximate": True,
            })
            geoms.append(g)
    metric = gpd.GeoSeries(geoms, crs=METRIC_CRS)
    out = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=metric.to_crs(WGS84).to_numpy(), crs=WGS84)
    out["compactness"] = polsby_popper(metric)
    return out[GRID_COLUMNS]


def grid_workloads(
    grids: gpd.GeoDataFrame, points: gpd.GeoDataFrame, *, weight_col: str | None = None
) -> pd.DataFrame:
    """Recompute each grid's workload from points (e.g. after a planner redrew grids).

    Parameters
    ----------
    grids
        Grid polygons with ``grid_id`` (any CRS; EPSG:4326 expected).
    points
        Workload points (one per elder), optional weight column.
    weight_col
        Column of weights; default ``"weight"`` if present, else 1 per point.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``grid_id``: ``workload`` (sum of weights) and ``n_points``;
        grids without points get 0. A point on a shared edge counts once (for
        the first grid). Points in no grid are not counted; their number is in
        ``DataFrame.attrs["unassigned"]``.
    """
    pts = points.to_crs(grids.crs) if points.crs is not None and grids.crs is not None else points
    if weight_col is None:
        weight_col = "weight" if "weight" in pts.columns else None
    w = pts[weight_col].to_numpy(dtype=float) if weight_col else np.ones(len(pts))
    left = gpd.GeoDataFrame({"_w": w}, geometry=pts.geometry.to_numpy(), crs=pts.crs)
    joined = gpd.sjoin(left, grids[["grid_id", "geometry"]], predicate="intersects", how="left")
    joined = joined[~joined.index.duplicated(keep="first")]
    assigned = joined.dropna(subset=["grid_id"])
    agg = assigned.groupby("grid_id")["_w"].agg(workload="sum", n_points="size")
    out = agg.reindex(grids["grid_id"]).fillna(0.0)
    out["n_points"] = out["n_points"].astype(int)
    out.attrs["unassigned"] = int(joined["grid_id"].isna().sum())
    return out


def split_grid(geom: BaseGeometry, points: np.ndarray, weights: np.ndarray, parts: int,
               roads: Iterable[BaseGeometry] | None = None) -> list[tuple[BaseGeometry, np.ndarray]]:
    """Split one grid (EPSG:4326) into ``parts`` compact pieces of about equal workload (redrawing, 重新划分网格).

    Recursive bisection in UTM 50N. With ``roads`` (road lines, lon/lat, e.g. the OSM walk graph's
    edges, :func:`road_lines`) each cut follows roads where the network allows: the grid is cut into
    faces by the road lines inside it (polygonize), and the faces are grown from one end of the long
    side into one contiguous part of about the target workload, the rest forming the other contiguous
    part (:data:`ROAD_SPLIT_TOLERANCE`). Where no such road cut exists, a straight cut across the long
    side at the weighted quantile. Either way the pieces tile the grid exactly and every home lies in
    exactly one piece.

    Parameters
    ----------
    geom
        The grid polygon (lon/lat).
    points
        ``(n, 2)`` lon/lat of the homes that carry workload.
    weights
        Their workload (e.g. weekly minutes), non-negative.
    parts
        Pieces wanted (≥ 1); fewer come back when the homes cannot be separated.
    roads
        Road lines (lon/lat) to cut along; ``None``: straight cuts only.

    Returns
    -------
    list of (polygon, indices)
        Each piece (lon/lat) and the indices of ``points`` inside it.
    """
    from gridmap.layers._osm_sources import to_utm, to_wgs

    def utm(c: np.ndarray) -> np.ndarray:
        return np.column_stack(to_utm(c[:, 0], c[:, 1]))

    def wgs(c: np.ndarray) -> np.ndarray:
        return np.column_stack(to_wgs(c[:, 0], c[:, 1]))

    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    w = np.asarray(weights, dtype=float)
    if len(pts) != len(w) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValidationError("weights must be finite, non-negative, one per point", "工作量权重须为非负有限数且与住址一一对应",
                              field="weights", code="invalid_weight")
    poly_m = _polygonal(shapely.transform(geom, utm))
    xy = np.column_stack(to_utm(pts[:, 0], pts[:, 1])) if len(pts) else np.empty((0, 2))
    if parts <= 1 or len(pts) < 2 or w.sum() <= 0:
        return [(geom, np.arange(len(pts)))]
    out: list[tuple[BaseGeometry, np.ndarray]] = []
    lines_m = None
    if roads is not None:
        ls = [shapely.transform(r, utm) for r in roads if r is not None and not r.is_empty]
        lines_m = shapely.intersection(shapely.union_all(ls), poly_m.buffer(1.0)) if ls else None
    _split_k(poly_m, xy, w, parts, out, np.arange(len(pts)), lines_m)
    return [(shapely.transform(p, wgs), idx) for p, idx in out]


#: Up to this many road blocks in a grid, every grouping into two contiguous parts is tried (else grown greedily).
_EXACT_FACES = 12
#: A road cut is taken when its first part's workload is within this share of the grid's total of the target.
ROAD_SPLIT_TOLERANCE = 0.2


def road_lines(G: object, geom: BaseGeometry) -> list[BaseGeometry]:
    """The walk graph's edge lines (lon/lat) that meet ``geom`` (lon/lat), for :func:`split_grid`."""
    out = []
    minx, miny, maxx, maxy = geom.bounds
    pad = 0.0005
    for u, v, d in G.edges(data=True):  # type: ignore[attr-defined]
        line = d.get("geometry")
        if line is None:
            a, b = G.nodes[u], G.nodes[v]  # type: ignore[attr-defined]
            line = shapely.LineString([(a["x"], a["y"]), (b["x"], b["y"])])
        x0, y0, x1, y1 = line.bounds
        if x1 < minx - pad or x0 > maxx + pad or y1 < miny - pad or y0 > maxy + pad:
            continue
        if line.intersects(geom):
            out.append(line)
    return out


def _faces(poly: BaseGeometry, lines: BaseGeometry) -> list[BaseGeometry]:
    """The faces ``poly`` is cut into by ``lines`` (metric): they tile ``poly``."""
    noded = shapely.union_all([poly.boundary, shapely.intersection(lines, poly)])
    faces = [f for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
             if f.area > 1.0 and poly.contains(f.representative_point())]
    faces = [_polygonal(shapely.intersection(f, poly)) for f in faces]
    return [f for f in faces if not f.is_empty and f.area > 1.0]


def _member(faces: list[BaseGeometry], pts: np.ndarray) -> np.ndarray:
    """Index of the face holding each point (the first that covers it, else the nearest): exactly one."""
    tree = shapely.STRtree(faces)
    out = np.empty(len(pts), dtype=int)
    for i, p in enumerate(shapely.points(pts)):
        hit = tree.query(p, predicate="intersects")
        out[i] = int(hit.min()) if len(hit) else int(tree.nearest(p))
    return out


def _road_cut(poly: BaseGeometry, pts: np.ndarray, w: np.ndarray, share: float, u: np.ndarray,
              lines: BaseGeometry | None) -> tuple[BaseGeometry, BaseGeometry, np.ndarray] | None:
    """Cut ``poly`` along road lines into two contiguous parts, the first of about ``share`` of the weight.

    Returns (part a, part b, mask of the points in a) or ``None`` when the roads allow no such cut.
    """
    if lines is None or lines.is_empty:
        return None
    faces = _faces(poly, lines)
    if len(faces) < 2 or len(faces) > 400:
        return None
    member = _member(faces, pts)
    fw = np.bincount(member, weights=w, minlength=len(faces))
    total = float(w.sum())
    target = share * total
    proj = np.array([np.dot(np.asarray(f.representative_point().coords[0]), u) for f in faces])
    tree = shapely.STRtree(faces)
    adj: list[set[int]] = [set() for _ in faces]
    for i, f in enumerate(faces):
        for j in tree.query(f.buffer(0.5), predicate="intersects"):
            j = int(j)
            if j != i and shapely.intersection(f.buffer(0.5), faces[j]).area > 0.5:
                adj[i].add(j)
                adj[j].add(i)
    best: tuple[float, list[int]] | None = None
    if len(faces) <= _EXACT_FACES:  # few blocks: every contiguous two-part grouping is tried
        def connected(sub: set[int]) -> bool:
            first = min(sub)
            seen, todo = {first}, [first]
            while todo:
                for j in adj[todo.pop()]:
                    if j in sub and j not in seen:
                        seen.add(j)
                        todo.append(j)
            return seen == sub

        everything = set(range(len(faces)))
        for mask in range(1, 2 ** len(faces) - 1):
            sub = {i for i in range(len(faces)) if mask >> i & 1}
            acc = float(fw[sorted(sub)].sum())
            err = abs(acc - target)
            if best is not None and err >= best[0]:
                continue
            if 0 < acc < total and connected(sub) and connected(everything - sub):
                best = (err, sorted(sub))
        starts: tuple[int, ...] = ()
    else:
        starts = (int(np.argmin(proj)), int(np.argmax(proj)))
    for start in starts:
        sign = 1.0 if start == int(np.argmin(proj)) else -1.0
        grown, acc = [start], float(fw[start])
        frontier = set(adj[start])
        while True:
            rest = [i for i in range(len(faces)) if i not in grown]
            if rest and 0 < acc < total and abs(acc - target) <= ROAD_SPLIT_TOLERANCE * total:
                union_b = shapely.union_all([faces[i] for i in rest])
                union_a = shapely.union_all([faces[i] for i in grown])
                if union_a.geom_type == "Polygon" and union_b.geom_type == "Polygon":
                    err = abs(acc - target)
                    if best is None or err < best[0]:
                        best = (err, list(grown))
            if acc >= target or not frontier:
                break
            nxt = min(frontier, key=lambda i: (sign * proj[i], i))
            frontier.discard(nxt)
            grown.append(nxt)
            acc += float(fw[nxt])
            frontier |= adj[nxt] - set(grown)
    if best is None or best[0] > ROAD_SPLIT_TOLERANCE * total:
        return None
    ga = set(best[1])
    a = _polygonal(shapely.union_all([faces[i] for i in sorted(ga)]))
    b = _polygonal(shapely.union_all([faces[i] for i in range(len(faces)) if i not in ga]))
    in_a = np.isin(member, sorted(ga))
    if not in_a.any() or in_a.all():
        return None
    return a, b, in_a


def _split_k(poly: BaseGeometry, pts: np.ndarray, w: np.ndarray, k: int,
             out: list[tuple[BaseGeometry, np.ndarray]], idx: np.ndarray,
             lines: BaseGeometry | None = None) -> None:
    """Cut ``poly`` into ``k`` pieces of about equal weight (at most ``k``: fewer when homes coincide)."""
    if k <= 1 or len(pts) < 2:
        out.append((poly, idx))
        return
    k1 = k // 2
    u = _long_axis(poly, pts)
    cut = _road_cut(poly, pts, w, k1 / k, u, lines) if w.sum() > 0 else None
    if cut is not None:
        a, b, low = cut
        n_low = int(low.sum())
        ka = max(1, min(k1, n_low))
        kb = max(1, min(k - k1, len(pts) - n_low))
        _split_k(a, pts[low], w[low], ka, out, idx[low], lines)
        _split_k(b, pts[~low], w[~low], kb, out, idx[~low], lines)
        return
    proj = pts @ u
    order = np.argsort(proj, kind="stable")
    cum = np.cumsum(w[order])
    total = float(cum[-1])
    j = int(np.searchsorted(cum, total * k1 / k - 1e-9 * max(total, 1.0)))
    j = min(max(j, 0), len(order) - 2)
    cuts = [i for i in range(len(order) - 1) if proj[order[i + 1]] - proj[order[i]] >= 1e-6]
    if not cuts:
        out.append((poly, idx))  # all homes at one spot
        return
    j = min(cuts, key=lambda i: (abs(i - j), i))
    t = (proj[order[j]] + proj[order[j + 1]]) / 2
    low = proj <= t
    a = _half_plane(poly, u, t, below=True)
    b = _half_plane(poly, u, t, below=False)
    if a.is_empty or b.is_empty or a.area < 1.0 or b.area < 1.0:
        out.append((poly, idx))
        return
    n_low = int(low.sum())
    ka = max(1, min(k1, n_low))
    kb = max(1, min(k - k1, len(pts) - n_low))
    _split_k(a, pts[low], w[low], ka, out, idx[low], lines)
    _split_k(b, pts[~low], w[~low], kb, out, idx[~low], lines)


def merge_grids(geoms: Iterable[BaseGeometry]) -> BaseGeometry:
    """One polygon of several adjacent grids (merging, 合并网格): their union, slivers dropped."""
    return _polygonal(shapely.union_all(list(geoms)))
