"""Planner view (规划调度): weekly workload per steward, grids on the map, grid rebalancing previewed, accepted, undone.

The bars open on the week's workload of each steward's elders from
:func:`gridmap.rules.requirements.routing_visits` (count × service minutes plus
a travel allowance per visit). 运行负载均衡 computes a grid rebalancing proposal
(:func:`gridmap.routing.rebalance.propose_rebalance`: whole grids move between the
visit stewards of a community, across communities only when 允许跨社区 is ticked;
CP-SAT, with its bound): before accepting, the grids and elders that would move are
drawn on the map and listed, each steward's workload before and after is charted,
and the planner computes the effect on the week's plan of the stewards touched
(:func:`gridmap.routing.rebalance.plan_effect`). The proposal is kept in
``plan_proposal`` (the page holds its id only); 采纳方案 writes it in one transaction
through the change feed (register history, grid history) and 撤销 restores it. The
street's workforce sizing (:mod:`gridmap.routing.capacity`) is listed below.
Only users who may change plans in the street
(:func:`gridmap.access.can_edit` ``plan``: planners, street and district staff)
may accept or re-plan (重新规划本周: the street is re-read from the register,
:meth:`DashboardData.refresh_street`); others are refused and audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dash
import dash_leaflet as dl
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from sqlalchemy import select

from gridmap._errors import GridmapError
from gridmap.access import EDITABLE, PermissionDenied, User, can_edit
from gridmap.dashboard import map as gm
from gridmap.dashboard.auth import log_access
from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.data import SYSTEM_USER, DashboardData, current_user
from gridmap.dashboard.fmt import fmt_minutes, fmt_week
from gridmap.dashboard.ui import dropdown, error_text, guarded, message
from gridmap.domain.enums import Role, StewardKind
from gridmap.routing.rebalance import plan_effect, propose_rebalance
from gridmap.rules.requirements import parse_week, routing_visits
from gridmap.store.db import session_scope
from gridmap.store.models import Community, Elder, Steward, Street

__all__ = ["TRAVEL_ALLOWANCE_MIN", "Accepted", "accept_moves", "accept_proposal", "layout", "may_plan", "register",
           "workload"]

#: Minutes of travel counted per in-home visit in the weekly workload.
TRAVEL_ALLOWANCE_MIN = 10


def workload(data: DashboardData, street: str, week: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stewards with ``capacity`` and ``load`` minutes, elders with ``minutes``) of one street for a week.

    The elders are those with an in-home visit due that week; ``steward_id`` is their visit steward
    (missing: none assigned, counted by the page as unassigned, never moved). The stewards are those the
    elders name, with ``receives``: an active 探访管家 of the street, the only kind a rebalancing may give
    an elder.
    """
    def compute() -> tuple[pd.DataFrame, pd.DataFrame]:
        monday, _ = parse_week(week)
        facts = data.facts(monday, data.street_elder_ids(street))
        rv = routing_visits(facts, week, data.rules)
        el = pd.DataFrame([{"elder_id": int(v["id"]), "steward_id": int(v["steward"]) if v.get("steward") else None,
                            "visits": int(v["count"]),
                            "minutes": v["count"] * (v["service_minutes"] + TRAVEL_ALLOWANCE_MIN),
                            "lon": v["location"][0] if v.get("location") else float("nan"),
                            "lat": v["location"][1] if v.get("location") else float("nan")} for v in rv],
                          columns=["elder_id", "steward_id", "visits", "minutes", "lon", "lat"])
        named = el["steward_id"].dropna().astype(int).unique().tolist()
        with data.engine.connect() as conn:
            rows = conn.execute(select(Steward.id, Steward.work_days).where(Steward.id.in_(named))).all()
        days = {i: len(w or [1, 2, 3, 4, 5]) for i, w in rows}
        st = data.stewards(SYSTEM_USER)  # scope-free (cached per street); callers check the street
        st = st[st["id"].isin(days)].copy()
        st["receives"] = (st["kind"] == StewardKind.VISIT.value) & (st["street"] == street)
        st["capacity"] = [int(m or 360) * days.get(i, 5) for i, m in zip(st["id"], st["max_work_minutes"],
                                                                      strict=True)]
        st["load"] = st["id"].map(el.groupby("steward_id")["minutes"].sum()).fillna(0.0)
        return st.rename(columns={"id": "steward_id"}), el

    return data._cache.get(("workload", *data._pkey(street), week), compute)


