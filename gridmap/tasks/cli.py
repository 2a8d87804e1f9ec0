"""``gridmap tasks``: the service tasks (服务任务) the needs recorded at visits opened, worked from the shell.

``list`` (a Chinese table, or ``--json``: one object per task with ``id``, ``elder_id``, ``kind``,
``steward``, ``status``, ``due_on`` and more; elder names masked), ``update ID --status`` (处理中 /
已完成 / 已取消 with a note) and ``serve ID`` (a care service recorded against the task, 第 n 次开展关爱,
with the elder's satisfaction; completes the task unless ``--keep-open``). Refused input prints the reason
in Chinese and English and exits 1.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer

from gridmap._cli import fail, open_store_or_exit
from gridmap._errors import GridmapError
from gridmap.followups.cli import (
    ByOpt,
    DbOpt,
    JsonOpt,
    StreetOpt,
    _console,
    _day,
    _err,
    _none,
    _os_user,
    _today,
)

tasks_app = typer.Typer(help="Service tasks from the needs recorded at visits: list, move on, serve. 服务任务",
                        no_args_is_help=True)


def task_records(df: Any, names: dict[int, str]) -> list[dict[str, Any]]:
    """The JSON objects of ``gridmap tasks list --json`` (elder names masked)."""
    from gridmap.domain.masking import mask_name
    from gridmap.tasks.lifecycle import TaskStatus, is_overdue

    today = _today()
    out = []
    for r in df.to_dict("records"):
        st = TaskStatus(r["status"])
        due = _day(r["due_on"])
        steward = _none(r["steward_code"])
        out.append({
            "id": int(r["id"]), "elder_id": int(r["elder_id"]), "elder": mask_name(names.get(int(r["elder_id"]))),
            "street": _none(r["street"]), "community": _none(r["community"]),
            "kind": r["kind"], "kind_label": r["label"],
            "steward": steward, "steward_id": _none(r["steward_id"]), "steward_name": _none(r["steward"]),
            "receiver": _none(r["steward"]) or _none(r["receiver_unit"]), "receiver_unit": _none(r["receiver_unit"]),
            "status": st.value, "status_label": st.label,
            "opened_on": _day(r["opened_on"]), "due_on": due, "closed_on": _day(r["closed_at"]),
            "overdue": is_overdue(st, date.fromisoformat(due) if due else None, today),
            "care_services": int(r["care_services"]), "note": _none(r["note"]), "outcome": _none(r["outcome"]),
            "visit_id": _none(r["visit_id"]),
        })
    return out


@tasks_app.command("list")
def tasks_list(
    steward: Annotated[str | None, typer.Option("--steward", help="Only this 服务管家's tasks (code or id).")] = None,
    street: StreetOpt = None,
    status: Annotated[str | None, typer.Option("--status", help="open|in_progress|done|cancelled "
                                                  "or 待处理/处理中/已完成/已取消.")] = None,
    as_json: JsonOpt = False,
    database_url: DbOpt = None,
) -> None:
    """List service tasks (overdue first), with the receiver and the due date."""
    from gridmap.followups.store import elder_names
    from gridmap.tasks.lifecycle import parse_task_status
    from gridmap.tasks.store import read_task_frame, resolve_service_steward

    try:
        st = parse_task_status(status) if status else None
        engine = open_store_or_exit(database_url)
        sid = resolve_service_steward(engine, steward) if steward else None
        df = read_task_frame(engine, steward_id=sid, street=street, status=st)
        rows = task_records(df, elder_names(engine, df["elder_id"]))
    except GridmapError as exc:
        fail(exc)
    rows.sort(key=lambda r: (not r["overdue"], r["due_on"] or "9999", r["id"]))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    from rich.table import Table

    t = Table(title=f"服务任务 / service tasks（{len(rows)} 条）")
    for c in ("编号", "老人", "街道", "社区", "需求", "承接", "状态", "产生日期", "完成时限", "关爱次数", "逾期"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["elder"] or "", r["street"] or "", r["community"] or "", r["kind_label"],
                  r["receiver"] or "", r["status_label"], r["opened_on"] or "", r["due_on"] or "",
                  str(r["care_services"]), "是" if r["overdue"] else "")
    _console().print(t)


@tasks_app.command("update")
def tasks_update(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    status: Annotated[str, typer.Option("--status", help="in_progress|done|cancelled (or 处理中/已完成/已取消).")],
    note: Annotated[str | None, typer.Option("--note", help="What was done, or why cancelled.")] = None,
    by: ByOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Move a service task on: 处理中, 已完成 or 已取消 (with a reason)."""
    from gridmap.tasks.lifecycle import TaskStatus
    from gridmap.tasks.store import update_task

    try:
        engine = open_store_or_exit(database_url)
        res = update_task(engine, task_id, status, by=by or _os_user(), note=note)
    except GridmapError as exc:
        fail(exc)
    _err.print(f"[green]✓[/green] 服务任务 {res.id}：{TaskStatus(res.event.from_status).label} → "
               f"{TaskStatus(res.status).label} / service task {res.id}: {res.event.from_status} → {res.status}")


@tasks_app.command("serve")
def tasks_serve(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    description: Annotated[str | None, typer.Option("--description", help="服务内容: what was done.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="服务机构: who served.")] = None,
    staff: Annotated[str | None, typer.Option("--staff", help="服务人员签字.")] = None,
    satisfaction: Annotated[str | None, typer.Option("--satisfaction",
                                                        help="非常满意|满意|基本满意|不满意 (the elder's rating).")] = None,
    served_on: Annotated[str | None, typer.Option("--on", help="Service date YYYY-MM-DD (default today).")] = None,
    keep_open: Annotated[bool, typer.Option("--keep-open", help="Record the service, leave the task open.")] = False,
    by: ByOpt = None,
    as_json: JsonOpt = False,
    database_url: DbOpt = None,
) -> None:
    """Record a care service (六、关爱服务情况) against a task: numbered per elder, rated; completes the task."""
    from gridmap._errors import ValidationError
    from gridmap.tasks.lifecycle import TaskStatus
    from gridmap.tasks.store import serve_task

    try:
        try:
            day = date.fromisoformat(served_on) if served_on else None
        except ValueError:
            raise ValidationError("--on expects a date YYYY-MM-DD", "--on 应为日期 YYYY-MM-DD", field="served_on",
                                  value=served_on, code="date") from None
        engine = open_store_or_exit(database_url)
        res = serve_task(engine, task_id, by=by or _os_user(), served_on=day, description=description,
                         provider=provider, staff_signature=staff, satisfaction=satisfaction, complete=not keep_open)
    except GridmapError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps({"care_service_id": res.care_service_id, "seq": res.seq, "task_id": res.task_id,
                               "task_status": res.task_status}, ensure_ascii=False))
        return
    _err.print(f"[green]✓[/green] 第{res.seq}次开展关爱（关爱服务 {res.care_service_id}），服务任务 {res.task_id}："
               f"{TaskStatus(res.task_status).label} / care service {res.care_service_id} (no. {res.seq}), "
               f"task {res.task_id}: {res.task_status}")


__all__ = ["task_records", "tasks_app"]
