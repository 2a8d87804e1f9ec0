"""The demo's service-task work (issue 17 part A): 服务管家 and units move the tasks the needs opened, as people would.

Used by :func:`gridmap.synth.demo.record_history` day by day, like :mod:`gridmap.synth.followups`: every change
goes through the real path (:func:`gridmap.tasks.store.work_tasks`: the life-cycle's transitions, care services
numbered per elder and rated, events, history and the change feed), one transaction per day, nothing after
``now`` — so the living demo holds tasks 待处理 / 处理中 / 已完成 / 已取消. A need a service steward recorded at
their own visit is served that evening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Engine

from gridmap._errors import GridmapError

BEIJING = timezone(timedelta(hours=8))
_SATISFACTION = ("非常满意", "满意", "基本满意", "不满意")
_SAT_P = (0.25, 0.55, 0.15, 0.05)
_CANCEL = ("老人已入住养老机构", "子女已自行安排", "老人表示暂不需要")
_PROVIDERS = ("社区养老服务驿站", "街道区域养老服务中心", "社区卫生服务站", "物业服务企业")


@dataclass
class TaskWorkPlan:
    """Scheduled work on the demo's service tasks, applied day by day."""

    engine: Engine
    now: datetime
    rng: np.random.Generator
    user: str
    book: dict[date, list[tuple[datetime, int, dict[str, Any]]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _at(self, at: datetime, tid: int, **kw: Any) -> None:
        self.book.setdefault(at.astimezone(BEIJING).date(), []).append((at, tid, kw))

    def task_opened(self, tid: int, evening: datetime, *, served_at_visit: bool = False) -> None:
        """What the receiver does with a task just opened (some wait, most are served within days)."""
        r = self.rng
        sat = str(_SATISFACTION[int(r.choice(len(_SATISFACTION), p=_SAT_P))])
        provider = str(_PROVIDERS[int(r.integers(0, len(_PROVIDERS)))])
        if served_at_visit:
            self._at(evening, tid, serve={"satisfaction": sat, "provider": provider, "description": "探访时对接服务"})
            return
        u = float(r.random())
        start = evening + timedelta(days=int(r.integers(0, 2)), hours=-int(r.integers(1, 6)))
        if u < 0.15:
            return  # nobody has acted yet (待处理)
        if u < 0.92:
            self._at(start, tid, status="in_progress", note="服务管家已联系老人")
        if 0.35 <= u < 0.92:
            later = start + timedelta(days=int(r.integers(1, 5)))
            self._at(later, tid, serve={"satisfaction": sat, "provider": provider, "description": "已上门服务"})
        elif u >= 0.92:
            self._at(start, tid, status="cancelled", note=str(_CANCEL[int(r.integers(0, len(_CANCEL)))]))

    def apply(self, day: date) -> None:
        """Apply the day's work (nothing after ``now``), one transaction."""
        from gridmap.tasks.store import TaskWork, work_tasks

        items = [TaskWork(tid, status=kw.get("status"), note=kw.get("note"),
                          serve={"served_on": at.astimezone(BEIJING).date(), **kw["serve"]} if "serve" in kw else None,
                          at=at)
                 for at, tid, kw in sorted(self.book.pop(day, []), key=lambda x: (x[0], x[1])) if at <= self.now]
        if not items:
            return
        try:
            work_tasks(self.engine, items, by=self.user)
        except GridmapError:  # one refused item (a task cancelled before its service): item by item
            for it in items:
                try:
                    work_tasks(self.engine, [it], by=self.user)
                except GridmapError:
                    continue
                self._count(it)
            return
        for it in items:
            self._count(it)

    def _count(self, it: Any) -> None:
        key = "tasks_served" if it.serve is not None else f"tasks_{it.status}"
        self.counts[key] = self.counts.get(key, 0) + 1