@dataclass(frozen=True)
class Accepted:
    """What 采纳方案 did: moves applied, and each move refused with its reason (re-checked on the server)."""

    street: str
    applied: int
    refused: tuple[dict[str, Any], ...] = ()


#: Why a move of a proposal is not applied (Chinese, for the page).
REFUSALS = {
    "malformed": "方案格式错误", "elder_outside_street": "老人不在该街道或不在您的管辖范围内",
    "steward_changed": "老人的探访管家已被他人调整", "unknown_steward": "目标管家不存在",
    "not_visit_steward": "目标管家不是探访管家", "inactive_steward": "目标管家已停用",
    "steward_outside_area": "目标管家不在您的管辖范围内", "steward_other_street": "目标管家不属于该街道",
}


def may_plan(user: User, street_id: int | None = None) -> bool:
    """Whether ``user`` may change plans (re-plan, accept a proposal): in ``street_id``, or anywhere."""
    if street_id is None:
        return not user.scope.read_only and Role(user.role) in EDITABLE["plan"]
    return can_edit(user.scope, "plan", street_id=street_id)


def _street_id(data: DashboardData, street: str | None) -> int | None:
    if not street:
        return None
    with data.engine.connect() as conn:
        return conn.execute(select(Street.id).where(Street.name == street)).scalar()


def _refuse_plan(street: str | None, reason: str, op: str) -> PermissionDenied:
    log_access("denied", "plan", street, {"reason": reason, "op": op})
    return PermissionDenied("you may not change plans of this street (planners, street and district staff only)",
                            "您无权调整该街道的规划（仅规划人员、街镇和区级人员可以）")


def accept_moves(data: DashboardData, moves: list[dict[str, Any]], user: User | str,
                 street: str | None = None) -> Accepted:
    """Give each moved elder its new visit steward, in one transaction (recorded in the history).

    Every move is re-checked against the store, whatever its origin: the elder lives in ``street``
    (and, for a :class:`~gridmap.access.User`, is within their scope), still has the move's
    ``from_steward`` as visit steward, and the target exists, is an active 探访管家 of the street and
    (for a user) one they see. Moves failing a check are not applied and are returned with the reason.
    Afterwards only the street's cached results are recomputed (:meth:`DashboardData.refresh_street`).

    Raises
    ------
    gridmap.access.PermissionDenied
        When the user may not change plans in ``street`` (audited as ``denied``).
    """
    name = user if isinstance(user, str) else user.username
    sid = _street_id(data, street)
    visible: frozenset[int] | None = None
    if not isinstance(user, str):
        if sid is None or not may_plan(user, sid):
            raise _refuse_plan(street, "may_not_edit_plan", "accept")
        visible = data.visible_steward_ids(user.scope)
    if sid is None:
        from gridmap._errors import ValidationError

        raise ValidationError("no street with this name", "未找到该街道", field="street", value=street,
                              code="unknown_street")
    from gridmap.access import can_see_elder

    done, refused = 0, []
    with session_scope(data.engine, user=name, source="planner", reason="规划调度：管家负载均衡") as s:
        for m in moves:
            try:
                eid, frm, to = int(m["elder_id"]), int(m["from_steward"]), int(m["to_steward"])
            except (KeyError, TypeError, ValueError):
                refused.append({"elder_id": None, "reason": "malformed"})
                continue
            e = s.get(Elder, eid)
            t = s.get(Steward, to)
            t_street = s.get(Community, t.community_id).street_id if t is not None and t.community_id else None
            if e is None or e.street_id != sid or (not isinstance(user, str) and not can_see_elder(user.scope, e)):
                why = "elder_outside_street"
            elif e.visit_steward_id != frm:
                why = "steward_changed"
            elif t is None:
                why = "unknown_steward"
            elif t.kind != StewardKind.VISIT:
                why = "not_visit_steward"
            elif not t.active:
                why = "inactive_steward"
            elif visible is not None and to not in visible:
                why = "steward_outside_area"
            elif t_street != sid:
                why = "steward_other_street"
            else:
                e.visit_steward_id = to
                done += 1
                continue
            refused.append({"elder_id": eid, "to_steward": to, "reason": why})
    if not isinstance(user, str):
        log_access("update", "plan", street, {"moves": done, "refused": len(refused)})
        if refused:
            log_access("denied", "plan", street, {"reason": "moves_refused", "op": "accept",
                                                  "moves": refused[:50]})
    if done:
        data.refresh_street(street or "")
    return Accepted(street or "", done, tuple(refused))


