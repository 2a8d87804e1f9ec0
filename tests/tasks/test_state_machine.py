"""Random sequences of task changes, care services and repeated needs against the store (hypothesis state
machine), on both backends.

Invariants after every step: the stored status is the one the life-cycle table gives; ``closed_at`` is set iff
the state is terminal; one event per transition (plus the opening); care services numbered 1, 2, … per elder;
a refused change writes nothing (no event, no change-feed row); a need recorded again while its task is open
opens no second task.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select

from gridmap._errors import GridmapError
from gridmap.rules.store import record_visit
from gridmap.store.models import ChangeLog, ServiceTaskEvent
from gridmap.tasks import store as ts
from gridmap.tasks.lifecycle import ACTIVE_TASK, TaskStatus
from tests.tasks.conftest import NOW, RULES, phone, register

T = TaskStatus
OK = {T.OPEN: {T.IN_PROGRESS, T.DONE, T.CANCELLED}, T.IN_PROGRESS: {T.DONE, T.CANCELLED}}


def _new_elder(engine: Engine, like: int) -> int:
    """A new elder (each example its own) in the street and with the 服务管家 of elder ``like``."""
    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder

    with session_scope(engine, user="test") as s:
        src = s.get(Elder, like)
        e = Elder(name="随机老人", birth_date=date(1940, 1, 1), street_id=src.street_id, community_id=src.community_id,
                  service_steward_id=src.service_steward_id, categories=[])
        s.add(e)
        s.flush()
        return int(e.id)


class Tasks(RuleBasedStateMachine):
    engine: Engine
    like: int

    @initialize()
    def a_visit_records_a_meal_need(self) -> None:
        self.elder = _new_elder(self.engine, self.like)
        self.day = date(2026, 10, 1)
        self.task = self._visit()
        assert self.task is not None
        self.status, self.events = T.OPEN, 1
        self.services = len(ts.read_care_services(self.engine, elder_id=self.elder))

    def _visit(self) -> int | None:
        self.day += timedelta(days=1)
        res = record_visit(self.engine, phone(self.elder, self.day.isoformat(), needs=["助餐"],
                                              started_at=f"{self.day.isoformat()}T09:00"), rules=RULES, now=NOW)
        return res.task_ids[0] if res.task_ids else None

    def _feed(self) -> int:
        with self.engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(ChangeLog)))

    @rule(to=st.sampled_from(list(TaskStatus)), note=st.sampled_from([None, "老人入住养老机构"]))
    def move(self, to: TaskStatus, note: str | None) -> None:
        ok = to in OK.get(self.status, set()) and (to != T.CANCELLED or note is not None)
        before = self._feed()
        try:
            ts.update_task(self.engine, self.task, to, by="tester", note=note, now=NOW)
        except GridmapError as exc:
            assert not ok, exc
            assert self._feed() == before
            return
        assert ok, (self.status, to)
        self.status, self.events = to, self.events + 1
        assert self._feed() == before + 1

    @rule(sat=st.sampled_from([None, "满意", "基本满意", "不满意"]), complete=st.booleans())
    def serve(self, sat: str | None, complete: bool) -> None:
        before = self._feed()
        try:
            res = ts.serve_task(self.engine, self.task, by="tester", satisfaction=sat, complete=complete,
                                served_on=self.day, now=NOW)
        except GridmapError as exc:
            assert self.status.terminal, exc  # only a closed task refuses a care service
            assert self._feed() == before
            return
        assert not self.status.terminal
        self.services += 1
        assert res.seq == self.services  # 第 n 次开展关爱
        if complete:
            self.status, self.events = T.DONE, self.events + 1
        assert res.task_status == self.status.value and self._feed() == before + 1

    @rule()
    def the_need_is_recorded_again(self) -> None:
        new = self._visit()
        if self.status in ACTIVE_TASK:
            assert new is None  # not duplicated
        else:
            assert new is not None and new != self.task
            self.task, self.status, self.events = new, T.OPEN, 1

    @invariant()
    def stored_as_the_model_says(self) -> None:
        row = ts.read_task_frame(self.engine, elder_ids=[self.elder]).set_index("id").loc[self.task]
        assert row["status"] == self.status.value
        assert (row["closed_at"] == row["closed_at"]) == self.status.terminal  # NaT != NaT
        with self.engine.connect() as c:
            n = c.scalar(select(func.count()).select_from(ServiceTaskEvent).where(ServiceTaskEvent.task_id == self.task))
        assert n == self.events
        seqs = [c["seq"] for c in ts.read_care_services(self.engine, elder_id=self.elder)]
        assert seqs == list(range(1, len(seqs) + 1))
        active = ts.read_task_frame(self.engine, elder_ids=[self.elder], status=[s.value for s in ACTIVE_TASK])
        assert len(active) <= 1  # never two open tasks of the same need


def test_random_sequences_keep_the_task_life_cycle(engine: Engine) -> None:
    ids = register(engine, 1 + 1)
    Tasks.engine = engine
    Tasks.like = ids["elders"][0]
    run_state_machine_as_test(Tasks, settings=settings(
        max_examples=10, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
