"""``gridmap visits record -``: visits piped as JSON lines, each stored as its line arrives."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.store.models import Visit
from tests.rules.test_store_indicators import ANSWERS, _db_url, _history


def _visits_of(engine, elder_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Visit).where(Visit.elder_id == elder_id)).scalar_one()


def test_stream_records_each_line_refuses_bad_lines_and_stores_a_key_once(engine):
    ids, street_of, *_ = _history(engine, n=12, seed=9)
    a, b = sorted(street_of)[:2]
    before = {a: _visits_of(engine, a), b: _visits_of(engine, b)}
    line = dict(elder_id=a, visited_on="2026-11-27", mode="上门探访", visitor_role="志愿者", **ANSWERS)
    keyed = dict(line, elder_id=b, idempotency_key="phone-7f3a")
    lines = [json.dumps(line, ensure_ascii=False), "not json",
             json.dumps(dict(line, visited_on="2099-01-01"), ensure_ascii=False),
             json.dumps(keyed, ensure_ascii=False), json.dumps(keyed, ensure_ascii=False), ""]
    res = CliRunner().invoke(app, ["visits", "record", "-", "--database-url", _db_url(engine)],
                             input="\n".join(lines) + "\n")
    assert res.exit_code == 2  # two lines refused, the others stored
    out = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [(o["line"], o["elder_id"], o["status"]) for o in out] == [(1, a, "stored"), (4, b, "stored"),
                                                                       (5, b, "duplicate")]
    assert out[1]["visit_id"] == out[2]["visit_id"]
    assert "line 2" in res.stderr and "第2行" in res.stderr
    assert "line 3" in res.stderr and "visited_on" in res.stderr
    assert _visits_of(engine, a) == before[a] + 1 and _visits_of(engine, b) == before[b] + 1
