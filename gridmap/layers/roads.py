"""Build the routable road network (walk, bike, e-bike, car) from whatever OSM data is on disk.

Sources are found under ``<data_dir>/haidian/roads/`` (see
:mod:`gridmap.layers._osm_sources` for the file kinds). They are merged on OSM
node ids: where a newer, more detailed source covers an area (its ``<bounds>``
or the hull of its lines), the edges of older sources with both ends inside
that area are dropped, an identical node pair is kept only once (from the
better source), and an old edge left hanging inside the area is joined to the
nearest node of the newer network by a short ``connector`` edge.

Each mode keeps the edges it may use (see :data:`MODE_EXCLUDE`) and its largest
strongly connected component. Walk, bike and e-bike graphs have every edge in
both directions; the car graph respects ``oneway``. Edge attributes: ``length``
(metres, measured in UTM 50N), ``travel_time_<mode>`` (seconds), ``eid`` (id of
the undirected way piece, shared by both directions), ``source``,
``priority``, ``year``, ``highway``, ``name``, ``oneway``, ``geometry``
(EPSG:4326).

Speeds (documented assumptions)
-------------------------------
* walk 4.5 km/h (1.25 m/s), a typical adult pace for visitors; steps at half
  speed. Pass ``speeds={"walk": 3.6}`` for slower walkers.
* bike 12 km/h, a conservative urban average including junction delays.
* ebike 18 km/h, below the 25 km/h legal maximum (GB 17761-2018).
* car: ``maxspeed`` or a default per road class (:data:`CAR_DEFAULT_KMH`),
  times :data:`CAR_CONGESTION` = 0.6 for Beijing urban traffic.

Built graphs are cached under ``<cache_dir>/roads/<key>/`` where the key hashes
the input files' contents, the mode, the speeds and :data:`CACHE_VERSION`:
``<mode>.graphml`` (portable, readable by osmnx and other tools) and
``<mode>.pickle`` (the same graph, loaded about 10x faster than GraphML; only
files this module wrote there are read).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import socket
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from gridmap._errors import DataDirError, GridmapError, ValidationError
from gridmap.config import get_settings
from gridmap.layers._osm_sources import (
    UTM,
    WGS84,
    RoadSource,
    discover_sources,
    read_source,
    source_kind_of,
    to_utm,
    to_wgs,
)

#: Bump when the build logic changes, to invalidate cached graphs.
CACHE_VERSION = "roads-2"
MODES: tuple[str, ...] = ("walk", "bike", "ebike", "car")
#: Travel speeds in km/h (car: fallback for the straight-line estimate only).
SPEED_KMH: dict[str, float] = {"walk": 4.5, "bike": 12.0, "ebike": 18.0, "car": 25.0}
#: Walking on steps is slower by this factor.
STEPS_FACTOR = 0.5
#: Car speed (km/h) by road class where ``maxspeed`` is missing.
CAR_DEFAULT_KMH: dict[str, float] = {
    "motorway": 80, "motorway_link": 40, "trunk": 60, "trunk_link": 40, "primary": 50,
    "primary_link": 30, "secondary": 40, "secondary_link": 30, "tertiary": 35,
    "tertiary_link": 25, "unclassified": 25, "residential": 20, "living_street": 10,
    "service": 15, "road": 25,
}
#: Urban congestion factor applied to car speeds.
CAR_CONGESTION = 0.6
#: ``highway`` values a mode may not use (after osmnx's network-type filters).
_NEVER = {"abandoned", "bus_guideway", "construction", "planned", "proposed", "raceway",
          "razed", "corridor", "elevator", "escalator", "rest_area", "services", "bus_stop"}
MODE_EXCLUDE: dict[str, set[str]] = {
    "walk": _NEVER | {"motorway", "motorway_link"},
    "bike": _NEVER | {"motorway", "motorway_link", "footway", "steps", "platform"},
    "ebike": _NEVER | {"motorway", "motorway_link", "footway", "steps", "platform"},
    "car": _NEVER | {"footway", "steps", "platform", "pedestrian", "path", "cycleway", "track",
                     "bridleway", "crossing", "other"},
}
#: A point farther than this (metres) from the network is ``far``: its travel
#: estimates use the straight line times the detour factor.
FAR_M = 300.0
#: Old edges left hanging inside a newer source's coverage are joined to the
#: newer network if its nearest node is within this distance (metres).
CONNECT_M = 100.0

_SNAP_INDEX: weakref.WeakKeyDictionary[nx.MultiDiGraph, _EdgeIndex] = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------ sources and merge


def load_sources(
    data_dir: Path | str | None = None, sources: Sequence[Path | str] | None = None
) -> list[RoadSource]:
    """Read all road sources.

    Parameters
    ----------
    data_dir
        Data directory (default ``get_settings().data_dir``); files are found
        under ``haidian/roads/``.
    sources
        Explicit list of files instead of scanning.

    Returns
    -------
    list of RoadSource
        Line files are read last so their junctions can take the OSM ids of
        other sources' nodes.
    """
    paths = _source_paths(data_dir, sources)
    first = [p for p in paths if not _is_line_file(p)]
    later = [p for p in paths if _is_line_file(p)]
    out = [read_source(p) for p in first]
    for p in later:
        ref = pd.concat([s.nodes for s in out]) if out else None
        if ref is not None:
            ref = ref[~ref.index.duplicated()]
        out.append(read_source(p, ref))
    return out


def _is_line_file(path: Path) -> bool:
    kind = source_kind_of(path)
    if kind == "pbf":
        return True
    if kind != "vector":
        return False
    import pyogrio

    fields = {f.lower() for f in pyogrio.read_info(path)["fields"]}
    return not {"u", "v"} <= fields


def _source_paths(data_dir: Path | str | None, sources: Sequence[Path | str] | None) -> list[Path]:
    if sources is not None:
        paths = [Path(p) for p in sources]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataDirError(f"road files not found: {missing}", f"未找到道路文件：{missing}")
        return paths
    root = Path(data_dir) if data_dir is not None else get_settings().data_dir
    paths = discover_sources(root / "haidian" / "roads")
    if not paths:
        raise DataDirError(
            f"no road data (.osm, .osm.pbf, GeoJSON) under {root / 'haidian' / 'roads'}",
            f"{root / 'haidian' / 'roads'} 下没有道路数据（.osm、.osm.pbf 或 GeoJSON）",
        )
    return paths


def merge_sources(sources: Sequence[RoadSource]) -> tuple[gpd.GeoDataFrame, pd.DataFrame, list[str]]:
    """Merge road sources into one edge table, better sources first.

    Parameters
    ----------
    sources
        Sources as read by :func:`load_sources`.

    Returns
    -------
    edges : GeoDataFrame
        One row per undirected way piece (``u``, ``v`` oriented along the way;
        ``oneway`` = only ``u -> v``), with ``source``, ``priority``, ``year``,
        ``length`` and ``eid``.
    nodes : DataFrame
        Index = node id, columns ``x``, ``y`` (lon, lat).
    notes : list of str
        What was dropped and joined, per source.
    """
    order = sorted(sources, key=lambda s: s.rank, reverse=True)
    kept: list[gpd.GeoDataFrame] = []
    node_parts: list[pd.DataFrame] = []
    node_ids = pd.Index([], dtype="int64")
    pairs: set[tuple[int, int]] = set()
    cover = None
    notes: list[str] = []
    for prio, src in zip(range(len(order), 0, -1), order):
        e = src.edges.copy()
        e["source"] = src.name
        e["priority"] = prio
        e["year"] = float(src.year) if src.year else np.nan
        n_in = len(e)
        xy = src.nodes
        ux, uy = xy.loc[e["u"], "x"].to_numpy(), xy.loc[e["u"], "y"].to_numpy()
        vx, vy = xy.loc[e["v"], "x"].to_numpy(), xy.loc[e["v"], "y"].to_numpy()
        dropped_cover = 0
        if cover is not None:
            inside = shapely.contains_xy(cover, ux, uy) & shapely.contains_xy(cover, vx, vy)
            dropped_cover = int(inside.sum())
            e = e[~inside]
        a = np.minimum(e["u"].to_numpy(), e["v"].to_numpy())
        b = np.maximum(e["u"].to_numpy(), e["v"].to_numpy())
        dup_other = np.fromiter(((x, y) in pairs for x, y in zip(a, b)), bool, len(a))
        e = e[~dup_other]
        # duplicates within the source: same node pair and same shape (length and midpoint
        # within 1 m); a two-way copy, or oneway copies in both directions, make it two-way
        e, dup_self = _dedupe_same_shape(e)
        used = pd.Index(np.unique(np.concatenate([e["u"].to_numpy(), e["v"].to_numpy()])))
        new_nodes = xy.loc[used.difference(node_ids)]
        # connectors for old nodes hanging inside the better sources' coverage
        connectors = None
        if cover is not None and len(node_ids) and len(new_nodes):
            hang = new_nodes[shapely.contains_xy(cover, new_nodes["x"].to_numpy(), new_nodes["y"].to_numpy())]
            if len(hang):
                have = pd.concat(node_parts)
                hx, hy = to_utm(have["x"].to_numpy(), have["y"].to_numpy())
                px, py = to_utm(hang["x"].to_numpy(), hang["y"].to_numpy())
                d, j = cKDTree(np.column_stack([hx, hy])).query(np.column_stack([px, py]),
                                                               distance_upper_bound=CONNECT_M)
                ok = np.isfinite(d) & (d > 0)
                if ok.any():  # not where an edge already joins the two
                    tgt_ids = have.index.to_numpy()[np.where(ok, j, 0)]
                    src_pairs = set(zip(e["u"].tolist(), e["v"].tolist()))
                    src_pairs |= {(b, a) for a, b in src_pairs}
                    ok &= np.array([(a, b) not in src_pairs and (min(a, b), max(a, b)) not in pairs
                                    for a, b in zip(hang.index.to_numpy(), tgt_ids)], dtype=bool)
                if ok.any():
                    tgt = have.iloc[j[ok]]
                    geoms = shapely.linestrings(
                        np.stack([hang[["x", "y"]].to_numpy()[ok], tgt[["x", "y"]].to_numpy()], axis=1)
                    )
                    connectors = gpd.GeoDataFrame({
                        "u": hang.index.to_numpy()[ok], "v": tgt.index.to_numpy(), "osmid": "",
                        "highway": "connector", "name": None, "oneway": False, "maxspeed": np.nan,
                        "access": None, "foot": None, "bicycle": None, "service": None, "area": None,
                        "bridge": False, "source": "connector", "priority": prio, "year": np.nan,
                    }, geometry=geoms, crs=WGS84)
        kept.append(e)
        if connectors is not None:
            kept.append(connectors)
        node_parts.append(new_nodes)
        node_ids = node_ids.append(new_nodes.index)
        pairs.update(zip(np.minimum(e["u"], e["v"]).tolist(), np.maximum(e["u"], e["v"]).tolist()))
        cover = src.coverage if cover is None else shapely.union(cover, src.coverage)
        notes.append(
            f"{src.name} ({src.kind}, {src.year or 'year unknown'}): {n_in} edges, {dropped_cover} dropped "
            f"inside better sources' coverage, {int(dup_other.sum())} duplicates of better sources, "
            f"{dup_self} duplicates within the file, "
            f"{0 if connectors is None else len(connectors)} connectors added"
            + ("; " + "; ".join(src.notes) if src.notes else "")
        )
    edges = gpd.GeoDataFrame(pd.concat(kept, ignore_index=True), geometry="geometry", crs=WGS84)
    nodes = pd.concat(node_parts)
    edges = _snap_edge_ends(edges, nodes)
    edges["length"] = shapely.length(edges.to_crs(UTM).geometry.values)
    edges["eid"] = np.arange(len(edges), dtype="int64")
    return edges, nodes, notes


def _dedupe_same_shape(e: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, int]:
    """Drop edges repeating another edge's node pair and shape; return the rest and the count dropped."""
    if not len(e):
        return e, 0
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    a, b = np.minimum(u, v), np.maximum(u, v)
    utm = e.to_crs(UTM).geometry.values
    mid = shapely.line_interpolate_point(utm, 0.5, normalized=True)
    key = pd.DataFrame({"a": a, "b": b, "l": np.round(shapely.length(utm)),
                        "mx": np.round(shapely.get_x(mid)), "my": np.round(shapely.get_y(mid))})
    group = key.groupby(["a", "b", "l", "mx", "my"], sort=False).ngroup().to_numpy()
    oneway = e["oneway"].to_numpy()
    g = pd.DataFrame({"g": group, "two": ~oneway, "fwd": oneway & (u == a), "bwd": oneway & (u != a)})
    agg = g.groupby("g").agg(two=("two", "any"), fwd=("fwd", "any"), bwd=("bwd", "any"))
    both = (agg["two"] | (agg["fwd"] & agg["bwd"])).to_numpy()
    first = ~pd.Series(group).duplicated().to_numpy()
    out = e[first].copy()
    out["oneway"] = out["oneway"].to_numpy() & ~both[group[first]]
    return out, int((~first).sum())


