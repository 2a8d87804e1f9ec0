"""The steward's day in the field (issue 18): the whole day on one phone-first page.

Pieces of the steward view (:mod:`gridmap.dashboard.steward`) kept here:

* :func:`day_contacts`: the day's phone and video contacts and remote-monitoring checks of a steward's elders
  (the remote requirements of :func:`gridmap.rules.requirements.weekly_requirements`, the same source as
  ``gridmap visits due``), with what to ask (the items the rules ``effective_answers`` require of the mode)
  and whether a visit of that elder was saved that day;
* :func:`stops_table` / :func:`contacts_block`: a stop in one or two lines at 390 px, with 44 px buttons:
  one-tap navigation (Amap GCJ-02, Baidu BD-09: :func:`gridmap.routing.routelist.nav_links`), ``tel:`` and the
  visit form one tap away (记录);
* :func:`clear_fields`: need to know — the assigned visit steward's own elders' full address and phones,
  decided on the server (:func:`gridmap.access.needtoknow.need_to_know`, audited);
* :func:`road_labels`: road names of the offline map near the day's route (OSM ``name`` of the road graph);
* :func:`day_store`: the day's list as kept in the browser (``localStorage``), shown without a connection.

The offline outbox (``assets/gridmap_steward.js`` and ``POST /gm-steward/visit``) is wired in
:func:`gridmap.dashboard.steward._register_outbox`.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date
from typing import Any

import pandas as pd
from dash import dcc, html

from gridmap.dashboard.data import DashboardData, current_user

__all__ = ["CONTACT_COLS", "ask_items", "clear_fields", "contacts_block", "day_contacts", "day_store", "done_today",
           "outbox_box", "road_labels", "stops_table", "stores"]

CONTACT_COLS = ["elder_id", "label", "phone", "tel", "kind", "mode", "priority", "deadline", "reasons", "asks",
                "done"]
#: Kinds of the day's remote items: (title, visit mode the form opens with).
CONTACT_KINDS = {"phone": ("电话/视频探访", "phone"), "daily_care": ("分散供养特困日常看护（电话）", "phone"),
                 "monitoring": ("远程监测查看", "remote_monitoring")}
#: Items asked by phone when the rules name none.
_DEFAULT_ASK = ("illness", "mood", "needs")
_BTN = "gm-tap"


def ask_items(rules: Any, mode: str) -> list[str]:
    """What to ask in a contact of ``mode``: the items the rules ``effective_answers`` require, in Chinese."""
    from gridmap.rules.visits import ANSWER_LABELS

    eff = getattr(rules, "effective_answers", None) or {}
    items = next((v for k, v in eff.items() if str(getattr(k, "value", k)) == mode), None)
    if items is None:
        items = _DEFAULT_ASK if mode != "remote_monitoring" else ()
    return ["老年人服务需求" if k == "needs" else ANSWER_LABELS.get(k, k) for k in items]


def done_today(data: DashboardData, elder_ids: list[int], day: date, *, in_home: bool) -> set[int]:
    """Elders of ``elder_ids`` with a visit saved for ``day`` (in-home ones, or any other mode)."""
    if not elder_ids:
        return set()
    v = data.inputs()[1]
    v = v[v["elder_id"].isin(elder_ids)]
    if v.empty:
        return set()
    same = pd.to_datetime(v["visited_on"]).dt.date == day
    home = v["mode"].astype(str) == "in_home"
    return {int(e) for e in v.loc[same & (home if in_home else ~home), "elder_id"]}


def day_contacts(data: DashboardData, steward_id: int, day: date, user: Any = None) -> pd.DataFrame:
    """The day's phone/video contacts and remote-monitoring checks of a steward's elders (see the module docstring).

    One row per elder: the week's remote requirements (visits, and the 分散供养特困 daily care) still open
    before ``day`` — a daily-care elder every day — and those done on ``day`` (``done``). An elder with an
    installed health monitor (健康监测设备) is a remote-monitoring check, any other a phone/video contact.
    Names and phones masked (:func:`clear_fields` unmasks the assigned steward's own).
    """
    from sqlalchemy import select

    from gridmap.domain.masking import mask_name, mask_phone
    from gridmap.rules.requirements import (
        REASON_LABELS,
        parse_week,
        week_of,
        weekly_requirements,
    )
    from gridmap.rules.store import read_events
    from gridmap.store.models import Elder

    user = user or current_user()
    ids = data.steward_elder_ids(steward_id, user)
    if not ids:
        return pd.DataFrame(columns=CONTACT_COLS)
    week = week_of(day)
    monday, sunday = parse_week(week)
    facts = data.facts(day, ids)
    req = weekly_requirements(facts, week, data.rules, read_events(data.engine, monday, sunday))
    req = req[(req["mode"] == "remote") & (req["by"] == "steward") & (req["count"] > 0)]
    if req.empty:
        return pd.DataFrame(columns=CONTACT_COLS)
    v = data.inputs()[1]
    v = v[v["elder_id"].isin(ids) & (v["mode"].astype(str) != "in_home")]
    on = pd.to_datetime(v["visited_on"]).dt.date
    before = v[(on >= monday) & (on < day)].groupby("elder_id").size()
    today = {int(e) for e in v.loc[on == day, "elder_id"]}
    elders = data.inputs()[0].set_index("elder_id")
    rows: dict[int, dict[str, Any]] = {}
    for r in req.itertuples(index=False):
        eid = int(r.elder_id)
        daily = r.kind == "daily_care"
        if not daily and int(r.count) - int(before.get(eid, 0)) <= 0 and eid not in today:
            continue
        devices = elders["devices"].get(eid) if "devices" in elders.columns and eid in elders.index else None
        monitored = isinstance(devices, (list, tuple, set)) and "health_monitor" in devices
        kind = "monitoring" if monitored else ("daily_care" if daily else "phone")
        row = rows.setdefault(eid, {"elder_id": eid, "kind": kind, "priority": int(r.priority),
                                    "deadline": r.deadline, "reasons": []})
        if kind == "daily_care" or row["kind"] == "daily_care":
            row["kind"] = "monitoring" if monitored else "daily_care"
        row["priority"] = max(row["priority"], int(r.priority))
        row["deadline"] = min(row["deadline"], r.deadline)
        row["reasons"] += [REASON_LABELS.get(x, x) for x in r.reasons if x not in ("weekly_min",)]
    if not rows:
        return pd.DataFrame(columns=CONTACT_COLS)
    with data.engine.connect() as conn:
        who = {i: (n, p) for i, n, p in conn.execute(
            select(Elder.id, Elder.name, Elder.phone).where(Elder.id.in_(sorted(rows))))}
    out = []
    for eid, row in rows.items():
        n, p = who.get(eid, (None, None))
        mode = CONTACT_KINDS[row["kind"]][1]
        out.append({**row, "label": mask_name(n) or str(eid), "phone": mask_phone(p) or "—", "tel": None,
                    "mode": mode, "reasons": "；".join(dict.fromkeys(row["reasons"])) or "每周探访",
                    "asks": "、".join(ask_items(data.rules, mode)) or "查看设备数据与告警", "done": eid in today})
    df = pd.DataFrame(out, columns=CONTACT_COLS)
    order = {"phone": 0, "daily_care": 1, "monitoring": 2}
    return df.sort_values(["kind", "priority", "deadline", "elder_id"],
                          key=lambda s: s.map(order) if s.name == "kind" else (-s if s.name == "priority" else s),
                          kind="stable").reset_index(drop=True)


def clear_fields(data: DashboardData, user: Any, stops: pd.DataFrame, contacts: pd.DataFrame,
                 view: str = "workbench") -> tuple[pd.DataFrame, pd.DataFrame, set[int]]:
    """The stops and contacts with the full address and phones of the user's own elders (need to know).

    Only when the user is those elders' visit steward (:func:`gridmap.access.needtoknow.need_to_know`,
    which audits each elder shown); every other user gets the frames as they are (masked).
    """
    from gridmap.access.needtoknow import need_to_know, own_visit_steward

    if own_visit_steward(user) is None:
        return stops, contacts, set()
    ids = [int(e) for e in stops["elder_id"]] + [int(e) for e in contacts["elder_id"]]
    try:
        from gridmap.dashboard.auth import client_address

        client = client_address()
    except Exception:  # noqa: BLE001 - outside a request
        client = None
    clear = need_to_know(data.engine, user, ids, view, client)
    if not clear:
        return stops, contacts, set()
    stops = stops.copy()
    contacts = contacts.copy()
    if not stops.empty:
        stops["address"] = [clear[int(e)]["address"] or a if int(e) in clear else a
                            for e, a in zip(stops["elder_id"], stops["address"], strict=True)]
        stops["phone"] = [clear[int(e)]["phone"] if int(e) in clear else None for e in stops["elder_id"]]
        stops["contact_phone"] = [clear[int(e)]["first_contact_phone"] if int(e) in clear else None
                                  for e in stops["elder_id"]]
    if not contacts.empty:
        contacts["tel"] = [clear[int(e)]["phone"] if int(e) in clear else None for e in contacts["elder_id"]]
        contacts["phone"] = [t or p for t, p in zip(contacts["tel"], contacts["phone"], strict=True)]
        contacts["contact_phone"] = [clear[int(e)]["first_contact_phone"] if int(e) in clear else None
                                     for e in contacts["elder_id"]]
    return stops, contacts, set(clear)


def _tel(number: str | None) -> str | None:
    digits = "".join(ch for ch in str(number or "") if ch.isdigit() or ch == "+")
    return f"tel:{digits}" if len(digits) >= 5 else None


def _rec_button(eid: int, mode: str, done: bool) -> html.Button:
    return html.Button("已记录" if done else "记录", id={"type": "stw-rec", "elder": int(eid), "mode": mode},
                       className=_BTN + (" done" if done else " rec"), title="打开探访记录表（已选好老人和方式）")


def common_address_prefix(addresses: list[str]) -> str:
    """The part of the day's addresses all stops share (北京市海淀区…街道…社区), cut after a whole area name.

    On a phone it is said once above the stops, so that a stop's own line holds what finds the door (building,
    unit, flat); the printed sheet keeps every address whole. Empty when the stops share no whole area name or
    a stop's address would be nothing but the prefix.
    """
    texts = [str(a) for a in addresses if isinstance(a, str) and a]
    if not texts:
        return ""
    common = os.path.commonprefix(texts)
    best = ""
    for m in re.finditer(r"(?:社区|村)(?:居委会|村委会)?|街道|镇|地区|区", common):
        best = common[:m.end()]
    if any(len(t) <= len(best) for t in texts):
        return ""
    return best


def stops_table(stops: pd.DataFrame, follow: dict[int, str], travel_mode: str, done: set[int]) -> html.Div:
    """The in-home stops in route order: one row each, two lines of text, 44 px buttons (navigate, record).

    The area all stops share is said once above them (on a phone a stop's first line is the name and what
    finds the door); each row still carries its whole address, shown on paper.
    """
    from gridmap.dashboard.fmt import fmt_minutes
    from gridmap.routing.routelist import nav_links

    prefix = common_address_prefix(list(stops["address"])) if "address" in stops else ""
    body = []
    for r in stops.itertuples(index=False):
        eid = int(r.elder_id)
        nav = nav_links(float(r.lon), float(r.lat), str(r.label), travel_mode)
        phone = getattr(r, "phone", None)
        fc = getattr(r, "contact_phone", None)
        addr = str(r.address)
        own = addr[len(prefix):] if prefix and addr.startswith(prefix) else addr
        line1 = [html.B(r.label), " ",
                 html.Span(addr[:len(addr) - len(own)], className="gm-addr-pre"),
                 html.Span(own, className="gm-addr")]
        line2 = [f"{r.arrival}–{r.depart}", f" · 路上{fmt_minutes(r.walk_minutes)}",
                 f" · 时间窗 {r.window}" if r.window != "全天" else "", " · ", html.Span(r.check, className="gm-check")]
        if follow.get(eid):
            line2 += [" · ", html.Span(follow[eid], className="gm-followup", style={"color": "#b00020"})]
        tels = []
        if isinstance(phone, str) and _tel(phone):  # the number itself is printed (data-n, print CSS)
            tels.append(html.A("☎本人", href=_tel(phone), className="gm-tel", **{"data-n": phone}))
        if isinstance(fc, str) and _tel(fc):
            tels.append(html.A("☎联系人", href=_tel(fc), className="gm-tel", **{"data-n": fc}))
        body.append(html.Tr([
            html.Td(r.order, className="gm-n"),
            html.Td([html.Div(line1, className="gm-l1"), html.Div(line2 + ([" "] + tels if tels else []),
                                                                   className="gm-l2")], className="gm-main"),
            html.Td([html.A("高德", href=nav["amap"], target="_blank", rel="noopener", className=_BTN + " nav",
                            title="高德地图步行导航", **{"data-gcj02": f"{nav['gcj02'][0]:.7f},{nav['gcj02'][1]:.7f}"}),
                     html.A("百度", href=nav["baidu"], className=_BTN + " nav baidu", title="百度地图步行导航",
                            **{"data-web": nav["baidu_web"]}),
                     _rec_button(eid, "in_home", eid in done)], className="gm-act"),
        ], className="gm-stop" + (" done" if eid in done else ""), id=f"stw-stop-{eid}"))
    table = html.Table([html.Tbody(body)], className="gm-route-table", id="stw-route-table")
    if not prefix:
        return html.Div([table])
    return html.Div([html.Div(["地址：", html.B(prefix), " …"], className="gm-addr-common", id="stw-addr-common"),
                     table])


def contacts_block(contacts: pd.DataFrame) -> html.Div:
    """The day's phone/video contacts, then the remote-monitoring checks: tel: link, what to ask, record."""
    parts: list[Any] = []
    for kind in ("phone", "daily_care", "monitoring"):
        sub = contacts[contacts["kind"] == kind]
        if sub.empty:
            continue
        title = CONTACT_KINDS[kind][0]
        rows = []
        for r in sub.itertuples(index=False):
            tel = _tel(r.tel) if isinstance(r.tel, str) else None
            call = (html.A("拨打", href=tel, className=_BTN + " tel") if tel
                    else html.Span("", className="gm-tap-gap"))
            rows.append(html.Tr([
                html.Td("✓" if r.done else "·", className="gm-n"),
                html.Td([html.Div([html.B(r.label), f"（{r.elder_id}）", " ",
                                   html.Span(r.phone, className="gm-phone")], className="gm-l1"),
                         html.Div(["问：", r.asks, " · ", html.Span(r.reasons, className="gm-check")],
                                  className="gm-l2")], className="gm-main"),
                html.Td([call, _rec_button(int(r.elder_id), r.mode, bool(r.done))], className="gm-act"),
            ], className="gm-stop" + (" done" if r.done else ""), id=f"stw-contact-{int(r.elder_id)}"))
        n_done = int(sub["done"].sum())
        parts.append(html.Div([
            html.H4(f"{title} · {len(sub)} 人" + (f"（已完成 {n_done}）" if n_done else ""), className="gm-sec"),
            html.Table([html.Tbody(rows)], className="gm-route-table gm-contacts", id=f"stw-contacts-{kind}"),
        ]))
    if not parts:
        parts = [html.Div("当日没有待完成的电话、视频探访或远程监测。", className="gm-hint")]
    return html.Div(parts, id="stw-contacts")


