"""The city-scale store on PostGIS: schema ``city`` with elder/visit/hazard tables LIST-partitioned by district, loaded with COPY.

The main schema (:mod:`gridmap.store.models`) is untouched: a city register
lives in its own schema, made and filled by this module, PostGIS only::

    city.district (code PK, name, synthetic, dx_m, dy_m, scale, geom)
    city.street   (code PK, district_code, name, geom)
    city.steward  (code PK, district_code, street_code, community_code, name, kind, base, work_days,
                   max_work_minutes, travel_mode)
    city.elder    (district_code, id) PK, street_code, street, community_code, visit_steward,
                   service_steward, status, willing, birth_date, geom, geocode_quality, synthetic
                   -- PARTITION BY LIST (district_code): one partition city.elder_<code> per district
    city.visit    (district_code, id) PK, elder_id, visited_on, mode, effective, visitor_role,
                   steward_code, started_at, ended_at            -- partitioned likewise
    city.hazard   (district_code, id) PK, elder_id, kind, severity, opened_on, deadline, closed_on
                                                                 -- partitioned likewise

Where partitioning pays: a district's queries (a district bureau's
dashboard, its weekly plan) read only that district's partitions (pruning),
the per-elder visit aggregate joins partition to partition
(``enable_partitionwise_join``/``_aggregate``), and a district is reloaded or
dropped by truncating/detaching its partitions instead of deleting millions
of rows. The streets, stewards and districts are small and not partitioned.

Why the main store's register is not partitioned by district: it holds one
district (Haidian; ``street.district_code``), so a ``district_code`` column on
``elder``/``visit`` would give a single partition — no pruning, no
partition-wise joins — while costing a schema change on both backends
(SQLite has no partitioning), a key change (``(district_code, id)``) on the
tables the history, audit and version columns hang on, and a value every
import and update would have to keep right. Its street-level reads go
through indexes instead (``elder (street_id, status)``, ``visit (elder_id,
visited_on)``: :func:`gridmap.rules.store.read_facts` reads a street's rows
only). A multi-district register belongs in this schema.

Bulk load (:func:`load_city`): the register is generated chunk by chunk
(:func:`gridmap.scale.generate.iter_city_chunks`) and each chunk is streamed
with ``COPY … FROM STDIN`` (psycopg 3 ``cursor.copy()``, CSV, geometries as
hex EWKB) before the next is made, so memory stays bounded by one chunk;
primary keys, the B-tree indexes (``visit (elder_id, visited_on)``,
``elder (street_code)``, ``hazard (elder_id)``) and the GiST index on
``elder.geom`` are built after the load, then ``ANALYZE``.
"""

from __future__ import annotations

import io
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, text

from gridmap._errors import GridmapError
from gridmap.scale.city import City
from gridmap.scale.generate import CHUNK, CityChunk, iter_city_chunks

#: Schema of the city-scale store.
SCHEMA = "city"
#: Tables partitioned by district.
PARTITIONED = ("elder", "visit", "hazard")
_CODE = re.compile(r"^[0-9A-Za-z_]+$")

_COLUMNS: dict[str, list[str]] = {
    "elder": ["id", "district_code", "street_code", "street", "community_code", "visit_steward", "service_steward",
              "status", "willing", "birth_date", "geom", "geocode_quality"],
    "visit": ["id", "district_code", "elder_id", "visited_on", "mode", "effective", "visitor_role", "steward_code",
              "started_at", "ended_at"],
    "hazard": ["id", "district_code", "elder_id", "kind", "severity", "opened_on", "deadline", "closed_on"],
    "steward": ["code", "district_code", "street_code", "community_code", "name", "kind", "base", "work_days",
                "max_work_minutes", "travel_mode"],
}

_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.district (code text PRIMARY KEY, name text NOT NULL, synthetic boolean NOT NULL,
    dx_m double precision, dy_m double precision, scale double precision, geom geometry(Geometry, 4326));
