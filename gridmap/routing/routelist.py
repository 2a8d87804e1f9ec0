"""A steward's daily route list from a stored weekly plan: ordered stops, what to check, a road map; HTML, PDF, GPX, GeoJSON.

:func:`load_route_list` reads one steward's stored run files (see
:mod:`gridmap.routing.district`) and the register, and returns a
:class:`RouteList`: the day's stops in order with arrival/start/end times and
time windows, the elder's **masked** name and address, what to check (the
reasons of the visit requirement, :data:`gridmap.rules.requirements.REASON_LABELS`,
and the worse/unsafe answers and open hazards of the last visit), and the
first contact (phone masked unless ``unmask=True``, a permission the caller
checks and audits). The route is drawn along the roads (the plan's geometry,
else :func:`gridmap.layers.travel.route_geometry` leg by leg).

Renderers (pure functions of the :class:`RouteList`): :func:`route_map_svg`
(numbered stops over the nearby roads, OSM attribution), :func:`to_html`
(self-contained A4 print view in Chinese), :func:`write_pdf` (reportlab, CJK
font), :func:`to_gpx` and :func:`to_geojson` for a phone; :func:`write_route_list`
picks one by the file suffix.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gridmap._errors import GridmapError, ValidationError
from gridmap.domain.masking import mask_address, mask_name, mask_phone
from gridmap.routing.plan import parse_plan
from gridmap.routing.problem import format_time

ATTRIBUTION = "© OpenStreetMap contributors"
_MODE_LABELS = {"walk": "步行", "bike": "自行车", "ebike": "电动自行车", "car": "汽车"}
_KIND_LABELS = {"visit": "探访管家", "service": "服务管家"}
#: Requirement reasons not worth printing as something to check (every willing elder has them).
_GENERIC_REASONS = {"weekly_min"}


@dataclass
class RouteStop:
    """One stop of the day's route (times ``"HH:MM"``)."""

    seq: int
    visit: str
    elder_id: int | None
    name: str
    address: str
    lon: float
    lat: float
    arrival: str
    start: str
    end: str
    service_minutes: int
    priority: int
    time_windows: list[list[str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    contact_name: str | None = None
    contact_relation: str | None = None
    contact_phone: str | None = None
    deadline: str | None = None
    #: the elder's own phone (masked unless the viewer needs to know it)
    phone: str | None = None
    #: shown in clear because the viewer is the elder's visit steward (issue 18, need to know)
    need_to_know: bool = False


@dataclass
class RouteList:
    """A steward's route for one day."""

    week: str
    day: str
    steward_code: str
    steward_name: str
    steward_kind: str
    mode: str
    shift: list[str]
    base: tuple[float, float]
    stops: list[RouteStop]
    travel_seconds: float
    distance_metres: float
    work_minutes: float
    geometry: list[list[float]]
    geometry_estimated: bool = False
    legs: list[tuple[list[list[float]], bool]] = field(default_factory=list)
    unmasked: bool = False
    unassigned_week: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------ navigation


#: Travel modes of the map apps' URIs (Amap ``mode``, Baidu ``mode``) by the steward's travel mode.
_NAV_MODES = {"walk": ("walk", "walking"), "bike": ("ride", "riding"), "ebike": ("ride", "riding"),
              "car": ("car", "driving")}


def nav_links(lon: float, lat: float, name: str, mode: str = "walk") -> dict[str, Any]:
    """One-tap navigation to a stop in the map apps stewards use, from the stored WGS-84 position.

    Amap (高德) takes GCJ-02 and Baidu (百度) BD-09, converted with :mod:`gridmap.layers.crs`:

    * ``amap``: the Amap URI API, ``https://uri.amap.com/navigation?to=lon,lat,name&mode=walk
      &coordinate=gaode&callnative=1`` (opens the app when installed, else the web page);
    * ``baidu``: ``baidumap://map/direction?destination=latlng:lat,lng|name:…&coord_type=bd09ll
      &mode=walking&src=…`` (the app);
    * ``baidu_web``: ``https://api.map.baidu.com/direction?…&output=html`` (the fallback in a browser).

    Also returned: ``gcj02`` and ``bd09`` as ``(lon, lat)``. Walking for a walking steward, riding for a
    (e-)bike, driving for a car. ``name`` is URL-encoded (a masked name is fine: the coordinates lead).
    """
    from urllib.parse import quote

    from gridmap.layers.crs import wgs84_to_bd09, wgs84_to_gcj02

    glon, glat = (float(x) for x in wgs84_to_gcj02(float(lon), float(lat)))
    blon, blat = (float(x) for x in wgs84_to_bd09(float(lon), float(lat)))
    amode, bmode = _NAV_MODES.get(mode, _NAV_MODES["walk"])
    label = quote(str(name or "探访对象").replace(",", " ").replace("|", " "), safe="")
    amap = (f"https://uri.amap.com/navigation?to={glon:.6f},{glat:.6f},{label}&mode={amode}"
            f"&coordinate=gaode&callnative=1&src=gridmap")
    dest = f"latlng:{blat:.6f},{blon:.6f}|name:{label}"
    baidu = f"baidumap://map/direction?destination={dest}&coord_type=bd09ll&mode={bmode}&src=gridmap"
    baidu_web = (f"https://api.map.baidu.com/direction?destination={dest}&coord_type=bd09ll&mode={bmode}"
                 f"&region=%E5%8C%97%E4%BA%AC&output=html&src=gridmap")
    return {"amap": amap, "baidu": baidu, "baidu_web": baidu_web, "gcj02": (glon, glat), "bd09": (blon, blat)}


# ------------------------------------------------------------------ load


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GridmapError(f"cannot read {path}: {exc}", f"无法读取 {path}：{exc}") from exc


def _hm(seconds: float) -> str:
    """Seconds since 00:00 as ``"HH:MM"`` rounded to the minute (printed lists)."""
    return format_time(60 * round(seconds / 60))


def _checks(reasons: list[str], facts: Any) -> list[str]:
    from gridmap.rules.facts import HEALTH_ANSWERS, SAFETY_ANSWERS
    from gridmap.rules.requirements import REASON_LABELS
    from gridmap.rules.visits import ANSWER_FIELDS, ANSWER_LABELS

    out = [REASON_LABELS.get(r, r) for r in reasons if r not in _GENERIC_REASONS]
    if facts is not None:
        for k, v in sorted((facts.last_answers or {}).items()):
            bad = (k in HEALTH_ANSWERS and v in ("worse", "serious")) or (k in SAFETY_ANSWERS and v in ("unsafe",
                                                                                                          "fairly_safe"))
            if bad:
                try:
                    label = ANSWER_FIELDS[k](v).label
                except (ValueError, KeyError, AttributeError):
                    label = v
                when = f"（{facts.last_visit_on:%m-%d}）" if facts.last_visit_on else ""
                out.append(f"上次探访{when}{ANSWER_LABELS.get(k, k)}：{label}，请复查")
        if facts.open_hazards:
            out.append(f"未整改隐患 {facts.open_hazards} 处，请核查整改")
    return list(dict.fromkeys(out))


def load_route_list(
    engine: Engine | None,
    plan_dir: str | Path,
    steward: str,
    day: str | dt.date,
    *,
    unmask_as: Any = None,
    reason: str | None = None,
    graph: Any = None,
    draw_roads: bool = True,
) -> RouteList:
    """The route list of ``steward`` on ``day`` from a stored run.

    Parameters
    ----------
    engine
        Database of the register (names, addresses, first contacts, last visit);
        None to list visit ids only (tests of stored plans without a register).
    plan_dir
        A run directory of :func:`gridmap.routing.district.plan_week`.
    steward
        Steward code (the directory name).
    day
        The day (ISO date).
    unmask_as, reason
        A signed-in :class:`gridmap.access.users.User` and the reason: show the first
        contact's full phone through :func:`gridmap.access.audit.unmask` (checks the
        permission and the area, writes the audit log; raises ``PermissionDenied``).
        Default: masked. Names and addresses stay masked. When the user is the visit steward
        (探访管家) of a stop's elder, that elder's full address, phone and first contact's phone are
        shown without a reason (need to know, :func:`gridmap.access.needtoknow.need_to_know`, audited
        with ``view`` ``route_list``); other users' masking is unchanged.
    graph
        Road graph of the steward's mode for drawing (default: the cached graph).
    draw_roads
        False to draw straight legs (no road network needed).

    Returns
    -------
    RouteList

    Raises
    ------
    ValidationError
        When the steward has no stored plan or no route that day.
    """
    day_s = day.isoformat() if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)).isoformat()
    d = Path(plan_dir) / steward
    if not (d / "plan.json").is_file():
        raise ValidationError(f"no stored plan for steward {steward} in {plan_dir}",
                              f"{plan_dir} 中没有管家 {steward} 的计划", field="steward", value=steward,
                              code="no_plan")
    problem = _read(d / "problem.json")
    meta = _read(d / "meta.json") if (d / "meta.json").is_file() else {"visits": {}, "steward": {}}
    plan = parse_plan(d / "plan.json")
    st = problem["stewards"][0]
    route = next((r for r in plan.routes if r.day == day_s and r.steward == st["id"]), None)
    if route is None:
        days = sorted({r.day for r in plan.routes})
        raise ValidationError(f"steward {steward} has no route on {day_s} (routes on: {', '.join(days)})",
                              f"管家 {steward} 在 {day_s} 没有路线（有路线的日期：{', '.join(days)}）",
                              field="day", value=day_s, code="no_route")
    visits = {v["id"]: v for v in problem["visits"]}
    vmeta = meta.get("visits", {})
    ids = [int(vmeta.get(s.visit, {}).get("elder_id", s.visit)) for s in route.stops
           if str(vmeta.get(s.visit, {}).get("elder_id", s.visit)).isdigit()]
    people = _people(engine, ids) if engine is not None else {}
    facts = {}
    if engine is not None and ids:
        from gridmap.rules.requirements import parse_week
        from gridmap.rules.store import read_facts

        monday = parse_week(meta["week"])[0] if meta.get("week") else dt.date.fromisoformat(problem["days"][0])
        facts = {f.id: f for f in read_facts(engine, monday, elder_ids=ids, programme_only=False)}
    clear: dict[int, dict[str, Any]] = {}
    if unmask_as is not None and engine is not None and ids:
        from gridmap.access.needtoknow import need_to_know

        clear = need_to_know(engine, unmask_as, ids, "route_list", client="cli")
    stops = []
    for i, s in enumerate(route.stops, start=1):
        v = visits[s.visit]
        m = vmeta.get(s.visit, {})
        eid = int(m.get("elder_id", s.visit)) if str(m.get("elder_id", s.visit)).isdigit() else None
        who = people.get(eid, {})
        phone = mask_phone(who.get("contact_phone"))
        own = clear.get(eid) if eid is not None else None
        if own is not None:
            phone = own.get("first_contact_phone")
        elif unmask_as is not None and eid is not None and who.get("contact_phone"):
            from gridmap.access.audit import unmask

            phone = unmask(engine, unmask_as, eid, ["first_contact_phone"], reason, client="cli")[
                "first_contact_phone"]
        stops.append(RouteStop(
            seq=i, visit=s.visit, elder_id=eid,
            name=mask_name(who.get("name")) or f"对象 {s.visit}",
            address=(own.get("address") if own is not None else mask_address(who.get("address"))) or "",
            lon=float(v["location"][0]), lat=float(v["location"][1]),
            arrival=_hm(s.arrival), start=_hm(s.start), end=_hm(s.end),
            service_minutes=int(v.get("service_minutes", 0)), priority=int(v.get("priority", 3)),
            time_windows=[[str(a), str(b)] for a, b in v.get("time_windows", [])],
            checks=_checks(list(m.get("reasons", [])), facts.get(eid)),
            contact_name=mask_name(who.get("contact_name")), contact_relation=who.get("contact_relation"),
            contact_phone=phone, deadline=m.get("deadline"),
            phone=own.get("phone") if own is not None else mask_phone(who.get("phone")), need_to_know=own is not None,
        ))
    base = (float(st["start"][0]), float(st["start"][1]))
    end = (float(st.get("end", st["start"])[0]), float(st.get("end", st["start"])[1]))
    legs = _geometry(route.geometry, [base, *[(s.lon, s.lat) for s in stops], end],
                                    st.get("mode", "walk"), graph, draw_roads)
    smeta = meta.get("steward", {})
    return RouteList(
        week=meta.get("week", ""), day=day_s, steward_code=st["id"], steward_name=smeta.get("name") or "",
        steward_kind=_KIND_LABELS.get(smeta.get("kind", ""), smeta.get("kind", "")), mode=st.get("mode", "walk"),
        shift=[str(x) for x in st.get("shift", [])], base=base, stops=stops,
        travel_seconds=route.travel_seconds, distance_metres=route.distance_metres, work_minutes=route.work_minutes,
        geometry=_join(legs), geometry_estimated=any(e for _, e in legs), legs=legs, unmasked=unmask_as is not None,
        unassigned_week=[{"visit": u.visit, "occurrences": u.occurrences, "reason": u.reason, "fallback": u.fallback}
                         for u in plan.unassigned],
    )


