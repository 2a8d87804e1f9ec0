"""Planner view (规划调度): weekly workload per steward, grids on the map, rebalancing with before/after, accept.

Workload is the week's in-home visits of each steward's elders from
:func:`gridmap.rules.requirements.routing_visits` (count × service minutes plus
a travel allowance per visit); the proposal comes from
:func:`gridmap.routing.rebalance.rebalance`; accepting it changes the elders'
visit steward in one transaction (the store's history records every change).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_leaflet as dl
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from sqlalchemy import select

from gridmap.access import PermissionDenied, User, can_edit
from gridmap.dashboard import map as gm
from gridmap.dashboard.auth import log_access
from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.data import SYSTEM_USER, DashboardData, current_user
from gridmap.dashboard.fmt import fmt_minutes, fmt_week
from gridmap.dashboard.ui import dropdown, guarded, message
from gridmap.domain.enums import Role
from gridmap.routing.rebalance import rebalance
from gridmap.rules.requirements import parse_week, routing_visits
from gridmap.store.db import session_scope
from gridmap.store.models import Elder, Steward, Street

__all__ = ["TRAVEL_ALLOWANCE_MIN", "accept_moves", "layout", "register", "workload"]

#: Minutes of travel counted per in-home visit in the weekly workload.
TRAVEL_ALLOWANCE_MIN = 10


def workload(data: DashboardData, street: str, week: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stewards with ``capacity`` and ``load`` minutes, elders with ``minutes``) of one street for a week."""
    def compute() -> tuple[pd.DataFrame, pd.DataFrame]:
        monday, _ = parse_week(week)
        facts = data.facts(monday, data.street_elder_ids(street))
        rv = routing_visits(facts, week, data.rules)
        el = pd.DataFrame([{"elder_id": int(v["id"]), "steward_id": int(v["steward"]) if v.get("steward") else None,
                            "minutes": v["count"] * (v["service_minutes"] + TRAVEL_ALLOWANCE_MIN),
                            "lon": v["location"][0] if v.get("location") else float("nan"),
                            "lat": v["location"][1] if v.get("location") else float("nan")} for v in rv],
                          columns=["elder_id", "steward_id", "minutes", "lon", "lat"])
        el = el.dropna(subset=["steward_id"])
        with data.engine.connect() as conn:
            rows = conn.execute(select(Steward.id, Steward.work_days).where(
                Steward.id.in_(el["steward_id"].astype(int).unique().tolist()))).all()
        days = {i: len(w or [1, 2, 3, 4, 5]) for i, w in rows}
        st = data.stewards(SYSTEM_USER)  # scope-free (cached per street); callers check the street
        st = st[st["id"].isin(days)].copy()
        st["capacity"] = [int(m or 360) * days.get(i, 5) for i, m in zip(st["id"], st["max_work_minutes"],
                                                                      strict=True)]
        st["load"] = st["id"].map(el.groupby("steward_id")["minutes"].sum()).fillna(0.0)
        return st.rename(columns={"id": "steward_id"}), el

    return data._cache.get(("workload", *data._pkey(street), week), compute)


def accept_moves(data: DashboardData, moves: list[dict[str, Any]], user: User | str,
                 street: str | None = None) -> int:
    """Give each moved elder its new visit steward, in one transaction (recorded in the history).

    With a :class:`~gridmap.access.User`, the user must be allowed to change plans in
    ``street`` (:func:`gridmap.access.can_edit`), and only moves of that street's elders
    between stewards the user sees are applied (the proposal comes back from the page).

    Raises
    ------
    gridmap.access.PermissionDenied
        When the user may not change plans there (audited as ``denied``).
    """
    name = user if isinstance(user, str) else user.username
    elder_ok: Any = None
    steward_ok: frozenset[int] | None = None
    if not isinstance(user, str):
        with data.engine.connect() as conn:
            sid = conn.execute(select(Street.id).where(Street.name == street)).scalar() if street else None
        if sid is None or not can_edit(user.scope, "plan", street_id=sid):
            log_access("denied", "plan", street, {"reason": "may_not_edit_plan"})
            raise PermissionDenied("you may not change plans of this street", "您无权调整该街道的探访管家安排")
        elder_ok = set(data.street_elder_ids(street))
        steward_ok = data.visible_steward_ids(user.scope)
    done = 0
    with session_scope(data.engine, user=name, source="planner", reason="规划调度：管家负载均衡") as s:
        for m in moves:
            eid, to = int(m["elder_id"]), int(m["to_steward"])
            if elder_ok is not None and (eid not in elder_ok or (steward_ok is not None and to not in steward_ok)):
                continue
            e = s.get(Elder, eid)
            if e is not None and e.visit_steward_id == int(m["from_steward"]):
                e.visit_steward_id = to
                done += 1
    if not isinstance(user, str):
        log_access("update", "plan", street, {"moves": done})
    data.invalidate()
    return done