def _snap_edge_ends(edges: gpd.GeoDataFrame, nodes: pd.DataFrame) -> gpd.GeoDataFrame:
    """Move each edge's first/last vertex onto its node's coordinates."""
    coords, idx = shapely.get_coordinates(edges.geometry.values, return_index=True)
    first = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
    last = np.r_[first[1:] - 1, len(idx) - 1]
    coords[first] = nodes.loc[edges["u"], ["x", "y"]].to_numpy()
    coords[last] = nodes.loc[edges["v"], ["x", "y"]].to_numpy()
    edges = edges.copy()
    edges["geometry"] = shapely.linestrings(coords, indices=idx)
    return edges


# ------------------------------------------------------------------ modes


def _mode_mask(edges: pd.DataFrame, mode: str) -> np.ndarray:
    hw = edges["highway"].astype(str)
    ok = ~hw.isin(MODE_EXCLUDE[mode])
    access = edges["access"].astype(str)
    area = edges["area"].astype(str)
    ok &= ~area.isin(["yes"])
    if mode == "walk":
        ok &= ~edges["foot"].astype(str).isin(["no"])
        ok &= ~(access.isin(["no", "private"]) & ~edges["foot"].astype(str).isin(["yes", "designated"]))
    elif mode in ("bike", "ebike"):
        bike = edges["bicycle"].astype(str)
        ok |= hw.isin(["footway", "pedestrian"]) & bike.isin(["yes", "designated"])
        ok &= ~bike.isin(["no"])
        ok &= ~(access.isin(["no", "private"]) & ~bike.isin(["yes", "designated"]))
    else:
        ok &= ~access.isin(["no", "private"])
        ok &= ~edges["service"].astype(str).isin(["parking_aisle", "driveway", "emergency_access"])
    return ok.to_numpy()


