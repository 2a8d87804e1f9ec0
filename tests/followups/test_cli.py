"""``gridmap hazards``, ``gridmap referrals``, ``gridmap jobs`` and ``gridmap visits record`` given the same
JSON twice, through the command line on both backends."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.followups import store as fs
from gridmap.rules.store import record_visit
from gridmap.store.models import HazardEvent, ReferralEvent, Visit
from tests.followups.conftest import NOW, RULES, register, visit

runner = CliRunner()
HAZARD_KEYS = {"id", "elder_id", "elder", "street", "kind", "status", "opened_on", "due_on", "closed_on", "owner_unit"}
REFERRAL_KEYS = {"id", "elder_id", "elder", "street", "kind", "status", "opened_on", "due_on", "closed_on", "receiver"}


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _run(engine: Engine, *args: str):  # noqa: ANN202
    return runner.invoke(app, [*args, "--database-url", _url(engine)])


@pytest.fixture
def seeded(engine: Engine) -> tuple[Engine, dict]:
    (e1, e2) = register(engine)["elders"]
    a = record_visit(engine, visit(e1, "2026-11-20", gas="不安全", needs="想办理老年卡"), rules=RULES, now=NOW)
    b = record_visit(engine, visit(e2, "2026-12-01", emergency=True), rules=RULES, now=NOW)
    return engine, {"hazard": a.hazard_ids[0], "need": a.referral_ids[0], "emergency": b.referral_ids, "e1": e1}


def test_hazards_list_json_and_table(seeded) -> None:  # noqa: ANN001
    engine, ids = seeded
    r = _run(engine, "hazards", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 1 and HAZARD_KEYS <= set(rows[0])
    h = rows[0]
    assert (h["id"], h["elder_id"], h["street"], h["kind"], h["status"]) == (
        ids["hazard"], ids["e1"], "甲街道", "gas", "open")
    assert h["elder"] == "老*0"  # masked
    assert h["opened_on"] == "2026-11-20" and h["due_on"] == "2026-11-23" and h["closed_on"] is None
    assert h["owner_unit"] == RULES.owner_units["gas"] and h["overdue"] is True
    assert json.loads(_run(engine, "hazards", "list", "--json", "--status", "整改中").stdout) == []
    assert len(json.loads(_run(engine, "hazards", "list", "--json", "--street", "甲街道", "--status", "open").stdout)) == 1
    assert json.loads(_run(engine, "hazards", "list", "--json", "--street", "乙街道").stdout) == []
    t = _run(engine, "hazards", "list")
    assert t.exit_code == 0 and "待处理" in t.stdout and "老人0" not in t.stdout
    bad = _run(engine, "hazards", "list", "--status", "done")
    assert bad.exit_code == 1 and "未知的隐患状态" in bad.output and "unknown hazard status" in bad.output


def test_hazards_update_moves_on_and_refuses_an_invalid_transition_in_both_languages(seeded) -> None:  # noqa: ANN001
    engine, ids = seeded
    hid = str(ids["hazard"])
    r = _run(engine, "hazards", "update", hid, "--status", "in_progress", "--note", "已上门")
    assert r.exit_code == 0, r.output
    r = _run(engine, "hazards", "update", hid, "--status", "fixed", "--by", "燃气公司王工", "--photo", "p.jpg")
    assert r.exit_code == 0, r.output
    (h,) = json.loads(_run(engine, "hazards", "list", "--json").stdout)
    assert h["status"] == "fixed" and h["closed_on"] is not None and h["overdue"] is False
    with engine.connect() as c:
        ev = c.execute(select(HazardEvent.by_user, HazardEvent.note, HazardEvent.photo_ref)
                       .where(HazardEvent.hazard_id == ids["hazard"]).order_by(HazardEvent.id)).all()
    assert ev[1][0] == getpass.getuser() and ev[1][1] == "已上门"  # --by defaults to the OS user
    assert ev[2] == ("燃气公司王工", None, "p.jpg")
    bad = _run(engine, "hazards", "update", hid, "--status", "in_progress")
    assert bad.exit_code == 1
    assert "不能改为" in bad.output and "cannot be set" in bad.output and "Traceback" not in bad.output
    assert _run(engine, "hazards", "update", "99999", "--status", "fixed").exit_code == 1


def test_hazards_update_cannot_fix_needs_a_reason_and_transfer_takes_a_unit(engine: Engine) -> None:
    (e1, e2) = register(engine)["elders"]
    (h1,) = record_visit(engine, visit(e1, "2026-12-01", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    (h2,) = record_visit(engine, visit(e2, "2026-12-01", gas="不安全"), rules=RULES, now=NOW).hazard_ids
    r = _run(engine, "hazards", "update", str(h1), "--status", "无法整改")
    assert r.exit_code == 1 and "原因" in r.output and "reason" in r.output
    assert _run(engine, "hazards", "update", str(h1), "--status", "cannot_fix", "--reason", "产权不清").exit_code == 0
    assert _run(engine, "hazards", "update", str(h2), "--status", "transferred", "--to", "区房管局").exit_code == 0
    rows = {r["id"]: r for r in json.loads(_run(engine, "hazards", "list", "--json").stdout)}
    assert rows[h1]["reason"] == "产权不清" and rows[h2]["transferred_to"] == "区房管局"


def test_hazards_inspection_from_a_json_file(seeded, tmp_path: Path) -> None:  # noqa: ANN001
    engine, ids = seeded
    f = tmp_path / "inspection.json"
    f.write_text(json.dumps({"date": "2026-12-01", "street": "甲街道", "departments": ["燃气", "消防"],
                             "homes_visited": [ids["e1"]], "hazards_closed": [ids["hazard"]],
                             "hazards_found": [{"elder_id": ids["e1"], "kind": "fire", "note": "电动车室内充电"}]},
                            ensure_ascii=False), encoding="utf-8")
    r = _run(engine, "hazards", "inspection", str(f))
    assert r.exit_code == 0, r.output
    rows = {x["kind"]: x for x in json.loads(_run(engine, "hazards", "list", "--json").stdout)}
    assert rows["gas"]["status"] == "fixed" and rows["fire"]["status"] == "open"
    f.write_text("{not json", encoding="utf-8")
    bad = _run(engine, "hazards", "inspection", str(f))
    assert bad.exit_code == 1 and "无法读取" in bad.output and "cannot read" in bad.output


def test_referrals_list_and_update_with_satisfaction(seeded) -> None:  # noqa: ANN001
    engine, ids = seeded
    rows = json.loads(_run(engine, "referrals", "list", "--json").stdout)
    assert len(rows) == 3 and all(REFERRAL_KEYS <= set(r) for r in rows)
    by = {r["id"]: r for r in rows}
    need = by[ids["need"]]
    assert need["kind"] == "need" and need["status"] == "open" and need["receiver"] == "子女0"
    assert {by[i]["kind"] for i in ids["emergency"]} == {"emergency"}
    rid = str(ids["need"])
    assert _run(engine, "referrals", "update", rid, "--status", "已受理").exit_code == 0
    assert _run(engine, "referrals", "update", rid, "--status", "in_progress").exit_code == 0
    r = _run(engine, "referrals", "update", rid, "--status", "closed", "--outcome", "已代办", "--satisfaction", "基本满意",
             "--by", "社区张")
    assert r.exit_code == 0, r.output
    (c,) = json.loads(_run(engine, "referrals", "list", "--json", "--status", "已办结").stdout)
    assert c["satisfaction"] == "neutral" and c["satisfaction_label"] == "基本满意" and c["resolved"] is True
    assert c["closed_on"] is not None and c["outcome"] == "已代办"
    bad = _run(engine, "referrals", "update", rid, "--status", "acknowledged")
    assert bad.exit_code == 1 and "不能改为" in bad.output and "cannot be set" in bad.output
    bad = _run(engine, "referrals", "update", str(ids["emergency"][0]), "--status", "closed", "--satisfaction", "很好")
    assert bad.exit_code == 1 and "满意" in bad.output
    # --unresolved
    e0 = str(ids["emergency"][0])
    assert _run(engine, "referrals", "update", e0, "--status", "closed", "--unresolved").exit_code == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ReferralEvent)) == 3 + 4
    assert fs.read_referral_frame(engine).set_index("id").loc[int(e0), "resolved"] in (False, 0)


def test_jobs_run_escalates_and_sends(seeded, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    engine, ids = seeded
    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path / "var"))  # the file gateway writes under the var dir
    r = _run(engine, "jobs", "run", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert sorted(out["escalated"]) == sorted(ids["emergency"])  # their 30 minutes are long past
    assert out["sent"] == 2 and out["failed"] == 0  # the hazard's and the emergency's reminders
    assert (tmp_path / "var" / "notifications" / "sent.jsonl").exists()
    again = json.loads(_run(engine, "jobs", "run", "--json").stdout)
    assert again == {"escalated": [], "sent": 0, "failed": 0}
    # the old command still works (an alias of the escalation)
    assert _run(engine, "visits", "escalate").exit_code == 0


def test_visits_record_given_the_same_json_twice_stores_one_visit(engine: Engine, tmp_path: Path) -> None:
    (e1, _e2) = register(engine)["elders"]
    data = dict(elder_id=e1, visited_on="2026-12-01", mode="上门探访", visitor_role="志愿者", visitor_name="志愿者小李",
                started_at="2026-12-01T09:30", ended_at="2026-12-01T10:00", family_change="无变化", expression="无变化",
                mobility="无变化", illness="无变化", mood="无变化", gas_safety="不安全", water_heating_safety="安全",
                electricity_safety="安全", personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")
    f = tmp_path / "v.json"
    f.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert _run(engine, "visits", "record", str(f)).exit_code == 0
    r = _run(engine, "visits", "record", str(f))
    assert r.exit_code == 0 and "duplicate" in r.output
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Visit)) == 1
    assert len(fs.read_hazard_frame(engine)) == 1
    # a form's key in the JSON: a retried request with it is one visit too
    g = tmp_path / "k.json"
    g.write_text(json.dumps({**data, "started_at": None, "ended_at": None, "idempotency_key": "form-1"},
                            ensure_ascii=False), encoding="utf-8")
    assert _run(engine, "visits", "record", str(g)).exit_code == 0
    assert _run(engine, "visits", "record", str(g)).exit_code == 0
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Visit)) == 2