CREATE TABLE {s}.street (code text PRIMARY KEY, district_code text NOT NULL, name text NOT NULL,
    geom geometry(Geometry, 4326));
CREATE TABLE {s}.steward (code text PRIMARY KEY, district_code text NOT NULL, street_code text,
    community_code text, name text, kind text NOT NULL, base geometry(Point, 4326), work_days integer[],
    max_work_minutes integer, travel_mode text);
CREATE TABLE {s}.elder (id bigint NOT NULL, district_code text NOT NULL, street_code text, street text,
    community_code text, visit_steward text, service_steward text, status text NOT NULL, willing boolean NOT NULL,
    birth_date date, geom geometry(Point, 4326), geocode_quality text, synthetic boolean NOT NULL DEFAULT true
    ){part};
CREATE TABLE {s}.visit (id bigint NOT NULL, district_code text NOT NULL, elder_id bigint NOT NULL,
    visited_on date NOT NULL, mode text NOT NULL, effective boolean NOT NULL, visitor_role text,
    steward_code text, started_at timestamptz, ended_at timestamptz){part};
CREATE TABLE {s}.hazard (id bigint NOT NULL, district_code text NOT NULL, elder_id bigint NOT NULL,
    kind text NOT NULL, severity text, opened_on date NOT NULL, deadline date, closed_on date){part};
"""

_INDEXES = """
ALTER TABLE {s}.elder ADD PRIMARY KEY (district_code, id);
ALTER TABLE {s}.visit ADD PRIMARY KEY (district_code, id);
ALTER TABLE {s}.hazard ADD PRIMARY KEY (district_code, id);
CREATE INDEX ix_city_elder_street ON {s}.elder (street_code);
CREATE INDEX ix_city_elder_geom ON {s}.elder USING gist (geom);
CREATE INDEX ix_city_visit_elder_date ON {s}.visit (elder_id, visited_on);
CREATE INDEX ix_city_hazard_elder ON {s}.hazard (elder_id);
CREATE INDEX ix_city_steward_district ON {s}.steward (district_code);
"""


@dataclass
class LoadReport:
    """What :func:`load_city` wrote and how long it took."""

    districts: int = 0
    elders: int = 0
    visits: int = 0
    hazards: int = 0
    stewards: int = 0
    chunks: int = 0
    partitioned: bool = True
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    max_chunk_elders: int = 0

    @property
    def rows(self) -> int:
        """Rows copied (elders, visits, hazards, stewards)."""
        return self.elders + self.visits + self.hazards + self.stewards

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the benchmark JSON)."""
        total = sum(self.seconds.values())
        return {"districts": self.districts, "elders": self.elders, "visits": self.visits,
                "hazards": self.hazards, "stewards": self.stewards, "chunks": self.chunks,
                "max_chunk_elders": self.max_chunk_elders, "partitioned": self.partitioned,
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()}, "seconds_total": round(total, 2),
                "copy_rows_per_second": round(self.rows / self.seconds["copy"]) if self.seconds.get("copy") else None,
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def require_postgis(engine: Engine) -> None:
    """Raise :class:`GridmapError` unless ``engine`` is PostgreSQL (the city store is PostGIS only)."""
    if engine.dialect.name != "postgresql":
        raise GridmapError("the city-scale store needs PostGIS (COPY, partitions); this database is "
                           f"{engine.dialect.name}", f"城市级存储需要 PostGIS（COPY、分区）；当前数据库为 {engine.dialect.name}")


def partition_name(table: str, district_code: str) -> str:
    """``city.<table>_<code>``."""
    if not _CODE.match(district_code):
        raise GridmapError(f"bad district code {district_code!r}", f"区代码无效：{district_code!r}")
    return f"{SCHEMA}.{table}_{district_code}"


