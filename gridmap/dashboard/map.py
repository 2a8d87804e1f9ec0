"""Map components of the dashboard: choropleth, clustered elders, hotspots, stations, roads, legend.

Everything is drawn with dash-leaflet. Styling functions live in
``assets/gridmap_map.js`` (``window.gridmap``) and are referenced as
``{"variable": "gridmap.<name>"}``. Overlays are shifted to GCJ-02 when the
basemap needs it (:mod:`gridmap.layers.crs`). Elders are shipped as geobuf
with client-side clustering and carry only an id and a status code.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import date
from typing import Any

import dash_leaflet as dl
import dash_leaflet.express as dlx
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from dash import html

from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.fmt import fmt_count, fmt_pct

__all__ = [
    "RATE_BINS",
    "STATIC_LAYERS",
    "HAZARD_MIN_ZOOM",
    "choropleth",
    "device_points",
    "device_summary",
    "elders_geobuf",
    "hazard_points",
    "estimated_area",
    "hotspots",
    "layer_url",
    "legend",
    "map_shell",
    "rate_colour",
    "road_lines",
    "route_layer",
    "static_layer",
    "stations",
]

HAIDIAN_CENTRE = (40.02, 116.24)

#: (lower bound, colour, label) of the weekly-rate choropleth, highest first.
RATE_BINS: list[tuple[float, str, str]] = [
    (1.0, "#1a9850", "100%（达标）"),
    (0.9, "#91cf60", "90%–100%"),
    (0.8, "#fee08b", "80%–90%"),
    (0.6, "#fc8d59", "60%–80%"),
    (0.0, "#d73027", "低于60%"),
]
NO_DATA = "#bdbdbd"
STATE_COLOURS = {"visited": "#1a9850", "due": "#f0ad4e", "overdue": "#d73027"}
STATE_LABELS = {"visited": "本周已探访", "due": "本周待探访", "overdue": "逾期未探访"}
STATION_LABELS = {"care_station": "养老驿站", "street_care_centre": "街道养老照料中心",
                  "district_care_centre": "区养老服务中心", "health_centre": "社区卫生服务中心",
                  "health_station": "社区卫生服务站", "clinic": "诊所"}

#: Zoom from which open hazards are drawn one by one (below it: the hotspot circles only).
HAZARD_MIN_ZOOM = 15
DEVICE_COLOURS = {"smoke_alarm": "#e6550d", "emergency_terminal": "#3182bd", "fire_kit": "#756bb1",
                  "health_monitor": "#31a354", "other": "#636363"}
DEVICE_LABELS = {"smoke_alarm": "联网烟感报警器", "emergency_terminal": "一键式智能终端", "fire_kit": "消防四件套",
                 "health_monitor": "健康监测设备", "other": "其他设备"}
SEVERITY_COLOURS = {"low": "#fdae6b", "medium": "#fd8d3c", "high": "#e6550d", "critical": "#a63603"}

_lock = threading.Lock()
_static: dict[Any, Any] = {}


def rate_colour(rate: float | None) -> str:
    """The choropleth colour of a weekly rate (grey when unknown)."""
    if rate is None or (isinstance(rate, float) and np.isnan(rate)):
        return NO_DATA
    for lo, colour, _ in RATE_BINS:
        if rate >= lo - 1e-9:
            return colour
    return RATE_BINS[-1][1]


def _shift(geom: gpd.GeoSeries, basemap: Basemap) -> gpd.GeoSeries:
    if not basemap.gcj02:
        return geom
    from gridmap.layers.crs import transform_geometry

    return geom.map(lambda g: transform_geometry(g, "WGS84", "GCJ-02"))


def _to_geojson(frame: pd.DataFrame, geom: gpd.GeoSeries, basemap: Basemap) -> dict[str, Any]:
    g = _shift(geom, basemap).reset_index(drop=True)
    g = gpd.GeoSeries(shapely.set_precision(g.to_numpy(), 0.00001), crs="EPSG:4326")  # ~1 m, smaller JSON
    gdf = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=g, crs="EPSG:4326")
    return json.loads(gdf.to_json(drop_id=True, na="null"))


def _simplified(layer: gpd.GeoDataFrame, name: str, tolerance: float) -> gpd.GeoSeries:
    key = ("simplified", name, len(layer), tolerance)
    with _lock:
        if key not in _static:
            _static[key] = layer.geometry.simplify(tolerance, preserve_topology=True)
        return _static[key]


def map_rates(ind: pd.DataFrame) -> pd.DataFrame:
    """The rates the map colours by: for the current week its progress against what is due by today.

    A week still in progress is coloured by ``week_progress`` (no colour while
    nothing is due, e.g. on its Monday), never by the share of the full week
    done so far, which is low on any day but Sunday.
    """
    if ind.empty or "week_progress" not in ind.columns:
        return ind
    return ind.assign(weekly_rate=ind["week_progress"])


def choropleth(layer: gpd.GeoDataFrame, level: str, indicators: pd.DataFrame, basemap: Basemap,
               key: str = "name") -> dict[str, Any]:
    """GeoJSON of areas with their weekly rate, its text and colour (grey: no data).

    Parameters
    ----------
    layer
        Streets, communities or grids (column ``key`` names the unit).
    indicators
        :func:`gridmap.rules.indicators.compute_indicators` at the same level.
    """
    tol = {"street": 0.0002, "community": 0.0001, "grid": 0.00005}.get(level, 0.0001)
    geom = _simplified(layer, level, tol)
    rates = indicators["weekly_rate"] if "weekly_rate" in indicators.columns else pd.Series(dtype=float)
    overdue = indicators["overdue"] if "overdue" in indicators.columns else pd.Series(dtype=float)
    elders = indicators["elders"] if "elders" in indicators.columns else pd.Series(dtype=float)
    keys = layer[key]
    names = keys.astype(str)
    r = keys.map(rates.to_dict()).astype(float)
    frame = pd.DataFrame({
        "name": names.to_numpy(),
        "label": (layer["name"] if "name" in layer.columns else
                  ("网格 " + layer["id"].astype(str)) if "id" in layer.columns else names).astype(str).to_numpy(),
        "rate": r.astype(float).round(4).to_numpy(),
        "rate_text": [fmt_pct(x) if pd.notna(x) else "无数据" for x in r],
        "elders": [fmt_count(x) if pd.notna(x) else "0" for x in keys.map(elders.to_dict())],
        "overdue": [int(x) if pd.notna(x) else 0 for x in keys.map(overdue.to_dict())],
        "color": [rate_colour(x if pd.notna(x) else None) for x in r],
        "level": level,
    })
    keep = r.notna().to_numpy() | (level != "grid")
    return _to_geojson(frame[keep], geom[keep], basemap)


def legend(title: str = "周探访率") -> html.Div:
    """The choropleth and elder-status legend (a panel over the map)."""
    rows = [html.Div([html.Span(style={"background": c, "display": "inline-block", "width": "14px",
                                       "height": "10px", "marginRight": "4px"}), label])
            for _, c, label in RATE_BINS]
    rows.append(html.Div([html.Span(style={"background": NO_DATA, "display": "inline-block", "width": "14px",
                                           "height": "10px", "marginRight": "4px"}), "无数据"]))
    rows.append(html.Hr(style={"margin": "3px 0"}))
    rows += [html.Div([html.Span(style={"background": c, "display": "inline-block", "width": "10px",
                                        "height": "10px", "borderRadius": "5px", "marginRight": "4px"}),
                       STATE_LABELS[k]]) for k, c in STATE_COLOURS.items()]
    rows.append(html.Div(["隐患热点（最久未整改）："] + [
        html.Span([html.Span(style={"background": c, "display": "inline-block", "width": "10px", "height": "10px",
                                    "borderRadius": "5px", "margin": "0 3px 0 6px", "opacity": 0.8}), label])
        for _low, c, label in HAZARD_AGE_BINS] + ["（放大后显示单个隐患 ▲）"]))
    rows.append(html.Div([html.Span("■", style={"color": DEVICE_COLOURS["smoke_alarm"], "marginRight": "4px"}),
                          "烟感", html.Span("■", style={"color": DEVICE_COLOURS["emergency_terminal"],
                                                       "margin": "0 4px 0 8px"}), "一键式终端"]))
    rows.append(html.Div([html.Span(style={"background": "rgba(120,120,120,0.35)", "display": "inline-block",
                                           "width": "14px", "height": "10px", "marginRight": "4px",
                                           "border": "1px dashed #555"}), "无路网数据（行程为估算）"]))
    return html.Div([html.B(title), *rows], className="gm-legend", id="map-legend")


def elders_geobuf(status: pd.DataFrame, basemap: Basemap) -> str:
    """Elders as geobuf (base64) with only ``id`` and ``s`` (status code) per point."""
    s = status[status["lon"].notna() & status["lat"].notna()]
    lon, lat = s["lon"].to_numpy(dtype=float), s["lat"].to_numpy(dtype=float)
    if basemap.gcj02 and len(s):
        from gridmap.layers.crs import wgs84_to_gcj02

        lon, lat = wgs84_to_gcj02(lon, lat)
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": {"id": i, "s": st}}
             for x, y, i, st in zip(np.round(lon, 6).tolist(), np.round(lat, 6).tolist(),
                                    s["elder_id"].astype(int).tolist(), s["state"].tolist(), strict=True)]
    return dlx.geojson_to_geobuf({"type": "FeatureCollection", "features": feats})


#: Open-hazard age bins of the hotspot layer (days open, at least) → colour, label.
HAZARD_AGE_BINS: list[tuple[int, str, str]] = [(0, "#fdae6b", "7天内"), (7, "#e6550d", "7–29天"),
                                               (30, "#7f0000", "30天及以上")]
#: Hazard states that count as open (待处理, 整改中).
OPEN_HAZARD_STATES = frozenset({"open", "in_progress"})


def open_hazards(hazards: pd.DataFrame) -> pd.DataFrame:
    """Hazards still to be fixed (待处理, 整改中); 已整改, 无法整改 and 已移交 are not."""
    return hazards[hazards["status"].astype(str).isin(OPEN_HAZARD_STATES)]


def hazard_age_days(hazards: pd.DataFrame, today: date) -> pd.Series:
    """Days each hazard has been open on ``today`` (0 on the day it was found)."""
    opened = pd.to_datetime(hazards["opened_on"], errors="coerce")
    return (pd.Timestamp(today) - opened).dt.days.clip(lower=0).fillna(0).astype(int)


def hotspots(hazards: pd.DataFrame, elders: pd.DataFrame, communities: gpd.GeoDataFrame,
             basemap: Basemap, today: date | None = None) -> dict[str, Any]:
    """Open hazards per community, as circles at the community's centre, coloured by age (the hotspot layer).

    Properties: ``n`` open hazards, ``age`` days the oldest has been open (on ``today``,
    default today in Beijing), ``c`` its colour (:data:`HAZARD_AGE_BINS`).
    """
    if hazards.empty:
        return {"type": "FeatureCollection", "features": []}
    from gridmap.dashboard.data import today_beijing

    open_h = open_hazards(hazards)
    open_h = open_h.assign(_age=hazard_age_days(open_h, today or today_beijing()).to_numpy())
    where = elders.drop_duplicates("elder_id").set_index("elder_id")[["street", "community"]]
    at = where.reindex(open_h["elder_id"].to_numpy()).assign(_age=open_h["_age"].to_numpy()).dropna(
        subset=["street", "community"])
    g = at.groupby(["street", "community"])  # community names repeat across streets
    counts, oldest = g.size(), g["_age"].max()
    c = communities[pd.MultiIndex.from_arrays([communities["street"], communities["name"]]).isin(counts.index)]
    c = c.drop_duplicates(["street", "name"])
    pts = c.geometry.representative_point()
    key = pd.MultiIndex.from_arrays([c["street"], c["name"]])
    n = counts.reindex(key).astype(int).to_numpy()
    age = oldest.reindex(key).fillna(0).astype(int).to_numpy()
    frame = pd.DataFrame({"name": c["name"].to_numpy(), "n": n, "age": age,
                          "c": [age_colour(int(a)) for a in age]})
    return _to_geojson(frame, gpd.GeoSeries(pts.to_numpy(), crs="EPSG:4326"), basemap)


def age_colour(days: int) -> str:
    """The colour of an open hazard's age (:data:`HAZARD_AGE_BINS`)."""
    colour = HAZARD_AGE_BINS[0][1]
    for low, c, _label in HAZARD_AGE_BINS:
        if days >= low:
            colour = c
    return colour