def _people(engine: Engine, ids: list[int]) -> dict[int, dict[str, Any]]:
    from gridmap.store.models import Elder, FirstContact

    q = (select(Elder.id, Elder.name, Elder.address, Elder.phone, FirstContact.name.label("cn"), FirstContact.relation,
                FirstContact.phone.label("cp"), FirstContact.valid)
         .outerjoin(FirstContact, FirstContact.elder_id == Elder.id).where(Elder.id.in_(ids)))
    with engine.connect() as conn:
        return {r.id: {"name": r.name, "address": r.address, "phone": r.phone,
                       "contact_name": r.cn if r.valid is not False else None,
                       "contact_relation": r.relation if r.valid is not False else None,
                       "contact_phone": r.cp if r.valid is not False else None}
                for r in conn.execute(q)}


def _join(legs: list[tuple[list[list[float]], bool]]) -> list[list[float]]:
    coords: list[list[float]] = []
    for c, _ in legs:
        coords += c if not coords or coords[-1] != c[0] else c[1:]
    return coords if len(coords) >= 2 else coords * 2


def _geometry(given: dict | None, points: list[tuple[float, float]], mode: str, graph: Any,
              draw_roads: bool) -> list[tuple[list[list[float]], bool]]:
    """Legs of the route (coordinates, estimated): the plan's geometry, else drawn along the roads, else straight."""
    if given and given.get("type") == "LineString" and len(given.get("coordinates", [])) >= 2:
        return [([[float(x), float(y)] for x, y in given["coordinates"]], False)]
    if draw_roads and graph is None:
        try:
            from gridmap.routing.district import load_graphs

            graph = load_graphs({mode}).get(mode)
        except GridmapError:
            graph = None
    legs: list[tuple[list[list[float]], bool]] = []
    for (xa, ya), (xb, yb) in itertools.pairwise(points):
        if (xa, ya) == (xb, yb):
            continue
        if draw_roads and graph is not None:
            from gridmap.layers.travel import route_geometry

            try:
                leg = route_geometry(graph, xa, ya, xb, yb)
                legs.append(([[float(x), float(y)] for x, y in leg.geometry.coords], bool(leg.estimated)))
                continue
            except GridmapError:
                pass
        legs.append(([[xa, ya], [xb, yb]], True))
    return legs or [([list(points[0]), list(points[-1])], True)]


