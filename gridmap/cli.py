"""The ``gridmap`` command line: one typer app, each command a thin call into the modules."""

from __future__ import annotations

import importlib
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from typer.core import TyperGroup

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError


class _LazyGroup(TyperGroup):
    """The top-level group: its own commands plus sub-apps imported on first use (:data:`LAZY_SUBAPPS`)."""

    lazy: dict[str, tuple[str, ...]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.lazy or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        where, *extras = self.lazy[cmd_name]
        module, attr = where.split(":")
        target = getattr(importlib.import_module(module), attr)
        for extra in extras:  # modules that add commands to the sub-app when imported
            importlib.import_module(extra)
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            command = typer.main.get_command_from_info(typer.models.CommandInfo(name=cmd_name, callback=target),
                                                       pretty_exceptions_short=True, rich_markup_mode="rich")
        command.name = cmd_name
        self.add_command(command, cmd_name)
        return command



app = typer.Typer(
    cls=_LazyGroup,
    help="gridmap — 海淀区特殊困难老年人探访关爱服务 (register, grid map, visit routes, dashboard).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database: create or upgrade the schema. 数据库", no_args_is_help=True)
layers_app = typer.Typer(help="Map layers from the real Haidian data. 网格地图图层", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(layers_app, name="layers")
# Sub-apps of other modules are loaded on first use (see LAZY_SUBAPPS at the end of this file).

#: Process umask of every command: files and directories the CLI creates are owner-only.
PRIVATE_UMASK = 0o077


@app.callback()
def _private_files(ctx: typer.Context) -> None:
    """Run every command with umask 077 (restored afterwards, for callers that run the app in-process)."""
    old = os.umask(PRIVATE_UMASK)
    ctx.call_on_close(lambda: os.umask(old))

console = Console(stderr=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Geodata directory (default: GRIDMAP_DATA_DIR or ../shared/data)."),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL or ./var/gridmap.sqlite)."),
]

HostOpt = Annotated[str, typer.Option(help="Address to serve on.")]
PortOpt = Annotated[int, typer.Option(help="Port to serve on.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Worker processes (gunicorn).")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="Threads per worker (gunicorn gthread).")]
DevOpt = Annotated[bool, typer.Option("--dev", help="Flask's development server instead (one process).")]


def _engine(database_url: str | None):
    from gridmap._cli import open_store_or_exit

    return open_store_or_exit(database_url)


def _set_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["GRIDMAP_DATA_DIR"] = str(data_dir.resolve())


@db_app.command("init")
def db_init(database_url: DbOpt = None) -> None:
    """Create or upgrade the schema (Alembic migrations; idempotent)."""
    from gridmap.store.db import backend, current_revision, init_db

    engine = _engine(database_url)
    try:
        init_db(engine)
    except GridmapError as exc:
        _fail(exc)
    console.print(
        f"[green]✓[/green] schema at revision {current_revision(engine)} on {backend(engine)} "
        f"({engine.url.render_as_string(hide_password=True)})"
    )