def _labels(enum_name: str) -> dict[str, str]:
    from gridmap.domain import enums

    return {m.value: m.label for m in getattr(enums, enum_name)}


def hazard_points(hazards: pd.DataFrame, status: pd.DataFrame, basemap: Basemap) -> dict[str, Any]:
    """Open hazards one by one at the elder's home (kind, severity, deadline; no personal field).

    Shipped only with the elders of a street or community (the same view shows their points);
    the map draws them from zoom :data:`HAZARD_MIN_ZOOM`.
    """
    empty = {"type": "FeatureCollection", "features": []}
    if hazards.empty or status.empty:
        return empty
    h = open_hazards(hazards)
    h = h[h["elder_id"].isin(status["elder_id"])]
    loc = status.drop_duplicates("elder_id").set_index("elder_id")[["lon", "lat"]]
    h = h.join(loc, on="elder_id").dropna(subset=["lon", "lat"])
    if h.empty:
        return empty
    kinds, sev, st = _labels("HazardKind"), _labels("Severity"), _labels("HazardStatus")
    frame = pd.DataFrame({
        "hz": [kinds.get(str(k), str(k)) for k in h["kind"]],
        "sev": h["severity"].astype(str).to_numpy(),
        "sev_text": [sev.get(str(k), str(k)) for k in h["severity"]],
        "st": [st.get(str(k), str(k)) for k in h["status"]],
        "deadline": [f"{d:%Y年%m月%d日}" if pd.notna(d) else "无" for d in pd.to_datetime(h["deadline"])],
    })
    return _to_geojson(frame, gpd.GeoSeries(gpd.points_from_xy(h["lon"], h["lat"]), crs="EPSG:4326"), basemap)


