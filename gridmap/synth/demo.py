"""Load a synthetic register into the store for the demo: elders, stewards, devices, visits, grids.

:func:`load_demo_register` generates the register with
:func:`gridmap.synth.register.generate_register`, redraws the grids from the
elders' homes (:func:`gridmap.layers.grids.build_grids`, capacity
:data:`gridmap.synth.targets.GRID_CAPACITY` elders per grid) and writes
everything with Core bulk inserts in chunks (30,000 elders and their 200,000
visits in well under two minutes on both backends).

Marker and idempotency
----------------------
Synthetic elders carry ``field_sources["_origin"] == "synthetic"`` (and every
field's source is ``synthetic``); synthetic stewards have codes starting with
``SYN-``. Running the loader again first removes the previous synthetic
records with Core deletes — elders and their household members, first
contacts, devices, visits, hazards, referrals, care services and field
conflicts — which the ORM would refuse (elders are never deleted through a
session). Only synthetic demo data are ever removed this way; real records
are untouched. The creation history is written to ``register_change`` in
bulk (``field='*created*'``, ``changed_by='synth'``, ``source='synthetic'``);
that table is append-only, so history rows of a replaced synthetic register
stay behind.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, delete, func, select, text

from gridmap._progress import step_bar
from gridmap.store.models import (
    CareService,
    Community,
    Device,
    DeviceEvent,
    Elder,
    FieldConflict,
    FirstContact,
    Grid,
    Hazard,
    HazardEvent,
    HouseholdMember,
    MetaInfo,
    Notification,
    Referral,
    ReferralEvent,
    RegisterChange,
    ServiceStation,
    ServiceTask,
    ServiceTaskEvent,
    Steward,
    Street,
    Visit,
)
from gridmap.synth import targets as T

__all__ = ["CHUNK", "STEWARD_PREFIX", "clear_synthetic", "demo_now", "load_demo_register", "record_history",
           "visit_mapping"]

#: Rows per bulk insert statement batch.
CHUNK = 5000
#: Code prefix of synthetic stewards.
STEWARD_PREFIX = "SYN-"
_ORIGIN = "synthetic"
BEIJING = timezone(timedelta(hours=8))
#: Who enters the demo's history (the register history and the change feed name it).
DEMO_USER = "synth"
_ANSWERS = ("family_change", "expression", "mobility", "illness", "mood", "gas_safety", "water_heating_safety",
            "electricity_safety", "personal_hygiene", "home_hygiene", "indoor_environment")


def _chunks(seq: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _py(v: Any) -> Any:
    """numpy/pandas scalars → plain Python (psycopg cannot adapt numpy types); NaN → None."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
        return None if isinstance(v, float) and math.isnan(v) else v
    if v is pd.NaT:
        return None
    return v


def synthetic_elder_ids(conn: Any) -> list[int]:
    """Ids of the elders marked ``field_sources["_origin"] == "synthetic"``."""
    ids = []
    for eid, fs in conn.execute(select(Elder.id, Elder.field_sources)):
        if isinstance(fs, str):
            fs = json.loads(fs)
        if isinstance(fs, dict) and fs.get("_origin") == _ORIGIN:
            ids.append(eid)
    return ids


