"""Store layer, follow-ups, indicators and CLI on both backends, with a synthetic 8-week history."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest
from shapely.geometry import Point
from sqlalchemy import insert, select
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.enums import (
    Category,
    HazardKind,
    HazardStatus,
    ReferralStatus,
    ReferralTarget,
    Severity,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)
from gridmap.rules.config import load_rules
from gridmap.rules.indicators import compute_indicators
from gridmap.rules.requirements import parse_week, weekly_requirements
from gridmap.rules.store import (
    acknowledge_referral,
    escalate_referrals,
    indicator_inputs,
    read_events,
    read_facts,
    record_visit,
    save_events,
)
from gridmap.rules.visits import parse_visit
from gridmap.store.models import Hazard, Referral, Visit
from tests.rules.conftest import STREETS, build_register

RULES = load_rules()
NOW = datetime(2026, 12, 2, 4, tzinfo=UTC)
ANSWERS = dict(family_change="无变化", expression="无变化", mobility="较差", illness="无变化", mood="无变化",
               gas_safety="不安全", water_heating_safety="安全", electricity_safety="安全",
               personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")


def _db_url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_record_visit_writes_section_5_and_follow_ups(engine):
    ids = build_register(engine, [dict(welfare_status=WelfareStatus.TEKUN),
                                  dict(street="乙街道", categories=[Category.LIVING_ALONE])])
    e1, e2 = ids["elders"]
    rec = parse_visit(dict(elder_id=e1, visited_on="2026-12-01", mode="上门探访", visitor_role="物业人员",
                           visitor_name="物业小王", steward_id=ids["stewards"]["甲街道"], needs="助浴",
                           gps=[116.3005, 39.9801], gps_time="2026-12-01T09:31:00",
                           started_at="2026-12-01T09:30", ended_at="2026-12-01T10:05",
                           care_services=[dict(kind="助洁", satisfaction="满意")], **ANSWERS),
                      RULES, now=NOW)
    res = record_visit(engine, rec, rules=RULES, now=NOW)
    assert len(res.hazard_ids) == 1 and len(res.referral_ids) == 1 and len(res.care_service_ids) == 1
    with engine.connect() as conn:
        v = conn.execute(select(Visit).where(Visit.id == res.visit_id)).mappings().one()
        h = conn.execute(select(Hazard)).mappings().one()
        r = conn.execute(select(Referral)).mappings().one()
    assert v["visitor_role"] == VisitorRole.PROPERTY_STAFF and v["visitor_name"] == "物业小王"
    assert v["gps"].equals(Point(116.3005, 39.9801)) and v["mobility"] == "worse" and not v["late_entry"]
    assert h["kind"] == HazardKind.GAS and h["severity"] == Severity.HIGH and h["deadline"] == date(2026, 12, 4)
    assert h["owner_unit"] == RULES.owner_units[HazardKind.GAS]
    assert r["target"] == ReferralTarget.STREET_OF_RESIDENCE and r["target_name"] == "甲街道"  # 特困
    # the facts seen next week reflect the visit
    (f,) = read_facts(engine, date(2026, 12, 7), elder_ids=[e1])
    assert f.open_hazards == 1 and f.last_visit_on == date(2026, 12, 1) and f.last_answers["gas_safety"] == "unsafe"

    # emergency for the living-alone elder: first contact + community, escalated when not acknowledged
    em = parse_visit(dict(elder_id=e2, visited_on="2026-11-20", mode="电话问候", visitor_role="邻里亲属",
                          emergency=True), RULES, now=NOW)
    res2 = record_visit(engine, em, rules=RULES, now=NOW)
    assert res2.late_entry and len(res2.referral_ids) == 2
    acknowledge_referral(engine, res2.referral_ids[0], NOW + timedelta(minutes=5))
    assert escalate_referrals(engine, NOW + timedelta(minutes=10)) == []
    esc = escalate_referrals(engine, NOW + timedelta(minutes=RULES.emergency_ack_minutes + 1))
    assert esc == [res2.referral_ids[1]]
    # escalation is a flag, set once: the status stays, no second referral is counted
    assert escalate_referrals(engine, NOW + timedelta(hours=2)) == []
    with engine.connect() as conn:
        rows = conn.execute(select(Referral.status, Referral.escalated_at).where(Referral.elder_id == e2)
                            .order_by(Referral.id)).all()
    assert [s for s, _ in rows] == [ReferralStatus.ACKNOWLEDGED, ReferralStatus.OPEN]
    assert rows[0][1] is None and rows[1][1] is not None


def test_calendar_events_stored_and_raise_requirements_for_their_street(engine):
    ids = build_register(engine, [dict(street="甲街道"), dict(street="乙街道")])
    from gridmap.domain.enums import EventKind
    from gridmap.rules.facts import Event

    save_events(engine, [Event(EventKind.EXTREME_WEATHER, "寒潮", date(2026, 12, 14), date(2026, 12, 16),
                               street="甲街道")])
    mon, sun = parse_week("2026-W51")
    evs = read_events(engine, mon, sun)
    assert len(evs) == 1 and read_events(engine, *parse_week("2026-W49")) == []
    facts = read_facts(engine, mon)
    a = weekly_requirements(facts, "2026-W51", RULES, evs).groupby("elder_id")["count"].sum()
    b = weekly_requirements(facts, "2026-W51", RULES).groupby("elder_id")["count"].sum()
    assert a[ids["elders"][0]] >= b[ids["elders"][0]] + 3 and a[ids["elders"][1]] == b[ids["elders"][1]]


# ------------------------------------------------------- 8-week synthetic history

WEEKS = [f"2026-W{w}" for w in range(41, 49)]  # 2026-10-05 .. 2026-11-29
MODES = [VisitMode.IN_HOME, VisitMode.PHONE, VisitMode.VIDEO, VisitMode.OTHER]


def _history(engine, n: int = 60, seed: int = 3):
    """A register of ``n`` elders in two streets and 8 weeks of visits and hazards (returned as plain rows)."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        specs.append(dict(street=rng.choice(list(STREETS)), willing_to_be_visited=rng.random() > 0.15,
                          first_contact=rng.random() > 0.1, birth_date=date(rng.randint(1930, 1960), 5, 1)))
    ids = build_register(engine, specs)
    street_of = {e: s["street"] for e, s in zip(ids["elders"], specs)}
    willing = {e: s["willing_to_be_visited"] for e, s in zip(ids["elders"], specs)}
    # each street gets its own miss rate so the streets differ
    miss = {"甲街道": 0.1, "乙街道": 0.35}
    visits, hazards = [], []
    for e in ids["elders"]:
        for w in WEEKS:
            mon, _ = parse_week(w)
            if not willing[e] and w not in ("2026-W44", "2026-W48"):
                continue
            if rng.random() < miss[street_of[e]]:
                continue
            day = mon + timedelta(days=rng.randint(0, 6))
            mode = rng.choice(MODES)
            start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=2)
            visits.append(dict(elder_id=e, visited_on=day, mode=mode, effective=rng.random() > 0.05,
                               visitor_role=rng.choice(list(VisitorRole)), started_at=start,
                               ended_at=start + timedelta(minutes=rng.choice([5, 30, 45])),
                               gps=Point(116.3, 39.98), mobility="unchanged"))
        if rng.random() < 0.3:
            op = date(2026, 10, 1) + timedelta(days=rng.randint(0, 55))
            cl = op + timedelta(days=rng.randint(1, 20)) if rng.random() < 0.5 else None
            hazards.append(dict(elder_id=e, kind=HazardKind.GAS, severity=Severity.HIGH, source="visit",
                                status=HazardStatus.CLOSED if cl else HazardStatus.OPEN, opened_on=op,
                                deadline=op + timedelta(days=3), closed_on=cl))
    with engine.begin() as conn:
        conn.execute(insert(Visit), visits)
        conn.execute(insert(Hazard), hazards)
    return ids, street_of, willing, visits, hazards


