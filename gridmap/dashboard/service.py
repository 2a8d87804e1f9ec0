"""The 服务任务 view (服务管家工作台): a service steward's open tasks and the day's visits to their elders.

Signed in as a 服务管家 (role ``service``, scoped to the elders whose 服务管家 they are) the user sees
the service tasks the needs recorded at visits opened for them (待处理 / 处理中, overdue first) and
the visits of the day to their elders (with the needs recorded and whether each visit counts as
effective), and acts on a task: 开始处理 (处理中) or 登记关爱服务 (a care service of 附件1-2 六, rated,
numbered 第 n 次开展关爱, which completes the task). Supervisors see the tasks of their area and may act
on them too. The server re-derives everything: the task is re-read, its elder must be in the user's
scope and the role allowed (:func:`gridmap.access.can_edit`, ``service_task``), a 服务管家 may act only
on a task that is theirs (:func:`gridmap.tasks.store.update_task` / ``serve_task`` with ``steward_id``);
every view and change is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from gridmap.access import PermissionDenied, can_edit, filter_frame
from gridmap.dashboard.auth import log_access
from gridmap.dashboard.data import DashboardData, User, current_user
from gridmap.dashboard.ui import dropdown, error_text, guarded, message
from gridmap.domain.enums import Role, VisitMode, VisitorRole
from gridmap.domain.masking import mask_name

__all__ = ["apply_action", "layout", "register", "tab", "task_rows"]

SATISFACTION = ["非常满意", "满意", "基本满意", "不满意"]


def _day(v: Any) -> date | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    return pd.Timestamp(v).date()


def task_rows(data: DashboardData, user: User, *, active_only: bool = True) -> list[dict[str, Any]]:
    """The tasks the user sees (a 服务管家: their own), overdue first, with masked names."""
    from gridmap.followups.store import elder_names
    from gridmap.tasks.lifecycle import ACTIVE_TASK, TaskStatus, is_overdue
    from gridmap.tasks.store import read_task_frame

    own = user.steward_id if Role(user.role) == Role.SERVICE else None
    if Role(user.role) == Role.SERVICE and own is None:
        return []
    df = read_task_frame(data.engine, steward_id=own, status=[s.value for s in ACTIVE_TASK] if active_only else None)
    df = filter_frame(df, user.scope, engine=data.engine)
    names = {k: mask_name(v) or "" for k, v in elder_names(data.engine, df["elder_id"].tolist()).items()}
    rows = []
    for r in df.itertuples():
        due = _day(r.due_on)
        st = TaskStatus(r.status)
        rows.append({"id": int(r.id), "elder_id": int(r.elder_id), "elder": names.get(int(r.elder_id), ""),
                     "community": r.community or "", "kind": r.label, "status": st.value, "status_label": st.label,
                     "receiver": (r.steward if isinstance(r.steward, str) else None) or r.receiver_unit or "",
                     "opened": _day(r.opened_on), "due": due, "note": r.note if isinstance(r.note, str) else "",
                     "overdue": is_overdue(st, due, data.today), "care_services": int(r.care_services)})
    rows.sort(key=lambda x: (not x["overdue"], x["due"] or date.max, x["id"]))
    return rows


def _task_table(rows: list[dict[str, Any]]) -> html.Div:
    if not rows:
        return message("当前没有待处理的服务任务", "ok")
    # few columns: the 服务管家 reads it on a phone
    head = html.Tr([html.Th(h) for h in ("编号", "老人", "服务需求", "状态", "完成时限", "需求说明")])
    body = [html.Tr([html.Td(r["id"]), html.Td(f"{r['elder']}（{r['elder_id']}）"), html.Td(r["kind"]),
                     html.Td([r["status_label"], html.Br(), html.B("逾期", style={"color": "#b00020"})]
                             if r["overdue"] else r["status_label"]),
                     html.Td(r["due"].isoformat() if r["due"] else ""), html.Td(r["note"])],
                    id=f"svc-task-{r['id']}") for r in rows]
    return html.Div([html.Div(f"共 {len(rows)} 项服务任务", id="svc-count"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="gm-route-table", id="svc-task-table",
                                style={"width": "100%", "fontSize": "0.9em"})])


def _visit_table(data: DashboardData, user: User) -> html.Div:
    from gridmap.followups.store import elder_names
    from gridmap.tasks.lifecycle import need_of
    from gridmap.tasks.store import read_day_visits

    if Role(user.role) != Role.SERVICE or user.steward_id is None:
        return html.Div()
    rows = read_day_visits(data.engine, int(user.steward_id), data.today)
    if not rows:
        return message("今日尚无对您服务老人的探访记录", "info")
    names = {k: mask_name(v) or "" for k, v in elder_names(data.engine, [r["elder_id"] for r in rows]).items()}

    def needs(r: dict[str, Any]) -> str:
        kinds = r["need_kinds"]
        labels = []
        for k in kinds or []:
            try:
                labels.append(need_of(data.rules, k).label)
            except Exception:  # noqa: BLE001 - a need the rules no longer list: its code
                labels.append(str(k))
        text = "、".join(labels) if labels else ("无" if kinds is not None else "")
        return text + (f"（{r['needs']}）" if r["needs"] else "")

    head = html.Tr([html.Th(h) for h in ("老人", "方式", "探访人", "服务需求", "有效探访")])
    body = [html.Tr([html.Td(f"{names.get(r['elder_id'], '')}（{r['elder_id']}）"),
                     html.Td(VisitMode(r["mode"]).label),
                     html.Td(r["visitor_name"] or VisitorRole(r["visitor_role"]).label), html.Td(needs(r)),
                     html.Td("是" if r["effective"] else f"否（{r['ineffective_reason'] or ''}）")]) for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="gm-route-table", id="svc-visit-table",
                      style={"width": "100%", "fontSize": "0.9em"})


def layout(data: DashboardData) -> html.Div:
    """The tab: the tasks, the actions, the day's visits."""
    return html.Div([
        html.H3("我的服务任务（待处理、处理中）", style={"margin": "4px"}),
        html.Div(id="svc-msg"),
        dcc.Loading(html.Div(id="svc-tasks")),
        html.Div([
            html.Span("任务编号："),
            dcc.Input(id="svc-id", type="number", placeholder="编号", style={"width": "6em"}),
            html.Button("开始处理", id="svc-start", className="gm-btn secondary"),
        ], style={"display": "flex", "gap": "0.5em", "alignItems": "center", "flexWrap": "wrap", "margin": "0.5em 0"}),
        html.Div([
            html.Span("登记关爱服务（附件1-2 第六部分）："),
            dcc.Input(id="svc-desc", type="text", placeholder="服务内容", maxLength=2000, style={"width": "18em"}),
            dcc.Input(id="svc-provider", type="text", placeholder="服务机构", maxLength=120, style={"width": "12em"}),
            html.Div(dropdown([{"label": s, "value": s} for s in SATISFACTION], None, id="svc-sat",
                              placeholder="老人满意度"), style={"minWidth": "9em"}),
            html.Button("登记关爱服务并完成任务", id="svc-serve", className="gm-btn"),
        ], style={"display": "flex", "gap": "0.5em", "alignItems": "center", "flexWrap": "wrap"}),
        html.H3("今日探访（我服务的老人）", style={"margin": "12px 4px 4px"}),
        dcc.Loading(html.Div(id="svc-visits")),
    ], style={"padding": "0.5em"}, id="svc-root")


