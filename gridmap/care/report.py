"""The sheets issue 17 part B adds to ``gridmap report``: 设备, 驿站, 家庭医生, 重点摸排 (Chinese headers).

Built from the store by :func:`care_sheets`; written with the report's other sheets by
:func:`gridmap.rules.report.write_report` (``extra_sheets``: text never becomes a formula).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from gridmap.rules.config import Rules

DEVICE_HEADERS = {"street": "街道", "community": "社区", "kind": "设备类型", "installer": "安装单位",
                  "entitled": "应配备", "needed": "待配备", "requested": "已申请", "installed": "已安装",
                  "refused": "拒绝安装", "faulty": "故障", "coverage": "覆盖率"}
STATION_HEADERS = {"week": "周次", "station": "驿站", "street": "街道", "signed": "签约老人", "visited": "已巡视探访",
                   "rate": "巡视探访率", "steward_visited": "探访管家也探访", "double_visits": "重复探访"}
#: The 说明 rows of the four sheets.
NOTES = {
    "项目": ["设备", "设备：覆盖率", "驿站", "驿站：重复探访", "家庭医生", "重点摸排"],
    "说明": ["按规则（devices.kinds）应配备的老人及其设备状态：联网烟感报警器与消防“四件套”为全部在册老人，"
           "一键式智能终端为本区户籍80周岁及以上及计划生育特殊家庭老人，居家安全智能产品为低保、低收入、生活困难、特困老人",
           "已安装 ÷ 应配备（自费申请者不计）",
           "签约驿站或家庭养老照护床位的老人由签约驿站巡视探访、街道监督（四(二)）；巡视探访率 = 本周驿站有效探访达到规定次数的签约老人 ÷ 签约老人；"
           "这些老人不计入探访管家的周探访率与周计划",
           "同一周内驿站与政府购买的探访管家都探访了同一签约老人",
           "未签约家庭医生且有签约意愿的老人，按最近的社区卫生服务中心（站）分配",
           "80周岁及以上独居、空巢老人中本月尚未完成上门摸排（有效上门探访）的老人数，按社区"],
}


def device_sheet(cov: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Coverage rows (:func:`gridmap.devices.domain.coverage`) with a 海淀区 total per kind first, Chinese headers."""
    import pandas as pd

    from gridmap.care.rules import care_rules
    from gridmap.devices.domain import STATES

    care = care_rules(rules)
    if cov.empty:
        return pd.DataFrame(columns=list(DEVICE_HEADERS.values()))
    tot = cov.groupby("kind", sort=False)[["entitled", *STATES]].sum().reset_index()
    tot.insert(0, "street", "海淀区")
    tot.insert(1, "community", "合计")
    out = pd.concat([tot, cov], ignore_index=True)
    out["coverage"] = out["installed"] / out["entitled"]
    out["installer"] = out["kind"].map(lambda k: care.devices[k].installer)
    out["kind"] = out["kind"].map(lambda k: care.devices[k].label)
    return out[list(DEVICE_HEADERS)].rename(columns=DEVICE_HEADERS)


def station_sheet(views: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The station views of the report's weeks, one row per week and station, Chinese headers."""
    import pandas as pd

    parts = [v.assign(week=w) for w, v in views if len(v)]
    if not parts:
        return pd.DataFrame(columns=list(STATION_HEADERS.values()))
    out = pd.concat(parts, ignore_index=True)
    return out[list(STATION_HEADERS)].rename(columns=STATION_HEADERS)


def doctor_sheet(handover: pd.DataFrame) -> pd.DataFrame:
    """Per health centre (and community): elders who want a family doctor."""
    import pandas as pd

    if handover.empty:
        return pd.DataFrame(columns=["卫生服务中心（站）", "街道", "社区", "有签约意愿未签约"])
    g = handover.groupby(["centre", "street", "community"], dropna=False).size().rename("n").reset_index()
    g = g.sort_values(["centre", "n"], ascending=[True, False], kind="stable")
    return g.rename(columns={"centre": "卫生服务中心（站）", "street": "街道", "community": "社区", "n": "有签约意愿未签约"})


def survey_sheet(survey: pd.DataFrame, month: date) -> pd.DataFrame:
    """重点摸排 per community for ``month``."""
    from gridmap.care.domain import per_community

    per = per_community(survey, "未摸排")
    per.insert(0, "月份", f"{month:%Y-%m}")
    return per.rename(columns={"street": "街道", "community": "社区"})


def care_sheets(engine: Engine, rules: Rules, *, weeks: Sequence[str], month: date, as_of: date,
                street: str | None = None) -> dict[str, Any]:
    """The four sheets (设备, 驿站, 家庭医生, 重点摸排) for the report's period."""
    from gridmap.care.cli import doctor_frame, station_frames, survey_frame
    from gridmap.devices.store import coverage

    return {
        "设备": device_sheet(coverage(engine, rules=rules, street=street, on=as_of), rules),
        "驿站": station_sheet([(w, station_frames(engine, w, rules, street=street)[0]) for w in weeks]),
        "家庭医生": doctor_sheet(doctor_frame(engine, rules, street=street)),
        "重点摸排": survey_sheet(survey_frame(engine, month, rules, street=street), month),
    }