def _device_rows(elders: pd.DataFrame) -> pd.DataFrame:
    e = elders[["elder_id", "lon", "lat", "devices", "street", "community"]].dropna(subset=["lon", "lat"])
    e = e[e["devices"].map(lambda d: isinstance(d, (list, tuple, set, frozenset)) and len(d) > 0)]
    if e.empty:
        return pd.DataFrame(columns=["elder_id", "lon", "lat", "street", "community", "kind"])
    return e.explode("devices").rename(columns={"devices": "kind"}).assign(kind=lambda x: x["kind"].astype(str))


def device_points(elders: pd.DataFrame, basemap: Basemap) -> str:
    """Installed home-safety devices (geobuf, clustered on the map): only the device kind code per point
    (the map names it, :data:`DEVICE_LABELS`).

    One point per device at the elder's home, slightly fanned out when a home has several.
    """
    d = _device_rows(elders)
    if d.empty:
        return dlx.geojson_to_geobuf({"type": "FeatureCollection", "features": []})
    rank = d.groupby(level=0).cumcount().to_numpy()
    lon = d["lon"].to_numpy(dtype=float) + rank * 0.00004
    lat = d["lat"].to_numpy(dtype=float)
    if basemap.gcj02:
        from gridmap.layers.crs import wgs84_to_gcj02

        lon, lat = wgs84_to_gcj02(lon, lat)
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": {"k": k}}
             for x, y, k in zip(np.round(lon, 6).tolist(), np.round(lat, 6).tolist(), d["kind"].tolist(),
                                strict=True)]
    return dlx.geojson_to_geobuf({"type": "FeatureCollection", "features": feats})


