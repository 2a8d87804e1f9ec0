"""The ``gridmap register`` sub-app: import department ledgers, monthly updates, quarantine, conflicts.

Exit codes of ``import`` and ``update``: 0 when no row was rejected, 1 when
some were, 2 when the file cannot be read at all (or the command cannot run:
bad source or period, database unreachable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

register_app = typer.Typer(
    help="Register of elders (台账): import, monthly update, quarantine, conflicts, exports.",
    no_args_is_help=True,
)
quarantine_app = typer.Typer(help="Rejected rows waiting to be fixed (隔离区).", no_args_is_help=True)
conflicts_app = typer.Typer(help="Fields on which departments disagree (冲突).", no_args_is_help=True)
register_app.add_typer(quarantine_app, name="quarantine")
register_app.add_typer(conflicts_app, name="conflicts")

console = Console(stderr=True)

DbOpt = Annotated[
    Optional[str],
    typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL or ./var/gridmap.sqlite)."),
]
SourceOpt = Annotated[
    Optional[str],
    typer.Option("--source", help="Department: 民政|卫健|残联|医保 (or civil_affairs|health|disabled_federation|"
                                  "medical_insurance). Default 民政."),
]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write the import report JSON here.")]


def _engine(database_url: str | None):  # noqa: ANN202
    from gridmap.store.db import init_db, make_engine

    engine = make_engine(database_url)
    init_db(engine)
    return engine


def _run_import(file: Path, source: str | None, report: Path | None, database_url: str | None,
                period: str | None, monthly: bool) -> None:
    from gridmap.register.importer import import_ledger, write_report

    try:
        engine = _engine(database_url)
        console.print(f"读取并校验 / reading and validating {file.name} …")
        rep = import_ledger(engine, file, source, period=period, monthly=monthly)
    except GridmapError as exc:
        _fail(exc, 2)
    except Exception as exc:  # noqa: BLE001 - never a traceback: report and exit 2
        _fail(GridmapError(f"import failed ({type(exc).__name__}: {exc}); the register is unchanged",
                           f"导入失败（{type(exc).__name__}），台账未作任何更改"), 2)
    if report is not None:
        write_report(rep, report)
    verb = "already imported, nothing changed / 该文件已导入，无更改" if rep.already_imported else "imported / 已导入"
    console.print(
        f"[green]✓[/green] {rep.file}: {verb} — total {rep.rows_total}, new {rep.rows_imported}, "
        f"updated {rep.rows_updated}, unchanged {rep.rows_unchanged}, rejected {rep.rows_rejected}, "
        f"conflicts {rep.conflicts}")
    if rep.mapped_headers:
        console.print("表头映射 / headers mapped: " + ", ".join(f"{k}→{v}" for k, v in rep.mapped_headers.items()))
    if rep.monthly:
        m = rep.monthly
        console.print(f"每月更新 {m['period']}: 新增 entered {m['entered']}, 重新纳入 returned {m['returned']}, "
                      f"退出 exited {m['exited']}, 去世 deceased {m['deceased']}, 迁出 moved out {m['moved_out']}, "
                      f"类别变化 category {m['category_changed']}, 管家变化 steward {m['steward_changed']}")
    for e in rep.errors[:20]:
        console.print(f"  第{e.row}行 row {e.row} [{e.column}] {e.value!r}: {e.message_zh} / {e.message_en} ({e.code})")
    if len(rep.errors) > 20:
        console.print(f"  … {len(rep.errors) - 20} more (see --report / 详见报告)")
    raise typer.Exit(rep.exit_code)


@register_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Ledger file (.xlsx or .csv, UTF-8 or GBK).")],
    source: SourceOpt = None,
    report: ReportOpt = None,
    database_url: DbOpt = None,
    period: Annotated[Optional[str], typer.Option("--period", help="YYYY-MM the ledger belongs to.")] = None,
    monthly: Annotated[bool, typer.Option("--monthly", help="Treat the file as the department's full monthly "
                                          "ledger: listed elders absent from it leave (same as `update`).")] = False,
) -> None:
    """Validate and import a department ledger in one transaction (exit 0 ok, 1 rows rejected, 2 unreadable)."""
    _run_import(file, source, report, database_url, period, monthly)


@register_app.command("update")
def update_cmd(
    file: Annotated[Path, typer.Argument(help="The department's full ledger of the month.")],
    period: Annotated[str, typer.Option("--period", help="YYYY-MM of this monthly ledger (每月更新).")],
    source: SourceOpt = None,
    report: ReportOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Monthly update (每月更新): import the month's full ledger; record who entered, left, died or changed."""
    _run_import(file, source, report, database_url, period, True)


