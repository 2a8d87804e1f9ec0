"""Follow-ups end to end in headless Chromium (issue 16): a steward records a visit that finds a gas hazard
(保存探访记录 pressed three times: one visit, one hazard), the street supervisor sees it in the 隐患与转介 list,
marks it 整改中 then 已整改 (an invalid move is refused in Chinese and English), and the elder's extra in-home
visit is gone from next week's requirement; an emergency referral escalates inside ``gridmap serve`` with no
command run (rules with a short window). Screenshots go to /work/notes/shots16/ (GRIDMAP_SHOTS16 overrides)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.dashboard.conftest import LiveApp, browser_login, serve
from tests.dashboard.test_dashboard_browser import _by_id, _choose, _tab, _wait

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("GRIDMAP_SHOTS16", "/work/notes/shots16"))


def _shot(browser: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def fu_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Engine, str, dict[str, str]]:
    """A SQLite store of its own (writes here do not disturb the other dashboard tests): layers, 300 elders."""
    from gridmap.access import create_demo_users
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    path = tmp_path_factory.mktemp("fu") / "fu.sqlite"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    layers = build_layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=300, seed=16)
    return engine, url, create_demo_users(engine)


@pytest.fixture(scope="module")
def fu_app(fu_store: tuple[Engine, str, dict[str, str]]) -> Iterator[LiveApp]:
    from gridmap.dashboard.app import create_app

    app = create_app(fu_store[0], warm=False, secret_key="followups-test-secret-0123456789abcdef")
    live = serve(app)
    yield live
    live.server.shutdown()  # type: ignore[attr-defined]


def _login(browser: Any, base: str, users: dict[str, str], username: str) -> None:
    browser_login(browser, base, username, users[username])
    _wait(lambda: browser.current_url.rstrip("/") == base.rstrip("/"), what="landing on / after sign-in")
    _wait(lambda: _by_id(browser, "user-label").text, what="header")


def _requirement(engine: Engine, elder_id: int, today: Any) -> tuple[int, set[str]]:
    """In-home visits due next week for the elder and the reasons (as ``gridmap visits due``)."""
    from gridmap.rules.config import load_rules
    from gridmap.rules.requirements import parse_week, week_of, weekly_requirements
    from gridmap.rules.store import read_events, read_facts

    rules = load_rules()
    week = week_of(today + timedelta(days=7))
    monday, sunday = parse_week(week)
    req = weekly_requirements(read_facts(engine, monday, rules=rules), week, rules, read_events(engine, monday, sunday))
    mine = req[req["elder_id"] == elder_id]
    in_home = int(mine.loc[mine["mode"] == "in_home", "count"].sum())
    reasons = {r for rs in mine["reasons"] for r in rs}
    return in_home, reasons


def _list_text(browser: Any) -> str:
    return _by_id(browser, "fu-list").text


def test_gas_hazard_from_visit_to_fixed_and_the_extra_visit_goes(
        browser: Any, fu_app: LiveApp, fu_store: tuple[Engine, str, dict[str, str]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from gridmap.domain.enums import Change, FamilyChange, IllnessChange, Safety
    from gridmap.store.models import AppUser, Elder, Hazard, Visit

    engine, _url, users = fu_store
    today = fu_app.data.today
    with engine.connect() as conn:
        sid = conn.scalar(select(AppUser.steward_id).where(AppUser.username == "demo_community"))
        assert sid is not None
        elder_id = conn.scalar(select(Elder.id).where(Elder.visit_steward_id == sid,
                                                      Elder.willing_to_be_visited.is_(True)).order_by(Elder.id))
        visits_before = conn.scalar(select(func.count()).select_from(Visit).where(Visit.elder_id == elder_id))
        hazards_before = conn.scalar(select(func.count()).select_from(Hazard).where(Hazard.elder_id == elder_id))

    # the steward records a visit that finds a gas hazard; 保存探访记录 pressed three times
    _login(browser, fu_app.url, users, "demo_community")
    _tab(browser, "管家工作台")
    _wait(lambda: _by_id(browser, "stw-route").text, what="route list")
    _choose(browser, _by_id(browser, "stw-elder"), str(elder_id))
    labels = {"family_change": FamilyChange.UNCHANGED.label, "illness": IllnessChange.UNCHANGED.label,
              "family_support": "经常探望或来电",
              "gas_safety": Safety.UNSAFE.label}
    for box in browser.find_elements(By.CSS_SELECTOR, "button[id*='stw-ans']"):
        field = next(f for f in ("family_change", "expression", "mobility", "illness", "mood", "gas_safety",
                                 "water_heating_safety", "electricity_safety", "personal_hygiene", "home_hygiene",
                                 "indoor_environment", "family_support", "reaction", "housing_safety",
                                 "drinking_water_safety") if f in box.get_attribute("id"))  # issue 17: 4 more items
        _choose(browser, box, labels.get(field, Safety.SAFE.label if "safety" in field else Change.UNCHANGED.label))
    _by_id(browser, "stw-visitor").send_keys("测试管家")
    save = _by_id(browser, "stw-save")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", save)
    for _ in range(3):
        save.click()
        time.sleep(0.15)
    _wait(lambda: "已保存探访记录" in _by_id(browser, "stw-save-msg").text
          or "已保存过" in _by_id(browser, "stw-save-msg").text, what="saved message")
    time.sleep(3)  # the other two saves arrive
    _shot(browser, "01_steward_saved_three_times")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Visit).where(Visit.elder_id == elder_id)) \
            == visits_before + 1
        new = conn.execute(select(Hazard.id, Hazard.kind, Hazard.status).where(Hazard.elder_id == elder_id)
                           .order_by(Hazard.id.desc())).all()
    assert len(new) == hazards_before + 1, "one visit, one set of follow-ups"
    hazard_id = new[0].id
    assert str(new[0].kind.value if hasattr(new[0].kind, "value") else new[0].kind) == "gas"
    in_home_open, reasons_open = _requirement(engine, elder_id, today)
    assert "open_hazard" in reasons_open

    # the street supervisor sees it, overdue first, in the list of their street
    _login(browser, fu_app.url, users, "demo_street")
    _tab(browser, "隐患与转介")
    _wait(lambda: f"\n{hazard_id} " in "\n" + _list_text(browser), what="the new hazard in the list")
    row = _by_id(browser, f"fu-row-h-{hazard_id}").text
    assert ("用气" in row or "燃气" in row) and "待处理" in row
    _wait(lambda: "响应率" in _by_id(browser, "fu-measures").text, what="measures")
    _shot(browser, "02_supervisor_hazard_list")

    def move(target: str, note: str) -> str:
        box = _by_id(browser, "fu-id")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE, str(hazard_id))
        _choose(browser, _by_id(browser, "fu-target"), target)
        note_box = _by_id(browser, "fu-note")
        note_box.send_keys(Keys.CONTROL, "a")
        note_box.send_keys(Keys.DELETE, note)
        before = _by_id(browser, "fu-msg").text
        _by_id(browser, "fu-apply").click()
        return _wait(lambda: (t := _by_id(browser, "fu-msg").text) != before and t, what=f"answer to {target}")

    assert "整改中" in move("整改中", "已联系燃气公司上门")
    _wait(lambda: "整改中" in _by_id(browser, f"fu-row-h-{hazard_id}").text, what="list shows 整改中")

    # the supervisor page shows the measures; the steward's route list shows the elder's open follow-up
    _tab(browser, "街镇督导")
    _wait(lambda: "整改率" in _by_id(browser, "sup-fu-measures").text, what="measures on the supervisor page")
    time.sleep(2)
    _shot(browser, "03a_supervisor_page_measures_and_hotspots")
    _login(browser, fu_app.url, users, "demo_community")
    _tab(browser, "管家工作台")
    route = _wait(lambda: (t := _by_id(browser, "stw-route").text) and ("站" in t or "完成" in t) and t,
                  what="route list")
    if f"（{elder_id}）" in route:  # the elder is on today's route
        _wait(lambda: "上次发现燃气隐患，整改中" in _by_id(browser, "stw-route").text, what="open follow-up on the route")
    _shot(browser, "03b_steward_route_followups")
    _login(browser, fu_app.url, users, "demo_street")
    _tab(browser, "隐患与转介")
    _wait(lambda: f"fu-row-h-{hazard_id}" in browser.page_source, what="the hazard in the list again")
    assert "已整改" in move("已整改", "燃气公司已更换胶管")
    # the list (待处理/整改中) no longer holds it and the measures count it fixed
    _wait(lambda: f"fu-row-h-{hazard_id}" not in browser.page_source, what="the fixed hazard leaves the list")
    _wait(lambda: "100%" in _by_id(browser, "fu-measures").text, what="整改率 100%")
    _shot(browser, "03c_supervisor_fixed")
    refused = move("整改中", "再次整改")
    assert "未保存" in refused and any("a" <= ch <= "z" for ch in refused), refused  # Chinese / English
    _shot(browser, "04_invalid_transition_refused")
    with engine.connect() as conn:
        st = conn.scalar(select(Hazard.status).where(Hazard.id == hazard_id))
    assert str(getattr(st, "value", st)) == "fixed"

    # the extra in-home visit the hazard caused is gone from next week's requirement
    in_home_fixed, reasons_fixed = _requirement(engine, elder_id, today)
    assert "open_hazard" not in reasons_fixed and "unsafe_last_visit" not in reasons_fixed
    assert in_home_fixed < in_home_open


def test_emergency_referral_escalates_inside_the_server(
        browser: Any, fu_store: tuple[Engine, str, dict[str, str]], tmp_path: Path) -> None:
    """``gridmap serve`` with rules whose escalation window is short: an unacknowledged emergency escalates by
    itself (no ``gridmap jobs run``) and the supervisor's list shows it as escalated."""
    import socket

    import requests

    from gridmap.rules.config import load_rules
    from gridmap.rules.store import record_visit
    from gridmap.rules.visits import parse_visit
    from gridmap.store.models import AppUser, Elder, Referral

    engine, url, users = fu_store
    base_rules = (ROOT / "gridmap" / "rules" / "default_rules.yaml").read_text(encoding="utf-8")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(_override(base_rules), encoding="utf-8")
    rules = load_rules(rules_file)
    assert rules.emergency_ack_minutes == 1 and rules.jobs_every_seconds == 2
    with engine.connect() as conn:
        sid = conn.scalar(select(AppUser.steward_id).where(AppUser.username == "demo_community"))
        elder_id = conn.scalar(select(Elder.id).where(Elder.visit_steward_id == sid).order_by(Elder.id.desc()))
    now = datetime.now(UTC)
    rec = parse_visit({"elder_id": elder_id, "visited_on": (now + timedelta(hours=8)).date().isoformat(),
                       "mode": "电话问候", "visitor_role": "志愿者", "visitor_name": "志愿者小王",
                       "emergency": True, "needs": "老人摔倒，无法起身"}, rules)
    res = record_visit(engine, rec, rules=rules, user="test", now=now - timedelta(minutes=3))
    assert res.referral_ids
    rid = max(res.referral_ids)
    with engine.connect() as conn:
        assert conn.scalar(select(Referral.escalated_at).where(Referral.id == rid)) is None

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    env = {**os.environ, "GRIDMAP_RULES": str(rules_file), "GRIDMAP_SECRET_KEY": "followups-serve-0123456789abcdef"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gridmap", "serve", "--dev", "--database-url", url,
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}/"
            end = time.monotonic() + 240
            while time.monotonic() < end:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    if requests.get(base + "healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            # nobody runs a command: the server's scheduler escalates within a few of its 2-second periods
            deadline = time.monotonic() + 60
            esc = None
            while time.monotonic() < deadline and esc is None:
                with engine.connect() as conn:
                    esc = conn.scalar(select(Referral.escalated_at).where(Referral.id == rid))
                time.sleep(1)
            assert esc is not None, "not escalated by the server:\n" + log.read_text()[-3000:]
            _login(browser, base, users, "demo_street")
            _tab(browser, "隐患与转介")
            browser.find_elements("css selector", "#fu-type input")[1].click()
            _wait(lambda: f"fu-row-r-{rid}" in browser.page_source, what="the referral in the list")
            assert "已升级" in _by_id(browser, f"fu-row-r-{rid}").text
            _shot(browser, "05_emergency_escalated_by_the_server")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _override(text: str) -> str:
    """The default rules with a 1-minute emergency window and 2-second jobs."""
    import yaml

    doc = yaml.safe_load(text)
    doc["referrals"]["emergency_ack_minutes"] = 1
    doc["jobs"]["every_seconds"] = 2
    return yaml.safe_dump(doc, allow_unicode=True)
