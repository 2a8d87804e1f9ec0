"""``gridmap report`` gains the sheets 设备, 驿站, 家庭医生 and 重点摸排 with the right rows (both backends); the
station commands and the visit steward's rate leave signed elders to their 驿站 (四(二))."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
from shapely.geometry import Point
from sqlalchemy import Engine, insert

from gridmap.devices.store import add_device
from gridmap.rules.config import load_rules
from gridmap.store.models import ServiceStation, Visit
from tests.devices.conftest import run
from tests.rules.conftest import STREETS, build_register

RULES = load_rules()
WEEK = "2026-W49"  # 2026-11-30 .. 2026-12-06


def _visit(engine: Engine, elder_id: int, on: str, role: str, mode: str = "in_home") -> None:
    with engine.begin() as c:
        c.execute(insert(Visit.__table__), [{
            "elder_id": elder_id, "seq": 1, "visited_on": date.fromisoformat(on), "mode": mode, "effective": True,
            "visitor_role": role, "visitor_name": "x", "entered_by": "t", "late_entry": False, "version": 1,
            "entered_at": datetime(2026, 12, 6, tzinfo=UTC)}])


def _seed(engine: Engine) -> dict:
    lon, lat = STREETS["甲街道"]
    with engine.begin() as c:
        sid = c.execute(insert(ServiceStation.__table__).returning(ServiceStation.id), {
            "name": "甲社区养老服务驿站", "kind": "care_station", "geom": Point(lon, lat), "synthetic": True}).scalar_one()
        hid = c.execute(insert(ServiceStation.__table__).returning(ServiceStation.id), {
            "name": "甲社区卫生服务站", "kind": "health_station", "geom": Point(lon + 0.002, lat), "synthetic": False}).scalar_one()
        c.execute(insert(ServiceStation.__table__), [{
            "name": "乙社区卫生服务中心", "kind": "health_centre", "geom": Point(*STREETS["乙街道"]), "synthetic": False}])
    ids = build_register(engine, [
        dict(signed_care_station=True, categories=["living_alone"]),                       # e0: station and steward visit
        dict(signed_home_care_bed=True, categories=["empty_nest"]),                        # e1: nobody visits
        dict(categories=["empty_nest"], wants_family_doctor=True, family_doctor_signed=False),  # e2: wants a doctor
        dict(categories=["living_alone"], birth_date=date(1940, 5, 1)),                    # e3: 86, not assessed
        dict(categories=["empty_nest"], birth_date=date(1941, 5, 1)),                      # e4: 85, assessed
        dict(categories=["living_alone"], birth_date=date(1941, 5, 1), wants_family_doctor=True,
             family_doctor_signed=True),                                                   # e5: 85, already signed
    ])
    e = ids["elders"]
    _visit(engine, e[0], "2026-12-01", "service_steward")
    _visit(engine, e[0], "2026-12-02", "visit_steward")
    _visit(engine, e[4], "2026-12-03", "visit_steward")
    _visit(engine, e[5], "2026-12-03", "visit_steward", mode="phone")  # a phone call is no 摸排
    add_device(engine, e[0], "smoke_alarm", state="installed", user="t", rules=RULES)
    add_device(engine, e[1], "smoke_alarm", state="refused", user="t", rules=RULES)
    return {"e": e, "station": sid, "health": hid, "street": ids["streets"]["甲街道"]}


def test_report_has_device_station_doctor_and_survey_sheets(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    res = run(engine, "stations", "assign", "--by", "t")
    assert res.exit_code == 0, res.output
    out = tmp_path / "report.xlsx"
    res = run(engine, "report", "--week", WEEK, "--today", "2026-12-07", "--out", str(out))
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    assert {"设备", "驿站", "家庭医生", "重点摸排"} <= set(wb.sheetnames)

    rows = [[c.value for c in r] for r in wb["设备"].iter_rows()]
    head = rows[0]
    assert head == ["街道", "社区", "设备类型", "安装单位", "应配备", "待配备", "已申请", "已安装", "拒绝安装", "故障", "覆盖率"]
    recs = [dict(zip(head, r)) for r in rows[1:]]
    smoke_total = next(r for r in recs if r["街道"] == "海淀区" and r["设备类型"] == "联网烟感报警器")
    assert (smoke_total["应配备"], smoke_total["已安装"], smoke_total["拒绝安装"], smoke_total["待配备"]) == (6, 1, 1, 4)
    assert abs(smoke_total["覆盖率"] - 1 / 6) < 1e-9 and smoke_total["安装单位"] == "区消防救援局（各街镇配合）"
    smoke_comm = [r for r in recs if r["设备类型"] == "联网烟感报警器" and r["街道"] == "甲街道"]
    assert [(r["社区"], r["应配备"]) for r in smoke_comm] == [("甲社区居委会", 6)]
    # one-key terminals: the three 80+ have no 户籍 recorded (not known to be 本区户籍) and none is 计生: nobody
    assert not [r for r in recs if r["设备类型"] == "一键式智能终端"]

    st = [[c.value for c in r] for r in wb["驿站"].iter_rows()]
    assert st[0] == ["周次", "驿站", "街道", "签约老人", "已巡视探访", "巡视探访率", "探访管家也探访", "重复探访"]
    assert st[1:] == [[WEEK, "甲社区养老服务驿站", "甲街道", 2, 1, 0.5, 1, 1]]
    assert wb["驿站"]["F2"].number_format == "0.0%"

    doc = [[c.value for c in r] for r in wb["家庭医生"].iter_rows()]
    assert doc[1:] == [["甲社区卫生服务站", "甲街道", "甲社区居委会", 1]]  # e2 only (e5 has signed), the nearest
    sv = [[c.value for c in r] for r in wb["重点摸排"].iter_rows()]
    assert sv[0] == ["月份", "街道", "社区", "未摸排"]
    assert sv[1:] == [["2026-12", "甲街道", "甲社区居委会", 2]]  # e3 and e5 (a phone call), not e4


def test_station_commands_and_the_stewards_rate(engine: Engine) -> None:
    s = _seed(engine)
    e = s["e"]
    assert json.loads(run(engine, "stations", "view", "--week", WEEK, "--json").stdout)[0]["station"] == "（未登记驿站）"
    run(engine, "stations", "assign", "--by", "t")
    view = json.loads(run(engine, "stations", "view", "--week", WEEK, "--json").stdout)
    assert [(v["station_id"], v["signed"], v["visited"], v["double_visits"]) for v in view] == [(s["station"], 2, 1, 1)]
    dbl = json.loads(run(engine, "stations", "doubles", "--week", WEEK, "--json").stdout)
    assert [(d["elder_id"], d["station_visits"], d["steward_visits"]) for d in dbl] == [(e[0], 1, 1)]
    doctors = json.loads(run(engine, "doctors", "list", "--json").stdout)
    assert [(d["elder_id"], d["centre_id"]) for d in doctors] == [(e[2], s["health"])]
    survey = json.loads(run(engine, "survey", "list", "--month", "2026-12", "--json").stdout)
    assert [r["elder_id"] for r in survey] == [e[3], e[5]] and survey[0]["category"] == "独居"
    # the visit steward's weekly rate leaves the two signed elders to the station
    from gridmap.rules.indicators import compute_indicators
    from gridmap.rules.store import indicator_inputs

    el, vi, hz, rf = indicator_inputs(engine, date(2026, 11, 30), date(2026, 12, 6), rules=RULES)
    by_steward = compute_indicators(el, vi, hz, rf, week=WEEK, level="steward", rules=RULES)
    by_street = compute_indicators(el, vi, hz, rf, week=WEEK, level="street", rules=RULES)
    assert int(by_steward["elders"].sum()) == 4 and int(by_street["elders"].sum()) == 6
    # of the four: e4 and e5 visited
    assert abs(float(by_steward["weekly_rate"].iloc[0]) - 2 / 4) < 1e-9