@quarantine_app.command("list")
def quarantine_list(
    database_url: DbOpt = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Include resubmitted rows.")] = False,
) -> None:
    """List rejected rows waiting to be fixed."""
    from gridmap.register.importer import list_quarantine

    try:
        rows = list_quarantine(_engine(database_url), None if all_rows else "pending")
    except GridmapError as exc:
        _fail(exc, 2)
    t = Table(title=f"隔离区 / quarantine ({len(rows)})")
    for c in ("id", "file", "row", "姓名", "errors", "status"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["file"], str(r["row"]), str(r["data"].get("姓名", "")),
                  "; ".join(f"{e['column']}: {e['code']}" for e in r["errors"]), r["status"])
    Console().print(t)


@quarantine_app.command("export")
def quarantine_export(
    file: Annotated[Path, typer.Argument(help="xlsx to write (rows + an error column).")],
    source: SourceOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Export pending rejected rows to an xlsx with their errors, to fix and re-submit."""
    from gridmap.register.importer import export_quarantine

    try:
        n = export_quarantine(_engine(database_url), file, source)
    except GridmapError as exc:
        _fail(exc, 2)
    console.print(f"[green]✓[/green] {file}: {n} rows / 行")


@quarantine_app.command("resubmit")
def quarantine_resubmit(
    file: Annotated[Path, typer.Argument(help="The exported xlsx after fixing.")],
    source: SourceOpt = None,
    report: ReportOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Import a fixed quarantine export: good rows enter the register and are marked resolved."""
    if source is None:
        try:
            from gridmap.register.importer import QUARANTINE_ID, list_quarantine, read_ledger

            ledger = read_ledger(file)
            ids = set()
            if QUARANTINE_ID in ledger.frame.columns:
                ids = {int(float(v)) for v in ledger.frame[QUARANTINE_ID] if str(v or "").strip()}
            srcs = {r["source"] for r in list_quarantine(_engine(database_url), None) if r["id"] in ids}
            source = next(iter(srcs)) if len(srcs) == 1 else None
        except GridmapError as exc:
            _fail(exc, 2)
        except ValueError:
            source = None
    _run_import(file, source, report, database_url, None, False)


@conflicts_app.command("list")
def conflicts_list(
    database_url: DbOpt = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Include resolved conflicts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List fields on which departments disagree (open and decided-by-authority)."""
    from gridmap.register.merge import list_conflicts

    try:
        rows = list_conflicts(_engine(database_url), include_resolved=all_rows)
    except GridmapError as exc:
        _fail(exc, 2)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=1))
        return
    t = Table(title=f"冲突 / conflicts ({len(rows)})")
    for c in ("id", "elder", "field", "current", "source", "incoming", "source ", "status"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), f"{r['elder_id']} {r['elder_name']}", r["field"], str(r["current_value"]),
                  str(r["current_source"]), str(r["incoming_value"]), str(r["incoming_source"]), r["status"])
    Console().print(t)


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: Annotated[int, typer.Argument(help="Conflict id (see `conflicts list`).")],
    value: Annotated[str, typer.Option("--value", help="The value to keep (as shown in the list).")],
    database_url: DbOpt = None,
    user: Annotated[str, typer.Option("--user", help="Who resolves.")] = "cli",
) -> None:
    """Resolve a conflict: store the chosen value (history records it) and close the conflict."""
    from gridmap.register.merge import resolve_conflict

    try:
        resolve_conflict(_engine(database_url), conflict_id, value, user=user)
    except GridmapError as exc:
        _fail(exc, 1)
    console.print(f"[green]✓[/green] conflict {conflict_id} resolved / 已解决")
