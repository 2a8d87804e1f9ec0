"""Each device entitlement rule of the document, through ``gridmap devices worklist --json``, equals an
independent computation on the raw rows of a 2,000-elder demo register, on both backends.

The expected lists are computed here in plain Python from the ``elder``, ``street`` and ``device`` tables
(no gridmap function is called for them): 联网烟感报警器 and 消防“四件套” for every elder in the programme,
一键式智能终端 for 本区户籍 80+ and 计划生育特殊家庭 elders (others only once they asked, at their own cost),
民政 居家安全智能产品 for 低保、低收入、生活困难、特困; the state is the latest device's, else needed.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import Engine, text

from tests.devices.conftest import TODAY, load_demo, run

WORKLIST_KEYS = {"elder_id", "reason", "state"}
LIST_KEYS = {"id", "elder_id", "kind", "state"}
STORED = {"smoke_alarm": "smoke_alarm", "one_key": "emergency_terminal", "fire_kit": "fire_kit",
          "home_safety": "home_safety"}


def _raw(engine: Engine) -> tuple[list[dict], set[str], list[dict]]:
    with engine.connect() as c:
        elders = [dict(r) for r in c.execute(text(
            "SELECT id, status, birth_date, categories, welfare_status, hukou_address, hukou_street, lives_at_hukou "
            "FROM elder ORDER BY id")).mappings()]
        streets = {r[0] for r in c.execute(text("SELECT name FROM street"))}
        devices = [dict(r) for r in c.execute(text("SELECT id, elder_id, kind, status FROM device ORDER BY id")).mappings()]
    for e in elders:
        cats = e["categories"]
        e["categories"] = json.loads(cats) if isinstance(cats, str) else list(cats or [])
        b = e["birth_date"]
        e["birth_date"] = date.fromisoformat(b) if isinstance(b, str) else b
    return elders, streets, devices


def _age(b: date, on: date) -> int:
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def _expected(kind: str, elders: list[dict], streets: set[str], devices: list[dict]) -> dict[int, str]:
    """elder id -> state, for the elders the document entitles (plus one-key requests at own cost)."""
    latest: dict[int, str] = {}
    for d in devices:  # id order: the last one wins
        if d["kind"] == STORED[kind]:
            latest[d["elder_id"]] = d["status"]
    out = {}
    for e in elders:
        if e["status"] not in ("active", "in_hospital"):
            continue
        if kind in ("smoke_alarm", "fire_kit"):
            entitled = True
        elif kind == "one_key":
            haidian = ("海淀区" in (e["hukou_address"] or "")) or ((e["hukou_street"] or "") in streets) \
                if (e["hukou_address"] or e["hukou_street"]) else bool(e["lives_at_hukou"])
            old = e["birth_date"] is not None and _age(e["birth_date"], TODAY) >= 80
            entitled = (old and haidian) or "family_planning_special" in e["categories"]
            entitled = entitled or e["id"] in latest  # 其他有需求的老年人可自愿自费申请
        else:
            entitled = e["welfare_status"] in ("dibao", "low_income", "hardship", "tekun")
        if entitled:
            out[e["id"]] = latest.get(e["id"], "needed")
    return out


def test_each_entitlement_rule_equals_the_independent_computation_on_the_demo(
        engine: Engine, layers, monkeypatch: pytest.MonkeyPatch) -> None:
    load_demo(engine, layers, monkeypatch, elders=2000)
    elders, streets, devices = _raw(engine)
    assert len(elders) == 2000
    for kind in ("smoke_alarm", "one_key", "fire_kit", "home_safety"):
        res = run(engine, "devices", "worklist", "--kind", kind, "--json", "--today", TODAY.isoformat())
        assert res.exit_code == 0, res.output
        rows = json.loads(res.stdout)
        assert rows and all(WORKLIST_KEYS <= set(r) for r in rows)
        got = {r["elder_id"]: r["state"] for r in rows}
        assert len(got) == len(rows)  # one row per elder
        want = _expected(kind, elders, streets, devices)
        assert got == want, kind
        states = Counter(got.values())
        assert states["needed"] > 0 and states["installed"] > 0, (kind, states)  # both sides are exercised
    # the one-key rule's parts all occur: 本区户籍 80+, 计生, and 80+ with another district's 户籍 left out
    rows = json.loads(run(engine, "devices", "worklist", "--kind", "one_key", "--json", "--today", "2026-12-10").stdout)
    reasons = Counter(r["reason"] for r in rows)
    assert reasons["本区户籍80周岁及以上"] > 0 and reasons["计划生育特殊家庭"] > 0
    assert reasons["其他有需求老人自愿自费申请"] > 0
    listed = {r["elder_id"] for r in rows}
    outside = [e["id"] for e in elders if e["hukou_street"] == "外区" and _age(e["birth_date"], TODAY) >= 80
               and "family_planning_special" not in e["categories"]
               and not any(d["elder_id"] == e["id"] and d["kind"] == "emergency_terminal" for d in devices)]
    assert outside and not (set(outside) & listed)
    # the 民政 products: the four benefit values the register uses all qualify, others do not
    hs = {r["elder_id"]: r["reason"] for r in json.loads(
        run(engine, "devices", "worklist", "--kind", "home_safety", "--json").stdout)}
    welfare = {e["id"]: e["welfare_status"] for e in elders}
    assert {welfare[i] for i in hs} <= {"dibao", "low_income", "hardship", "tekun"}
    assert {"dibao", "low_income", "tekun"} <= {welfare[i] for i in hs}


def test_devices_list_json_has_the_contract_keys_and_street_filter(engine: Engine, layers,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    load_demo(engine, layers, monkeypatch, elders=300, seed=4)
    _, _, devices = _raw(engine)
    res = run(engine, "devices", "list", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == len(devices) and all(LIST_KEYS <= set(r) for r in rows)
    assert {r["kind"] for r in rows} <= {"smoke_alarm", "one_key", "fire_kit", "home_safety", "health_monitor", "other"}
    assert {r["state"] for r in rows} <= {"needed", "requested", "installed", "refused", "faulty", "removed"}
    street = rows[0]["street"]
    only = json.loads(run(engine, "devices", "list", "--street", street, "--json").stdout)
    assert only and {r["street"] for r in only} == {street}
    assert len(only) == sum(r["street"] == street for r in rows)