def _travel_times(e: pd.DataFrame, mode: str, speeds: dict[str, float]) -> np.ndarray:
    length = e["length"].to_numpy()
    if mode == "car":
        kmh = e["maxspeed"].to_numpy(dtype=float)
        default = e["highway"].map(CAR_DEFAULT_KMH).fillna(25.0).to_numpy(dtype=float)
        kmh = np.where(np.isfinite(kmh) & (kmh > 0), kmh, default) * CAR_CONGESTION
        return length / (kmh / 3.6)
    t = length / (speeds[mode] / 3.6)
    if mode == "walk":
        t = np.where(e["highway"].to_numpy() == "steps", t / STEPS_FACTOR, t)
    return t


def graph_from_edges(
    edges: gpd.GeoDataFrame, nodes: pd.DataFrame, mode: str, speeds: dict[str, float] | None = None
) -> nx.MultiDiGraph:
    """Build one mode's graph (largest strongly connected component) from merged edges.

    Parameters
    ----------
    edges, nodes
        As returned by :func:`merge_sources`.
    mode
        One of :data:`MODES`.
    speeds
        Overrides of :data:`SPEED_KMH`.

    Returns
    -------
    networkx.MultiDiGraph
        osmnx-style graph; ``G.graph`` holds ``mode``, ``speed_kmh``,
        ``lscc_node_share``, ``lscc_km_share``, ``km_mode_total``.
    """
    if mode not in MODES:
        raise ValidationError(f"unknown travel mode {mode!r}; use one of {MODES}",
                              f"未知出行方式 {mode!r}，可选 {MODES}", field="mode", value=mode, code="mode")
    sp = {**SPEED_KMH, **(speeds or {})}
    e = edges[_mode_mask(edges, mode)]
    fwd = e.copy()
    back = e if mode != "car" else e[~e["oneway"]]
    back = back.copy()
    back["u"], back["v"] = back["v"].to_numpy(), back["u"].to_numpy()
    back["geometry"] = shapely.reverse(back.geometry.values)
    both = pd.concat([fwd, back], ignore_index=True)
    both["key"] = both.groupby(["u", "v"]).cumcount()
    for m in MODES:
        if m == mode or (mode in ("bike", "ebike") and m in ("bike", "ebike")):
            both[f"travel_time_{m}"] = _travel_times(both, m, sp)
    both["oneway"] = both["oneway"] if mode == "car" else False
    for col in ("name", "osmid", "access", "foot", "bicycle", "service", "area"):
        both[col] = both[col].where(both[col].notna(), None)
    both = both.drop(columns=["access", "foot", "bicycle", "service", "area"])
    both["osmid"] = both["osmid"].fillna("").astype(str)
    both["name"] = both["name"].fillna("").astype(str)
    used = np.unique(np.concatenate([both["u"].to_numpy(), both["v"].to_numpy()]))
    n = nodes.loc[used]
    gn = gpd.GeoDataFrame({"x": n["x"], "y": n["y"]}, geometry=gpd.points_from_xy(n["x"], n["y"]), crs=WGS84)
    gn.index.name = "osmid"
    ge = gpd.GeoDataFrame(both, geometry="geometry", crs=WGS84).set_index(["u", "v", "key"])
    import osmnx as ox

    G = ox.graph_from_gdfs(gn, ge, graph_attrs={"crs": WGS84})
    km_all = float(e["length"].sum() / 1000)
    n_all = G.number_of_nodes()
    G = ox.truncate.largest_component(G, strongly=True)
    km_kept = _km(G)
    G.graph.update({
        "mode": mode,
        "speed_kmh": float(sp[mode]),
        "km_mode_total": km_all,
        "nodes_mode_total": n_all,
        "lscc_node_share": G.number_of_nodes() / max(n_all, 1),
        "lscc_km_share": km_kept / km_all if km_all else 0.0,
    })
    return G