def accept_proposal(data: DashboardData, user: User, proposal_id: Any) -> Accepted:
    """Accept the proposal the server computed and kept for ``user`` (:meth:`DashboardData.keep_proposal`).

    Only its id comes from the page: moves posted with it are never read. The moves are re-checked
    (:func:`accept_moves`); a proposal is accepted once.

    Raises
    ------
    gridmap.access.PermissionDenied
        When no such proposal was kept for this user (unknown, another user's, already accepted or
        expired) or the user may not change plans there (audited as ``denied``).
    """
    p = data.claim_proposal(user, proposal_id)  # atomic: accepted once, whichever process gets the click
    if p is None:
        log_access("denied", "plan", None, {"reason": "unknown_proposal", "op": "accept"})
        raise PermissionDenied("this proposal was not computed for you by the server, or was already accepted or "
                               "has expired: run the rebalancing again",
                               "该方案不是服务器为您计算的，或已采纳、已过期：请重新运行负载均衡")
    return accept_moves(data, p["moves"], user, p["street"])


def layout(data: DashboardData, basemap: Basemap) -> html.Div:
    """The planner view."""
    user = current_user()
    streets = data.streets(user)
    weeks = data.weeks()
    may = may_plan(user)
    overlays = [
        dl.Overlay(dl.GeoJSON(id="pln-grids", style={"variable": "gridmap.choropleth"},
                              onEachFeature={"variable": "gridmap.tooltip"}), name="网格", checked=True),
        dl.Overlay(dl.LayerGroup(id="pln-stewards"), name="管家负载（前/后）", checked=True),
        dl.Overlay(dl.GeoJSON(id="pln-moved", style={"color": "#d73027", "weight": 3, "dashArray": "6 3",
                                                     "fillColor": "#fdae61", "fillOpacity": 0.55}),
                   name="将调整的网格", checked=True),
        dl.Overlay(dl.LayerGroup(id="pln-elders"), name="将更换管家的老人", checked=True),
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
            html.Div([dcc.Checklist([{"label": " 允许跨社区调整（标注）", "value": "cross"}], [], id="pln-cross",
                                    inline=True, style={"display": "inline-block", "marginRight": "8px"}),
                      html.Button("运行负载均衡", id="pln-run", className="gm-btn"), " ",
                      html.Button("采纳方案", id="pln-accept", className="gm-btn secondary", disabled=True), " ",
                      html.Button("撤销", id="pln-undo", className="gm-btn secondary", disabled=True,
                                  title="撤销刚采纳的方案"), " ",
                      html.Button("重新规划本周", id="pln-replan", className="gm-btn secondary", disabled=not may,
                                  title="重新读取所选街道的台账并重新计算本周工作量" if may
                                  else "仅规划人员、街镇和区级人员可以重新规划")]
                     + ([] if may else [html.Span(f" 您的角色（{Role(user.role).label}）只能查看，不能重新规划或采纳方案",
                                                  className="gm-hint", id="pln-readonly")]),
                     style={"flex": "2 1 360px"}),
        ], className="gm-filters"),
        dcc.Store(id="pln-proposal"),
        dcc.Store(id="pln-applied"),
        html.Div(id="pln-accept-err", style={"display": "none"}),
        dcc.Loading(html.Div(id="pln-msg")),
        html.Div([
            html.Div([dcc.Loading(dcc.Graph(id="pln-bars", config={"displaylogo": False, "displayModeBar": False},
                                            style={"height": "460px"}))], className="gm-col"),
            html.Div([gm.map_shell("pln-map", overlays, basemap, height="460px", zoom=13)], className="gm-col"),
        ], className="gm-row"),
        html.Div([
            html.Div([html.H4("调整清单（网格 → 新探访管家）"), html.Div(id="pln-effect"), html.Div(id="pln-moves")],
                     className="gm-col"),
            html.Div([html.H4("人手测算（本周，每社区）"), dcc.Loading(html.Div(id="pln-capacity"))],
                     className="gm-col"),
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


def _forget_grids(data: DashboardData, p: dict[str, Any]) -> None:
    """After a proposal that split grids is accepted or undone, the cached grid layer is read again, so the
    map draws the redrawn grids (this process skips its own change-feed rows; other processes clear their
    layers on the feed's ``grid`` rows)."""
    if p.get("splits"):
        with data._lock:  # the cache's own lock
            data._layers.pop("grids", None)


def register(app: dash.Dash, data: DashboardData, basemap: Basemap) -> None:
    """Register the planner callbacks."""

    @app.callback(Output("pln-bars", "figure"), Output("pln-grids", "data"), Output("pln-stewards", "children"),
                  Output("pln-map", "viewport"), Output("pln-proposal", "data"), Output("pln-accept", "disabled"),
                  Output("pln-moved", "data"), Output("pln-elders", "children"),
                  Output("pln-moves", "children"), Output("pln-effect", "children"), Output("pln-msg", "children"),
                  Input("pln-street", "value"), Input("pln-week", "value"), Input("pln-run", "n_clicks"),
                  Input("pln-replan", "n_clicks"), Input("data-version", "data"), Input("tabs", "value"),
                  State("pln-cross", "value"))
    @guarded(11)
    def _plan(street: str | None, week: str, _run: Any, _replan: Any, _v: Any, tab: str, cross: Any = None) -> Any:
        if tab != "planner":  # computed when the tab is opened, not on every page load
            raise PreventUpdate
        empty = (None, [], [], [])
        if not street:
            return (go.Figure(), None, [], no_update, None, True, *empty, message("请选择街道", "info"))
        user = current_user()
        if Role(user.role) in (Role.COMMUNITY, Role.SERVICE) or street not in data.streets(user):
            log_access("denied", "plan", street, {"reason": "outside_area"})
            return (go.Figure(), None, [], no_update, None, True, *empty, message("该街道不在您的管辖范围内", "err"))
        trig = dash.ctx.triggered_id
        sid = _street_id(data, street)
        refreshed = None
        if trig == "pln-replan":
            if sid is None or not may_plan(user, sid):  # the button is disabled for them: a forged request
                raise _refuse_plan(street, "may_not_replan", "replan")
            refreshed = data.refresh_street(street)
            log_access("update", "plan", street, {"op": "replan", "elders": refreshed.elders,
                                                  "visits_added": refreshed.visits_added,
                                                  "streets": list(refreshed.streets)})
        st, el = workload(data, street, week)
        names = {int(i): n for i, n in zip(st["steward_id"], st["name"], strict=True)}
        grids = data.layer("grids")
        grids = grids[grids["street"] == street]
        per_grid = data.indicators(current_user(), _filters(week, street), "grid")
        choro = gm.choropleth(grids, "grid", gm.map_rates(per_grid), basemap, key="grid_pk")  # a running week: progress
        b = grids.total_bounds if len(grids) else None
        viewport = {"bounds": [[b[1], b[0]], [b[3], b[2]]]} if b is not None and trig in (None, "pln-street", "tabs") \
            else no_update
        if trig != "pln-run":
            text = _summary(street, week, st, el)
            if refreshed is not None:
                others = [x for x in refreshed.streets if x != street]
                text = (f"已重新规划：重新读取{street}台账 {refreshed.elders} 位老人"
                        f"（补入新的探访记录 {refreshed.visits_added} 条）"
                        + (f"，并更新其老人迁入/迁出的街道 {'、'.join(x or '（无街道）' for x in others)}" if others else "")
                        + f"，重新计算 {len(st)} 名管家的本周工作量；其他街道的数据未重算。" + text)
            # after 采纳方案/撤销 (a new data version) their message stays; the figures are redrawn
            msg = no_update if trig == "data-version" else message(text, "ok" if refreshed is not None else "info")
            return (_bars(st, None, names), choro, _steward_markers(st, None), viewport, None, True, *empty, msg)
        allow = bool(cross) and "cross" in (cross or [])
        prop = propose_rebalance(data.engine, street, week, allow_cross_community=allow, time_limit=10.0)
        d = prop.to_dict()
        effect = plan_effect(data.engine, prop, rules=data.rules) if prop.moves else None
        msg = message(_proposal_text(d, allow), "ok" if prop.moves else "info")
        may = sid is not None and may_plan(user, sid)
        pid = None
        if (prop.moves or prop.splits) and may:  # the page gets the proposal's id only
            from gridmap.routing.rebalance_store import keep_proposal

            pid = keep_proposal(data.engine, int(user.id), street, week,
                                {**d, "moves": prop.moves, "splits": prop.splits, "effect": effect})
        bars = _bars_proposal(d)
        return (bars, choro, _steward_markers(st, None), no_update,
                {"id": pid, "street": street, "moves": len(prop.moves)} if pid else None, pid is None,
                _moved_geojson(prop), _elder_markers(prop), _moves_table(d), _effect_text(effect), msg)

    @app.callback(Output("pln-msg", "children", allow_duplicate=True),
                  Output("data-version", "data", allow_duplicate=True),
                  Output("pln-accept", "disabled", allow_duplicate=True),
                  Output("pln-applied", "data"), Output("pln-undo", "disabled"),
                  Output("pln-accept-err", "children"),
                  Input("pln-accept", "n_clicks"), State("pln-proposal", "data"), prevent_initial_call=True)
    @guarded(6)
    def _accept(_n: int, proposal: Any) -> Any:
        try:
            out = _accept_kept(proposal)
        except PermissionDenied as exc:  # refused (audited where raised): the message where the user looks
            return message(error_text(exc), "err"), no_update, True, no_update, no_update, no_update
        return (out[-1], *out[:-1], no_update)

    def _accept_kept(proposal: Any) -> Any:
        if not proposal:
            return no_update, True, no_update, no_update, message("没有可采纳的方案", "info")
        user = current_user()
        from gridmap.routing.rebalance_store import apply_proposal, load_proposal

        # only the id comes from the page: the proposal kept for this user is written (re-checked), never moves
        pid = proposal.get("id") if isinstance(proposal, dict) else None
        kept = load_proposal(data.engine, str(pid)) if isinstance(pid, str) and pid else None
        if kept is not None and kept["created_at"] is not None:
            from datetime import timedelta

            from gridmap.store.models import utcnow

            created = kept["created_at"] if kept["created_at"].tzinfo else kept["created_at"].replace(
                tzinfo=utcnow().tzinfo)
            if created < utcnow() - timedelta(hours=data.PROPOSAL_HOURS):
                kept = None
        if kept is None or kept["user_id"] != int(user.id) or kept["accepted_at"] is not None:
            log_access("denied", "plan", proposal.get("street") if isinstance(proposal, dict) else None,
                       {"reason": "unknown_proposal", "op": "accept"})
            raise PermissionDenied("this proposal was not computed for you by the server, or was already accepted or "
                                   "has expired: run the rebalancing again",
                                   "该方案不是服务器为您计算的，或已采纳、已过期：请重新运行负载均衡")
        street = str(kept["street"])
        sid = _street_id(data, street)
        if sid is None or not may_plan(user, sid):
            raise _refuse_plan(street, "may_not_edit_plan", "accept")
        try:
            p = apply_proposal(data.engine, str(pid), user.username, user_id=int(user.id))
        except GridmapError as exc:
            log_access("denied", "plan", street, {"reason": "proposal_refused", "op": "accept"})
            return no_update, True, no_update, no_update, message(exc.message_zh, "err")
        log_access("update", "plan", street, {"op": "rebalance", "proposal": pid, "moves": len(p["moves"])})
        data.refresh_street(str(p["street"]))
        _forget_grids(data, p)
        n = sum(len(m["elders"]) for m in p["moves"])
        text = (f"已采纳：{n} 位老人的探访管家已调整（{len({m['grid'] for m in p['moves']})} 个网格整体调整"
                + (f"，拆分网格 {len(p.get('splits') or [])} 个" if p.get("splits") else "") + "）"
                + "（已记入台账和网格变更历史，可撤销）")
        return data.version, True, {"id": pid, "street": p["street"]}, False, message(text, "ok")

    @app.callback(Output("pln-undo", "disabled", allow_duplicate=True),
                  Output("data-version", "data", allow_duplicate=True),
                  Output("pln-msg", "children", allow_duplicate=True),
                  Input("pln-undo", "n_clicks"), State("pln-applied", "data"), prevent_initial_call=True)
    @guarded(3)
    def _undo(_n: int, applied: Any) -> Any:
        if not applied:
            return True, no_update, message("没有可撤销的方案", "info")
        user = current_user()
        street = applied.get("street") if isinstance(applied, dict) else None
        sid = _street_id(data, street)
        if sid is None or not may_plan(user, sid):
            raise _refuse_plan(street, "may_not_edit_plan", "undo")
        from gridmap.routing.rebalance_store import load_proposal, undo_proposal

        pid = str(applied.get("id"))
        kept = load_proposal(data.engine, pid)
        if kept is None or kept["user_id"] != int(user.id):
            raise _refuse_plan(street, "unknown_proposal", "undo")
        try:
            p = undo_proposal(data.engine, pid, user.username)
        except GridmapError as exc:
            return True, no_update, message(exc.message_zh, "err")
        log_access("update", "plan", street, {"op": "rebalance_undo", "proposal": pid})
        data.refresh_street(str(p["street"]))
        _forget_grids(data, p)
        n = sum(len(m["elders"]) for m in p["moves"])
        return True, data.version, message(f"已撤销：{n} 位老人恢复原探访管家，网格恢复原状", "ok")

    @app.callback(Output("pln-capacity", "children"), Input("pln-street", "value"), Input("pln-week", "value"),
                  Input("tabs", "value"), Input("data-version", "data"))
    @guarded(1)
    def _capacity(street: str | None, week: str, tab: str, _v: Any) -> Any:
        if tab != "planner" or not street:
            raise PreventUpdate
        if street not in data.streets(current_user()):
            return message("该街道不在您的管辖范围内", "err")
        from gridmap.routing.capacity import street_capacity

        rows = street_capacity(data.engine, street, week, rules=data.rules)
        return _capacity_table(rows)


def _proposal_text(d: dict[str, Any], allow: bool) -> str:
    cross = f"，其中跨社区 {d['cross_community_moves']} 项（已标注）" if d["cross_community_moves"] else ""
    split = f"，拆分网格 {len(d['splits'])} 个" if d["splits"] else ""
    return (f"负载均衡方案（整网格调整{'，允许跨社区' if allow else '，仅社区内'}）：{d['grids_moved']} 个网格、"
            f"{d['elders_moved']} 位老人更换探访管家{cross}{split}；最高周负载 {fmt_minutes(d['max_before'])} → "
            f"{fmt_minutes(d['max_after'])}（最高/平均 {d['ratio_before']:.2f} → {d['ratio_after']:.2f}）；"
            f"CP-SAT 下界 {fmt_minutes(d['bound'])}，差距 {d['gap']:.1%}（{d['status']}）。"
            + ("".join(d["notes"]) if not d["moves"] else "")
            + ("" if d["moves"] or allow else "本街道每个社区只有一名探访管家：勾选“允许跨社区调整”可在相邻社区间调整。"))


def _bars_proposal(d: dict[str, Any]) -> go.Figure:
    st = sorted(d["stewards"], key=lambda x: -x["workload_before"])
    x = [f"{s['name']}" for s in st]
    fig = go.Figure(go.Bar(x=x, y=[s["workload_before"] for s in st], name="调整前", marker_color="#9ecae1",
                           hovertemplate="%{x}<br>每周 %{y:.0f} 分钟<extra></extra>"))
    fig.add_bar(x=x, y=[s["workload_after"] for s in st], name="调整后", marker_color="#1f4e79",
                hovertemplate="%{x}<br>调整后每周 %{y:.0f} 分钟<extra></extra>")
    fig.add_scatter(x=x, y=[s["capacity"] for s in st], mode="markers", name="每周可用时长",
                    marker={"symbol": "line-ew-open", "size": 16, "color": "#d73027"})
    fig.add_hline(y=d["bound"], line_dash="dot", line_color="#555", annotation_text="CP-SAT 下界",
                  annotation_position="top right")
    fig.update_layout(barmode="group", margin={"l": 50, "r": 10, "t": 30, "b": 100},
                      yaxis={"title": "每周工作量（分钟，含路程估算）"}, legend={"orientation": "h", "y": 1.08},
                      font={"family": "Noto Sans CJK SC, sans-serif"}, plot_bgcolor="white",
                      title={"text": "管家每周工作量：调整前 / 调整后", "x": 0.01, "y": 0.99, "font": {"size": 14}})
    return fig


def _moved_geojson(prop: Any) -> dict[str, Any] | None:
    import shapely

    moved = {m["grid"]: m for m in prop.moves if m["whole_grid"] or m["from_steward"] is None}
    feats = []
    for code, m in moved.items():
        geom = prop.units.grid_geoms.get(code)
        if geom is None:
            continue
        tip = (f"网格 {code}（{m['community_name']}）：{m['from_name'] or '无'} → {m['to_name']}，"
               f"{len(m['elders'])} 位老人" + ("，跨社区" if m["cross_community"] else ""))
        feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(shapely.simplify(geom, 0.00003)),
                      "properties": {"tooltip": tip, "grid": code}})
    return {"type": "FeatureCollection", "features": feats} if feats else None


_PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999")


def _elder_markers(prop: Any) -> list[Any]:
    colours = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(sorted({m["to_steward"] for m in prop.moves}))}
    out = []
    for m in prop.moves:
        for e in m["elders"][:400]:
            xy = prop.units.elder_xy.get(int(e))
            if xy is None:
                continue
            out.append(dl.CircleMarker(center=[xy[1], xy[0]], radius=4, color="#fff", weight=1,
                                       fillColor=colours[m["to_steward"]], fillOpacity=0.95,
                                       children=dl.Tooltip(f"老人（编号 {e}）→ {m['to_name']}")))
    return out


def _moves_table(d: dict[str, Any]) -> Any:
    if not d["moves"]:
        return html.P("没有需要调整的网格。", className="gm-hint")
    head = html.Tr([html.Th(x) for x in ("网格", "社区", "原探访管家", "新探访管家", "老人", "跨社区")])
    rows = [html.Tr([html.Td(m["grid"]), html.Td(m["community_name"]), html.Td(m["from_name"] or "（未分配）"),
                     html.Td(m["to_name"]), html.Td(str(len(m["elders"]))),
                     html.Td("是" if m["cross_community"] else "")]) for m in d["moves"]]
    w = html.Tr([html.Th(x) for x in ("探访管家", "社区", "调整前（分钟/周）", "调整后", "可用时长")])
    ws = [html.Tr([html.Td(s["name"]), html.Td(s["community_name"]), html.Td(f"{s['workload_before']:.0f}"),
                   html.Td(f"{s['workload_after']:.0f}"), html.Td(f"{s['capacity']:.0f}")])
          for s in sorted(d["stewards"], key=lambda s: -s["workload_before"])
          if abs(s["workload_before"] - s["workload_after"]) > 0.5]
    splits = [html.P(f"拆分网格 {x['grid']} → 新网格 {'、'.join(x['new_grids'])}（{x['elders']} 位老人）")
              for x in d["splits"]]
    return html.Div([html.Table([head, *rows], id="pln-moves-table", className="gm-table"), *splits,
                     html.H4("工作量变化的管家"), html.Table([w, *ws], className="gm-table")])


