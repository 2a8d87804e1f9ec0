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
    # with a store (issue 19): the grids as stored now (redrawn ones included) and their history
    "grid_history": ["grid", "field", "old_value", "new_value", "changed_by", "changed_at", "source"],
}
#: Columns of the ``grids`` layer when written from the store: the current grids, their version and last change.
STORED_GRID_COLUMNS = ["id", "community", "community_code", "street", "workload", "approximate", "version",
                       "updated_at", "updated_by"]


def stored_grid_frames(engine: Engine) -> dict[str, gpd.GeoDataFrame]:
    """The grids as the store holds them now (after splits, merges, imports) and the grid history.

    ``grids``: one row per current grid, ``version`` = 1 + the changes recorded for it in the register
    history (``register_change`` rows of entity ``grid``); ``grid_history``: those rows (no geometry;
    the old/new geometry as WKT text).
    """
    from sqlalchemy import select

    from gridmap.store.models import Community, Grid, RegisterChange, Street

    with engine.connect() as conn:
        rows = conn.execute(
            select(Grid.id, Grid.code, Grid.workload, Grid.approximate, Grid.geom, Grid.updated_at, Grid.updated_by,
                   Community.name.label("community"), Community.code.label("community_code"),
                   Street.name.label("street"))
            .join(Community, Community.id == Grid.community_id).join(Street, Street.id == Community.street_id)
            .order_by(Grid.code)).all()
        hist = conn.execute(select(RegisterChange.entity_id, RegisterChange.field, RegisterChange.old_value,
                                   RegisterChange.new_value, RegisterChange.changed_by, RegisterChange.changed_at,
                                   RegisterChange.source)
                            .where(RegisterChange.entity == "grid").order_by(RegisterChange.id)).all()
    code_of = {r.id: r.code for r in rows}
    changes: dict[int, int] = {}
    for h in hist:
        changes[h.entity_id] = changes.get(h.entity_id, 0) + 1
    grids = gpd.GeoDataFrame({
        "id": [r.code for r in rows], "community": [r.community for r in rows],
        "community_code": [r.community_code for r in rows], "street": [r.street for r in rows],
        "workload": [r.workload for r in rows], "approximate": [bool(r.approximate) for r in rows],
        "version": [1 + changes.get(r.id, 0) for r in rows],
        "updated_at": [None if r.updated_at is None else r.updated_at.isoformat() for r in rows],
        "updated_by": [r.updated_by for r in rows],
    }, geometry=[r.geom for r in rows], crs="EPSG:4326")
    history = gpd.GeoDataFrame({
        "grid": [code_of.get(h.entity_id, str(h.entity_id)) for h in hist], "field": [h.field for h in hist],
        "old_value": [h.old_value for h in hist], "new_value": [h.new_value for h in hist],
        "changed_by": [h.changed_by for h in hist],
        "changed_at": [None if h.changed_at is None else h.changed_at.isoformat() for h in hist],
        "source": [h.source for h in hist],
    }, geometry=[None] * len(hist), crs="EPSG:4326")
    return {"grids": grids, "grid_history": history}


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
    layers: Layers | None, out: Path | str, *, roads: bool = True, progress: bool = False,
    engine: Engine | None = None,
) -> dict[str, int]:
    """Write every layer into one GeoPackage (EPSG:4326) that opens in QGIS.

    Layers: ``district``, ``streets``, ``communities``, ``grids``,
    ``service_points`` and (with ``roads``) ``road_edges``; columns as in
    :data:`LAYER_COLUMNS`. With ``engine`` (a store), ``grids`` are the grids the store holds now —
    redrawn (split, merged, imported) ones included, with ``version``, ``updated_at``, ``updated_by``
    (:data:`STORED_GRID_COLUMNS`) — plus a ``grid_history`` table (:func:`stored_grid_frames`);
    ``layers`` may then be ``None`` (only those two layers). An existing file is replaced.

    Returns
    -------
    dict
        Rows written per layer.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    tmp.unlink(missing_ok=True)
    frames = _frames(layers) if layers is not None else {}
    columns = dict(LAYER_COLUMNS)
    if engine is not None:
        frames |= stored_grid_frames(engine)
        columns["grids"] = STORED_GRID_COLUMNS
    if roads:
        from gridmap.layers.roads import build_road_graph

        frames["road_edges"] = road_edges_frame(build_road_graph(mode="walk", progress=progress))
    written: dict[str, int] = {}
    try:
        for name, gdf in frames.items():
            cols = [c for c in columns[name] if c in gdf.columns]
            missing = set(columns[name]) - set(cols)
            if missing:
                raise GridmapError(
                    f"layer {name} lacks columns {sorted(missing)}",
                    f"图层{name}缺少字段{sorted(missing)}",
                )
            frame = gpd.GeoDataFrame(gdf[cols].copy(), geometry=gdf.geometry.values, crs=gdf.crs)
            for c in cols:
                if frame[c].dtype == object:
                    frame[c] = frame[c].map(lambda x: None if x is None or x == "" else str(x))
            if frame.geometry.isna().all():  # an attribute table (grid_history)
                import pyogrio

                pyogrio.write_dataframe(pd.DataFrame(frame[cols]), tmp, layer=name, driver="GPKG")
            else:
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
