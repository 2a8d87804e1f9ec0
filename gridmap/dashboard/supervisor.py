"""Supervisor view (街镇督导): KPI cards, coverage map, overdue/lagging tables, trend chart, filters, xlsx export."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta
from typing import Any

import dash
import dash_ag_grid as dag
import dash_leaflet as dl
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from gridmap.access import PermissionDenied, unmask
from gridmap.dashboard import map as gm
from gridmap.dashboard.auth import client_address, log_access
from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.data import BEIJING, SYSTEM_USER, DashboardData, Filters, current_user
from gridmap.dashboard.fmt import fmt_count, fmt_date, fmt_pct, fmt_week
from gridmap.dashboard.ui import card, dropdown, guarded, message
from gridmap.domain.enums import Category, Role

__all__ = ["layout", "register"]

#: Name of the devices overlay (off by default; its data are shipped once it is switched on).
DEVICES_LAYER = "居家安全设备（烟感、一键式终端等）"
#: Name of the stations overlay (off by default; fetched once it is switched on).
STATIONS_LAYER = "养老驿站与卫生服务站点"
LEVEL_LABELS = {"street": "街道/镇", "community": "社区/村", "grid": "网格"}
#: Fields the elder detail's "显示完整信息" shows in clear (with a reason, audited).
UNMASK_FIELDS = ("name", "phone", "address", "first_contact_name", "first_contact_phone")
UNMASK_LABELS = {"name": "姓名", "phone": "电话", "address": "住址", "first_contact_name": "第一联系人",
                 "first_contact_phone": "第一联系人电话"}


def layout(data: DashboardData, basemap: Basemap) -> html.Div:
    """The supervisor view."""
    user = current_user()
    weeks = data.weeks()
    static = [
        dl.Overlay(dl.GeoJSON(url=gm.layer_url("estimated"), id="sup-estimated",
                              style={"variable": "gridmap.estimated"}, interactive=False),
                   name="无路网数据区域（估算）", checked=True),
        # off by default: its 900 points are fetched once it is switched on (see ``register``)
        dl.Overlay(dl.GeoJSON(id="sup-stations", pointToLayer={"variable": "gridmap.station"},
                              onEachFeature={"variable": "gridmap.tooltip"}),
                   name=STATIONS_LAYER, checked=False),
    ]
    if not basemap.url:
        static.insert(0, dl.Overlay(dl.GeoJSON(url=gm.layer_url("roads"), id="sup-roads",
                                               style={"variable": "gridmap.roads"}, interactive=False),
                                    name="路网（离线底图）", checked=True))
    overlays = [
        *static,
        dl.Overlay(dl.GeoJSON(id="sup-choropleth", style={"variable": "gridmap.choropleth"},
                              onEachFeature={"variable": "gridmap.tooltip"}),
                   name="周探访率（分区着色）", checked=True),
        dl.Overlay(dl.GeoJSON(url=gm.layer_url("district"), id="sup-district", style={"variable": "gridmap.boundary"}, interactive=False),
                   name="海淀区界", checked=True),
        dl.Overlay(dl.GeoJSON(id="sup-hotspots", pointToLayer={"variable": "gridmap.hotspot"},
                              onEachFeature={"variable": "gridmap.tooltip"}),
                   name="隐患热点（未整改）", checked=True),
        dl.Overlay(dl.GeoJSON(id="sup-hazards", pointToLayer={"variable": "gridmap.hazard"}),
                   name=f"隐患（放大至{gm.HAZARD_MIN_ZOOM}级显示单个）", checked=True),
        dl.Overlay(dl.LayerGroup([
            dl.GeoJSON(id="sup-device-sum", pointToLayer={"variable": "gridmap.deviceSummary"},
                       onEachFeature={"variable": "gridmap.tooltip"}),
            dl.GeoJSON(id="sup-devices", cluster=True, format="geobuf", zoomToBoundsOnClick=True,
                       pointToLayer={"variable": "gridmap.device"}, clusterToLayer={"variable": "gridmap.deviceCluster"},
                       superClusterOptions={"radius": 50}),
        ]), name=DEVICES_LAYER, checked=False),
        dl.Overlay(dl.GeoJSON(id="sup-elders", cluster=True, format="geobuf", zoomToBoundsOnClick=True,
                              pointToLayer={"variable": "gridmap.elder"},
                              superClusterOptions={"radius": 60}),
                   name="老人（聚合显示）", checked=True),
    ]
    cats = [{"label": c.label, "value": c.value} for c in Category]
    return html.Div([
        html.Div([
            html.Div([html.Label("街道/镇"), dropdown(data.streets(user), None, id="sup-street",
                                                         placeholder="全区" if user.scope.is_all else "管辖范围内全部")]),
            html.Div([html.Label("社区/村"), dropdown([], None, id="sup-community", placeholder="全部社区")]),
            html.Div([html.Label("类别"), dropdown(cats, None, id="sup-category", placeholder="全部类别")]),
            html.Div([html.Label("周次"), dropdown([{"label": fmt_week(w), "value": w} for w in weeks],
                                                      data.default_week(), id="sup-week", clearable=False)]),
            html.Div([html.Button("本周", id="sup-week-this", className="gm-btn secondary",
                                  title=f"本周（{fmt_week(weeks[0])}）截至今日的进度"),
                      html.Button("上周", id="sup-week-last", className="gm-btn secondary",
                                  title=f"上一个完整周（{fmt_week(weeks[1])}）")],
                     style={"flex": "0 0 auto"}),
            html.Div([html.Label("地图分区"), dcc.RadioItems(
                [{"label": v, "value": k} for k, v in LEVEL_LABELS.items()], "street", id="sup-level",
                inline=True, inputStyle={"marginRight": "3px", "marginLeft": "8px"})]),
            html.Div([html.Button("导出Excel（已脱敏）", id="sup-export-btn", className="gm-btn"),
                      dcc.Download(id="sup-download")], style={"flex": "0 0 auto"}),
        ], className="gm-filters gm-noprint"),
        html.Div(id="sup-msg"),
        dcc.Loading(html.Div(id="sup-kpis", className="gm-cards"), type="dot"),
        html.Div(id="sup-fu-measures"),  # 接诉即办 measures (gridmap.dashboard.followups)
        html.Div([
            html.Div([
                html.Div([gm.map_shell("sup-map", overlays, basemap, bounds=data.scope_bounds(user)), gm.legend()],
                         className="gm-map-wrap"),
                dcc.Store(id="sup-hazard-store"), dcc.Store(id="sup-devices-on", data=False),
                dcc.Store(id="sup-ready", data=False),
                html.Div(id="sup-map-hint", className="gm-hint"),
                html.Div(id="sup-detail"),
            ], className="gm-col", style={"flex": "2 1 560px"}),
            html.Div([
                html.H3("周探访率趋势", style={"margin": "4px"}),
                # the chart comes with its data, after the KPI cards (see ``sup-ready``)
                dcc.Loading(html.Div(id="sup-trend-box", style={"height": "300px"})),
            ], className="gm-col"),
        ], className="gm-row"),
        html.Div([
            html.Div([
                dcc.RadioItems([{"label": "逾期未探访老人", "value": "overdue"},
                                {"label": "落后网格", "value": "grid"},
                                {"label": "落后管家", "value": "steward"}], "overdue", id="sup-table-kind",
                               inline=True, inputStyle={"marginRight": "3px", "marginLeft": "10px"}),
                # the grid (ag-grid: a third of a second of the browser's main thread) is built once the table
                # is scrolled into view (assets/gridmap_lazy.js sets ``sup-table-on``), then filled with its data
                dcc.Store(id="sup-table-on"),
                dcc.Loading(html.Div(html.Div("表格在滚动到此处时加载…", className="gm-hint", style={"padding": "8px"}),
                                     id="sup-table-box", style={"height": "480px"})),
            ], className="gm-col"),
        ], className="gm-row"),
    ], id="supervisor-view")


_AG_LOCALE = {"page": "页", "of": "/", "to": "至", "next": "下一页", "previous": "上一页", "first": "首页",
              "last": "末页", "noRowsToShow": "无数据", "loadingOoo": "加载中…", "filterOoo": "筛选…",
              "contains": "包含", "equals": "等于", "lessThan": "小于", "greaterThan": "大于",
              "pageSizeSelectorLabel": "每页", "ariaPageSizeSelectorLabel": "每页行数", "more": "更多",
              "notEqual": "不等于", "notContains": "不包含", "startsWith": "开头是", "endsWith": "结尾是",
              "blank": "为空", "notBlank": "不为空", "lessThanOrEqual": "小于等于", "greaterThanOrEqual": "大于等于",
              "inRange": "介于", "inRangeStart": "从", "inRangeEnd": "到", "andCondition": "且", "orCondition": "或",
              "searchOoo": "搜索…", "selectAll": "全选", "selectAllSearchResults": "全选搜索结果",
              "applyFilter": "应用", "clearFilter": "清除", "resetFilter": "重置", "cancelFilter": "取消",
              "noMatches": "无匹配", "dateFormatOoo": "yyyy-mm-dd", "pinColumn": "固定列", "autosizeThisColumn": "自动列宽",
              "autosizeAllColumns": "全部自动列宽", "resetColumns": "重置列", "sortAscending": "升序",
              "sortDescending": "降序", "sortUnSort": "取消排序", "ariaFilterInput": "筛选输入",
              "ariaFilterValue": "筛选值", "ariaFilteringOperator": "筛选条件", "columns": "列", "filters": "筛选"}


def filters_of(week: str, street: str | None, community: str | None, category: str | None,
               data: DashboardData | None = None) -> Filters:
    """The :class:`Filters` of the view's inputs.

    With ``data``, a street or community outside the signed-in user's area is
    refused (audited as ``denied``) with :class:`gridmap.access.PermissionDenied`.
    """
    f = Filters(week=week, street=street or None, community=community or None, category=category or None)
    if data is not None:
        u = current_user()
        if f.street and f.street not in data.streets(u):
            log_access("denied", "street", f.street, {"reason": "outside_area"})
            raise PermissionDenied("street outside your area", "该街道不在您的管辖范围内")
        if f.community and f.community not in data.communities(u, f.street):
            log_access("denied", "community", f.community, {"reason": "outside_area"})
            raise PermissionDenied("community outside your area", "该社区不在您的管辖范围内")
    return f


def _weekly_card(k: dict[str, Any], week: str) -> html.Div:
    """周探访率: a full week's rate, or for the current week its progress against what is due by today."""
    wr = k.get("weekly_rate")
    if "due_by_today" not in k:  # a complete week
        return card("周探访率（目标100%）", fmt_pct(wr), fmt_week(week), "good" if wr and wr >= 0.999 else "bad",
                    "kpi-weekly-rate")
    due, done = k.get("due_by_today") or 0, k.get("visited_week") or 0
    full = f"全周目标 {fmt_count(k.get('willing'))} 人，已完成 {fmt_pct(wr)}"
    if not due:  # Monday: nothing of the week is due yet
        return card("本周探访进度", f"已探访 {fmt_count(done)} 人",
                    f"{fmt_week(week)} 第一个工作日，尚无截至今日应完成量；{full}", "", "kpi-weekly-rate")
    wp = k.get("week_progress")
    return card("本周探访进度（对截至今日应访）", fmt_pct(wp),
                f"已探访 {fmt_count(done)} / 截至今日应访 {fmt_count(due)} 人；{full}",
                "good" if wp is not None and wp >= 0.95 else "bad", "kpi-weekly-rate")


