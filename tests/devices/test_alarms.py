"""``gridmap devices alarms FILE``: alarms from a monitoring platform become the referrals the rules say
(三(五)2, 五.2), on both backends; a second ingestion of the same file adds nothing; an unknown device is
refused naming the row, with nothing stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from gridmap.devices.store import add_device
from gridmap.rules.config import load_rules
from gridmap.store.models import (
    Device,
    DeviceEvent,
    Notification,
    Referral,
    ReferralEvent,
)
from tests.devices.conftest import run
from tests.rules.conftest import build_register

RULES = load_rules()


@pytest.fixture
def homes(engine: Engine) -> dict:
    """Three elders of 甲街道 with devices: an ordinary one, a 特困 one, one without a first contact."""
    ids = build_register(engine, [dict(categories=["living_alone"]),
                                  dict(categories=["empty_nest"], welfare_status="tekun", dispersed_support=True),
                                  dict(categories=["living_alone"], first_contact=False)])
    e0, e1, e2 = ids["elders"]
    dev = {
        "d0": add_device(engine, e0, "one_key", state="installed", user="t", rules=RULES),
        "d1": add_device(engine, e1, "smoke_alarm", state="installed", user="t", rules=RULES),
        "d2": add_device(engine, e2, "smoke_alarm", state="installed", user="t", rules=RULES),
    }
    return {"engine": engine, "e": (e0, e1, e2), **dev}


def _referrals(engine: Engine) -> list[tuple]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(select(Referral.elder_id, Referral.target, Referral.target_name,
                                                   Referral.emergency).order_by(Referral.id))]


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(model)).scalar_one())


def test_an_alarm_file_opens_the_referrals_the_rules_say_once(homes: dict, tmp_path: Path) -> None:
    engine, (e0, e1, e2) = homes["engine"], homes["e"]
    f = tmp_path / "alarms.csv"
    f.write_text("device_id,time,alarm_type\n"
                 f"{homes['d0']},2026-12-07T08:30:00+08:00,sos\n"      # emergency, has a first contact
                 f"{homes['d1']},2026-12-07T09:00:00+08:00,low_battery\n"  # a need of a 特困 elder
                 f"{homes['d2']},2026-12-07T09:10:00+08:00,smoke\n"    # emergency, no first contact
                 f"{homes['d2']},2026-12-07T09:20:00+08:00,offline\n"  # a need; the device is faulty
                 f"{homes['d0']},2026-12-07T10:00:00+08:00,test\n",    # a test alarm: nothing
                 encoding="utf-8")
    res = run(engine, "devices", "alarms", str(f), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [r["row"] for r in out] == [2, 3, 4, 5, 6]
    assert [len(r["referral_ids"]) for r in out] == [2, 1, 1, 1, 0]
    got = _referrals(engine)
    # 五.2: a danger to life goes at once to the first contact and to the community
    assert got[0][:2] == (e0, "first_contact") and got[0][3] in (True, 1)
    assert got[1][:3] == (e0, "community", "甲社区居委会") and got[1][3] in (True, 1)
    # a 特困 elder's need goes to the street of usual residence
    assert got[2][:3] == (e1, "street_of_residence", "甲街道") and got[2][3] in (False, 0)
    # without a first contact: the community only
    assert got[3][:2] == (e2, "community") and got[3][3] in (True, 1)
    assert got[4][:2] == (e2, "community") and got[4][3] in (False, 0)
    assert len(got) == 5
    with engine.connect() as c:
        assert str(c.execute(select(Device.status).where(Device.id == homes["d2"])).scalar_one()) == "faulty"
        assert c.execute(select(Device.alarm_count).where(Device.id == homes["d2"])).scalar_one() == 2
        # the first contact of the emergency is reminded (queued in the outbox)
        assert c.execute(select(func.count()).select_from(Notification).where(Notification.elder_id == e0)).scalar_one() == 1
    assert _count(engine, ReferralEvent) == 5
    # the referrals are the follow-ups' own: listed and escalated like a visit's
    listed = json.loads(run(engine, "referrals", "list", "--json").stdout)
    assert len(listed) == 5 and {r["kind"] for r in listed} == {"emergency", "need"}
    from gridmap.followups.store import escalate_due

    late = datetime.now(UTC) + timedelta(hours=1)
    assert len(escalate_due(engine, late, rules=RULES)) == 3

    # the same file again: nothing new
    alarms_before = _count(engine, DeviceEvent)
    again = json.loads(run(engine, "devices", "alarms", str(f), "--json").stdout)
    assert all(r["duplicate"] for r in again) and not any(r["referral_ids"] for r in again)
    assert len(_referrals(engine)) == 5 and _count(engine, DeviceEvent) == alarms_before

    # the same as JSON: a new alarm opens its referral
    j = tmp_path / "alarms.json"
    j.write_text(json.dumps([{"device_id": homes["d1"], "time": "2026-12-08T07:00:00+08:00", "alarm_type": "fall"}]),
                 encoding="utf-8")
    res = run(engine, "devices", "alarms", str(j), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["emergency"] is True
    assert [r[:2] for r in _referrals(engine)[5:]] == [(e1, "first_contact"), (e1, "community")]


def test_an_unknown_device_is_refused_naming_the_row_and_nothing_is_stored(homes: dict, tmp_path: Path) -> None:
    engine = homes["engine"]
    f = tmp_path / "bad.csv"
    f.write_text(f"device_id,time,alarm_type\n{homes['d0']},2026-12-07T08:30:00+08:00,sos\n"
                 "999999,2026-12-07T09:00:00+08:00,smoke\n", encoding="utf-8")
    res = run(engine, "devices", "alarms", str(f))
    assert res.exit_code == 1
    assert "第3行" in res.output and "row 3" in res.output and "device_id" in res.output
    assert "未找到该设备" in res.output and "no device with this id" in res.output
    assert _referrals(engine) == [] and _count(engine, DeviceEvent) == 3  # only the three installations
    bad_type = tmp_path / "type.csv"
    bad_type.write_text(f"device_id,time,alarm_type\n{homes['d0']},2026-12-07T08:30:00+08:00,burglar\n", encoding="utf-8")
    res = run(engine, "devices", "alarms", str(bad_type))
    assert res.exit_code == 1 and "第2行" in res.output and "alarm_type" in res.output
    no_col = tmp_path / "cols.csv"
    no_col.write_text("device,time\n1,2026-12-07T08:30:00\n", encoding="utf-8")
    res = run(engine, "devices", "alarms", str(no_col))
    assert res.exit_code == 1 and "device_id" in res.output
    assert _referrals(engine) == []


def test_device_states_follow_the_life_cycle(homes: dict) -> None:
    engine, (e0, _, _) = homes["engine"], homes["e"]
    res = run(engine, "devices", "update", str(homes["d0"]), "--state", "故障")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"id": homes["d0"], "from": "installed", "state": "faulty"}
    res = run(engine, "devices", "update", str(homes["d0"]), "--state", "refused")
    assert res.exit_code == 1 and "故障" in res.output and "refused" in res.output
    res = run(engine, "devices", "add", str(e0), "--kind", "fire_kit", "--state", "refused")
    assert res.exit_code == 0, res.output
    wl = {r["elder_id"]: r for r in json.loads(run(engine, "devices", "worklist", "--kind", "fire_kit", "--json").stdout)}
    assert wl[e0]["state"] == "refused" and wl[e0]["reason"]
    res = run(engine, "devices", "add", str(e0), "--kind", "fire_kit")
    assert res.exit_code == 1 and "已有此类设备" in res.output


def test_the_worklist_xlsx_keeps_formula_text_inert(homes: dict, tmp_path: Path) -> None:
    from sqlalchemy import update

    from gridmap.store.models import Community
    from tests.privacy.test_no_unmasked_personal_data import unsafe_cells

    engine = homes["engine"]
    with engine.begin() as c:
        c.execute(update(Community.__table__).values(name='=HYPERLINK("http://x.example","点击")'))
    out = tmp_path / "smoke.xlsx"
    res = run(engine, "devices", "worklist", "--kind", "smoke_alarm", "--out", str(out))
    assert res.exit_code == 0, res.output
    import openpyxl

    ws = openpyxl.load_workbook(out)["设备清单"]
    head = [c.value for c in ws[1]]
    assert head == ["老人编号", "设备类型", "配备依据", "状态", "安装单位", "设备编号", "街道", "社区"]
    cells = [r[7] for r in ws.iter_rows(min_row=2)]
    assert len(cells) == 3 and all(c.data_type == "s" and c.value.startswith("'=HYPERLINK") for c in cells)
    assert not unsafe_cells(out)
    bad = run(engine, "devices", "worklist", "--kind", "smoke_alarm", "--out", str(tmp_path / "x.csv"))
    assert bad.exit_code == 1 and ".xlsx" in bad.output
