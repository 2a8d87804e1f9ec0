"""Read road data sources (OSM XML, .osm.pbf, edge files, line files) into one edge table.

Every source becomes a :class:`RoadSource`: a table of edges (one row per way
piece between two junctions, oriented ``u -> v``, ``oneway`` meaning "only
``u -> v``"), a table of nodes (OSM node ids where known, stable negative ids
otherwise) and a coverage polygon (the area the source claims to map
completely). :mod:`gridmap.layers.roads` merges them.

Source kinds, by rank (a higher rank wins where coverages overlap):

``osm`` (rank 3)
    OSM XML (``*.osm``, ``*.osm.xml``) read with :func:`osmnx.graph_from_xml`;
    ``.osm.pbf`` read with GDAL's OSM driver (``lines`` layer) and noded like
    a line file (OSM ways meet at shared vertices).
``lines`` (rank 2)
    Road lines without node ids (for example a Geofabrik shapefile clip): split
    at shared vertices, at endpoints lying on another line (within
    ``SNAP_M``) and at at-grade crossings (neither line a bridge or tunnel, same
    layer); endpoints closer than ``SNAP_M`` are merged; an endpoint within
    ``MATCH_M`` of a node of another source takes that node's OSM id.
``edges`` (rank 1)
    Edge files with ``u`` and ``v`` OSM node-id columns (for example the 2013
    district network).

Within a rank, the newer source (year of the latest OSM timestamp, or a year in
the file name) wins.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gridmap._errors import DataDirError

#: CRS for storage and for measuring.
WGS84 = "EPSG:4326"
UTM = "EPSG:32650"
#: Line endpoints closer than this (metres) are one junction.
SNAP_M = 1.0
#: A line endpoint closer than this (metres) to another source's node takes its OSM id.
MATCH_M = 2.0

KIND_RANK = {"osm": 3, "lines": 2, "edges": 1}
EDGE_COLUMNS = [
    "u", "v", "osmid", "highway", "name", "oneway", "maxspeed", "access", "foot",
    "bicycle", "service", "area", "bridge", "geometry",
]
_TO_UTM = Transformer.from_crs(WGS84, UTM, always_xy=True)
_TO_WGS = Transformer.from_crs(UTM, WGS84, always_xy=True)
_VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
_EXTRA_WAY_TAGS = ["foot", "bicycle", "sidewalk", "layer", "motor_vehicle"]


@dataclass
class RoadSource:
    """One road data file read into edges and nodes.

    Attributes
    ----------
    path
        The file read.
    kind
        ``"osm"``, ``"lines"`` or ``"edges"``.
    year
        Year of the data (latest OSM timestamp or a year in the file name), if known.
    edges
        GeoDataFrame (EPSG:4326) with :data:`EDGE_COLUMNS`.
    nodes
        DataFrame indexed by node id with ``x`` (lon), ``y`` (lat).
    coverage
        Polygon (EPSG:4326) the source maps completely.
    """

    path: Path
    kind: str
    year: int | None
    edges: gpd.GeoDataFrame
    nodes: pd.DataFrame
    coverage: shapely.Geometry
    notes: list[str] = field(default_factory=list)

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: higher wins where coverages overlap."""
        return (KIND_RANK[self.kind], self.year or 0)

    @property
    def name(self) -> str:
        """File name, used as the edges' ``source`` attribute."""
        return self.path.name