def kpi_cards(k: dict[str, Any], week: str) -> list[html.Div]:
    """The KPI cards of one indicator row.

    For the current week (the row has ``due_by_today``: indicators computed
    ``as_of`` today) the first card is the week's progress against what is due
    by today, with the full week's target beside it.
    """
    if not k:
        return [message("所选范围或周次没有数据（无在册老人或该周之前无探访记录）", "info")]
    return [
        _weekly_card(k, week),
        card("月有效探访率", fmt_pct(k.get("monthly_rate")), "每月至少1次有效探访", "", "kpi-monthly-rate"),
        card("逾期探访", fmt_count(k.get("overdue")), f"在册 {fmt_count(k.get('elders'))} 人", "bad"
             if k.get("overdue") else "good", "kpi-overdue"),
        card("未整改隐患", fmt_count(k.get("hazards_open")), f"其中逾期 {fmt_count(k.get('hazards_overdue'))}",
             "bad" if k.get("hazards_overdue") else "", "kpi-hazards"),
        card("待处理转介", fmt_count(k.get("referrals_open")), f"其中逾期 {fmt_count(k.get('referrals_overdue'))}",
             "bad" if k.get("referrals_overdue") else "", "kpi-referrals"),
        card("烟感覆盖率", fmt_pct(k.get("smoke_alarm_coverage")),
             f"一键式终端 {fmt_pct(k.get('terminal_coverage'))}（80岁以上及计生特殊）", "", "kpi-devices"),
    ]


