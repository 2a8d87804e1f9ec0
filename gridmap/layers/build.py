"""Build every map layer from the data directory in one call (the CLI's and the demo's entry point)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd

from gridmap._progress import step_bar
from gridmap.layers.admin import load_admin_layers


@dataclass
class Layers:
    """All layers of the grid map, in EPSG:4326.

    Attributes
    ----------
    district, streets, communities
        Admin units (see :mod:`gridmap.layers.admin`).
    grids
        网格 per community (see :mod:`gridmap.layers.grids`).
    service_points
        Kept health centres/stations plus synthetic care stations and street
        care centres (see :mod:`gridmap.layers.service_points`).
    health_report
        What cleaning the health points found (duplicates, outliers).
    """

    district: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    service_points: gpd.GeoDataFrame
    health_report: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_layers(
    data_dir: Path | str | None = None,
    *,
    grid_capacity: float = 60.0,
    seed: int = 0,
    progress: bool = False,
) -> Layers:
    """Load and derive the admin units, grids and service points.

    Parameters
    ----------
    data_dir
        The geodata directory (default ``GRIDMAP_DATA_DIR``).
    grid_capacity
        Workload one steward can carry per grid (estimated elders in the
        programme), used to split communities into grids.
    seed
        Seed of the synthetic care-station placement.
    progress
        Show a progress bar.
    """
    from gridmap.layers.grids import build_grids
    from gridmap.layers.service_points import (
        combine_service_points,
        generate_care_stations,
        load_health_points,
    )

    steps = ["admin units", "grids", "service points"]
    bar = step_bar(len(steps), progress)
    bar.set_description("admin units / 行政区划")
    admin = load_admin_layers(data_dir)
    bar.update(1)
    bar.set_description("grids / 网格")
    grids = build_grids(admin.communities, None, grid_capacity, streets=admin.streets)
    bar.update(1)
    bar.set_description("service points / 服务点")
    health, report = load_health_points(data_dir, admin.district, admin.streets)
    care = generate_care_stations(admin.communities, admin.streets, seed=seed)
    points = combine_service_points(health, care)
    bar.update(1)
    bar.close()
    return Layers(admin.district, admin.streets, admin.communities, grids, points, report)


def layers_report(layers: Layers, *, roads: bool = False, progress: bool = False) -> dict[str, Any]:
    """Counts per layer, approximate geometries and (optionally) road coverage per street."""
    out: dict[str, Any] = {"layers": {}}
    for name in ("district", "streets", "communities", "grids", "service_points"):
        gdf = getattr(layers, name)
        row: dict[str, Any] = {"count": int(len(gdf))}
        if "approximate" in gdf.columns:
            row["approximate"] = int(gdf["approximate"].astype(bool).sum())
        if "synthetic" in gdf.columns:
            row["synthetic"] = int(gdf["synthetic"].astype(bool).sum())
        out["layers"][name] = row
    if layers.health_report is not None:
        out["health_points"] = layers.health_report.summary("en")
    if roads:
        from gridmap.layers.roads import build_road_graph, road_network_info

        G = build_road_graph(mode="walk", progress=progress)
        out["roads"] = road_network_info(G, layers.streets)
    return out
