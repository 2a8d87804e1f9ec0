"""Store of the service tasks: the one module with the SQL of ``service_task``, its events and the care
services recorded against a task (both backends).

Reads return pandas DataFrames; every write is one transaction with its events, its register history and
its change-feed row (kind ``followup``), guarded by the task's version (optimistic lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select

from gridmap._errors import ValidationError
from gridmap.access.audit import PermissionDenied
from gridmap.followups.lifecycle import parse_satisfaction
from gridmap.followups.store import (
    _check_version,
    _event_row,
    _feed,
    _load,
    _now,
    _status_history,
    _write,
    created_history,
)
from gridmap.store.models import (
    CareService,
    Community,
    Elder,
    RegisterChange,
    ServiceTask,
    ServiceTaskEvent,
    Steward,
    Street,
)
from gridmap.tasks import lifecycle as lc

if TYPE_CHECKING:
    import pandas as pd

TASK_COLUMNS = ["id", "elder_id", "street", "community", "kind", "label", "steward_id", "steward",
                "steward_code", "receiver_unit", "status", "opened_on", "due_on", "opened_at", "in_progress_at",
                "closed_at", "note", "outcome", "visit_id", "care_services", "version"]


def _codes(status: Any) -> list[str] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, (str, lc.TaskStatus)) else list(status)
    return [lc.parse_task_status(s).value for s in items]


def resolve_service_steward(engine: Engine, steward: str | int) -> int:
    """A steward's id from its code or id (ValidationError naming ``steward`` otherwise)."""
    with engine.connect() as conn:
        sid = conn.execute(select(Steward.id).where(Steward.code == str(steward))).scalar()
        if sid is None and str(steward).isdigit():
            sid = conn.execute(select(Steward.id).where(Steward.id == int(steward))).scalar()
    if sid is None:
        raise ValidationError(f"no steward with code or id {steward!r}", f"未找到编号为“{steward}”的管家",
                              field="steward", value=steward, code="unknown_steward")
    return int(sid)


def read_task_frame(engine: Engine, *, steward_id: int | None = None, street: str | None = None,
                    status: Any = None, elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Service tasks, oldest first: one row per task (columns :data:`TASK_COLUMNS`; ``care_services`` the count
    of care services recorded against it; ``steward`` the 服务管家's name)."""
    import pandas as pd
    t = ServiceTask.__table__
    cs = (select(CareService.task_id, func.count().label("n")).where(CareService.task_id.is_not(None))
          .group_by(CareService.task_id).subquery())
    q = (select(t.c.id, t.c.elder_id, Street.name.label("street"), Community.name.label("community"), t.c.kind,
                t.c.label, t.c.steward_id, Steward.name.label("steward"), Steward.code.label("steward_code"),
                t.c.receiver_unit, t.c.status, t.c.opened_on, t.c.due_on, t.c.opened_at, t.c.in_progress_at,
                t.c.closed_at, t.c.note, t.c.outcome, t.c.visit_id, func.coalesce(cs.c.n, 0).label("care_services"),
                t.c.version)
         .select_from(t)
         .outerjoin(Elder, Elder.id == t.c.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .outerjoin(Steward, Steward.id == t.c.steward_id)
         .outerjoin(cs, cs.c.task_id == t.c.id)
         .order_by(t.c.opened_on, t.c.id))
    if steward_id is not None:
        q = q.where(t.c.steward_id == int(steward_id))
    if street is not None:
        q = q.where(Street.name == street)
    codes = _codes(status)
    if codes is not None:
        q = q.where(t.c.status.in_(codes))
    if elder_ids is not None:
        q = q.where(t.c.elder_id.in_([int(e) for e in elder_ids]))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    df = pd.DataFrame(rows, columns=TASK_COLUMNS)
    for k in ("opened_at", "in_progress_at", "closed_at"):
        df[k] = pd.to_datetime(df[k], utc=True)
    return df


def read_task_events(engine: Engine, task_id: int) -> list[dict[str, Any]]:
    """The events of one task, oldest first (at, by_user, from_status, to_status, note)."""
    et = ServiceTaskEvent.__table__
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(et.c.at, et.c.by_user, et.c.from_status, et.c.to_status,
                                                     et.c.note).where(et.c.task_id == task_id)
                                              .order_by(et.c.id)).mappings()]


def read_care_services(engine: Engine, *, task_id: int | None = None,
                       elder_id: int | None = None) -> list[dict[str, Any]]:
    """Care services (六) of a task or an elder, in order of their number."""
    ct = CareService.__table__
    q = select(ct.c.id, ct.c.elder_id, ct.c.task_id, ct.c.visit_id, ct.c.seq, ct.c.served_on, ct.c.kind,
               ct.c.description, ct.c.provider, ct.c.staff_signature, ct.c.satisfaction, ct.c.recorded_by)
    if task_id is not None:
        q = q.where(ct.c.task_id == task_id)
    if elder_id is not None:
        q = q.where(ct.c.elder_id == elder_id)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(ct.c.seq, ct.c.id)).mappings()]
    for r in rows:
        s = r["satisfaction"]
        r["satisfaction"] = None if s is None else str(getattr(s, "value", s))
    return rows


