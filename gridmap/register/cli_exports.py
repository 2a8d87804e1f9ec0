"""``gridmap register export | form | first-contacts``: exports and first-contact gaps of the register.

Attached to the ``register`` sub-app of :mod:`gridmap.register.cli`.
``--unmask`` needs ``--reason`` and a ``--user`` (default: the operating-system
account) that is an existing gridmap user whose role may unmask
(:func:`gridmap.register.cli.authorize_unmask`); the unmasked rows are those
within that user's area, and the audit log records the user, the reason and
the operating-system account.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gridmap.access.users import User
from gridmap.register.cli import audit_unmask, authorize_unmask, os_account, register_app

console = Console(stderr=True)

DbOpt = Annotated[
    Optional[str],
    typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL or ./var/gridmap.sqlite)."),
]
StreetOpt = Annotated[Optional[str], typer.Option("--street", help="Only this street, e.g. 学院路街道.")]
UnmaskOpt = Annotated[bool, typer.Option("--unmask", help="Do not mask personal data (needs --reason; audited).")]
ReasonOpt = Annotated[Optional[str], typer.Option("--reason", help="Why unmasked data is exported (audit log).")]
UserOpt = Annotated[Optional[str], typer.Option("--user", help="Who exports (watermark, audit log); default: OS user. "
                                                "With --unmask: an existing gridmap user allowed to unmask.")]


def _engine(database_url: str | None):  # noqa: ANN202
    from gridmap._cli import open_store

    return open_store(database_url)


def _user(user: str | None) -> str:
    return user or os_account()


def _s(value: object) -> str:
    """Text of a frame value; empty for None/NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _require_visible(engine: Engine, u: User, elder_id: int) -> None:
    """Refuse (audited, same answer as for a missing elder) an elder outside ``u``'s area."""
    from sqlalchemy.orm import Session

    from gridmap.access import PermissionDenied, audit, can_see_elder
    from gridmap.store.models import Elder

    with Session(engine) as s:
        e = s.get(Elder, int(elder_id))
        visible = e is not None and can_see_elder(u.scope, e)
    if not visible:
        audit(engine, u, "denied", "elder", elder_id, "cli",
              {"reason": "outside_area", "command": "register form", "os_user": os_account()})
        raise PermissionDenied(f"no elder {elder_id} in the area of {u.username}",
                               f"用户{u.username}的管辖范围内没有编号为{elder_id}的老人")


def _check_unmask(unmask: bool, reason: str | None) -> None:
    if unmask and not (reason and reason.strip()):
        console.print("[red]错误[/red] 导出未脱敏数据必须用 --reason 说明原因\n"
                      "[red]Error[/red] --unmask needs --reason TEXT")
        raise typer.Exit(2)