@layers_app.command("build")
def layers_build(
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roads: Annotated[bool, typer.Option(help="On PostGIS, also write the walk graph's road_edges table.")] = True,
) -> None:
    """Build admin units, communities, grids and service points from the real data and store them."""
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db
    from gridmap.store.layers_store import save_admin_layers

    _set_data_dir(data_dir)
    engine = _engine(database_url)
    try:
        init_db(engine)
        layers = build_layers(progress=True)
        counts = save_admin_layers(engine, layers.district, layers.streets, layers.communities,
                                   layers.grids, layers.service_points)
        if roads and engine.dialect.name == "postgresql":
            from gridmap.layers.export import export_road_edges_postgis
            from gridmap.layers.roads import build_road_graph

            counts["road_edges"] = export_road_edges_postgis(build_road_graph(mode="walk", progress=True), engine)
    except GridmapError as exc:
        _fail(exc)
    console.print("[green]✓[/green] layers stored: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@layers_app.command("grids-import")
def layers_grids_import(
    file: Annotated[Path, typer.Argument(help="GeoPackage/GeoJSON of redrawn grids (grid_id or id, community_code).")],
    database_url: DbOpt = None,
    data_dir: DataDirOpt = None,
    user: Annotated[str, typer.Option(help="Who redrew the grids (written to the history).")] = "planner",
) -> None:
    """Replace the stored grids by a planner's redrawn ones (checked first; history kept)."""
    from gridmap.layers.admin import load_admin_layers
    from gridmap.layers.grids_io import GridFileError, read_grid_file
    from gridmap.store.db import init_db
    from gridmap.store.layers_store import save_admin_layers

    _set_data_dir(data_dir)
    engine = _engine(database_url)
    try:
        init_db(engine)
        admin = load_admin_layers()
        grids = read_grid_file(file, admin.communities)
        counts = save_admin_layers(engine, admin.district, admin.streets, admin.communities, grids, user=user)
    except GridFileError as exc:
        for e in exc.errors:
            console.print(f"[red]✗[/red] {e.message_zh}\n  {e.message_en} ({e.code})")
        _fail(exc)
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] {counts['grids']} grids stored (history kept)")


@layers_app.command("info")
def layers_info(data_dir: DataDirOpt = None) -> None:
    """Counts, road-network coverage per street, approximate geometries."""
    from gridmap.layers.build import build_layers, layers_report

    _set_data_dir(data_dir)
    try:
        report = layers_report(build_layers(progress=True), roads=True, progress=True)
    except GridmapError as exc:
        _fail(exc)
    t = Table(title="海淀区图层 / Haidian layers")
    t.add_column("layer")
    t.add_column("count", justify="right")
    t.add_column("approximate", justify="right")
    for name, row in report["layers"].items():
        t.add_row(name, str(row["count"]), str(row.get("approximate", "")))
    Console().print(t)
    if "roads" in report:
        r = report["roads"]
        Console().print(
            f"步行路网 / walk graph: {r['nodes']} nodes, {r['edges']} directed edges, "
            f"{r['km']:.0f} km in the largest component ({r['km_mode_total']:.0f} km walkable in all); "
            f"the largest component keeps {r['lscc_node_share']:.1%} of nodes and {r['lscc_km_share']:.1%} "
            f"of km; detour factor {r['detour_factor']:.2f}"
        )
        cov = Table(title="道路覆盖 / share of each street's area within 300 m of a road")
        cov.add_column("街道 / street")
        cov.add_column("km", justify="right")
        cov.add_column("≤300 m", justify="right")
        for row in sorted(r["streets"], key=lambda x: x["share_within_300m"]):
            cov.add_row(row["name"], f"{row['km']:.0f}", f"{row['share_within_300m']:.1%}")
        Console().print(cov)


@layers_app.command("export")
def layers_export(
    out: Annotated[Path, typer.Option("--out", help="GeoPackage to write.")] = Path("haidian.gpkg"),
    data_dir: DataDirOpt = None,
    roads: Annotated[bool, typer.Option(help="Include road_edges (walk graph).")] = True,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="A store: grids as stored now (redrawn ones, version) + grid_history.")] = None,
) -> None:
    """Write every layer to one GeoPackage (EPSG:4326) that opens in QGIS."""
    from gridmap.layers.build import build_layers
    from gridmap.layers.export import export_geopackage

    _set_data_dir(data_dir)
    try:
        engine = _engine(database_url) if database_url else None  # issue 19: the redrawn grids and their history
        written = export_geopackage(build_layers(progress=True), out, roads=roads, progress=True, engine=engine)
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] {out}: " + ", ".join(f"{k} {v}" for k, v in written.items()))