def _independent(street_of, willing, visits, hazards, week, month_start):
    """Weekly and monthly rates, overdue and open hazards per street, by plain loops."""
    mon, sun = parse_week(week)
    eff = [v for v in visits if v["effective"] and v["mode"] != VisitMode.OTHER]
    out = {}
    for street in STREETS:
        elders = [e for e, s in street_of.items() if s == street]
        w = [e for e in elders if willing[e]]
        wk = {v["elder_id"] for v in eff if mon <= v["visited_on"] <= sun}
        mo = {v["elder_id"] for v in eff if month_start <= v["visited_on"] <= sun}
        last = {}
        for v in eff:
            if v["visited_on"] <= sun:
                last[v["elder_id"]] = max(last.get(v["elder_id"], date.min), v["visited_on"])
        overdue = sum(1 for e in elders
                      if (sun - last.get(e, mon - timedelta(days=1))).days > (7 if willing[e] else 31))
        hz = sum(1 for h in hazards if street_of[h["elder_id"]] == street and h["opened_on"] <= sun
                 and (h["closed_on"] is None or h["closed_on"] > sun))
        out[street] = dict(weekly_rate=sum(e in wk for e in w) / len(w),
                           monthly_rate=sum(e in mo for e in elders) / len(elders),
                           overdue=overdue, hazards_open=hz,
                           visits=sum(1 for v in visits if street_of[v["elder_id"]] == street
                                      and mon <= v["visited_on"] <= sun))
    return out