def road_labels(stops: pd.DataFrame, base: tuple[float, float] | None, basemap: Any,
                limit: int = 60) -> dict[str, Any]:
    """Road names near the day's route for the offline map: one label per named road (OSM ``name``).

    Within the stops' box (plus about 300 m), each named road's longest merged piece gets one point at its
    middle with the road's angle (the label is drawn along it). Empty with online tiles (they have their own).
    """
    from gridmap.dashboard import map as gm

    empty: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if basemap.url or stops.empty:
        return empty
    G = gm.road_graph()
    if G is None:
        return empty
    import shapely

    xs = list(stops["lon"]) + ([base[0]] if base else [])
    ys = list(stops["lat"]) + ([base[1]] if base else [])
    box = shapely.box(min(xs) - 0.004, min(ys) - 0.003, max(xs) + 0.004, max(ys) + 0.003)
    by_name: dict[str, list[Any]] = {}
    for u, v, d in G.edges(data=True):
        name = d.get("name")
        name = name[0] if isinstance(name, list) and name else name
        if not isinstance(name, str) or not name.strip():
            continue
        g = d.get("geometry")
        if g is None:
            g = shapely.LineString([(G.nodes[u]["x"], G.nodes[u]["y"]), (G.nodes[v]["x"], G.nodes[v]["y"])])
        if not g.intersects(box):
            continue
        by_name.setdefault(name.strip(), []).append(g.intersection(box))
    feats = []
    for name, parts in by_name.items():
        merged = shapely.line_merge(shapely.unary_union(parts))
        lines = list(getattr(merged, "geoms", [merged]))
        lines = [ln for ln in lines if ln.geom_type == "LineString" and not ln.is_empty]
        if not lines:
            continue
        best = max(lines, key=lambda ln: ln.length)
        if best.length < 0.0012:  # about 100 m: too short to carry a name
            continue
        mid = best.interpolate(0.5, normalized=True)
        a = best.interpolate(0.45, normalized=True)
        b = best.interpolate(0.55, normalized=True)
        k = math.cos(math.radians(mid.y))
        angle = math.degrees(math.atan2(b.y - a.y, (b.x - a.x) * k))
        if angle > 90:
            angle -= 180
        elif angle < -90:
            angle += 180
        x, y = mid.x, mid.y
        if basemap.gcj02:
            from gridmap.layers.crs import wgs84_to_gcj02

            x, y = (float(t) for t in wgs84_to_gcj02(x, y))
        feats.append((best.length, {"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(x, 6),
                                                                                                    round(y, 6)]},
                                    "properties": {"name": name, "angle": round(-angle, 1)}}))
    feats.sort(key=lambda t: -t[0])
    return {"type": "FeatureCollection", "features": [f for _, f in feats[:limit]]}


