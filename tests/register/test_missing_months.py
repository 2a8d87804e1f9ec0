"""Issue 20 item 5: streets whose monthly ledger (每月更新) has not arrived by the rules' due day."""

from __future__ import annotations

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridmap._errors import GridmapError
from gridmap.cli import app
from gridmap.register.missing import (
    DEFAULT_DUE_DAY,
    default_period,
    due_date,
    missing_months,
    missing_months_report,
    rules_due_day,
)
from gridmap.store.db import session_scope
from gridmap.store.models import District, Street
from tests.register.conftest import make_rows, write_csv

runner = CliRunner()
STREETS = ["万寿路街道", "学院路街道", "中关村街道"]


@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(1, 28),
       st.dictionaries(st.sampled_from(STREETS), st.dates(date(2024, 1, 1), date(2031, 1, 31))))
@example(date(2026, 11, 10), 10, {})  # on the due day itself nothing is missing yet
@example(date(2026, 11, 11), 10, {"万寿路街道": date(2026, 11, 10)})  # arrived on the due day: on time
@example(date(2026, 2, 28), 28, {})
def test_status_of_every_street(today, due_day, arrivals):
    period = today.replace(day=1)
    rows = missing_months(STREETS, arrivals, period, today, due_day)
    assert sorted(r.street for r in rows) == sorted(STREETS)
    due = due_date(period, due_day)
    for r in rows:
        got = arrivals.get(r.street)
        assert r.due == due and r.arrived == got
        if got is None:
            assert r.status == ("missing" if today > due else "not_due")
        else:
            assert r.status == ("late" if got > due else "on_time")
    order = [r.status for r in rows]
    assert order == sorted(order, key=["missing", "late", "not_due", "on_time"].index)


@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(1, 28))
@example(date(2026, 1, 5), 10)  # January before the due day: last December
@example(date(2026, 3, 10), 10)
@example(date(2026, 3, 11), 10)
def test_default_period_is_the_latest_already_due(today, due_day):
    p = default_period(today, due_day)
    assert p.day == 1 and due_date(p, due_day) < today
    nxt = (p + timedelta(days=32)).replace(day=1)
    assert due_date(nxt, due_day) >= today


@pytest.mark.parametrize("bad", [0, 29, "10", True, 3.5])
def test_the_due_day_of_the_rules_is_checked(bad):
    assert rules_due_day(SimpleNamespace(raw={})) == DEFAULT_DUE_DAY
    assert rules_due_day(SimpleNamespace(raw={"monthly_ledger_due_day": 5})) == 5
    with pytest.raises(GridmapError) as exc:
        rules_due_day(SimpleNamespace(raw={"monthly_ledger_due_day": bad}))
    assert "monthly_ledger_due_day" in exc.value.message_en and "1至28" in exc.value.message_zh


def _streets(engine) -> None:
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区"))
        s.flush()
        for i, name in enumerate(STREETS):
            s.add(Street(name=name, code=f"11010800{i + 1}000", district_code="110108000000"))


