"""``gridmap synth``: write a synthetic register (elders, stewards, visits) to xlsx or csv."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridmap._errors import GridmapError

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