def day_store(steward_id: int, day: date, stops: pd.DataFrame, contacts: pd.DataFrame, note: str) -> dict[str, Any]:
    """The day's list as kept in the browser (``localStorage``), to show when the page has no connection."""
    return {"steward_id": int(steward_id), "day": day.isoformat(), "note": note,
            "stops": [{"order": int(r.order), "elder_id": int(r.elder_id), "label": str(r.label),
                       "address": str(r.address), "time": f"{r.arrival}–{r.depart}", "check": str(r.check)}
                      for r in stops.itertuples(index=False)],
            "contacts": [{"elder_id": int(r.elder_id), "label": str(r.label), "phone": str(r.phone),
                          "kind": CONTACT_KINDS[r.kind][0], "asks": str(r.asks), "done": bool(r.done)}
                         for r in contacts.itertuples(index=False)]}


def outbox_box() -> html.Div:
    """Where the page shows the visits waiting to be sent and, without a server, the day's list kept in the browser
    (both filled by ``assets/gridmap_steward.js``)."""
    return html.Div([
        html.Div([html.Span(id="stw-outbox-text"), html.Ul(id="stw-outbox-list")], id="stw-outbox",
                 className="gm-outbox", style={"display": "none"}),
        # the day's list kept in the browser, shown when the server cannot be reached (gridmap_steward.js)
        html.Div(id="stw-offline-day", className="gm-offline-day", style={"display": "none"}),
    ])


def stores() -> list[Any]:
    """The page's stores of the field day: the day kept in the browser, the phone's position, the save's ack."""
    return [dcc.Store(id="stw-day-cache", storage_type="local"), dcc.Store(id="stw-pos"),
            dcc.Store(id="stw-ack"), dcc.Store(id="stw-queued")]
