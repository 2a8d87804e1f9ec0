"""Dashboard pieces without a browser: Chinese formats, rebalancing, form → visit record, masked export, colours."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.dashboard.fmt import fmt_count, fmt_date, fmt_minutes, fmt_pct, fmt_week
from gridmap.dashboard.map import RATE_BINS, rate_colour
from gridmap.dashboard.steward import form_to_record
from gridmap.routing.rebalance import haversine_minutes, rebalance
from gridmap.rules.visits import parse_visit


def test_chinese_formats() -> None:
    assert fmt_date(date(2026, 12, 7)) == "2026年12月7日"
    assert fmt_date(date(2026, 12, 7), weekday=True) == "2026年12月7日（星期一）"
    assert fmt_date(None) == "—"
    assert fmt_pct(0.875) == "87.5%"
    assert fmt_pct(float("nan")) == "—"
    assert fmt_count(120000) == "12.0万"
    assert fmt_count(2000) == "2,000"
    assert fmt_minutes(320) == "5小时20分"
    assert fmt_week("2026-W50") == "2026年第50周（12月7日—12月13日）"


def test_rate_colours_follow_the_legend() -> None:
    assert rate_colour(1.0) == RATE_BINS[0][1]
    assert rate_colour(0.95) == RATE_BINS[1][1]
    assert rate_colour(0.1) == RATE_BINS[-1][1]
    assert rate_colour(None) == rate_colour(float("nan")) != RATE_BINS[-1][1]


@st.composite
def _workloads(draw):
    n_s = draw(st.integers(2, 6))
    n_e = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    stewards = pd.DataFrame({"steward_id": range(n_s), "capacity": rng.integers(60, 400, n_s).astype(float),
                             "lon": 116.30 + rng.random(n_s) * 0.02, "lat": 39.98 + rng.random(n_s) * 0.02})
    elders = pd.DataFrame({"elder_id": range(1000, 1000 + n_e), "steward_id": rng.integers(0, n_s, n_e),
                           "minutes": rng.integers(10, 120, n_e).astype(float),
                           "lon": 116.30 + rng.random(n_e) * 0.02, "lat": 39.98 + rng.random(n_e) * 0.02})
    return stewards, elders


@settings(max_examples=60, deadline=None)
@given(_workloads(), st.sampled_from([None, 1.3]))
def test_rebalance_never_worsens_and_keeps_every_elder(w, balance) -> None:
    stewards, elders = w
    p = rebalance(stewards, elders, balance=balance)
    assert p.imbalance_after <= p.imbalance_before + 1e-6
    assert p.after.sum() == pytest.approx(p.before.sum())  # minutes are moved, not lost
    assert p.moves["elder_id"].is_unique if len(p.moves) else True
    owner = dict(zip(elders["elder_id"], elders["steward_id"], strict=True))
    for m in p.moves.itertuples():
        assert owner[m.elder_id] == m.from_steward != m.to_steward
        owner[m.elder_id] = m.to_steward
    final = elders.assign(steward_id=elders["elder_id"].map(owner)).groupby("steward_id")["minutes"].sum()
    assert np.allclose(final.reindex(p.after.index, fill_value=0).to_numpy(), p.after.to_numpy())


def test_rebalance_moves_work_from_an_overloaded_steward_to_a_near_one() -> None:
    stewards = pd.DataFrame({"steward_id": [1, 2, 3], "capacity": [100.0, 100.0, 100.0],
                             "lon": [116.30, 116.301, 116.50], "lat": [39.98, 39.98, 39.98]})
    elders = pd.DataFrame({"elder_id": range(6), "steward_id": [1] * 6, "minutes": [30.0] * 6,
                           "lon": [116.3005] * 6, "lat": [39.98] * 6})
    p = rebalance(stewards, elders, balance=None)
    assert p.overload_before == 80 and p.overload_after == 0
    assert set(p.moves["to_steward"]) == {2}  # steward 3 is ~17 km away, beyond the travel limit
    assert haversine_minutes((116.30, 39.98), (116.50, 39.98)) > 30


def test_form_values_become_a_valid_visit_record() -> None:
    answers = {k: ("safe" if "safety" in k else "unchanged") for k in (
        "family_change", "expression", "mobility", "illness", "mood", "gas_safety", "water_heating_safety",
        "electricity_safety", "personal_hygiene", "home_hygiene", "indoor_environment")}
    values = {"elder_id": 7, "visited_on": "2026-11-27", "mode": "in_home", "visitor_role": "visit_steward",
              "visitor_name": "王芳", "started_at": "09:00", "ended_at": "09:40", "answers": answers,
              "needs": "需要助浴", "gps_lon": 116.31, "gps_lat": 39.99, "cs_kind": "助浴", "cs_sat": "satisfied"}
    rec = parse_visit(form_to_record(values, steward_id=3))
    assert rec.elder_id == 7 and rec.steward_id == 3 and rec.minutes == 40
    assert rec.answers["gas_safety"] == "safe" and rec.gps == (116.31, 39.99)
    assert rec.care_services[0].kind == "助浴"
    missing = dict(values, answers={k: v for k, v in answers.items() if k != "mood"})
    with pytest.raises(Exception) as err:
        parse_visit(form_to_record(missing, steward_id=3))
    assert "情绪状态" in err.value.message_zh  # type: ignore[attr-defined]


@pytest.mark.slow
def test_export_is_masked(live_app) -> None:
    from sqlalchemy import select

    from gridmap.dashboard.data import Filters
    from gridmap.dashboard.supervisor import export_xlsx
    from gridmap.store.models import Elder

    data = live_app.data
    blob = export_xlsx(data, Filters(week=data.default_week()), "street")
    sheets = pd.read_excel(io.BytesIO(blob), sheet_name=None)
    assert {"指标", "分区指标", "逾期老人（脱敏）", "趋势", "说明"} <= set(sheets)
    od = sheets["逾期老人（脱敏）"]
    assert len(od) > 0 and od["姓名"].str.contains(r"\*").all()
    with data.engine.connect() as conn:
        names = {n for (n,) in conn.execute(select(Elder.name).where(Elder.id.in_(od["编号"].tolist())))}
    # staff (steward) names are shown openly and may coincide with an elder's name: not scanned
    text = pd.concat([v.drop(columns=["探访管家"], errors="ignore") for v in sheets.values()]).astype(str).to_string()
    leaked = [n for n in names if len(n) >= 2 and n in text]
    assert not leaked, leaked


def test_choropleth_joins_indicators_on_the_unit_key() -> None:
    import geopandas as gpd
    from shapely.geometry import box

    from gridmap.dashboard.basemap import Basemap
    from gridmap.dashboard.map import choropleth

    grids = gpd.GeoDataFrame({"grid_pk": [1, 2, 3], "id": ["A-01", "A-02", "A-03"]},
                             geometry=[box(116.3, 39.9, 116.31, 39.91), box(116.31, 39.9, 116.32, 39.91),
                                       box(116.32, 39.9, 116.33, 39.91)], crs="EPSG:4326")
    ind = pd.DataFrame({"weekly_rate": [1.0, 0.5], "overdue": [0, 3], "elders": [10, 12]},
                       index=pd.Index([1, 2], name="grid"))
    gj = choropleth(grids, "grid", ind, Basemap("offline", None, ""), key="grid_pk")
    props = {f["properties"]["name"]: f["properties"] for f in gj["features"]}
    assert set(props) == {"1", "2"}  # grid 3 has no data: not drawn at grid level
    assert props["1"]["rate_text"] == "100.0%" and props["2"]["overdue"] == 3
    assert props["2"]["color"] == RATE_BINS[-1][1] and props["1"]["label"] == "网格 A-01"


def test_the_running_week_is_drawn_as_progress_not_as_a_failing_rate() -> None:
    """On a Tuesday the current week's column holds the share of the whole week done so far: it is labelled
    进行中 in a neutral colour, never red like a lagging week; the weeks before keep the map's colours."""
    from gridmap.dashboard.supervisor import RUNNING_WEEK_COLOUR, trend_chart
    from gridmap.rules.requirements import parse_week

    weeks = ["2026-W48", "2026-W49", "2026-W50"]
    tr = pd.DataFrame({"week": weeks, "weekly_rate": [0.95, 0.55, 0.163],
                       "monday": [parse_week(w)[0] for w in weeks]})

    def columns(today: date) -> list:
        return [c for c in _walk(trend_chart(tr, today=today)) if getattr(c, "className", None) == "gm-trend-col"]

    cols = columns(date(2026, 12, 8))
    assert [c.children[0].style["background"] for c in cols] == [rate_colour(0.95), rate_colour(0.55),
                                                                RUNNING_WEEK_COLOUR]
    assert cols[2].children[1].children.startswith("进行中") and not cols[1].children[1].children.startswith("进行中")
    assert "尚未结束" in cols[2].title
    # once the week is over it is judged like any other
    assert columns(date(2026, 12, 14))[-1].children[0].style["background"] == rate_colour(0.163)


def _walk(node):
    """Every Dash component under ``node`` (itself included)."""
    yield node
    children = getattr(node, "children", None)
    for c in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(c, "to_plotly_json"):
            yield from _walk(c)