def apply_action(data: DashboardData, user: User, task_id: int, action: str, *, description: str | None = None,
                 provider: str | None = None, satisfaction: str | None = None) -> str:
    """Re-check and apply an action (``start`` or ``serve``) on a task for ``user``; returns the message.

    Raises
    ------
    PermissionDenied
        The task is not in the user's area, the role may not act, or a 服务管家 acts on another's task.
    ValidationError
        A move the life-cycle does not allow, a bad satisfaction.
    """
    from gridmap.tasks.lifecycle import TaskStatus
    from gridmap.tasks.store import read_task_frame, serve_task, update_task

    df = read_task_frame(data.engine, elder_ids=None)
    row = df[df["id"] == int(task_id)]
    if row.empty:
        raise PermissionDenied(f"no service task {task_id}", f"未找到编号为 {task_id} 的服务任务")
    rec = row.iloc[0]
    elder = data.elder_scope_row(int(rec["elder_id"]))
    own = user.steward_id if Role(user.role) == Role.SERVICE else None
    if elder is None or not can_edit(user.scope, "service_task", elder=elder) or (
            Role(user.role) == Role.SERVICE and (own is None or pd.isna(rec["steward_id"])
                                                 or int(rec["steward_id"]) != int(own))):
        log_access("denied", "service_task", int(task_id), {"reason": "not_own_or_outside_area", "op": action})
        raise PermissionDenied("this service task is not yours or not in your area",
                               "该服务任务不属于您或不在您的管辖范围内，未保存")
    if action == "start":
        res = update_task(data.engine, int(task_id), TaskStatus.IN_PROGRESS, by=user.username, steward_id=own)
        text = f"服务任务 {task_id} 已更新为“{TaskStatus(res.status).label}”"
    else:
        served = serve_task(data.engine, int(task_id), by=user.username, served_on=data.today,
                            description=description, provider=provider, satisfaction=satisfaction, steward_id=own)
        text = (f"已登记关爱服务（第{served.seq}次开展关爱），服务任务 {task_id} "
                f"{TaskStatus(served.task_status).label}")
    log_access("update", "service_task", int(task_id), {"op": action})
    street = rec["street"]
    if isinstance(street, str) and street:
        data.refresh_street(street)
    return text