def clear_synthetic(engine: Engine) -> int:
    """Remove a previous synthetic register (Core deletes; synthetic records only).

    Returns
    -------
    int
        Number of synthetic elders removed.
    """
    with engine.begin() as conn:
        ids = synthetic_elder_ids(conn)
        for part in _chunks(ids):
            # the follow-ups' events and reminders first (they point at the hazards and referrals)
            conn.execute(delete(Notification).where(Notification.elder_id.in_(part)))
            conn.execute(delete(HazardEvent).where(
                HazardEvent.hazard_id.in_(select(Hazard.id).where(Hazard.elder_id.in_(part)))))
            conn.execute(delete(ReferralEvent).where(
                ReferralEvent.referral_id.in_(select(Referral.id).where(Referral.elder_id.in_(part)))))
            conn.execute(delete(DeviceEvent).where(  # issue 17 part B: device states and alarms
                DeviceEvent.device_id.in_(select(Device.id).where(Device.elder_id.in_(part)))))
            conn.execute(delete(ServiceTaskEvent).where(  # issue 17 part A: service tasks' events
                ServiceTaskEvent.task_id.in_(select(ServiceTask.id).where(ServiceTask.elder_id.in_(part)))))
            for model in (Hazard, Referral, CareService, ServiceTask, FieldConflict, Visit, Device, HouseholdMember,
                          FirstContact):
                conn.execute(delete(model).where(model.elder_id.in_(part)))
            conn.execute(delete(Elder).where(Elder.id.in_(part)))
        syn = select(Steward.id).where(Steward.code.like(f"{STEWARD_PREFIX}%"))
        used_v = select(Visit.steward_id).where(Visit.steward_id.is_not(None))
        used_e1 = select(Elder.visit_steward_id).where(Elder.visit_steward_id.is_not(None))
        used_e2 = select(Elder.service_steward_id).where(Elder.service_steward_id.is_not(None))
        from gridmap.store.models import AppUser

        used_u = select(AppUser.steward_id).where(AppUser.steward_id.is_not(None))
        conn.execute(delete(Steward).where(Steward.id.in_(syn), Steward.id.not_in(used_v),
                                           Steward.id.not_in(used_e1), Steward.id.not_in(used_e2),
                                           Steward.id.not_in(used_u)))
    return len(ids)


def _insert(conn: Any, model: type, rows: list[dict[str, Any]], *, returning: bool = False) -> list[int]:
    """Bulk insert in chunks; with ``returning`` the ids are assigned here (max + 1 …) and returned.

    Explicit ids keep the inserts batched on both backends (an ordered
    ``RETURNING`` falls back to one row per statement on PostgreSQL); the
    table is locked for the transaction and its sequence moved past the new
    ids on PostgreSQL.
    """
    table = model.__table__
    ids: list[int] = []
    if returning and rows:
        pg = conn.dialect.name == "postgresql"
        if pg:
            conn.execute(text(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE"))
        start = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
        ids = list(range(start, start + len(rows)))
        rows = [{**r, "id": i} for r, i in zip(rows, ids, strict=True)]
    for part in _chunks(rows):
        conn.execute(table.insert(), part)
    if returning and rows and conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), {ids[-1]})"))
    return ids


def _history(conn: Any, entity: str, ids: Iterable[int], elder_ids: Iterable[int | None], now: datetime) -> None:
    rows = [{"entity": entity, "entity_id": i, "elder_id": e, "field": "*created*", "old_value": None,
             "new_value": None, "changed_by": "synth", "changed_at": now, "source": _ORIGIN,
             "reason": "synthetic demo register"} for i, e in zip(ids, elder_ids, strict=True)]
    _insert(conn, RegisterChange, rows)


