"""The ``gridmap plan week`` and ``gridmap plan routes`` commands: plan every steward's week, print a steward's day."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError, ValidationError
from gridmap.routing.cli import plan_app

_console = Console(stderr=True)


@plan_app.command("week")
def plan_week_command(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W49.")],
    street: Annotated[str | None, typer.Option("--street", help="Only this street (name), else the district.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default <var>/plans/<week>).")] = None,
    time_limit: Annotated[float | None, typer.Option(
        "--time-limit", min=0.0, help="Search seconds per steward (default: shares of --budget by size; with "
        "--dask 5). 0: no timed search: a steward working several days gets the seeded first plan, the same "
        "on any runner and load.")] = None,
    budget: Annotated[float, typer.Option("--budget", min=1.0,
                                          help="Wall seconds of search for the whole run (auto limits).")] = 600.0,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes (default: all cores).")] = None,
    initial_from: Annotated[Path | None, typer.Option(
        "--initial-from", help="Last week's run directory: warm start from its plans.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    geometry: Annotated[bool, typer.Option("--geometry/--no-geometry", help="Draw routes into the plans.")] = False,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Run on Dask distributed: a local cluster of --workers processes (default 2), or the "
        "cluster of --scheduler / GRIDMAP_DASK_SCHEDULER.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler tcp://HOST:8786 (implies --dask).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="With Dask: keep stewards already planned for this week, seed, limit and "
        "problem.")] = True,
    iterations: Annotated[int | None, typer.Option(
        "--iterations", min=0, help="Bound each steward's search by work, not time (ruin-and-recreate "
        "iterations per day; OR-Tools to its local optimum): the same plans on any runner, machine and load. "
        "Replaces --time-limit.")] = None,
) -> None:
    """Plan the week of every steward (in parallel), check each plan, store plans and summary.json (exit 1 on failures).

    With --dask (or --scheduler, or GRIDMAP_DASK_SCHEDULER set) the run goes to Dask: problems are built
    street by street on the workers and plans are stored as they arrive; an interrupted run resumes.
    """
    from gridmap._cli import open_store
    from gridmap.routing.distributed import SCHEDULER_ENV, plan_week_dask
    from gridmap.routing.district import plan_week

    use_dask = dask or scheduler is not None or bool(os.environ.get(SCHEDULER_ENV))
    try:
        engine = open_store(database_url)
        if use_dask:
            if initial_from is not None:
                raise ValidationError("--initial-from is not available with --dask", "--dask 运行不支持 --initial-from",
                                      field="initial_from", value=str(initial_from), code="dask_initial_from")
            run = plan_week_dask(engine.url.render_as_string(hide_password=False), week, street=street, out_dir=out,
                                 scheduler=scheduler, workers=workers or 2, time_limit=time_limit, seed=seed,
                                 resume=resume, geometry=geometry, progress=True, iterations=iterations)
        else:
            run = plan_week(engine, week, street=street, out_dir=out, time_limit=time_limit, budget=budget,
                            workers=workers, progress=True, initial_from=initial_from, seed=seed, geometry=geometry,
                            iterations=iterations)
    except GridmapError as exc:
        _fail(exc, 2)
    d = run.to_dict()
    t = Table(title=f"{week} {street or '全区 district'}")
    t.add_column("项目 / item")
    t.add_column("值 / value", justify="right")
    t.add_row("管家 stewards (failed)", f"{d['stewards_total']} ({d['stewards_failed']})")
    t.add_row("应上门 visits required", str(d["visits_required"]))
    t.add_row("已排 planned", f"{d['visits_planned']} ({d['share_planned']:.1%})")
    for reason, n in d["unassigned_by_reason"].items():
        t.add_row(f"未排 unassigned: {reason}", str(n))
    t.add_row("计划校验 plans valid", f"{d['plans_valid']}/{d['stewards_total'] - d['stewards_failed']}")
    wm = d["work_minutes_per_steward_day"]
    if wm.get("n"):
        t.add_row("工作分钟/人日 median (p90, max)", f"{wm['median']} ({wm['p90']}, {wm['max']})")
    t.add_row("估算路程占比 estimated share", f"{d['estimated_share']:.1%}")
    t.add_row("用时 wall seconds", f"{d['wall_seconds']:.0f}")
    _console.print(t)
    for s in run.failed[:20]:
        _console.print(f"[red]✗[/red] {s.code}: {s.error}")
    for s in run.stewards:
        if s.status == "ok" and not s.check_ok:
            _console.print(f"[red]✗ check[/red] {s.code}: {'; '.join(s.violations[:3])}")
    _console.print(f"[green]✓[/green] {run.out_dir}/summary.json")
    if run.failed or not run.all_valid:
        raise typer.Exit(1)


@plan_app.command("routes")
def plan_routes_command(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W49.")],
    steward: Annotated[str, typer.Option("--steward", help="Steward code.")],
    day: Annotated[str, typer.Option("--day", help="The day, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output: .html (print view), .pdf, .gpx or .geojson.")],
    from_dir: Annotated[Path | None, typer.Option("--from", help="Run directory (default <var>/plans/<week>).")] = None,
    unmask_user: Annotated[str | None, typer.Option(
        "--unmask-as", help="User name allowed to see phones in clear (audited); default: phones masked.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the phones are shown in clear.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
) -> None:
    """Write a steward's daily route list: stops with times, what to check, contact, map along the roads."""
    from gridmap.routing.district import default_out_dir
    from gridmap.routing.routelist import load_route_list, write_route_list
    from gridmap.store.db import make_engine

    try:
        engine = make_engine(database_url)
        user = None
        if unmask_user is not None:
            from gridmap.access.users import load_user

            user = load_user(engine, unmask_user)
            if user is None:
                raise ValidationError("no such user", "无此用户", field="unmask_as", value=unmask_user,
                                      code="unknown_user")
        rl = load_route_list(engine, from_dir or default_out_dir(week), steward, day, unmask_as=user, reason=reason)
        path = write_route_list(rl, out)
    except GridmapError as exc:
        _fail(exc, 2)
    except ValueError as exc:
        _console.print(f"[red]错误[/red] 日期格式应为 YYYY-MM-DD\n[red]Error[/red] {exc}")
        raise typer.Exit(2) from None
    if user is not None:
        _console.print("[yellow]注意[/yellow] 联系电话未脱敏 / phones unmasked")
    _console.print(f"[green]✓[/green] {path}: {len(rl.stops)} stops, {rl.distance_metres / 1000:.1f} km, "
                   f"{rl.work_minutes:.0f} working minutes")


__all__ = ["plan_routes_command", "plan_week_command"]
