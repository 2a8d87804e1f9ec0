"""Steward view (管家工作台): today's route list and map, the visit form of section 五, a print view.

The day's route comes from the stored weekly plans (``gridmap plan week`` writes
them under ``<var>/plans/<week>/<steward code>/``; read with
:func:`gridmap.routing.routelist.load_route_list`): stops in the solver's order
with their time windows, drawn along the roads. When no plan is stored for the
steward's week, the list is computed instead: the week's due in-home visits
(:func:`gridmap.rules.requirements.routing_visits`) not yet done this week,
highest priority first, ordered by a simple nearest-neighbour walk from the
steward's base and cut at the day's working minutes — the page says which. Visits are validated with
:func:`gridmap.rules.visits.parse_visit` and saved with
:func:`gridmap.rules.store.record_visit` (hazards and referrals follow the rules) through
:meth:`gridmap.dashboard.data.DashboardData.record_visit`, which decides on the server which steward the
visit is recorded under (the page's choice of steward is only a request, checked against the user's area).
"""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dash
import pandas as pd
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from sqlalchemy import select

from gridmap.access import EDITABLE, User
from gridmap.dashboard import fieldday as fd
from gridmap.dashboard import map as gm
from gridmap.dashboard.auth import log_access
from gridmap.dashboard.basemap import Basemap
from gridmap.dashboard.data import BEIJING, DashboardData, current_user
from gridmap.dashboard.fmt import fmt_date, fmt_minutes, fmt_week
from gridmap.dashboard.ui import date_picker, dropdown, error_text, guarded, message
from gridmap.domain.enums import Role, Satisfaction, VisitMode, VisitorRole
from gridmap.domain.masking import mask_address, mask_name
from gridmap.rules.requirements import REASON_LABELS, routing_visits, week_of
from gridmap.rules.visits import ANSWER_FIELDS, ANSWER_LABELS
from gridmap.store.models import Elder

__all__ = ["ROUTE_NOTE", "day_route", "form_to_record", "layout", "planned_route", "register"]

#: Honest label of the route list when no plan is stored for the week.
ROUTE_NOTE = ("说明：该周尚无已保存的排班计划，以下为本周尚未完成的上门探访，按优先级和就近原则"
              "（从出发点起的简单最近邻顺序，非优化结果）排列，按当日工作时长截取；行程时间按步行直线距离估算。")
#: Label of a route read from a stored weekly plan.
PLAN_NOTE = "路线来自已保存的周计划（{week}，gridmap plan week 排定并经独立校验），沿路网绘制，序号为探访顺序。"
_ROUTE_COLS = ["order", "elder_id", "label", "address", "lon", "lat", "arrival", "depart", "service_minutes",
               "walk_minutes", "check", "priority", "deadline", "window"]


def _minutes(hm: str) -> int:
    h, m = str(hm).split(":")[:2]
    return int(h) * 60 + int(m)


def planned_route(data: DashboardData, steward_id: int, day: date, user: User | None = None,
                  plan_dir: Any = None) -> tuple[pd.DataFrame, tuple[float, float] | None, list[list[float]]] | None:
    """The day's stops, base and road path of one steward from the stored weekly plan, or ``None``.

    ``None`` when no plan of the steward's week is stored (the caller then computes
    the list with :func:`day_route`); an empty frame when the plan has no route
    that day. Stops outside ``user``'s area are left out.
    """
    from gridmap._errors import ValidationError
    from gridmap.routing.district import default_out_dir
    from gridmap.routing.routelist import load_route_list

    user = user or current_user()
    st = data.stewards(user)
    row = st[st["id"] == steward_id]
    if row.empty:
        return None
    code = str(row.iloc[0]["code"])
    if plan_dir is None:
        plan_dir = (data.plans_root / week_of(day)) if data.plans_root is not None else default_out_dir(week_of(day))
    d = Path(plan_dir)
    if not (d / code / "plan.json").is_file():
        return None
    mode = row.iloc[0]["travel_mode"]
    mode = str(getattr(mode, "value", mode) or "walk")
    try:
        rl = load_route_list(data.engine, d, code, day, graph=gm.road_graph() if mode == "walk" else None)
    except ValidationError as exc:
        if getattr(exc, "code", None) == "no_route":
            return pd.DataFrame(columns=_ROUTE_COLS), None, []
        raise
    seen = data.steward_elder_ids(steward_id, user)
    allowed = set(seen) if not user.scope.is_all else None
    rows = []
    prev_end = rl.shift[0] if rl.shift else None
    for s in rl.stops:
        travel = _minutes(s.arrival) - _minutes(prev_end) if prev_end else 0
        prev_end = s.end
        if allowed is not None and s.elder_id not in allowed:
            continue
        rows.append({"order": s.seq, "elder_id": s.elder_id, "label": s.name, "address": s.address or "—",
                     "lon": s.lon, "lat": s.lat, "arrival": s.start, "depart": s.end,
                     "service_minutes": s.service_minutes, "walk_minutes": max(0, travel),
                     "check": "；".join(s.checks) or "常规探访", "priority": s.priority, "deadline": s.deadline,
                     "window": "、".join(f"{a}–{b}" for a, b in s.time_windows) or "全天"})
    return pd.DataFrame(rows, columns=_ROUTE_COLS), rl.base, rl.geometry
