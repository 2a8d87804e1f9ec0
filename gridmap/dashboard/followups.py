"""The 隐患与转介 view: hazard and referral lists in the user's area, acted on, and the 接诉即办 measures.

Supervisors (and stewards, for their elders) see the hazards (风险隐患) and
referrals (转介) of the elders within their scope, overdue first, filtered by
state, and move them on (整改中 / 已整改 / 无法整改 / 已移交; 已受理 / 处理中 /
已办结) with a note. The server re-derives everything: the item is re-read from
the store, its elder must be within the signed-in user's scope and the user's
role allowed to change it (:func:`gridmap.access.can_edit`), and the state
change goes through :func:`gridmap.followups.store.update_hazard` /
``update_referral`` under the signed-in user's name (event, history, change
feed), which refuse transitions the life-cycle does not allow with a message in
Chinese and English. Every view and change is audited. The measures of the week
(:func:`gridmap.followups.measures.followup_sheet`) are shown per street.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from gridmap.access import PermissionDenied, can_edit, filter_frame
from gridmap.dashboard.auth import log_access
from gridmap.dashboard.data import DashboardData, User, current_user
from gridmap.dashboard.ui import dropdown, error_text, guarded, message
from gridmap.domain.enums import HazardKind, HazardStatus, ReferralStatus, Role
from gridmap.domain.masking import mask_name
from gridmap.followups.measures import followup_sheet
from gridmap.rules.requirements import parse_week, week_of

__all__ = ["apply_change", "hazard_rows", "layout", "measures_table", "open_followup_notes", "referral_rows",
           "register"]

HAZARD_ACTIONS = [HazardStatus.IN_PROGRESS, HazardStatus.FIXED, HazardStatus.CANNOT_FIX, HazardStatus.TRANSFERRED]
REFERRAL_ACTIONS = [ReferralStatus.ACKNOWLEDGED, ReferralStatus.IN_PROGRESS, ReferralStatus.CLOSED]
SATISFACTION = ["满意", "基本满意", "不满意"]
#: Columns of the measures table on the page.
MEASURE_COLUMNS = ["街道", "新发现隐患", "已整改", "整改率", "平均整改天数", "逾期未整改", "新转介", "响应率", "解决率",
                   "满意率", "逾期转介"]
LIST_LIMIT = 300


def _label(enum: type, code: Any) -> str:
    try:
        return str(enum(code).label)
    except (ValueError, TypeError):
        return str(code or "")


def _day(v: Any) -> date | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    ts = pd.Timestamp(v)
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("Asia/Shanghai")
    return ts.date()


def _names(data: DashboardData, elder_ids: list[int]) -> dict[int, str]:
    from gridmap.followups.store import elder_names

    return {k: mask_name(v) or "" for k, v in elder_names(data.engine, elder_ids).items()}


def _scoped(frame: pd.DataFrame, data: DashboardData, user: User) -> pd.DataFrame:
    return filter_frame(frame, user.scope, engine=data.engine)


def hazard_rows(data: DashboardData, user: User, statuses: list[str] | None) -> list[dict[str, Any]]:
    """The hazards the user sees (masked names), overdue first (longest overdue), then by due date."""
    from gridmap.followups.store import read_hazard_frame

    h = _scoped(read_hazard_frame(data.engine, status=statuses or None), data, user)
    today = data.today
    names = _names(data, [int(e) for e in h["elder_id"].dropna()])
    rows = []
    for r in h.itertuples():
        due, opened, closed = _day(r.deadline), _day(r.opened_on), _day(r.closed_on)
        active = r.status in (HazardStatus.OPEN.value, HazardStatus.IN_PROGRESS.value)
        overdue = (today - due).days if active and due is not None and due < today else 0
        rows.append({"key": f"h:{r.id}", "id": int(r.id), "elder": names.get(int(r.elder_id), ""),
                     "street": r.street or "", "community": r.community or "",
                     "kind": _label(HazardKind, r.kind), "status": r.status,
                     "status_label": _label(HazardStatus, r.status), "owner": r.owner_unit or "",
                     "opened": opened, "due": due, "closed": closed, "overdue_days": overdue,
                     "reopened": int(r.reopened_count or 0)})
    rows.sort(key=lambda x: (-x["overdue_days"], x["due"] or date.max, x["id"]))
    return rows


def referral_rows(data: DashboardData, user: User, statuses: list[str] | None) -> list[dict[str, Any]]:
    """The referrals the user sees (masked names), overdue first, then by deadline."""
    from gridmap.followups.store import read_referral_frame

    r_ = _scoped(read_referral_frame(data.engine, status=statuses or None), data, user)
    today = data.today
    names = _names(data, [int(e) for e in r_["elder_id"].dropna()])
    rows = []
    for r in r_.itertuples():
        due, opened = _day(r.deadline), _day(r.opened_at)
        active = r.status != ReferralStatus.CLOSED.value
        overdue = (today - due).days if active and due is not None and due < today else 0
        rows.append({"key": f"r:{r.id}", "id": int(r.id), "elder": names.get(int(r.elder_id), ""),
                     "street": r.street or "", "community": r.community or "",
                     "kind": ("紧急" if r.emergency else "需求") + (f"：{r.need}" if r.need else ""),
                     "status": r.status, "status_label": _label(ReferralStatus, r.status)
                     + ("（已升级）" if _day(r.escalated_at) else ""),
                     # a relative's name is personal data: masked (a street, community or steward is not)
                     "owner": (mask_name(r.receiver) if r.target == "first_contact" else r.receiver) or "",
                     "opened": opened, "due": due, "closed": _day(r.closed_at),
                     "overdue_days": overdue, "reopened": 0})
    rows.sort(key=lambda x: (-x["overdue_days"], x["due"] or date.max, x["id"]))
    return rows


def open_followup_notes(data: DashboardData, elder_ids: list[int]) -> dict[int, str]:
    """Per elder, the open follow-ups in a line for the steward's route list ("上次发现燃气隐患，整改中")."""
    from gridmap.followups.store import read_hazard_frame, read_referral_frame

    ids = sorted({int(e) for e in elder_ids})
    if not ids:
        return {}
    notes: dict[int, list[str]] = {}
    h = read_hazard_frame(data.engine, status=[HazardStatus.OPEN.value, HazardStatus.IN_PROGRESS.value],
                          elder_ids=ids)
    for r in h.itertuples():
        kind = _label(HazardKind, r.kind).removesuffix("安全")
        notes.setdefault(int(r.elder_id), []).append(
            f"上次发现{kind}隐患，{_label(HazardStatus, r.status)}")
    rf = read_referral_frame(data.engine, status=[ReferralStatus.OPEN.value, ReferralStatus.ACKNOWLEDGED.value,
                                                  ReferralStatus.IN_PROGRESS.value], elder_ids=ids)
    for r in rf.itertuples():
        what = "紧急情况" if r.emergency else (str(r.need)[:12] if r.need else "服务需求")
        notes.setdefault(int(r.elder_id), []).append(f"转介（{what}）{_label(ReferralStatus, r.status)}")
    return {k: "；".join(v) for k, v in notes.items()}


