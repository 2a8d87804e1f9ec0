"""``gridmap report`` gains the sheet 隐患与转介 (both backends), and nothing is overdue before its due date: the
running week on Monday 12-07 does not show a hazard due 12-10 as overdue (it did: the report ran as of Sunday)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import Engine
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.enums import HazardKind, HazardStatus, ReferralStatus, ReferralTarget, Severity
from gridmap.followups.measures import FOLLOWUP_COLUMNS
from gridmap.store.db import session_scope
from gridmap.store.models import Hazard, Referral
from tests.followups.conftest import register

REQUIRED = ["街道", "新发现隐患", "已整改", "整改率", "平均整改天数", "逾期未整改", "新转介", "响应率", "解决率",
            "满意率", "逾期转介"]


def _store(engine: Engine) -> dict[str, Any]:
    ids = register(engine, 2)
    e1, e2 = ids["elders"]
    opened = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    with session_scope(engine, user="test") as s:
        s.add(Hazard(elder_id=e1, kind=HazardKind.GAS, severity=Severity.HIGH, source="visit", owner_unit="燃气",
                     status=HazardStatus.IN_PROGRESS, opened_on=date(2026, 12, 3), deadline=date(2026, 12, 10)))
        s.add(Hazard(elder_id=e2, kind=HazardKind.ELECTRICITY, severity=Severity.MEDIUM, source="visit",
                     owner_unit="电力", status=HazardStatus.FIXED, opened_on=date(2026, 12, 1),
                     deadline=date(2026, 12, 8), closed_on=date(2026, 12, 4)))
        s.add(Referral(elder_id=e1, need="助餐", target=ReferralTarget.FIRST_CONTACT, emergency=False,
                       status=ReferralStatus.OPEN, opened_at=opened, deadline=opened + timedelta(hours=9)))
    return ids


def _sheet(path: Path, name: str) -> list[dict[str, Any]]:
    ws = openpyxl.load_workbook(path)[name]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def _report(engine: Engine, tmp_path: Path, week: str, today: str) -> Path:
    out = tmp_path / f"{week}-{today}.xlsx"
    res = CliRunner().invoke(app, ["report", "--week", week, "--today", today, "--out", str(out),
                                   "--database-url", engine.url.render_as_string(hide_password=False)])
    assert res.exit_code == 0, res.output
    return out


def test_report_sheet_and_nothing_overdue_before_its_due_date(engine: Engine, tmp_path: Path) -> None:
    _store(engine)
    monday = _report(engine, tmp_path, "2026-W50", "2026-12-07")
    wb = openpyxl.load_workbook(monday)
    assert "隐患与转介" in wb.sheetnames
    rows = _sheet(monday, "隐患与转介")
    assert list(rows[0])[:len(FOLLOWUP_COLUMNS)] == FOLLOWUP_COLUMNS
    assert set(REQUIRED) <= set(rows[0])
    assert [r["街道"] for r in rows] == ["甲街道", "海淀区"]
    jia = rows[0]
    # the running week, Monday: the gas hazard due 12-10 and the referral due tonight are not overdue
    assert (jia["逾期未整改"], jia["逾期转介"], jia["新转介"], jia["新发现隐患"]) == (0, 0, 1, 0)
    street = {r["街道"]: r for r in _sheet(monday, "街道")}["甲街道"]
    assert street["逾期未整改隐患"] == 0 and street["未整改隐患"] == 1
    assert street["逾期转介"] == 0

    friday = _sheet(_report(engine, tmp_path, "2026-W50", "2026-12-11"), "隐患与转介")
    assert (friday[0]["逾期未整改"], friday[0]["逾期转介"]) == (1, 1)
    assert friday[0]["响应率"] == 0  # due on Monday evening, never acknowledged

    past = _sheet(_report(engine, tmp_path, "2026-W49", "2026-12-07"), "隐患与转介")
    total = past[-1]
    assert total["街道"] == "海淀区"
    # week 49: both hazards found, the electric one fixed in 3 days; the gas one still open → 整改率 1/2
    assert (total["新发现隐患"], total["已整改"], total["平均整改天数"]) == (2, 1, 3)
    assert float(total["整改率"]) == 0.5
