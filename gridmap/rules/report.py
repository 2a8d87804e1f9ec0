"""The supervision report: indicators per street, steward and community in one xlsx, laggards first.

The first sheet (街道) has one row per street with the columns 街道, 周探访率,
月有效探访率, 逾期探访, 未整改隐患 first; then stewards and communities, the
responsibility list of 附件1-1 (职责任务清单) and the definitions (说明).
Written by :func:`gridmap.sheets.write_frames_xlsx` (names of areas and stewards
are never written as formulas; the file is owner-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gridmap.rules.config import load_responsibilities
from gridmap.sheets import write_frames_xlsx
from gridmap.rules.indicators import INDICATOR_LABELS, Period

#: The first columns of the street sheet, in order.
HEAD_COLUMNS = ["周探访率", "月有效探访率", "逾期探访", "未整改隐患"]

_LEVEL_LABELS = {"street": "街道", "steward": "探访管家", "community": "社区", "grid": "网格",
                 "district": "区"}
_MODE_LABELS = {"visits_phone": "电话问候次数", "visits_in_home": "上门探访次数",
                "visits_video": "音视频探访次数", "visits_remote_monitoring": "远程监测次数",
                "visits_other": "其他方式次数"}


def to_report_frame(ind: pd.DataFrame, level: str, names: Mapping[Any, str] | None = None) -> pd.DataFrame:
    """Indicators with Chinese headers, the unit's name first, then 周探访率, 月有效探访率, 逾期探访, 未整改隐患."""
    df = ind.copy()
    unit = _LEVEL_LABELS[level]
    idx = df.index.to_series()
    df.insert(0, unit, idx.map(names).fillna(idx.astype(str)) if names else idx.astype(str))
    df = df.rename(columns={**INDICATOR_LABELS, **_MODE_LABELS})
    first = [unit] + HEAD_COLUMNS
    rest = [c for c in df.columns if c not in first]
    return df[first + rest].reset_index(drop=True)


def write_report(
    path: str | Path,
    streets: pd.DataFrame,
    *,
    period: Period,
    stewards: pd.DataFrame | None = None,
    communities: pd.DataFrame | None = None,
    steward_names: Mapping[Any, str] | None = None,
) -> Path:
    """Write the supervision report.

    Parameters
    ----------
    path
        The xlsx file to write.
    streets, stewards, communities
        Outputs of :func:`gridmap.rules.indicators.compute_indicators` at those
        levels (already sorted with the laggards first).
    period
        The period reported on (shown in the 说明 sheet).
    steward_names
        Steward id → "code name" for the steward sheet.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    resp = pd.DataFrame(load_responsibilities()).rename(
        columns={"number": "序号", "task": "主要任务", "unit": "责任单位"})[["序号", "主要任务", "责任单位"]]
    notes = pd.DataFrame({"项目": ["统计周期", "截至", "周探访率", "月有效探访率", "逾期探访",
                                 "未整改隐患", "排序"],
                          "说明": [period.label, period.end.isoformat(),
                                 "有意愿接受探访的在册老人中，本周（各周）至少有1次有效探访的比例（目标100%）",
                                 f"在册老人中，{period.month_start:%Y-%m} 月内至少有1次有效探访的比例"
                                 f"（统计至 {period.month_end.isoformat()}）",
                                 "距上次有效探访超过7天（有意愿者）或31天（仅每月联系者）的老人数",
                                 "截至统计日尚未整改的隐患数",
                                 "周探访率最低者在前，其次为逾期探访多者"]})
    sheets: dict[str, pd.DataFrame] = {"街道": to_report_frame(streets, "street")}
    if stewards is not None:
        sheets["探访管家"] = to_report_frame(stewards, "steward", steward_names)
    if communities is not None:
        sheets["社区"] = to_report_frame(communities, "community")
    sheets["职责任务清单"] = resp
    sheets["说明"] = notes
    percent = {h: "0.0%" for frame in sheets.values() for h in map(str, frame.columns)
               if h in ("周探访率", "月有效探访率") or h.endswith("覆盖率")}
    write_frames_xlsx(path, sheets, number_formats=percent)  # text inert, owner-only
    return path