def _km(G: nx.MultiDiGraph) -> float:
    seen: dict[int, float] = {}
    for _, _, d in G.edges(data=True):
        seen[d["eid"]] = d["length"]
    return float(sum(seen.values()) / 1000)


# ------------------------------------------------------------------ build with cache


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cache_key(paths: Iterable[Path], mode: str, speeds: dict[str, float] | None = None) -> str:
    """Hash of the input files' contents, the mode, the speeds and :data:`CACHE_VERSION`."""
    spec = {
        "version": CACHE_VERSION,
        "mode": mode,
        "speeds": {**SPEED_KMH, **(speeds or {})},
        "car": [CAR_DEFAULT_KMH, CAR_CONGESTION],
        "files": sorted((p.name, _file_hash(p)) for p in paths),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def build_road_graph(
    data_dir: Path | str | None = None,
    mode: str = "walk",
    sources: Sequence[Path | str] | None = None,
    use_cache: bool = True,
    progress: bool = False,
    speeds: dict[str, float] | None = None,
) -> nx.MultiDiGraph:
    """Build (or load from cache) the routable graph of one travel mode.

    Parameters
    ----------
    data_dir
        Data directory (default ``get_settings().data_dir``); road files are
        found under ``haidian/roads/`` recursively.
    mode
        ``"walk"``, ``"bike"``, ``"ebike"`` or ``"car"``.
    sources
        Explicit list of road files instead of scanning.
    use_cache
        Load/save the built graph under ``<cache_dir>/roads/<key>/``.
    progress
        Print progress (for the CLI).
    speeds
        Overrides of :data:`SPEED_KMH` in km/h.

    Returns
    -------
    networkx.MultiDiGraph
        Largest strongly connected component; ``G.graph`` holds ``mode``,
        ``cache_key``, ``sources`` (JSON), ``merge_notes`` (JSON),
        ``lscc_node_share``, ``lscc_km_share``, ``detour_factor``.
    """
    if mode not in MODES:
        raise ValidationError(f"unknown travel mode {mode!r}; use one of {MODES}",
                              f"未知出行方式 {mode!r}，可选 {MODES}", field="mode", value=mode, code="mode")
    paths = _source_paths(data_dir, sources)
    key = cache_key(paths, mode, speeds)
    path = get_settings().cache_dir / "roads" / key / f"{mode}.graphml"
    say = _say if progress else (lambda msg: None)
    fast = path.with_suffix(".pickle")
    if use_cache and fast.is_file():
        say(f"loading cached {mode} graph {fast}")
        with fast.open("rb") as fh:
            return pickle.load(fh)  # our own cache file, written below
    if use_cache and path.is_file():
        say(f"loading cached {mode} graph {path}")
        return load_cached_graph(path)
    t0 = time.perf_counter()
    say(f"reading {len(paths)} road files")
    srcs = load_sources(sources=paths)
    say("merging sources")
    edges, nodes, notes = merge_sources(srcs)
    say(f"building {mode} graph")
    G = graph_from_edges(edges, nodes, mode, speeds)
    from gridmap.layers.travel import detour_factor

    G.graph.update({
        "cache_key": key,
        "sources": json.dumps([str(p) for p in paths], ensure_ascii=False),
        "merge_notes": json.dumps(notes, ensure_ascii=False),
        "km_merged_total": float(edges["length"].sum() / 1000),
        "detour_factor": detour_factor(G),
        "build_seconds": time.perf_counter() - t0,
    })
    if use_cache:
        import osmnx as ox

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        ox.save_graphml(G, tmp)
        tmp.replace(path)
        with tmp.open("wb") as fh:
            pickle.dump(G, fh, protocol=5)
        tmp.replace(fast)
        say(f"saved {path}")
    return G


def load_cached_graph(path: Path) -> nx.MultiDiGraph:
    """Load a graph saved by :func:`build_road_graph` (GraphML) with its attribute types."""
    import osmnx as ox

    edge_dtypes: dict[str, Any] = {
        "osmid": str, "eid": int, "priority": int, "year": float, "maxspeed": float, "bridge": _to_bool,
        "name": str, "source": str, "highway": str,
    }
    edge_dtypes.update({f"travel_time_{m}": float for m in MODES})
    graph_dtypes = {k: float for k in ("speed_kmh", "km_mode_total", "lscc_node_share", "lscc_km_share",
                                       "km_merged_total", "detour_factor", "build_seconds")}
    graph_dtypes["nodes_mode_total"] = int
    return ox.load_graphml(path, edge_dtypes=edge_dtypes, graph_dtypes=graph_dtypes)


def _to_bool(value: str) -> bool:
    return str(value) in ("True", "true", "1")


def _say(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).log(msg)


# ------------------------------------------------------------------ facts


def road_network_info(
    G: nx.MultiDiGraph, streets: gpd.GeoDataFrame | None = None, within_m: float = 300.0, grid_m: float = 25.0
) -> dict:
    """Summarise a road graph: size, kilometres, component share, per-street coverage.

    Parameters
    ----------
    G
        A graph from :func:`build_road_graph`.
    streets
        Street polygons (columns ``name``, ``geometry``), e.g.
        ``load_admin_layers().streets``.
    within_m
        Distance for the coverage figure.
    grid_m
        Spacing of the sample grid for the coverage share (metres).

    Returns
    -------
    dict
        ``nodes``, ``edges`` (directed), ``way_pieces`` (undirected), ``km``,
        ``lscc_node_share``, ``lscc_km_share``, ``sources``; with ``streets``
        also ``streets`` = list of ``{name, area_km2, share_within_<m>m, km}``.
    """
    seen: dict[int, shapely.Geometry] = {}
    for _, _, d in G.edges(data=True):
        seen.setdefault(d["eid"], d["geometry"])
    info: dict[str, Any] = {
        "mode": G.graph.get("mode"),
        "nodes": G.number_of_nodes(),
        "edges": G.number_of_edges(),
        "way_pieces": len(seen),
        "km": _km(G),
        "km_mode_total": G.graph.get("km_mode_total"),
        "lscc_node_share": G.graph.get("lscc_node_share"),
        "lscc_km_share": G.graph.get("lscc_km_share"),
        "detour_factor": G.graph.get("detour_factor"),
        "sources": json.loads(G.graph.get("sources", "[]")),
    }
    if streets is not None:
        lines = np.asarray(gpd.GeoSeries(list(seen.values()), crs=WGS84).to_crs(UTM).values, dtype=object)
        st = streets.to_crs(UTM)
        tree = shapely.STRtree(lines)
        rows = []
        for name, poly in zip(st["name"], st.geometry.values):
            # share of a regular grid of sample points (cell ``grid_m``) within ``within_m`` of a road
            x0, y0, x1, y1 = poly.bounds
            gx, gy = np.meshgrid(np.arange(x0 + grid_m / 2, x1, grid_m), np.arange(y0 + grid_m / 2, y1, grid_m))
            gx, gy = gx.ravel(), gy.ravel()
            inside = shapely.contains_xy(poly, gx, gy)
            pts = shapely.points(gx[inside], gy[inside])
            if len(pts):
                hit, _ = tree.query_nearest(pts, max_distance=within_m, all_matches=False)
                share = len(np.unique(hit)) / len(pts)
            else:
                share = float("nan")
            clipped = shapely.intersection(lines[tree.query(poly)], poly)
            rows.append({"name": name, "area_km2": poly.area / 1e6,
                         f"share_within_{int(within_m)}m": share,
                         "km": float(shapely.length(clipped).sum() / 1000)})
        info["streets"] = rows
    return info


# ------------------------------------------------------------------ snapping


@dataclass
class _EdgeIndex:
    tree: shapely.STRtree
    lines: np.ndarray  # UTM LineStrings, one per eid
    u: np.ndarray
    v: np.ndarray
    key: np.ndarray
    length: np.ndarray
    node_ids: np.ndarray
    node_pos: dict[int, int]


def _edge_index(G: nx.MultiDiGraph) -> _EdgeIndex:
    idx = _SNAP_INDEX.get(G)
    if idx is not None:
        return idx
    seen: set[int] = set()
    us, vs, ks, geoms, lens = [], [], [], [], []
    for u, v, k, d in G.edges(keys=True, data=True):
        if d["eid"] in seen:
            continue
        seen.add(d["eid"])
        us.append(u)
        vs.append(v)
        ks.append(k)
        geoms.append(d["geometry"])
        lens.append(d["length"])
    lines = gpd.GeoSeries(geoms, crs=WGS84).to_crs(UTM).values
    lines = np.asarray(lines, dtype=object)
    node_ids = np.fromiter(G.nodes, dtype="int64", count=G.number_of_nodes())
    idx = _EdgeIndex(shapely.STRtree(lines), lines, np.array(us, dtype="int64"), np.array(vs, dtype="int64"),
                     np.array(ks, dtype="int64"), np.array(lens, dtype=float), node_ids,
                     {n: i for i, n in enumerate(node_ids)})
    _SNAP_INDEX[G] = idx
    return idx


@dataclass
class SnapResult:
    """Where points meet the network (arrays of the points' length).

    Attributes
    ----------
    u, v, key
        The nearest edge.
    node
        The end of that edge nearer along it.
    position
        Distance along the edge from ``u``, as a fraction 0–1.
    distance_m
        Straight distance from the point to the edge (metres).
    far
        ``distance_m > far_m``: travel estimates for this point are straight-line × detour.
    x, y
        The points in UTM 50N metres.
    """

    u: np.ndarray
    v: np.ndarray
    key: np.ndarray
    node: np.ndarray
    position: np.ndarray
    distance_m: np.ndarray
    far: np.ndarray
    x: np.ndarray
    y: np.ndarray
    edge_length: np.ndarray


def snap_points(
    G: nx.MultiDiGraph, lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray,
    far_m: float = FAR_M,
) -> SnapResult:
    """Snap points to their nearest edge (vectorised STRtree nearest in UTM 50N).

    Parameters
    ----------
    G
        A graph from :func:`build_road_graph`.
    lons, lats
        WGS84 coordinates.
    far_m
        Points farther than this from any edge are flagged ``far``.

    Returns
    -------
    SnapResult
    """
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    if lons.shape != lats.shape or lons.ndim != 1:
        raise ValidationError("lons and lats must be 1-D arrays of the same length",
                              "经度和纬度须为等长的一维数组", field="lons", code="shape")
    if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise ValidationError("coordinates must be finite numbers", "坐标须为有限数值", field="lons", code="nan")
    idx = _edge_index(G)
    x, y = to_utm(lons, lats)
    pts = shapely.points(x, y)
    (pi, ei), dist = idx.tree.query_nearest(pts, return_distance=True, all_matches=False)
    order = np.argsort(pi)
    ei, dist = ei[order], dist[order]
    pos = shapely.line_locate_point(idx.lines[ei], pts, normalized=True)
    pos = np.nan_to_num(pos, nan=0.0)
    u, v = idx.u[ei], idx.v[ei]
    node = np.where(pos <= 0.5, u, v)
    return SnapResult(u, v, idx.key[ei], node, pos, dist, dist > far_m, x, y, idx.length[ei])


# ------------------------------------------------------------------ download


def fetch_extract(place: str, out_dir: Path | str, timeout: float = 180.0, connect_timeout: float = 5.0) -> Path:
    """Download a place's OSM road network with osmnx and save it as OSM XML.

    The file can be dropped into ``<data_dir>/haidian/roads/osm/``; it is then
    read by :func:`build_road_graph` with no code change.

    Parameters
    ----------
    place
        Place name for Nominatim, e.g. ``"海淀区, 北京"``.
    out_dir
        Directory for ``<place>.osm``.
    timeout
        osmnx request timeout (seconds) once the servers answer.
    connect_timeout
        Time allowed to reach the Nominatim and Overpass servers before giving up.

    Returns
    -------
    Path
        The written ``.osm`` file.

    Raises
    ------
    GridmapError
        When the servers cannot be reached (offline) or the download fails.
    """
    import osmnx as ox

    for url in (ox.settings.nominatim_url, ox.settings.overpass_url):
        parsed = urlparse(url)
        host = parsed.hostname or ""
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=connect_timeout):
                pass
        except OSError as exc:
            raise GridmapError(
                f"cannot download the OSM extract for {place!r}: {host} is unreachable ({exc}). "
                "Check the internet connection, or copy an .osm/.osm.pbf extract into the data "
                "directory's haidian/roads/ folder by hand.",
                f"无法下载“{place}”的 OSM 数据：无法连接 {host}（{exc}）。请检查网络连接，"
                "或手动将 .osm/.osm.pbf 数据文件复制到数据目录的 haidian/roads/ 下。",
            ) from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() else "_" for ch in place).strip("_") or "extract"
    target = out / f"{safe}.osm"
    old = (ox.settings.requests_timeout, ox.settings.all_oneway, list(ox.settings.useful_tags_way))
    ox.settings.requests_timeout = timeout
    ox.settings.all_oneway = True  # required by save_graph_xml for faithful ways
    ox.settings.useful_tags_way = sorted(set(old[2]) | {"foot", "bicycle", "sidewalk", "layer"})
    try:
        G = ox.graph_from_place(place, network_type="all", simplify=False, retain_all=True)
        ox.save_graph_xml(G, target)
    except Exception as exc:
        raise GridmapError(
            f"downloading the OSM extract for {place!r} failed: {exc}",
            f"下载“{place}”的 OSM 数据失败：{exc}",
        ) from exc
    finally:
        ox.settings.requests_timeout, ox.settings.all_oneway, ox.settings.useful_tags_way = old
    return target


__all__ = [
    "CACHE_VERSION", "FAR_M", "MODES", "SPEED_KMH", "SnapResult", "build_road_graph", "cache_key",
    "fetch_extract", "graph_from_edges", "load_cached_graph", "load_sources", "merge_sources",
    "road_network_info", "snap_points", "to_wgs",
]