def layout(data: DashboardData, basemap: Basemap) -> html.Div:
    """The planner view."""
    streets = data.streets(current_user())
    weeks = data.weeks()
    overlays = [
        dl.Overlay(dl.GeoJSON(id="pln-grids", style={"variable": "gridmap.choropleth"},
                              onEachFeature={"variable": "gridmap.tooltip"}), name="网格", checked=True),
        dl.Overlay(dl.LayerGroup(id="pln-stewards"), name="管家负载（前/后）", checked=True),
    ]
    if not basemap.url:
        overlays.insert(0, dl.Overlay(dl.GeoJSON(url=gm.layer_url("roads"), style={"variable": "gridmap.roads"},
                                                 interactive=False), name="路网", checked=True))
    return html.Div([
        html.Div([
            html.Div([html.Label("街道/镇"), dropdown(streets, streets[0] if streets else None, id="pln-street",
                                                         clearable=False)]),
            html.Div([html.Label("周次"), dropdown([{"label": fmt_week(w), "value": w} for w in weeks],
                                                      weeks[0], id="pln-week", clearable=False)]),
            html.Div([html.Button("运行负载均衡", id="pln-run", className="gm-btn"), " ",
                      html.Button("采纳方案", id="pln-accept", className="gm-btn secondary", disabled=True), " ",
                      html.Button("重新规划本周", id="pln-replan", className="gm-btn secondary")],
                     style={"flex": "2 1 360px"}),
        ], className="gm-filters"),
        dcc.Store(id="pln-proposal"),
        dcc.Loading(html.Div(id="pln-msg")),
        html.Div([
            html.Div([dcc.Loading(dcc.Graph(id="pln-bars", config={"displaylogo": False, "displayModeBar": False},
                                            style={"height": "460px"}))], className="gm-col"),
            html.Div([gm.map_shell("pln-map", overlays, basemap, height="460px", zoom=13)], className="gm-col"),
        ], className="gm-row"),
    ], id="planner-view")


def _bars(st: pd.DataFrame, after: pd.Series | None, names: dict[int, str]) -> go.Figure:
    st = st.sort_values("load", ascending=False)
    x = [names.get(int(i), str(i)) for i in st["steward_id"]]
    fig = go.Figure(go.Bar(x=x, y=st["load"], name="调整前", marker_color="#9ecae1",
                           hovertemplate="%{x}<br>每周 %{y:.0f} 分钟<extra></extra>"))
    if after is not None:
        fig.add_bar(x=x, y=st["steward_id"].map(after).fillna(0), name="调整后", marker_color="#1f4e79",
                    hovertemplate="%{x}<br>调整后每周 %{y:.0f} 分钟<extra></extra>")
    fig.add_scatter(x=x, y=st["capacity"], mode="markers", name="每周可用时长", marker={"symbol": "line-ew-open",
                                                                                       "size": 16, "color": "#d73027"})
    fig.update_layout(barmode="group", margin={"l": 50, "r": 10, "t": 30, "b": 100},
                      yaxis={"title": "每周工作量（分钟）"}, legend={"orientation": "h", "y": 1.08},
                      font={"family": "Noto Sans CJK SC, sans-serif"}, plot_bgcolor="white",
                      title={"text": "管家每周工作量", "x": 0.01, "y": 0.99, "font": {"size": 14}})
    return fig


def _steward_markers(st: pd.DataFrame, after: pd.Series | None) -> list[Any]:
    out = []
    for r in st.itertuples():
        if pd.isna(r.base_lon):
            continue
        ratio = r.load / r.capacity if r.capacity else 0
        colour = "#d73027" if ratio > 1 else "#1a9850"
        tip = f"{r.name}：{fmt_minutes(r.load)} / {fmt_minutes(r.capacity)}"
        if after is not None:
            a = float(after.get(r.steward_id, r.load))
            tip += f" → 调整后 {fmt_minutes(a)}"
            colour = "#d73027" if r.capacity and a / r.capacity > 1 else "#1a9850"
        out.append(dl.CircleMarker(center=[r.base_lat, r.base_lon], radius=4 + 6 * min(ratio, 2), color=colour,
                                   fillOpacity=0.6, children=dl.Tooltip(tip)))
    return out