# ------------------------------------------------------------------ map


def _roads_near(graph: Any, bbox: tuple[float, float, float, float]) -> list[Any]:
    import shapely

    if graph is None:
        return []
    box = shapely.box(*bbox)
    geoms = [d["geometry"] for _, _, d in graph.edges(data=True) if "geometry" in d]
    if not geoms:
        return []
    mask = shapely.intersects(geoms, box)
    return [g for g, m in zip(geoms, mask) if m]


def _figure(rl: RouteList, graph: Any, width_in: float, height_in: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p[0] for p in rl.geometry] + [s.lon for s in rl.stops] + [rl.base[0]]
    ys = [p[1] for p in rl.geometry] + [s.lat for s in rl.stops] + [rl.base[1]]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad_x = max((x1 - x0) * 0.08, 0.002)
    pad_y = max((y1 - y0) * 0.08, 0.0015)
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    # widen the shorter side so the map fills the frame (equal scale in metres both ways)
    k = math.cos(math.radians((y0 + y1) / 2))
    want = width_in / height_in
    w_m, h_m = (x1 - x0) * k, (y1 - y0)
    if w_m / h_m < want:
        extra = (h_m * want / k - (x1 - x0)) / 2
        x0, x1 = x0 - extra, x1 + extra
    else:
        extra = ((x1 - x0) * k / want - (y1 - y0)) / 2
        y0, y1 = y0 - extra, y1 + extra
    bbox = (x0, y0, x1, y1)
    if graph is None:
        try:
            from gridmap.routing.district import load_graphs

            graph = load_graphs({rl.mode}).get(rl.mode)
        except Exception:  # noqa: BLE001 - the map is drawn without roads then
            graph = None
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=100)
    for g in _roads_near(graph, bbox):
        c = list(g.coords)
        ax.plot([p[0] for p in c], [p[1] for p in c], color="#c8c8c8", lw=0.7, zorder=1)
    for coords, est in rl.legs or [(rl.geometry, rl.geometry_estimated)]:
        ax.plot([p[0] for p in coords], [p[1] for p in coords], color="#1f5fbf", lw=2.4, alpha=0.85, zorder=2,
                ls=(0, (3, 2)) if est else "-")
    ax.scatter([rl.base[0]], [rl.base[1]], marker="D", s=90, color="#d62728", zorder=4, edgecolors="white")
    for s in rl.stops:
        ax.scatter([s.lon], [s.lat], s=260, color="#ff7f0e" if s.priority >= 4 else "#2ca02c", zorder=5,
                   edgecolors="white", linewidths=1.2)
        ax.annotate(str(s.seq), (s.lon, s.lat), ha="center", va="center", fontsize=9, color="white",
                    weight="bold", zorder=6)
    ax.set_xlim(bbox[0], bbox[2])
    ax.set_ylim(bbox[1], bbox[3])
    ax.set_aspect(1.0 / math.cos(math.radians((bbox[1] + bbox[3]) / 2)))
    ax.set_xticks([])
    ax.set_yticks([])
    # scale bar
    m_per_deg = 111_320 * math.cos(math.radians((bbox[1] + bbox[3]) / 2))
    span_m = (bbox[2] - bbox[0]) * m_per_deg
    bar = next(b for b in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if b >= span_m / 6)
    bx, by = bbox[0] + (bbox[2] - bbox[0]) * 0.04, bbox[1] + (bbox[3] - bbox[1]) * 0.05
    ax.plot([bx, bx + bar / m_per_deg], [by, by], color="black", lw=2.5, zorder=7)
    ax.text(bx, by + (bbox[3] - bbox[1]) * 0.015, f"{bar} m" if bar < 1000 else f"{bar // 1000} km", fontsize=8,
            zorder=7)
    ax.text(0.995, 0.005, ATTRIBUTION, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            color="#333333", backgroundcolor=(1, 1, 1, 0.7), zorder=8)
    fig.tight_layout(pad=0.2)
    return fig


