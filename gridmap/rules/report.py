"""The supervision report: indicators per street, steward and community in one xlsx, laggards first.

The first sheet (街道) has one row per street with the columns 街道, 周探访率,
月有效探访率, 逾期探访, 未整改隐患 first; then stewards and communities, the
接诉即办 measures of hazards and referrals per street with a 海淀区 total
(隐患与转介, :func:`gridmap.followups.measures.followup_sheet`), the
responsibility list of 附件1-1 (职责任务清单) and the definitions (说明).
Written by :func:`gridmap.sheets.write_frames_xlsx` (names of areas and stewards
are never written as formulas; the file is owner-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from gridmap.rules.config import load_responsibilities
from gridmap.rules.indicators import INDICATOR_LABELS, Period
from gridmap.sheets import write_frames_xlsx

#: The definitions of the sheet 隐患与转介 (in 说明; :mod:`gridmap.followups.measures` in full).
FOLLOWUP_NOTES = {
    "项目": ["隐患与转介：截至", "新发现隐患", "已整改", "整改率", "平均整改天数", "逾期未整改", "新转介", "响应率",
           "解决率", "满意率", "平均办结天数", "逾期转介", "已升级"],
    "说明": ["截至日：往期为统计期末日，本期为今日；任何事项在到期日之前都不算逾期",
           "统计期内（至截至日）发现的隐患数", "统计期内整改完成（已整改）的隐患数",
           "已整改 ÷（已整改 + 截至日仍未整改），无法整改与已移交不计",
           "统计期内已整改隐患从发现到整改的平均天数",
           "截至日仍未整改（含整改中）且整改期限早于截至日的隐患数",
           "统计期内新发起的转介数",
           "到期日在统计期内且已响应或已过期的转介中，在期限内受理（或处理、办结）的比例",
           "统计期内办结的转介中，问题得到解决的比例", "统计期内办结且回访评价的转介中，满意或基本满意的比例",
           "统计期内办结转介从发起到办结的平均天数", "截至日仍未办结且期限早于截至日的转介数",
           "统计期内升级到街道的紧急转介数（每件只计一次）"],
}

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
    followups: pd.DataFrame | None = None,
    as_of: date | None = None,
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
    extra_notes: Mapping[str, list[str]] | None = None,
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
    followups
        The sheet 隐患与转介 (:func:`gridmap.followups.measures.followup_sheet`).
    as_of
        The as-of date of a period still running (shown in 说明); default: the period's end.
    extra_sheets, extra_notes
        More sheets written after 隐患与转介 (issue 17 part B: 设备, 驿站, 家庭医生, 重点摸排,
        :func:`gridmap.care.report.care_sheets`) and their 说明 rows (项目, 说明).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    resp = pd.DataFrame(load_responsibilities()).rename(
        columns={"number": "序号", "task": "主要任务", "unit": "责任单位"})[["序号", "主要任务", "责任单位"]]
    cut = as_of if as_of is not None and as_of < period.end else period.end
    notes = pd.DataFrame({"项目": ["统计周期", "截至", "周探访率", "月有效探访率", "逾期探访",
                                 "未整改隐患", "排序"],
                          "说明": [period.label, cut.isoformat(),
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
    if followups is not None:
        sheets["隐患与转介"] = followups
        notes = pd.concat([notes, pd.DataFrame(FOLLOWUP_NOTES)], ignore_index=True)
    for name, frame in (extra_sheets or {}).items():  # issue 17 part B
        sheets[name] = frame
    if extra_notes:
        notes = pd.concat([notes, pd.DataFrame(extra_notes)], ignore_index=True)
    sheets["职责任务清单"] = resp
    sheets["说明"] = notes
    percent = {h: "0.0%" for frame in sheets.values() for h in map(str, frame.columns)
               if h in ("周探访率", "月有效探访率", "整改率", "响应率", "解决率", "满意率", "巡视探访率", "完成率")
               or h.endswith("覆盖率")}
    write_frames_xlsx(path, sheets, number_formats=percent)  # text inert, owner-only
    return path