map_rates = gm.map_rates  # the map colours a running week by its progress (kept here for callers)


#: Colour of the column of a week still running (its share of the full week is no rate to judge yet).
RUNNING_WEEK_COLOUR = "#9db4cc"


def ledger_card(statuses: list[dict[str, Any]]) -> html.Div:
    """issue 20 item 5: the streets whose monthly ledger (每月更新) has not arrived by the due day."""
    missing = [m["street"] for m in statuses if m["status"] == "missing"]
    if not statuses:
        return card("每月台账未报", "—", "无街镇", "", "kpi-missing-ledgers")
    period, due = statuses[0]["period"], statuses[0]["due"]
    names = "、".join(missing[:3]) + (f"等{len(missing)}个" if len(missing) > 3 else "")
    sub = (f"{period}月台账（{due}前）未报：{names}" if missing else f"{period}月台账均已报送（{due}前）")
    return card("每月台账未报", f"{len(missing)} 个街镇", sub, "bad" if missing else "good", "kpi-missing-ledgers")


def trend_chart(tr: pd.DataFrame, today: date | None = None) -> html.Div:
    """The weekly-rate trend as a column chart against the 100% target line (plain HTML and CSS).

    One column per week (oldest first), coloured as the map (:func:`gridmap.dashboard.map.rate_colour`),
    its rate written above it and in its tooltip; a week without data shows 无数据. A week that has not
    ended by ``today`` is drawn in a neutral colour and labelled 进行中: its share of the full week's
    visits is progress, not a failing rate (the KPI card measures it against what is due by today).
    No charting library: plotly's script alone kept the first page's main thread busy for a quarter of a
    second.
    """
    cols = []
    for week, rate, monday in zip(tr["week"], tr["weekly_rate"], tr["monday"], strict=True):
        ok = rate is not None and pd.notna(rate)
        running = today is not None and monday + timedelta(days=6) >= today
        h = f"{min(max(float(rate), 0.0), 1.0) * 100:.1f}%" if ok else "0%"
        day = f"{monday.month}月{monday.day}日"
        text = (fmt_pct(rate) if ok else "无数据")
        colour = RUNNING_WEEK_COLOUR if running else gm.rate_colour(rate if ok else None)
        label = f"进行中 {text}" if running and ok else text
        tip = (f"{day}起一周（{fmt_week(week)}，本周尚未结束）：已完成全周应访的 {text}" if running
               else f"{day}起一周（{fmt_week(week)}）：周探访率 {text}")
        cols.append(html.Div([
            html.Div(className="gm-trend-bar" + (" running" if running else ""),
                     style={"height": h, "background": colour}),
            html.Div(label, className="gm-trend-val" + ("" if ok else " none"), style={"bottom": h}),
        ], className="gm-trend-col", title=tip, **{"data-week": week}))
    labels = [html.Div([html.Div(f"{m.month}月"), html.Div(f"{m.day}日")], className="gm-trend-lab")
              for m in tr["monday"]]
    return html.Div([
        html.Div([
            html.Div([html.Span("100%"), html.Span("50%", style={"top": "50%"}), html.Span("0%", style={"top": "100%"})],
                     className="gm-trend-y"),
            html.Div([html.Div(html.Span("目标100%"), className="gm-trend-target"),
                      html.Div(className="gm-trend-mid"), *cols], className="gm-trend-plot"),
        ], className="gm-trend-area"),
        html.Div(labels, className="gm-trend-x"),
        html.Div("周（起始日）", className="gm-trend-xt"),
    ], id="sup-trend", className="gm-trend")