WALK_M_PER_MIN = 70.0
DETOUR = 1.3


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def day_route(data: DashboardData, steward_id: int, day: date,
              user: User | None = None) -> tuple[pd.DataFrame, tuple[float, float] | None]:
    """The day's stops of one steward (see the module docstring) and the steward's base.

    Only the elders ``user`` may see are listed (default: the current user).
    """
    user = user or current_user()
    st = data.stewards(user)
    row = st[st["id"] == steward_id]
    base = None
    max_minutes, start = 360, time(8, 30)
    if not row.empty:
        r = row.iloc[0]
        if pd.notna(r["base_lon"]):
            base = (float(r["base_lon"]), float(r["base_lat"]))
        max_minutes = int(r["max_work_minutes"] or 360)
        start = r["shift_start"] or start
    elder_ids = data.steward_elder_ids(steward_id, user)
    facts = data.facts(day, elder_ids)
    week = week_of(day)
    due = routing_visits(facts, week, data.rules)
    monday = day - timedelta(days=day.weekday())
    visits = data.inputs()[1]
    visits = visits[visits["elder_id"].isin(elder_ids)]  # the steward's elders first (not the whole register's)
    on = pd.to_datetime(visits["visited_on"])
    # visits before the day count against the week's; a stop visited on the day stays listed (marked done)
    done = visits[(on >= pd.Timestamp(monday)) & (on < pd.Timestamp(day))
                  & (visits["mode"].astype(str) == "in_home")].groupby("elder_id").size()
    todo = [v for v in due if v.get("location") and v["count"] > int(done.get(int(v["id"]), 0))]
    cols = _ROUTE_COLS
    if not todo:
        return pd.DataFrame(columns=cols), base
    ids = [int(v["id"]) for v in todo]
    with data.engine.connect() as conn:
        names = {i: (n, a) for i, n, a in conn.execute(
            select(Elder.id, Elder.name, Elder.address).where(Elder.id.in_(ids)))}
    pos = base or tuple(todo[0]["location"])
    clock = datetime.combine(day, start)
    used = 0.0
    rows: list[dict[str, Any]] = []
    remaining = sorted(todo, key=lambda v: -v["priority"])
    while remaining:
        top = remaining[0]["priority"]
        same = [v for v in remaining if v["priority"] == top]
        nxt = min(same, key=lambda v: _metres(pos, tuple(v["location"])))
        walk = _metres(pos, tuple(nxt["location"])) * DETOUR / WALK_M_PER_MIN
        if used + walk + nxt["service_minutes"] > max_minutes and rows:
            break
        remaining.remove(nxt)
        arrival = clock + timedelta(minutes=walk)
        depart = arrival + timedelta(minutes=nxt["service_minutes"])
        eid = int(nxt["id"])
        n, a = names.get(eid, (None, None))
        rows.append({"order": len(rows) + 1, "elder_id": eid, "label": mask_name(n) or str(eid),
                     "address": mask_address(a) or "—", "lon": nxt["location"][0], "lat": nxt["location"][1],
                     "arrival": arrival.strftime("%H:%M"), "depart": depart.strftime("%H:%M"),
                     "service_minutes": nxt["service_minutes"], "walk_minutes": round(walk),
                     "check": "；".join(REASON_LABELS.get(x, x) for x in nxt["reasons"]),
                     "priority": nxt["priority"], "deadline": nxt["deadline"],
                     "window": "、".join(f"{a}–{b}" for a, b in nxt.get("time_windows") or []) or "全天"})
        used += walk + nxt["service_minutes"]
        clock, pos = depart, tuple(nxt["location"])
    return pd.DataFrame(rows, columns=cols), base


