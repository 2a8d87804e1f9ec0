"""GeoPackage export for GIS users: the layer names and columns of the contract, in EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.layers.build import build_layers
from gridmap.layers.export import LAYER_COLUMNS, export_geopackage

#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layers(data_dir: Path):
    return build_layers(data_dir)


def test_geopackage_holds_every_layer_with_its_columns(layers, tmp_path: Path) -> None:
    out = tmp_path / "haidian.gpkg"
    written = export_geopackage(layers, out, roads=False)
    names = {name for name, _ in pyogrio.list_layers(out)}
    assert names == {"district", "streets", "communities", "grids", "service_points"}
    for name in names:
        gdf = gpd.read_file(out, layer=name)
        assert gdf.crs.to_epsg() == 4326
        assert set(LAYER_COLUMNS[name]) <= set(gdf.columns), name
        assert len(gdf) == written[name]
        assert gdf.geometry.is_valid.all() and gdf.geometry.notna().all()
    streets = gpd.read_file(out, layer="streets")
    assert len(streets) == 29 and streets["pop_2020"].sum() == 3_133_469
    communities = gpd.read_file(out, layer="communities")
    assert len(communities) == 654 and communities["approximate"].all()
    points = gpd.read_file(out, layer="service_points")
    assert points["synthetic"].sum() == 654 + 29
    assert (~points["synthetic"]).sum() >= 200  # the real health centres and stations
    grids = gpd.read_file(out, layer="grids")
    assert grids["id"].is_unique and set(grids["community_code"]) == set(communities["code"])


def test_export_replaces_an_existing_file_and_leaves_no_partial_file(layers, tmp_path: Path) -> None:
    out = tmp_path / "h.gpkg"
    out.write_bytes(b"old")
    export_geopackage(layers, out, roads=False)
    assert pyogrio.list_layers(out) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.gpkg"]


@pytest.mark.slow
def test_cli_export_includes_road_edges(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "haidian.gpkg"
    result = CliRunner().invoke(app, ["layers", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    edges = gpd.read_file(out, layer="road_edges")
    assert set(LAYER_COLUMNS["road_edges"]) <= set(edges.columns)
    assert edges.crs.to_epsg() == 4326
    assert 2000 < edges["length_m"].sum() / 1000 < 3500  # about 2,700 km of road in the district
    assert (edges["u"] != edges["v"]).all()
    # parallel ways between two junctions are real; the same segment twice is not
    assert not edges.assign(wkb=edges.geometry.to_wkb()).duplicated(["u", "v", "wkb"]).any()


def test_cli_export_with_a_store_writes_the_grids_as_stored_now_and_their_history(tmp_path: Path,
                                                                                   data_dir: Path) -> None:
    """Issue 19: after a rebalancing split grids, ``gridmap layers export --database-url`` hands QGIS the
    redrawn grids (with their version) and the grid history, not the grids built from the files."""
    from sqlalchemy import select

    from gridmap.routing.rebalance import propose_rebalance
    from gridmap.routing.rebalance_store import (
        account_id,
        apply_proposal,
        keep_proposal,
    )
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.models import Grid
    from tests.layers.test_grids_roads import _one_heavy_grid

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    _one_heavy_grid(engine)
    p = propose_rebalance(engine, "乙街道", "2026-W50", time_limit=2)
    assert p.splits
    pid = keep_proposal(engine, account_id(engine, "cli", create=True), "乙街道", "2026-W50",
                        {**p.to_dict(), "moves": p.moves, "splits": p.splits})
    apply_proposal(engine, pid, "planner-a")
    with engine.connect() as conn:
        stored = set(conn.execute(select(Grid.code)).scalars())

    out = tmp_path / "haidian.gpkg"
    result = CliRunner().invoke(app, ["layers", "export", "--out", str(out), "--no-roads", "--database-url", url])
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(out, layer="grids")
    assert set(grids["id"]) == stored and len(stored) > 2  # the split grid's new grids are there
    assert grids.loc[grids["id"] == p.splits[0]["grid"], "version"].iloc[0] > 1
    hist = gpd.read_file(out, layer="grid_history")
    assert (hist["changed_by"] == "planner-a").any()
    assert {"district", "streets", "communities"} <= {n for n, _ in pyogrio.list_layers(out)}