def create_city_schema(engine: Engine, district_codes: list[str], *, partitioned: bool = True) -> None:
    """Drop and create schema ``city``: tables, and one LIST partition per district of each partitioned table."""
    require_postgis(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        part = " PARTITION BY LIST (district_code)" if partitioned else ""
        for stmt in _DDL.format(s=SCHEMA, part=part).split(";"):
            if stmt.strip():
                conn.execute(text(stmt))
        if partitioned:
            for code in district_codes:
                add_district_partitions(conn, code)


def add_district_partitions(conn: Any, district_code: str) -> None:
    """Create the partitions of one district (``city.elder_<code>``, ``visit_<code>``, ``hazard_<code>``)."""
    for t in PARTITIONED:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {partition_name(t, district_code)} PARTITION OF "
                          f"{SCHEMA}.{t} FOR VALUES IN ('{district_code}')"))


def partitions(engine: Engine) -> pd.DataFrame:
    """Partitions of the city tables with their row estimates and sizes (after ANALYZE)."""
    q = text("""
        SELECT p.relname AS parent, c.relname AS partition, pg_get_expr(c.relpartbound, c.oid) AS bound,
               c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = :s AND c.relkind IN ('r', 'p') ORDER BY 1, 2""")
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q, {"s": SCHEMA}).mappings().all(),
                            columns=["parent", "partition", "bound", "rows", "bytes"])


def _ewkb(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    pts = shapely.set_srid(shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)), 4326)
    return shapely.to_wkb(pts, hex=True, include_srid=True)


def _pg_array(values: Any) -> str:
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def copy_frame(raw: Any, table: str, df: pd.DataFrame, columns: list[str], *, rows_per_write: int = 50000) -> int:
    """``COPY city.<table> (columns) FROM STDIN`` the frame as CSV in pieces; returns rows written.

    ``raw`` is a psycopg 3 connection (``engine.raw_connection().driver_connection``).
    Missing values become NULL (unquoted empty fields).
    """
    sql = f"COPY {SCHEMA}.{table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    n = 0
    with raw.cursor() as cur, cur.copy(sql) as cp:
        for i in range(0, len(df), rows_per_write):
            buf = io.StringIO()
            df.iloc[i:i + rows_per_write][columns].to_csv(buf, header=False, index=False)
            cp.write(buf.getvalue())
            n += min(rows_per_write, len(df) - i)
    return n


def _elder_rows(e: pd.DataFrame) -> pd.DataFrame:
    return e.assign(geom=_ewkb(e["lon"].to_numpy(), e["lat"].to_numpy()))


def _steward_rows(s: pd.DataFrame) -> pd.DataFrame:
    return s.assign(base=_ewkb(s["lon"].to_numpy(), s["lat"].to_numpy()),
                    work_days=[_pg_array(w) for w in s["work_days"]])


def write_chunk(raw: Any, ch: CityChunk) -> dict[str, int]:
    """COPY one chunk (stewards, elders, visits, hazards); returns rows per table."""
    out = {"stewards": copy_frame(raw, "steward", _steward_rows(ch.stewards), _COLUMNS["steward"])
           if len(ch.stewards) else 0}
    out["elders"] = copy_frame(raw, "elder", _elder_rows(ch.elders), _COLUMNS["elder"])
    out["visits"] = copy_frame(raw, "visit", ch.visits, _COLUMNS["visit"])
    out["hazards"] = copy_frame(raw, "hazard", ch.hazards, _COLUMNS["hazard"]) if len(ch.hazards) else 0
    return out


def _write_layers(engine: Engine, city: City) -> None:
    with engine.begin() as conn:
        for d in city.districts:
            geom = shapely.union_all(d.streets.geometry.values)
            conn.execute(text(f"INSERT INTO {SCHEMA}.district VALUES (:code, :name, :syn, :dx, :dy, :scale, "
                              "ST_GeomFromEWKB(decode(:g, 'hex')))"),
                         {"code": d.code, "name": d.name, "syn": d.synthetic, "dx": d.dx_m, "dy": d.dy_m,
                          "scale": d.scale, "g": shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True,
                                                                include_srid=True)})
            conn.execute(text(f"INSERT INTO {SCHEMA}.street VALUES (:code, :dc, :name, "
                              "ST_GeomFromEWKB(decode(:g, 'hex')))"),
                         [{"code": str(r.code), "dc": d.code, "name": str(r.name),
                           "g": shapely.to_wkb(shapely.set_srid(r.geometry, 4326), hex=True, include_srid=True)}
                          for r in d.streets.itertuples(index=False)])