def _options(enum: type) -> list[dict[str, str]]:
    return [{"label": m.label, "value": m.value} for m in enum]


def _field(label: str, control: Any) -> html.Div:
    return html.Div([html.Label(label), control])


def layout(data: DashboardData, basemap: Basemap) -> html.Div:
    """The steward view."""
    user = current_user()
    st = data.stewards(user)
    if not st.empty:
        st = st[(st["kind"] == "visit") | (st["id"] == (user.steward_id or -1))]
        own = st["id"] == (user.steward_id or -1)
        st = pd.concat([st[own], st[~own]])  # the signed-in steward first (their own route by default)
    opts = [{"label": f"{r.name}（{r.code}，{r.community if isinstance(r.community, str) else '服务管家'}）", "value": int(r.id)}
            for r in st.itertuples()]
    read_only = user.scope.read_only or Role(user.role) not in EDITABLE["visit"]
    answers = [_field(ANSWER_LABELS[k], dropdown(_options(enum), None, id={"type": "stw-ans", "field": k},
                                                     placeholder="请选择"))
               for k, enum in ANSWER_FIELDS.items()]
    today = data.today
    return html.Div([
        html.Div([
            html.Div([html.Label("管家"), dropdown(opts, opts[0]["value"] if opts else None, id="stw-steward",
                                                     clearable=False)], style={"flex": "2 1 300px"}),
            html.Div([html.Label("日期"), date_picker(id="stw-day", date=today, display_format="YYYY年M月D日",
                                                             max_date_allowed=today, first_day_of_week=1)]),
            html.Div([html.Button("打印当日工作单", id="stw-print", className="gm-btn secondary")],
                     style={"flex": "0 0 auto"}),
        ], className="gm-filters gm-noprint"),
        html.Div(id="stw-msg"),
        fd.outbox_box(),  # the visits saved offline, waiting to be sent (assets/gridmap_steward.js)
        *fd.stores(),
        html.Div([
            html.Div([html.H3("当日工作", style={"margin": "4px"}, id="stw-day-title"),
                      dcc.Loading(html.Div(id="stw-route"))], className="gm-col gm-day"),
            html.Div([gm.map_shell("stw-map", [
                dl_overlay_roads(basemap),
                _road_label_overlay(),
                _route_overlay(),
            ], basemap, height="55vh", zoom=14)], className="gm-col gm-daymap"),
        ], className="gm-row"),
        html.Div([html.Div([
            html.H3("探访记录（附件1-2 第五部分）", style={"margin": "4px"}),
            html.Div([
                _field("老人", dropdown([], None, id="stw-elder", placeholder="选择老人（编号 姓名）")),
                _field("探访日期", date_picker(id="stw-visited-on", date=today, max_date_allowed=today,
                                                      min_date_allowed=data.rules.programme_start,
                                                      display_format="YYYY年M月D日", first_day_of_week=1)),
                _field("探访方式", dropdown(_options(VisitMode), "in_home", id="stw-mode", clearable=False)),
                _field("探访人身份", dropdown(_options(VisitorRole), "visit_steward", id="stw-role",
                                                clearable=False)),
                _field("探访人姓名", dcc.Input(id="stw-visitor", type="text", maxLength=40)),
                _field("开始时间（时:分）", dcc.Input(id="stw-start", type="text", value="09:00", maxLength=5,
                                                 pattern=r"[0-2][0-9]:[0-5][0-9]", placeholder="如 09:00")),
                _field("结束时间（时:分）", dcc.Input(id="stw-end", type="text", value="09:30", maxLength=5,
                                                 pattern=r"[0-2][0-9]:[0-5][0-9]", placeholder="如 09:30")),
                *answers,
                _field("家庭人口变化人数", dcc.Input(id="stw-fcc", type="number", min=0, max=20)),
                _field("疾病名称（如有）", dcc.Input(id="stw-illness", type="text", maxLength=80)),
                # issue 17 (A): the needs as the rules' labels (each a service task), 无, and a note
                _field("老年人服务需求（可多选；无需求请勾选“无”）", dcc.Checklist(
                    [{"label": n.label, "value": n.label} for n in data.rules.service_needs]
                    + [{"label": "无", "value": "无"}], [], id="stw-need-kinds", inline=True,
                    inputStyle={"marginRight": "3px"}, labelStyle={"marginRight": "10px"})),
                _field("服务需求说明（选填）", dcc.Textarea(id="stw-needs", maxLength=4000, style={"width": "100%"})),
                _field("意见建议", dcc.Textarea(id="stw-suggestions", maxLength=4000, style={"width": "100%"})),
                _field("紧急情况", dcc.Checklist([{"label": "存在危及生命安全的紧急情况", "value": "yes"}], [],
                                              id="stw-emergency")),
                _field("探访人签字", dcc.Input(id="stw-sig-visitor", type="text", maxLength=40)),
                _field("老人（家属）签字", dcc.Input(id="stw-sig-elder", type="text", maxLength=40)),
                _field("记录人签字", dcc.Input(id="stw-sig-recorder", type="text", maxLength=40)),
                _field("定位经度（选填）", dcc.Input(id="stw-gps-lon", type="number")),
                _field("定位纬度（选填）", dcc.Input(id="stw-gps-lat", type="number")),
                _field("关爱服务项目（第六部分，选填）", dcc.Input(id="stw-cs-kind", type="text", maxLength=40)),
                _field("服务内容", dcc.Input(id="stw-cs-desc", type="text", maxLength=2000)),
                _field("服务机构", dcc.Input(id="stw-cs-provider", type="text", maxLength=120)),
                _field("满意度", dropdown(_options(Satisfaction), None, id="stw-cs-sat")),
            ], className="gm-form"),
            # issue 18: the phone's position at saving, only with this consent; only its distance to the home is kept
            html.Div(dcc.Checklist([{"label": "同意记录保存时手机所在位置（仅保存与老人住址的距离，不保存位置和轨迹）",
                                     "value": "yes"}], [], id="stw-consent"), className="gm-consent"),
            html.Div([html.Button("保存探访记录", id="stw-save", className="gm-btn"),
                      html.Span(f" 您的角色（{Role(user.role).label}）只能查看，不能保存探访记录" if read_only else "",
                                className="gm-hint", id="stw-readonly")], style={"marginTop": "8px"}),
            dcc.Loading(html.Div(id="stw-save-msg")),
            # the submission's idempotency key: made when the form opens (and for each new elder or date), sent
            # with the save, so pressing 保存探访记录 again (or a retried request) stores the visit once
            dcc.Store(id="stw-idem", data=uuid.uuid4().hex),
        ], className="gm-col", id="stw-form")], className="gm-row gm-noprint"),
    ], id="steward-view", **{"data-user": user.username})  # the page's outbox sends a user's own visits only


