"""The dashboard's data layer: figures combined from per-street parts equal the whole register's, and a saved
visit recomputes only its street (the other streets' cached parts are reused) yet shows at once."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import Engine

from gridmap.dashboard.data import SYSTEM_USER, DashboardData, Filters, _status, _trend_counts, _trend_rates
from gridmap.rules.indicators import compute_indicators
from gridmap.rules.store import record_visit
from gridmap.rules.visits import parse_visit

KPI_KEYS = ("elders", "willing", "weekly_rate", "monthly_rate", "overdue", "overdue_days_mean", "overdue_days_max",
            "visits", "hazards_open", "hazards_overdue", "referrals_open", "referrals_overdue",
            "smoke_alarm_coverage", "terminal_coverage", "missing_first_contact", "missing_steward",
            "missing_location", "short_visits", "far_visits")


#: What an effective phone visit answers (rules ``effective_answers``: health, mood, needs).
PHONE_ANSWERS = {"illness": "无变化", "mood": "无变化", "needs": []}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
        return (math.isnan(fa) and math.isnan(fb)) or math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _whole(data: DashboardData, f: Filters) -> dict:
    """The KPIs computed in one go on the whole (filtered) register, as before partitioning."""
    e, v, h, r = data.inputs()
    if f.category:
        e = e[e["categories"].map(lambda c: f.category in c)]
        v, h, r = (x[x["elder_id"].isin(e["elder_id"])] for x in (v, h, r))
    return compute_indicators(e, v, h, r, week=f.week, level="district", rules=data.rules, as_of=data.today).iloc[0].to_dict()


@pytest.fixture(scope="module")
def data(demo_engine: Engine) -> DashboardData:
    return DashboardData(demo_engine)


@pytest.mark.parametrize("category", [None, "living_alone"])
def test_district_kpis_from_street_parts_equal_the_whole_register(data: DashboardData, category: str | None) -> None:
    f = Filters(week=data.weeks()[1], category=category)
    k, whole = data.kpis(SYSTEM_USER, f), _whole(data, f)
    assert k["elders"] > 100
    diff = {c: (k.get(c), whole.get(c)) for c in KPI_KEYS if not _same(k.get(c), whole.get(c))}
    assert not diff, diff


def test_trend_and_status_from_parts_equal_the_whole_register(data: DashboardData) -> None:
    f = Filters(week=data.default_week())
    e, v, _h, _r = data.inputs()
    weeks = list(reversed(data.weeks()))
    whole = _trend_rates([_trend_counts(e, v, weeks, data.rules)], weeks)
    pd.testing.assert_frame_equal(data.trend(SYSTEM_USER, f), whole)
    st = data.status(SYSTEM_USER, f).set_index("elder_id").sort_index()
    ref = _status(e, v, f.week, data.rules, data.today).set_index("elder_id").sort_index()
    assert (st["state"] == ref["state"]).all() and (st["overdue_days"] == ref["overdue_days"]).all()


def test_street_level_map_rows_equal_the_whole_register(data: DashboardData) -> None:
    f = Filters(week=data.default_week())
    e, v, h, r = data.inputs()
    parts = data.indicators(SYSTEM_USER, f, "community").sort_index()
    whole = compute_indicators(e, v, h, r, week=f.week, level="community", rules=data.rules, as_of=data.today).sort_index()
    assert list(parts.index) == list(whole.index)
    for c in ("elders", "weekly_rate", "overdue", "hazards_open", "terminal_coverage"):
        assert all(_same(a, b) for a, b in zip(parts[c], whole[c], strict=True)), c


@pytest.mark.slow
def test_a_saved_visit_recomputes_only_its_street_and_shows_at_once(data: DashboardData) -> None:
    f = Filters(week=data.default_week())
    before = data.kpis(SYSTEM_USER, f)
    st = data.status(SYSTEM_USER, f)
    cand = st[(st["state"] != "visited") & st["willing"].astype(bool) & st["street"].notna()]
    elder = cand.iloc[0]
    street = str(elder["street"])
    other = next(s for s in data._all_streets() if s not in (street, ""))
    other_part = data._part_ind(other, f, "street")
    own_part = data._part_ind(street, f, "street")

    day = data.today  # a day of the current week
    rec = parse_visit({"elder_id": int(elder["elder_id"]), "visited_on": day.isoformat(), "mode": "phone",
                       "visitor_role": "visit_steward", **PHONE_ANSWERS}, data.rules)
    record_visit(data.engine, rec, rules=data.rules, user="test")
    data._after_write(int(elder["elder_id"]), day)

    assert data._part_ind(other, f, "street") is other_part  # another street: its cached part is reused
    assert data._part_ind(street, f, "street") is not own_part  # the saved visit's street: recomputed
    after = data.kpis(SYSTEM_USER, f)
    assert after["weekly_rate"] > before["weekly_rate"]  # the new visit counts at once
    fresh = DashboardData(data.engine)  # everything re-read and recomputed from the store
    diff = {c: (after.get(c), fresh.kpis(SYSTEM_USER, f).get(c)) for c in KPI_KEYS
            if not _same(after.get(c), fresh.kpis(SYSTEM_USER, f).get(c))}
    assert not diff, diff
    data.wait_warm()


def _by_id(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.mark.slow
def test_a_visit_saved_from_the_dashboard_updates_its_street_as_a_full_recomputation(
        data: DashboardData) -> None:
    """The save path (validation, permission, the store's transaction, then the incremental refresh): the saved
    elder's street is updated from its previous frames plus the new visit, the district's visits only on their
    next use; every figure equals the one computed from scratch on the store."""
    f = Filters(week=data.default_week())
    st = data.status(SYSTEM_USER, f)
    cand = st[(st["state"] != "visited") & st["willing"].astype(bool) & st["street"].notna()]
    elder = cand.iloc[len(cand) // 2]
    street, eid = str(elder["street"]), int(elder["elder_id"])
    cats = data.inputs()[0].set_index("elder_id").loc[eid, "categories"]
    category = str(next(iter(cats))) if len(cats) else None
    fc = Filters(week=f.week, street=street, category=category)
    before = data.kpis(SYSTEM_USER, f)
    data.trend(SYSTEM_USER, f), data.kpis(SYSTEM_USER, fc)  # the street's frames cached (with its category too)

    res = data.record_visit(SYSTEM_USER, {"elder_id": eid, "visited_on": data.today.isoformat(), "mode": "phone",
                                          "visitor_role": "visit_steward", **PHONE_ANSWERS})
    assert res.visit_id

    fresh = DashboardData(data.engine)  # everything re-read from the store and recomputed
    for cat in (None, category):
        got, want = data._part_frames(street, None, cat), fresh._part_frames(street, None, cat)
        assert eid in set(got[1]["elder_id"]) and res.visit_id in set(got[1]["id"])
        for g, w, key in zip(got, want, ("elder_id", "id", "id", "id"), strict=True):
            pd.testing.assert_frame_equal(_by_id(g, key), _by_id(w, key), check_dtype=False)
    for flt in (f, fc):
        k, kf = data.kpis(SYSTEM_USER, flt), fresh.kpis(SYSTEM_USER, flt)
        diff = {c: (k.get(c), kf.get(c)) for c in KPI_KEYS if not _same(k.get(c), kf.get(c))}
        assert not diff, diff
    assert data.kpis(SYSTEM_USER, f)["weekly_rate"] > before["weekly_rate"]
    pd.testing.assert_frame_equal(data.trend(SYSTEM_USER, f), fresh.trend(SYSTEM_USER, f))
    s1 = data.status(SYSTEM_USER, Filters(week=f.week, street=street)).set_index("elder_id").sort_index()
    s2 = fresh.status(SYSTEM_USER, Filters(week=f.week, street=street)).set_index("elder_id").sort_index()
    assert s1.loc[eid, "state"] == "visited"
    assert (s1["state"] == s2["state"]).all() and (s1["overdue_days"] == s2["overdue_days"]).all()
    # the district's visits, with the saved one appended on their next use
    pd.testing.assert_frame_equal(_by_id(data.inputs()[1], "id"), _by_id(fresh.inputs()[1], "id"), check_dtype=False)
    data.wait_warm()


@pytest.mark.slow
def test_a_visit_saved_elsewhere_that_opens_a_hazard_shows_as_a_full_read_of_the_district(
        data: DashboardData) -> None:
    """The change follower re-reads only the written elder's hazards and referrals (not the district's): the
    district frames it keeps are the same rows, in the same order, as a process started afresh reads, and the new
    hazard and referral count at once in the KPIs."""
    f = Filters(week=data.default_week())
    data.poll_changes()
    before = data.kpis(SYSTEM_USER, f)
    h0, r0 = data.inputs()[2], data.inputs()[3]
    st = data.status(SYSTEM_USER, f)
    busy = set(h0.loc[h0["status"].isin(["open", "in_progress"]), "elder_id"]) | set(
        r0.loc[r0["status"] != "closed", "elder_id"])  # a finding of a kind still open opens no second hazard
    eid = int(st[st["street"].notna() & ~st["elder_id"].isin(busy)]["elder_id"].iloc[-1])
    answers = dict(family_change="无变化", expression="无变化", mobility="无变化", illness="无变化", mood="无变化",
                   gas_safety="不安全", water_heating_safety="安全", electricity_safety="安全",
                   personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")
    rec = parse_visit({"elder_id": eid, "visited_on": data.today.isoformat(), "mode": "in_home",
                       "visitor_role": "visit_steward", "needs": "助餐", **answers}, data.rules)
    res = record_visit(data.engine, rec, rules=data.rules, user="another-process")  # not through `data`
    assert res.hazard_ids and res.referral_ids
    assert data.poll_changes()["changes"] == 1
    fresh = DashboardData(data.engine)
    _e, _v, h, r = data.inputs()
    _fe, _fv, fh, fr = fresh.inputs()
    pd.testing.assert_frame_equal(h, fh, check_dtype=False)  # same rows, same order (id), same index
    pd.testing.assert_frame_equal(r, fr, check_dtype=False)
    assert set(res.hazard_ids) <= set(h["id"]) and set(res.referral_ids) <= set(r["id"])
    others = h0[h0["elder_id"] != eid]
    assert others["id"].tolist() == h[h["elder_id"] != eid]["id"].tolist()  # the others' rows kept
    assert len(r) > len(r0) - 1
    after = data.kpis(SYSTEM_USER, f)
    assert after["hazards_open"] == before["hazards_open"] + len(res.hazard_ids)
    assert _same(after["hazards_open"], fresh.kpis(SYSTEM_USER, f)["hazards_open"])
    data.wait_warm()