def route_map_svg(rl: RouteList, *, graph: Any = None, width_in: float = 7.0, height_in: float = 5.6) -> str:
    """The day's route as an SVG map: nearby roads, the route, the base (◆) and numbered stops, OSM attribution.

    Parameters
    ----------
    rl
        The route list.
    graph
        Road graph to draw the nearby roads from (default: the cached graph of the mode; none if unavailable).
    width_in, height_in
        Size in inches.
    """
    import matplotlib.pyplot as plt

    fig = _figure(rl, graph, width_in, height_in)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.find("<svg"):]


def route_map_png(rl: RouteList, *, graph: Any = None, width_in: float = 7.0, height_in: float = 5.6,
                  dpi: int = 200) -> bytes:
    """The same map as :func:`route_map_svg` as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = _figure(rl, graph, width_in, height_in)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------ HTML


_CSS = """
@page { size: A4; margin: 12mm; }
body { font-family: "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Microsoft YaHei", "SimHei", sans-serif;
       font-size: 10.5pt; color: #111; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 16pt; margin: 0 0 2mm 0; }
.meta { display: flex; flex-wrap: wrap; gap: 2mm 6mm; margin-bottom: 3mm; font-size: 10pt; }
.map { border: 1px solid #999; margin-bottom: 3mm; text-align: center; }
.map svg { width: 100%; height: auto; max-height: 120mm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #888; padding: 1.2mm 1.6mm; vertical-align: top; }
th { background: #e8eef7; font-weight: bold; }
tr { page-break-inside: avoid; }
td.n { text-align: center; font-weight: bold; width: 7mm; }
td.t { white-space: nowrap; width: 22mm; }
.hi { color: #b35900; font-weight: bold; }
ul { margin: 0; padding-left: 4mm; }
.note { font-size: 8.5pt; color: #555; margin-top: 2mm; }
.sig { margin-top: 6mm; display: flex; gap: 30mm; }
@media print { .noprint { display: none; } }
"""


def to_html(rl: RouteList, *, graph: Any = None, map_svg: str | None = None) -> str:
    """A self-contained print view (Chinese, A4) of the route list, with the map inline."""
    e = html.escape
    svg = map_svg if map_svg is not None else route_map_svg(rl, graph=graph)
    rows = []
    for s in rl.stops:
        tw = "；".join(f"{a}–{b}" for a, b in s.time_windows) or "不限"
        checks = "".join(f"<li>{e(c)}</li>" for c in s.checks) or "<li>常规探访（按探访记录表逐项填写）</li>"
        contact = "—"
        if s.contact_phone or s.contact_name:
            contact = e(" ".join(x for x in (s.contact_name, f"（{s.contact_relation}）" if s.contact_relation else "",
                                             s.contact_phone) if x))
        if s.phone:
            contact = f"本人 {e(s.phone)}<br>" + contact
        prio = f'<span class="hi">优先级 {s.priority}</span>' if s.priority >= 4 else f"优先级 {s.priority}"
        rows.append(
            f"<tr><td class='n'>{s.seq}</td><td class='t'>到达 {e(s.arrival)}<br>开始 {e(s.start)}<br>结束 {e(s.end)}"
            f"<br><small>时间窗 {e(tw)}</small></td>"
            f"<td><b>{e(s.name)}</b><br>{e(s.address)}<br><small>{prio} · 服务 {s.service_minutes} 分钟"
            f"{' · 截止 ' + e(s.deadline) if s.deadline else ''}</small></td>"
            f"<td><ul>{checks}</ul></td><td>{contact}</td><td style='width:14mm'></td></tr>")
    weekday = "一二三四五六日"[dt.date.fromisoformat(rl.day).weekday()]
    phone_note = ("联系电话已完整显示（经授权查看，请妥善保管本单）" if rl.unmasked
                  else "联系电话已脱敏显示；如需完整号码，请在系统内经授权查看。")
    own = any(s.need_to_know for s in rl.stops)
    if own:
        phone_note = ("本人负责探访的老人，地址和电话完整显示（按需知悉，已记入查看日志），请妥善保管本单，用后销毁。"
                      + ("" if all(s.need_to_know for s in rl.stops) else " 其余" + phone_note))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>探访路线单 {e(rl.steward_code)} {e(rl.day)}</title><style>{_CSS}</style></head>
<body>
<h1>探访路线单</h1>
<div class="meta"><span>日期：{e(rl.day)}（星期{weekday}）</span><span>周次：{e(rl.week)}</span>
<span>管家：{e(rl.steward_name)}（{e(rl.steward_code)}，{e(rl.steward_kind)}）</span>
<span>出行方式：{e(_MODE_LABELS.get(rl.mode, rl.mode))}</span>
<span>班次：{e('–'.join(rl.shift))}</span>
<span>共 {len(rl.stops)} 户</span><span>路程 {rl.distance_metres / 1000:.1f} 公里</span>
<span>途中 {rl.travel_seconds / 60:.0f} 分钟</span><span>工作 {rl.work_minutes:.0f} 分钟</span></div>
<div class="map">{svg}</div>
<table><thead><tr><th>序</th><th>时间</th><th>探访对象 / 地址</th><th>重点查看</th><th>第一联系人</th><th>签到</th></tr></thead>
<tbody>
{''.join(rows)}
</tbody></table>
<p class="note">◆ 出发点（驿站/基地）；圆点编号为探访顺序，橙色为高优先级。路线沿道路绘制{'（虚线路段为直线估算：住址距道路较远或路网缺失）' if rl.geometry_estimated else ''}。
{e(phone_note)} 姓名{'' if own else '、地址'}已脱敏。地图数据 {e(ATTRIBUTION)}。</p>
<div class="sig"><span>管家签字：__________</span><span>社区审核：__________</span></div>
</body></html>
"""


# ------------------------------------------------------------------ PDF


def write_pdf(rl: RouteList, path: str | Path, *, graph: Any = None) -> Path:
    """The route list as an A4 PDF (reportlab, embedded CJK font), map included."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        Image,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    from gridmap.register.exports import _register_fonts

    cjk, _ = _register_fonts()
    st = ParagraphStyle("b", fontName=cjk, fontSize=9, leading=12, wordWrap="CJK")
    h1 = ParagraphStyle("h", fontName=cjk, fontSize=15, leading=20)
    png = io.BytesIO(route_map_png(rl, graph=graph))
    w = 180 * mm
    from reportlab.lib.utils import ImageReader

    iw, ih = ImageReader(png).getSize()
    png.seek(0)
    weekday = "一二三四五六日"[dt.date.fromisoformat(rl.day).weekday()]
    story: list[Any] = [
        Paragraph("探访路线单", h1),
        Paragraph(f"日期 {rl.day}（星期{weekday}） 周次 {rl.week} 管家 {rl.steward_name}（{rl.steward_code}，{rl.steward_kind}）"
                  f" 出行 {_MODE_LABELS.get(rl.mode, rl.mode)} 班次 {'–'.join(rl.shift)} 共 {len(rl.stops)} 户 "
                  f"路程 {rl.distance_metres / 1000:.1f} 公里 途中 {rl.travel_seconds / 60:.0f} 分钟 "
                  f"工作 {rl.work_minutes:.0f} 分钟", st),
        Spacer(1, 2 * mm), Image(png, width=min(w, 110 * mm * iw / ih), height=min(w * ih / iw, 110 * mm)),
        Spacer(1, 2 * mm),
    ]
    data = [[Paragraph(x, st) for x in ("序", "时间", "探访对象 / 地址", "重点查看", "第一联系人", "签到")]]
    for s in rl.stops:
        tw = "；".join(f"{a}–{b}" for a, b in s.time_windows) or "不限"
        data.append([
            Paragraph(str(s.seq), st),
            Paragraph(f"到达 {s.arrival}<br/>开始 {s.start}<br/>结束 {s.end}<br/>时间窗 {tw}", st),
            Paragraph(f"<b>{xml_escape(s.name)}</b><br/>{xml_escape(s.address)}<br/>优先级 {s.priority} 服务 "
                      f"{s.service_minutes} 分钟", st),
            Paragraph("<br/>".join(xml_escape(c) for c in s.checks) or "常规探访", st),
            Paragraph(xml_escape(" ".join(x for x in (s.contact_name, s.contact_relation, s.contact_phone) if x))
                      or "—", st),
            "",
        ])
    t = Table(data, colWidths=[8 * mm, 26 * mm, 48 * mm, 56 * mm, 30 * mm, 12 * mm], repeatRows=1)
    t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7"))]))
    story += [t, Spacer(1, 2 * mm),
              Paragraph(("联系电话已完整显示（经授权）。" if rl.unmasked else "联系电话已脱敏。") + f"姓名、地址已脱敏。地图数据 {ATTRIBUTION}。",
                        st)]
    path = Path(path)
    SimpleDocTemplate(str(path), pagesize=A4, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                      bottomMargin=12 * mm, title=f"探访路线单 {rl.steward_code} {rl.day}").build(story)
    return path


# ------------------------------------------------------------------ GPX / GeoJSON


def to_gpx(rl: RouteList) -> str:
    """GPX 1.1: a waypoint per stop (and the base), the route as ``rte`` (stops in order) and ``trk`` (along the roads)."""
    x = xml_escape

    def pt(tag: str, lon: float, lat: float, name: str, desc: str = "") -> str:
        d = f"<desc>{x(desc)}</desc>" if desc else ""
        return f'<{tag} lat="{lat:.7f}" lon="{lon:.7f}"><name>{x(name)}</name>{d}</{tag}>'

    wpts = [pt("wpt", rl.base[0], rl.base[1], "出发点")]
    rte = [pt("rtept", rl.base[0], rl.base[1], "出发点")]
    for s in rl.stops:
        desc = f"{s.start}–{s.end} {s.address} " + "；".join(s.checks)
        wpts.append(pt("wpt", s.lon, s.lat, f"{s.seq} {s.name}", desc.strip()))
        rte.append(pt("rtept", s.lon, s.lat, f"{s.seq} {s.name}"))
    trk = "".join(f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"/>' for lon, lat in rl.geometry)
    name = x(f"{rl.steward_code} {rl.day}")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="gridmap" xmlns="http://www.topografix.com/GPX/1/1">\n'
            f"<metadata><name>{name}</name><copyright author=\"OpenStreetMap contributors\">"
            "<license>https://opendatacommons.org/licenses/odbl/</license></copyright></metadata>\n"
            + "\n".join(wpts) + f"\n<rte><name>{name}</name>" + "".join(rte) + "</rte>\n"
            f"<trk><name>{name}</name><trkseg>{trk}</trkseg></trk>\n</gpx>\n")


def to_geojson(rl: RouteList) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: the route (LineString along the roads), the base and the numbered stops."""
    feats: list[dict[str, Any]] = [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": rl.geometry},
         "properties": {"kind": "route", "steward": rl.steward_code, "day": rl.day, "mode": rl.mode,
                        "travel_seconds": rl.travel_seconds, "distance_metres": rl.distance_metres,
                        "work_minutes": rl.work_minutes, "estimated": rl.geometry_estimated}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(rl.base)},
         "properties": {"kind": "base", "name": "出发点"}},
    ]
    for s in rl.stops:
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                      "properties": {"kind": "stop", "seq": s.seq, "visit": s.visit, "name": s.name,
                                     "address": s.address, "arrival": s.arrival, "start": s.start, "end": s.end,
                                     "time_windows": s.time_windows, "priority": s.priority, "checks": s.checks,
                                     "contact": s.contact_name, "contact_phone": s.contact_phone}})
    return {"type": "FeatureCollection", "features": feats,
            "properties": {"attribution": ATTRIBUTION, "week": rl.week}}


def write_route_list(rl: RouteList, path: str | Path, *, graph: Any = None) -> Path:
    """Write the route list as ``.html``, ``.pdf``, ``.gpx`` or ``.geojson`` (by the suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        path.write_text(to_html(rl, graph=graph), encoding="utf-8")
    elif suffix == ".pdf":
        write_pdf(rl, path, graph=graph)
    elif suffix == ".gpx":
        path.write_text(to_gpx(rl), encoding="utf-8")
    elif suffix in (".geojson", ".json"):
        path.write_text(json.dumps(to_geojson(rl), ensure_ascii=False), encoding="utf-8")
    else:
        raise ValidationError(f"unknown output format {suffix!r}: use .html, .pdf, .gpx or .geojson",
                              f"未知输出格式 {suffix!r}：请用 .html、.pdf、.gpx 或 .geojson", field="out",
                              value=str(path), code="format")
    return path


__all__ = ["ATTRIBUTION", "RouteList", "RouteStop", "load_route_list", "route_map_png", "route_map_svg",
           "to_geojson", "to_gpx", "to_html", "write_pdf", "write_route_list"]