def load_demo_register(
    engine: Engine,
    layers: Any,
    *,
    elders: int = 30000,
    seed: int = 1,
    progress: bool = False,
    near_roads: Any = "auto",
    today: date | None = None,
) -> int:
    """Generate a synthetic register and store it (replacing a previous synthetic one).

    The visit history runs up to the day before ``today`` (8 weeks and the
    current week so far) and is recorded through the path of a real visit
    (:func:`record_history`), so hazards, referrals and care services follow
    from the answers by the rules.

    Parameters
    ----------
    engine
        A migrated store (SQLite or PostGIS) holding the layers
        (:func:`gridmap.store.layers_store.save_admin_layers`).
    layers
        The :class:`~gridmap.layers.build.Layers` that were stored.
    elders, seed
        Size and seed of the register.
    progress
        Print steps and timings.
    near_roads
        Passed to :func:`~gridmap.synth.register.generate_register`.
    today
        The demo's today (default: today in Beijing; then visits are entered
        up to now, else up to 08:00 of ``today``).

    Returns
    -------
    int
        Number of elders written.
    """
    from gridmap.layers.assign import assign_areas
    from gridmap.layers.grids import build_grids
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.register import generate_register

    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    if elders <= 0:  # layers only: remove any earlier synthetic register, generate nothing
        removed = clear_synthetic(engine)
        say(f"no synthetic elders requested; {removed} old synthetic elders removed")
        return 0
    t0 = time.perf_counter()
    now_demo = demo_now(today)
    today = now_demo.astimezone(BEIJING).date()
    reg = generate_register(layers, elders, seed, near_roads=near_roads, progress=progress,
                            reference_date=today, current_week=True)
    E = reg.elders
    n = len(E)
    say(f"generated {n} elders, {len(reg.stewards)} stewards, {len(reg.visits)} visits "
        f"in {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    pts = gpd.GeoDataFrame({"community_code": E["community_code"].to_numpy()},
                           geometry=gpd.points_from_xy(E["经度"], E["纬度"]), crs="EPSG:4326")
    grids = build_grids(layers.communities, pts, float(T.GRID_CAPACITY), streets=layers.streets) if n else None
    removed = clear_synthetic(engine)
    if grids is not None:
        save_admin_layers(engine, layers.district, layers.streets, layers.communities, grids=grids, user="synth")
    assigned = assign_areas(pts, layers.streets, layers.communities, grids) if n else pts.assign(grid_id=None)
    say(f"grids {0 if grids is None else len(grids)} rebuilt, {removed} old synthetic elders removed "
        f"in {time.perf_counter() - t1:.1f} s")

    t2 = time.perf_counter()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        street_id = dict(conn.execute(select(Street.name, Street.id)).all())
        comm_id = dict(conn.execute(select(Community.code, Community.id)).all())
        grid_id = dict(conn.execute(select(Grid.code, Grid.id)).all())
        station_id = {c: i for i, c in conn.execute(
            select(ServiceStation.id, ServiceStation.community_id).where(ServiceStation.kind == "care_station")).all()}
        existing = dict(conn.execute(select(Steward.code, Steward.id).where(
            Steward.code.like(f"{STEWARD_PREFIX}%"))).all())

        # stewards
        S = reg.stewards
        srows = []
        for r in S.itertuples(index=False):
            code = STEWARD_PREFIX + r.code
            if code in existing:
                continue
            cid = comm_id.get(r.community_code)
            srows.append({"code": code, "name": r.name, "kind": r.kind, "organisation": r.organisation,
                          "phone": r.phone, "community_id": cid, "station_id": station_id.get(cid),
                          "base": shapely.Point(float(r.base_lon), float(r.base_lat)),
                          "work_days": list(r.work_days), "max_work_minutes": int(r.max_work_minutes),
                          "travel_mode": r.travel_mode, "active": True})
        sids = _insert(conn, Steward, srows, returning=True)
        _history(conn, "steward", sids, [None] * len(sids), now)
        steward_id = {**existing, **{row["code"]: i for row, i in zip(srows, sids, strict=True)}}

        # elders
        lon = E["经度"].to_numpy(dtype=float)
        lat = E["纬度"].to_numpy(dtype=float)
        signed_station = _nearest_care_station(conn, E, lon, lat)  # issue 17 part B
        geoms = shapely.points(lon, lat)
        gcodes = assigned["grid_id"].to_numpy()
        cols = {c: E[c].tolist() for c in E.columns if c not in ("household", "devices", "categories")}
        cats = E["categories"].tolist()
        field_sources = {"_origin": _ORIGIN}
        erows = []
        for i in range(n):
            def g(c: str, i: int = i) -> Any:
                return _py(cols[c][i])

            units = []
            if g("signed_care_station") or g("signed_home_care_bed"):
                units.append("养老服务设施网")
            if g("family_doctor_signed"):
                units.append("家庭医生")
            erows.append({
                "name": g("姓名"), "id_number": g("居民身份证号码"), "sex": g("性别"),
                "birth_date": g("birth_date"), "phone": g("联系电话"), "address": g("家庭住址"),
                "street_id": street_id.get(g("街道（乡镇）")), "community_id": comm_id.get(g("community_code")),
                "grid_id": grid_id.get(_py(gcodes[i])), "lives_at_hukou": bool(g("是否居住在户籍所在地")),
                "hukou_address": g("hukou_address"), "hukou_street": g("hukou_street"), "categories": cats[i],
                "disability_level": g("disability_level"), "disability_cert_no": g("残疾人证号") or None,
                "disability_grade": g("disability_grade"), "disability_type": g("disability_type"),
                "other_notes": g("其他情况") or None, "water_safe": bool(g("water_safe")),
                "electricity_safe": bool(g("electricity_safe")), "housing_safe": bool(g("housing_safe")),
                "monthly_income": g("monthly_income"), "benefits": g("benefits"),
                "welfare_status": g("welfare_status"), "dispersed_support": bool(g("dispersed_support")),
                "assistance_units": units, "willing_to_be_visited": bool(g("是否愿意接受探访")),
                "signed_care_station": bool(g("signed_care_station")),
                "signed_home_care_bed": bool(g("signed_home_care_bed")),
                "family_doctor_signed": bool(g("family_doctor_signed")), "status": "active",
                # issue 17 part B: the wish of 家庭医生签约意愿 (已签约/愿意/不愿意) and the 驿站 signed with
                "wants_family_doctor": _WISH.get(g("家庭医生签约意愿")), "station_id": signed_station.get(i),
                "status_date": g("entered_on"), "entered_on": g("entered_on"), "geom": geoms[i],
                "geocode_quality": g("geocode_quality"),
                "visit_steward_id": steward_id.get(STEWARD_PREFIX + g("visit_steward_code")),
                "service_steward_id": steward_id.get(STEWARD_PREFIX + g("service_steward_code")),
                "field_sources": field_sources, "created_at": now, "updated_at": now,
            })
        eids = _insert(conn, Elder, erows, returning=True)
        _history(conn, "elder", eids, eids, now)
        say(f"elders written in {time.perf_counter() - t2:.1f} s")

        # household members, first contacts, devices
        hrows, frows, drows = [], [], []
        fc_name, fc_rel, fc_phone = E["第一联系人"].tolist(), E["第一联系人关系"].tolist(), E["第一联系人电话"].tolist()
        rules = E["first_contact_rule"].tolist()
        for i, (hh, devs) in enumerate(zip(E["household"].tolist(), E["devices"].tolist(), strict=True)):
            eid = eids[i]
            for m in hh:
                hrows.append({"elder_id": eid, "seq": m["seq"], "name": m["name"], "sex": m["sex"],
                              "id_number": m["id_number"], "relation": m["relation"], "health": m["health"],
                              "welfare_status": _py(m["welfare_status"])})
            frows.append({"elder_id": eid, "name": fc_name[i], "relation": fc_rel[i], "phone": fc_phone[i],
                          "rule": rules[i], "valid": True, "chosen_on": _py(cols["entered_on"][i])})
            for d in devs:
                drows.append({"elder_id": eid, **d, "alarm_count": 0, "installer": _installer(d["kind"])})
            drows += _home_safety(eid, _py(cols["welfare_status"][i]), i, seed, today)  # issue 17 part B
        hids = _insert(conn, HouseholdMember, hrows, returning=True)
        _history(conn, "household_member", hids, [r["elder_id"] for r in hrows], now)
        fids = _insert(conn, FirstContact, frows, returning=True)
        _history(conn, "first_contact", fids, [r["elder_id"] for r in frows], now)
        dids = _insert(conn, Device, drows, returning=True)
        _history(conn, "device", dids, [r["elder_id"] for r in drows], now)

        conn.execute(delete(MetaInfo).where(MetaInfo.key == "synthetic_register"))
        conn.execute(MetaInfo.__table__.insert(), [{"key": "synthetic_register", "value": json.dumps({
            "seed": seed, "elders": n, "visits": len(reg.visits), "stewards": len(steward_id),
            "reference_date": reg.reference_date.isoformat(), "generated_at": now.isoformat(),
            "grid_capacity": T.GRID_CAPACITY}, ensure_ascii=False)}])
    say(f"register (elders, stewards, devices) stored in {time.perf_counter() - t2:.1f} s")
    t3 = time.perf_counter()
    counts = record_history(engine, reg, eids, steward_id, now=now_demo, seed=seed, progress=progress)
    say("history recorded through the visit path: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" in {time.perf_counter() - t3:.1f} s")
    say(f"synthetic register stored in {time.perf_counter() - t0:.1f} s")
    return n


_WISH = {"已签约": True, "愿意": True, "不愿意": False}


def _nearest_care_station(conn: Any, E: pd.DataFrame, lon: np.ndarray, lat: np.ndarray) -> dict[int, int]:
    """issue 17 part B: row → the nearest care station (驿站) for the elders signed with a station or a bed."""
    from gridmap.care.domain import nearest_points

    pts = pd.DataFrame([(int(i), g.x, g.y) for i, g in conn.execute(
        select(ServiceStation.id, ServiceStation.geom).where(ServiceStation.kind == "care_station")) if g is not None],
        columns=["id", "lon", "lat"])
    signed = (E["signed_care_station"].astype(bool) | E["signed_home_care_bed"].astype(bool)).to_numpy()
    rows = np.flatnonzero(signed)
    if pts.empty or not len(rows):
        return {}
    near = nearest_points(lon[rows], lat[rows], pts)["point_index"].to_numpy()
    return {int(r): int(pts["id"].iat[j]) for r, j in zip(rows, near, strict=True) if j >= 0}


_INSTALLERS: dict[str, str] = {}


def _installer(kind: str) -> str | None:
    """issue 17 part B: who installs a device of this stored kind, by the rules (read once)."""
    from gridmap.care.rules import STORED_TO_KIND, care_rules

    if not _INSTALLERS:
        _INSTALLERS.update({stored: care_rules().devices[k].installer for stored, k in STORED_TO_KIND.items()})
    return _INSTALLERS.get(str(kind))


def _home_safety(elder_id: int, welfare: Any, i: int, seed: int, today: date) -> list[dict[str, Any]]:
    """issue 17 part B: 区民政局's 居家安全智能产品 at most economically hard-up elders' homes (synthetic)."""
    if welfare not in ("dibao", "low_income", "hardship", "tekun"):
        return []
    u = np.random.default_rng((seed, 17, i)).random()
    if u >= 0.7:
        return []
    return [{"elder_id": elder_id, "kind": "home_safety", "status": "faulty" if u < 0.03 else "installed",
             "serial": f"HS{i:06d}", "funded_by": "区民政局", "installed_on": today - timedelta(days=30 + int(u * 600)),
             "last_tested_on": today - timedelta(days=5), "alarm_count": 0, "installer": _installer("home_safety")}]


def count_synthetic(engine: Engine) -> dict[str, int]:
    """Counts of synthetic elders, their visits and synthetic stewards (for checks)."""
    with engine.connect() as conn:
        ids = synthetic_elder_ids(conn)
        visits = 0
        for part in _chunks(ids):
            visits += conn.execute(select(func.count()).select_from(Visit).where(Visit.elder_id.in_(part))).scalar_one()
        stewards = conn.execute(select(func.count()).select_from(Steward).where(
            Steward.code.like(f"{STEWARD_PREFIX}%"))).scalar_one()
    return {"elders": len(ids), "visits": int(visits), "stewards": int(stewards)}


def demo_now(today: date | None = None) -> datetime:
    """The demo's "now": the current time, or 08:00 (Beijing) of a pinned ``today``."""
    real = datetime.now(UTC)
    if today is None or today == real.astimezone(BEIJING).date():
        return real
    return datetime.combine(today, dtime(8, 0), tzinfo=BEIJING)


def _pydt(v: Any) -> datetime | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.to_pydatetime() if isinstance(v, pd.Timestamp) else v


def visit_mapping(row: dict[str, Any], elder_id: int, steward_id: int | None) -> dict[str, Any]:
    """One synthetic visit as the JSON a steward's app or ``gridmap visits record`` sends (for ``parse_visit``)."""
    started, ended, entered = _pydt(row["started_at"]), _pydt(row["ended_at"]), _pydt(row["entered_at"])
    m: dict[str, Any] = {
        "elder_id": elder_id, "visited_on": row["visited_on"], "mode": row["mode"],
        "visitor_role": row["visitor_role"], "visitor_name": _py(row["visitor_name"]), "steward_id": steward_id,
        "started_at": started, "ended_at": ended, "illness_name": _py(row["illness_name"]),
        # issue 17 (A): the needs as the rules' labels (each a service task; none recorded: 无); every other one
        # entered as free text as older apps and paper records do (a note: a referral, 五.2)
        "needs": _needs_of(elder_id, row), "emergency": bool(row.get("emergency", False)),
        "visitor_signature": _py(row["visitor_signature"]), "elder_signature": _py(row["elder_signature"]),
        "recorder_signature": _py(row["visitor_signature"]), "signed_at": ended,
        "entered_by": _py(row["entered_by"]), "entered_at": entered, "late_entry": bool(row["late_entry"]),
    }
    for c in _ANSWERS:
        v = _py(row[c])
        if v is not None:
            m[c] = v
    m.update(_new_items(elder_id, row))
    lon, lat = _py(row["gps_lon"]), _py(row["gps_lat"])
    if lon is not None and lat is not None:
        m["gps"] = [lon, lat]
        m["gps_time"] = started
    return m


def _needs_of(elder_id: int, row: dict[str, Any]) -> Any:
    """issue 17 (A): a synthetic visit's needs: ``[]`` (无), ``[label]`` or, for half of them (by a hash of the
    elder and the day), the label as a free-text note."""
    import zlib

    label = _py(row["needs"])
    if not label:
        return []
    return [label] if zlib.crc32(f"{elder_id}|{row['visited_on']}|n".encode()) % 2 else str(label)


def _new_items(elder_id: int, row: dict[str, Any]) -> dict[str, str]:
    """issue 17 (A): 反应能力, 赡养 and (seen at home) 房屋安全, 饮水安全 of a synthetic visit, drawn from a hash of
    the elder and the day (the register's random stream stays as it was)."""
    import zlib

    def u(k: str) -> float:
        return zlib.crc32(f"{elder_id}|{row['visited_on']}|{k}".encode()) / 2 ** 32

    def pick(x: float, table: tuple[tuple[str, float], ...]) -> str:
        acc = 0.0
        for code, p in table:
            acc += p
            if x < acc:
                return code
        return table[-1][0]

    out = {"reaction": pick(u("r"), (("unchanged", 0.9), ("better", 0.04), ("worse", 0.06))),
           "family_support": pick(u("f"), (("regular", 0.7), ("occasional", 0.25), ("none", 0.05)))}
    if row["mode"] != "phone":
        safety = (("safe", 0.996), ("fairly_safe", 0.003), ("unsafe", 0.001))
        out["housing_safety"] = pick(u("h"), safety)
        out["drinking_water_safety"] = pick(u("w"), safety)
    return out


def record_history(
    engine: Engine,
    reg: Any,
    elder_ids: list[int],
    steward_ids: dict[str, int],
    *,
    now: datetime,
    seed: int = 1,
    progress: bool = False,
) -> dict[str, int]:
    """Record a synthetic visit history day by day through the path of a real visit, with its follow-ups.

    Each day's entries are validated by :func:`gridmap.rules.visits.parse_visit`
    and written by :func:`gridmap.rules.store.record_visits` (so hazards,
    referrals and care services follow from the answers by the rules); then,
    as users would, receivers and owner units move them on through the
    life-cycle's functions (:class:`gridmap.synth.followups.FollowupWork`:
    hazards 整改中/已整改/无法整改/已移交, referrals 已受理/处理中/已办结 with
    satisfaction) and the daily escalation (:func:`gridmap.rules.store.escalate_referrals`,
    ``gridmap jobs run``) escalates emergencies not acknowledged in time, once. Paper records
    whose entry time is after ``now`` are not entered yet.

    Returns
    -------
    dict
        Counts written: visits, hazards (opened, reopened), referrals, care services, escalated, and the
        state changes (``hazards_fixed``, ``referrals_closed``…).
    """
    from gridmap.rules.config import load_rules
    from gridmap.rules.store import escalate_referrals, record_visits
    from gridmap.rules.visits import parse_visit
    from gridmap.synth.followups import FollowupWork
    from gridmap.synth.tasks import TaskWorkPlan

    rules = load_rules()
    rng = np.random.default_rng(seed + 7919)
    V = reg.visits
    counts = {"visits": 0, "hazards": 0, "hazards_reopened": 0, "referrals": 0, "care_services": 0, "escalated": 0}
    if not len(V):
        return counts
    entered = pd.DatetimeIndex(V["entered_at"])
    keep = np.asarray(entered <= pd.Timestamp(now)) & (V["visited_on"].to_numpy() < now.astimezone(BEIJING).date())
    V = V[keep]
    entry_day = pd.DatetimeIndex(V["entered_at"]).tz_convert(BEIJING).date
    rows = V.to_dict("records")
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row, d in zip(rows, entry_day, strict=True):
        by_day.setdefault(d, []).append(row)
    days = sorted(by_day)
    first, last = days[0], now.astimezone(BEIJING).date()
    work = FollowupWork(engine, rules, now, rng, DEMO_USER)
    task_work = TaskWorkPlan(engine, now, np.random.default_rng(seed + 17), DEMO_USER)  # issue 17 (A)
    bar = step_bar((last - first).days + 1, progress)
    bar.set_description("history / 探访记录（逐日录入）")
    d = first
    while d <= last:
        evening = min(datetime.combine(d, dtime(18, 0), tzinfo=BEIJING), now)
        day_rows = by_day.get(d, [])
        if day_rows:
            recs = []
            for row in day_rows:
                sc = _py(row["steward_code"])
                sid = steward_ids.get(STEWARD_PREFIX + sc) if sc else None
                recs.append(parse_visit(visit_mapping(row, elder_ids[row["elder_index"]], sid), rules, now=evening))
            results = record_visits(engine, recs, rules=rules, now=evening, user=DEMO_USER)
            counts["visits"] += len(results)
            for rec, res in zip(recs, results, strict=True):
                counts["hazards"] += len(res.hazard_ids)
                counts["hazards_reopened"] += len(res.reopened_hazard_ids)
                counts["care_services"] += len(res.care_service_ids)
                counts["referrals"] += len(res.referral_ids)
                for hid in res.hazard_ids + res.reopened_hazard_ids:  # owner units set to work
                    work.hazard_opened(hid, evening)
                for rid in res.referral_ids:
                    work.referral_opened(rid, rec.emergency, evening)
                for tid in res.task_ids:  # issue 17 (A): a service steward serves the need they found at once
                    task_work.task_opened(tid, evening, served_at_visit=str(rec.visitor_role) == "service_steward")
                counts["tasks"] = counts.get("tasks", 0) + len(res.task_ids)
        # what receivers and owner units did that day (through the life-cycle's functions)
        work.apply(d)
        task_work.apply(d)
        # the daily escalation run (``gridmap jobs run``), one hour after the evening's entries
        run = evening + timedelta(hours=1)
        if run <= now:
            escalated = escalate_referrals(engine, run, rules=rules, user=DEMO_USER)
            counts["escalated"] += len(escalated)
            work.escalated(escalated, d)
        bar.update(1)
        d += timedelta(days=1)
    bar.close()
    counts.update(sorted(work.counts.items()))
    counts.update(sorted(task_work.counts.items()))
    return counts


def store_week_plans(engine: Engine, today: date, *, progress: bool = False, out_dir: Any = None) -> Any:
    """This week's plans, stored where the steward view reads them (``gridmap plan week --time-limit 0``).

    Each steward's seeded first plan (no search, so the demo stays quick) of
    the week of ``today``, with :func:`gridmap.routing.district.plan_week`.

    Returns
    -------
    gridmap.routing.district.DistrictRun
    """
    from gridmap.routing.district import plan_week
    from gridmap.rules.requirements import week_of

    return plan_week(engine, week_of(today), out_dir=out_dir, time_limit=0, progress=progress)
