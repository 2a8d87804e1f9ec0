"""The ``gridmap register`` sub-app: import department ledgers, monthly updates, quarantine, conflicts.

Exit codes of ``import`` and ``update``: 0 when no row was rejected, 1 when
some were, 2 when the file cannot be read at all (or the command cannot run:
bad source or period, database unreachable).

Unmasking from the command line (``quarantine export --unmask`` here,
``register export | form | first-contacts --unmask`` in
:mod:`gridmap.register.cli_exports`) goes through :func:`authorize_unmask`:
``--user`` (default: the operating-system account) must be an existing,
enabled gridmap user whose role may unmask, with a ``--reason``; the audit row
names that user, the reason and the operating-system account. Values in the
console, the ``--report`` JSON and the quarantine list are masked.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gridmap.access.users import User

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
    typer.Option("--source", help="Department: 民政|卫健|残联|医保|人社局|数据局 (or civil_affairs|health|"
                                  "disabled_federation|medical_insurance|human_resources|data_bureau). Default 民政."),
]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write the import report JSON here.")]


def _engine(database_url: str | None):  # noqa: ANN202
    from gridmap._cli import open_store

    return open_store(database_url)


def os_account() -> str:
    """The operating-system account running the command (``"unknown"`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no name in the environment or the password database
        return "unknown"


def authorize_unmask(engine: Engine, user: str | None, reason: str | None, *, command: str,
                     entity: str | None = None, entity_id: Any = None) -> User:
    """The gridmap user who may unmask for this command, or exit 2 (audited as ``denied``).

    Parameters
    ----------
    engine
        The register database (users and the audit log).
    user
        ``--user``; default: the operating-system account's name.
    reason
        ``--reason``: required, not blank.
    command
        The command, for the audit log (``"register export"``).
    entity, entity_id
        What is unmasked, for the audit log.

    Returns
    -------
    User
        An existing, enabled user whose role may unmask.
    """
    from gridmap.access import audit, load_user

    if not (reason and reason.strip()):
        console.print("[red]错误[/red] 导出未脱敏数据必须用 --reason 说明原因\n"
                      "[red]Error[/red] --unmask needs --reason TEXT")
        raise typer.Exit(2)
    os_user = os_account()
    name = user or os_user
    u = load_user(engine, name)
    if u is None or not u.can_unmask:
        # an unknown name is not stored as typed (it may be a mistyped secret): the OS account is
        who = u if u is not None else f"os:{os_user}"
        audit(engine, who, "denied", entity, entity_id, "cli",
              {"reason": "no_unmask_permission" if u is not None else "unknown_user", "command": command,
               "os_user": os_user})
        _fail(GridmapError(
            f"--user {name!r} is not a gridmap user whose role may see personal data in clear "
            "(district, street, community or service role, enabled); nothing was written",
            f"--user“{name}”不是有权查看未脱敏信息的系统用户（区、街镇、社区或服务管家角色，且未停用），未导出任何内容"), 2)
    return u


def audit_unmask(engine: Engine, u: User, *, command: str, reason: str, entity: str | None = None,
                 entity_id: Any = None, **detail: Any) -> None:
    """Write the ``unmask`` audit row of a CLI command: user, reason, command and OS account."""
    from gridmap.access import audit

    audit(engine, u, "unmask", entity, entity_id, "cli",
          {"command": command, "reason": reason.strip()[:200], "os_user": os_account(), **detail})


class _ProgressBar:
    """``on_progress(stage, done, total)`` as a tqdm bar on stderr (silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=max(total, 1), desc=f"{stage}", unit="row", disable=None, leave=False)
        self.bar.n = min(done, self.bar.total)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run_import(file: Path, source: str | None, report: Path | None, database_url: str | None,
                period: str | None, monthly: bool) -> None:
    from gridmap.register.importer import import_ledger, write_report

    try:
        engine = _engine(database_url)
        console.print(f"读取并校验 / reading and validating {file.name} …")
        progress = _ProgressBar()
        try:
            rep = import_ledger(engine, file, source, period=period, monthly=monthly, on_progress=progress)
        finally:
            progress.close()
    except GridmapError as exc:
        _fail(exc, 2)
    except Exception as exc:  # noqa: BLE001 - never a traceback: report and exit 2
        # the exception's text is not shown: a database error quotes the row it failed on
        _fail(GridmapError(f"import failed ({type(exc).__name__}); the register is unchanged",
                           f"导入失败（{type(exc).__name__}），台账未作任何更改"), 2)
    if report is not None:
        write_report(rep, report)
    verb = "already imported, nothing changed / 该文件已导入，无更改" if rep.already_imported else "imported / 已导入"
    console.print(
        f"[green]✓[/green] {rep.file}: {verb} — total {rep.rows_total}, new {rep.rows_imported}, "
        f"updated {rep.rows_updated}, unchanged {rep.rows_unchanged}, rejected {rep.rows_rejected}, "
        f"conflicts {rep.conflicts}")
    field_warnings = [w for w in rep.warnings if w.row > 0 and w.column != "*"]
    if field_warnings:
        console.print(f"字段警告 {len(field_warnings)} 条（老人已导入，该字段未更新，已放入待修正区）/ "
                      f"{len(field_warnings)} field warning(s): the elders were imported without those fields; "
                      "fix them with gridmap register quarantine export / resubmit")
    if rep.stewards_defaulted:
        console.print(f"{len(rep.stewards_defaulted)} 位新老人已由所在社区的探访管家负责 / new elders given their "
                      f"community's visit steward: {len(rep.stewards_defaulted)}")
    if rep.mapped_headers:
        console.print("表头映射 / headers mapped: " + ", ".join(f"{k}→{v}" for k, v in rep.mapped_headers.items()))
    if rep.monthly:
        m = rep.monthly
        console.print(f"每月更新 {m['period']}: 新增 entered {m['entered']}, 重新纳入 returned {m['returned']}, "
                      f"退出 exited {m['exited']}, 去世 deceased {m['deceased']}, 迁出 moved out {m['moved_out']}, "
                      f"类别变化 category {m['category_changed']}, 管家变化 steward {m['steward_changed']}")
    if rep.archive_removed:
        console.print(f"已删除中断导入遗留的原始文件 {len(rep.archive_removed)} 个 / removed "
                      f"{len(rep.archive_removed)} raw file(s) left in var/archive by interrupted imports: "
                      + ", ".join(rep.archive_removed))
    for e in rep.errors[:20]:  # values are masked (validate.mask_cell)
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


@register_app.command("missing-months")
def missing_months_cmd(
    period: Annotated[Optional[str], typer.Option("--period", help="YYYY-MM (default: the latest month already "
                                                  "due).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rules_file: Annotated[Optional[Path], typer.Option("--rules", help="A district rules YAML "
                                                       "(monthly_ledger_due_day; default 10).")] = None,
    database_url: DbOpt = None,
) -> None:
    """Streets whose monthly ledger (每月更新) has not arrived by the due day of the rules."""
    from gridmap.register.missing import missing_months_report
    from gridmap.rules.config import load_rules

    try:
        rows = missing_months_report(_engine(database_url), period, rules=load_rules(rules_file))
    except GridmapError as exc:
        _fail(exc, 1)
    if as_json:
        typer.echo(json.dumps({"period": rows[0].period if rows else period,
                               "missing": [r.street for r in rows if r.status == "missing"],
                               "streets": [r.as_dict() for r in rows]}, ensure_ascii=False, indent=2))
        return
    labels = {"missing": "未报送 missing", "late": "逾期报送 late", "on_time": "按时 on time",
              "not_due": "未到期 not due"}
    n_missing = sum(r.status == "missing" for r in rows)
    t = Table(title=f"每月台账报送 / monthly ledgers {rows[0].period if rows else period or ''}: "
                    f"{n_missing} 个街镇未报送 / streets missing")
    for c in ("街道 street", "截止 due", "报送 arrived", "状态 status"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.street, r.due.isoformat(), r.arrived.isoformat() if r.arrived else "—", labels[r.status])
    Console().print(t)


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
    unmask: Annotated[bool, typer.Option("--unmask", help="Write personal cells in clear (needs --reason and "
                                         "a --user allowed to unmask; audited).")] = False,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why unmasked data is exported.")] = None,
    user: Annotated[Optional[str], typer.Option("--user", help="Gridmap user who unmasks "
                                                "(default: the OS account).")] = None,
) -> None:
    """Export pending rejected rows to an xlsx with their errors, to fix and re-submit (masked unless --unmask).

    Masked cells re-submitted unchanged are filled back from the stored rows,
    so fixing e.g. a street needs no unmasking.
    """
    from gridmap.register.importer import export_quarantine

    try:
        engine = _engine(database_url)
        u = authorize_unmask(engine, user, reason, command="register quarantine export",
                             entity="quarantine") if unmask else None
        n = export_quarantine(engine, file, source, mask=not unmask)
        if u is not None:
            audit_unmask(engine, u, command="register quarantine export", reason=reason or "",
                         entity="quarantine", file=Path(file).name, rows=n)
    except GridmapError as exc:
        _fail(exc, 2)
    state = "[yellow]未脱敏 unmasked (audited)[/yellow]" if unmask else "已脱敏 masked"
    console.print(f"[green]✓[/green] {file}: {n} rows / 行 ({state})")


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
    """List fields on which departments disagree (open and decided-by-authority), personal values masked.

    Resolve a masked one with ``conflicts resolve ID --value current`` or ``--value incoming``.
    """
    from gridmap.register.merge import list_conflicts, mask_conflict

    try:
        rows = [mask_conflict(r) for r in list_conflicts(_engine(database_url), include_resolved=all_rows)]
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
    value: Annotated[str, typer.Option("--value", help="The value to keep: `current`, `incoming` or the value "
                                       "itself.")],
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
