"""Grids a planner redrew (in QGIS or any GIS): read, check against the communities, hand back.

Grids are editable data. ``gridmap layers export`` writes them to a GeoPackage
layer ``grids``; a planner redraws them and ``gridmap layers grids-import``
reads the file back through :func:`read_grid_file`, which checks every row and
reports problems by row, field and reason (Chinese and English) before
anything is stored.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from gridmap._errors import GridmapError, ValidationError
from gridmap.layers.crs import METRIC_CRS, WGS84

#: How far (metres) a redrawn grid may stick out of its community.
OUTSIDE_TOLERANCE_M = 30.0


class GridFileError(GridmapError):
    """A grid file was rejected; ``errors`` lists every problem."""

    def __init__(self, errors: list[ValidationError]) -> None:
        self.errors = errors
        lines_en = "; ".join(e.message_en for e in errors[:20])
        lines_zh = "；".join(e.message_zh for e in errors[:20])
        more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} problem(s) in the grid file: {lines_en}{more}",
                         f"网格文件有{len(errors)}处问题：{lines_zh}{more}")


def read_grid_file(path: Path | str, communities: gpd.GeoDataFrame, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read redrawn grids and check them.

    Parameters
    ----------
    path
        A GeoPackage (layer ``grids`` by default), GeoJSON or shapefile.
    communities
        The communities (``code``, ``name``, ``street``, polygon geometry).
    layer
        Layer name inside a multi-layer file.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``grid_id``, ``community_code``, ``community``, ``street``,
        ``workload``, ``approximate`` (False: drawn by a person), geometry in
        EPSG:4326 — what :func:`gridmap.store.layers_store.save_admin_layers`
        takes.

    Raises
    ------
    GridFileError
        Listing every bad row (row = feature number, 1-based): missing id or
        community, unknown community, duplicate id, invalid or empty polygon,
        grid outside its community.
    """
    path = Path(path)
    try:
        if layer is None and path.suffix.lower() == ".gpkg":
            import pyogrio

            names = [n for n, _ in pyogrio.list_layers(path)]
            layer = "grids" if "grids" in names else names[0]
        gdf = gpd.read_file(path, layer=layer)
    except Exception as exc:  # unreadable: not a GIS file, missing, wrong layer
        raise GridmapError(f"cannot read grid file {path}: {exc}", f"无法读取网格文件{path}：{exc}") from exc
    if gdf.crs is None:
        raise GridmapError(f"{path} has no coordinate reference system", f"{path}缺少坐标参考系")
    gdf = gdf.to_crs(WGS84)
    id_col = "grid_id" if "grid_id" in gdf.columns else "id"
    errors: list[ValidationError] = []
    for col in (id_col, "community_code"):
        if col not in gdf.columns:
            errors.append(ValidationError("column missing", "缺少该列", field=col, code="missing_column"))
    if errors:
        raise GridFileError(errors)
    comm = communities.set_index("code")
    comm_metric = communities.to_crs(METRIC_CRS).set_index("code").geometry
    metric = gdf.to_crs(METRIC_CRS).geometry
    seen: set[str] = set()
    for i, row in enumerate(gdf.itertuples(index=False), start=1):
        gid = getattr(row, id_col)
        code = row.community_code
        geom = row.geometry
        if gid is None or (isinstance(gid, float) and pd.isna(gid)) or str(gid).strip() == "":
            errors.append(ValidationError("grid id is empty", "网格编号为空", field=id_col, value=gid,
                                          code="missing_id", row=i))
        elif str(gid) in seen:
            errors.append(ValidationError(f"grid id {gid} appears twice", f"网格编号{gid}重复", field=id_col,
                                          value=gid, code="duplicate_id", row=i))
        else:
            seen.add(str(gid))
        if code is None or str(code) not in comm.index:
            errors.append(ValidationError(f"community code {code!r} is not a Haidian community",
                                          f"社区编码{code!r}不是海淀区的社区（村）", field="community_code",
                                          value=code, code="unknown_community", row=i))
            continue
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            errors.append(ValidationError("the grid needs a polygon", "网格应为面要素", field="geometry",
                                          code="not_polygon", row=i))
            continue
        if not geom.is_valid:
            errors.append(ValidationError(f"invalid polygon: {shapely.is_valid_reason(geom)}",
                                          f"面要素无效：{shapely.is_valid_reason(geom)}", field="geometry",
                                          code="invalid_polygon", row=i))
            continue
        outside = metric.iloc[i - 1].difference(comm_metric.loc[str(code)].buffer(OUTSIDE_TOLERANCE_M))
        if outside.area > 1.0:
            errors.append(ValidationError(
                f"{outside.area:,.0f} m² lie outside community {code}",
                f"有{outside.area:,.0f}平方米超出所属社区（{code}）", field="geometry",
                code="outside_community", row=i))
    if errors:
        raise GridFileError(errors)
    codes = gdf["community_code"].astype(str)
    out = gpd.GeoDataFrame(
        {
            "grid_id": gdf[id_col].astype(str),
            "community_code": codes,
            "community": codes.map(comm["name"]),
            "street": codes.map(comm["street"]),
            "workload": pd.to_numeric(gdf["workload"], errors="coerce") if "workload" in gdf else None,
            "approximate": False,
        },
        geometry=gdf.geometry.values,
        crs=WGS84,
    )
    return out


def write_proposal_grids(proposal: object, path: Path | str) -> int:
    """Write a rebalancing proposal's grids to a GeoPackage layer ``grids`` (QGIS; ``grids-import`` reads it back).

    Columns: ``grid_id``, ``community_code``, ``steward_before`` (the grid's majority visit steward),
    ``steward_after``, ``moved`` (the steward changes), ``new`` (a grid cut out of ``split_from``),
    ``elders``, ``visits``; EPSG:4326. ``proposal`` is a :class:`gridmap.routing.rebalance.RebalanceProposal`.
    Returns the number of grids written.
    """
    units = proposal.units  # type: ignore[attr-defined]
    assignment = proposal.result.assignment  # type: ignore[attr-defined]
    parent = {n["grid"]: sp["grid"] for sp in proposal.splits for n in sp["new_grids"]}  # type: ignore[attr-defined]
    rows = []
    for g in units.grids:
        geom = units.grid_geoms.get(g.grid)
        if geom is None:
            continue
        after = assignment.get(g.grid)
        before = g.owner
        rows.append({"grid_id": g.grid, "community_code": g.community, "steward_before": before,
                     "steward_after": after, "moved": bool(after and after != before), "new": g.grid in parent,
                     "split_from": parent.get(g.grid), "elders": len(g.elders), "visits": g.visits,
                     "geometry": shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    gdf.to_file(Path(path), layer="grids", driver="GPKG")
    return len(gdf)
