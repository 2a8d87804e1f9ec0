"""Joint inspections (联合入户排查, 四.(四)1): the street, the community and the departments (物业、住建、
燃气、消防、电力…) visit homes together, find hazards and confirm fixed ones.

Part of the follow-ups' store (split off :mod:`gridmap.followups.store` for size; the same helpers and
one transaction per inspection with its change-feed row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shapely.geometry import Point
from sqlalchemy import Engine, select

from gridmap._errors import ValidationError
from gridmap.domain.enums import HazardKind, HazardStatus, Severity
from gridmap.followups import lifecycle as lc
from gridmap.followups.store import Finding, _change_hazard, _feed, _now, apply_findings
from gridmap.rules.config import Rules, load_rules
from gridmap.store.models import Community, Elder, Hazard, JointInspection, Street


@dataclass
class InspectionResult:
    """What :func:`record_inspection` wrote."""

    id: int
    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)


def _bad(fld: str, value: Any, en: str, zh: str) -> ValidationError:
    return ValidationError(en, zh, field=fld, value=value, code="invalid_inspection")


def record_inspection(engine: Engine, payload: Mapping[str, Any], *, by: str, rules: Rules | None = None,
                      now: datetime | None = None) -> InspectionResult:
    """Record a joint inspection (date, street, community, departments present, homes visited) and its hazards.

    ``payload``: ``{"date": "2026-12-05", "street": "学院路街道", "community": "…" (optional),
    "departments": ["燃气", "消防"], "homes_visited": [elder ids], "note": "…",
    "hazards_found": [{"elder_id": 1, "kind": "gas" or 燃气安全, "severity": "high" (default medium),
    "note": "…"}], "hazards_closed": [hazard ids]}``. Found hazards are opened, reopened or not
    duplicated like a visit's; closed ones become 已整改 with the inspection as note. One transaction.

    Raises
    ------
    ValidationError
        Naming the field (e.g. ``hazards_found[2].kind``) and why; nothing is written.
    """
    rules = rules or load_rules()
    now = _now(now)
    if not isinstance(payload, Mapping):
        raise _bad("<root>", None, "must be a JSON object", "须为 JSON 对象")
    try:
        held_on = date.fromisoformat(str(payload.get("date")))
    except ValueError:
        raise _bad("date", payload.get("date"), "must be a date YYYY-MM-DD", "须为日期 YYYY-MM-DD") from None
    if held_on > now.date():
        raise _bad("date", str(held_on), "is in the future", "不能晚于今天")
    deps = payload.get("departments")
    if not isinstance(deps, list) or not deps or not all(isinstance(d, str) and d.strip() for d in deps):
        raise _bad("departments", deps, "must be a non-empty list of department names",
                   "须为参加部门名称的非空列表（物业、住建、燃气、消防、电力…）")
    homes = payload.get("homes_visited", [])
    if not isinstance(homes, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in homes):
        raise _bad("homes_visited", homes, "must be a list of elder ids", "须为老人编号列表")
    found = payload.get("hazards_found", [])
    closed = payload.get("hazards_closed", [])
    if not isinstance(found, list):
        raise _bad("hazards_found", found, "must be a list", "须为列表")
    if not isinstance(closed, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in closed):
        raise _bad("hazards_closed", closed, "must be a list of hazard ids", "须为隐患编号列表")
    note = payload.get("note")
    with engine.begin() as conn:
        street_name = payload.get("street")
        sid = conn.execute(select(Street.id).where(Street.name == street_name)).scalar()
        if sid is None:
            raise _bad("street", street_name, "unknown street", "未知街道")
        cid = None
        if payload.get("community"):
            cid = conn.execute(select(Community.id).where(Community.name == payload["community"],
                                                          Community.street_id == sid)).scalar()
            if cid is None:
                raise _bad("community", payload["community"], "no such community in this street", "该街道下无此社区")
        elders: dict[int, Any] = {}
        specs: list[tuple[int, HazardKind, Severity, str | None]] = []
        for i, h in enumerate(found):
            p = f"hazards_found[{i + 1}]"
            if not isinstance(h, Mapping):
                raise _bad(p, h, "must be an object", "须为对象")
            eid = h.get("elder_id")
            if not isinstance(eid, int) or isinstance(eid, bool):
                raise _bad(f"{p}.elder_id", eid, "must be an elder id", "须为老人编号")
            try:
                kind = HazardKind(HazardKind.from_label(str(h.get("kind"))))
            except ValueError:
                raise _bad(f"{p}.kind", h.get("kind"), "unknown hazard kind; one of: "
                           + ", ".join(k.value for k in HazardKind),
                           "未知隐患类别；应为：" + "、".join(k.label for k in HazardKind)) from None
            try:
                sev = Severity(Severity.from_label(str(h.get("severity") or "medium")))
            except ValueError:
                raise _bad(f"{p}.severity", h.get("severity"), "unknown severity", "未知严重程度") from None
            specs.append((eid, kind, sev, h.get("note")))
        want = sorted(set(homes) | {e for e, *_ in specs})
        for eid, esid, geom in conn.execute(select(Elder.id, Elder.street_id, Elder.geom).where(Elder.id.in_(want))):
            elders[int(eid)] = (esid, geom)
        for fld, ids in (("homes_visited", homes), ("hazards_found.elder_id", [e for e, *_ in specs])):
            for eid in ids:
                if eid not in elders:
                    raise _bad(fld, eid, "no elder with this id", "未找到该老人")
                if elders[eid][0] != sid:
                    raise _bad(fld, eid, "the elder does not live in this street", "该老人不住在本街道")
        ins = conn.execute(JointInspection.__table__.insert().returning(JointInspection.__table__.c.id), [{
            "street_id": sid, "community_id": cid, "held_on": held_on, "departments": [d.strip() for d in deps],
            "homes_visited": want, "note": note, "created_by": by, "created_at": now}]).scalar_one()
        res = InspectionResult(int(ins))
        findings = [Finding(elder_id=e, kind=k, severity=s, found_on=held_on, deadline=lc.hazard_due(rules, s, held_on),
                            owner_unit=lc.owner_unit(rules, k), description=(n or f"联合入户排查发现（{held_on}）"),
                            source="joint_inspection", inspection_id=res.id,
                            geom=elders[e][1] if isinstance(elders[e][1], Point) else None)
                    for e, k, s, n in specs]
        for hid, action in apply_findings(conn, findings, by=by, now=now, rules=rules):
            getattr(res, action).append(hid)
        touched = [e for e, *_ in specs]
        for i, hid in enumerate(closed):
            row = conn.execute(select(*Hazard.__table__.c).where(Hazard.id == hid)).mappings().first()
            if row is None:
                raise _bad(f"hazards_closed[{i + 1}]", hid, "no hazard with this id", "未找到该隐患")
            if row["elder_id"] not in elders and conn.execute(select(Elder.street_id).where(
                    Elder.id == row["elder_id"])).scalar() != sid:
                raise _bad(f"hazards_closed[{i + 1}]", hid, "the hazard is not in this street", "该隐患不在本街道")
            try:
                _change_hazard(conn, row, HazardStatus.FIXED, by=by, now=now, note=f"联合入户排查（{held_on}）确认已整改",
                               photo_ref=None, reason=None, transferred_to=None, version=None)
            except ValidationError as exc:
                raise _bad(f"hazards_closed[{i + 1}]", hid, exc.message_en, exc.message_zh) from None
            res.closed.append(int(hid))
            touched.append(row["elder_id"])
        _feed(conn, "hazard", touched + want, by=by, detail={"inspection": res.id})
    return res



__all__ = ["InspectionResult", "record_inspection"]
