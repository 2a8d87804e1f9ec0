"""Export the map layers for GIS users: one GeoPackage, or road edges as a PostGIS table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from gridmap._errors import GridmapError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gridmap.layers.build import Layers

#: Layer name → columns written (besides the geometry), the export contract.
LAYER_COLUMNS: dict[str, list[str]] = {
    "district": ["name", "code"],
    "streets": ["name", "code", "pop_2020", "area_km2", "approximate"],
    "communities": ["name", "code", "street", "street_code", "kind", "approximate"],
    "grids": ["id", "community", "community_code", "street", "workload", "approximate"],
    "service_points": ["name", "kind", "street", "community_code", "synthetic", "issue"],
    "road_edges": ["u", "v", "osm_way_id", "highway", "name", "length_m", "source"],
}


def _frames(layers: Layers) -> dict[str, gpd.GeoDataFrame]:
    district = layers.district.copy()
    district["code"] = "110108000000"
    grids = layers.grids.rename(columns={"grid_id": "id"})
    return {
        "district": district,
        "streets": layers.streets,
        "communities": layers.communities,
        "grids": grids,
        "service_points": layers.service_points,
    }


def road_edges_frame(G: Any) -> gpd.GeoDataFrame:
    """The walk graph's edges as one row per road segment (u/v OSM node ids, highway, length_m)."""
    import osmnx as ox

    edges = ox.graph_to_gdfs(G, nodes=False, fill_edge_geometry=True).reset_index()
    edges = edges[edges["u"] < edges["v"]] if "key" in edges else edges  # walk graphs hold both directions
    out = pd.DataFrame({
        "u": edges["u"].astype("int64"),
        "v": edges["v"].astype("int64"),
        "osm_way_id": edges.get("osmid", pd.Series([None] * len(edges))).map(
            lambda x: ",".join(map(str, x)) if isinstance(x, list) else (None if pd.isna(x) else str(x))
        ),
        "highway": edges.get("highway", pd.Series([None] * len(edges))).map(
            lambda x: ",".join(map(str, x)) if isinstance(x, list) else x
        ),
        "name": edges.get("name", pd.Series([None] * len(edges))).map(
            lambda x: ",".join(map(str, x)) if isinstance(x, list) else x
        ),
        "length_m": edges["length"].astype(float).round(1),
        "source": edges.get("source", pd.Series([None] * len(edges))).astype("string"),
    })
    return gpd.GeoDataFrame(out, geometry=edges.geometry.values, crs=edges.crs).to_crs("EPSG:4326")


def export_geopackage(
    layers: Layers, out: Path | str, *, roads: bool = True, progress: bool = False
) -> dict[str, int]:
    """Write every layer into one GeoPackage (EPSG:4326) that opens in QGIS.

    Layers: ``district``, ``streets``, ``communities``, ``grids``,
    ``service_points`` and (with ``roads``) ``road_edges``; columns as in
    :data:`LAYER_COLUMNS`. An existing file is replaced.

    Returns
    -------
    dict
        Rows written per layer.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    tmp.unlink(missing_ok=True)
    frames = _frames(layers)
    if roads:
        from gridmap.layers.roads import build_road_graph

        frames["road_edges"] = road_edges_frame(build_road_graph(mode="walk", progress=progress))
    written: dict[str, int] = {}
    try:
        for name, gdf in frames.items():
            cols = [c for c in LAYER_COLUMNS[name] if c in gdf.columns]
            missing = set(LAYER_COLUMNS[name]) - set(cols)
            if missing:
                raise GridmapError(
                    f"layer {name} lacks columns {sorted(missing)}",
                    f"图层{name}缺少字段{sorted(missing)}",
                )
            frame = gpd.GeoDataFrame(gdf[cols].copy(), geometry=gdf.geometry.values, crs=gdf.crs)
            for c in cols:
                if frame[c].dtype == object:
                    frame[c] = frame[c].map(lambda x: None if x is None or x == "" else str(x))
            frame.to_crs("EPSG:4326").to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
            written[name] = len(frame)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def export_road_edges_postgis(G: Any, engine: Engine, table: str = "road_edges") -> int:
    """Write the walk graph's edges to a PostGIS table with a GiST index (QGIS opens it directly)."""
    if engine.dialect.name != "postgresql":
        raise GridmapError("road_edges tables are written to PostGIS only", "道路图层仅写入PostGIS")
    frame = road_edges_frame(G)
    frame.rename_geometry("geom").to_postgis(table, engine, if_exists="replace", index=False)
    return len(frame)
