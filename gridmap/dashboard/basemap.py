"""Basemap choice: Tianditu, OpenStreetMap, Amap (GCJ-02) or an offline fallback.

Set ``GRIDMAP_BASEMAP`` to ``tianditu`` (needs ``GRIDMAP_TIANDITU_KEY``),
``osm``, ``amap`` or ``offline`` (default: ``offline``, which draws the loaded
road network and boundaries, as no tile server is reachable on these
machines), or ``GRIDMAP_TILE_URL`` to any XYZ template. Amap tiles are in
GCJ-02: every overlay is then shifted with :mod:`gridmap.layers.crs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

OSM_ATTRIBUTION = "© OpenStreetMap 贡献者 / contributors (ODbL)"


@dataclass(frozen=True)
class Basemap:
    """A tile source (``url`` None = offline) and whether overlays need the GCJ-02 shift."""

    name: str
    url: str | None
    attribution: str
    gcj02: bool = False


def basemap_from_env() -> Basemap:
    """The basemap configured by the environment."""
    custom = os.environ.get("GRIDMAP_TILE_URL")
    if custom:
        return Basemap("custom", custom, os.environ.get("GRIDMAP_TILE_ATTRIBUTION", OSM_ATTRIBUTION),
                       gcj02=os.environ.get("GRIDMAP_TILE_CRS", "").upper().replace("-", "") == "GCJ02")
    kind = os.environ.get("GRIDMAP_BASEMAP", "offline").lower()
    if kind == "tianditu":
        key = os.environ.get("GRIDMAP_TIANDITU_KEY", "")
        return Basemap(
            "tianditu",
            f"https://t{{s}}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            f"&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILECOL={{x}}&TILEROW={{y}}"
            f"&TILEMATRIX={{z}}&tk={key}",
            "天地图 © 国家地理信息公共服务平台 | " + OSM_ATTRIBUTION,
        )
    if kind == "osm":
        return Basemap("osm", "https://tile.openstreetmap.org/{z}/{x}/{y}.png", OSM_ATTRIBUTION)
    if kind == "amap":
        return Basemap(
            "amap",
            "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
            "© 高德地图 | " + OSM_ATTRIBUTION,
            gcj02=True,
        )
    return Basemap("offline", None, OSM_ATTRIBUTION)
