"""``gridmap hazards``, ``gridmap referrals`` and ``gridmap jobs``: follow-ups worked to closure from the shell.

A Chinese table by default, ``--json`` a JSON array (elder names masked). Refused input (an
unknown id or status, a transition the life-cycle does not allow) prints the reason in Chinese
and English and exits 1.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail, open_store_or_exit
from gridmap._errors import GridmapError, ValidationError

hazards_app = typer.Typer(help="Home-safety hazards: list, move on, joint inspections. 风险隐患", no_args_is_help=True)
referrals_app = typer.Typer(help="Referrals: list, acknowledge, work on, close. 转介", no_args_is_help=True)
jobs_app = typer.Typer(help="The periodic jobs (escalation, reminders), once, for cron. 定时任务", no_args_is_help=True)

def _console() -> Console:
    """Standard output; when it is not a terminal (a pipe, a file) wide enough for the whole table."""
    return Console() if sys.stdout.isatty() else Console(width=220)


_err = Console(stderr=True)
_BEIJING = timezone(timedelta(hours=8))

DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL).")]
RulesOpt = Annotated[Optional[Path], typer.Option("--rules", help="A district rules YAML (default: the document's).")]
StreetOpt = Annotated[Optional[str], typer.Option("--street", help="Only this street, e.g. 学院路街道.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON array instead of the table.")]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in the environment (containers)
        return "unknown"


ByOpt = Annotated[Optional[str], typer.Option("--by", help="Who makes the change (default: the OS user).")]


def _day(v: Any) -> str | None:
    """A date or timestamp as the Beijing calendar day (ISO), None when missing."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        v = (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(_BEIJING).date()
    return v.isoformat() if isinstance(v, date) else str(v)


def _ts(v: Any) -> str | None:
    if v is None or pd.isna(v):
        return None
    return pd.Timestamp(v).isoformat()


def _none(v: Any) -> Any:
    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _today() -> date:
    return datetime.now(_BEIJING).date()


def hazard_records(df: pd.DataFrame, names: dict[int, str]) -> list[dict[str, Any]]:
    """The JSON objects of ``gridmap hazards list --json`` (elder names masked)."""
    from gridmap.domain.enums import HazardKind, HazardStatus, Severity
    from gridmap.domain.masking import mask_name

    today = _today()
    out = []
    for r in df.to_dict("records"):
        st = HazardStatus(r["status"])
        due = _day(r["deadline"])
        out.append({
            "id": int(r["id"]), "elder_id": _none(r["elder_id"]),
            "elder": mask_name(names.get(int(r["elder_id"]))) if _none(r["elder_id"]) is not None else None,
            "street": _none(r["street"]), "community": _none(r["community"]), "grid": _none(r["grid"]),
            "kind": r["kind"], "kind_label": HazardKind(r["kind"]).label,
            "severity": r["severity"], "severity_label": Severity(r["severity"]).label,
            "status": st.value, "status_label": st.label,
            "opened_on": _day(r["opened_on"]), "due_on": due, "closed_on": _day(r["closed_on"]),
            "overdue": bool(st.active and due is not None and date.fromisoformat(due) < today),
            "owner_unit": _none(r["owner_unit"]), "transferred_to": _none(r["transferred_to"]),
            "reason": _none(r["status_reason"]), "reopened_count": int(r["reopened_count"]),
        })
    return out


def referral_records(df: pd.DataFrame, names: dict[int, str]) -> list[dict[str, Any]]:
    """The JSON objects of ``gridmap referrals list --json`` (elder names masked)."""
    from gridmap.domain.enums import ReferralStatus, ReferralTarget, Satisfaction
    from gridmap.domain.masking import mask_name

    now = pd.Timestamp.now(tz="UTC")
    out = []
    for r in df.to_dict("records"):
        st = ReferralStatus(r["status"])
        dl = r["deadline"]
        sat = _none(r["satisfaction"])
        out.append({
            "id": int(r["id"]), "elder_id": int(r["elder_id"]), "elder": mask_name(names.get(int(r["elder_id"]))),
            "street": _none(r["street"]), "community": _none(r["community"]),
            "kind": r["kind"], "need": _none(r["need"]),
            "status": st.value, "status_label": st.label,
            "opened_on": _day(r["opened_at"]), "due_on": _day(dl), "closed_on": _day(r["closed_at"]),
            "opened_at": _ts(r["opened_at"]), "deadline": _ts(dl), "acknowledged_at": _ts(r["acknowledged_at"]),
            "in_progress_at": _ts(r["in_progress_at"]), "closed_at": _ts(r["closed_at"]),
            "escalated": _none(r["escalated_at"]) is not None, "escalated_at": _ts(r["escalated_at"]),
            "overdue": bool(not st.terminal and _none(dl) is not None and pd.Timestamp(dl) < now),
            "target": r["target"], "target_label": ReferralTarget(r["target"]).label,
            "receiver": _none(r["receiver"]) or ReferralTarget(r["target"]).label,
            "outcome": _none(r["outcome"]), "resolved": _none(r["resolved"]),
            "satisfaction": sat, "satisfaction_label": Satisfaction(sat).label if sat else None,
        })
    return out


