"""The ``gridmap users`` and ``gridmap audit`` sub-apps: manage users and roles, report unusual access.

Passwords are read from standard input (``--password-stdin``, first line) or
asked for twice without echo; they never appear on the command line.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError, ValidationError

users_app = typer.Typer(help="Users and roles (用户与角色).", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log (审计日志): unusual access.", no_args_is_help=True)

console = Console(stderr=True)
out = Console()

DbOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL or ./var/gridmap.sqlite)."),
]
RoleOpt = Annotated[str, typer.Option("--role", help="district|street|community|service|planner|inspector")]
StreetOpt = Annotated[str | None, typer.Option("--street", help="Street (街道/镇) name or code.")]
CommunityOpt = Annotated[str | None, typer.Option("--community", help="Community name or 12-digit code.")]
StewardOpt = Annotated[str | None, typer.Option(
    "--steward", help="Code of the user's steward (community: 探访管家; service: 服务管家).")]
GrantOpt = Annotated[list[str] | None, typer.Option(
    "--grant", help="A street granted to a planner or inspector (repeat for several).")]


def _engine(database_url: str | None):
    from gridmap._cli import open_store

    return open_store(database_url)


def _read_password(stdin: bool) -> str:
    if stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    pw = typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    return str(pw)


def _area(u) -> str:
    sc = u.scope
    if sc.is_all:
        return "全区 / all"
    parts = []
    if sc.street_names:
        parts.append("、".join(sc.street_names))
    if u.community:
        parts.append(u.community)
    if sc.steward_id is not None:
        parts.append(f"管家#{sc.steward_id}")
    return " · ".join(parts) or "（无）"


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: RoleOpt,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    steward: StewardOpt = None,
    grant: GrantOpt = None,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Name shown in pages.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    database_url: DbOpt = None,
) -> None:
    """Add a user with a role scoped to an area."""
    from gridmap.access.users import add_user

    try:
        pw = _read_password(password_stdin)
        u = add_user(_engine(database_url), name, role, street, community, steward, password=pw,
                     display_name=display_name, grant=grant, by="cli")
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] 用户 {u.username}：{u.role.label} · {_area(u)}")


@users_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="User name.")],
            enable: Annotated[bool, typer.Option("--enable", help="Enable again instead.")] = False,
            database_url: DbOpt = None) -> None:
    """Disable a user (every session of the user ends at once); ``--enable`` re-enables."""
    from gridmap.access.users import disable_user

    try:
        u = disable_user(_engine(database_url), name, disabled=not enable, by="cli")
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] 用户 {u.username} {'已停用 / disabled' if u.disabled else '已启用 / enabled'}")


@users_app.command("set-role")
def set_role_cmd(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: RoleOpt,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    steward: StewardOpt = None,
    grant: GrantOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Change a user's role and area (every session of the user ends)."""
    from gridmap.access.users import set_role

    try:
        u = set_role(_engine(database_url), name, role, street, community, steward, grant=grant, by="cli")
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] 用户 {u.username}：{u.role.label} · {_area(u)}")


@users_app.command("set-password")
def set_password_cmd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    database_url: DbOpt = None,
) -> None:
    """Replace a user's password (10+ characters, not easy to guess; every session of the user ends)."""
    from gridmap.access.users import set_password

    try:
        set_password(_engine(database_url), name, _read_password(password_stdin), by="cli")
    except GridmapError as exc:
        _fail(exc)
    console.print("[green]✓[/green] 密码已更新 / password changed")


@users_app.command("list")
def list_cmd(database_url: DbOpt = None) -> None:
    """List the users with their role and area."""
    from gridmap.access.users import list_users

    try:
        users = list_users(_engine(database_url))
    except GridmapError as exc:
        _fail(exc)
    t = Table("用户名", "显示名", "角色", "范围", "状态")
    for u in users:
        t.add_row(u.username, u.display_name or "", u.role.label, _area(u), "停用" if u.disabled else "启用")
    out.print(t)


@users_app.command("sessions")
def sessions_cmd(
    name: Annotated[str | None, typer.Argument(help="User name (default: every user).")] = None,
    end: Annotated[bool, typer.Option("--end", help="End every session of NAME now.")] = False,
    database_url: DbOpt = None,
) -> None:
    """List the open sign-in sessions (of one user or all); ``--end`` ends every session of NAME."""
    from gridmap.access.sessions import list_sessions
    from gridmap.access.users import end_sessions

    try:
        engine = _engine(database_url)
        if end:
            if not name:
                raise ValidationError("--end needs a user name", "--end 须指定用户名", field="name", code="name")
            n = end_sessions(engine, name, by="cli")
            console.print(f"[green]✓[/green] 已结束 {n} 个会话 / {n} sessions ended")
            return
        rows = list_sessions(engine, name)
    except GridmapError as exc:
        _fail(exc)
    t = Table("用户名", "登录时间", "最近活动", "到期", "来源")
    for r in rows:
        t.add_row(r.username, str(r.created_at)[:19], str(r.last_seen_at)[:19], str(r.expires_at)[:19], r.client or "")
    out.print(t)


