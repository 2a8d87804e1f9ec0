"""Daily route lists from stored plans: masked names, ordered stops, GPX that parses, valid GeoJSON, print view, PDF."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gridmap.domain.masking import mask_name, mask_phone
from gridmap.routing.district import plan_week
from gridmap.routing.plan import parse_plan
from gridmap.routing.routelist import (
    ATTRIBUTION,
    load_route_list,
    to_geojson,
    to_gpx,
    to_html,
    write_route_list,
)
from gridmap.routing.weekly import StewardProblem
from tests.routing.test_district_week import WEEK, populate, small_street

GPX_NS = "{http://www.topografix.com/GPX/1/1}"


def _busiest(run_dir: Path, code: str) -> str:
    plan = parse_plan(run_dir / code / "plan.json")
    return max(plan.routes, key=lambda r: len(r.stops)).day


@pytest.mark.slow
def test_route_list_of_a_real_steward_is_masked_ordered_and_exports(engine: Engine, tmp_path: Path) -> None:
    from gridmap.store.models import Elder, FirstContact

    populate(engine)
    street = small_street(engine)
    run = plan_week(engine, WEEK, street=street, out_dir=tmp_path / "run", time_limit=0.3, workers=1)
    s = max(run.stewards, key=lambda s: s.visits_planned)
    assert s.visits_planned > 0
    day = _busiest(tmp_path / "run", s.code)
    rl = load_route_list(engine, tmp_path / "run", s.code, day, draw_roads=True)
    plan = parse_plan(tmp_path / "run" / s.code / "plan.json")
    route = next(r for r in plan.routes if r.day == day)
    assert [x.visit for x in rl.stops] == [x.visit for x in route.stops]
    assert [x.seq for x in rl.stops] == list(range(1, len(route.stops) + 1))
    assert all(a.end <= b.arrival for a, b in zip(rl.stops, rl.stops[1:]))  # "HH:MM" strings sort as times

    ids = [x.elder_id for x in rl.stops]
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(
            select(Elder.id, Elder.name, Elder.address, FirstContact.phone)
            .outerjoin(FirstContact, FirstContact.elder_id == Elder.id).where(Elder.id.in_(ids)))}
    page = to_html(rl, map_svg="<svg></svg>")
    for x in rl.stops:
        full = rows[x.elder_id]
        assert x.name == mask_name(full.name) and full.name not in page
        if full.address:
            assert full.address not in page
        if full.phone:
            assert x.contact_phone == mask_phone(full.phone) and full.phone not in page
        assert x.checks, "each stop says what to check (requirement reasons, last visit)"
    # the files a steward takes along
    gpx = ET.parse(write_route_list(rl, tmp_path / "day.gpx")).getroot()
    assert gpx.tag == f"{GPX_NS}gpx"
    names = [w.find(f"{GPX_NS}name").text for w in gpx.findall(f"{GPX_NS}wpt")]
    assert names[1:] == [f"{x.seq} {x.name}" for x in rl.stops]
    assert not any(rows[x.elder_id].name in n for x, n in zip(rl.stops, names[1:]))
    trk = gpx.findall(f"{GPX_NS}trk/{GPX_NS}trkseg/{GPX_NS}trkpt")
    assert len(trk) >= len(rl.stops) + 1
    gj = json.loads(write_route_list(rl, tmp_path / "day.geojson").read_text(encoding="utf-8"))
    assert gj["type"] == "FeatureCollection"
    stops = [f for f in gj["features"] if f["properties"]["kind"] == "stop"]
    assert [f["properties"]["seq"] for f in stops] == [x.seq for x in rl.stops]
    html_path = write_route_list(rl, tmp_path / "day.html")
    text = html_path.read_text(encoding="utf-8")
    assert "<svg" in text and ATTRIBUTION in text and "@page" in text and "src=\"http" not in text and "href=\"http" not in text
    pdf = write_route_list(rl, tmp_path / "day.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000

    # phones in clear only for a role allowed to unmask, with a reason, audited; never for a planner
    from gridmap.access import create_demo_users, load_user
    from gridmap.access.audit import PermissionDenied
    from gridmap.store.models import AuditLog

    create_demo_users(engine)
    with_phone = [x for x in rl.stops if rows[x.elder_id].phone]
    assert with_phone, "the synthetic register gives every elder a first contact with a phone"
    if with_phone:
        clear = load_route_list(engine, tmp_path / "run", s.code, day, unmask_as=load_user(engine, "demo_district"),
                                reason="出行前电话确认", draw_roads=False)
        assert clear.unmasked
        assert {x.visit: x.contact_phone for x in clear.stops if x.elder_id in rows and rows[x.elder_id].phone} == {
            x.visit: rows[x.elder_id].phone for x in with_phone}
        assert clear.stops[0].name == rl.stops[0].name  # names stay masked
        with engine.connect() as conn:
            assert conn.execute(select(AuditLog.id).where(AuditLog.action == "unmask")).first() is not None
        with pytest.raises(PermissionDenied):
            load_route_list(engine, tmp_path / "run", s.code, day, unmask_as=load_user(engine, "demo_planner"),
                            reason="想看", draw_roads=False)


def test_gpx_and_geojson_of_a_stored_plan_without_register(tmp_path: Path) -> None:
    """Without a register the list shows visit ids; GPX parses, GeoJSON geometries are valid and in order."""
    import shapely
    from shapely.geometry import shape

    days = ["2026-11-30", "2026-12-01"]
    pts = [[116.3050, 39.9610], [116.3080, 39.9590], [116.3020, 39.9575], [116.3100, 39.9625]]
    problem = {"days": days, "stewards": [{"id": "S", "start": [116.3060, 39.9600], "shift": ["08:30", "12:00"],
                                           "max_work_minutes": 200, "mode": "walk"}],
               "visits": [{"id": str(i), "location": p, "service_minutes": 30, "count": 1, "days": days,
                           "priority": 3 + i % 2, "steward": "S", "time_windows": [["09:00", "11:30"]]}
                          for i, p in enumerate(pts)]}
    sp = StewardProblem(1, "S", "甲", "visit", WEEK, problem,
                        {str(i): {"elder_id": 900 + i, "reasons": ["living_alone", "overdue"], "deadline": None}
                         for i in range(len(pts))})
    run = plan_week(None, WEEK, problems=[sp], out_dir=tmp_path / "r", time_limit=0.3, workers=1)
    assert run.stewards[0].check_ok and run.stewards[0].visits_planned == len(pts)
    day = _busiest(tmp_path / "r", "S")
    rl = load_route_list(None, tmp_path / "r", "S", day, draw_roads=False)
    assert all(x.checks == ["独居", "探访逾期"] for x in rl.stops)
    assert all(x.time_windows == [["09:00", "11:30"]] and "09:00" <= x.start <= "11:30" for x in rl.stops)
    root = ET.fromstring(to_gpx(rl))
    assert len(root.findall(f"{GPX_NS}rte/{GPX_NS}rtept")) == len(rl.stops) + 1
    for w in root.findall(f"{GPX_NS}wpt"):
        assert -180 <= float(w.get("lon")) <= 180 and -90 <= float(w.get("lat")) <= 90
    gj = to_geojson(rl)
    json.dumps(gj)  # serialisable
    for f in gj["features"]:
        g = shape(f["geometry"])
        assert shapely.is_valid(g) and not g.is_empty
    line = shape(gj["features"][0]["geometry"])
    assert line.geom_type == "LineString"
    # the route passes by every stop in order (straight legs here)
    along = [line.project(shapely.Point(x.lon, x.lat)) for x in rl.stops]
    assert along == sorted(along)
    with pytest.raises(Exception, match="no route|没有路线"):
        load_route_list(None, tmp_path / "r", "S", "2026-12-05", draw_roads=False)