def _print_json(rows: list[dict[str, Any]]) -> None:
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))


@hazards_app.command("list")
def hazards_list(
    street: StreetOpt = None,
    status: Annotated[Optional[str], typer.Option("--status", help="open|in_progress|fixed|cannot_fix|transferred "
                                                  "or 待处理/整改中/已整改/无法整改/已移交.")] = None,
    as_json: JsonOpt = False,
    database_url: DbOpt = None,
) -> None:
    """List hazards (overdue first), with owner unit and due date."""
    from gridmap.followups.lifecycle import parse_hazard_status
    from gridmap.followups.store import elder_names, read_hazard_frame

    try:
        st = parse_hazard_status(status) if status else None
        engine = open_store_or_exit(database_url)
        df = read_hazard_frame(engine, street=street, status=st)
        rows = hazard_records(df, elder_names(engine, df["elder_id"]))
    except GridmapError as exc:
        fail(exc)
    rows.sort(key=lambda r: (not r["overdue"], r["due_on"] or "9999", r["id"]))
    if as_json:
        _print_json(rows)
        return
    t = Table(title=f"风险隐患 / hazards（{len(rows)} 条）")
    for c in ("编号", "老人", "街道", "社区", "类别", "状态", "发现日期", "整改期限", "整改日期", "责任单位", "逾期"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["elder"] or "", r["street"] or "", r["community"] or "", r["kind_label"],
                  r["status_label"] + (f"（重开{r['reopened_count']}次）" if r["reopened_count"] else ""),
                  r["opened_on"] or "", r["due_on"] or "", r["closed_on"] or "",
                  r["transferred_to"] or r["owner_unit"] or "", "是" if r["overdue"] else "")
    _console().print(t)


@hazards_app.command("update")
def hazards_update(
    hazard_id: Annotated[int, typer.Argument(help="The hazard's id.")],
    status: Annotated[str, typer.Option("--status", help="in_progress|fixed|cannot_fix|transferred (or 整改中/已整改/无法整改/已移交).")],
    note: Annotated[Optional[str], typer.Option("--note", help="What was done.")] = None,
    by: ByOpt = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why it cannot be fixed (无法整改).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="The unit it is transferred to (已移交; default: the owner unit).")] = None,
    photo: Annotated[Optional[str], typer.Option("--photo", help="A photo reference (file name or URL).")] = None,
    database_url: DbOpt = None,
) -> None:
    """Move a hazard on: 整改中, 已整改, 无法整改 (with a reason) or 已移交 (to a unit)."""
    from gridmap.followups.store import update_hazard

    try:
        engine = open_store_or_exit(database_url)
        res = update_hazard(engine, hazard_id, status, by=by or _os_user(), note=note, photo_ref=photo,
                            reason=reason, transferred_to=to)
    except GridmapError as exc:
        fail(exc)
    from gridmap.domain.enums import HazardStatus

    _err.print(f"[green]✓[/green] 隐患 {res.id}：{HazardStatus(res.event.from_status).label} → "
               f"{HazardStatus(res.status).label} / hazard {res.id}: {res.event.from_status} → {res.status}")


