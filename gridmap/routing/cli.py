"""The ``gridmap plan`` commands: solve a problem JSON into a plan JSON, check a plan against its problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

plan_app = typer.Typer(help="Visit routes: solve and check planning problems (JSON contract). 探访路线规划",
                       no_args_is_help=True)
_console = Console(stderr=True)


@plan_app.command("solve")
def plan_solve(
    problem: Annotated[Path, typer.Argument(help="Problem JSON (see gridmap/routing/README.md).")],
    out: Annotated[Path, typer.Option("--out", help="Plan JSON to write.")] = Path("plan.json"),
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.05, help="Search time in seconds.")] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    initial: Annotated[Optional[Path], typer.Option("--initial", help="Previous plan to start from (warm start).")] = None,
    geometry: Annotated[bool, typer.Option("--geometry/--no-geometry", help="Draw routes along the roads.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for this one problem.")] = 1,
) -> None:
    """Plan the visits of PROBLEM.json; infeasible visits are listed as unassigned with a reason (exit 2 if malformed)."""
    from gridmap.routing.plan import parse_plan
    from gridmap.routing.problem import parse_problem
    from gridmap.routing.solver import solve

    try:
        prob = parse_problem(problem)
        init = parse_plan(initial) if initial is not None else None
    except GridmapError as exc:
        _fail(exc, 2)
    try:
        with _console.status("规划中 / solving…"):
            if any(v.allowed for v in prob.visits):  # a joint plan: visits to allowed stewards first
                from gridmap.routing.joint import solve_joint

                plan = solve_joint(prob, time_limit=time_limit, seed=seed, initial=init, geometry=geometry,
                                   workers=workers)
            else:
                plan = solve(prob, time_limit=time_limit, seed=seed, initial=init, geometry=geometry,
                             workers=workers)
    except GridmapError as exc:
        _fail(exc, 1)
    plan.write(out)
    s = plan.summary
    _console.print(f"[green]✓[/green] {out}: {s.visits_planned}/{s.visits_required} visits planned on {len(plan.routes)} "
                   f"routes, {s.travel_seconds / 60:.0f} travel minutes, {s.distance_metres / 1000:.1f} km; "
                   f"{sum(u.occurrences for u in plan.unassigned)} unassigned; estimated share {s.estimated_share:.1%}")


@plan_app.command("check")
def plan_check(
    problem: Annotated[Path, typer.Argument(help="Problem JSON.")],
    plan: Annotated[Path, typer.Argument(help="Plan JSON.")],
) -> None:
    """Check every constraint of PLAN.json against PROBLEM.json (exit 0 valid, 1 violations, 2 malformed)."""
    from gridmap.routing.check import check_plan
    from gridmap.routing.plan import parse_plan
    from gridmap.routing.problem import parse_problem

    try:
        prob = parse_problem(problem)
        pl = parse_plan(plan)
    except GridmapError as exc:
        _fail(exc, 2)
    try:
        violations = check_plan(prob, pl)
    except GridmapError as exc:
        _fail(exc, 2)
    if not violations:
        typer.echo(f"计划有效 / plan is valid: {pl.summary.visits_planned} visits on {len(pl.routes)} routes")
        raise typer.Exit(0)
    typer.echo(f"发现 {len(violations)} 处违规 / {len(violations)} violations:")
    for v in violations:
        typer.echo(f"  {v}")
    raise typer.Exit(1)


__all__ = ["plan_app"]

import gridmap.routing.cli_rebalance  # noqa: E402,F401  (registers plan rebalance / plan capacity)
