"""The demo's follow-up work: receivers and owner units move hazards and referrals on, as people would.

Used by :func:`gridmap.synth.demo.record_history` day by day. Every change goes through the real
path (:func:`gridmap.followups.store.update_hazards` / :func:`~gridmap.followups.store.update_referrals`:
the life-cycle's transitions, events, history and the change feed), one transaction per day and kind,
so the living demo holds hazards 待处理 / 整改中 / 已整改 / 无法整改 / 已移交 and referrals
待受理 / 已受理 / 处理中 / 已办结 (with outcome and 满意/基本满意/不满意), escalated ones among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

import numpy as np
from sqlalchemy import Engine

from gridmap._errors import GridmapError
from gridmap.rules.config import Rules

BEIJING = timezone(timedelta(hours=8))
#: Share of referrals acknowledged by their receiver (the rest stay open; emergencies escalate).
P_ACKNOWLEDGED = 0.7
_REASONS = ("老人拒绝改造，已告知子女", "房屋产权问题，需产权单位处理", "老旧管线需整体改造，暂无法实施")
_OUTCOMES = ("已对接助餐服务", "已安排上门服务", "已告知子女并落实照料", "已协调社区卫生服务站", "已转办相关部门")


@dataclass
class FollowupWork:
    """Scheduled follow-up actions of the demo, applied day by day (nothing after ``now``)."""

    engine: Engine
    rules: Rules
    now: datetime
    rng: np.random.Generator
    user: str
    hazards: dict[date, list[tuple[datetime, int, str, dict[str, Any]]]] = field(default_factory=dict)
    referrals: dict[date, list[tuple[datetime, int, str, dict[str, Any]]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _at(self, at: datetime, kind: str, rid: int, status: str, **kw: Any) -> None:
        book = self.hazards if kind == "h" else self.referrals
        book.setdefault(at.astimezone(BEIJING).date(), []).append((at, rid, status, kw))

    def hazard_opened(self, hid: int, evening: datetime) -> None:
        """An owner unit's work on a hazard just opened (or reopened); a transfer goes to the owner unit."""
        r = self.rng
        u = float(r.random())
        day = evening + timedelta(days=int(r.integers(1, 4)), hours=-int(r.integers(2, 8)))
        if u < 0.25:  # 整改中, then mostly fixed
            self._at(day, "h", hid, "in_progress", note="责任单位已上门，正在整改")
            later = day + timedelta(days=int(r.integers(2, 11)))
            v = float(r.random())
            if v < 0.55:
                self._at(later, "h", hid, "fixed", note="复查确认已整改", photo_ref=f"photos/hazard-{hid}.jpg")
            elif v < 0.63:
                self._at(later, "h", hid, "cannot_fix", reason=_REASONS[int(r.integers(0, len(_REASONS)))])
            elif v < 0.71:
                self._at(later, "h", hid, "transferred", note="移交责任单位处理")
        elif u < 0.55:
            self._at(day + timedelta(days=int(r.integers(0, 4))), "h", hid, "fixed", note="当场整改完毕")
        elif u < 0.60:
            self._at(day + timedelta(days=int(r.integers(1, 6))), "h", hid, "cannot_fix",
                     reason=_REASONS[int(r.integers(0, len(_REASONS)))])
        elif u < 0.65:
            self._at(day, "h", hid, "transferred")

    def referral_opened(self, rid: int, emergency: bool, evening: datetime) -> None:
        """A receiver's work on a referral: acknowledged (most), worked on, closed with satisfaction."""
        r = self.rng
        if r.random() >= P_ACKNOWLEDGED:
            return
        if emergency:  # the first contact confirms within minutes
            ack = evening + timedelta(minutes=int(r.integers(5, self.rules.emergency_ack_minutes)))
        else:
            lag = int(r.integers(0, self.rules.referral_deadline_days + 2))
            ack = evening + timedelta(days=lag, hours=int(r.integers(-8, 0)))
        self._at(ack, "r", rid, "acknowledged")
        self._work(rid, ack)

    def _work(self, rid: int, ack: datetime) -> None:
        r = self.rng
        if r.random() < 0.6:
            ip = ack + timedelta(days=int(r.integers(0, 2)), hours=int(r.integers(1, 6)))
            self._at(ip, "r", rid, "in_progress")
            if r.random() < 0.75:
                self._close(rid, ip + timedelta(days=int(r.integers(1, 5))))
        elif r.random() < 0.3:
            self._close(rid, ack + timedelta(days=int(r.integers(1, 4))))

    def _close(self, rid: int, at: datetime) -> None:
        r = self.rng
        sat = str(r.choice(["满意", "基本满意", "不满意"], p=[0.7, 0.2, 0.1]))
        self._at(at, "r", rid, "closed", outcome=_OUTCOMES[int(r.integers(0, len(_OUTCOMES)))], satisfaction=sat,
                 resolved=bool(r.random() < 0.9))

    def escalated(self, ids: list[int], day: date) -> None:
        """The street acknowledges most escalated emergencies the next morning."""
        for rid in ids:
            if self.rng.random() < 0.9:
                nxt = datetime.combine(day + timedelta(days=1), dtime(9, 0), tzinfo=BEIJING)
                self._at(nxt, "r", rid, "acknowledged", note="街镇已受理升级的紧急情况")
                self._work(rid, nxt)

    def apply(self, day: date) -> None:
        """Apply the actions due on ``day`` (not after the demo's now), in time order."""
        from gridmap.followups.store import HazardChange, ReferralChange, update_hazards, update_referrals

        for book, make, run, key in ((self.hazards, HazardChange, update_hazards, "h"),
                                     (self.referrals, ReferralChange, update_referrals, "r")):
            todo = sorted((a for a in book.pop(day, []) if a[0] <= self.now), key=lambda a: (a[0], a[1]))
            changes = [make(rid, status, at=at, **kw) for at, rid, status, kw in todo]
            if not changes:
                continue
            try:
                done = run(self.engine, changes, by=self.user)
            except GridmapError:  # one of them no longer applies: the rest one by one
                done = []
                for c in changes:
                    try:
                        done += run(self.engine, [c], by=self.user)
                    except GridmapError:
                        continue
            for u in done:
                k = f"{'hazards' if key == 'h' else 'referrals'}_{u.status}"
                self.counts[k] = self.counts.get(k, 0) + 1


__all__ = ["FollowupWork", "P_ACKNOWLEDGED"]
