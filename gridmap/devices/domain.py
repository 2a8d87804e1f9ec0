"""Devices: entitlement by the document, states, alarms (pure functions; no database, no web).

Entitlement (rules ``devices.kinds``, :class:`gridmap.care.rules.DeviceRule`):

* ``smoke_alarm`` 联网烟感报警器 and ``fire_kit`` 消防“四件套”: every elder in the programme (四(四)2,
  附件1-1 18);
* ``one_key`` 一键式智能终端: 80 and over with 户籍 in the district, and 计划生育特殊家庭 elders (三(五)2,
  附件1-1 16); others may ask for one at their own cost (listed with that reason once they have asked);
* ``home_safety`` 居家安全智能产品 of 区民政局: elders with 低保, 低收入, 生活困难 or 特困 (四(四)2).

An entitled elder's state is the state of their latest device of the kind, else ``needed``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridmap._errors import ValidationError
from gridmap.care.rules import (
    KIND_CODES,
    STORED_TO_KIND,
    AlarmRule,
    CareRules,
    DeviceRule,
)
from gridmap.domain.enums import Category, DeviceStatus, ReferralTarget, WelfareStatus
from gridmap.domain.idcard import age_on

if TYPE_CHECKING:
    import pandas as pd

    from gridmap.rules.config import Rules
    from gridmap.rules.followups import ReferralSpec

#: The device states of the work lists, in order.
STATES = ("needed", "requested", "installed", "refused", "faulty")
#: Chinese labels of the states.
STATE_LABELS = {s: DeviceStatus(s).label for s in (*STATES, "removed")}
#: Allowed state changes (a device record; ``needed`` is the state before anyone asked).
TRANSITIONS: dict[str, frozenset[str]] = {
    "needed": frozenset({"requested", "installed", "refused"}),
    "requested": frozenset({"installed", "refused", "needed"}),
    "installed": frozenset({"faulty", "removed"}),
    "faulty": frozenset({"installed", "removed"}),
    "refused": frozenset({"requested", "needed", "installed"}),
    "removed": frozenset({"requested", "needed", "installed"}),
}
#: Columns of :func:`worklist`.
WORKLIST_COLUMNS = ["elder_id", "kind", "reason", "state", "installer", "device_id", "street", "community"]
BEIJING = timezone(timedelta(hours=8))


def parse_kind(text: str) -> str:
    """A work-list kind (``smoke_alarm``, ``one_key``, ``fire_kit``, ``home_safety``) from its code or label.

    Raises
    ------
    ValidationError
        Naming the allowed kinds.
    """
    t = str(text).strip()
    if t in KIND_CODES:
        return t
    for k, dk in KIND_CODES.items():
        if t in (dk.value, dk.label):
            return k
    raise ValidationError(f"unknown device kind; use one of {', '.join(KIND_CODES)}",
                          f"未知设备类型；可选 {', '.join(KIND_CODES)}", field="kind", value=text, code="device_kind")


def parse_state(text: str) -> str:
    """A device state from its code or Chinese label."""
    t = str(text).strip()
    for s, label in STATE_LABELS.items():
        if t in (s, label):
            return s
    raise ValidationError(f"unknown device state; use one of {', '.join(STATE_LABELS)}",
                          f"未知设备状态；可选 {'、'.join(STATE_LABELS.values())}", field="state", value=text,
                          code="device_state")


def check_transition(current: str, new: str) -> None:
    """Refuse a state change the life-cycle does not allow (bilingual)."""
    if new == current:
        return
    if new not in TRANSITIONS.get(current, frozenset()):
        raise ValidationError(f"a device {current} cannot become {new}",
                              f"设备状态不能从“{STATE_LABELS.get(current, current)}”改为“{STATE_LABELS.get(new, new)}”",
                              field="state", value=new, code="device_transition")


def kind_of_stored(code: str) -> str:
    """The work-list kind of a stored device kind (``emergency_terminal`` → ``one_key``)."""
    return STORED_TO_KIND.get(str(code), str(code))


def has_district_hukou(hukou_address: Any, hukou_street: Any, lives_at_hukou: Any, district: str,
                       district_streets: Iterable[str]) -> bool:
    """户籍 in the district: the 户籍地址 names it, or the 户籍 street is one of its streets, or (nothing
    recorded about the 户籍) the elder lives at their 户籍 (their residence is in the district)."""
    addr = hukou_address if isinstance(hukou_address, str) else ""
    street = hukou_street if isinstance(hukou_street, str) else ""
    if addr or street:
        return (district in addr) or (street in set(district_streets))
    return lives_at_hukou is True


def _age(row: Mapping[str, Any], on: date) -> int | None:
    import pandas as pd

    a = row.get("age")
    if a is not None and not pd.isna(a):
        return int(a)
    b = row.get("birth_date")
    if b is None or (not isinstance(b, date) and pd.isna(b)):
        return None
    if isinstance(b, datetime):
        b = b.date()
    elif not isinstance(b, date):
        b = pd.Timestamp(b).date()
    return age_on(b, on)


def entitled_reason(row: Mapping[str, Any], rule: DeviceRule, on: date, district_streets: Iterable[str]) -> str | None:
    """Why an elder (a row of the devices' elders frame) is entitled to ``rule``'s device, or None."""
    reasons = []
    if rule.all:
        reasons.append("特殊困难老年人均应配备")
    if rule.min_age is not None:
        age = _age(row, on)
        if age is not None and age >= rule.min_age:
            if rule.hukou_district is None:
                reasons.append(f"{rule.min_age}周岁及以上")
            elif has_district_hukou(row.get("hukou_address"), row.get("hukou_street"), row.get("lives_at_hukou"),
                                    rule.hukou_district, district_streets):
                reasons.append(f"本区户籍{rule.min_age}周岁及以上")
    cats = {str(c) for c in (row.get("categories") or ())}
    for c in sorted(rule.categories, key=str):
        if c.value in cats:
            reasons.append(Category(c).label)
    ws = row.get("welfare_status")
    if ws and str(ws) in {w.value for w in rule.welfare}:
        reasons.append(WelfareStatus(str(ws)).label)
    return "、".join(reasons) or None


def worklist(elders: pd.DataFrame, devices: pd.DataFrame, kind: str, care: CareRules, on: date, *,
             programme_statuses: Iterable[str], district_streets: Iterable[str]) -> pd.DataFrame:
    """Every elder entitled to devices of ``kind`` (and those who asked at their own cost), with the state.

    Parameters
    ----------
    elders
        One row per elder: elder_id, street, community, status, birth_date (or age), categories,
        welfare_status, hukou_address, hukou_street, lives_at_hukou.
    devices
        One row per device: id, elder_id, kind (stored code), state.
    kind
        A work-list kind (:func:`parse_kind`).

    Returns
    -------
    pandas.DataFrame
        :data:`WORKLIST_COLUMNS`, by elder id: reason (Chinese), state (``needed`` when no device
        of the kind is recorded, else the latest device's state), installer (by the rules), device_id.
    """
    import pandas as pd

    kind = parse_kind(kind)
    rule = care.devices[kind]
    streets = list(district_streets)
    prog = {str(s) for s in programme_statuses}
    stored = KIND_CODES[kind].value
    latest: dict[int, tuple[int, str]] = {}
    if len(devices):
        d = devices[devices["kind"].astype(str) == stored].sort_values("id")
        for did, eid, st in zip(d["id"], d["elder_id"], d["state"].astype(str), strict=True):
            latest[int(eid)] = (int(did), st)
    rows = []
    for r in elders.to_dict("records"):
        if str(r.get("status")) not in prog:
            continue
        eid = int(r["elder_id"])
        reason = entitled_reason(r, rule, on, streets)
        dev = latest.get(eid)
        if reason is None:
            if not (rule.on_request_own_cost and dev is not None):
                continue
            reason = "其他有需求老人自愿自费申请"
        rows.append((eid, kind, reason, dev[1] if dev else "needed", rule.installer,
                     dev[0] if dev else None, r.get("street"), r.get("community")))
    out = pd.DataFrame(rows, columns=WORKLIST_COLUMNS)
    out["device_id"] = out["device_id"].astype("Int64")
    return out.sort_values("elder_id", kind="stable").reset_index(drop=True)


def coverage(elders: pd.DataFrame, devices: pd.DataFrame, care: CareRules, on: date, *,
             programme_statuses: Iterable[str], district_streets: Iterable[str],
             by: Sequence[str] = ("street", "community")) -> pd.DataFrame:
    """Per unit (``by``) and kind: entitled elders, each state's count and 覆盖率 (installed / entitled).

    Own-cost requests are not counted as entitled. Columns: *by, kind, entitled, needed, requested,
    installed, refused, faulty, coverage.
    """
    import pandas as pd

    parts = []
    for kind in care.devices:
        w = worklist(elders, devices, kind, care, on, programme_statuses=programme_statuses,
                     district_streets=district_streets)
        w = w[w["reason"] != "其他有需求老人自愿自费申请"]
        if w.empty:
            continue
        g = w.groupby([*by, "state"], dropna=False).size().unstack("state", fill_value=0)
        for s in STATES:
            if s not in g.columns:
                g[s] = 0
        g = g[list(STATES)].reset_index()
        g.insert(len(by), "kind", kind)
        parts.append(g)
    cols = [*by, "kind", "entitled", *STATES, "coverage"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out["entitled"] = out[list(STATES)].sum(axis=1)
    out["coverage"] = out["installed"] / out["entitled"]
    return out[cols].sort_values([*by, "kind"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ alarms


@dataclass(frozen=True)
class Alarm:
    """One alarm of a monitoring platform: which device, when (UTC-aware), which type; its row in the file."""

    row: int
    device_id: int
    time: datetime
    alarm_type: str

    @property
    def key(self) -> str:
        """The alarm's identity: the same device, time and type is the same alarm."""
        return f"{self.device_id}|{self.time.astimezone(UTC).isoformat()}|{self.alarm_type}"


def _parse_time(value: Any, row: int) -> datetime:
    text = str(value or "").strip()
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("expected a time like 2026-12-07T08:30:00+08:00",
                              "时间格式应为 2026-12-07T08:30:00+08:00", field="time", value=value, code="alarm_time",
                              row=row) from None
    return (t if t.tzinfo else t.replace(tzinfo=BEIJING)).astimezone(UTC)  # no offset: Beijing time


def parse_alarm_rows(items: Sequence[Mapping[str, Any]], care: CareRules, *, first_row: int = 2) -> list[Alarm]:
    """Alarms from mappings with ``device_id``, ``time``, ``alarm_type``; ``row`` numbers start at ``first_row``.

    Raises
    ------
    ValidationError
        Naming the row, the field and the reason (a missing or non-numeric device id, a bad time,
        an alarm type the rules do not know).
    """
    out = []
    for i, item in enumerate(items):
        row = first_row + i
        if not isinstance(item, Mapping):
            raise ValidationError("expected an object with device_id, time, alarm_type",
                                  "应为包含 device_id、time、alarm_type 的对象", field="device_id", code="alarm_row",
                                  row=row)
        raw_id = item.get("device_id")
        try:
            did = int(str(raw_id).strip())
        except (TypeError, ValueError):
            raise ValidationError("device_id must be a device number", "device_id 须为设备编号",
                                  field="device_id", value=raw_id, code="device_id", row=row) from None
        t = _parse_time(item.get("time"), row)
        at = str(item.get("alarm_type") or "").strip()
        if at not in care.alarms:
            raise ValidationError(f"unknown alarm type; the rules know {', '.join(care.alarms)}",
                                  f"未知报警类型；规则中有 {', '.join(care.alarms)}", field="alarm_type", value=at,
                                  code="alarm_type", row=row)
        out.append(Alarm(row, did, t, at))
    return out


def load_alarms(path: str | Path, care: CareRules) -> list[Alarm]:
    """Alarms from a CSV (header ``device_id,time,alarm_type``; row 2 is the first alarm) or a JSON list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValidationError(f"cannot read {p}: {exc}", f"无法读取 {p}：{exc}", field=str(p), code="alarms_file") from exc
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc}", f"不是有效的 JSON：{exc}", field=str(p),
                                  code="alarms_file") from None
        if isinstance(data, dict):
            data = data.get("alarms", [data])
        if not isinstance(data, list):
            raise ValidationError("expected a list of alarms", "应为报警列表", field=str(p), code="alarms_file")
        return parse_alarm_rows(data, care, first_row=1)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    for col in ("device_id", "time", "alarm_type"):
        if col not in header:
            raise ValidationError(f"the CSV has no column {col} (columns: device_id,time,alarm_type)",
                                  f"CSV 缺少列 {col}（应为 device_id,time,alarm_type）", field=col, code="alarms_header",
                                  row=1)
    rows = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
    return parse_alarm_rows(rows, care, first_row=2)


@dataclass(frozen=True)
class AlarmElder:
    """What the routing of an alarm needs to know about the device's elder."""

    elder_id: int
    welfare_status: str | None
    categories: frozenset[str]
    has_first_contact: bool
    has_service_steward: bool
    street: str | None
    community: str | None
    first_contact_name: str | None = None
    service_steward_name: str | None = None


def alarm_referrals(alarm: Alarm, rule: AlarmRule, elder: AlarmElder, rules: Rules, device_label: str, *,
                    now: datetime) -> list[ReferralSpec]:
    """The referrals an alarm opens by the rules.

    An emergency (a danger to life, 五.2 如遇危及老年人生命安全的突发情况) goes at once to the first
    contact (if any) and to the community, to be acknowledged within ``emergency_ack_minutes``; any
    other alarm is a need routed as a visit's need (特困 and 计生特殊 elders: the street of residence,
    else the first contact, …); an ignored type opens none. Deadlines run from ``now``, when the
    alarm reaches the system.
    """
    from gridmap.followups.lifecycle import referral_deadline, referral_receiver
    from gridmap.rules.followups import ReferralSpec

    if rule.ignore:
        return []
    local = alarm.time.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    need = f"{device_label}报警（{rule.label}，{local}，设备{alarm.device_id}）：{rule.need}"
    if rule.emergency:
        due = referral_deadline(rules, now, emergency=True)
        need = "危及生命安全的突发情况：" + need
        out = []
        if elder.has_first_contact:
            out.append(ReferralSpec(need, ReferralTarget.FIRST_CONTACT, elder.first_contact_name, True, due))
        out.append(ReferralSpec(need, ReferralTarget.COMMUNITY, elder.community, True, due))
        return out
    ws = WelfareStatus(elder.welfare_status) if elder.welfare_status else None
    cats = frozenset(Category(c) for c in elder.categories)
    target = referral_receiver(rules, welfare_status=ws, categories=cats, need=rule.need,
                               has_first_contact=elder.has_first_contact, has_service_steward=elder.has_service_steward)
    name = {ReferralTarget.STREET_OF_RESIDENCE: elder.street, ReferralTarget.FIRST_CONTACT: elder.first_contact_name,
            ReferralTarget.SERVICE_STEWARD: elder.service_steward_name,
            ReferralTarget.COMMUNITY: elder.community}.get(target)
    return [ReferralSpec(need, target, name, False, referral_deadline(rules, now, emergency=False))]