def device_summary(elders: pd.DataFrame, communities: gpd.GeoDataFrame, basemap: Basemap,
                   coverage: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """Devices counted per community (smoke alarms, one-key terminals, others), at the community's centre;
    with ``coverage`` ((street, community) → text, issue 17 part B) each community's 覆盖率 in ``cov``."""
    d = _device_rows(elders)
    if d.empty:
        return {"type": "FeatureCollection", "features": []}
    t = d.groupby(["street", "community", "kind"]).size().unstack(fill_value=0)  # names repeat across streets
    c = communities[pd.MultiIndex.from_arrays([communities["street"], communities["name"]]).isin(t.index)]
    c = c.drop_duplicates(["street", "name"])
    t = t.reindex(pd.MultiIndex.from_arrays([c["street"], c["name"]])).fillna(0).astype(int)
    smoke = t.get("smoke_alarm", pd.Series(0, index=t.index))
    term = t.get("emergency_terminal", pd.Series(0, index=t.index))
    frame = pd.DataFrame({"name": c["name"].to_numpy(), "dev": t.sum(axis=1).to_numpy(),
                          "smoke": smoke.to_numpy(), "term": term.to_numpy()})
    if coverage is not None:  # issue 17 part B
        frame["cov"] = [coverage.get((s, n), "") for s, n in zip(c["street"], c["name"], strict=True)]
    return _to_geojson(frame, gpd.GeoSeries(c.geometry.representative_point().to_numpy(), crs="EPSG:4326"),
                       basemap)


def stations(points: gpd.GeoDataFrame, basemap: Basemap) -> dict[str, Any]:
    """Care stations and health centres with Chinese kind labels."""
    frame = pd.DataFrame({"name": points["name"].astype(str).to_numpy(),
                          "kind": points["kind"].astype(str).map(lambda k: STATION_LABELS.get(k, k)).to_numpy(),
                          "street": points["street"].astype(str).to_numpy()})
    return _to_geojson(frame, points.geometry, basemap)


def _road_graph() -> Any:
    from gridmap.layers.roads import build_road_graph

    with _lock:
        if "graph" not in _static:
            try:
                _static["graph"] = build_road_graph(mode="walk")
            except Exception:  # no road data: the map works without it  # noqa: BLE001
                _static["graph"] = None
        return _static["graph"]


def road_graph() -> Any:
    """The walk road graph (cached; ``None`` when no road data is available)."""
    return _road_graph()


def road_lines(basemap: Basemap) -> dict[str, Any]:
    """Main roads of the loaded network (offline background), simplified."""
    key = ("roads", basemap.gcj02)
    with _lock:
        if key in _static:
            return _static[key]
    G = _road_graph()
    if G is None:
        return {"type": "FeatureCollection", "features": []}
    major = {"motorway", "trunk", "primary", "secondary", "tertiary"}
    geoms, kinds = [], []
    seen = set()
    for u, v, d in G.edges(data=True):
        hw = d.get("highway")
        hw = hw[0] if isinstance(hw, list) else hw
        if hw not in major or (v, u) in seen:
            continue
        seen.add((u, v))
        g = d.get("geometry")
        if g is None:
            g = shapely.LineString([(G.nodes[u]["x"], G.nodes[u]["y"]), (G.nodes[v]["x"], G.nodes[v]["y"])])
        geoms.append(g)
        kinds.append(str(hw))
    # one (multi)line per road class: the browser then builds 4 layers instead of thousands of features
    # (each feature was its own SVG path: ~1 s of main-thread work on the first page)
    order = [k for k in ("motorway", "trunk", "primary", "secondary", "tertiary") if k in set(kinds)]
    ks = np.array(kinds)
    arr = np.array(geoms, dtype=object)
    merged = [shapely.line_merge(shapely.multilinestrings(list(arr[ks == k]))) for k in order]
    gs = gpd.GeoSeries(merged, crs="EPSG:4326").simplify(0.0001)
    out = _to_geojson(pd.DataFrame({"kind": order}), gs, basemap)
    with _lock:
        _static[key] = out
    return out


def estimated_area(district: gpd.GeoDataFrame, basemap: Basemap, buffer_m: float = 400.0,
                   cell_m: float = 250.0) -> dict[str, Any]:
    """Where travel times are only estimates: the district's cells farther than ``buffer_m`` from any road node.

    A ``cell_m`` grid over the district; a cell is covered when a node of the
    loaded road network lies within ``buffer_m`` of its centre (k-d tree).
    """
    key = ("estimated", basemap.gcj02)
    with _lock:
        if key in _static:
            return _static[key]
    from scipy.spatial import cKDTree

    G = _road_graph()
    d = district.to_crs(32650)
    if G is None or d.empty:
        area = district.geometry
    else:
        xs = np.array([n["x"] for _, n in G.nodes(data=True)])
        ys = np.array([n["y"] for _, n in G.nodes(data=True)])
        nodes = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=4326).to_crs(32650)
        tree = cKDTree(np.c_[nodes.x.to_numpy(), nodes.y.to_numpy()])
        x0, y0, x1, y1 = d.total_bounds
        gx, gy = np.meshgrid(np.arange(x0, x1, cell_m) + cell_m / 2, np.arange(y0, y1, cell_m) + cell_m / 2)
        cx, cy = gx.ravel(), gy.ravel()
        dist, _ = tree.query(np.c_[cx, cy], distance_upper_bound=buffer_m)
        far = ~np.isfinite(dist)
        h = cell_m / 2
        boxes = shapely.box(cx[far] - h, cy[far] - h, cx[far] + h, cy[far] + h)
        unc = shapely.union_all(boxes) if len(boxes) else shapely.Polygon()
        clipped = d.geometry.intersection(unc)
        area = gpd.GeoSeries(clipped, crs=32650).to_crs(4326).simplify(0.0003)
    out = _to_geojson(pd.DataFrame({"name": ["无路网数据区域（行程时间为估算）"] * len(area)}), area, basemap)
    with _lock:
        _static[key] = out
    return out