def _elder_options(data: DashboardData, steward_id: int, user: User) -> list[dict[str, Any]]:
    """The visit form's elder choices: the steward's elders the user sees (number, masked name, community)."""
    elders = data.inputs()[0]
    mine = elders[elders["elder_id"].isin(data.steward_elder_ids(steward_id, user))]
    with data.engine.connect() as conn:
        names = dict(conn.execute(select(Elder.id, Elder.name).where(
            Elder.id.in_(mine["elder_id"].astype(int).tolist()))).all())
    return [{"label": f"{int(i)} {mask_name(names.get(int(i)))}（{c or ''}）", "value": int(i)}
            for i, c in zip(mine["elder_id"], mine["community"], strict=True)]


def dl_overlay_roads(basemap: Basemap) -> Any:
    """The offline road background of the steward map."""
    import dash_leaflet as dl

    return dl.Overlay(dl.GeoJSON(url=gm.layer_url("roads") if not basemap.url else None, id="stw-roads",
                                 style={"variable": "gridmap.roads"}, interactive=False),
                      name="路网", checked=True)


def _road_label_overlay() -> Any:
    """Road names (OSM ``name``) near the day's route on the offline map (see :func:`fieldday.road_labels`)."""
    import dash_leaflet as dl

    return dl.Overlay(dl.GeoJSON(id="stw-road-labels", pointToLayer={"variable": "gridmap.roadLabel"},
                                 interactive=False), name="路名", checked=True)


def _route_overlay() -> Any:
    import dash_leaflet as dl

    return dl.Overlay(dl.LayerGroup(id="stw-route-layer"), name="当日路线", checked=True)