# ---------------------------------------------------------------- opening (in the visit's transaction)


def open_tasks(conn: Connection, specs: Sequence[tuple[lc.TaskSpec, int | None]], *, by: str,
               now: datetime) -> list[tuple[int, str]]:
    """Open the tasks of a batch of visits in the caller's transaction (no change-feed row: the visit's is it).

    ``specs``: (task, visit id). Per (elder, need) a task still open or in progress is not duplicated
    (``skipped``, its id), else a new one is opened (``opened``). Returns (task id, action) per spec.
    """
    if not specs:
        return []
    t = ServiceTask.__table__
    elders = sorted({s.elder_id for s, _ in specs})
    active: dict[tuple[int, str], int] = {}
    for tid, eid, kind, st in conn.execute(select(t.c.id, t.c.elder_id, t.c.kind, t.c.status)
                                           .where(t.c.elder_id.in_(elders)).order_by(t.c.id)):
        if lc.new_task_action([st]) == "skip":
            active.setdefault((int(eid), str(kind)), int(tid))
    out: list[tuple[int, str]] = []
    for spec, visit_id in specs:
        key = (spec.elder_id, spec.kind)
        if key in active:
            out.append((active[key], "skipped"))
            continue
        tid = int(conn.execute(t.insert().returning(t.c.id), {
            "version": 1, "elder_id": spec.elder_id, "visit_id": visit_id, "kind": spec.kind, "label": spec.label,
            "steward_id": spec.steward_id, "receiver_unit": spec.receiver_unit, "status": lc.TaskStatus.OPEN.value,
            "opened_on": spec.opened_on, "due_on": spec.due_on, "opened_at": now, "note": spec.note,
            "created_by": by}).scalar_one())
        active[key] = tid
        out.append((tid, "opened"))
    made = [(tid, s.elder_id) for (tid, a), (s, _) in zip(out, specs, strict=True) if a == "opened"]
    if made:
        conn.execute(ServiceTaskEvent.__table__.insert(), [
            {"task_id": tid, "at": now, "by_user": by, "from_status": None, "to_status": "open",
             "note": "探访记录的服务需求", "photo_ref": None} for tid, _ in made])
        conn.execute(RegisterChange.__table__.insert(), created_history(
            "service_task", [i for i, _ in made], [e for _, e in made], user=by, changed_at=now))
    return out


def create_tasks(engine: Engine, specs: Sequence[lc.TaskSpec], *, by: str,
                 now: datetime | None = None) -> list[tuple[int, str]]:
    """Open tasks outside a visit (one transaction with its change-feed row); see :func:`open_tasks`."""
    now = _now(now)
    with engine.begin() as conn:
        out = open_tasks(conn, [(s, None) for s in specs], by=by, now=now)
        _feed(conn, "followup", [s.elder_id for s in specs], by=by, detail={"service_tasks": [i for i, _ in out][:50]})
    return out


# ---------------------------------------------------------------- state changes and care services


@dataclass
class TaskUpdated:
    """What a state change wrote: the task's id, its new status and version, and the event."""

    id: int
    status: str
    version: int
    event: Any


def _task_state(row: dict[str, Any]) -> lc.TaskState:
    def aware(v: Any) -> Any:
        return _now(v) if v is not None else None
    return lc.TaskState(status=lc.TaskStatus(row["status"]), opened_at=aware(row["opened_at"]),
                        in_progress_at=aware(row["in_progress_at"]), closed_at=aware(row["closed_at"]),
                        outcome=row["outcome"])


