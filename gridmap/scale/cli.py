"""``gridmap city``: weekly plans on Dask, the city-scale synthetic store, SQL indicators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

city_app = typer.Typer(help="City scale: Dask planning, city register on PostGIS, SQL indicators. 城市级规模",
                       no_args_is_help=True)
console = Console(stderr=True)


def _url(database_url: str | None) -> str:
    from gridmap.config import get_settings

    return database_url or get_settings().database_url


@city_app.command("plan")
def plan(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W49.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default var/plans/<week>).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="tcp://HOST:8786 of a Dask cluster "
                                                  "(default GRIDMAP_DASK_SCHEDULER, else a local cluster).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Local cluster worker processes.")] = 2,
    street: Annotated[str | None, typer.Option("--street", help="Only this street (name).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Search seconds per steward.")] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="Solver seed.")] = 0,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Skip stewards already planned.")] = True,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Register database URL.")] = None,
) -> None:
    """Plan every steward's week on Dask distributed (streamed, retried, resumable). 分布式周计划"""
    from gridmap.routing.distributed import plan_week_dask

    try:
        run = plan_week_dask(_url(database_url), week, street=street, out_dir=out, scheduler=scheduler,
                             workers=workers, time_limit=time_limit, seed=seed, resume=resume, progress=True)
    except GridmapError as exc:
        _fail(exc)
        return
    console.print(f"[green]✓[/green] {len(run.stewards)} stewards, {run.visits_planned}/{run.visits_required} "
                  f"visits planned ({run.share_planned:.1%}), {len(run.failed)} failed, "
                  f"{run.wall_seconds:.1f} s on {run.workers} workers → {run.out_dir}")
    if run.failed:
        raise typer.Exit(1)


@city_app.command("load")
def load(
    elders: Annotated[int, typer.Option("--elders", min=1, help="Elders in the whole city.")] = 1_200_000,
    districts: Annotated[int, typer.Option("--districts", min=1, help="Districts (Haidian + copies).")] = 10,
    chunk: Annotated[int, typer.Option("--chunk", min=100, help="Elders generated and copied at once.")] = 30000,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    resize: Annotated[bool, typer.Option("--resize/--no-resize", help="Resize the copies.")] = False,
    partitioned: Annotated[bool, typer.Option("--partitioned/--plain", help="Partition by district.")] = True,
    database_url: Annotated[str | None, typer.Option("--database-url", help="PostGIS URL.")] = None,
) -> None:
    """Generate the synthetic city register and COPY it into schema ``city`` (PostGIS). 生成城市级合成台账"""
    from gridmap.scale.city import make_city
    from gridmap.scale.store import load_city
    from gridmap.store.db import make_engine

    try:
        rep = load_city(make_engine(_url(database_url)), make_city(districts, resize=resize), elders, chunk=chunk,
                        seed=seed, partitioned=partitioned, progress=True)
    except GridmapError as exc:
        _fail(exc)
        return
    d = rep.to_dict()
    console.print(f"[green]✓[/green] {d['elders']} elders, {d['visits']} visits, {d['hazards']} hazards, "
                  f"{d['stewards']} stewards in {d['seconds_total']} s (COPY {d['copy_rows_per_second']} rows/s, "
                  f"peak {d['peak_rss_mb']} MB)")


@city_app.command("indicators")
def indicators(
    week: Annotated[str | None, typer.Option("--week", help="ISO week.")] = None,
    month: Annotated[str | None, typer.Option("--month", help="Month YYYY-MM.")] = None,
    level: Annotated[str, typer.Option("--level", help="district, street or community.")] = "district",
    source: Annotated[str, typer.Option("--source", help="city (schema city) or main (the register).")] = "city",
    district: Annotated[str | None, typer.Option("--district", help="One district code (city).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write CSV (UTF-8 with BOM).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Print EXPLAIN ANALYZE instead.")] = False,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
) -> None:
    """Indicators computed in SQL (GROUP BY where the data live). SQL 统计指标"""
    from gridmap.rules.indicators import INDICATOR_LABELS
    from gridmap.scale.indicators import explain_indicators, sql_indicators
    from gridmap.store.db import make_engine

    eng = make_engine(_url(database_url))
    try:
        if explain:
            typer.echo(explain_indicators(eng, week=week, month=month, level=level, source=source, district=district))
            return
        df = sql_indicators(eng, week=week, month=month, level=level, source=source, district=district)
    except GridmapError as exc:
        _fail(exc)
        return
    if out is not None:
        from gridmap.sheets import write_csv

        write_csv(out, df.rename(columns=INDICATOR_LABELS), index=True)  # text inert, owner-only
        console.print(f"[green]✓[/green] {len(df)} rows → {out}")
    else:
        typer.echo(df.to_string())


__all__ = ["city_app"]