@pytest.mark.parametrize("week", ["2026-W45", "2026-W48"])
def test_indicators_agree_with_an_independent_computation_for_every_street(engine, week):
    rules = load_rules(overrides={"effective_modes": ["in_home", "phone", "video", "remote_monitoring"]})
    _ids, street_of, willing, visits, hazards = _history(engine)
    mon, sun = parse_week(week)
    month_start = (mon + timedelta(days=3)).replace(day=1)
    elders, v, h, r = indicator_inputs(engine, min(mon, month_start), sun, rules=rules)
    got = compute_indicators(elders, v, h, r, week=week, level="street", rules=rules)
    want = _independent(street_of, willing, visits, hazards, week, month_start)
    assert set(got.index) == set(STREETS)
    for street, exp in want.items():
        row = got.loc[street]
        assert row["weekly_rate"] == pytest.approx(exp["weekly_rate"])
        assert row["monthly_rate"] == pytest.approx(exp["monthly_rate"])
        assert row["overdue"] == exp["overdue"]
        assert row["hazards_open"] == exp["hazards_open"]
        assert row["visits"] == exp["visits"]
    # laggards first: 乙街道 misses more visits
    assert list(got.index) == sorted(STREETS, key=lambda s: want[s]["weekly_rate"])
    # district = the sum of the streets
    dist = compute_indicators(elders, v, h, r, week=week, level="district", rules=rules).iloc[0]
    assert dist["overdue"] == got["overdue"].sum() and dist["elders"] == got["elders"].sum()
    # 流于形式: 5-minute in-home visits in the week are counted
    short = sum(1 for x in visits if mon <= x["visited_on"] <= sun and x["mode"] == VisitMode.IN_HOME
                and (x["ended_at"] - x["started_at"]) < timedelta(minutes=RULES.min_in_home_minutes))
    assert got["short_visits"].sum() == short
    # the same answers at every visit (copied): flagged from the 4th visit on
    assert got["copied_answers"].sum() > 0