def _own(row: dict[str, Any], steward_id: int | None) -> None:
    if steward_id is not None and row["steward_id"] != int(steward_id):
        raise PermissionDenied(f"service task {row['id']} is not for this steward",
                               f"服务任务 {row['id']} 不属于您，未保存")


def _change(conn: Connection, row: dict[str, Any], status: Any, *, by: str, now: datetime,
            note: str | None) -> TaskUpdated:
    state = _task_state(row)
    new, ev = lc.task_transition(state, status, by=by, at=now, note=note)
    v = _write(conn, ServiceTask.__table__, row, {"status": new.status.value, "in_progress_at": new.in_progress_at,
                                                  "closed_at": new.closed_at, "outcome": new.outcome}, "服务任务")
    conn.execute(ServiceTaskEvent.__table__.insert(), [_event_row("task_id", int(row["id"]), ev)])
    conn.execute(RegisterChange.__table__.insert(), [_status_history(
        "service_task", int(row["id"]), row["elder_id"], state.status.value, new.status.value, user=by, at=now,
        reason=note)])
    return TaskUpdated(int(row["id"]), new.status.value, v, ev)


def update_task(engine: Engine, task_id: int, status: lc.TaskStatus | str, *, by: str, note: str | None = None,
                now: datetime | None = None, version: int | None = None,
                steward_id: int | None = None) -> TaskUpdated:
    """Move a task to ``status`` (处理中 / 已完成 / 已取消 with a reason), with its event, history and
    change-feed row in one transaction.

    ``steward_id``: the change is made by this 服务管家 (the dashboard): refused unless the task is theirs.

    Raises
    ------
    ValidationError
        Unknown task or status; ``TransitionError`` for a move the life-cycle does not allow.
    PermissionDenied
        The task is another steward's.
    ConflictError
        Someone changed it meanwhile (``version`` given and different).
    """
    now = _now(now)
    with engine.begin() as conn:
        row = _load(conn, ServiceTask.__table__, int(task_id), "service task", "服务任务")
        _own(row, steward_id)
        _check_version(row, version, "服务任务")
        out = _change(conn, row, status, by=by, now=now, note=note)
        _feed(conn, "followup", [row["elder_id"]], by=by, detail={"service_tasks": [out.id]})
    return out


@dataclass
class Served:
    """A care service recorded against a task: its id, its number for the elder, the task's status after it."""

    care_service_id: int
    seq: int
    task_id: int
    task_status: str


def _serve(conn: Connection, row: dict[str, Any], *, by: str, now: datetime, served_on: date | None,
           description: str | None, provider: str | None, staff_signature: str | None, satisfaction: Any,
           complete: bool) -> Served:
    task_id = int(row["id"])
    sat = parse_satisfaction(satisfaction)
    if lc.TaskStatus(row["status"]).terminal:
        st = lc.TaskStatus(row["status"])
        raise ValidationError(f"service task {task_id} is {st.value}: no care service can be recorded",
                              f"服务任务 {task_id} 已{st.label.lstrip('已')}，不能再登记关爱服务",
                              field="id", value=task_id, code="task_closed")
    day = served_on or now.date()
    if day < row["opened_on"]:
        raise ValidationError("the service date is before the task was opened",
                              "服务日期早于任务产生日期", field="served_on", value=str(day), code="too_early")
    if day > now.date() + timedelta(days=1):  # (now in UTC: Beijing's today may be a day ahead)
        raise ValidationError("the service date is in the future", "服务日期不能晚于今天", field="served_on",
                              value=str(day), code="future")
    ct = CareService.__table__
    seq = lc.next_care_seq(conn.execute(select(ct.c.seq).where(ct.c.elder_id == row["elder_id"])).scalars())
    cid = int(conn.execute(ct.insert().returning(ct.c.id), {
        "elder_id": row["elder_id"], "visit_id": None, "task_id": task_id, "seq": seq, "served_on": day,
        "kind": row["label"], "description": (description or "").strip()[:2000] or None,
        "provider": (provider or "").strip()[:120] or None,
        "staff_signature": (staff_signature or "").strip()[:40] or None, "satisfaction": sat,
        "recorded_by": by}).scalar_one())
    conn.execute(RegisterChange.__table__.insert(), created_history(
        "care_service", [cid], [row["elder_id"]], user=by, changed_at=now, source="followup",
        reason=f"第{seq}次开展关爱（服务任务 {task_id}）"))
    status = str(row["status"])
    if complete:
        status = _change(conn, row, lc.TaskStatus.DONE, by=by, now=now,
                         note=f"已开展关爱服务（第{seq}次）" + (f"：{description.strip()}" if description else "")).status
    return Served(cid, seq, task_id, status)