def _effect_text(e: dict[str, Any] | None) -> Any:
    if not e:
        return None
    return html.P(
        f"对本周计划的影响（路线规划器按调整前/后为涉及的 {e['stewards']} 名管家各排一次）：计划上门 "
        f"{e['visits_planned_before']} → {e['visits_planned_after']} 次（应上门 {e['visits_required_before']}），"
        f"路程 {fmt_minutes(e['travel_minutes_before'])} → {fmt_minutes(e['travel_minutes_after'])}（直线×绕行系数估算）",
        id="pln-effect-text", className="gm-hint")


def _capacity_table(rows: list[Any]) -> Any:
    head = html.Tr([html.Th(x) for x in ("社区", "需要（小时）", "可用（小时）", "缺口", "需增探访管家", "附近服务管家")])
    body = [html.Tr([html.Td(c.community_name), html.Td(f"{c.required_hours:.1f}"), html.Td(f"{c.available_hours:.1f}"),
                     html.Td(f"{c.gap_hours:.1f}"), html.Td(str(c.stewards_needed)),
                     html.Td("、".join(f"{h['name']}（{h['minutes_away']:.0f}分钟，{h['hours']}小时）"
                                      for h in c.helpers))])
            for c in sorted(rows, key=lambda c: -c.gap_hours)]
    short = sum(1 for c in rows if c.gap_hours > 0)
    need = sum(c.stewards_needed for c in rows)
    return html.Div([html.P(f"{short} 个社区人手不足，合计缺口 {sum(c.gap_hours for c in rows):.1f} 小时/周，"
                            f"需增加 {need} 名探访管家（或由附近服务管家分担）。", className="gm-hint"),
                     html.Table([head, *body], id="pln-capacity-table", className="gm-table")])


def _summary(street: str, week: str, st: pd.DataFrame, el: pd.DataFrame) -> str:
    """The workload line: stewards, the week's in-home visits, elders with and without a visit steward."""
    over = int((st["load"] > st["capacity"]).sum())
    assigned = el["steward_id"].notna()
    return (f"{street} · {fmt_week(week)}：{len(st)} 名管家，本周需上门探访 {int(el['visits'].sum())} 次"
            f"（{len(el)} 位老人：{int(assigned.sum())} 位已有探访管家，{int((~assigned).sum())} 位未分配）；"
            f"{over} 名管家超出每周可用时长")


def _filters(week: str, street: str) -> Any:
    from gridmap.dashboard.data import Filters

    return Filters(week=week, street=street)