def test_cli_due_record_and_report(engine, tmp_path):
    _ids, street_of, willing, visits, hazards = _history(engine, n=30, seed=5)
    url = _db_url(engine)
    runner = CliRunner()
    res = runner.invoke(app, ["visits", "due", "--week", "2026-W49", "--steward", "T-1", "--database-url", url,
                              "--out", str(tmp_path / "due.json")])
    assert res.exit_code == 0, res.output
    due = json.loads((tmp_path / "due.json").read_text(encoding="utf-8"))
    jia = {e for e, s in street_of.items() if s == "甲街道"}
    assert due and {d["elder_id"] for d in due} <= jia
    assert {d["elder_id"] for d in due if d["kind"] == "visit"} >= {e for e in jia if willing[e]}

    e = next(iter(jia))
    f = tmp_path / "visit.json"
    f.write_text(json.dumps(dict(elder_id=e, visited_on="2026-11-27", mode="上门探访", visitor_role="志愿者",
                                 **ANSWERS), ensure_ascii=False), encoding="utf-8")
    res = runner.invoke(app, ["visits", "record", str(f), "--database-url", url])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(elder_id=e, visited_on="2026-11-30", mode="上门探访", visitor_role="志愿者")),
                   encoding="utf-8")
    res = runner.invoke(app, ["visits", "record", str(bad), "--database-url", url])
    assert res.exit_code != 0 and "Traceback" not in res.output

    out = tmp_path / "report.xlsx"
    res = runner.invoke(app, ["report", "--week", "2026-W48", "--out", str(out), "--database-url", url])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["街道", "周探访率", "月有效探访率", "逾期探访", "未整改隐患"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert {r[0] for r in rows} == set(STREETS)
    assert rows[0][1] <= rows[1][1]  # laggard first
    assert wb["职责任务清单"].max_row == 21
    res = runner.invoke(app, ["report", "--week", "2026-W48", "--street", "乙街道", "--out", str(out),
                              "--database-url", url])
    assert res.exit_code == 0, res.output
    assert [r[0] for r in openpyxl.load_workbook(out).worksheets[0].iter_rows(min_row=2, values_only=True)] == ["乙街道"]


@pytest.mark.slow
def test_indicators_on_the_synthetic_demo_register_agree_for_every_street(engine, data_dir):
    """The synthetic register with its 8 weeks of visits (gridmap.synth), checked street by street."""
    demo = pytest.importorskip("gridmap.synth.demo")
    import pandas as pd

    from gridmap.layers.build import build_layers
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.store.models import Elder, Street

    layers = build_layers(data_dir)
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    demo.load_demo_register(engine, layers, elders=400, seed=2)
    week = "2026-W48"
    mon, sun = parse_week(week)
    ms = date(2026, 11, 1)
    elders, v, h, r = indicator_inputs(engine, ms, sun, rules=RULES)
    got = compute_indicators(elders, v, h, r, week=week, level="street", rules=RULES)
    # independent: raw tables, plain pandas
    with engine.connect() as conn:
        E = pd.DataFrame(conn.execute(select(Elder.id, Elder.willing_to_be_visited, Elder.status, Street.name)
                                      .join(Street, Street.id == Elder.street_id)).all(),
                         columns=["id", "willing", "status", "street"])
        V = pd.DataFrame(conn.execute(select(Visit.elder_id, Visit.visited_on, Visit.mode, Visit.effective,
                                             Visit.visitor_role)).all(),
                         columns=["elder_id", "visited_on", "mode", "effective", "role"])
    E = E[E["status"].astype(str).isin({"active", "in_hospital"})]
    V = V[V["effective"] & V["mode"].astype(str).isin({str(m) for m in RULES.effective_modes})
          & V["role"].astype(str).isin({str(x) for x in RULES.credited_roles})]
    in_week = set(V.loc[(V.visited_on >= mon) & (V.visited_on <= sun), "elder_id"])
    in_month = set(V.loc[(V.visited_on >= ms) & (V.visited_on <= sun), "elder_id"])
    assert len(got) == E["street"].nunique() > 1
    for street, grp in E.groupby("street"):
        w = grp[grp["willing"]]
        if len(w):
            assert got.loc[street, "weekly_rate"] == pytest.approx(w["id"].isin(in_week).mean())
        assert got.loc[street, "monthly_rate"] == pytest.approx(grp["id"].isin(in_month).mean())
        assert got.loc[street, "elders"] == len(grp)