def finish_city_store(engine: Engine) -> None:
    """Primary keys, indexes (B-tree and GiST) and ANALYZE after a bulk load."""
    with engine.begin() as conn:
        for stmt in _INDEXES.format(s=SCHEMA).split(";"):
            if stmt.strip():
                conn.execute(text(stmt))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for t in ("district", "street", "steward", *PARTITIONED):
            conn.execute(text(f"ANALYZE {SCHEMA}.{t}"))


def load_city(
    engine: Engine,
    city: City,
    elders: int,
    *,
    chunk: int = CHUNK,
    seed: int = 1,
    partitioned: bool = True,
    progress: bool = False,
    on_chunk: Callable[[CityChunk, LoadReport], None] | None = None,
) -> LoadReport:
    """Generate the city's register chunk by chunk and stream it into schema ``city`` with COPY.

    Parameters
    ----------
    engine
        A PostGIS database (the main schema is not touched).
    city
        The districts (:func:`gridmap.scale.city.make_city`).
    elders
        Elders in the whole city (e.g. 1,200,000 for ten Haidians).
    chunk
        Most elders generated and copied at once (memory bound).
    seed
        Random seed.
    partitioned
        LIST-partition elder/visit/hazard by district (False: plain tables, for comparison).
    progress
        Show a progress bar (rich).
    on_chunk
        Called after each chunk is written (e.g. to record partial benchmark figures).

    Returns
    -------
    LoadReport
        Rows, seconds per phase (``generate``, ``copy``, ``index``) and peak RSS.
    """
    require_postgis(engine)
    rep = LoadReport(districts=len(city.districts), partitioned=partitioned,
                     seconds={"schema": 0.0, "generate": 0.0, "copy": 0.0, "index": 0.0})
    t = time.perf_counter()
    create_city_schema(engine, city.codes, partitioned=partitioned)
    _write_layers(engine, city)
    rep.seconds["schema"] = time.perf_counter() - t
    bar = None
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        bar.start()
        task = bar.add_task("城市合成台账 / city register (elders)", total=int(elders))
    raw_conn = engine.raw_connection()
    try:
        raw = raw_conn.driver_connection
        t = time.perf_counter()
        for ch in iter_city_chunks(city, elders, chunk=chunk, seed=seed):
            t1 = time.perf_counter()
            rep.seconds["generate"] += t1 - t
            n = write_chunk(raw, ch)
            raw.commit()
            t = time.perf_counter()
            rep.seconds["copy"] += t - t1
            rep.chunks += 1
            rep.max_chunk_elders = max(rep.max_chunk_elders, len(ch.elders))
            for k, v in n.items():
                setattr(rep, k, getattr(rep, k) + v)
            rep.peak_rss_mb = peak_rss_mb()
            if bar is not None:
                bar.update(task, advance=len(ch.elders))
            if on_chunk is not None:
                on_chunk(ch, rep)
            del ch
            t = time.perf_counter()
    finally:
        raw_conn.close()
        if bar is not None:
            bar.stop()
    t = time.perf_counter()
    finish_city_store(engine)
    rep.seconds["index"] = time.perf_counter() - t
    rep.peak_rss_mb = peak_rss_mb()
    return rep


def city_counts(engine: Engine) -> dict[str, int]:
    """Rows of each city table."""
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{t}")).scalar_one())
                for t in ("district", "street", "steward", *PARTITIONED)}


__all__ = ["PARTITIONED", "SCHEMA", "LoadReport", "add_district_partitions", "city_counts", "copy_frame",
           "create_city_schema", "finish_city_store", "load_city", "partition_name", "partitions", "peak_rss_mb",
           "require_postgis", "write_chunk"]
