"""The Dash application: a Chinese-language dashboard for supervisors (街镇), stewards (管家) and planners (规划).

A thin layer over the domain: data come from :class:`gridmap.dashboard.data.DashboardData`
(cached calls to :mod:`gridmap.rules` and the store), each view lives in its own
module (:mod:`~gridmap.dashboard.supervisor`, :mod:`~gridmap.dashboard.steward`,
:mod:`~gridmap.dashboard.planner`) and the map pieces in :mod:`~gridmap.dashboard.map`.
Sign-in is required (:func:`gridmap.dashboard.auth.install_auth`): the header
shows the signed-in user and a sign-out button, and every view reads the
register through the user's scope (:mod:`gridmap.access`). A banner says when
the database is unreachable and disappears when it returns.
"""

from __future__ import annotations

import gzip
import json
import logging
from datetime import date
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update
from sqlalchemy import Engine

from gridmap.dashboard import devices as care_view  # issue 17 part B: 设备与驿站
from gridmap.dashboard import (
    followups,
    planner,
    service,  # issue 17 (A): 服务任务 (the service steward's workbench)
    steward,
    supervisor,
)
from gridmap.dashboard import map as gm
from gridmap.dashboard.auth import install_auth, is_installed, logout_button
from gridmap.dashboard.basemap import Basemap, basemap_from_env
from gridmap.dashboard.data import DashboardData, current_user
from gridmap.dashboard.fmt import fmt_date
from gridmap.domain.enums import Role
from gridmap.store.db import DatabaseUnavailable, check_connection

__all__ = ["create_app"]

log = logging.getLogger("gridmap.dashboard")
TITLE = "海淀区特殊困难老年人探访关爱"


def _error_page(exc: BaseException) -> html.Div:
    zh = getattr(exc, "message_zh", "数据库暂时无法连接，请稍后刷新页面")
    en = getattr(exc, "message_en", "database unavailable")
    return html.Div([html.H2("数据库暂时无法连接"), html.P(zh), html.P(en, style={"color": "#666"}),
                     html.P("恢复后刷新本页即可继续使用。")],
                    style={"padding": "2em"}, id="db-error-page", lang="zh-CN")