def to_utm(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project lon/lat arrays to UTM 50N metres."""
    return _TO_UTM.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def to_wgs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unproject UTM 50N metres to lon/lat arrays."""
    return _TO_WGS.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def discover_sources(roads_dir: Path) -> list[Path]:
    """List the road files under ``roads_dir`` (recursively), sorted by path.

    Parameters
    ----------
    roads_dir
        Directory to scan, usually ``<data_dir>/haidian/roads``.

    Returns
    -------
    list of Path
        OSM XML, ``.osm.pbf`` and vector files (GeoJSON, GeoPackage, shapefile, FlatGeobuf).
    """
    if not roads_dir.is_dir():
        raise DataDirError(
            f"road data directory not found: {roads_dir}",
            f"未找到道路数据目录：{roads_dir}",
        )
    found = [
        p for p in sorted(roads_dir.rglob("*"))
        if p.is_file() and (source_kind_of(p) is not None)
    ]
    return found


def source_kind_of(path: Path) -> str | None:
    """Return the reader for a file name: ``"osm_xml"``, ``"pbf"``, ``"vector"`` or None."""
    name = path.name.lower()
    if name.endswith(".osm") or name.endswith(".osm.xml"):
        return "osm_xml"
    if name.endswith(".osm.pbf") or name.endswith(".pbf"):
        return "pbf"
    if name.endswith(_VECTOR_SUFFIXES):
        return "vector"
    return None


def read_source(path: Path, ref_nodes: pd.DataFrame | None = None) -> RoadSource:
    """Read one road file.

    Parameters
    ----------
    path
        The file.
    ref_nodes
        Nodes (index = OSM id, columns ``x``, ``y``) of other sources; line
        endpoints within :data:`MATCH_M` of one of them take its id.

    Returns
    -------
    RoadSource
    """
    path = Path(path)
    reader = source_kind_of(path)
    try:
        if reader == "osm_xml":
            return _read_osm_xml(path)
        if reader == "pbf":
            return _read_osm_gdal(path, ref_nodes)
        if reader == "vector":
            gdf = gpd.read_file(path)
            if gdf.crs is not None and not gdf.crs.equals(WGS84):
                gdf = gdf.to_crs(WGS84)
            cols = {c.lower() for c in gdf.columns}
            if {"u", "v"} <= cols:
                return _read_edge_file(path, gdf)
            return _read_line_file(path, gdf, ref_nodes)
    except DataDirError:
        raise
    except Exception as exc:  # unreadable / malformed file
        raise DataDirError(
            f"cannot read road file {path}: {exc}",
            f"无法读取道路文件 {path}：{exc}",
        ) from exc
    raise DataDirError(f"not a road file: {path}", f"不是道路数据文件：{path}")


# ---------------------------------------------------------------- readers


def _year_from_name(path: Path) -> int | None:
    path = Path(path)
    m = re.search(r"(?<!\d)(19[89]\d|20\d\d)(?!\d)", path.name)
    return int(m.group(1)) if m else None


def _xml_header(path: Path) -> tuple[int | None, shapely.Geometry | None]:
    """Latest timestamp year and the ``<bounds>`` box of an OSM XML file."""
    year = None
    bounds = None
    pat_ts = re.compile(rb'timestamp="(\d{4})')
    pat_b = re.compile(rb"<bounds\s[^>]*>")
    with path.open("rb") as fh:
        first = True
        while chunk := fh.read(1 << 22):
            if first:
                m = pat_b.search(chunk)
                if m:
                    attrs = dict(re.findall(rb'(\w+)="([-0-9.]+)"', m.group(0)))
                    try:
                        bounds = shapely.box(
                            float(attrs[b"minlon"]), float(attrs[b"minlat"]),
                            float(attrs[b"maxlon"]), float(attrs[b"maxlat"]),
                        )
                    except KeyError:
                        bounds = None
                first = False
            years = pat_ts.findall(chunk)
            if years:
                y = int(max(years))
                year = y if year is None else max(year, y)
    return year, bounds


def _first(value: object) -> object:
    """osmnx stores merged tags as lists: keep the first."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _read_osm_xml(path: Path) -> RoadSource:
    import osmnx as ox

    year, bounds = _xml_header(path)
    old_tags = list(ox.settings.useful_tags_way)
    ox.settings.useful_tags_way = sorted(set(old_tags) | set(_EXTRA_WAY_TAGS))
    try:
        G = ox.graph_from_xml(path, bidirectional=False, simplify=True, retain_all=True)
    finally:
        ox.settings.useful_tags_way = old_tags
    nodes, edges = ox.graph_to_gdfs(G)
    edges = edges.reset_index()
    # osmnx reads every way of a raw XML file (buildings, landuse, rail): keep roads and paths
    edges = edges[edges["highway"].notna()]
    # one row per way piece: two-way pieces appear in both directions
    two_way = ~edges["oneway"].astype(bool)
    key = pd.DataFrame({
        "a": np.minimum(edges["u"], edges["v"]),
        "b": np.maximum(edges["u"], edges["v"]),
        "l": edges["length"].round(1),
    })
    dup = two_way & key.duplicated()
    edges = edges[~dup].copy()
    for col in EDGE_COLUMNS:
        if col not in edges.columns:
            edges[col] = None
        elif col not in ("geometry", "u", "v"):
            edges[col] = edges[col].map(_first)
    edges["osmid"] = edges["osmid"].astype(str)
    edges["oneway"] = edges["oneway"].astype(bool)
    edges["maxspeed"] = pd.to_numeric(edges["maxspeed"].map(_parse_speed), errors="coerce")
    edges["bridge"] = edges["bridge"].isin(["yes", "viaduct", True])
    e = gpd.GeoDataFrame(edges[EDGE_COLUMNS], geometry="geometry", crs=WGS84)
    n = pd.DataFrame({"x": nodes["x"].astype(float), "y": nodes["y"].astype(float)})
    n.index = n.index.astype("int64")
    n = n.loc[np.unique(np.concatenate([e["u"].to_numpy(), e["v"].to_numpy()]))]
    coverage = bounds if bounds is not None else shapely.convex_hull(shapely.multipoints(n[["x", "y"]].to_numpy()))
    return RoadSource(path, "osm", year or _year_from_name(path), _clean_edges(e), n, coverage)


def _parse_speed(value: object) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(mph)?", str(value))
    if not m:
        return None
    v = float(m.group(1)) * (1.609 if m.group(2) else 1.0)
    return v if v > 0 else None


def _read_edge_file(path: Path, gdf: gpd.GeoDataFrame) -> RoadSource:
    gdf = gdf.rename(columns={c: c.lower() for c in gdf.columns})
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy()
    gdf = gdf.explode(index_parts=False).reset_index(drop=True)
    out = pd.DataFrame({"u": gdf["u"].astype("int64"), "v": gdf["v"].astype("int64")})
    out["osmid"] = gdf.get("osmid", gdf.get("way_index", pd.Series(index=gdf.index))).astype(str)
    for col in ("highway", "name", "access", "foot", "bicycle", "service", "area"):
        out[col] = gdf[col] if col in gdf.columns else None
    if out["highway"].isna().all() and "fclass" in gdf.columns:
        out["highway"] = gdf["fclass"]
    out["oneway"] = _parse_oneway(gdf["oneway"]) if "oneway" in gdf.columns else False
    out["maxspeed"] = pd.to_numeric(gdf.get("maxspeed"), errors="coerce") if "maxspeed" in gdf else np.nan
    out.loc[out["maxspeed"] <= 0, "maxspeed"] = np.nan
    out["bridge"] = gdf["bridge"].isin(["yes", "T", True, 1]) if "bridge" in gdf.columns else False
    out["geometry"] = gdf.geometry.values
    e = gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84)
    # node coordinates: the geometry's first point for u, last for v
    first = shapely.get_point(e.geometry.values, 0)
    last = shapely.get_point(e.geometry.values, -1)
    pts = pd.DataFrame({
        "id": np.concatenate([e["u"].to_numpy(), e["v"].to_numpy()]),
        "x": np.concatenate([shapely.get_x(first), shapely.get_x(last)]),
        "y": np.concatenate([shapely.get_y(first), shapely.get_y(last)]),
    })
    n = pts.groupby("id")[["x", "y"]].median()
    n.index = n.index.astype("int64")
    coverage = shapely.convex_hull(shapely.multipoints(n[["x", "y"]].to_numpy()))
    return RoadSource(path, "edges", _year_from_name(path), _clean_edges(e), n, coverage)


def _parse_oneway(s: pd.Series) -> pd.Series:
    """Map oneway values to bool (u -> v only); ``T``/``-1`` handled by the caller."""
    return s.map(lambda v: v in (True, 1, "yes", "true", "1", "F", "T", "-1")).astype(bool)


def _clean_edges(e: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Drop empty and zero-length self-loops; ensure column types."""
    e = e[e.geometry.notna() & ~e.geometry.is_empty]
    e = e[~((e["u"] == e["v"]) & (shapely.length(e.geometry.values) < 1e-7))]
    e = e.copy()
    e["highway"] = e["highway"].fillna("unclassified").astype(str)
    e["oneway"] = e["oneway"].fillna(False).astype(bool)
    e["bridge"] = e["bridge"].fillna(False).astype(bool)
    e["u"] = e["u"].astype("int64")
    e["v"] = e["v"].astype("int64")
    return e.reset_index(drop=True)


def _read_osm_gdal(path: Path, ref_nodes: pd.DataFrame | None) -> RoadSource:
    """Read ``.osm.pbf`` (or XML) with GDAL's OSM driver and node its ways."""
    import pyogrio

    if "OSM" not in pyogrio.list_drivers():  # pragma: no cover - depends on GDAL build
        raise DataDirError(
            f"{path.name}: this GDAL build has no OSM driver, so .osm.pbf cannot be read; "
            "convert it to .osm XML (osmium cat x.osm.pbf -o x.osm)",
            f"{path.name}：当前 GDAL 不含 OSM 驱动，无法读取 .osm.pbf；请先转换为 .osm XML（osmium cat x.osm.pbf -o x.osm）",
        )
    gdf = pyogrio.read_dataframe(path, layer="lines")
    gdf = gdf[gdf["highway"].notna()].copy()
    tags = gdf["other_tags"].fillna("").map(lambda s: dict(re.findall(r'"([^"]+)"=>"([^"]*)"', s)))
    for col in ("oneway", "maxspeed", "access", "foot", "bicycle", "service", "area", "bridge", "tunnel", "layer"):
        gdf[col] = tags.map(lambda d, c=col: d.get(c))
    gdf = gdf.set_crs(WGS84, allow_override=True)
    src = _read_line_file(path, gdf, ref_nodes)
    src.kind = "osm"
    src.year = _year_from_name(path)
    return src


def _stable_id(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Negative ids from rounded coordinates (stable across runs and merges)."""
    out = np.empty(len(x), dtype="int64")
    for i, (a, b) in enumerate(zip(np.round(x, 7), np.round(y, 7))):
        h = hashlib.blake2b(f"{a:.7f},{b:.7f}".encode(), digest_size=6).digest()
        out[i] = -(int.from_bytes(h, "big") + 1)
    return out


def _read_line_file(path: Path, gdf: gpd.GeoDataFrame, ref_nodes: pd.DataFrame | None) -> RoadSource:
    gdf = gdf.rename(columns={c: c.lower() for c in gdf.columns if c != "geometry"})
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    gdf = gdf.explode(index_parts=False).reset_index(drop=True)
    gdf = gdf[gdf.geom_type == "LineString"].reset_index(drop=True)
    if "highway" not in gdf.columns:
        gdf["highway"] = gdf["fclass"] if "fclass" in gdf.columns else "unclassified"
    # oneway: Geofabrik uses F (forward), T (backward), B (both); OSM yes / -1
    ow = gdf["oneway"].astype(str) if "oneway" in gdf.columns else pd.Series("", index=gdf.index)
    backward = ow.isin(["T", "-1"]).to_numpy()
    geoms = gdf.geometry.values.copy()
    geoms[backward] = shapely.reverse(geoms[backward])
    oneway = ow.isin(["F", "T", "-1", "yes", "true", "1", "True"]).to_numpy()
    layer = pd.to_numeric(gdf.get("layer"), errors="coerce").fillna(0).to_numpy() if "layer" in gdf else np.zeros(len(gdf))
    elevated = np.zeros(len(gdf), dtype=bool)
    for col in ("bridge", "tunnel"):
        if col in gdf.columns:
            elevated |= gdf[col].isin(["T", "yes", "true", True, 1, "viaduct", "building_passage"]).to_numpy()
    elevated |= layer != 0

    lines_utm = shapely.transform(geoms, lambda c: np.column_stack(to_utm(c[:, 0], c[:, 1])))
    pieces = _split_lines(lines_utm, elevated)  # list of (line index, LineString utm)

    idx = np.array([p[0] for p in pieces], dtype=int)
    plines = np.array([p[1] for p in pieces], dtype=object)
    starts = shapely.get_coordinates(shapely.get_point(plines, 0))
    ends = shapely.get_coordinates(shapely.get_point(plines, -1))
    ends_all = np.vstack([starts, ends])
    # cluster endpoints within SNAP_M
    tree = cKDTree(ends_all)
    pairs = tree.query_pairs(SNAP_M, output_type="ndarray")
    m = len(ends_all)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(m, m)) if len(pairs) else coo_matrix((m, m))
    _, label = connected_components(graph, directed=False)
    rep = pd.Series(np.arange(m)).groupby(label).transform("min").to_numpy()
    rep_xy = ends_all[rep]
    # node ids: OSM id of a nearby node of another source, else a stable negative id
    uniq, inv = np.unique(label, return_inverse=True)
    node_xy = np.zeros((len(uniq), 2))
    node_xy[inv] = rep_xy
    lon, lat = to_wgs(node_xy[:, 0], node_xy[:, 1])
    ids = _stable_id(lon, lat)
    matched = 0
    if ref_nodes is not None and len(ref_nodes):
        rx, ry = to_utm(ref_nodes["x"].to_numpy(), ref_nodes["y"].to_numpy())
        d, j = cKDTree(np.column_stack([rx, ry])).query(node_xy, distance_upper_bound=MATCH_M)
        hit = np.isfinite(d)
        ids[hit] = ref_nodes.index.to_numpy()[j[hit]]
        node_xy[hit, 0], node_xy[hit, 1] = rx[j[hit]], ry[j[hit]]
        lon[hit], lat[hit] = ref_nodes["x"].to_numpy()[j[hit]], ref_nodes["y"].to_numpy()[j[hit]]
        matched = int(hit.sum())
    k = len(pieces)
    u_node, v_node = inv[:k], inv[k:]
    # move piece ends onto their node position
    coords_list = []
    for t, line in enumerate(plines):
        c = shapely.get_coordinates(line)
        c[0] = node_xy[u_node[t]]
        c[-1] = node_xy[v_node[t]]
        coords_list.append(c)
    if coords_list:
        plines = shapely.linestrings(
            np.vstack(coords_list), indices=np.repeat(np.arange(len(coords_list)), [len(c) for c in coords_list])
        )
    else:
        plines = np.array([], dtype=object)
    geo = shapely.transform(plines, lambda c: np.column_stack(to_wgs(c[:, 0], c[:, 1])))
    out = pd.DataFrame({"u": ids[u_node], "v": ids[v_node]})
    for col in ("osm_id", "highway", "name", "access", "foot", "bicycle", "service", "area", "maxspeed"):
        out[col if col != "osm_id" else "osmid"] = gdf[col].to_numpy()[idx] if col in gdf.columns else None
    out["osmid"] = out["osmid"].astype(str)
    out["oneway"] = oneway[idx]
    out["maxspeed"] = pd.to_numeric(out["maxspeed"].map(_parse_speed), errors="coerce")
    out["bridge"] = elevated[idx]
    out["geometry"] = geo
    e = _clean_edges(gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84))
    n = pd.DataFrame({"x": lon, "y": lat}, index=pd.Index(ids, dtype="int64"))
    n = n[~n.index.duplicated()]
    coverage = shapely.convex_hull(shapely.union_all(geoms))
    notes = [f"{len(gdf)} lines split into {len(e)} edges; {matched} junctions matched to OSM node ids of other sources"]
    return RoadSource(path, "lines", _year_from_name(path), e, n, coverage, notes)


def _split_lines(lines: np.ndarray, elevated: np.ndarray) -> list[tuple[int, shapely.LineString]]:
    """Split projected lines at junctions.

    Junctions: vertices shared by two lines (or twice by one), endpoints within
    :data:`SNAP_M` of another line, and crossings of two lines that are both at
    grade (not bridge/tunnel, layer 0).
    """
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    n = len(lines)
    vert = pd.DataFrame({"x": np.round(coords[:, 0], 2), "y": np.round(coords[:, 1], 2), "i": owner})
    counts = vert.groupby(["x", "y"])["i"].transform("size").to_numpy()
    shared = counts > 1
    cuts: list[list[float]] = [[] for _ in range(n)]
    # distances along each line of its vertices
    seg = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    same = owner[1:] == owner[:-1]
    cum = np.zeros(len(coords))
    acc = 0.0
    for k in range(1, len(coords)):
        acc = acc + seg[k - 1] if same[k - 1] else 0.0
        cum[k] = acc
    for k in np.flatnonzero(shared):
        cuts[owner[k]].append(cum[k])
    tree = shapely.STRtree(lines)
    # endpoints on another line's interior (T-junctions without a shared vertex)
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    end_owner = np.concatenate([np.arange(n), np.arange(n)])
    pi, li = tree.query(ends, predicate="dwithin", distance=SNAP_M)
    keep = end_owner[pi] != li
    for p, line in zip(pi[keep], li[keep]):
        cuts[line].append(float(shapely.line_locate_point(lines[line], ends[p])))
    # at-grade crossings
    a, b = tree.query(lines, predicate="crosses")
    keep = (a < b) & ~elevated[a] & ~elevated[b]
    a, b = a[keep], b[keep]
    if len(a):
        inter = shapely.intersection(lines[a], lines[b])
        for ia, ib, g in zip(a, b, inter):
            for pt in shapely.get_parts(g):
                if pt.geom_type != "Point":
                    continue
                cuts[ia].append(float(shapely.line_locate_point(lines[ia], pt)))
                cuts[ib].append(float(shapely.line_locate_point(lines[ib], pt)))
    out: list[tuple[int, shapely.LineString]] = []
    for i, line in enumerate(lines):
        for piece in _cut(line, cuts[i]):
            out.append((i, piece))
    return out


def _cut(line: shapely.LineString, dists: list[float], tol: float = 0.05) -> list[shapely.LineString]:
    """Cut a line at the given distances along it (vertices are kept)."""
    c = shapely.get_coordinates(line)
    seg = np.hypot(np.diff(c[:, 0]), np.diff(c[:, 1]))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    ds = np.unique(np.round([d for d in dists if tol < d < total - tol], 2))
    if len(ds) == 0:
        return [line] if total > 0 else []
    # insert cut points as vertices
    pts_d = list(cum)
    pts = [tuple(p) for p in c]
    ins_d = []
    ins_p = []
    for d in ds:
        k = int(np.searchsorted(cum, d))
        if abs(cum[min(k, len(cum) - 1)] - d) <= tol or abs(cum[max(k - 1, 0)] - d) <= tol:
            continue
        f = (d - cum[k - 1]) / (cum[k] - cum[k - 1])
        ins_d.append(d)
        ins_p.append(tuple(c[k - 1] + f * (c[k] - c[k - 1])))
    all_d = np.array(pts_d + ins_d)
    all_p = np.array(pts + ins_p)
    order = np.argsort(all_d, kind="stable")
    all_d, all_p = all_d[order], all_p[order]
    cut_at = [int(np.argmin(np.abs(all_d - d))) for d in ds]
    bounds = sorted(set([0, *cut_at, len(all_d) - 1]))
    out = []
    for s, t in zip(bounds[:-1], bounds[1:]):
        if t > s and all_d[t] - all_d[s] > 1e-6:
            out.append(shapely.LineString(all_p[s : t + 1]))
    return out
