"""Store of the follow-ups: the one module with the SQL of hazards, referrals, their events,
joint inspections, escalation and the notification outbox (both backends).

Reads return pandas DataFrames (the measures and the dashboard read them); every write is one
transaction with its change-feed row and the optimistic version check of the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select, update

from gridmap._errors import ConflictError, ValidationError
from gridmap.domain.enums import HazardKind, HazardStatus, ReferralStatus, Severity
from gridmap.followups import lifecycle as lc
from gridmap.followups.outbox import queue_reminders, read_notification_frame, reminder_text_hazard, send_queued
from gridmap.rules.config import Rules, load_rules
from gridmap.store.models import (
    Community,
    Elder,
    Grid,
    Hazard,
    HazardEvent,
    Referral,
    ReferralEvent,
    RegisterChange,
    Street,
)

if TYPE_CHECKING:
    import pandas as pd

HAZARD_COLUMNS = ["id", "elder_id", "street", "community", "grid", "owner_unit", "kind", "severity", "status",
                  "opened_on", "deadline", "closed_on", "reopened_count", "lon", "lat",
                  "description", "status_reason", "transferred_to", "inspection_id", "version"]
REFERRAL_COLUMNS = ["id", "elder_id", "street", "community", "target", "receiver", "emergency", "status",
                    "opened_at", "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at",
                    "resolved", "satisfaction", "kind", "need", "outcome", "version"]


def _statuses(status: Any, enum: type[HazardStatus] | type[ReferralStatus]) -> list[str] | None:
    """Codes of the statuses asked for: one code or Chinese label, or several; None: all."""
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    return [str(enum.from_label(str(s)).value) for s in items]


def read_hazard_frame(engine: Engine, *, street: str | None = None,
                      status: str | Iterable[str] | None = None,
                      elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Hazards with where they are: one row per hazard, oldest first.

    Columns: id, elder_id, street, community, grid (code), owner_unit, kind, severity, status (codes),
    opened_on, deadline (= due on, a date), closed_on, reopened_count, lon, lat, and description,
    status_reason, transferred_to, inspection_id, version.

    Parameters
    ----------
    street
        Only hazards of elders living in this street (name).
    status
        A status code or Chinese label (or several); None: every status.
    """
    import pandas as pd
    q = (select(Hazard.id, Hazard.elder_id, Street.name.label("street"), Community.name.label("community"),
                Grid.code.label("grid"), Hazard.owner_unit, Hazard.kind, Hazard.severity, Hazard.status,
                Hazard.opened_on, Hazard.deadline, Hazard.closed_on, Hazard.reopened_count,
                Hazard.geom, Elder.geom.label("elder_geom"), Hazard.description, Hazard.status_reason,
                Hazard.transferred_to, Hazard.inspection_id, Hazard.version)
         .select_from(Hazard)
         .outerjoin(Elder, Elder.id == Hazard.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .outerjoin(Grid, Grid.id == Elder.grid_id)
         .order_by(Hazard.opened_on, Hazard.id))
    if street is not None:
        q = q.where(Street.name == street)
    codes = _statuses(status, HazardStatus)
    if codes is not None:
        q = q.where(Hazard.status.in_(codes))
    if elder_ids is not None:
        q = q.where(Hazard.elder_id.in_(list(elder_ids)))
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(q).mappings():
            d = dict(r)
            g = d.pop("geom")
            eg = d.pop("elder_geom")
            g = g if g is not None else eg
            d["lon"], d["lat"] = (g.x, g.y) if g is not None else (None, None)
            for k in ("kind", "severity", "status"):
                d[k] = str(d[k].value if hasattr(d[k], "value") else d[k])
            d["reopened_count"] = int(d["reopened_count"] or 0)
            rows.append(d)
    return pd.DataFrame(rows, columns=HAZARD_COLUMNS)


def read_referral_frame(engine: Engine, *, street: str | None = None,
                        status: str | Iterable[str] | None = None,
                        elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Referrals with where their elder lives: one row per referral, oldest first.

    Columns: id, elder_id, street, community, target (code), receiver (the target's name), emergency,
    status (code), opened_at, deadline, acknowledged_at, in_progress_at, closed_at, escalated_at
    (timestamps, UTC-aware), resolved, satisfaction (code or None), and kind ('emergency' or 'need'),
    need, outcome, version.
    """
    import pandas as pd
    q = (select(Referral.id, Referral.elder_id, Street.name.label("street"), Community.name.label("community"),
                Referral.target, Referral.target_name.label("receiver"), Referral.emergency, Referral.status,
                Referral.opened_at, Referral.deadline, Referral.acknowledged_at, Referral.in_progress_at,
                Referral.closed_at, Referral.escalated_at, Referral.resolved, Referral.satisfaction,
                Referral.need, Referral.outcome, Referral.version)
         .select_from(Referral)
         .outerjoin(Elder, Elder.id == Referral.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id)
         .order_by(Referral.opened_at, Referral.id))
    if street is not None:
        q = q.where(Street.name == street)
    codes = _statuses(status, ReferralStatus)
    if codes is not None:
        q = q.where(Referral.status.in_(codes))
    if elder_ids is not None:
        q = q.where(Referral.elder_id.in_(list(elder_ids)))
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(q).mappings():
            d = dict(r)
            for k in ("target", "status", "satisfaction"):
                if d[k] is not None:
                    d[k] = str(d[k].value if hasattr(d[k], "value") else d[k])
            d["emergency"] = bool(d["emergency"])
            d["kind"] = "emergency" if d["emergency"] else "need"
            rows.append(d)
    df = pd.DataFrame(rows, columns=REFERRAL_COLUMNS)
    for k in ("opened_at", "deadline", "acknowledged_at", "in_progress_at", "closed_at", "escalated_at"):
        df[k] = pd.to_datetime(df[k], utc=True)
    return df


def elder_names(engine: Engine, elder_ids: Iterable[int]) -> dict[int, str]:
    """Elder id → name (personal data: the caller masks it before showing it)."""
    import pandas as pd
    ids = sorted({int(e) for e in elder_ids if e is not None and not pd.isna(e)})
    if not ids:
        return {}
    with engine.connect() as conn:
        return {int(i): n for i, n in conn.execute(select(Elder.id, Elder.name).where(Elder.id.in_(ids)))}


# ---------------------------------------------------------------- shared write helpers


def insert_ids(conn: Connection, table: Any, rows: list[dict[str, Any]], key: str) -> dict[Any, list[int]]:
    """Insert ``rows`` (executemany, batched on both backends) and return the new ids grouped by ``rows[key]``.

    The ids are read back as those above the table's maximum id before the
    insert, in id order; rows of one key keep their order.
    """
    if not rows:
        return {}
    before = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    for i in range(0, len(rows), 5000):
        conn.execute(table.insert(), rows[i:i + 5000])
    keys = {r[key] for r in rows}
    out: dict[Any, list[int]] = {}
    for rid, k in conn.execute(select(table.c.id, table.c[key]).where(table.c.id > before).order_by(table.c.id)):
        if k in keys:
            out.setdefault(k, []).append(int(rid))
    return out


def created_history(table: str, ids: Sequence[int], elder_ids: Sequence[int | None], *, user: str,
                    changed_at: datetime, source: str = "visit", reason: str = "探访记录") -> list[dict[str, Any]]:
    """``register_change`` creation rows (as the ORM history listener writes them) for records inserted in bulk."""
    return [{"entity": table, "entity_id": i, "elder_id": e, "field": "*created*", "old_value": None,
             "new_value": None, "changed_by": user, "changed_at": changed_at, "source": source,
             "reason": reason} for i, e in zip(ids, elder_ids, strict=True)]


def _status_history(table: str, entity_id: int, elder_id: int | None, old: str, new: str, *, user: str,
                    at: datetime, reason: str | None) -> dict[str, Any]:
    return {"entity": table, "entity_id": entity_id, "elder_id": elder_id, "field": "status", "old_value": old,
            "new_value": new, "changed_by": user, "changed_at": at, "source": "followup", "reason": reason}


def _event_row(key: str, entity_id: int, ev: lc.FollowupEvent) -> dict[str, Any]:
    return {key: entity_id, "at": ev.at, "by_user": ev.by, "from_status": ev.from_status,
            "to_status": ev.to_status, "note": ev.note, "photo_ref": ev.photo_ref}


def _streets_of(conn: Connection, elder_ids: Iterable[int]) -> list[str]:
    ids = sorted({int(e) for e in elder_ids if e is not None})
    if not ids:
        return []
    q = select(Street.name).join(Elder, Elder.street_id == Street.id).where(Elder.id.in_(ids)).distinct()
    return sorted(conn.execute(q).scalars())


def _feed(conn: Connection, kind: str, elder_ids: Iterable[int], *, by: str, detail: Mapping[str, Any]) -> None:
    """The change-feed row of this transaction (call last, just before the commit)."""
    from gridmap.store.changes import record_change

    ids = sorted({int(e) for e in elder_ids if e is not None})
    record_change(conn, kind, streets=_streets_of(conn, ids), elders=ids, actor=by, detail=dict(detail))


def _now(now: datetime | None) -> datetime:
    """``now`` in UTC (naive: taken as UTC). Written in UTC: SQLite keeps a time without its offset."""
    if now is None:
        return datetime.now(UTC)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))


# ---------------------------------------------------------------- findings: open, reopen or skip


@dataclass(frozen=True)
class Finding:
    """A hazard found at a visit or a joint inspection."""

    elder_id: int
    kind: HazardKind
    severity: Severity
    found_on: date
    deadline: date
    owner_unit: str
    description: str | None
    source: str = "visit"
    visit_id: int | None = None
    inspection_id: int | None = None
    geom: Any = None


def apply_findings(conn: Connection, findings: Sequence[Finding], *, by: str, now: datetime,
                   rules: Rules) -> list[tuple[int, str]]:
    """Open, reopen or skip each finding (in order), with its events, history and reminders.

    Per (elder, kind) the latest hazard decides (:func:`gridmap.followups.lifecycle.finding_action`):
    one open or in progress is not duplicated (``skipped``), a fixed or unfixable one is reopened
    (``reopened``), otherwise a new hazard is opened (``opened``). Returns (hazard id, action) per finding.
    """
    if not findings:
        return []
    ht = Hazard.__table__
    elders = sorted({f.elder_id for f in findings})
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for r in conn.execute(select(ht.c.id, ht.c.elder_id, ht.c.kind, ht.c.status, ht.c.severity, ht.c.opened_on,
                                 ht.c.deadline, ht.c.reopened_count, ht.c.version)
                          .where(ht.c.elder_id.in_(elders)).order_by(ht.c.id)).mappings():
        latest[(int(r["elder_id"]), str(r["kind"]))] = dict(r)
    out: list[tuple[int, str] | None] = [None] * len(findings)
    new_rows: list[dict[str, Any]] = []
    new_idx: list[int] = []
    events: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    reminders: list[tuple[int, int | None, int | None, str]] = []
    pending: dict[tuple[int, str], int] = {}  # (elder, kind) opened earlier in this batch -> index
    for i, f in enumerate(findings):
        key = (f.elder_id, HazardKind(f.kind).value)
        if key in pending:
            out[i] = (-1, "skipped")  # id filled in below
            continue
        cur = latest.get(key)
        action = lc.finding_action(HazardStatus(cur["status"]) if cur else None)
        if action == "skip":
            out[i] = (int(cur["id"]), "skipped")  # type: ignore[index]
        elif action == "reopen":
            assert cur is not None
            state = lc.HazardState(status=HazardStatus(cur["status"]), opened_on=cur["opened_on"],
                                   deadline=cur["deadline"], reopened_count=int(cur["reopened_count"] or 0),
                                   severity=Severity(cur["severity"]))
            new, ev = lc.reopen_hazard(state, by=by, at=now, found_on=f.found_on, rules=rules,
                                       severity=f.severity)
            n = conn.execute(update(ht).where(ht.c.id == cur["id"], ht.c.version == cur["version"]).values(
                status=new.status, closed_on=None, status_reason=None, transferred_to=None,
                reopened_count=new.reopened_count, deadline=new.deadline, severity=new.severity,
                version=cur["version"] + 1)).rowcount
            if n != 1:
                raise ConflictError("the hazard was changed meanwhile; try again", "该隐患已被他人修改，请重试")
            cur.update(status=new.status.value, version=cur["version"] + 1)
            events.append(_event_row("hazard_id", int(cur["id"]), ev))
            history.append(_status_history("hazard", int(cur["id"]), f.elder_id, state.status.value, "open",
                                           user=by, at=now, reason=ev.note))
            reminders.append((f.elder_id, int(cur["id"]), None,
                              reminder_text_hazard(f.kind, f.owner_unit, True)))
            out[i] = (int(cur["id"]), "reopened")
        else:
            pending[key] = i
            new_idx.append(i)
            new_rows.append({"elder_id": f.elder_id, "visit_id": f.visit_id, "kind": HazardKind(f.kind),
                             "severity": Severity(f.severity), "source": f.source, "description": f.description,
                             "owner_unit": f.owner_unit, "status": HazardStatus.OPEN, "opened_on": f.found_on,
                             "deadline": f.deadline, "geom": f.geom, "version": 1, "reopened_count": 0,
                             "inspection_id": f.inspection_id})
    if new_rows:
        ids: list[int] = []
        for j in range(0, len(new_rows), 2000):
            res = conn.execute(ht.insert().returning(ht.c.id, sort_by_parameter_order=True), new_rows[j:j + 2000])
            ids += [int(x) for x in res.scalars()]
        for i, hid in zip(new_idx, ids, strict=True):
            f = findings[i]
            out[i] = (hid, "opened")
            events.append({"hazard_id": hid, "at": now, "by_user": by, "from_status": None, "to_status": "open",
                           "note": "联合入户排查发现" if f.source == "joint_inspection" else "探访发现",
                           "photo_ref": None})
            reminders.append((f.elder_id, hid, None, reminder_text_hazard(f.kind, f.owner_unit, False)))
        history += created_history("hazard", ids, [findings[i].elder_id for i in new_idx], user=by,
                                   changed_at=now, source=findings[new_idx[0]].source,
                                   reason="联合入户排查" if findings[new_idx[0]].source == "joint_inspection" else "探访记录")
    for i, f in enumerate(findings):
        o = out[i]
        if o is not None and o[0] == -1:
            out[i] = (out[pending[(f.elder_id, HazardKind(f.kind).value)]][0], "skipped")  # type: ignore[index]
    if events:
        conn.execute(HazardEvent.__table__.insert(), events)
    if history:
        conn.execute(RegisterChange.__table__.insert(), history)
    queue_reminders(conn, reminders, rules=rules, now=now)
    return [o for o in out if o is not None]


# ---------------------------------------------------------------- state changes by people


@dataclass
class Updated:
    """What a state change wrote: the record's id, its new status and version, and the event."""

    id: int
    status: str
    version: int
    event: lc.FollowupEvent


def _load(conn: Connection, table: Any, entity_id: int, what: str, what_zh: str) -> dict[str, Any]:
    row = conn.execute(select(*table.c).where(table.c.id == entity_id)).mappings().first()
    if row is None:
        raise ValidationError(f"no {what} with id {entity_id}", f"未找到编号为 {entity_id} 的{what_zh}",
                              field="id", value=entity_id, code=f"unknown_{what}")
    return dict(row)


def _check_version(row: Mapping[str, Any], version: int | None, what_zh: str) -> None:
    if version is not None and int(row["version"]) != int(version):
        raise ConflictError(f"the record was changed meanwhile (version {row['version']}, yours {version}); "
                            "reload and try again", f"该{what_zh}已被他人修改（当前版本 {row['version']}，"
                            f"您的版本 {version}），请刷新后重试")


def _write(conn: Connection, table: Any, row: Mapping[str, Any], values: dict[str, Any], what_zh: str) -> int:
    """UPDATE guarded by the version read (optimistic lock); returns the new version."""
    v = int(row["version"])
    n = conn.execute(update(table).where(table.c.id == row["id"], table.c.version == v)
                     .values(**values, version=v + 1)).rowcount
    if n != 1:
        raise ConflictError("the record was changed meanwhile; reload and try again",
                            f"该{what_zh}已被他人修改，请刷新后重试")
    return v + 1


def _hazard_state(row: Mapping[str, Any]) -> lc.HazardState:
    return lc.HazardState(status=HazardStatus(row["status"]), opened_on=row["opened_on"], deadline=row["deadline"],
                          closed_on=row["closed_on"], status_reason=row["status_reason"],
                          transferred_to=row["transferred_to"], reopened_count=int(row["reopened_count"] or 0),
                          severity=Severity(row["severity"]))


def _change_hazard(conn: Connection, row: Mapping[str, Any], status: HazardStatus | str, *, by: str, now: datetime,
                   note: str | None, photo_ref: str | None, reason: str | None, transferred_to: str | None,
                   version: int | None) -> Updated:
    _check_version(row, version, "隐患")
    state = _hazard_state(row)
    new, ev = lc.hazard_transition(state, status, by=by, at=now, note=note, photo_ref=photo_ref, reason=reason,
                                   transferred_to=transferred_to, owner=row["owner_unit"])
    v = _write(conn, Hazard.__table__, row, {"status": new.status, "closed_on": new.closed_on,
                                              "status_reason": new.status_reason,
                                              "transferred_to": new.transferred_to}, "隐患")
    conn.execute(HazardEvent.__table__.insert(), [_event_row("hazard_id", int(row["id"]), ev)])
    conn.execute(RegisterChange.__table__.insert(), [_status_history(
        "hazard", int(row["id"]), row["elder_id"], state.status.value, new.status.value, user=by, at=now,
        reason=note or reason)])
    return Updated(int(row["id"]), new.status.value, v, ev)


@dataclass(frozen=True)
class HazardChange:
    """One hazard state change asked for (see :func:`update_hazard`)."""

    id: int
    status: HazardStatus | str
    note: str | None = None
    photo_ref: str | None = None
    reason: str | None = None
    transferred_to: str | None = None
    at: datetime | None = None
    version: int | None = None


@dataclass(frozen=True)
class ReferralChange:
    """One referral state change asked for (see :func:`update_referral`)."""

    id: int
    status: ReferralStatus | str
    outcome: str | None = None
    satisfaction: str | None = None
    resolved: bool = True
    note: str | None = None
    at: datetime | None = None
    version: int | None = None


def update_hazards(engine: Engine, changes: Sequence[HazardChange], *, by: str) -> list[Updated]:
    """Several hazard state changes in one transaction (all or none), one change-feed row."""
    out: list[Updated] = []
    if not changes:
        return out
    with engine.begin() as conn:
        elders = []
        for c in changes:
            row = _load(conn, Hazard.__table__, c.id, "hazard", "隐患")
            out.append(_change_hazard(conn, row, c.status, by=by, now=_now(c.at), note=c.note, photo_ref=c.photo_ref,
                                      reason=c.reason, transferred_to=c.transferred_to, version=c.version))
            elders.append(row["elder_id"])
        _feed(conn, "hazard", elders, by=by, detail={"hazards": [u.id for u in out][:50]})
    return out


def update_hazard(engine: Engine, hazard_id: int, status: HazardStatus | str, *, by: str, note: str | None = None,
                  photo_ref: str | None = None, reason: str | None = None, transferred_to: str | None = None,
                  now: datetime | None = None, version: int | None = None) -> Updated:
    """Move a hazard to ``status`` (整改中 / 已整改 / 无法整改 with a reason / 已移交 to a unit).

    One transaction: the hazard (guarded by its version; ``version`` given: refused when the hazard
    changed since it was read), its event (who, when, note, photo reference), its history and the
    change-feed row.

    Raises
    ------
    ValidationError
        Unknown hazard or status; :class:`~gridmap.followups.lifecycle.TransitionError` for a
        transition the life-cycle does not allow (nothing written).
    ConflictError
        Someone else changed it meanwhile.
    """
    return update_hazards(engine, [HazardChange(hazard_id, status, note, photo_ref, reason, transferred_to, now,
                                                version)], by=by)[0]


def _referral_state(row: Mapping[str, Any]) -> lc.ReferralState:
    return lc.ReferralState(
        status=ReferralStatus(row["status"]), opened_at=_aware(row["opened_at"]),  # type: ignore[arg-type]
        deadline=_aware(row["deadline"]), acknowledged_at=_aware(row["acknowledged_at"]),
        in_progress_at=_aware(row["in_progress_at"]), closed_at=_aware(row["closed_at"]),
        escalated_at=_aware(row["escalated_at"]), outcome=row["outcome"], satisfaction=row["satisfaction"],
        resolved=row["resolved"], emergency=bool(row["emergency"]))


def _change_referral(conn: Connection, c: ReferralChange, *, by: str) -> tuple[Updated, int]:
    now = _now(c.at)
    row = _load(conn, Referral.__table__, c.id, "referral", "转介")
    _check_version(row, c.version, "转介")
    state = _referral_state(row)
    new, ev = lc.referral_transition(state, c.status, by=by, at=now, outcome=c.outcome, satisfaction=c.satisfaction,
                                     resolved=c.resolved, note=c.note)
    v = _write(conn, Referral.__table__, row, {
        "status": new.status, "acknowledged_at": new.acknowledged_at, "in_progress_at": new.in_progress_at,
        "closed_at": new.closed_at, "outcome": new.outcome, "satisfaction": new.satisfaction,
        "resolved": new.resolved}, "转介")
    conn.execute(ReferralEvent.__table__.insert(), [_event_row("referral_id", c.id, ev)])
    conn.execute(RegisterChange.__table__.insert(), [_status_history(
        "referral", c.id, row["elder_id"], state.status.value, new.status.value, user=by, at=now,
        reason=c.note or c.outcome)])
    return Updated(c.id, new.status.value, v, ev), int(row["elder_id"])


def update_referrals(engine: Engine, changes: Sequence[ReferralChange], *, by: str) -> list[Updated]:
    """Several referral state changes in one transaction (all or none), one change-feed row."""
    out: list[Updated] = []
    if not changes:
        return out
    with engine.begin() as conn:
        elders = []
        for c in changes:
            u, eid = _change_referral(conn, c, by=by)
            out.append(u)
            elders.append(eid)
        _feed(conn, "referral", elders, by=by, detail={"referrals": [u.id for u in out][:50]})
    return out


def update_referral(engine: Engine, referral_id: int, status: ReferralStatus | str, *, by: str,
                    outcome: str | None = None, satisfaction: str | None = None, resolved: bool = True,
                    note: str | None = None, now: datetime | None = None, version: int | None = None) -> Updated:
    """Move a referral to ``status`` (已受理 / 处理中 / 已办结 with outcome, resolved, satisfaction).

    One transaction with its event, history and change-feed row, guarded by the version.

    Raises
    ------
    ValidationError, TransitionError, ConflictError
        As :func:`update_hazard`.
    """
    return update_referrals(engine, [ReferralChange(referral_id, status, outcome, satisfaction, resolved, note, now,
                                                    version)], by=by)[0]


def escalate_due(engine: Engine, now: datetime | None = None, *, rules: Rules | None = None,
                 by: str = "system") -> list[int]:
    """Escalate the emergencies not acknowledged by their deadline, each once (returns their ids).

    The flag is set by a guarded UPDATE (``escalated_at IS NULL`` and still open), so two runners
    at the same time escalate a referral once; the status stays, an event names the street told.
    """
    rules = rules or load_rules()
    now = _now(now)
    rt = Referral.__table__
    with engine.begin() as conn:
        due = conn.execute(select(rt.c.id, rt.c.elder_id, rt.c.version).where(
            rt.c.emergency.is_(True), rt.c.status == ReferralStatus.OPEN.value, rt.c.escalated_at.is_(None),
            rt.c.deadline < now).order_by(rt.c.id)).all()
        done: list[tuple[int, int]] = []
        for rid, eid, v in due:
            n = conn.execute(update(rt).where(rt.c.id == rid, rt.c.escalated_at.is_(None),
                                              rt.c.status == ReferralStatus.OPEN.value)
                             .values(escalated_at=now, version=v + 1)).rowcount
            if n == 1:
                done.append((int(rid), int(eid)))
        if not done:
            return []
        street = dict(conn.execute(select(Elder.id, Street.name).join(Street, Street.id == Elder.street_id)
                                   .where(Elder.id.in_([e for _, e in done]))).all())
        conn.execute(ReferralEvent.__table__.insert(), [
            _event_row("referral_id", rid, lc.FollowupEvent(now, by, "open", "open",
                                                            f"紧急情况未在时限内受理，已升级至{street.get(eid) or '街镇'}"))
            for rid, eid in done])
        _feed(conn, "referral", [e for _, e in done], by=by, detail={"escalated": [r for r, _ in done]})
    return [r for r, _ in done]


__all__ = [
    "HAZARD_COLUMNS", "REFERRAL_COLUMNS", "Finding", "HazardChange", "ReferralChange",
    "Updated", "apply_findings", "elder_names", "update_hazards", "update_referrals",
    "created_history", "escalate_due", "insert_ids", "queue_reminders", "read_hazard_frame",
    "read_notification_frame", "read_referral_frame", "send_queued", "update_hazard",
    "update_referral",
]


def __getattr__(name: str) -> Any:  # record_inspection lives in gridmap.followups.inspections (module size)
    if name in ("record_inspection", "InspectionResult"):
        from gridmap.followups import inspections

        return getattr(inspections, name)
    raise AttributeError(name)