def form_to_record(values: dict[str, Any], steward_id: int | None, now: datetime | None = None) -> dict[str, Any]:
    """The mapping :func:`gridmap.rules.visits.parse_visit` takes, from the form's values."""
    day = values.get("visited_on")
    rec: dict[str, Any] = {
        "elder_id": values.get("elder_id"), "visited_on": day, "mode": values.get("mode"),
        "visitor_role": values.get("visitor_role"), "visitor_name": values.get("visitor_name"),
        "steward_id": steward_id, "family_change_count": values.get("family_change_count"),
        "illness_name": values.get("illness_name"), "needs_note": values.get("needs"),
        "suggestions": values.get("suggestions"), "emergency": bool(values.get("emergency")),
        "visitor_signature": values.get("sig_visitor"), "elder_signature": values.get("sig_elder"),
        "recorder_signature": values.get("sig_recorder"),
        "answers": {k: v for k, v in (values.get("answers") or {}).items() if v},
    }
    for key in ("started_at", "ended_at"):
        t = values.get(key)
        if t and day:
            rec[key] = f"{day}T{t}"
    lon, lat = values.get("gps_lon"), values.get("gps_lat")
    if lon not in (None, "") or lat not in (None, ""):
        rec["gps"] = [lon, lat]
        rec["gps_time"] = rec.get("ended_at") or (now or datetime.now(BEIJING)).isoformat()
    if values.get("cs_kind") or values.get("cs_desc"):
        rec["care_services"] = [{"served_on": day, "kind": values.get("cs_kind"), "description": values.get("cs_desc"),
                                 "provider": values.get("cs_provider"), "satisfaction": values.get("cs_sat")}]
    if rec["answers"] == {}:
        rec.pop("answers")
    kinds = values.get("need_kinds")  # issue 17 (A): ticked needs (a list: 无 alone answers "no need")
    if kinds:
        rec["needs"] = list(kinds)
    return rec


def _with_position(rec: dict[str, Any], consent: Any, pos: Any) -> dict[str, Any]:
    """Issue 18: the phone's position at saving (``stw-pos``), added only when the consent box is ticked."""
    if consent and isinstance(pos, dict) and pos.get("lon") is not None and pos.get("lat") is not None:
        rec = {**rec, "position": [pos["lon"], pos["lat"]], "position_consent": True}
    return rec


def _warm_road_index() -> None:
    """The walk road graph and its routing indexes (snapping tree, sparse matrix) and the plan-reading modules,
    made ready in advance: the first route of the day would otherwise pay for them (about a second)."""
    import gridmap.routing.district  # noqa: F401 - the first stored-plan lookup would otherwise pay the imports
    import gridmap.routing.routelist  # noqa: F401

    G = gm.road_graph()
    if G is None or G.number_of_nodes() < 2:
        return
    from gridmap.layers.travel import route_geometry

    (a, da), (b, db) = list(itertools.islice(G.nodes(data=True), 2))
    try:
        route_geometry(G, da["x"], da["y"], db["x"], db["y"])
    except Exception:  # noqa: BLE001 - only a warm-up
        pass


