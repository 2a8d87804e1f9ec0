"""The Dash application: a Chinese-language map of the Haidian grid.

A thin layer over the store: layers are read with
:func:`gridmap.store.layers_store.read_layer` and drawn with dash-leaflet.
Later views (supervisor, steward, planner) plug into :func:`create_app`.
"""

from __future__ import annotations

import json
from typing import Any

import dash
import dash_leaflet as dl
import geopandas as gpd
from dash import html
from sqlalchemy import Engine

from gridmap.dashboard.basemap import Basemap, basemap_from_env
from gridmap.store.db import DatabaseUnavailable, check_connection
from gridmap.store.layers_store import read_layer

HAIDIAN_CENTRE = (39.99, 116.26)


def _geojson(gdf: gpd.GeoDataFrame, columns: list[str], basemap: Basemap, simplify: float = 0.0) -> dict[str, Any]:
    frame = gdf[[c for c in columns if c in gdf.columns]].copy()
    geom = gdf.geometry
    if simplify:
        geom = geom.simplify(simplify, preserve_topology=True)
    if basemap.gcj02:
        from gridmap.layers.crs import transform_geometry

        geom = geom.map(lambda g: transform_geometry(g, "WGS84", "GCJ-02"))
    frame = gpd.GeoDataFrame(frame, geometry=geom.values, crs="EPSG:4326")
    return json.loads(frame.to_json(drop_id=True))


def _error_page(exc: DatabaseUnavailable) -> html.Div:
    return html.Div(
        [html.H2("数据库暂时无法连接"), html.P(exc.message_zh), html.P(exc.message_en, style={"color": "#666"})],
        style={"padding": "2em", "fontFamily": "sans-serif"},
    )


def map_children(engine: Engine, basemap: Basemap) -> list[Any]:
    """The map's layers: basemap (or offline background), boundaries, service points."""
    streets = read_layer(engine, "streets")
    communities = read_layer(engine, "communities")
    points = read_layer(engine, "service_points")
    base: list[Any] = []
    if basemap.url:
        base.append(dl.BaseLayer(dl.TileLayer(url=basemap.url, attribution=basemap.attribution),
                                 name="底图", checked=True))
    overlays = [
        dl.Overlay(dl.GeoJSON(data=_geojson(streets, ["name", "pop_2020"], basemap, 0.0002), id="streets-layer",
                              options={"style": {"color": "#1f4e79", "weight": 2, "fillOpacity": 0.05}}),
                   name="街道/镇", checked=True),
        dl.Overlay(dl.GeoJSON(data=_geojson(communities, ["name", "street"], basemap, 0.0001),
                              id="communities-layer",
                              options={"style": {"color": "#7f7f7f", "weight": 1, "fillOpacity": 0}}),
                   name="社区/村（近似边界）", checked=False),
        dl.Overlay(dl.GeoJSON(data=_geojson(points, ["name", "kind", "street"], basemap), id="stations-layer",
                              cluster=True, zoomToBoundsOnClick=True),
                   name="服务站点", checked=True),
    ]
    return [dl.LayersControl(base + overlays), dl.ScaleControl(position="bottomleft")]


def create_app(engine: Engine, *, basemap: Basemap | None = None) -> dash.Dash:
    """Build the dashboard on a store that holds the layers."""
    basemap = basemap or basemap_from_env()
    app = dash.Dash(__name__, title="海淀区特殊困难老年人探访关爱", update_title="加载中…")

    def layout() -> html.Div:
        try:
            check_connection(engine)
            children = map_children(engine, basemap)
        except DatabaseUnavailable as exc:
            return _error_page(exc)
        return html.Div(
            [
                html.Header(
                    [html.H1("海淀区特殊困难老年人探访关爱 · 网格地图", style={"fontSize": "1.4em", "margin": "0.4em"})],
                    style={"background": "#1f4e79", "color": "white"},
                ),
                dl.Map(children, center=HAIDIAN_CENTRE, zoom=11, id="map",
                       style={"height": "calc(100vh - 90px)", "background": "#f4f1ea"}),
                html.Div(basemap.attribution, id="osm-attribution",
                         style={"position": "fixed", "right": "4px", "bottom": "2px", "fontSize": "11px",
                                "background": "rgba(255,255,255,0.8)", "padding": "1px 4px", "zIndex": 1000}),
            ],
            lang="zh-CN",
        )

    app.layout = layout

    @app.server.get("/healthz")
    def healthz() -> tuple[str, int]:
        try:
            check_connection(engine)
        except DatabaseUnavailable:
            return "database unavailable", 503
        return "ok", 200

    return app