def register(app: dash.Dash, data: DashboardData, basemap: Basemap) -> None:
    """Register the planner callbacks."""

    @app.callback(Output("pln-bars", "figure"), Output("pln-grids", "data"), Output("pln-stewards", "children"),
                  Output("pln-map", "viewport"), Output("pln-proposal", "data"), Output("pln-accept", "disabled"),
                  Output("pln-msg", "children"),
                  Input("pln-street", "value"), Input("pln-week", "value"), Input("pln-run", "n_clicks"),
                  Input("pln-replan", "n_clicks"), Input("data-version", "data"), Input("tabs", "value"))
    @guarded(7)
    def _plan(street: str | None, week: str, _run: Any, _replan: Any, _v: Any, tab: str) -> Any:
        if tab != "planner":  # computed when the tab is opened, not on every page load
            raise PreventUpdate
        if not street:
            return go.Figure(), None, [], no_update, None, True, message("请选择街道", "info")
        user = current_user()
        if Role(user.role) in (Role.COMMUNITY, Role.SERVICE) or street not in data.streets(user):
            log_access("denied", "plan", street, {"reason": "outside_area"})
            return go.Figure(), None, [], no_update, None, True, message("该街道不在您的管辖范围内", "err")
        trig = dash.ctx.triggered_id
        if trig == "pln-replan":
            data.invalidate()
        st, el = workload(data, street, week)
        names = {int(i): n for i, n in zip(st["steward_id"], st["name"], strict=True)}
        grids = data.layer("grids")
        grids = grids[grids["street"] == street]
        per_grid = data.indicators(current_user(), _filters(week, street), "grid")
        choro = gm.choropleth(grids, "grid", per_grid, basemap, key="grid_pk")
        b = grids.total_bounds if len(grids) else None
        viewport = {"bounds": [[b[1], b[0]], [b[3], b[2]]]} if b is not None and trig in (None, "pln-street", "tabs") \
            else no_update
        if trig != "pln-run":
            over = int((st["load"] > st["capacity"]).sum())
            msg = message(f"{street} · {fmt_week(week)}：{len(st)} 名管家，{over} 名超出每周可用时长"
                          + ("（已重新读取台账并重新计算）" if trig == "pln-replan" else ""), "info")
            return _bars(st, None, names), choro, _steward_markers(st, None), viewport, None, True, msg
        prop = rebalance(st.rename(columns={"base_lon": "lon", "base_lat": "lat"})[["steward_id", "capacity",
                                                                                    "lon", "lat"]], el)
        msg = message(f"负载均衡方案：调整 {len(prop.moves)} 位老人的探访管家；最高周负载 "
                      f"{fmt_minutes(prop.before.max())} → {fmt_minutes(prop.max_after)}；超出均衡上限"
                      f"（平均负载×1.3或每周可用时长）合计 {fmt_minutes(prop.overload_before)} → "
                      f"{fmt_minutes(prop.overload_after)}。"
                      + "".join(prop.notes), "ok" if len(prop.moves) else "info")
        moves = prop.moves.to_dict("records")
        return (_bars(st, prop.after, names), choro, _steward_markers(st, prop.after), no_update,
                {"moves": moves, "street": street}, not moves, msg)

    @app.callback(Output("pln-msg", "children", allow_duplicate=True),
                  Output("data-version", "data", allow_duplicate=True),
                  Output("pln-accept", "disabled", allow_duplicate=True),
                  Input("pln-accept", "n_clicks"), State("pln-proposal", "data"), prevent_initial_call=True)
    @guarded(3)
    def _accept(_n: int, proposal: dict | None) -> Any:
        if not proposal or not proposal.get("moves"):
            return message("没有可采纳的方案", "info"), no_update, True
        n = accept_moves(data, proposal["moves"], current_user(), proposal.get("street"))
        return message(f"已采纳：{n} 位老人的探访管家已调整（已记入台账变更历史）", "ok"), data.version, True


def _filters(week: str, street: str) -> Any:
    from gridmap.dashboard.data import Filters

    return Filters(week=week, street=street)


