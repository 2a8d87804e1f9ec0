"""Writing the map layers (admin units, grids, service points) into the store and reading them back."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import Engine, delete, select, update

from gridmap.domain.enums import StationKind
from gridmap.store.db import session_scope
from gridmap.store.models import (
    Community,
    District,
    Elder,
    Grid,
    MetaInfo,
    ServiceStation,
    Steward,
    Street,
)

DISTRICT_CODE = "110108000000"


def _multi(geom: Any) -> MultiPolygon | None:
    """Polygon → MultiPolygon (columns are typed MULTIPOLYGON on PostGIS)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "Polygon":
        return MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]
    return MultiPolygon(polys) if polys else None


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def save_admin_layers(
    engine: Engine,
    district: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame | None = None,
    stations: gpd.GeoDataFrame | None = None,
    *,
    user: str = "layers",
) -> dict[str, int]:
    """Write the layers in one transaction; existing areas are updated by code, not duplicated.

    Streets and communities are matched on their statistical code, so elders
    and stewards keep their links when the layers are rebuilt. Grids and
    synthetic stations are replaced when given (grids referenced by elders are
    re-linked by code where the code still exists).

    Returns
    -------
    dict
        Counts written per layer.
    """
    with session_scope(engine, user=user, source="layers") as s:
        drow = district.iloc[0]
        d = s.get(District, DISTRICT_CODE) or District(code=DISTRICT_CODE)
        d.name = str(drow["name"])
        d.geom = _multi(drow.geometry)
        d.approximate = False
        s.add(d)
        s.flush()

        by_code = {st.code: st for st in s.scalars(select(Street))}
        street_ids: dict[str, int] = {}
        for row in streets.itertuples(index=False):
            st = by_code.get(row.code) or Street(code=row.code, district_code=DISTRICT_CODE)
            st.name = row.name
            st.pop_2020 = int(row.pop_2020) if _none(row.pop_2020) is not None else None
            st.area_km2 = float(row.area_km2)
            st.approximate = bool(getattr(row, "approximate", False))
            st.geom = _multi(row.geometry)
            s.add(st)
            s.flush()
            street_ids[row.name] = st.id

        com_by_code = {c.code: c for c in s.scalars(select(Community))}
        community_ids: dict[str, int] = {}
        for row in communities.itertuples(index=False):
            c = com_by_code.get(row.code) or Community(code=row.code)
            c.name = row.name
            c.street_id = street_ids[row.street]
            c.kind = row.kind
            c.ur_code = None if _none(row.ur_code) is None else str(row.ur_code)
            c.approximate = bool(row.approximate)
            c.centre = row.point
            c.geom = _multi(row.geometry)
            s.add(c)
            s.flush()
            community_ids[row.code] = c.id

        counts = {"district": 1, "streets": len(street_ids), "communities": len(community_ids)}
        if grids is not None:
            old = {g.code: g for g in s.scalars(select(Grid))}
            keep: set[str] = set()
            for row in grids.itertuples(index=False):
                g = old.get(row.grid_id) or Grid(code=row.grid_id)
                g.community_id = community_ids[row.community_code]
                g.workload = float(row.workload) if _none(row.workload) is not None else None
                g.approximate = bool(getattr(row, "approximate", True))
                g.geom = _multi(row.geometry)
                g.name = getattr(row, "name", None) or row.grid_id
                g.updated_by = user
                s.add(g)
                keep.add(row.grid_id)
            s.flush()
            stale = [g.id for code, g in old.items() if code not in keep]
            if stale:
                s.execute(update(Elder).where(Elder.grid_id.in_(stale)).values(grid_id=None))
                s.execute(delete(Grid).where(Grid.id.in_(stale)))
            counts["grids"] = len(keep)
            counts["elders_relinked"] = _relink_elders_to_grids(s, grids)
        if stations is not None:
            used = set(s.scalars(select(Steward.station_id).where(Steward.station_id.is_not(None))))
            # issue 17 part B: stations elders are signed with stay too (elder.station_id)
            used |= set(s.scalars(select(Elder.station_id).where(Elder.station_id.is_not(None))))
            stmt = delete(ServiceStation)
            s.execute(stmt.where(ServiceStation.id.not_in(used)) if used else stmt)
            existing = {(st.name, st.kind) for st in s.scalars(select(ServiceStation))}
            n = 0
            for row in stations.itertuples(index=False):
                kind = StationKind(row.kind)
                if (row.name, kind) in existing:
                    continue
                s.add(ServiceStation(
                    name=row.name, kind=kind,
                    street_id=street_ids.get(_none(getattr(row, "street", None))),
                    community_id=community_ids.get(_none(getattr(row, "community_code", None))),
                    synthetic=bool(getattr(row, "synthetic", False)),
                    source=_none(getattr(row, "source", None)),
                    issue=_none(getattr(row, "issue", None)),
                    geom=row.geometry,
                ))
                n += 1
            counts["stations"] = n + len(existing)
        s.merge(MetaInfo(key="layers_built_at", value=pd.Timestamp.now(tz="UTC").isoformat()))
    return counts