def _table(rows: list[dict[str, Any]], what: str) -> html.Div:
    if not rows:
        return message(f"没有符合条件的{what}", "info")
    owner = "责任单位" if what == "隐患" else "接收方"
    head = html.Tr([html.Th(h) for h in ("编号", "老人", "街道", "社区", "类别", "状态", owner, "发现/发起", "期限",
                                          "逾期")])
    body = []
    for r in rows[:LIST_LIMIT]:
        od = f"逾期{r['overdue_days']}天" if r["overdue_days"] else ""
        body.append(html.Tr([html.Td(r["id"]), html.Td(r["elder"]), html.Td(r["street"]), html.Td(r["community"]),
                             html.Td(r["kind"]), html.Td(r["status_label"] + ("（重新打开）" if r["reopened"] else "")),
                             html.Td(r["owner"]), html.Td(r["opened"].isoformat() if r["opened"] else ""),
                             html.Td(r["due"].isoformat() if r["due"] else ""),
                             html.Td(od, style={"color": "#b00020", "fontWeight": "bold"} if od else {})],
                            id=f"fu-row-{r['key'].replace(':', '-')}"))
    more = (html.Div(f"仅显示前 {LIST_LIMIT} 条（共 {len(rows)} 条），请按状态筛选", className="gm-hint")
            if len(rows) > LIST_LIMIT else None)
    return html.Div([html.Div(f"共 {len(rows)} 条{what}", id=f"fu-count-{'h' if what == '隐患' else 'r'}"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="gm-route-table",
                                style={"width": "100%", "fontSize": "0.9em"}), more])


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.0%}"


def _num(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.1f}"


