"""``gridmap tasks list | update | serve`` and ``gridmap visits record`` with a needs list, through the command
line on both backends: the JSON keys of the contract, filters, refusals in Chinese and English."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.rules.store import record_visit
from gridmap.tasks import store as ts
from tests.tasks.conftest import NOW, RULES, phone, register

runner = CliRunner()
#: the contract of the issue: each object of ``gridmap tasks list --json`` has at least these keys
CONTRACT_KEYS = {"id", "elder_id", "kind", "steward", "status", "due_on"}


def _run(engine: Engine, *args: str):
    return runner.invoke(app, [*args, "--database-url", engine.url.render_as_string(hide_password=False)])


def test_tasks_list_json_keys_and_filters(engine: Engine) -> None:
    ids = register(engine)
    e0, e1, e_none = ids["elders"]
    record_visit(engine, phone(e0, "2026-12-01", needs=["助餐"]), rules=RULES, now=NOW)
    record_visit(engine, phone(e1, "2026-12-01", needs=["助医"]), rules=RULES, now=NOW)
    record_visit(engine, phone(e_none, "2026-12-01", needs=["助浴"]), rules=RULES, now=NOW)
    r = _run(engine, "tasks", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 3 and all(CONTRACT_KEYS <= set(x) for x in rows)
    by_kind = {x["kind"]: x for x in rows}
    assert by_kind["meal"]["elder_id"] == e0 and by_kind["meal"]["steward"] == "S-1"
    assert by_kind["meal"]["status"] == "open" and by_kind["meal"]["due_on"] == "2026-12-04"
    assert by_kind["meal"]["kind_label"] == "助餐" and by_kind["meal"]["elder"] == "老*0"  # masked
    assert by_kind["bathing"]["steward"] is None and by_kind["bathing"]["receiver"] == "村（居）委会"
    mine = json.loads(_run(engine, "tasks", "list", "--steward", "S-1", "--json").stdout)
    assert sorted(x["kind"] for x in mine) == ["meal", "medical"]
    assert json.loads(_run(engine, "tasks", "list", "--steward", "S-2", "--json").stdout) == []
    assert len(json.loads(_run(engine, "tasks", "list", "--street", "甲街道", "--json").stdout)) == 3
    assert json.loads(_run(engine, "tasks", "list", "--street", "乙街道", "--json").stdout) == []
    assert json.loads(_run(engine, "tasks", "list", "--status", "已完成", "--json").stdout) == []
    table = _run(engine, "tasks", "list")
    assert table.exit_code == 0 and "服务任务" in table.stdout and "助餐" in table.stdout


def test_tasks_update_and_serve_move_the_task_on(engine: Engine) -> None:
    ids = register(engine)
    res = record_visit(engine, phone(ids["elders"][0], "2026-12-01", needs=["助餐"]), rules=RULES, now=NOW)
    (tid,) = res.task_ids
    r = _run(engine, "tasks", "update", str(tid), "--status", "处理中", "--note", "已联系驿站", "--by", "服务管家1")
    assert r.exit_code == 0, r.output
    assert json.loads(_run(engine, "tasks", "list", "--json").stdout)[0]["status"] == "in_progress"
    r = _run(engine, "tasks", "serve", str(tid), "--description", "送午餐", "--provider", "某驿站",
             "--satisfaction", "满意", "--on", "2026-12-02", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["seq"] == 1 and out["task_status"] == "done" and out["task_id"] == tid
    (row,) = json.loads(_run(engine, "tasks", "list", "--json").stdout)
    assert row["status"] == "done" and row["care_services"] == 1
    assert ts.read_care_services(engine, task_id=tid)[0]["satisfaction"] == "satisfied"


def test_refused_input_exits_1_with_both_languages(engine: Engine) -> None:
    ids = register(engine)
    res = record_visit(engine, phone(ids["elders"][0], "2026-12-01", needs=["助餐"]), rules=RULES, now=NOW)
    (tid,) = res.task_ids
    r = _run(engine, "tasks", "update", str(tid), "--status", "已取消")
    assert r.exit_code == 1 and "原因" in r.output and "reason" in r.output
    r = _run(engine, "tasks", "update", str(tid), "--status", "整改中")
    assert r.exit_code == 1 and "未知的任务状态" in r.output and "unknown task status" in r.output
    r = _run(engine, "tasks", "list", "--steward", "NOBODY")
    assert r.exit_code == 1 and "未找到" in r.output


def test_visits_record_takes_a_needs_list_and_refuses_an_unknown_label(engine: Engine, tmp_path: Path) -> None:
    ids = register(engine)
    f = tmp_path / "visit.json"
    f.write_text(json.dumps({"elder_id": ids["elders"][0], "visited_on": "2026-12-01", "mode": "电话问候",
                             "visitor_role": "探访管家", "illness": "无变化", "mood": "无变化",
                             "needs": ["助餐", "助医"], "needs_note": "午餐送到家"}, ensure_ascii=False),
                 encoding="utf-8")
    r = _run(engine, "visits", "record", str(f))
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())  # the console wraps long lines
    assert "2 service tasks" in out and "非有效探访" not in out
    rows = json.loads(_run(engine, "tasks", "list", "--json").stdout)
    assert sorted(x["kind"] for x in rows) == ["meal", "medical"] and rows[0]["note"] == "午餐送到家"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"elder_id": ids["elders"][0], "visited_on": "2026-12-01", "mode": "phone",
                               "visitor_role": "visit_steward", "needs": ["助餐", "代购"]}, ensure_ascii=False),
                   encoding="utf-8")
    r = _run(engine, "visits", "record", str(bad))
    assert r.exit_code != 0 and "needs[1]" in r.output and "未知的服务需求" in r.output and "unknown need" in r.output


def test_visits_record_says_when_a_visit_is_not_effective(engine: Engine, tmp_path: Path) -> None:
    ids = register(engine)
    f = tmp_path / "empty.json"
    f.write_text(json.dumps({"elder_id": ids["elders"][0], "visited_on": "2026-12-01", "mode": "电话问候",
                             "visitor_role": "探访管家"}, ensure_ascii=False), encoding="utf-8")
    r = _run(engine, "visits", "record", str(f))
    assert r.exit_code == 0, r.output  # stored
    out = " ".join(r.output.split())  # the console wraps long lines
    assert "非有效探访" in out and "疾病状况" in out and "not an effective visit" in out
