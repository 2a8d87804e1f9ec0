"""The visit date's bounds: not after today, not before the programme began (rules ``programme_start``).

A visit dated 1900-01-01 used to be accepted (issue #14, item 9): it is refused with a bilingual error
naming the field, by :func:`gridmap.rules.visits.parse_visit` and so by ``gridmap visits record``.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from gridmap._errors import ValidationError
from gridmap.cli import app
from gridmap.rules.config import load_rules
from gridmap.rules.visits import parse_visit
from gridmap.store.models import Visit
from tests.rules.conftest import build_register

RULES = load_rules()
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone(timedelta(hours=8)))
TODAY = NOW.date()


def _visit(day: object, elder_id: int = 1) -> dict[str, object]:
    return {"elder_id": elder_id, "visited_on": day, "mode": "phone", "visitor_role": "visit_steward"}


def test_the_programme_start_is_the_rules_value() -> None:
    assert RULES.programme_start == date(2024, 1, 1)  # 京民养老发〔2024〕1号
    assert load_rules(overrides={"programme_start": "2025-03-01"}).programme_start == date(2025, 3, 1)
    with pytest.raises(ValidationError) as exc:
        load_rules(overrides={"programme_start": "三月"})
    assert exc.value.field == "programme_start"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dates(date(1, 1, 1), date(2100, 12, 31)), st.sampled_from(["iso", "date", "datetime"]))
@example(date(1900, 1, 1), "iso")
@example(date(2023, 12, 31), "iso")
@example(date(2024, 1, 1), "iso")
@example(TODAY, "date")
@example(TODAY + timedelta(days=1), "iso")
def test_a_visit_date_is_accepted_exactly_between_the_programme_start_and_today(day: date, form: str) -> None:
    given_as = {"iso": day.isoformat(), "date": day, "datetime": datetime.combine(day, datetime.min.time())}[form]
    ok = RULES.programme_start <= day <= TODAY
    if ok:
        assert parse_visit(_visit(given_as), RULES, now=NOW).visited_on == day
        return
    with pytest.raises(ValidationError) as exc:
        parse_visit(_visit(given_as), RULES, now=NOW)
    err = exc.value
    assert err.field == "visited_on" and err.code == ("future" if day > TODAY else "too_early")
    text = str(err)  # Chinese and English, naming the field
    assert "visited_on" in err.message_zh and "visited_on" in err.message_en
    if day < RULES.programme_start:
        assert "早于探访关爱工作开始日期 2024年1月1日" in text and "before the programme began on 2024-01-01" in text


def test_a_district_with_a_later_start_refuses_earlier_visits() -> None:
    rules = load_rules(overrides={"programme_start": "2026-06-01"})
    assert parse_visit(_visit("2026-06-01"), rules, now=NOW).visited_on == date(2026, 6, 1)
    with pytest.raises(ValidationError, match="2026-06-01"):
        parse_visit(_visit("2026-05-31"), rules, now=NOW)


def test_cli_visits_record_refuses_a_visit_dated_1900(engine, tmp_path) -> None:
    ids = build_register(engine, [{}])
    eid = ids["elders"][0]
    f = tmp_path / "visit.json"
    f.write_text(json.dumps(_visit("1900-01-01", eid)), encoding="utf-8")
    url = engine.url.render_as_string(hide_password=False)
    res = CliRunner().invoke(app, ["visits", "record", str(f), "--database-url", url])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "visited_on" in out and "早于探访关爱工作开始日期" in out and "before the programme began" in out
    assert "Traceback" not in res.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Visit)).scalar_one() == 0
    # a date within the bounds is recorded
    f.write_text(json.dumps(_visit((date.today() - timedelta(days=1)).isoformat(), eid)), encoding="utf-8")
    res = CliRunner().invoke(app, ["visits", "record", str(f), "--database-url", url])
    assert res.exit_code == 0, res.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Visit)).scalar_one() == 1