def register(app: dash.Dash, data: DashboardData) -> None:
    """Register the callbacks of the 服务任务 tab."""

    @app.callback(Output("svc-tasks", "children"), Output("svc-visits", "children"), Output("svc-msg", "children"),
                  Input("data-version", "data"), Input("tabs", "value"))
    @guarded(3)
    def _lists(_v: Any, tab_value: str) -> Any:
        if tab_value != "service":
            raise dash.exceptions.PreventUpdate
        user = current_user()
        rows = task_rows(data, user)
        log_access("view", "service_task_list", None, {"rows": len(rows)})
        return _task_table(rows), _visit_table(data, user), no_update

    @app.callback(Output("svc-msg", "children", allow_duplicate=True),
                  Output("data-version", "data", allow_duplicate=True),
                  Input("svc-start", "n_clicks"), Input("svc-serve", "n_clicks"), State("svc-id", "value"),
                  State("svc-desc", "value"), State("svc-provider", "value"), State("svc-sat", "value"),
                  prevent_initial_call=True)
    def _act(_a: Any, _b: Any, task_id: Any, desc: str | None, provider: str | None, sat: str | None) -> Any:
        action = "serve" if dash.ctx.triggered_id == "svc-serve" else "start"
        if task_id in (None, ""):
            return message("请填写任务编号 / give the task's number", "err"), no_update
        try:
            text = apply_action(data, current_user(), int(task_id), action, description=desc, provider=provider,
                                satisfaction=sat)
        except Exception as exc:  # noqa: BLE001 - shown as a message (Chinese / English)
            return message("未保存：" + error_text(exc), "err"), no_update
        return message(text, "ok"), data.version


def tab(data: DashboardData, user: User) -> dcc.Tab | None:
    """The tab for service stewards and the supervisors of their area (not planners, not read-only users)."""
    if Role(user.role) in (Role.PLANNER, Role.INSPECTOR):
        return None
    return dcc.Tab(layout(data), label="服务任务", value="service", id="tab-service")
