"""``gridmap synth``: write a synthetic register (elders, stewards, visits) to xlsx or csv."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gridmap._errors import GridmapError

if TYPE_CHECKING:
    from datetime import date

    from sqlalchemy import Engine

synth_app = typer.Typer(help="Synthetic data for demos and tests. 合成数据", no_args_is_help=True)
console = Console(stderr=True)


@synth_app.command("register")
def register(
    out: Annotated[Path, typer.Option("--out", help="Output file, .xlsx or .csv (UTF-8 with BOM).")],
    elders: Annotated[int, typer.Option("--elders", min=0, help="Number of elders.")] = 30000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")] = 1,
    stewards_out: Annotated[Path | None, typer.Option("--stewards-out", help="Also write the stewards.")] = None,
    visits_out: Annotated[Path | None, typer.Option("--visits-out", help="Also write 8 weeks of visits.")] = None,
    near_roads: Annotated[bool, typer.Option("--near-roads/--no-near-roads",
                                             help="Pull homes near roads when a road graph is cached.")] = True,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Geodata directory.")] = None,
) -> None:
    """Generate a synthetic register (Chinese headers of the record form) deterministically for a seed."""
    import os

    from gridmap.layers.admin import load_admin_layers
    from gridmap.synth.register import generate_register
    from gridmap.synth.writer import write_register

    if data_dir is not None:
        os.environ["GRIDMAP_DATA_DIR"] = str(data_dir.resolve())
    t0 = time.perf_counter()
    try:
        admin = load_admin_layers()
        reg = generate_register(admin, elders, seed, near_roads="auto" if near_roads else False, progress=True)
        paths = write_register(reg, out, stewards_out=stewards_out, visits_out=visits_out)
    except GridmapError as exc:
        console.print(f"[red]错误[/red] {exc.message_zh}\n[red]Error[/red] {exc.message_en}")
        raise typer.Exit(1) from None
    console.print(f"[green]✓[/green] {len(reg.elders)} elders, {len(reg.stewards)} stewards, "
                  f"{len(reg.visits)} visits in {time.perf_counter() - t0:.1f} s")
    for p in paths:
        console.print(f"  {p}")


def parse_today(value: str | None) -> date | None:
    """``--today YYYY-MM-DD`` of ``gridmap demo`` (None: today); a bad date is a bilingual error."""
    from datetime import date

    from gridmap._errors import ValidationError

    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError("--today: expected a date YYYY-MM-DD", "--today 日期格式应为 YYYY-MM-DD",
                              field="today", value=value, code="date") from None


def demo_plans(engine: Engine, today: date | None) -> None:
    """Store this week's plans for the demo (seeded first plans) and say what was stored."""
    from gridmap.domain.clock import today_beijing
    from gridmap.synth.demo import store_week_plans

    t0 = time.perf_counter()
    try:
        run = store_week_plans(engine, today or today_beijing(), progress=True)
    except GridmapError as exc:  # the demo still works without plans (the steward view says so)
        console.print(f"[yellow]![/yellow] 本周计划未生成 / plans not stored: {exc.message_zh} / {exc.message_en}")
        return
    d = run.to_dict()
    console.print(f"[green]✓[/green] {run.out_dir}: plans of {d['stewards_total']} stewards "
                  f"({d['visits_planned']} visits planned) in {time.perf_counter() - t0:.0f} s")


def _simulate_forever(url: str, every: float) -> None:  # pragma: no cover - runs in the spawned process
    """The simulator process: its own engine, :func:`gridmap.synth.simulate.start_simulator`, until killed."""
    from gridmap.store.db import make_engine
    from gridmap.synth.simulate import start_simulator

    sim = start_simulator(make_engine(url), every=every)
    sim.thread.join()


def start_demo_simulator(engine: Engine, every: float) -> object:
    """Start the demo's simulated stewards in a process of their own and say so.

    A spawned process (not a thread of the serving process, which gunicorn
    forks): it records through :func:`gridmap.synth.simulate.start_simulator`
    and ends with the command (daemon process).
    """
    import multiprocessing

    url = engine.url.render_as_string(hide_password=False)
    proc = multiprocessing.get_context("spawn").Process(target=_simulate_forever, args=(url, every),
                                                         name="gridmap-simulator", daemon=True)
    proc.start()
    console.print(f"[green]✓[/green] 模拟探访已开始：每 {every:g} 秒录入一条今日应访的探访 / "
                  f"simulated stewards record one due visit every {every:g} s (pid {proc.pid})")
    return proc