def register(app: dash.Dash, data: DashboardData, basemap: Basemap) -> None:
    """Register the steward callbacks."""
    data.warm_hooks.append(_warm_road_index)

    @app.callback(Output("stw-route", "children"), Output("stw-route-layer", "children"),
                  Output("stw-elder", "options"), Output("stw-map", "viewport"),
                  Output("stw-day-cache", "data"), Output("stw-road-labels", "data"), Output("stw-msg", "children"),
                  Input("stw-steward", "value"), Input("stw-day", "date"), Input("data-version", "data"),
                  Input("tabs", "value"))
    @guarded(7)
    def _route(steward_id: int | None, day: str | None, _v: Any, tab: str) -> Any:
        if tab != "steward":  # computed when the tab is opened, not on every page load
            raise PreventUpdate
        if steward_id is None or not day:
            return message("请选择管家和日期", "info"), [], [], no_update, no_update, no_update, None
        d = date.fromisoformat(day[:10])
        user = current_user()
        allowed = data.visible_steward_ids(user.scope)
        if allowed is not None and int(steward_id) not in allowed:
            log_access("denied", "steward", steward_id, {"reason": "outside_area"})
            return message("该管家不在您的管辖范围内", "err"), [], [], no_update, no_update, no_update, None
        def compute() -> tuple[pd.DataFrame, Any, Any, str]:
            planned = planned_route(data, int(steward_id), d, user)
            if planned is not None:
                st_, base_, path_ = planned
                return st_, base_, path_, PLAN_NOTE.format(week=fmt_week(week_of(d)))
            st_, base_ = day_route(data, int(steward_id), d, user)
            return st_, base_, None, ROUTE_NOTE

        stops, base, path, note = data._cache.get(("route", data.version, user.scope, int(steward_id), d), compute)
        contacts = data._cache.get(("contacts", data.version, user.scope, int(steward_id), d),
                                   lambda: fd.day_contacts(data, int(steward_id), d, user))
        elder_opts = data._cache.get(("elder-opts", data.version, user.scope, int(steward_id)),
                                     lambda: _elder_options(data, int(steward_id), user))
        log_access("view", "elder_list", None, {"rows": len(elder_opts), "view": "steward",
                                                "steward_id": int(steward_id)})
        # need to know: the assigned visit steward's own elders in clear (decided here, audited per elder)
        stops, contacts, clear = fd.clear_fields(data, user, stops, contacts, "workbench")
        st = data.stewards(user)
        row = st[st["id"] == int(steward_id)]
        mode = row.iloc[0]["travel_mode"] if not row.empty else "walk"
        mode = str(getattr(mode, "value", mode) or "walk")
        done = fd.done_today(data, [int(e) for e in stops["elder_id"]], d, in_home=True)
        cache = fd.day_store(int(steward_id), d, stops, contacts, note)
        privacy = (html.Div("您负责探访的老人：住址和电话完整显示（按需知悉，每次查看均记入日志）", className="gm-hint",
                            id="stw-need-to-know") if clear else None)
        contacts_part = html.Div([html.H3("当日电话、视频探访与远程监测", style={"margin": "8px 4px 4px"}),
                                  fd.contacts_block(contacts)], id="stw-remote")
        if stops.empty:
            text = ("按已保存的周计划，当日没有探访路线" if path is not None
                    else "本周上门探访已全部完成或无待探访老人")
            return (html.Div([html.Div(note, className="gm-hint", id="stw-route-note"),
                              message(f"{fmt_date(d, weekday=True)}：{text}", "ok"), privacy, contacts_part]), [],
                    elder_opts, no_update, cache, {"type": "FeatureCollection", "features": []}, None)
        from gridmap.dashboard.followups import open_followup_notes  # the elders' open hazards and referrals

        follow = open_followup_notes(data, [int(e) for e in stops["elder_id"]])
        total = stops["service_minutes"].sum() + stops["walk_minutes"].sum()
        n_done = len(done)
        table = html.Div([
            html.Div(f"{fmt_date(d, weekday=True)} · 上门 {len(stops)} 站" + (f"（已完成 {n_done}）" if n_done else "")
                     + f" · 预计用时 {fmt_minutes(total)} · 电话/视频 {int((contacts['kind'] != 'monitoring').sum())} 人"
                     f" · 远程监测 {int((contacts['kind'] == 'monitoring').sum())} 人", id="stw-route-summary"),
            privacy,
            html.H4("上门探访（按路线顺序）", className="gm-sec"),
            fd.stops_table(stops, follow, mode, done),
            contacts_part,
            html.Div(note, className="gm-hint", id="stw-route-note"),
        ])
        layer = data._cache.get(("route-layer", data.version, user.scope, int(steward_id), d),
                                lambda: gm.route_layer(stops, base, basemap, path=path))
        labels = data._cache.get(("road-labels", int(steward_id), d, data.version),
                                 lambda: fd.road_labels(stops, base, basemap))
        lons = list(stops["lon"]) + ([base[0]] if base else [])
        lats = list(stops["lat"]) + ([base[1]] if base else [])
        pad = 0.003  # about 300 m around the stops
        viewport = {"bounds": [[min(lats) - pad, min(lons) - pad], [max(lats) + pad, max(lons) + pad]]}
        return table, layer, elder_opts, viewport, cache, labels, None

    # a new submission (another elder or date): a new idempotency key, made in the browser
    app.clientside_callback(
        "function(e, d){ return (window.crypto && crypto.randomUUID) ? crypto.randomUUID()"
        " : (Date.now().toString(36) + Math.random().toString(36).slice(2)); }",
        Output("stw-idem", "data"), Input("stw-elder", "value"), Input("stw-visited-on", "date"),
        prevent_initial_call=True)

    app.clientside_callback("function(n){ if(n){ window.print(); } return ''; }",
                            Output("stw-print", "title"), Input("stw-print", "n_clicks"), prevent_initial_call=True)

    @app.callback(Output("stw-save-msg", "children"), Output("data-version", "data", allow_duplicate=True),
                  Input("stw-save", "n_clicks"),
                  State("stw-steward", "value"), State("stw-elder", "value"), State("stw-visited-on", "date"),
                  State("stw-mode", "value"), State("stw-role", "value"), State("stw-visitor", "value"),
                  State("stw-start", "value"), State("stw-end", "value"),
                  State({"type": "stw-ans", "field": ALL}, "value"), State({"type": "stw-ans", "field": ALL}, "id"),
                  State("stw-fcc", "value"), State("stw-illness", "value"), State("stw-needs", "value"),
                  State("stw-suggestions", "value"), State("stw-emergency", "value"),
                  State("stw-sig-visitor", "value"), State("stw-sig-elder", "value"),
                  State("stw-sig-recorder", "value"), State("stw-gps-lon", "value"), State("stw-gps-lat", "value"),
                  State("stw-cs-kind", "value"), State("stw-cs-desc", "value"), State("stw-cs-provider", "value"),
                  State("stw-cs-sat", "value"), State("stw-idem", "data"), State("stw-need-kinds", "value"),
                  State("stw-consent", "value"), State("stw-pos", "data"),  # issue 18: position with consent
                  prevent_initial_call=True)
    def _save(_n: int, steward_id: int | None, elder_id: int | None, visited_on: str | None, mode: str,
              role: str, visitor: str | None, start: str | None, end: str | None, ans_values: list[Any],
              ans_ids: list[dict[str, str]], fcc: Any, illness: Any, needs: Any, suggestions: Any,
              emergency: list[str], sig_v: Any, sig_e: Any, sig_r: Any, lon: Any, lat: Any, cs_kind: Any,
              cs_desc: Any, cs_provider: Any, cs_sat: Any, idem: str | None = None,
              need_kinds: list[str] | None = None, consent: Any = None, pos: Any = None) -> Any:
        values = {"elder_id": elder_id, "visited_on": (visited_on or "")[:10] or None, "mode": mode,
                  "visitor_role": role, "visitor_name": visitor, "started_at": start, "ended_at": end,
                  "answers": {i["field"]: v for i, v in zip(ans_ids, ans_values, strict=True)},
                  "family_change_count": fcc, "illness_name": illness, "needs": needs, "suggestions": suggestions,
                  "emergency": bool(emergency), "sig_visitor": sig_v, "sig_elder": sig_e, "sig_recorder": sig_r,
                  "gps_lon": lon, "gps_lat": lat, "cs_kind": cs_kind, "cs_desc": cs_desc,
                  "cs_provider": cs_provider, "cs_sat": cs_sat, "need_kinds": need_kinds}
        if elder_id is None:
            return message("请选择老人（字段：elder_id）", "err"), no_update
        try:  # the steward the visit is recorded under, and the visitor's role, are re-derived on the server
            res = data.record_visit(current_user(), _with_position(form_to_record(values, steward_id), consent, pos),
                                    idempotency_key=str(idem) if idem else None)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            return message("未保存：" + error_text(exc), "err"), no_update
        if getattr(res, "duplicate", False):
            return message(f"该探访记录已保存过（编号 {res.visit_id}），未重复保存", "ok"), no_update
        extra = []
        if res.hazard_ids:
            extra.append(f"已登记隐患 {len(res.hazard_ids)} 项")
        if res.referral_ids:
            extra.append(f"已发起转介 {len(res.referral_ids)} 项")
        if res.late_entry:
            extra.append("补录（超过规定录入时限）")
        if getattr(res, "task_ids", None):  # issue 17 (A)
            extra.append(f"已生成服务任务 {len(res.task_ids)} 项（推送服务管家）")
        saved = message(f"已保存探访记录（编号 {res.visit_id}）" + ("；" + "，".join(extra) if extra else ""), "ok")
        if not getattr(res, "effective", True):  # issue 17 (A): told at once, the visit stored but not counted
            from gridmap.rules.visits import item_label

            gaps = "、".join(item_label(k) for k in getattr(res, "missing_answers", ()))
            warn = html.Div(("⚠ 本次探访不是有效探访（已保存，不计入周探访率）："
                             + (f"未填写{gaps}" if gaps else "探访方式或探访人身份不计入有效探访")),
                            className="gm-msg err", id="stw-not-effective")
            return html.Div([saved, warn]), data.version
        return saved, data.version

    _register_outbox(app, data, _save)