@layers_app.command("fetch")
def layers_fetch(
    place: Annotated[str, typer.Option("--place", help='Place name for osmnx, e.g. "海淀区, 北京".')] = "海淀区, 北京",
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where to write the .osm extract.")] = None,
) -> None:
    """Download a current OSM extract with osmnx (needs the internet)."""
    from gridmap.config import get_settings
    from gridmap.layers.roads import fetch_extract

    target = out_dir or (get_settings().var_dir / "osm")
    try:
        path = fetch_extract(place, target)
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] wrote {path}; set GRIDMAP_DATA_DIR or copy it under haidian/roads/osm/")


def _build_demo(database_url: str | None, elders: int, seed: int, today: date | None = None,
                plans: bool = True) -> str:
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db
    from gridmap.store.layers_store import save_admin_layers

    engine = _engine(database_url)
    init_db(engine)
    layers = build_layers(progress=True)
    counts = save_admin_layers(engine, layers.district, layers.streets, layers.communities,
                               layers.grids, layers.service_points)
    console.print("[green]✓[/green] layers: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    try:
        from gridmap.synth.demo import load_demo_register
    except ImportError:
        console.print("[yellow]![/yellow] synthetic register not available in this version")
    else:
        n = load_demo_register(engine, layers, elders=elders, seed=seed, progress=True, today=today)
        console.print(f"[green]✓[/green] synthetic register: {n} elders")
        if n and plans:
            from gridmap.synth.cli import demo_plans

            demo_plans(engine, today)
    _print_demo_users(engine)
    return engine.url.render_as_string(hide_password=True)


def _print_demo_users(engine: Engine) -> None:
    """Create one demo user per role and print their passwords once (they are stored only hashed)."""
    from gridmap.access import create_demo_users, load_user

    users = create_demo_users(engine)
    table = Table(title="演示用户 / demo users（每个角色一个）")
    for col in ("角色 / role", "用户名 / user", "密码 / password", "范围 / area"):
        table.add_column(col)
    for name, password in users.items():
        u = load_user(engine, name)
        if u is None:
            area = ""
        elif u.scope.steward_field == "service_steward_id":
            area = "本人负责的老人 / own elders"
        else:
            area = u.community or u.street or ("、".join(u.scope.street_names) if u.scope.street_names else "全区")
        table.add_row(u.role.label if u is not None else "", name, password, area)
    console.print(table)
    console.print("[yellow]![/yellow] 密码只在此显示一次，请妥善保存（数据库中只存哈希）。"
                  "Passwords are shown only now; the store keeps only their hashes.")


@app.command()
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")] = True,
    elders: Annotated[int, typer.Option("--elders", min=0, help="Synthetic elders to generate.")] = 30000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the synthetic data.")] = 1,
    database_url: DbOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8050,
    workers: WorkersOpt = 2,
    threads: ThreadsOpt = 4,
    dev: DevOpt = False,
    today: Annotated[str | None, typer.Option("--today", help="The demo's today, YYYY-MM-DD (default: today); "
                                               "visits are recorded up to the day before.")] = None,
    plans: Annotated[bool, typer.Option("--plans/--no-plans", help="Store this week's plans.")] = True,
    simulate: Annotated[bool, typer.Option("--simulate/--no-simulate",
                                           help="While serving, stewards keep recording today's due visits.")] = False,
    simulate_every: Annotated[float, typer.Option("--simulate-every", min=0.1,
                                                  help="Seconds between two simulated visits.")] = 5.0,
) -> None:
    """Build the demo database (real layers + synthetic data) and serve the dashboard (as ``gridmap serve``)."""
    from gridmap.synth.cli import parse_today, start_demo_simulator

    try:
        url = _build_demo(database_url, elders, seed, parse_today(today), plans)
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] demo database ready: {url}")
    if serve and simulate:
        start_demo_simulator(_engine(database_url), simulate_every)
    if serve:
        _serve(database_url, _serve_options(host, port, workers, threads), dev=dev)


def _serve_options(host: str, port: int, workers: int, threads: int, **more: object):
    from gridmap.dashboard.server import ServeOptions

    return ServeOptions(host=host, port=port, workers=workers, threads=threads, **more)  # type: ignore[arg-type]


