"""Store of the devices: the one module with their SQL (both backends).

Reads return DataFrames for :mod:`gridmap.devices.domain`; every write is one transaction with its
history rows (``register_change``), its device events and its change-feed row. Alarms open
referrals through the same tables, events, reminders and life-cycle as a visit's referrals
(:mod:`gridmap.followups`), so ``gridmap referrals`` and the escalation job work them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update

from gridmap._errors import ValidationError
from gridmap.care.rules import KIND_CODES, care_rules
from gridmap.devices import domain as D
from gridmap.domain.enums import DeviceStatus, ReferralStatus
from gridmap.store.models import (
    Community,
    Device,
    DeviceEvent,
    Elder,
    FirstContact,
    Referral,
    ReferralEvent,
    RegisterChange,
    Steward,
    Street,
)

if TYPE_CHECKING:
    import pandas as pd

    from gridmap.rules.config import Rules

DEVICE_COLUMNS = ["id", "elder_id", "kind", "state", "installer", "serial", "installed_on", "updated_at",
                  "alarm_count", "last_alarm_at", "street", "community"]
ELDER_COLUMNS = ["elder_id", "street", "community", "status", "birth_date", "categories", "welfare_status",
                 "hukou_address", "hukou_street", "lives_at_hukou"]


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def district_streets(engine: Engine) -> list[str]:
    """Names of the district's streets (for 本区户籍)."""
    with engine.connect() as conn:
        return sorted(conn.execute(select(Street.name)).scalars())


def read_device_elders(engine: Engine, *, street: str | None = None) -> pd.DataFrame:
    """The elders as entitlement needs them: :data:`ELDER_COLUMNS` (status and welfare as codes)."""
    import pandas as pd

    q = (select(Elder.id.label("elder_id"), Street.name.label("street"), Community.name.label("community"),
                Elder.status, Elder.birth_date, Elder.categories, Elder.welfare_status, Elder.hukou_address,
                Elder.hukou_street, Elder.lives_at_hukou)
         .select_from(Elder).outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id).order_by(Elder.id))
    if street is not None:
        q = q.where(Street.name == street)
    with engine.connect() as conn:
        rows = []
        for r in conn.execute(q).mappings():
            d = dict(r)
            d["status"] = str(d["status"]) if d["status"] is not None else None
            d["welfare_status"] = str(d["welfare_status"]) if d["welfare_status"] is not None else None
            d["categories"] = [str(c) for c in (d["categories"] or [])]
            rows.append(d)
    return pd.DataFrame(rows, columns=ELDER_COLUMNS)