def _text_of(component: Any) -> str:
    """The text of a message component (nested children flattened)."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return "".join(_text_of(c) for c in component)
    return _text_of(getattr(component, "children", None))


def _register_outbox(app: dash.Dash, data: DashboardData, save: Any) -> None:
    """The page's offline outbox (issue 18, ``assets/gridmap_steward.js``).

    A press of 保存探访记录 also puts the form (the save callback's states, as they are) into the browser's
    ``localStorage`` under its idempotency key; the server's answer to that save (``stw-save-msg``) takes it
    off again. What stays — saved without a connection, or whose answer was lost — is sent to
    ``POST /gm-steward/visit`` when the connection returns, where the same save callback stores it (its key
    makes a repeat return the visit stored before). The page shows what is waiting (``stw-outbox``).
    """
    import json

    from flask import jsonify, request

    spec = next(c for c in app._callback_list if c["output"].startswith("..stw-save-msg.children"))

    def dep(d: dict[str, str]) -> State:
        cid: Any = d["id"]
        if cid.startswith("{"):
            cid = {k: (ALL if v == ["ALL"] else v) for k, v in json.loads(cid).items()}
        return State(cid, d["property"])

    states = [dep(d) for d in spec["state"]]
    where = {f"{d['id']}.{d['property']}": i for i, d in enumerate(spec["state"])}
    idx = {"key": where["stw-idem.data"], "elder": where["stw-elder.value"], "day": where["stw-visited-on.date"]}
    app.clientside_callback(
        "function(n){ var a = Array.prototype.slice.call(arguments, 1);"
        f" return window.gmSteward ? window.gmSteward.enqueue(n, a, {json.dumps(idx)}) : null; }}",
        Output("stw-queued", "data"), Input("stw-save", "n_clicks"), *states, prevent_initial_call=True)
    # the server answered the save (stored, a repeat, or refused with a reason): off the outbox
    app.clientside_callback("function(m, k){ if (window.gmSteward && k) { window.gmSteward.ack(k); } return k; }",
                            Output("stw-ack", "data"), Input("stw-save-msg", "children"), State("stw-idem", "data"),
                            prevent_initial_call=True)
    # one tap from a stop (or a contact) to its visit form: the elder and the mode chosen, the form in view
    app.clientside_callback(
        "function(n){ var t = window.dash_clientside.callback_context.triggered_id;"
        " var nu = window.dash_clientside.no_update;"
        " if (!t || !(n || []).some(function(x){ return x; })) { return [nu, nu]; }"
        " if (window.gmSteward) { window.gmSteward.toForm(); } return [t.elder, t.mode]; }",
        Output("stw-elder", "value", allow_duplicate=True), Output("stw-mode", "value", allow_duplicate=True),
        Input({"type": "stw-rec", "elder": ALL, "mode": ALL}, "n_clicks"), prevent_initial_call=True)

    @app.server.get("/assets/gm-sw.js")  # under /assets/: public (no session), like the page's other scripts
    def _service_worker() -> Any:
        """The page's service worker (``service_worker.js``) for the scope ``/`` (``Service-Worker-Allowed``).

        Kept outside ``assets/``, whose scripts Dash loads into the page.
        """
        from flask import Response

        body = (Path(__file__).parent / "service_worker.js").read_text(encoding="utf-8")
        return Response(body, 200, mimetype="application/javascript",
                        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})

    @app.server.post("/gm-steward/visit")
    def _outbox_visit() -> Any:
        from gridmap.dashboard.ui import error_text

        body = request.get_json(silent=True)
        args = body.get("args") if isinstance(body, dict) else None
        if not isinstance(args, list) or len(args) != len(states):
            return jsonify(status="err", message="请求格式错误 / bad request"), 400
        key = args[idx["key"]]
        if not (isinstance(key, str) and 8 <= len(key) <= 80):
            return jsonify(status="err", message="缺少幂等键 / missing idempotency key"), 400
        try:
            out = save(1, *args)
        except Exception as exc:  # noqa: BLE001 - a malformed form: answered, not a stack trace
            return jsonify(status="err", message="未保存：" + error_text(exc)), 422
        msg = out[0] if isinstance(out, (list, tuple)) else out
        text = _text_of(msg)
        if "未保存" in text or "请选择" in text:
            return jsonify(status="err", message=text), 422
        return jsonify(status="ok", message=text, duplicate="已保存过" in text, version=data.version), 200
