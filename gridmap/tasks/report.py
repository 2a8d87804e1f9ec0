"""The 服务任务 sheet of ``gridmap report``: service tasks and care services per street, with a 海淀区 total.

Per street (of the elder) for the period: 新服务任务 (opened), 已完成, 已取消, 完成率 (done ÷ (done + still
open or in progress at the cut)), 平均完成天数, 逾期未完成 (open or in progress past the due date at the cut),
关爱服务次数 (care services recorded against a task in the period), 满意率 (非常满意/满意/基本满意 among the
rated ones) and 非有效探访 (visits of the period stored but not effective: items of 五 left unanswered).
Computed from the store's rows in plain pandas; nothing is overdue before its due date.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

COLUMNS = ["街道", "新服务任务", "已完成", "已取消", "完成率", "平均完成天数", "逾期未完成", "关爱服务次数", "满意率",
           "非有效探访"]

NOTES = {
    "项目": ["服务任务", "服务任务：完成率", "服务任务：满意率", "非有效探访"],
    "说明": [("探访记录的老年人服务需求（助餐、助医等，规则 service_needs）生成的服务任务，由老人的服务管家或规则指定单位承接，"
            "按规则的天数完成；统计期内新产生、完成、取消的任务数，截至日仍未完成且已过完成时限的为逾期未完成"),
           "已完成 ÷（已完成 + 截至日仍待处理或处理中）",
           "统计期内针对服务任务登记的关爱服务（附件1-2 第六部分）中，评价为非常满意、满意或基本满意的比例",
           "统计期内已保存但未达到有效探访要求（规则 effective_answers：第五部分规定项目未填写）的探访次数，不计入探访率"],
}


def task_sheet(engine: Engine, *, start: date, end: date, as_of: date | None = None,
               street: str | None = None, streets: list[str] | None = None) -> pd.DataFrame:
    """The 服务任务 sheet for ``[start, end]`` (cut at ``as_of`` when earlier), one row per street and 海淀区 first."""
    from gridmap.store.models import CareService, Elder, Street, Visit
    from gridmap.tasks.store import read_task_frame

    cut = min(end, as_of) if as_of is not None else end
    t = read_task_frame(engine, street=street)
    with engine.connect() as conn:
        cq = (select(CareService.served_on, CareService.satisfaction, Street.name.label("street"))
              .join(Elder, Elder.id == CareService.elder_id).outerjoin(Street, Street.id == Elder.street_id)
              .where(CareService.task_id.is_not(None), CareService.served_on >= start, CareService.served_on <= cut))
        vq = (select(Street.name.label("street")).select_from(Visit).join(Elder, Elder.id == Visit.elder_id)
              .outerjoin(Street, Street.id == Elder.street_id)
              .where(Visit.effective.is_(False), Visit.visited_on >= start, Visit.visited_on <= cut))
        if street is not None:
            cq, vq = cq.where(Street.name == street), vq.where(Street.name == street)
        cs = pd.DataFrame([dict(r) for r in conn.execute(cq).mappings()], columns=["served_on", "satisfaction", "street"])
        iv = pd.DataFrame([dict(r) for r in conn.execute(vq).mappings()], columns=["street"])
    closed = pd.to_datetime(t["closed_at"], utc=True).dt.tz_convert("Asia/Shanghai").dt.date
    opened = pd.to_datetime(t["opened_on"]).dt.date
    due = pd.to_datetime(t["due_on"]).dt.date
    active_at_cut = (opened <= cut) & (closed.isna() | (closed > cut)) if len(t) else pd.Series(dtype=bool)
    names = sorted(set(streets or []) | set(t["street"].dropna()) | set(cs["street"].dropna()) | set(iv["street"].dropna()))

    def row(label: str, mask_t: Any, mask_c: Any, mask_v: Any) -> dict[str, Any]:
        tt = t[mask_t]
        new = int(((opened[mask_t] >= start) & (opened[mask_t] <= cut)).sum())
        in_period = (closed[mask_t] >= start) & (closed[mask_t] <= cut)
        done = tt[in_period & (tt["status"] == "done")]
        cancelled = int((in_period & (tt["status"] == "cancelled")).sum())
        still = int(active_at_cut[mask_t].sum())
        overdue = int((active_at_cut[mask_t] & (due[mask_t] < cut)).sum())
        days = [(c - o).days for c, o in zip(closed[done.index], opened[done.index], strict=True)]
        c = cs[mask_c]
        rated = c["satisfaction"].dropna().map(lambda s: str(getattr(s, "value", s)))
        return {"街道": label, "新服务任务": new, "已完成": len(done), "已取消": cancelled,
                "完成率": (len(done) / (len(done) + still)) if (len(done) + still) else None,
                "平均完成天数": round(sum(days) / len(days), 1) if days else None,
                "逾期未完成": overdue, "关爱服务次数": len(c),
                "满意率": (float(rated.isin(["very_satisfied", "satisfied", "neutral"]).mean()) if len(rated) else None),
                "非有效探访": int(mask_v.sum())}

    rows = [row("海淀区", pd.Series(True, index=t.index), pd.Series(True, index=cs.index),
                pd.Series(True, index=iv.index))]
    rows += [row(n, t["street"] == n, cs["street"] == n, iv["street"] == n) for n in names]
    return pd.DataFrame(rows, columns=COLUMNS)


__all__ = ["COLUMNS", "NOTES", "task_sheet"]