@users_app.command("token")
def token_cmd(
    name: Annotated[str, typer.Argument(help="User name the token acts as (same role and area).")],
    expires: Annotated[float | None, typer.Option(
        "--expires", help="Lifetime in days (default: no expiry).", min=0)] = None,
    label: Annotated[str | None, typer.Option("--label", help="What the token is for, e.g. 12345热线.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Make a bearer token of the read API (/api/v1) for NAME; printed once, only its hash is stored."""
    from gridmap.access.tokens import create_token

    try:
        engine = _engine(database_url)
        tid, token = create_token(engine, name, expires_days=expires, label=label, by="cli")
    except GridmapError as exc:
        _fail(exc)
    from gridmap.access.audit import audit

    audit(engine, "cli", "user_admin", "api_token", tid, "cli", {"op": "token", "user": name, "expires_days": expires})
    console.print(f"[green]✓[/green] 接口令牌 #{tid}（用户 {name}{f'，{expires:g} 天后到期' if expires else '，不过期'}）"
                  "只显示这一次，请妥善保存 / API token, shown only once:")
    out.print(token, soft_wrap=True, highlight=False)


@users_app.command("tokens")
def tokens_cmd(
    name: Annotated[str | None, typer.Argument(help="User name (default: every user).")] = None,
    database_url: DbOpt = None,
) -> None:
    """List the API tokens (of one user or all) with their state; never the token itself."""
    from gridmap.access.tokens import list_tokens

    try:
        rows = list_tokens(_engine(database_url), name)
    except GridmapError as exc:
        _fail(exc)
    t = Table("编号 ID", "用户名", "用途", "创建", "创建者", "到期", "最近使用", "状态")
    for r in rows:
        t.add_row(str(r.id), r.username, r.label or "", str(r.created_at)[:19], r.created_by or "",
                  str(r.expires_at)[:19] if r.expires_at else "不过期", str(r.last_used_at)[:19] if r.last_used_at
                  else "", r.state)
    out.print(t)


@users_app.command("token-revoke")
def token_revoke_cmd(
    token_id: Annotated[int, typer.Argument(help="The token's id (see gridmap users tokens).")],
    database_url: DbOpt = None,
) -> None:
    """Revoke an API token by its id: refused from the next request on, in every server process."""
    from gridmap.access.audit import audit
    from gridmap.access.tokens import revoke_token

    try:
        engine = _engine(database_url)
        was_active = revoke_token(engine, token_id)
    except GridmapError as exc:
        _fail(exc)
    audit(engine, "cli", "user_admin", "api_token", token_id, "cli", {"op": "token_revoke"})
    console.print(f"[green]✓[/green] 接口令牌 #{token_id} "
                  f"{'已吊销 / revoked' if was_active else '此前已失效 / was already revoked'}")


def _parse_since(text: str) -> datetime:
    m = re.fullmatch(r"\s*(\d+)\s*([hdm])\s*", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"h": timedelta(hours=n), "d": timedelta(days=n), "m": timedelta(minutes=n)}[unit]
        return datetime.now(UTC) - delta
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError("--since is a date/time (2025-03-01, 2025-03-01T08:00) or 24h / 7d / 30m",
                              "--since 须为日期时间（如 2025-03-01）或 24h / 7d / 30m", field="since",
                              value=text, code="since") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone(timedelta(hours=8)))  # Beijing time
    return dt


@audit_app.command("report")
def report(
    since: Annotated[str, typer.Option("--since", help="From when: 2025-03-01 (Beijing time) or 24h, 7d.")] = "7d",
    views: Annotated[int, typer.Option("--views", help="Records viewed within --window that are unusual.")] = 200,
    window: Annotated[int, typer.Option("--window", help="Window in minutes for --views.")] = 10,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the findings as CSV.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Report unusual access: many records in a short time, access outside one's area, denied requests,
    failed sign-ins. Exit code 1 when anything is found."""
    from gridmap.access.audit import unusual_access_report

    try:
        df = unusual_access_report(_engine(database_url), _parse_since(since), view_threshold=views,
                                   window_minutes=window)
    except GridmapError as exc:
        _fail(exc, 2)
    if csv is not None:
        from gridmap.sheets import write_csv

        write_csv(csv, df)  # text inert (no formula), owner-only
    if df.empty:
        console.print("[green]✓[/green] 未发现异常访问 / no unusual access")
        return
    t = Table("类型", "用户", "来源", "次数", "开始", "结束", "说明")
    for r in df.itertuples():
        t.add_row(r.kind, str(r.username), str(r.client), str(r.count), str(r.first_at)[:19], str(r.last_at)[:19],
                  r.detail)
    out.print(t)
    raise typer.Exit(1)