def measures_table(data: DashboardData, user: User, week: str | None = None, street: str | None = None,
                   table_id: str = "fu-measures-table") -> html.Div:
    """The 接诉即办 measures of ``week`` (default: the current week as of today) per street in the user's scope
    (of ``street`` when given)."""
    from gridmap.followups.store import read_hazard_frame, read_referral_frame

    week = week or week_of(data.today)
    h = _scoped(read_hazard_frame(data.engine, street=street or None), data, user)
    r = _scoped(read_referral_frame(data.engine, street=street or None), data, user)
    sheet = followup_sheet(h, r, week=week, as_of=data.today, streets=[street] if street else None)
    head = html.Tr([html.Th(c) for c in MEASURE_COLUMNS])
    body = []
    for row in sheet.to_dict("records"):
        cells = []
        for c in MEASURE_COLUMNS:
            v = row[c]
            text = _pct(v) if c.endswith("率") else _num(v) if c.startswith("平均") else str(v)
            style = {"textAlign": "left" if c == "街道" else "center"}
            if row["街道"] == "海淀区":
                style["fontWeight"] = "bold"
            cells.append(html.Td(text, style=style))
        body.append(html.Tr(cells))
    parse_week(week)  # refuses a malformed week
    cut = min(data.today, parse_week(week)[1])
    return html.Div([html.H4(f"接诉即办指标 · {week}（截至 {cut.isoformat()}；"
                             "到期前不算逾期）"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="gm-route-table",
                                id=table_id, style={"width": "100%", "fontSize": "0.9em"})],
                    id="fu-measures" if table_id == "fu-measures-table" else f"{table_id}-box")


def layout(data: DashboardData) -> html.Div:
    """The tab: measures, filters, the list, and the state change form."""
    h_opts = [{"label": s.label, "value": s.value} for s in HazardStatus if s.name != "CLOSED"]
    return html.Div([
        html.Div(id="fu-measures-box"),
        html.Div([
            dcc.RadioItems([{"label": " 风险隐患", "value": "h"}, {"label": " 转介", "value": "r"}], "h",
                           id="fu-type", inline=True, style={"marginRight": "1em"}),
            html.Div(dropdown(h_opts, [HazardStatus.OPEN.value, HazardStatus.IN_PROGRESS.value], id="fu-status",
                              multi=True, placeholder="全部状态"), style={"minWidth": "22em"}),
        ], style={"display": "flex", "gap": "1em", "alignItems": "center", "margin": "0.5em 0"}),
        html.Div([
            html.Span("变更状态："),
            dcc.Input(id="fu-id", type="number", placeholder="编号", style={"width": "6em"}),
            html.Div(dropdown([], None, id="fu-target", placeholder="新状态"), style={"minWidth": "10em"}),
            dcc.Input(id="fu-note", type="text", placeholder="说明（处理情况、原因、移交单位、办结结果）",
                      style={"width": "24em"}),
            html.Div(dropdown([{"label": s, "value": s} for s in SATISFACTION], None, id="fu-sat",
                              placeholder="满意度（办结时）"), style={"minWidth": "9em"}),
            html.Button("更新状态", id="fu-apply", className="gm-btn"),
        ], style={"display": "flex", "gap": "0.5em", "alignItems": "center", "flexWrap": "wrap"}),
        html.Div(id="fu-msg"),
        dcc.Loading(html.Div(id="fu-list")),
    ], style={"padding": "0.5em"}, id="fu-root")


def apply_change(data: DashboardData, user: User, kind: str, item_id: int, target: str, note: str | None,
                 satisfaction: str | None) -> str:
    """Re-check and apply one state change for ``user``; returns the message. Raises on refusal."""
    from gridmap.followups.store import read_hazard_frame, read_referral_frame, update_hazard, update_referral

    entity = "hazard" if kind == "h" else "referral"
    frame = (read_hazard_frame(data.engine) if kind == "h" else read_referral_frame(data.engine))
    row = frame[frame["id"] == int(item_id)]
    if row.empty:
        raise PermissionDenied(f"no {entity} {item_id}", f"未找到编号为 {item_id} 的{'隐患' if kind == 'h' else '转介'}")
    rec = row.iloc[0]
    elder = data.elder_scope_row(int(rec["elder_id"])) if pd.notna(rec["elder_id"]) else None
    if elder is None or not can_edit(user.scope, entity, elder=elder):
        log_access("denied", entity, int(item_id), {"reason": "outside_area_or_role", "op": "state"})
        raise PermissionDenied(f"this {entity} is not in your area or your role may not change it",
                               f"该{'隐患' if kind == 'h' else '转介'}不在您的管辖范围内，或您的角色无权变更，未保存")
    note = (note or "").strip() or None
    if kind == "h":
        extra: dict[str, Any] = {}
        if target == HazardStatus.CANNOT_FIX.value:
            extra["reason"] = note
        elif target == HazardStatus.TRANSFERRED.value:
            extra["transferred_to"] = note
        res = update_hazard(data.engine, int(item_id), target, by=user.username, note=note, **extra)
        label = _label(HazardStatus, res.status)
    else:
        closing = target == ReferralStatus.CLOSED.value
        res = update_referral(data.engine, int(item_id), target, by=user.username, note=note,
                              outcome=note if closing else None, satisfaction=satisfaction if closing else None)
        label = _label(ReferralStatus, res.status)
    log_access("update", entity, int(item_id), {"op": "state", "status": res.status})
    street = rec["street"]
    if isinstance(street, str) and street:
        data.refresh_street(street)
    return f"{'隐患' if kind == 'h' else '转介'} {item_id} 已更新为“{label}”"


