"""/api/v1/indicators rows carry the 接诉即办 measures (``followups``, additive) equal to the report's sheet
隐患与转介, street by street and for the district, on both backends."""

from __future__ import annotations

import math
from typing import Any

from tests.api.conftest import WEEK, api_world, app  # noqa: F401 - fixtures
from tests.api.test_api import _report, get, make_token

PAIRS = {"新发现隐患": "hazards_found", "已整改": "hazards_fixed", "整改率": "fix_rate", "平均整改天数": "fix_days",
         "逾期未整改": "hazards_overdue", "新转介": "referrals_new", "响应率": "response_rate", "解决率": "resolution_rate",
         "满意率": "satisfaction_rate", "逾期转介": "referrals_overdue"}


def _eq(sheet_value: Any, api_value: Any) -> bool:
    missing = sheet_value is None or (isinstance(sheet_value, float) and math.isnan(sheet_value)) or sheet_value == ""
    if missing:
        return api_value is None
    return api_value is not None and abs(float(sheet_value) - float(api_value)) < 0.051


def test_indicator_rows_carry_the_followup_measures_of_the_report(app, engine, tmp_path):  # noqa: ANN001, F811
    _tid, token = make_token(engine, "dist")
    c = app.server.test_client()
    sheet = _report(engine, tmp_path)["隐患与转介"]
    assert sheet["新发现隐患"].sum() + sheet["已整改"].sum() + sheet["逾期未整改"].sum() > 0  # something to compare
    streets = {r["area"]: r for r in get(c, f"/api/v1/indicators?week={WEEK}&level=street", token)
               .get_json()["rows"]}
    district = get(c, f"/api/v1/indicators?week={WEEK}", token).get_json()["rows"][0]
    checked = 0
    for row in sheet.to_dict("records"):
        api = district if row["街道"] == "海淀区" else streets.get(row["街道"])
        if api is None:
            continue
        for zh, key in PAIRS.items():
            assert _eq(row[zh], api["followups"][key]), (row["街道"], zh, row[zh], api["followups"][key])
        checked += 1
    assert checked == len(sheet) and checked >= 2
    assert all("followups" in r for r in streets.values())
    grid = get(c, f"/api/v1/indicators?week={WEEK}&level=grid", token).get_json()["rows"]
    assert all("followups" not in r for r in grid)  # only district, street and community rows carry them
