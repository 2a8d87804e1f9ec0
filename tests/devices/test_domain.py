"""Pure rules of issue 17 part B: the alarm file validator and the one-key entitlement (hypothesis), the
device life-cycle, and signed elders kept out of the visit steward's weekly plan (四(二))."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.care.rules import care_rules
from gridmap.devices import domain as D
from gridmap.rules.config import load_rules
from gridmap.rules.facts import ElderFacts
from gridmap.rules.requirements import elder_requirements, routing_visits

RULES = load_rules()
CARE = care_rules(RULES)
ON = date(2026, 12, 10)
STREETS = ["学院路街道", "中关村街道"]


@given(st.lists(st.fixed_dictionaries({
    "device_id": st.one_of(st.integers(1, 10**6).map(str), st.text(max_size=4)),
    "time": st.one_of(st.just("2026-12-07T08:30:00+08:00"), st.just("2026-12-07 09:00"), st.text(max_size=6)),
    "alarm_type": st.sampled_from(["sos", "smoke", "offline", "test", "burglar", ""]),
}), min_size=1, max_size=5))
def test_alarm_rows_are_parsed_or_refused_naming_the_first_bad_row(items: list[dict]) -> None:
    try:
        out = D.parse_alarm_rows(items, CARE, first_row=2)
    except ValidationError as exc:
        assert exc.row is not None and 2 <= exc.row < 2 + len(items)
        assert exc.field in ("device_id", "time", "alarm_type")
        bad = items[exc.row - 2]
        assert bad[exc.field] == exc.value or exc.field == "time"
        assert "第" in exc.message_zh and f"row {exc.row}" in exc.message_en
        return
    assert [a.device_id for a in out] == [int(i["device_id"]) for i in items]
    assert all(a.alarm_type in CARE.alarms and a.time.tzinfo is not None for a in out)
    # the same alarm (device, time, type) has the same identity, whatever the time's spelling
    again = D.parse_alarm_rows([dict(i, time=a.time.isoformat()) for i, a in zip(items, out)], CARE)
    assert [a.key for a in again] == [a.key for a in out]


@given(age=st.integers(60, 105), fp=st.booleans(),
       hukou=st.sampled_from([("北京市海淀区学院路街道", "学院路街道"), ("北京市西城区", "外区"), ("", "中关村街道"),
                              (None, None)]),
       lives=st.sampled_from([True, False, None]))
def test_one_key_entitlement_is_80_plus_with_district_hukou_or_family_planning(age, fp, hukou, lives) -> None:
    row = {"age": age, "categories": ["family_planning_special"] if fp else ["living_alone"],
           "hukou_address": hukou[0], "hukou_street": hukou[1], "lives_at_hukou": lives}
    reason = D.entitled_reason(row, CARE.devices["one_key"], ON, STREETS)
    local = (hukou[0] is not None and ("海淀区" in hukou[0] or hukou[1] in STREETS)) or (hukou[0] is None and lives is True)
    assert (reason is not None) == ((age >= 80 and local) or fp)
    if reason:
        assert ("计划生育特殊家庭" in reason) == fp


def test_device_life_cycle() -> None:
    D.check_transition("needed", "requested")
    D.check_transition("requested", "installed")
    D.check_transition("installed", "faulty")
    D.check_transition("faulty", "installed")
    for frm, to in (("installed", "needed"), ("faulty", "refused"), ("needed", "faulty")):
        with pytest.raises(ValidationError) as e:
            D.check_transition(frm, to)
        assert e.value.field == "state" and "设备状态不能" in e.value.message_zh
    assert D.parse_state("拒绝安装") == "refused" and D.parse_kind("一键式智能终端") == "one_key"
    with pytest.raises(ValidationError):
        D.parse_kind("扫地机器人")


def test_signed_elders_are_left_out_of_the_stewards_weekly_plan() -> None:
    old = dict(age=88, categories=frozenset({"living_alone"}), last_visit_on=date(2026, 11, 1))
    plain = ElderFacts(id=1, **old)
    station = ElderFacts(id=2, signed_care_station=True, **old)
    bed = ElderFacts(id=3, signed_home_care_bed=True, **old)
    plan = routing_visits([plain, station, bed], "2026-W50", RULES)
    assert [v["id"] for v in plan] == ["1"]
    reqs = elder_requirements(station, "2026-W50", RULES)
    assert reqs and all(r.by == "care_station" for r in reqs)


def test_the_maps_device_circles_name_each_communitys_coverage() -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    from gridmap.dashboard.basemap import Basemap
    from gridmap.dashboard.map import device_summary

    comms = gpd.GeoDataFrame({"street": ["甲街道", "乙街道"], "name": ["一社区", "一社区"]},
                             geometry=[Point(116.3, 39.98).buffer(0.001), Point(116.32, 39.98).buffer(0.001)],
                             crs="EPSG:4326")
    elders = pd.DataFrame({"elder_id": [1, 2], "lon": [116.3, 116.32], "lat": [39.98, 39.98],
                           "devices": [["smoke_alarm"], ["emergency_terminal"]], "street": ["甲街道", "乙街道"],
                           "community": ["一社区", "一社区"]})
    basemap = Basemap(name="none", url=None, attribution="", gcj02=False)
    cov = {("甲街道", "一社区"): "覆盖率：烟感 50.0%（1/2）"}
    fc = device_summary(elders, comms, basemap, coverage=cov)
    props = {(f["properties"]["name"], f["properties"]["smoke"]): f["properties"]["cov"] for f in fc["features"]}
    assert props == {("一社区", 1): "覆盖率：烟感 50.0%（1/2）", ("一社区", 0): ""}


@pytest.mark.parametrize("override, key", [
    ({"devices": {"kinds": {"one_key": {"min_age": 30}}}}, "devices.kinds.one_key.min_age"),
    ({"devices": {"kinds": {"robot": {"label": "x", "installer": "y", "all": True}}}}, "devices.kinds.robot"),
    ({"devices": {"alarms": {"sos": {"label": "一键呼叫", "emergency": "yes", "need": "x"}}}}, "devices.alarms.sos.emergency"),
    ({"devices": {"kinds": {"home_safety": {"welfare": ["rich"]}}}}, "devices.kinds.home_safety.welfare"),
    ({"stations": {"station_roles": ["visit_steward"]}}, "stations.station_roles"),
    ({"key_survey": {"assessed_modes": ["telepathy"]}}, "key_survey.assessed_modes"),
])
def test_a_bad_rule_of_part_b_is_refused_naming_its_key(override: dict, key: str) -> None:
    with pytest.raises(ValidationError) as e:
        load_rules(overrides=override)
    assert e.value.field == key and e.value.code == "rules"
    assert "规则项" in e.value.message_zh and "rules key" in e.value.message_en
