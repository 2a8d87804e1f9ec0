"""``gridmap report`` gains the sheet 服务任务 (both backends): tasks opened, done, cancelled, overdue and the
care services' satisfaction per street with a 海淀区 total, and the visits stored but not effective."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import Engine
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.rules.store import record_visit
from gridmap.tasks import store as ts
from gridmap.tasks.report import COLUMNS
from tests.tasks.conftest import RULES, phone, register

AT = datetime(2026, 12, 3, 4, tzinfo=UTC)


def _sheet(path: Path, name: str) -> list[dict[str, Any]]:
    rows = list(openpyxl.load_workbook(path)[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_report_has_the_service_task_sheet(engine: Engine, tmp_path: Path) -> None:
    e0, e1, e2 = register(engine)["elders"]
    a = record_visit(engine, phone(e0, "2026-12-01", needs=["助餐", "助医"]), rules=RULES, now=AT)
    b = record_visit(engine, phone(e1, "2026-12-01", needs=["助浴"]), rules=RULES, now=AT)
    record_visit(engine, phone(e2, "2026-12-02", illness=None, mood=None, needs=None), rules=RULES, now=AT)  # not effective
    meal, medical = a.task_ids
    ts.serve_task(engine, meal, by="s1", satisfaction="满意", served_on=date(2026, 12, 2), now=AT)
    ts.serve_task(engine, medical, by="s1", satisfaction="不满意", served_on=date(2026, 12, 3), now=AT)
    # 助浴 (due 12-08) stays open: overdue only after its due date
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(app, ["report", "--week", "2026-W49", "--today", "2026-12-06", "--out", str(out),
                                   "--database-url", engine.url.render_as_string(hide_password=False)])
    assert res.exit_code == 0, res.output
    rows = _sheet(out, "服务任务")
    assert list(rows[0]) == COLUMNS
    total, jia = rows[0], next(r for r in rows if r["街道"] == "甲街道")
    assert total["街道"] == "海淀区"
    for r in (total, jia):
        assert (r["新服务任务"], r["已完成"], r["已取消"], r["逾期未完成"], r["关爱服务次数"], r["非有效探访"]) == (
            3, 2, 0, 0, 2, 1)
        assert abs(r["完成率"] - 2 / 3) < 1e-9 and r["满意率"] == 0.5 and r["平均完成天数"] == 2  # closed on 12-03 (recorded), opened 12-01
    assert b.task_ids
    notes = _sheet(out, "说明")
    assert any(n["项目"] == "服务任务" for n in notes)
    # the next week, as of 12-09: the 助浴 task is past its due date (12-08) and still open
    later = tmp_path / "r2.xlsx"
    res = CliRunner().invoke(app, ["report", "--week", "2026-W50", "--today", "2026-12-09", "--out", str(later),
                                   "--database-url", engine.url.render_as_string(hide_password=False)])
    assert res.exit_code == 0, res.output
    assert _sheet(later, "服务任务")[0]["逾期未完成"] == 1