@hazards_app.command("inspection")
def hazards_inspection(
    file: Annotated[Path, typer.Argument(help="A joint inspection (JSON): date, street, community, departments, "
                                         "homes_visited, hazards_found, hazards_closed.")],
    by: ByOpt = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Record a joint inspection (联合入户排查) with the hazards it found and closed."""
    from gridmap.followups.inspections import record_inspection
    from gridmap.rules.config import load_rules

    try:
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValidationError(f"cannot read the JSON file {file}: {exc}", f"无法读取 JSON 文件 {file}：{exc}",
                                  field=str(file), code="bad_json") from None
        engine = open_store_or_exit(database_url)
        res = record_inspection(engine, payload, by=by or _os_user(), rules=load_rules(rules_file))
    except GridmapError as exc:
        fail(exc)
    _err.print(f"[green]✓[/green] 联合入户排查 {res.id}：新发现隐患 {len(res.opened)}，重新打开 {len(res.reopened)}，"
               f"已在册 {len(res.skipped)}，确认整改 {len(res.closed)} / inspection {res.id}: "
               f"{len(res.opened)} opened, {len(res.reopened)} reopened, {len(res.skipped)} already open, "
               f"{len(res.closed)} closed")


@referrals_app.command("list")
def referrals_list(
    street: StreetOpt = None,
    status: Annotated[Optional[str], typer.Option("--status", help="open|acknowledged|in_progress|closed "
                                                  "or 待受理/已受理/处理中/已办结.")] = None,
    as_json: JsonOpt = False,
    database_url: DbOpt = None,
) -> None:
    """List referrals (overdue first), with receiver and deadline."""
    from gridmap.followups.lifecycle import parse_referral_status
    from gridmap.followups.store import elder_names, read_referral_frame

    try:
        st = parse_referral_status(status) if status else None
        engine = open_store_or_exit(database_url)
        df = read_referral_frame(engine, street=street, status=st)
        rows = referral_records(df, elder_names(engine, df["elder_id"]))
    except GridmapError as exc:
        fail(exc)
    rows.sort(key=lambda r: (not r["overdue"], r["deadline"] or "9999", r["id"]))
    if as_json:
        _print_json(rows)
        return
    t = Table(title=f"转介 / referrals（{len(rows)} 条）")
    for c in ("编号", "老人", "街道", "类别", "状态", "转介日期", "办理时限", "办结日期", "接收方", "满意度", "逾期"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["elder"] or "", r["street"] or "", "紧急" if r["kind"] == "emergency" else "需求",
                  r["status_label"] + ("（已升级）" if r["escalated"] else ""), r["opened_on"] or "",
                  r["due_on"] or "", r["closed_on"] or "", r["receiver"] or "", r["satisfaction_label"] or "",
                  "是" if r["overdue"] else "")
    _console().print(t)


@referrals_app.command("update")
def referrals_update(
    referral_id: Annotated[int, typer.Argument(help="The referral's id.")],
    status: Annotated[str, typer.Option("--status", help="acknowledged|in_progress|closed (or 已受理/处理中/已办结).")],
    outcome: Annotated[Optional[str], typer.Option("--outcome", help="What was done (办理结果).")] = None,
    satisfaction: Annotated[Optional[str], typer.Option("--satisfaction", help="满意|基本满意|不满意 (return visit or call).")] = None,
    by: ByOpt = None,
    unresolved: Annotated[bool, typer.Option("--unresolved", help="Closed without the need resolved.")] = False,
    note: Annotated[Optional[str], typer.Option("--note", help="A note for the event.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Move a referral on: 已受理, 处理中, 已办结 (with outcome and satisfaction)."""
    from gridmap.domain.enums import ReferralStatus
    from gridmap.followups.store import update_referral

    try:
        engine = open_store_or_exit(database_url)
        res = update_referral(engine, referral_id, status, by=by or _os_user(), outcome=outcome,
                              satisfaction=satisfaction, resolved=not unresolved, note=note)
    except GridmapError as exc:
        fail(exc)
    _err.print(f"[green]✓[/green] 转介 {res.id}：{ReferralStatus(res.event.from_status).label} → "
               f"{ReferralStatus(res.status).label} / referral {res.id}: {res.event.from_status} → {res.status}")


@jobs_app.command("run")
def jobs_run(
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the periodic jobs once (what the server runs by itself): escalation, then the queued reminders."""
    from gridmap.followups.jobs import run_jobs, summary
    from gridmap.rules.config import load_rules

    try:
        engine = open_store_or_exit(database_url)
        res = run_jobs(engine, rules=load_rules(rules_file), by=f"cli:{_os_user()}")
    except GridmapError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(res, ensure_ascii=False))
        return
    _err.print(f"[green]✓[/green] 升级 {len(res['escalated'])} 条紧急转介，发送提醒 {res['sent']} 条，失败 {res['failed']} 条"
               f" / {summary(res)}")


__all__ = ["hazard_records", "hazards_app", "jobs_app", "referral_records", "referrals_app"]