def register(app: dash.Dash, data: DashboardData) -> None:
    """Register the callbacks of the 隐患与转介 tab."""

    @app.callback(Output("fu-status", "options"), Output("fu-status", "value"), Output("fu-target", "options"),
                  Output("fu-target", "value"), Input("fu-type", "value"))
    def _type(kind: str) -> Any:
        if kind == "r":
            opts = [{"label": s.label, "value": s.value} for s in ReferralStatus]
            acts = [{"label": s.label, "value": s.value} for s in REFERRAL_ACTIONS]
            return opts, [ReferralStatus.OPEN.value, ReferralStatus.ACKNOWLEDGED.value,
                          ReferralStatus.IN_PROGRESS.value], acts, None
        opts = [{"label": s.label, "value": s.value} for s in HazardStatus if s.name != "CLOSED"]
        acts = [{"label": s.label, "value": s.value} for s in HAZARD_ACTIONS]
        return opts, [HazardStatus.OPEN.value, HazardStatus.IN_PROGRESS.value], acts, None

    @app.callback(Output("fu-list", "children"), Output("fu-measures-box", "children"),
                  Input("fu-type", "value"), Input("fu-status", "value"), Input("data-version", "data"),
                  Input("tabs", "value"))
    @guarded(2)
    def _list(kind: str, statuses: list[str] | None, _v: Any, tab: str) -> Any:
        if tab != "followups":
            raise dash.exceptions.PreventUpdate
        user = current_user()
        rows = (hazard_rows if kind == "h" else referral_rows)(data, user, statuses or None)
        log_access("view", "hazard_list" if kind == "h" else "referral_list", None, {"rows": len(rows)})
        return _table(rows, "隐患" if kind == "h" else "转介"), measures_table(data, user)

    @app.callback(Output("sup-fu-measures", "children"), Input("sup-week", "value"), Input("sup-street", "value"),
                  Input("data-version", "data"))
    def _sup_measures(week: str | None, street: str | None, _v: Any) -> Any:
        try:
            return measures_table(data, current_user(), week or None, street or None, table_id="sup-fu-table")
        except Exception as exc:  # noqa: BLE001 - shown as a message
            return message("接诉即办指标暂不可用：" + error_text(exc), "err")

    @app.callback(Output("fu-msg", "children"), Output("data-version", "data", allow_duplicate=True),
                  Output("fu-note", "value"), Input("fu-apply", "n_clicks"), State("fu-type", "value"), State("fu-id", "value"),
                  State("fu-target", "value"), State("fu-note", "value"), State("fu-sat", "value"),
                  prevent_initial_call=True)
    def _apply(_n: int, kind: str, item_id: Any, target: str | None, note: str | None, sat: str | None) -> Any:
        if item_id in (None, "") or not target:
            return message("请填写编号并选择新状态 / give the number and the new state", "err"), no_update, no_update
        try:
            text = apply_change(data, current_user(), "r" if kind == "r" else "h", int(item_id), target, note, sat)
        except Exception as exc:  # noqa: BLE001 - shown as a message (Chinese / English)
            return message("未保存：" + error_text(exc), "err"), no_update, no_update
        return message(text, "ok"), data.version, ""


def tab(data: DashboardData, user: User) -> dcc.Tab | None:
    """The tab for users who deal with follow-ups (not planners)."""
    if Role(user.role) == Role.PLANNER:
        return None
    return dcc.Tab(layout(data), label="隐患与转介", value="followups", id="tab-followups")