def test_a_street_without_its_monthly_ledger_is_listed(engine, reference, ledger_dir, tmp_path):
    _streets(engine)
    rows = [r for r in make_rows(6, start=1000) if r["街道（乡镇）"] == "万寿路街道"]
    url = engine.url.render_as_string(hide_password=False)
    res = runner.invoke(app, ["register", "update", str(write_csv(rows, ledger_dir / "nov.csv")),
                              "--period", "2026-11", "--source", "街道", "--database-url", url])
    assert res.exit_code == 0, res.output
    # a plain import (not the monthly update) of another street does not count as its monthly ledger
    other = [r for r in make_rows(6, start=1100) if r["街道（乡镇）"] == "学院路街道"]
    assert runner.invoke(app, ["register", "import", str(write_csv(other, ledger_dir / "x.csv")),
                               "--database-url", url]).exit_code == 0
    today = date.today()
    rows_out = missing_months_report(engine, "2026-11", today=date(2026, 12, 1))
    by = {r.street: r for r in rows_out}
    assert by["学院路街道"].status == "missing" and by["中关村街道"].status == "missing"
    assert by["万寿路街道"].arrived == today
    assert by["万寿路街道"].status == ("late" if today > date(2026, 11, 10) else "on_time")
    res = runner.invoke(app, ["register", "missing-months", "--period", "2026-11", "--json", "--database-url", url])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["period"] == "2026-11" and set(d["missing"]) == {"学院路街道", "中关村街道"}
    assert {s["street"] for s in d["streets"]} == set(STREETS)
    assert all(set(s) == {"street", "period", "due", "arrived", "status"} for s in d["streets"])
    table = runner.invoke(app, ["register", "missing-months", "--period", "2026-11", "--database-url", url])
    assert table.exit_code == 0 and "学院路街道" in table.stdout and "未报送" in table.stdout
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("monthly_ledger_due_day: 31\n", encoding="utf-8")
    res = runner.invoke(app, ["register", "missing-months", "--rules", str(bad_rules), "--database-url", url])
    assert res.exit_code == 1 and "monthly_ledger_due_day" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["register", "missing-months", "--period", "2026-13", "--database-url", url])
    assert res.exit_code == 1 and "YYYY-MM" in res.output


def _text(component) -> str:
    kids = getattr(component, "children", component)
    if isinstance(kids, (list, tuple)):
        return " ".join(_text(k) for k in kids)
    return str(kids) if not hasattr(kids, "children") else _text(kids)


def test_supervisor_card_names_the_streets_whose_ledger_is_missing():
    """The dashboard card (issue 20 item 5): how many streets have not sent the month's ledger, and which."""
    from gridmap.dashboard.supervisor import ledger_card

    rows = [m.as_dict() for m in missing_months(STREETS, {"万寿路街道": date(2026, 11, 5)}, date(2026, 11, 1),
                                                 date(2026, 12, 1), 10)]
    card = ledger_card(rows)
    text = _text(card)
    missing = [s for s in STREETS if s != "万寿路街道"]
    assert card.id == "kpi-missing-ledgers" and f"{len(missing)} 个街镇" in text
    assert all(s in text for s in missing[:3]) and "万寿路街道" not in text and "2026-11" in text
    done = ledger_card([m.as_dict() for m in missing_months(STREETS, dict.fromkeys(STREETS, date(2026, 11, 2)),
                                                            date(2026, 11, 1), date(2026, 12, 1), 10)])
    assert "0 个街镇" in _text(done) and "均已报送" in _text(done)


def test_dashboard_lists_only_the_streets_a_supervisor_sees(engine, reference, ledger_dir):
    """DashboardData.missing_ledgers: the report for the user's streets (and the street filter) only."""
    from gridmap.dashboard.data import DashboardData
    from gridmap.rules.config import load_rules

    _streets(engine)
    rows = [r for r in make_rows(6, start=1000) if r["街道（乡镇）"] == "万寿路街道"]
    url = engine.url.render_as_string(hide_password=False)
    assert runner.invoke(app, ["register", "update", str(write_csv(rows, ledger_dir / "nov.csv")),
                               "--period", "2026-11", "--source", "街道", "--database-url", url]).exit_code == 0
    visible = {"district": STREETS, "street": ["学院路街道"]}
    fake = SimpleNamespace(engine=engine, today=date(2026, 11, 20), rules=load_rules(),
                           streets=lambda user: visible[user])
    got = DashboardData.missing_ledgers(fake, "district")
    assert {m["street"]: m["status"] for m in got}["学院路街道"] == "missing"
    assert [m["street"] for m in got if m["status"] == "missing"] == ["中关村街道", "学院路街道"]
    assert [m["street"] for m in DashboardData.missing_ledgers(fake, "street")] == ["学院路街道"]
    assert DashboardData.missing_ledgers(fake, "district", "中关村街道")[0]["status"] == "missing"