def create_app(engine: Engine, *, basemap: Basemap | None = None, today: date | None = None,
               warm: bool = True, auth: bool = True, secret_key: str | bytes | None = None) -> dash.Dash:
    """Build the dashboard on a store that holds the layers (and usually a register).

    Parameters
    ----------
    engine
        The store.
    basemap
        Tile source (default: from the environment, see :mod:`gridmap.dashboard.basemap`).
    today
        The working date (default: today in Beijing); tests pin it.
    warm
        Read the register and compute the default view in a background thread at start.
    auth
        Require sign-in (the default, and the only way the dashboard is served);
        ``False`` only for tests of the views themselves, which then see the
        whole district as :data:`gridmap.dashboard.data.SYSTEM_USER`.
    secret_key
        Session-signing key (default ``GRIDMAP_SECRET_KEY``, see :func:`gridmap.access.session_secret`).
    """
    basemap = basemap or basemap_from_env()
    data = DashboardData(engine, today=today)
    app = dash.Dash(__name__, title=TITLE, update_title="加载中…", suppress_callback_exceptions=True)
    app.gridmap_data = data  # type: ignore[attr-defined]

    if warm:
        data.start_background()  # warm-up and the change follower (per process; gunicorn workers: after fork)

    def layout() -> html.Div:
        try:
            check_connection(engine)
            sup = supervisor.layout(data, basemap)
            stw = steward.layout(data, basemap)
            pln = planner.layout(data, basemap)
        except DatabaseUnavailable as exc:
            log.warning("layout: %s", exc.message_en)
            return _error_page(exc)
        except Exception as exc:
            log.warning("layout failed", exc_info=True)
            return _error_page(exc)
        user = current_user()
        data.start_warm_scope(user)
        own_route = Role(user.role) in (Role.COMMUNITY, Role.SERVICE)
        tabs = [dcc.Tab(sup, label="街镇督导", value="supervisor", id="tab-supervisor"),
                dcc.Tab(stw, label="管家工作台", value="steward", id="tab-steward")]
        fu_tab = followups.tab(data, user)  # 隐患与转介: lists acted on, 接诉即办 measures
        if fu_tab is not None:
            tabs.append(fu_tab)
        svc_tab = service.tab(data, user)  # issue 17 (A): 服务任务
        if svc_tab is not None:
            tabs.append(svc_tab)
        care_tab = care_view.tab(data, user)  # issue 17 part B: 设备与驿站
        if care_tab is not None:
            tabs.append(care_tab)
        if Role(user.role) not in (Role.COMMUNITY, Role.SERVICE):
            tabs.append(dcc.Tab(pln, label="规划调度", value="planner", id="tab-planner"))
        box = [html.Span(f"{user.label} · {fmt_date(data.today, weekday=True)}", id="user-label")]
        if auth and is_installed():
            box += [" ", logout_button()]
        return html.Div([
            html.Header([
                html.H1(f"{TITLE} · 网格地图"),
                html.Div(box, id="user-box"),
            ], className="gm-header"),
            html.Div(id="db-banner"),
            dcc.Interval(id="db-check", interval=5000),
            dcc.Store(id="data-version", data=data.version),
            dcc.Tabs(tabs, value=("service" if Role(user.role) == Role.SERVICE and svc_tab is not None
                                  else "steward" if own_route else "supervisor"), id="tabs",
                     mobile_breakpoint=0),  # issue 18: one row of tabs on a phone (the steward's page is phone-first)
        ], lang="zh-CN")

    app.layout = layout

    # no initial call: the page was just built from the database, and the KPIs, map and table (whose inputs
    # include ``data-version``) would otherwise wait for this round trip before their own first call
    @app.callback(Output("db-banner", "children"), Output("data-version", "data"),
                  Input("db-check", "n_intervals"), State("data-version", "data"), prevent_initial_call=True)
    def _db_state(_n: Any, version: Any) -> Any:
        try:
            check_connection(engine)
        except DatabaseUnavailable:
            return (html.Div("⚠ 数据库暂时无法连接：显示的是最近一次读取的数据，保存操作暂不可用；连接恢复后自动更新。",
                             className="gm-banner", id="db-down"), no_update)
        return None, (data.version if version != data.version else no_update)

    supervisor.register(app, data, basemap)
    steward.register(app, data, basemap)
    planner.register(app, data, basemap)
    followups.register(app, data)
    service.register(app, data)  # issue 17 (A)
    care_view.register(app, data)  # issue 17 part B

    # the background warm-up pauses between its steps while requests are answered (see DashboardData.yield_to_requests)
    @app.server.before_request
    def _started() -> None:
        data.request_started()

    @app.server.teardown_request
    def _finished(_exc: BaseException | None) -> None:
        data.request_finished()

    static_cache: dict[str, bytes] = {}

    @app.server.get("/gm-layers/<name>.json")
    def static_layer(name: str) -> Any:
        from flask import Response, abort, request

        if name not in gm.STATIC_LAYERS:
            abort(404)
        if name not in static_cache:
            try:
                payload = gm.static_layer(name, data.layer("district"), data.layer("service_points"), basemap)
            except Exception:
                log.warning("static layer %s failed", name, exc_info=True)
                return Response('{"type":"FeatureCollection","features":[]}', 503, mimetype="application/json")
            static_cache[name] = gzip.compress(json.dumps(payload, ensure_ascii=False,
                                                          separators=(",", ":")).encode(), 6)
        body = static_cache[name]
        headers = {"Cache-Control": "public, max-age=3600"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
        return Response(body, 200, headers=headers, mimetype="application/json")

    @app.server.get("/healthz")
    def healthz() -> Any:
        try:
            check_connection(engine)
        except DatabaseUnavailable:
            return "database unavailable", 503
        # seq: how far this process has followed the change feed (gridmap.store.changes)
        return {"status": "ok", "seq": data.followed_seq}, 200

    from gridmap.api import register_api

    register_api(app.server, engine, data.rules)  # the read API /api/v1 (session or bearer token)
    if auth:
        install_auth(app, engine, secret_key=secret_key)
    return app