def route_layer(stops: pd.DataFrame, base: tuple[float, float] | None, basemap: Basemap,
                along_roads: bool = True, path: list[list[float]] | None = None) -> list[Any]:
    """A day's route: the path along the roads (straight where no road data) and numbered stops.

    ``path`` (lon/lat pairs, e.g. a stored plan's road geometry) is drawn as given;
    without it the legs between the stops are routed on the walk road graph.
    """
    pts = ([base] if base else []) + list(zip(stops["lon"], stops["lat"], strict=True))
    given = [(float(x), float(y)) for x, y in path] if path and len(path) >= 2 else None
    if basemap.gcj02:
        from gridmap.layers.crs import wgs84_to_gcj02

        if pts:
            xs, ys = wgs84_to_gcj02(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            pts = list(zip(xs, ys, strict=True))
        if given:
            xs, ys = wgs84_to_gcj02(np.array([p[0] for p in given]), np.array([p[1] for p in given]))
            given = list(zip(xs, ys, strict=True))
    children: list[Any] = []
    G = _road_graph() if along_roads and given is None else None
    path_: list[tuple[float, float]] = list(given or [])
    for a, b in ([] if given else itertools.pairwise(pts)):
        seg = [a, b]
        if G is not None and not basemap.gcj02:
            try:
                from gridmap.layers.travel import route_geometry

                seg = list(route_geometry(G, a[0], a[1], b[0], b[1]).geometry.coords)
            except Exception:  # noqa: BLE001 - fall back to a straight line
                seg = [a, b]
        path_ += seg
    if len(path_) >= 2:
        children.append(dl.Polyline(positions=[[round(y, 6), round(x, 6)] for x, y in path_], color="#1f4e79", weight=4,
                                    opacity=0.8, id="route-line"))
    if base:
        children.append(dl.CircleMarker(center=[pts[0][1], pts[0][0]], radius=8, color="#333", fillColor="#fff",
                                        fillOpacity=1, children=dl.Tooltip("出发点（驿站/办公点）")))
    offset = 1 if base else 0
    for i, r in enumerate(stops.itertuples(index=False)):
        x, y = pts[i + offset]
        children.append(dl.Marker(
            position=[y, x],
            icon={"iconUrl": _number_icon(int(r.order) if "order" in stops.columns else i + 1), "iconSize": [24, 24], "iconAnchor": [12, 12]},
            children=dl.Tooltip(f"第{int(r.order) if 'order' in stops.columns else i + 1}站 {r.label}"),
        ))
    return children


def _number_icon(n: int) -> str:
    import base64

    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24"><circle cx="12" cy="12" r="11" '
           f'fill="#1f4e79" stroke="white" stroke-width="2"/><text x="12" y="16" font-size="12" '
           f'text-anchor="middle" fill="white" font-family="sans-serif">{n}</text></svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


STATIC_LAYERS = ("roads", "estimated", "stations", "district")


def layer_url(name: str) -> str:
    """URL of a static overlay served by the app (fetched once by the browser, gzip, cacheable)."""
    return f"/gm-layers/{name}.json"


def static_layer(name: str, district: gpd.GeoDataFrame, service_points: gpd.GeoDataFrame,
                 basemap: Basemap) -> dict[str, Any]:
    """The GeoJSON of one static overlay (:data:`STATIC_LAYERS`)."""
    if name == "roads":
        return road_lines(basemap)
    if name == "estimated":
        return estimated_area(district, basemap)
    if name == "stations":
        return stations(service_points, basemap)
    if name == "district":
        return _to_geojson(pd.DataFrame({"name": district["name"]}), district.geometry, basemap)
    raise KeyError(name)


def map_shell(map_id: str, overlays: list[Any], basemap: Basemap, *, height: str = "62vh",
              zoom: int = 11, center: tuple[float, float] = HAIDIAN_CENTRE,
              bounds: list[list[float]] | None = None) -> dl.Map:
    """A map with the basemap (or the offline background colour), layer switcher and scale bar.

    With ``bounds`` (``[[south, west], [north, east]]``, e.g. a street user's own area) the map opens fitted to them.
    """
    # react-leaflet fits ``bounds`` only without center/zoom (those win when both are given)
    extra: dict[str, Any] = {"bounds": bounds} if bounds else {"center": center, "zoom": zoom}
    base: list[Any] = []
    if basemap.url:
        base.append(dl.BaseLayer(dl.TileLayer(url=basemap.url, attribution=basemap.attribution),
                                 name="底图", checked=True))
    return dl.Map(
        [dl.LayersControl(base + overlays, collapsed=False, id=f"{map_id}-layers"),
         dl.ScaleControl(position="bottomleft", imperial=False),
         dl.AttributionControl(prefix=basemap.attribution, position="bottomright")],
        id=map_id, className="gm-map", attributionControl=False,
        style={"height": height, "background": "#f4f1ea"}, **extra,
    )