def table_rows(data: DashboardData, f: Filters, kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Column definitions and rows of the overdue/lagging table (masked)."""
    user = current_user()
    if kind == "overdue":
        df = data.overdue_elders(user, f)
        log_access("view", "elder_list", None, {"rows": len(df), "view": "overdue", "street": f.street,
                                                "community": f.community, "week": f.week})
        rows = [{"编号": r.elder_id, "姓名": r.name, "住址": r.address, "街道": r.street, "社区": r.community,
                 "网格": r.grid, "探访管家": r.steward, "最近有效探访": fmt_date(r.last_visit),
                 "逾期天数": r.overdue_days} for r in df.itertuples(index=False)]
        cols = ["编号", "姓名", "住址", "街道", "社区", "网格", "探访管家", "最近有效探访", "逾期天数"]
    else:
        ind = data.indicators(user, f, kind)
        if ind.empty:
            return [], []
        names = data.steward_names() if kind == "steward" else {}
        ind = ind[(ind["weekly_rate"] < 0.999) | (ind["overdue"] > 0)].head(300)
        rows = [{("网格" if kind == "grid" else "探访管家"): names.get(u, str(u)) if kind == "steward" else str(u),
                 "在册老人": int(r["elders"]), "周探访率": fmt_pct(r["weekly_rate"]),
                 "月有效探访率": fmt_pct(r["monthly_rate"]), "逾期探访": int(r["overdue"]),
                 "未整改隐患": int(r["hazards_open"])} for u, r in ind.iterrows()]
        cols = [("网格" if kind == "grid" else "探访管家"), "在册老人", "周探访率", "月有效探访率", "逾期探访",
                "未整改隐患"]
    return [{"field": c, "headerName": c} for c in cols], rows


def register(app: dash.Dash, data: DashboardData, basemap: Basemap) -> None:
    """Register the supervisor callbacks."""

    # no initial call: the layout already holds its initial answer (no options, no value), and an initial call
    # would make the KPIs, map and table wait for its round trip (their inputs include ``sup-community.value``)
    @app.callback(Output("sup-community", "options"), Output("sup-community", "value"),
                  Input("sup-street", "value"), prevent_initial_call=True)
    def _communities(street: str | None) -> tuple[list[str], None]:
        u = current_user()
        if street and street not in data.streets(u):
            log_access("denied", "street", street, {"reason": "outside_area"})
            return [], None
        return (data.communities(u, street) if street else []), None

    @app.callback(Output("sup-week", "value"), Input("sup-week-this", "n_clicks"), Input("sup-week-last", "n_clicks"),
                  prevent_initial_call=True)
    def _week_buttons(_this: Any, _last: Any) -> str:
        """本周 / 上周: the current week (progress so far) or the last complete one, computed on the server."""
        from gridmap.rules.requirements import week_of

        today = data.today
        return week_of(today) if dash.ctx.triggered_id == "sup-week-this" else week_of(today - timedelta(days=7))

    @app.callback(Output("sup-kpis", "children"), Output("sup-msg", "children"),
                  Input("sup-week", "value"), Input("sup-street", "value"), Input("sup-community", "value"),
                  Input("sup-category", "value"), Input("data-version", "data"))
    @guarded(2)
    def _kpis(week: str, street: str | None, community: str | None, category: str | None, _v: Any) -> Any:
        f = filters_of(week, street, community, category, data)
        user = current_user()
        return [*kpi_cards(data.kpis(user, f), week), ledger_card(data.missing_ledgers(user, f.street))], None

    # The trend chart is asked for once the KPI cards have come: the first page's requests and drawing go to what
    # is seen first (the table below the map waits until it is scrolled into view, see ``_table_grid``).
    # ``sup-ready`` turns true once, when the KPI callback has answered (cards or a message).
    app.clientside_callback(
        "function(k, m, r){ return r ? window.dash_clientside.no_update : true; }",
        Output("sup-ready", "data"), Input("sup-kpis", "children"), Input("sup-msg", "children"),
        State("sup-ready", "data"), prevent_initial_call=True)

    @app.callback(Output("sup-trend-box", "children"), Output("sup-msg", "children", allow_duplicate=True),
                  Input("sup-week", "value"), Input("sup-street", "value"), Input("sup-community", "value"),
                  Input("sup-category", "value"), Input("data-version", "data"), Input("sup-ready", "data"),
                  prevent_initial_call=True)
    @guarded(2)
    def _trend(week: str, street: str | None, community: str | None, category: str | None, _v: Any,
               _ready: Any) -> Any:
        f = filters_of(week, street, community, category, data)
        return trend_chart(data.trend(current_user(), f), data.today), no_update

    @app.callback(Output("sup-choropleth", "data"), Output("sup-elders", "data"), Output("sup-hotspots", "data"),
                  Output("sup-hazard-store", "data"), Output("sup-map", "viewport"), Output("sup-map-hint", "children"),
                  Input("sup-week", "value"), Input("sup-street", "value"), Input("sup-community", "value"),
                  Input("sup-category", "value"), Input("sup-level", "value"), Input("data-version", "data"))
    @guarded(6)
    def _map(week: str, street: str | None, community: str | None, category: str | None, level: str,
             _v: Any) -> Any:
        f = filters_of(week, street, community, category, data)
        u = current_user()
        trigger = dash.ctx.triggered_id
        view = data._cache.get(("map-view", data.version_of(u, f), u.scope, f, level), lambda: _map_view(f, level))
        choro, elders, hot, hazards, hint, n_elders = view
        if n_elders:
            log_access("view", "elder_map", None, {"rows": n_elders, "street": f.street, "community": f.community})
        viewport = no_update
        if (street or community) and trigger in ("sup-street", "sup-community"):
            sel = data.layer("communities" if community else "streets")
            sel = sel[sel["name"] == (community or street)]
            if not sel.empty:
                b = sel.total_bounds
                viewport = {"bounds": [[b[1], b[0]], [b[3], b[2]]], "transition": "flyToBounds"}
        return choro, elders, hot, hazards, viewport, hint

    # the devices overlay is off by default: its data (device counts per community, or a street's devices) are
    # shipped only once it is switched on, and again when the filters change while it is on
    app.clientside_callback(
        f"function(ov, on){{ var now = !!(ov && ov.indexOf({json.dumps(DEVICES_LAYER)}) >= 0);"
        f" return now === !!on ? window.dash_clientside.no_update : now; }}",
        Output("sup-devices-on", "data"), Input("sup-map-layers", "overlays"), State("sup-devices-on", "data"))

    # the stations overlay is off by default: the browser fetches (and builds) its points once it is switched on
    app.clientside_callback(
        f"function(ov, url){{ return (!url && ov && ov.indexOf({json.dumps(STATIONS_LAYER)}) >= 0) ?"
        f" {json.dumps(gm.layer_url('stations'))} : window.dash_clientside.no_update; }}",
        Output("sup-stations", "url"), Input("sup-map-layers", "overlays"), State("sup-stations", "url"))

    @app.callback(Output("sup-devices", "data"), Output("sup-device-sum", "data"),
                  Output("sup-map-hint", "children", allow_duplicate=True),
                  Input("sup-devices-on", "data"), Input("sup-week", "value"), Input("sup-street", "value"),
                  Input("sup-community", "value"), Input("sup-category", "value"), Input("data-version", "data"),
                  prevent_initial_call=True)
    @guarded(3)
    def _devices(on: bool | None, week: str, street: str | None, community: str | None, category: str | None,
                 _v: Any) -> Any:
        if not on:
            return None, None, no_update
        f = filters_of(week, street, community, category, data)
        devices, dev_sum = device_view(f)
        return devices, dev_sum, no_update

    def _coverage_text(u: Any) -> dict[tuple[str, str], str] | None:
        """issue 17 part B: device coverage per community for the tooltip (none if it cannot be read)."""
        try:
            from gridmap.dashboard.devices import coverage_by_community

            return coverage_by_community(data, u)
        except Exception:  # noqa: BLE001 - the counts are still shown
            return None

    def device_view(f: Filters) -> tuple[Any, Any]:
        """The devices layer of a view: a street's or community's devices (geobuf), else counts per community."""
        u = current_user()
        e = data._scoped(u, f)[0]
        if f.street or f.community or Role(u.role) in (Role.COMMUNITY, Role.SERVICE):
            return data.part_cached(u, f, "devices", lambda: gm.device_points(e, basemap)), None
        return None, data._cache.get(("device-sum", data.version_of(u, f), u.scope, f.street, f.community,
                                      f.category), lambda: gm.device_summary(e, data.layer("communities"), basemap,
                                                                 coverage=_coverage_text(u)))


    def _warm_street_maps() -> None:
        """The district map at community and grid level and the map of each street (default week), in advance."""
        import openpyxl  # noqa: F401 - the first export would otherwise pay for the import

        u = SYSTEM_USER
        version = data.version
        for level in ("community", "grid"):
            f = Filters(week=data.default_week())
            data._cache.get(("map-view", data.version_of(u, f), u.scope, f, level), lambda f=f, lv=level: _map_view(f, lv))
        for s in data.streets(u):
            data.yield_to_requests()
            if data.version != version:
                return
            f = Filters(week=data.default_week(), street=s)
            data._cache.get(("map-view", data.version_of(u, f), u.scope, f, "street"), lambda f=f: _map_view(f, "street"))
            device_view(f)
        device_view(Filters(week=data.default_week()))

    data.warm_hooks.append(_warm_street_maps)

    app.clientside_callback(
        f"function(z, d){{ var e = {{type: 'FeatureCollection', features: []}};"
        f" return (d && z >= {gm.HAZARD_MIN_ZOOM}) ? d : e; }}",
        Output("sup-hazards", "data"), Input("sup-map", "zoom"), Input("sup-hazard-store", "data"))

    def _map_view(f: Filters, level: str) -> tuple[Any, ...]:
        """Choropleth, elders (geobuf), hotspots, hazards, hint, elders shown (devices: :func:`device_view`).

        Elders and single hazards are shipped only for a street or community
        (or a steward's own elders); otherwise only per-area counts.
        """
        u = current_user()
        street, community = f.street, f.community
        layer = {"street": "streets", "community": "communities", "grid": "grids"}[level]
        areas = data.layer(layer)
        key = "grid_pk" if level == "grid" else "name"
        if street and level != "street":
            areas = areas[areas["street"] == street]
        if community and level == "grid":
            areas = areas[areas["community"] == community]
        ind = data.indicators(u, f, level)
        if not u.scope.is_all:  # only the user's own areas are drawn
            areas = areas[areas[key].astype(str).isin(ind.index.astype(str))] if not ind.empty else areas.iloc[:0]
        choro = gm.choropleth(areas, level, map_rates(ind), basemap, key=key)
        status = data.status(u, f)
        _e, _v2, hazards, _r = data._scoped(u, f)
        hot = gm.hotspots(hazards, status, data.layer("communities"), basemap, today=data.today)
        if street or community or Role(u.role) in (Role.COMMUNITY, Role.SERVICE):
            elders = data.part_cached(u, f, "elders", lambda: gm.elders_geobuf(status, basemap))
            where = community or street or "您负责"
            hint = (f"显示{where}的 {fmt_count(len(status))} 位老人（聚合显示，点击放大）；"
                    f"放大至{gm.HAZARD_MIN_ZOOM}级显示单个隐患")
            return (choro, elders, hot, data.part_cached(u, f, "hazards", lambda: gm.hazard_points(hazards, status,
                                                                                                   basemap)),
                    hint, len(status))
        hint = ("全区范围只显示分区统计；选择街道或社区后在地图上显示老人、隐患和设备点位（不下发全区个人数据）"
                if u.scope.is_all else "只显示分区统计；选择街道或社区后在地图上显示老人、隐患和设备点位")
        return choro, None, hot, None, hint, 0

    @app.callback(Output("sup-table-box", "children"), Input("sup-table-on", "data"), prevent_initial_call=True)
    def _table_grid(_on: Any) -> Any:
        return [dag.AgGrid(id="sup-table", columnDefs=[], rowData=[],
                           defaultColDef={"sortable": True, "filter": True, "resizable": True},
                           dashGridOptions={"pagination": True, "paginationPageSize": 20, "localeText": _AG_LOCALE},
                           style={"height": "460px"}, className="ag-theme-alpine"),
                html.Div(id="sup-table-msg")]

    # called when the grid appears (its outputs come with it) and whenever the filters change afterwards
    @app.callback(Output("sup-table", "columnDefs"), Output("sup-table", "rowData"), Output("sup-table-msg", "children"),
                  Input("sup-week", "value"), Input("sup-street", "value"), Input("sup-community", "value"),
                  Input("sup-category", "value"), Input("sup-table-kind", "value"), Input("data-version", "data"))
    @guarded(3)
    def _table(week: str, street: str | None, community: str | None, category: str | None, kind: str,
               _v: Any) -> Any:
        cols, rows = table_rows(data, filters_of(week, street, community, category, data), kind)
        return cols, rows, None

    @app.callback(Output("sup-detail", "children"), Input("sup-choropleth", "clickData"),
                  Input("sup-elders", "clickData"), State("sup-week", "value"), prevent_initial_call=True)
    @guarded(1)
    def _detail(area: dict | None, elder: dict | None, week: str) -> Any:
        trig = dash.ctx.triggered_id
        if trig == "sup-elders" and elder and not elder.get("properties", {}).get("cluster"):
            u = current_user()
            d = data.elder_detail(u, elder["properties"].get("id"))
            if d is None:
                return message("您的管辖范围内没有该老人", "err")
            parts: list[Any] = [
                html.B(f"{d['name']}（编号{d['elder_id']}）"),
                html.Div(f"{d['age']}岁 · {d['street']} {d['community']} · 网格 {d['grid']}"),
                html.Div(f"住址：{d['address']} · 电话：{d['phone']} · 第一联系人：{d['first_contact']}"),
                html.Div(f"最近有效探访：{fmt_date(d['last_visit'])}")]
            if u.can_unmask:
                parts.append(html.Div([
                    dcc.Store(id="sup-unmask-elder", data=d["elder_id"]),
                    dcc.Input(id="sup-unmask-reason", type="text", maxLength=200,
                              placeholder="查看原因（必填，将记入审计日志）", style={"width": "60%"}),
                    " ", html.Button("显示完整信息", id="sup-unmask-btn", className="gm-btn secondary"),
                    html.Div(id="sup-unmask-out"),
                ], className="gm-noprint", style={"marginTop": "6px"}))
            return html.Div(parts, className="gm-msg info", id="sup-elder-detail")
        if trig == "sup-choropleth" and area:
            p = area.get("properties", {})
            return message(f"{p.get('label')}：周探访率 {p.get('rate_text')}，老人 {p.get('elders')} 人，"
                           f"逾期 {p.get('overdue')} 人（{fmt_week(week)}）", "info")
        return no_update

    @app.callback(Output("sup-unmask-out", "children"), Input("sup-unmask-btn", "n_clicks"),
                  State("sup-unmask-elder", "data"), State("sup-unmask-reason", "value"), prevent_initial_call=True)
    @guarded(1)
    def _unmask(_n: int, elder_id: Any, reason: str | None) -> Any:
        vals = unmask(data.engine, current_user(), elder_id, UNMASK_FIELDS, reason, client_address())
        return html.Div([html.Div(f"{UNMASK_LABELS[k]}：{v or '—'}") for k, v in vals.items()]
                        + [html.Div("已显示完整信息（本次查看及原因已记入审计日志，请勿外传）", className="gm-hint")],
                        id="sup-unmasked")

    @app.callback(Output("sup-download", "data"), Output("sup-msg", "children", allow_duplicate=True),
                  Input("sup-export-btn", "n_clicks"), State("sup-week", "value"), State("sup-street", "value"),
                  State("sup-community", "value"), State("sup-category", "value"), State("sup-level", "value"),
                  prevent_initial_call=True)
    @guarded(2)
    def _export(_n: int, week: str, street: str | None, community: str | None, category: str | None,
                level: str) -> Any:
        f = filters_of(week, street, community, category, data)
        return dcc.send_bytes(export_xlsx(data, f, level),
                              f"探访督导_{week}_{datetime.now():%Y%m%d%H%M}.xlsx"), message("已导出（个人信息已脱敏）", "ok")


def export_xlsx(data: DashboardData, f: Filters, level: str) -> bytes:
    """What the view shows, as xlsx: KPIs, the areas' indicators, overdue elders (masked), trend.

    Written by :mod:`gridmap.sheets` (XlsxWriter): ledger text that starts like a
    formula is written inert (``'`` in front), never as a formula or a link.
    """
    from gridmap.rules.indicators import INDICATOR_LABELS
    from gridmap.sheets import add_sheet, write_frame, write_row, xlsxwriter_workbook

    user = current_user()
    buf = io.BytesIO()
    scope = " / ".join(x for x in (f.street, f.community, Category(f.category).label if f.category else None) if x)
    with xlsxwriter_workbook(buf) as book:
        bold = book.add_format({"bold": True})
        k = data.kpis(user, f)
        write_frame(add_sheet(book, "指标"), pd.DataFrame({"指标": [INDICATOR_LABELS.get(c, c) for c in k],
                                                          "数值": [v for v in k.values()]}), header_fmt=bold)
        ind = data.indicators(user, f, level).rename(columns=INDICATOR_LABELS)
        ind.index.name = LEVEL_LABELS.get(level, level)
        write_frame(add_sheet(book, "分区指标"), ind, index=True, header_fmt=bold)
        df = data.overdue_elders(user, f)
        rows = [{"编号": r.elder_id, "姓名": r.name, "住址": r.address, "街道": r.street, "社区": r.community,
                 "网格": r.grid, "探访管家": r.steward, "最近有效探访": fmt_date(r.last_visit),
                 "逾期天数": r.overdue_days} for r in df.itertuples(index=False)]
        od = add_sheet(book, "逾期老人（脱敏）")  # the largest sheet, written row by row (no pandas formatting)
        header = ["编号", "姓名", "住址", "街道", "社区", "网格", "探访管家", "最近有效探访", "逾期天数"]
        write_row(od, 0, header, bold)
        for i, r in enumerate(rows, start=1):
            write_row(od, i, [None if pd.isna(r[h]) else (int(r[h]) if h == "逾期天数" else r[h]) for h in header])
        tr = data.trend(user, f)
        write_frame(add_sheet(book, "趋势"), pd.DataFrame({"周次": tr["week"], "周探访率": tr["weekly_rate"]}),
                    header_fmt=bold)
        stamp = datetime.now(BEIJING).strftime("%Y年%m月%d日 %H:%M")
        ws = add_sheet(book, "说明")
        for i, row in enumerate((["范围", scope or "全区"], ["周次", fmt_week(f.week)],
                                 ["导出人", f"{user.label}（{user.username}）"], ["导出时间", stamp],
                                 ["说明", "姓名、住址已脱敏；仅供工作使用，严禁外传"])):
            write_row(ws, i, row)
        watermark = f"{user.username} 导出 {stamp} · 严禁外传".replace("&", "&&")
        for sheet in book.worksheets():  # watermark on every printed page: who exported, when
            sheet.set_header(f"&C{watermark}")
    log_access("export", "elder_list", None, {"rows": len(rows), "view": "supervisor", "street": f.street,
                                              "community": f.community, "week": f.week, "masked": True})
    return buf.getvalue()