@register_app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="The .xlsx file to write.")],
    street: StreetOpt = None,
    unmask: UnmaskOpt = False,
    reason: ReasonOpt = None,
    user: UserOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Export the register to xlsx (canonical Chinese columns; masked unless --unmask --reason)."""
    from gridmap.access import filter_frame
    from gridmap.register.exports import export_register, read_register_frame

    _check_unmask(unmask, reason)
    try:
        engine = _engine(database_url)
        if unmask:
            u = authorize_unmask(engine, user, reason, command="register export", entity="register",
                                 entity_id=street)
            frame = filter_frame(read_register_frame(engine, street=street), u.scope, engine=engine)
            res = export_register(frame, out, mask=False, street=street, user=u.username, reason=reason,
                                  audit_engine=engine, progress=True)
            audit_unmask(engine, u, command="register export", reason=reason or "", entity="register",
                         entity_id=street, file=out.name, rows=res.rows)
        else:
            res = export_register(engine, out, mask=True, street=street, user=_user(user), progress=True)
    except GridmapError as exc:
        _fail(exc)
    state = "已脱敏 masked" if res.masked else "[yellow]未脱敏 unmasked (audited)[/yellow]"
    console.print(f"[green]✓[/green] {res.rows} 行 rows → {res.path} ({state})")


@register_app.command("form")
def form_cmd(
    elder_id: Annotated[int, typer.Argument(help="The elder's id (系统编号).")],
    out: Annotated[Path, typer.Option("--out", help="The .xlsx or .pdf file to write.")],
    unmask: UnmaskOpt = False,
    reason: ReasonOpt = None,
    user: UserOpt = None,
    visits: Annotated[int, typer.Option("--visits", min=0, help="Latest visits shown in section 五.")] = 3,
    database_url: DbOpt = None,
) -> None:
    """Write the record form 附件1-2 of one elder, filled in (xlsx or printable PDF)."""
    from gridmap.register.exports import export_record_form

    _check_unmask(unmask, reason)
    try:
        engine = _engine(database_url)
        name = _user(user)
        if unmask:
            u = authorize_unmask(engine, user, reason, command="register form", entity="elder", entity_id=elder_id)
            _require_visible(engine, u, elder_id)
            name = u.username
        res = export_record_form(engine, elder_id, out, mask=not unmask, reason=reason, user=name, visits=visits)
        if unmask:
            audit_unmask(engine, u, command="register form", reason=reason or "", entity="elder",
                         entity_id=elder_id, file=out.name)
    except GridmapError as exc:
        _fail(exc)
    state = "已脱敏 masked" if res.masked else "[yellow]未脱敏 unmasked (audited)[/yellow]"
    console.print(f"[green]✓[/green] 探访关爱服务记录表 → {res.path} ({state})")


@register_app.command("first-contacts")
def first_contacts_cmd(
    street: StreetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the list to this .xlsx.")] = None,
    unmask: UnmaskOpt = False,
    reason: ReasonOpt = None,
    user: UserOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Rows shown on screen.")] = 20,
    database_url: DbOpt = None,
) -> None:
    """Elders with no valid first contact (第一联系人), with the reason; counts per rule for the others."""
    from gridmap.register.exports import export_first_contact_gaps, read_register_frame
    from gridmap.register.first_contact import elders_without_valid_first_contact, rule_counts

    _check_unmask(unmask, reason)
    try:
        engine = _engine(database_url)
        frame = read_register_frame(engine, street=street)
        name = _user(user)
        if unmask:
            from gridmap.access import filter_frame

            u = authorize_unmask(engine, user, reason, command="register first-contacts", entity="register",
                                 entity_id=street)
            frame = filter_frame(frame, u.scope, engine=engine)
            name = u.username
        gaps = elders_without_valid_first_contact(frame)
        if out is not None:
            export_first_contact_gaps(gaps, out, mask=not unmask, reason=reason,
                                      user=name, audit_engine=engine, street=street)
        if unmask:
            audit_unmask(engine, u, command="register first-contacts", reason=reason or "", entity="register",
                         entity_id=street, file=out.name if out is not None else None, rows=len(gaps))
    except GridmapError as exc:
        _fail(exc)

    counts = rule_counts(frame)
    t = Table(title=f"第一联系人确定规则 rules that chose the first contact（{street or '全区'}，{len(frame)} 人）")
    t.add_column("规则 rule")
    t.add_column("人数 count", justify="right")
    for r in counts.itertuples():
        t.add_row(f"{r.label} ({r.rule})", str(r.count))
    console.print(t)

    from gridmap.domain.masking import mask_name, mask_phone

    g = Table(title=f"无有效第一联系人 elders without a valid first contact: {len(gaps)}")
    for col in ("编号 id", "姓名 name", "街道 street", "第一联系人 contact", "电话 phone", "原因 reason"):
        g.add_column(col)
    for r in gaps.head(limit).itertuples():
        name, fc, ph = _s(r.name), _s(r.first_contact_name), _s(r.first_contact_phone)
        if not unmask:
            name, fc, ph = mask_name(name), mask_name(fc), mask_phone(ph)
        g.add_row(_s(r.elder_id), name or "", _s(r.street),
                  f"{fc}（{_s(r.first_contact_relation)}）" if fc else "", ph or "", _s(r.reason_zh))
    console.print(g)
    if len(gaps) > limit:
        console.print(f"… {len(gaps) - limit} more; use --out FILE.xlsx for the whole list")
    if out is not None:
        console.print(f"[green]✓[/green] {len(gaps)} 行 rows → {out}")