def read_devices(engine: Engine, *, street: str | None = None, elder_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Devices with where their elder lives: :data:`DEVICE_COLUMNS`, ``kind`` the stored code, ``state`` its state."""
    import pandas as pd

    q = (select(Device.id, Device.elder_id, Device.kind, Device.status.label("state"), Device.installer,
                Device.serial, Device.installed_on, Device.updated_at, Device.alarm_count, Device.last_alarm_at,
                Street.name.label("street"), Community.name.label("community"))
         .select_from(Device).join(Elder, Elder.id == Device.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id)
         .outerjoin(Community, Community.id == Elder.community_id).order_by(Device.id))
    if street is not None:
        q = q.where(Street.name == street)
    if elder_ids is not None:
        q = q.where(Device.elder_id.in_([int(e) for e in elder_ids]))
    with engine.connect() as conn:
        rows = []
        for r in conn.execute(q).mappings():
            d = dict(r)
            d["kind"], d["state"] = str(d["kind"]), str(d["state"])
            d["alarm_count"] = int(d["alarm_count"] or 0)
            rows.append(d)
    return pd.DataFrame(rows, columns=DEVICE_COLUMNS)


def worklist(engine: Engine, kind: str, *, rules: Rules, street: str | None = None,
             on: date | None = None) -> pd.DataFrame:
    """The work list of one kind (:func:`gridmap.devices.domain.worklist`) read from the store."""
    from gridmap.devices.domain import BEIJING

    on = on or datetime.now(BEIJING).date()
    elders = read_device_elders(engine, street=street)
    devices = read_devices(engine, street=street)
    return D.worklist(elders, devices, kind, care_rules(rules), on,
                      programme_statuses=[s.value for s in rules.programme_statuses],
                      district_streets=district_streets(engine))


def coverage(engine: Engine, *, rules: Rules, street: str | None = None, on: date | None = None,
             by: Sequence[str] = ("street", "community")) -> pd.DataFrame:
    """Coverage per unit and kind (:func:`gridmap.devices.domain.coverage`) read from the store."""
    from gridmap.devices.domain import BEIJING

    on = on or datetime.now(BEIJING).date()
    return D.coverage(read_device_elders(engine, street=street), read_devices(engine, street=street),
                      care_rules(rules), on, programme_statuses=[s.value for s in rules.programme_statuses],
                      district_streets=district_streets(engine), by=by)


def _history(entity_id: int, elder_id: int, fld: str, old: str | None, new: str | None, *, user: str, at: datetime,
             reason: str) -> dict[str, Any]:
    return {"entity": "device", "entity_id": entity_id, "elder_id": elder_id, "field": fld, "old_value": old,
            "new_value": new, "changed_by": user, "changed_at": at, "source": "device", "reason": reason}


def _feed(conn: Any, kind: str, elder_ids: Iterable[int], *, user: str, detail: dict[str, Any]) -> None:
    from gridmap.followups.store import _feed as feed

    feed(conn, kind, elder_ids, by=user, detail=detail)


def add_device(engine: Engine, elder_id: int, kind: str, *, state: str = "requested", user: str,
               rules: Rules, serial: str | None = None, note: str | None = None, funded_by: str | None = None,
               now: datetime | None = None) -> int:
    """Record a device of ``kind`` for an elder (asked for, refused or installed); returns its id.

    The installer is the one the rules name for the kind. An elder who already has a device of the
    kind that is not removed gets no second one (change that one's state instead).
    """
    kind = D.parse_kind(kind)
    state = D.parse_state(state)
    D.check_transition("needed", state)
    care = care_rules(rules)
    at = _utc(now)
    stored = KIND_CODES[kind]
    with engine.begin() as conn:
        if conn.execute(select(Elder.id).where(Elder.id == int(elder_id))).first() is None:
            raise ValidationError("no elder with this id", "未找到该老人", field="elder_id", value=elder_id,
                                  code="unknown_elder")
        cur = conn.execute(select(Device.id, Device.status).where(
            Device.elder_id == int(elder_id), Device.kind == stored, Device.status != DeviceStatus.REMOVED)).first()
        if cur is not None:
            raise ValidationError(f"the elder already has device {cur[0]} of this kind ({cur[1]}); update it",
                                  f"该老人已有此类设备（编号 {cur[0]}，{D.STATE_LABELS.get(str(cur[1]), cur[1])}），请修改其状态",
                                  field="kind", value=kind, code="device_exists")
        did = conn.execute(Device.__table__.insert().returning(Device.id), {
            "elder_id": int(elder_id), "kind": stored, "status": DeviceStatus(state), "serial": serial,
            "funded_by": funded_by,
            "installed_on": at.date() if state == "installed" else None, "alarm_count": 0,
            "installer": care.devices[kind].installer, "updated_at": at}).scalar_one()
        conn.execute(DeviceEvent.__table__.insert(), [{
            "device_id": did, "elder_id": int(elder_id), "kind": "state", "at": at, "by_user": user,
            "from_state": "needed", "to_state": state, "referral_ids": [], "note": note}])
        conn.execute(RegisterChange.__table__.insert(), [
            _history(did, int(elder_id), "*created*", None, None, user=user, at=at, reason=f"设备登记：{D.STATE_LABELS[state]}")])
        _feed(conn, "elder", [int(elder_id)], user=user, detail={"device": did, "state": state})
    return int(did)


def update_device(engine: Engine, device_id: int, state: str, *, user: str, note: str | None = None,
                  now: datetime | None = None) -> str:
    """Change a device's state (by the life-cycle of :data:`gridmap.devices.domain.TRANSITIONS`); returns the old one."""
    new = D.parse_state(state)
    at = _utc(now)
    with engine.begin() as conn:
        row = conn.execute(select(Device.id, Device.elder_id, Device.status, Device.installed_on)
                           .where(Device.id == int(device_id))).first()
        if row is None:
            raise ValidationError("no device with this id", "未找到该设备", field="device_id", value=device_id,
                                  code="unknown_device")
        old = str(row[2])
        D.check_transition(old, new)
        if old == new:
            return old
        values: dict[str, Any] = {"status": DeviceStatus(new), "updated_at": at}
        if new == "installed":
            values["installed_on"] = at.date()
            values["last_tested_on"] = at.date()
        n = conn.execute(update(Device.__table__).where(Device.id == int(device_id), Device.status == row[2])
                         .values(**values)).rowcount
        if n != 1:
            from gridmap._errors import ConflictError

            raise ConflictError("the device was changed meanwhile; try again", "该设备已被他人修改，请重试")
        conn.execute(DeviceEvent.__table__.insert(), [{
            "device_id": int(device_id), "elder_id": int(row[1]), "kind": "state", "at": at, "by_user": user,
            "from_state": old, "to_state": new, "referral_ids": [], "note": note}])
        conn.execute(RegisterChange.__table__.insert(), [
            _history(int(device_id), int(row[1]), "status", old, new, user=user, at=at, reason=note or "设备状态变更")])
        _feed(conn, "elder", [int(row[1])], user=user, detail={"device": int(device_id), "state": new})
    return old


@dataclass
class AlarmResult:
    """What one alarm did: its referral ids, whether it was an emergency, a duplicate or ignored."""

    row: int
    device_id: int
    alarm_type: str
    elder_id: int
    referral_ids: list[int] = field(default_factory=list)
    emergency: bool = False
    duplicate: bool = False
    ignored: bool = False
    device_state: str | None = None


ALARM_REMINDER = "【探访关爱紧急提醒】老人家中智能安防设备报警（{label}），请立即联系老人或前往，社区正在协助处置。"


def ingest_alarms(engine: Engine, alarms: Sequence[D.Alarm], *, rules: Rules, user: str,
                  now: datetime | None = None) -> list[AlarmResult]:
    """Store alarms and open the referrals the rules say, all or nothing.

    Every device id must exist (else a bilingual error naming the row; nothing is written). An alarm
    stored before (the same device, time and type: ``device_event.alarm_key``) or twice in the list
    is a duplicate and opens nothing, so ingesting the same file again writes nothing new; when another
    process stores one of the alarms at the same moment (the unique key refuses the insert) the whole
    file is tried again once and that alarm is then a duplicate.
    """
    from sqlalchemy.exc import IntegrityError

    try:
        return _ingest(engine, alarms, rules=rules, user=user, now=now)
    except IntegrityError:
        return _ingest(engine, alarms, rules=rules, user=user, now=now)


def _ingest(engine: Engine, alarms: Sequence[D.Alarm], *, rules: Rules, user: str,
            now: datetime | None) -> list[AlarmResult]:
    from gridmap.followups.outbox import queue_reminders
    from gridmap.followups.store import created_history

    care = care_rules(rules)
    at = _utc(now)
    results: list[AlarmResult] = []
    with engine.begin() as conn:
        ids = sorted({a.device_id for a in alarms})
        dev = {int(r[0]): r for r in conn.execute(select(Device.id, Device.elder_id, Device.kind, Device.status)
                                                  .where(Device.id.in_(ids)))} if ids else {}
        for a in alarms:
            if a.device_id not in dev:
                raise ValidationError("no device with this id; nothing was stored", "未找到该设备，本文件未录入",
                                      field="device_id", value=a.device_id, code="unknown_device", row=a.row)
        keys = [a.key for a in alarms]
        seen = set(conn.execute(select(DeviceEvent.alarm_key).where(DeviceEvent.alarm_key.in_(keys))).scalars()) \
            if keys else set()
        elder_ids = sorted({int(r[1]) for r in dev.values()})
        info = {}
        if elder_ids:
            q = (select(Elder.id, Elder.welfare_status, Elder.categories, Elder.service_steward_id,
                        Street.name.label("street"), Community.name.label("community"))
                 .select_from(Elder).outerjoin(Street, Street.id == Elder.street_id)
                 .outerjoin(Community, Community.id == Elder.community_id).where(Elder.id.in_(elder_ids)))
            fc: dict[int, str] = {}
            for eid, name in conn.execute(select(FirstContact.elder_id, FirstContact.name).where(
                    FirstContact.elder_id.in_(elder_ids), FirstContact.valid.is_(True)).order_by(FirstContact.id)):
                fc.setdefault(int(eid), name)
            ss_ids = set()
            rows = conn.execute(q).mappings().all()
            for r in rows:
                if r["service_steward_id"] is not None:
                    ss_ids.add(int(r["service_steward_id"]))
            ss = dict(conn.execute(select(Steward.id, Steward.name).where(Steward.id.in_(sorted(ss_ids)))).all()) \
                if ss_ids else {}
            for r in rows:
                eid = int(r["id"])
                info[eid] = D.AlarmElder(
                    elder_id=eid, welfare_status=str(r["welfare_status"]) if r["welfare_status"] else None,
                    categories=frozenset(str(c) for c in (r["categories"] or [])), has_first_contact=eid in fc,
                    has_service_steward=r["service_steward_id"] is not None, street=r["street"],
                    community=r["community"], first_contact_name=fc.get(eid),
                    service_steward_name=ss.get(r["service_steward_id"]))
        events, history, reminders, touched = [], [], [], set()
        state_now = {d: str(r[3]) for d, r in dev.items()}
        for a in alarms:
            _, eid, kind, _st = dev[a.device_id]
            eid = int(eid)
            rule = care.alarms[a.alarm_type]
            res = AlarmResult(a.row, a.device_id, a.alarm_type, eid, emergency=rule.emergency)
            results.append(res)
            if a.key in seen:
                res.duplicate = True
                continue
            seen.add(a.key)
            touched.add(eid)
            label = D.kind_of_stored(str(kind))
            label = care.devices[label].label if label in care.devices else str(kind)
            specs = D.alarm_referrals(a, rule, info[eid], rules, label, now=at)
            res.ignored = rule.ignore
            for spec in specs:
                rid = conn.execute(Referral.__table__.insert().returning(Referral.id), {
                    "elder_id": eid, "visit_id": None, "need": spec.need, "target": spec.target,
                    "target_name": spec.target_name, "emergency": spec.emergency, "status": ReferralStatus.OPEN,
                    "opened_at": at, "deadline": spec.deadline, "version": 1}).scalar_one()
                res.referral_ids.append(int(rid))
                if spec.emergency and str(spec.target) == "first_contact":
                    reminders.append((eid, None, int(rid), ALARM_REMINDER.format(label=rule.label)))
            if res.referral_ids:
                conn.execute(ReferralEvent.__table__.insert(), [
                    {"referral_id": rid, "at": at, "by_user": user, "from_status": None, "to_status": "open",
                     "note": f"设备报警转介（{rule.label}）", "photo_ref": None} for rid in res.referral_ids])
                history += created_history("referral", res.referral_ids, [eid] * len(res.referral_ids), user=user,
                                           changed_at=at, source="device", reason=f"智能安防设备报警：{rule.label}")
            new_state = None
            if rule.device_state and state_now[a.device_id] != rule.device_state and \
                    rule.device_state in D.TRANSITIONS.get(state_now[a.device_id], frozenset()):
                new_state = rule.device_state
                history.append(_history(a.device_id, eid, "status", state_now[a.device_id], new_state, user=user,
                                        at=at, reason=f"设备报警：{rule.label}"))
                state_now[a.device_id] = new_state
                res.device_state = new_state
            events.append({"device_id": a.device_id, "elder_id": eid, "kind": "alarm", "at": at, "by_user": user,
                           "from_state": None, "to_state": new_state, "alarm_type": a.alarm_type,
                           "alarm_time": a.time, "alarm_key": a.key, "emergency": rule.emergency,
                           "referral_ids": res.referral_ids, "note": None})
            dt = Device.__table__
            values: dict[str, Any] = {"alarm_count": dt.c.alarm_count + 1, "last_alarm_at": a.time}
            if new_state:
                values.update(status=DeviceStatus(new_state), updated_at=at)
            conn.execute(update(dt).where(dt.c.id == a.device_id).values(**values))
        if events:
            conn.execute(DeviceEvent.__table__.insert(), events)
        if history:
            conn.execute(RegisterChange.__table__.insert(), history)
        queue_reminders(conn, reminders, rules=rules, now=at)
        if touched:
            _feed(conn, "referral", touched, user=user,
                  detail={"alarms": sum(not r.duplicate for r in results),
                          "referrals": sum(len(r.referral_ids) for r in results)})
    return results


def read_alarm_frame(engine: Engine, *, street: str | None = None) -> pd.DataFrame:
    """Stored alarms: id, device_id, elder_id, alarm_type, alarm_time, emergency, referral_ids, street."""
    import pandas as pd

    q = (select(DeviceEvent.id, DeviceEvent.device_id, DeviceEvent.elder_id, DeviceEvent.alarm_type,
                DeviceEvent.alarm_time, DeviceEvent.emergency, DeviceEvent.referral_ids, Street.name.label("street"))
         .select_from(DeviceEvent).outerjoin(Elder, Elder.id == DeviceEvent.elder_id)
         .outerjoin(Street, Street.id == Elder.street_id).where(DeviceEvent.kind == "alarm").order_by(DeviceEvent.id))
    if street is not None:
        q = q.where(Street.name == street)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    return pd.DataFrame(rows, columns=["id", "device_id", "elder_id", "alarm_type", "alarm_time", "emergency",
                                       "referral_ids", "street"])
