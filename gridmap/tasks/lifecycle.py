"""The life-cycle of a service task as pure functions (no database).

A need recorded at a visit (老年人服务需求: 助餐、助医、助浴… the rules ``service_needs``) becomes a
service task for the elder's 服务管家, or for the unit the rules name (``receiver``), due
``due_days`` after the visit::

    待处理 open ──► 处理中 in_progress ──► 已完成 done
         │                 │
         └─────────────────┴──────────► 已取消 cancelled (with a reason)

A step may be skipped (a task served at once is done from open). The same need of the same elder
while a task for it is still open or in progress opens no second task (:func:`new_task_action`).
Care services (附件1-2 六、关爱服务情况) are recorded against a task, numbered per elder
(第 n 次开展关爱, :func:`next_care_seq`); recording one completes the task unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from gridmap._errors import ValidationError
from gridmap.followups.lifecycle import FollowupEvent, TransitionError
from gridmap.rules.config import Rules, ServiceNeed
from gridmap.rules.visits import VisitRecord

#: The receiver code of a need for the elder's 服务管家 (rules ``service_needs.*.receiver``).
SERVICE_STEWARD = "service_steward"


class TaskStatus(StrEnum):
    """States of a service task."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        """The Chinese name of the state."""
        return {"open": "待处理", "in_progress": "处理中", "done": "已完成", "cancelled": "已取消"}[self.value]

    @property
    def terminal(self) -> bool:
        """Done or cancelled: nothing follows."""
        return self in (TaskStatus.DONE, TaskStatus.CANCELLED)


T = TaskStatus
#: States a person may set from each state.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    T.OPEN: frozenset({T.IN_PROGRESS, T.DONE, T.CANCELLED}),
    T.IN_PROGRESS: frozenset({T.DONE, T.CANCELLED}),
    T.DONE: frozenset(),
    T.CANCELLED: frozenset(),
}
#: States in which a task still waits for its service (a new finding of the need is not duplicated).
ACTIVE_TASK: frozenset[TaskStatus] = frozenset({T.OPEN, T.IN_PROGRESS})


def parse_task_status(text: str | TaskStatus) -> TaskStatus:
    """A task status from its code or Chinese label (bilingual error otherwise)."""
    t = str(text).strip()
    for s in TaskStatus:
        if t in (s.value, s.label):
            return s
    raise ValidationError(
        f"unknown task status {text!r}; one of: " + ", ".join(s.value for s in TaskStatus),
        f"未知的任务状态“{text}”；应为：" + "、".join(s.label for s in TaskStatus),
        field="status", value=text, code="unknown_status")


@dataclass(frozen=True)
class TaskSpec:
    """A task to open: whose need, which need, who takes it, by when."""

    elder_id: int
    kind: str
    label: str
    steward_id: int | None
    receiver_unit: str | None
    opened_on: date
    due_on: date
    note: str | None = None


@dataclass(frozen=True)
class TaskState:
    """What the life-cycle of a task changes."""

    status: TaskStatus
    opened_at: datetime
    in_progress_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None


def need_of(rules: Rules, code: str) -> ServiceNeed:
    """The rules' need with this code (ValidationError naming ``kind`` otherwise)."""
    for n in rules.service_needs:
        if code in (n.code, n.label, *n.aliases):
            return n
    raise ValidationError(f"unknown need {code!r}", f"未知的服务需求“{code}”", field="kind", value=code,
                          code="unknown_need")


def task_for_need(rules: Rules, need: ServiceNeed, *, elder_id: int, service_steward_id: int | None,
                  on: date, note: str | None = None) -> TaskSpec:
    """The task of one need: the elder's 服务管家 when the rules say so and the elder has one, else the unit
    the rules name (a steward's need of an elder without one: ``service_needs_fallback``); due ``due_days``."""
    steward, unit = None, None
    if need.receiver == SERVICE_STEWARD:
        if service_steward_id is not None:
            steward = int(service_steward_id)
        else:
            unit = rules.service_needs_fallback
    else:
        unit = need.receiver
    return TaskSpec(elder_id=elder_id, kind=need.code, label=need.label, steward_id=steward, receiver_unit=unit,
                    opened_on=on, due_on=on + timedelta(days=need.due_days), note=note)


def tasks_from_visit(record: VisitRecord, rules: Rules, *, service_steward_id: int | None) -> list[TaskSpec]:
    """The tasks a visit's needs (``record.need_kinds``) open, one per need, in the visit's order."""
    return [task_for_need(rules, need_of(rules, k), elder_id=record.elder_id, service_steward_id=service_steward_id,
                          on=record.visited_on, note=record.needs)
            for k in (record.need_kinds or ())]


def new_task_action(existing: Iterable[TaskStatus | str]) -> str:
    """``"skip"`` when a task of this need of this elder is still open or in progress, else ``"open"``."""
    return "skip" if any(TaskStatus(s) in ACTIVE_TASK for s in existing) else "open"


def task_transition(state: TaskState, to: TaskStatus | str, *, by: str, at: datetime,
                    note: str | None = None) -> tuple[TaskState, FollowupEvent]:
    """Move a task to ``to``; cancelling needs a reason (the note). Skipped steps get the same time.

    Raises
    ------
    TransitionError
        When :data:`TASK_TRANSITIONS` does not allow it, or a cancel has no reason.
    """
    target = parse_task_status(to)
    allowed = TASK_TRANSITIONS[state.status]
    if target not in allowed:
        ok_en = ", ".join(sorted(a.value for a in allowed)) or "none (a final state)"
        ok_zh = "、".join(a.label for a in sorted(allowed, key=lambda a: a.value)) or "无（已是终结状态）"
        raise TransitionError(f"a service task in state {state.status.value} cannot be set to {target.value}; "
                              f"allowed: {ok_en}",
                              f"服务任务当前为“{state.status.label}”，不能改为“{target.label}”；可改为：{ok_zh}",
                              field="status", value=target.value, code="invalid_transition")
    if target == T.CANCELLED and not (note or "").strip():
        raise TransitionError("a cancelled service task needs a reason (--note)", "取消服务任务须说明原因（--note）",
                              field="note", code="reason_required")
    at = max(at, state.opened_at)
    new = replace(state, status=target)
    if target in (T.IN_PROGRESS, T.DONE) and new.in_progress_at is None:
        new = replace(new, in_progress_at=at)
    if target.terminal:
        new = replace(new, closed_at=at, outcome=(note or "").strip() or state.outcome)
    return new, FollowupEvent(at, by, state.status.value, target.value, note, None)


def next_care_seq(existing: Iterable[int | None]) -> int:
    """第 n 次开展关爱: the number of the elder's next care service (after every earlier one, numbered or not)."""
    seqs = list(existing)
    return max([len(seqs), *[int(s) for s in seqs if s is not None]]) + 1


def is_overdue(status: TaskStatus | str, due_on: date | None, today: date) -> bool:
    """Still open or in progress after its due date."""
    return TaskStatus(status) in ACTIVE_TASK and due_on is not None and due_on < today


__all__ = ["ACTIVE_TASK", "SERVICE_STEWARD", "TASK_TRANSITIONS", "TaskSpec", "TaskState", "TaskStatus",
           "is_overdue", "need_of", "new_task_action", "next_care_seq", "parse_task_status", "task_for_need",
           "task_transition", "tasks_from_visit"]