def serve_task(engine: Engine, task_id: int, *, by: str, served_on: date | None = None,
               description: str | None = None, provider: str | None = None, staff_signature: str | None = None,
               satisfaction: str | None = None, complete: bool = True, now: datetime | None = None,
               steward_id: int | None = None) -> Served:
    """Record a care service (六、关爱服务情况) against a task: numbered 第 n 次开展关爱 for the elder, with the
    elder's satisfaction (满意 / 基本满意 / 不满意 / 非常满意); ``complete`` (default) moves the task to 已完成.

    Raises
    ------
    ValidationError
        Unknown task, a bad satisfaction, a date in the future or before the task, a closed task.
    PermissionDenied
        ``steward_id`` given and the task is another steward's.
    """
    now = _now(now)
    with engine.begin() as conn:
        row = _load(conn, ServiceTask.__table__, int(task_id), "service task", "服务任务")
        _own(row, steward_id)
        out = _serve(conn, row, by=by, now=now, served_on=served_on, description=description, provider=provider,
                     staff_signature=staff_signature, satisfaction=satisfaction, complete=complete)
        _feed(conn, "followup", [row["elder_id"]], by=by, detail={"service_tasks": [int(task_id)],
                                                                   "care_services": [out.care_service_id]})
    return out


@dataclass(frozen=True)
class TaskWork:
    """One piece of work on a task for :func:`work_tasks`: a state change (``status``) or a care service
    (``serve``: the keyword arguments of :func:`serve_task`)."""

    id: int
    status: str | None = None
    note: str | None = None
    serve: dict[str, Any] | None = None
    at: datetime | None = None


def work_tasks(engine: Engine, items: Sequence[TaskWork], *, by: str) -> list[str]:
    """Several task changes and care services in one transaction (all or none), one change-feed row; returns
    each task's status after its item (the demo's receivers at work, a day at a time)."""
    if not items:
        return []
    out: list[str] = []
    with engine.begin() as conn:
        elders = []
        for it in items:
            row = _load(conn, ServiceTask.__table__, int(it.id), "service task", "服务任务")
            now = _now(it.at)
            if it.serve is not None:
                out.append(_serve(conn, row, by=by, now=now, **{"served_on": None, "description": None,
                                                                 "provider": None, "staff_signature": None,
                                                                 "satisfaction": None, "complete": True,
                                                                 **it.serve}).task_status)
            else:
                out.append(_change(conn, row, it.status, by=by, now=now, note=it.note).status)
            elders.append(row["elder_id"])
        _feed(conn, "followup", elders, by=by, detail={"service_tasks": [int(i.id) for i in items][:50]})
    return out


__all__ = [
    "TASK_COLUMNS",
    "Served",
    "TaskUpdated",
    "TaskWork",
    "create_tasks",
    "open_tasks",
    "read_care_services",
    "read_day_visits",
    "read_task_events",
    "read_task_frame",
    "resolve_service_steward",
    "serve_task",
    "update_task",
    "work_tasks",
]


def read_day_visits(engine: Engine, steward_id: int, day: date) -> list[dict[str, Any]]:
    """The visits of ``day`` to the elders whose 服务管家 is ``steward_id`` (for the service steward's workbench):
    id, elder_id, mode, visitor_role, visitor_name, need_kinds, needs, effective, ineffective_reason."""
    from gridmap.store.models import Visit

    q = (select(Visit.id, Visit.elder_id, Visit.mode, Visit.visitor_role, Visit.visitor_name, Visit.need_kinds,
                Visit.needs, Visit.effective, Visit.ineffective_reason)
         .join(Elder, Elder.id == Visit.elder_id)
         .where(Elder.service_steward_id == int(steward_id), Visit.visited_on == day).order_by(Visit.id))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        for k in ("mode", "visitor_role"):
            r[k] = str(getattr(r[k], "value", r[k]))
    return rows