def _serve(database_url: str | None, options: object, *, dev: bool = False) -> None:
    """Serve the dashboard: gunicorn (:mod:`gridmap.dashboard.server`), or with ``dev`` Flask's own server."""
    from gridmap.dashboard.server import serve as serve_gunicorn
    from gridmap.dashboard.server import serve_dev

    os.umask(PRIVATE_UMASK)  # defence in depth: the server's files (database, logs, exports) owner-only
    console.print(f"仪表盘 / dashboard: http://{options.host}:{options.port}/"  # type: ignore[attr-defined]
                  + ("  (development server / 开发服务器)" if dev else
                     f"  (gunicorn, {options.workers} workers × {options.threads} threads)"))  # type: ignore[attr-defined]
    if dev:
        serve_dev(_engine(database_url), options)  # type: ignore[arg-type]
    else:
        serve_gunicorn(lambda: _engine(database_url), options)  # type: ignore[arg-type]


@app.command()
def serve(
    database_url: DbOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8050,
    workers: WorkersOpt = 2,
    threads: ThreadsOpt = 4,
    dev: DevOpt = False,
    timeout: Annotated[int, typer.Option("--timeout", min=1,
                                         help="Seconds a worker may stay silent before it is restarted.")] = 120,
    max_requests: Annotated[int, typer.Option("--max-requests", min=0,
                                              help="Restart a worker after this many requests (0: never).")] = 0,
    max_requests_jitter: Annotated[int, typer.Option("--max-requests-jitter", min=0,
                                                     help="Up to this many more (workers not all at once).")] = 0,
    escalate_every: Annotated[float | None, typer.Option(
        "--escalate-every", min=0,
        help="Seconds between runs of the scheduled jobs (escalation of emergency referrals, reminders), "
             "in one process across workers; 0: off; default: the rules' jobs.every_seconds (GRIDMAP_RULES).")] = None,
) -> None:
    """Serve the dashboard on the existing database: gunicorn with the data loaded before the workers fork."""
    try:
        _serve(database_url, _serve_options(host, port, workers, threads, timeout=timeout, max_requests=max_requests,
                                             max_requests_jitter=max_requests_jitter, escalate_every=escalate_every),
               dev=dev)
    except GridmapError as exc:
        _fail(exc)


# Sub-apps of other modules, loaded only when their command is run (or help lists them): a command such as
# ``gridmap visits record`` then imports what it needs and not every package of the CLI (start-up time is
# CPU a writer pays once per process; see bench/load.py). name -> ("module:attribute" of the sub-app or
# command, then modules that add commands to it when imported).
LAZY_SUBAPPS: dict[str, tuple[str, ...]] = {
    "synth": ("gridmap.synth.cli:synth_app",),
    "register": ("gridmap.register.cli:register_app", "gridmap.register.cli_exports"),
    "visits": ("gridmap.rules.cli:visits_app",),
    "report": ("gridmap.rules.cli:report_command",),
    "plan": ("gridmap.routing.cli:plan_app", "gridmap.routing.cli_week"),
    "users": ("gridmap.access.cli:users_app",),
    "audit": ("gridmap.access.cli:audit_app",),
    "city": ("gridmap.scale.cli:city_app",),
    "hazards": ("gridmap.followups.cli:hazards_app",),
    "referrals": ("gridmap.followups.cli:referrals_app",),
    "jobs": ("gridmap.followups.cli:jobs_app",),
    "tasks": ("gridmap.tasks.cli:tasks_app",),  # issue 17 (A): service tasks
    "devices": ("gridmap.devices.cli:devices_app",),  # issue 17 part B
    "stations": ("gridmap.care.cli:stations_app",),  # issue 17 part B
    "doctors": ("gridmap.care.cli:doctors_app",),  # issue 17 part B
    "survey": ("gridmap.care.cli:survey_app",),  # issue 17 part B
}
_LazyGroup.lazy.update(LAZY_SUBAPPS)


def main() -> None:  # pragma: no cover
    """Entry point for ``python -m gridmap``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