def _relink_elders_to_grids(session: Any, grids: gpd.GeoDataFrame) -> int:
    """Point every located elder at the grid that now contains it (same community); returns changes.

    Runs as a Core bulk update: grid boundaries are area data, so the elder's
    ``grid_id`` follows them without a register history row per elder (the
    grid change itself is history).
    """
    rows = session.execute(select(Elder.id, Elder.grid_id, Elder.geom).where(Elder.geom.is_not(None))).all()
    if not rows:
        return 0
    grid_pk = dict(session.execute(select(Grid.code, Grid.id)).all())
    pts = gpd.GeoDataFrame(
        {"elder_id": [r[0] for r in rows], "old": [r[1] for r in rows]},
        geometry=[r[2] for r in rows], crs="EPSG:4326",
    )
    g = gpd.GeoDataFrame({"grid_id": grids["grid_id"].to_numpy()}, geometry=grids.geometry.values, crs="EPSG:4326")
    joined = gpd.sjoin(pts, g, how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    new_ids = joined["grid_id"].map(grid_pk)
    changed = joined[(new_ids.notna()) & (new_ids != joined["old"])]
    params = [{"eid": int(e), "gid": int(grid_pk[c])} for e, c in zip(changed["elder_id"], changed["grid_id"])]
    if params:
        from sqlalchemy import bindparam

        stmt = update(Elder.__table__).where(Elder.__table__.c.id == bindparam("eid")).values(grid_id=bindparam("gid"), version=Elder.__table__.c.version + 1)
        session.connection().execute(stmt, params)
    return len(params)


def read_layer(engine: Engine, name: str) -> gpd.GeoDataFrame:
    """Read one layer (``district``, ``streets``, ``communities``, ``grids``, ``service_points``) as a GeoDataFrame."""
    queries = {
        "district": "SELECT code, name, geom FROM district",
        "streets": "SELECT s.id, s.name, s.code, s.pop_2020, s.area_km2, s.approximate, s.geom FROM street s",
        "communities": (
            "SELECT c.id, c.name, c.code, st.name AS street, c.kind, c.approximate, c.geom "
            "FROM community c JOIN street st ON st.id = c.street_id"
        ),
        "grids": (
            "SELECT g.id AS grid_pk, g.code AS id, c.name AS community, st.name AS street, g.workload, g.geom "
            "FROM grid g JOIN community c ON c.id = g.community_id JOIN street st ON st.id = c.street_id"
        ),
        "service_points": (
            "SELECT p.id, p.name, p.kind, st.name AS street, p.synthetic, p.issue, p.geom "
            "FROM service_station p LEFT JOIN street st ON st.id = p.street_id"
        ),
    }
    if name not in queries:
        raise KeyError(name)
    with engine.connect() as conn:
        df = pd.read_sql_query(queries[name], conn)
    geoms = [
        None if v is None else shapely.from_wkb(bytes.fromhex(v) if isinstance(v, str) else bytes(v))
        for v in df.pop("geom")
    ]
    return gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4326")
