"""Write the synthetic register (and its stewards and visits) as xlsx or UTF-8 csv with Chinese headers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from gridmap._errors import ValidationError

#: Chinese headers of the stewards sheet.
STEWARD_HEADERS: dict[str, str] = {
    "code": "编号", "name": "姓名", "kind": "类别", "organisation": "所属单位", "phone": "联系电话",
    "community_code": "社区代码", "station_point_id": "驿站编号", "base_lon": "经度", "base_lat": "纬度",
    "travel_mode": "出行方式",
}
#: Chinese headers of the visits sheet (the form's section 五 words).
VISIT_HEADERS: dict[str, str] = {
    "elder_key": "老人编号", "seq": "探访次数", "visited_on": "探访日期", "mode": "探访方式",
    "visitor_role": "探访人员类别", "visitor_name": "探访人员", "family_change": "家庭人口",
    "expression": "表达能力", "mobility": "行动能力", "illness": "疾病状况", "illness_name": "疾病名称",
    "mood": "情绪状态", "gas_safety": "燃气安全", "water_heating_safety": "水暖安全",
    "electricity_safety": "用电安全", "personal_hygiene": "个人卫生", "home_hygiene": "家庭卫生",
    "indoor_environment": "室内环境", "needs": "老年人服务需求", "late_entry": "是否补录",
}


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def write_table(df: pd.DataFrame, path: Path | str, *, sheet_name: str = "台账") -> Path:
    """Write a table to ``.xlsx`` (openpyxl write-only, fast) or ``.csv`` (UTF-8 with BOM for Excel).

    Raises
    ------
    ValidationError
        If the extension is neither ``.xlsx`` nor ``.csv``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".xlsx", ".csv"):
        raise ValidationError(f"output must end in .xlsx or .csv, got {path.name}",
                              f"输出文件须为 .xlsx 或 .csv：{path.name}", field="out", value=str(path),
                              code="extension")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".csv":
        out = df.copy()
        for c in out.columns:
            if out[c].dtype == bool:
                out[c] = out[c].map({True: "是", False: "否"})
        out.to_csv(path, index=False, encoding="utf-8-sig")
        return path
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet_name)
    ws.append([str(c) for c in df.columns])
    for row in df.itertuples(index=False, name=None):
        ws.append([_clean(v) for v in row])
    wb.save(path)
    return path


def write_register(register: Any, out: Path | str, *, stewards_out: Path | str | None = None,
                   visits_out: Path | str | None = None) -> list[Path]:
    """Write the elders sheet (canonical Chinese headers, 是/否) and optionally stewards and visits."""
    from gridmap.domain.enums import StewardKind, TravelMode, VisitMode, VisitorRole

    paths = [write_table(register.sheet(), out, sheet_name="台账")]
    if stewards_out is not None:
        st = register.stewards[list(STEWARD_HEADERS)].copy()
        st["kind"] = st["kind"].map(lambda v: StewardKind(v).label)
        st["travel_mode"] = st["travel_mode"].map(lambda v: TravelMode(v).label)
        paths.append(write_table(st.rename(columns=STEWARD_HEADERS), stewards_out, sheet_name="管家"))
    if visits_out is not None:
        from gridmap.domain import enums as E

        v = register.visits[list(VISIT_HEADERS)].copy()
        v["mode"] = v["mode"].map(lambda x: VisitMode(x).label)
        v["visitor_role"] = v["visitor_role"].map(lambda x: VisitorRole(x).label)
        for col, cls in (("family_change", E.FamilyChange), ("expression", E.Change), ("mobility", E.Change),
                         ("illness", E.IllnessChange), ("mood", E.Change), ("gas_safety", E.Safety),
                         ("water_heating_safety", E.Safety), ("electricity_safety", E.Safety),
                         ("personal_hygiene", E.Change), ("home_hygiene", E.Change),
                         ("indoor_environment", E.Change)):
            v[col] = v[col].map(lambda x, c=cls: c(x).label if isinstance(x, str) else None)
        paths.append(write_table(v.rename(columns=VISIT_HEADERS), visits_out, sheet_name="探访记录"))
    return paths
