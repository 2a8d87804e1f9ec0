"""City-scale synthetic districts, the COPY loader with district partitions, and SQL indicators that agree with pandas."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import insert, text

from gridmap._errors import GridmapError, ValidationError
from gridmap.rules.config import load_rules
from gridmap.rules.indicators import compute_indicators, period_of
from gridmap.rules.store import indicator_inputs
from gridmap.scale.city import make_city
from gridmap.scale.generate import iter_city_chunks
from gridmap.scale.indicators import SQL_INDICATORS, explain_indicators, sql_indicators
from gridmap.scale.store import city_counts, load_city, partitions
from gridmap.store.models import Hazard, Visit
from tests.scale.conftest import build_tiny_register

RULES = load_rules()
PERIODS = ({"week": "2026-W47"}, {"week": "2026-W49"}, {"month": "2026-11"})
_GEOD = Geod(ellps="WGS84")


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def city():
    return make_city(3)


@pytest.fixture(scope="module")
def chunks(city):
    return list(iter_city_chunks(city, 3000, chunk=700, seed=5))


def _same(pandas_out: pd.DataFrame, sql_out: pd.DataFrame) -> None:
    p = pandas_out[list(SQL_INDICATORS)].sort_index().astype(float)
    s = sql_out.sort_index().astype(float)
    assert list(p.index) == list(s.index)
    pd.testing.assert_frame_equal(p, s, check_names=False, check_exact=False, rtol=1e-9)


# ------------------------------------------------------------------ districts and chunks


def test_copies_are_shifted_recoded_and_flagged(city):
    hd, c1, c2 = city.districts
    assert city.codes == ["110108", "110151", "110152"]
    assert (hd.synthetic, c1.synthetic, c2.synthetic) == (False, True, True)
    assert len(c1.communities) == len(hd.communities) and len(c1.streets) == len(hd.streets)
    assert c1.communities["code"].str.startswith("110151").all()
    assert c1.communities["street_code"].isin(c1.streets["code"]).all()
    a = shapely.union_all(hd.streets.geometry.values).centroid
    b = shapely.union_all(c1.streets.geometry.values).centroid
    km = _GEOD.inv(a.x, a.y, b.x, b.y)[2] / 1000
    assert km == pytest.approx(np.hypot(c1.dx_m, c1.dy_m) / 1000, rel=0.01)
    assert km == pytest.approx(40, rel=0.01)  # the nearest copies are one spacing (40 km) away
    # the copy does not overlap Haidian, and each community point is inside its (moved) community
    assert not shapely.union_all(hd.streets.geometry.values).intersects(shapely.union_all(c1.streets.geometry.values))
    inside = shapely.contains(shapely.buffer(np.asarray(c1.communities.geometry.values), 1e-6),
                              np.asarray(c1.communities["point"].values))
    orig = shapely.contains(shapely.buffer(np.asarray(hd.communities.geometry.values), 1e-6),
                            np.asarray(hd.communities["point"].values))
    assert (inside == orig).all()


def test_resized_copies_change_area_and_workload():
    c = make_city(3, resize=True)
    assert c.districts[2].scale == pytest.approx(0.85)
    area = lambda d: d.streets.to_crs(32650).area.sum()
    assert area(c.districts[2]) / area(c.districts[0]) == pytest.approx(0.85**2, rel=1e-3)
    shares = c.shares(10000)
    assert sum(shares.values()) == 10000 and shares["110152"] < shares["110151"]


def test_district_count_is_checked():
    with pytest.raises(ValidationError) as ei:
        make_city(0)
    assert ei.value.message_zh and ei.value.field == "n_districts"


def test_chunks_are_bounded_with_city_wide_ids(city, chunks):
    assert max(len(c.elders) for c in chunks) <= 700
    assert sum(len(c.elders) for c in chunks) == 3000
    E = pd.concat([c.elders for c in chunks])
    V = pd.concat([c.visits for c in chunks])
    H = pd.concat([c.hazards for c in chunks])
    S = pd.concat([c.stewards for c in chunks])
    assert (E["id"].to_numpy() == np.arange(1, 3001)).all()
    assert V["id"].is_unique and H["id"].is_unique and S["code"].is_unique
    for c in chunks:  # every visit belongs to an elder of its own chunk and district
        assert c.visits["elder_id"].isin(c.elders["id"]).all()
        assert (c.elders["street_code"].str[:6] == c.district_code).all()
    assert E["visit_steward"].isin(S["code"]).all()
    assert set(E["status"]) <= {"active", "in_hospital", "moved_out"}
    assert (H["deadline"] > H["opened_on"]).all()
    closed = H["closed_on"].notna()
    assert (H.loc[closed, "closed_on"] > H.loc[closed, "opened_on"]).all()
    again = list(iter_city_chunks(city, 3000, chunk=700, seed=5))
    pd.testing.assert_frame_equal(again[-1].visits, chunks[-1].visits)


# ------------------------------------------------------------------ SQL indicators on the main register


def _visits_and_hazards(engine, elder_ids, stewards):
    rng = np.random.default_rng(3)
    first = date(2026, 10, 5)
    modes = ["in_home", "phone", "video", "other"]
    roles = ["visit_steward", "service_steward", "volunteer", "other"]
    rows, hz = [], []
    for eid in elder_ids:
        for k in range(int(rng.integers(0, 10))):
            day = first + timedelta(days=int(rng.integers(0, 70)))
            rows.append({"elder_id": eid, "seq": k + 1, "visited_on": day, "mode": modes[int(rng.integers(0, 4))],
                         "effective": bool(rng.random() > 0.1), "visitor_role": roles[int(rng.integers(0, 4))]})
        if rng.random() < 0.4:
            op = first + timedelta(days=int(rng.integers(0, 70)))
            cl = op + timedelta(days=int(rng.integers(1, 30))) if rng.random() < 0.5 else None
            hz.append({"elder_id": eid, "kind": "gas", "severity": "high", "source": "visit", "status": "open",
                       "opened_on": op, "deadline": op + timedelta(days=7), "closed_on": cl})
    with engine.begin() as conn:
        conn.execute(insert(Visit), rows)
        conn.execute(insert(Hazard), hz)


def test_sql_indicators_agree_with_pandas_on_the_register(engine):
    ids = build_tiny_register(engine, per_street=12)
    with engine.begin() as conn:  # some elders leave the programme or refuse visits
        conn.execute(text("UPDATE elder SET status = 'moved_out' WHERE id = :i"), {"i": ids["elders"][3]})
        conn.execute(text("UPDATE elder SET willing_to_be_visited = :f WHERE id IN (:a, :b)"),
                     {"f": False, "a": ids["elders"][5], "b": ids["elders"][20]})
    _visits_and_hazards(engine, ids["elders"], ids["visit"])
    for kw in PERIODS:
        p = period_of(**kw)
        inputs = indicator_inputs(engine, p.start, p.end, rules=RULES, history_days=400)
        for level in ("street", "district"):
            _same(compute_indicators(*inputs, level=level, rules=RULES, **kw),
                  sql_indicators(engine, level=level, rules=RULES, **kw))
    got = sql_indicators(engine, week="2026-W47", rules=RULES)
    assert got["elders"].sum() == len(ids["elders"]) - 1 and got["hazards_open"].sum() > 0


# ------------------------------------------------------------------ the city store (PostGIS)


def _frames(chunks):
    E = pd.concat([c.elders for c in chunks], ignore_index=True)
    V = pd.concat([c.visits for c in chunks], ignore_index=True)
    H = pd.concat([c.hazards for c in chunks], ignore_index=True)
    elders = pd.DataFrame({"elder_id": E["id"], "street": E["street_code"], "community": E["community_code"],
                           "grid_id": None, "steward_id": E["visit_steward"], "status": E["status"],
                           "willing": E["willing"], "age": 70, "categories": [[]] * len(E),
                           "devices": [[]] * len(E), "has_first_contact": True, "has_location": True,
                           "lon": E["lon"], "lat": E["lat"]})
    visits = V.assign(gps_lon=np.nan, gps_lat=np.nan)
    refs = pd.DataFrame(columns=["id", "elder_id", "status", "emergency", "opened_at", "deadline", "closed_at"])
    return elders, visits, H.assign(status="open"), refs


def test_city_store_is_postgis_only(engine, city):
    if engine.dialect.name == "postgresql":
        pytest.skip("checks the refusal on SQLite; PostGIS loads (next tests)")
    with pytest.raises(GridmapError) as ei:
        load_city(engine, city, 100)
    assert "PostGIS" in ei.value.message_en and "PostGIS" in ei.value.message_zh


@pytest.mark.slow
def test_city_load_partitions_and_sql_indicators(engine, city, chunks):
    if engine.dialect.name != "postgresql":
        pytest.skip("the city-scale store uses COPY and LIST partitions: PostGIS only")
    seen = []
    rep = load_city(engine, city, 3000, chunk=700, seed=5, on_chunk=lambda ch, r: seen.append(len(ch.elders)))
    assert max(seen) <= 700 and rep.chunks == len(chunks) == len(seen)
    counts = city_counts(engine)
    assert counts["elder"] == rep.elders == 3000
    assert counts["visit"] == rep.visits == sum(len(c.visits) for c in chunks)
    assert counts["hazard"] == sum(len(c.hazards) for c in chunks)
    assert counts["district"] == 3 and counts["street"] == 3 * len(city.districts[0].streets)
    parts = partitions(engine)
    assert sorted(parts.loc[parts["parent"] == "elder", "partition"]) == [f"elder_{c}" for c in city.codes]
    assert parts.groupby("parent")["rows"].sum()["elder"] == 3000  # ANALYZE ran
    frames = _frames(chunks)
    for kw in PERIODS:
        want = compute_indicators(*frames, level="street", rules=RULES, **kw)
        got = sql_indicators(engine, source="city", level="street", rules=RULES, **kw)
        _same(want, got)
        one = sql_indicators(engine, source="city", level="street", district="110151", rules=RULES, **kw)
        _same(want.loc[[i for i in want.index if i.startswith("110151")]], one)
    plan = explain_indicators(engine, week="2026-W47", district="110151", rules=RULES)
    assert "visit_110151" in plan and "visit_110108" not in plan and "actual time" in plan
    by_district = sql_indicators(engine, source="city", level="district", week="2026-W47", rules=RULES)
    assert sorted(by_district.index) == city.codes and by_district["elders"].sum() == (frames[0]["status"] != "moved_out").sum()
