"""Service tasks end to end in headless Chromium (issue 17 part A): the visit steward records a phone visit
with no answers (saved, and told at once it is not an effective visit), then a phone visit that records a
助餐 need; the task reaches the elder's 服务管家, who sees it (with the day's visit) on the 服务任务 tab at phone
width, marks it 处理中 and closes it with a rated care service (第 n 次开展关爱); another steward's task is
refused by the server. Screenshots go to /work/notes/shots/ (GRIDMAP_SHOTS17 overrides)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.dashboard.conftest import LiveApp, browser, browser_login, serve  # noqa: F401 - the browser fixture
from tests.dashboard.test_dashboard_browser import _by_id, _choose, _tab, _wait

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("GRIDMAP_SHOTS17", "/work/notes/shots"))
PASSWORD = "Fuwu-Guanjia-2026!x"


def _shot(br: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    br.save_screenshot(str(SHOTS / f"17a_{name}.png"))


@pytest.fixture(scope="module")
def svc_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Engine, dict[str, str]]:
    """A SQLite store of its own: layers, 300 demo elders, the demo users."""
    from gridmap.access import create_demo_users
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('svc') / 'svc.sqlite'}")
    init_db(engine)
    layers = build_layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=300, seed=17)
    return engine, create_demo_users(engine)


@pytest.fixture(scope="module")
def svc_app(svc_store: tuple[Engine, dict[str, str]]) -> Iterator[LiveApp]:
    from gridmap.dashboard.app import create_app

    live = serve(create_app(svc_store[0], warm=False, secret_key="service-test-secret-0123456789abcdef"))
    yield live
    live.server.shutdown()  # type: ignore[attr-defined]


def _login(br: Any, app: LiveApp, username: str, password: str) -> None:
    browser_login(br, app.url, username, password)
    _wait(lambda: br.current_url.rstrip("/") == app.url.rstrip("/"), what="landing on / after sign-in")
    _wait(lambda: _by_id(br, "user-label").text, what="header")


def _answer(br: Any, field: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = next(b for b in br.find_elements(By.CSS_SELECTOR, "button[id*='stw-ans']")
               if f'"{field}"' in (b.get_attribute("id") or ""))
    _choose(br, box, text)


def _save(br: Any) -> str:
    save = _by_id(br, "stw-save")
    br.execute_script("arguments[0].scrollIntoView({block: 'center'});", save)
    before = _by_id(br, "stw-save-msg").text
    save.click()
    return _wait(lambda: (t := _by_id(br, "stw-save-msg").text) != before and "保存" in t and t, what="save message")


def test_a_meal_need_reaches_the_service_steward_who_closes_it_with_a_care_service(
        browser: Any, svc_app: LiveApp, svc_store: tuple[Engine, dict[str, str]]) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from gridmap.access.users import add_user
    from gridmap.store.models import (
        AppUser,
        CareService,
        Elder,
        ServiceTask,
        Steward,
        Visit,
    )
    from gridmap.tasks.lifecycle import TaskSpec
    from gridmap.tasks.store import create_tasks

    engine, users = svc_store
    with engine.connect() as conn:
        sid = conn.scalar(select(AppUser.steward_id).where(AppUser.username == "demo_community"))
        mine = conn.execute(select(Elder.id, Elder.service_steward_id).where(
            Elder.visit_steward_id == sid, Elder.service_steward_id.is_not(None),
            Elder.status == "active").order_by(Elder.id)).all()
        assert len(mine) >= 2, "the demo steward has elders with a 服务管家"
        (elder_id, service_id), (empty_elder, _) = mine[0], mine[1]
        code = conn.scalar(select(Steward.code).where(Steward.id == service_id))
        other_elder, other_service = conn.execute(select(Elder.id, Elder.service_steward_id).where(
            Elder.service_steward_id.is_not(None), Elder.service_steward_id != service_id)).first()
    add_user(engine, "svc17", "service", steward=code, password=PASSWORD)
    today = svc_app.data.today
    # a task of another 服务管家 (for the refusal below)
    ((foreign, _),) = create_tasks(engine, [TaskSpec(other_elder, "bathing", "助浴", other_service, None, today,
                                                     today)], by="test")

    # 1. the visit steward: a phone visit with no answers is saved but is not an effective visit, and says so
    _login(browser, svc_app, "demo_community", users["demo_community"])
    _tab(browser, "管家工作台")
    _wait(lambda: _by_id(browser, "stw-route").text, what="route list")
    _choose(browser, _by_id(browser, "stw-mode"), "电话问候")
    _choose(browser, _by_id(browser, "stw-elder"), str(empty_elder))
    msg = _save(browser)
    assert "已保存探访记录" in msg
    warn = _wait(lambda: _by_id(browser, "stw-not-effective").text, what="not-effective warning")
    assert "不是有效探访" in warn and "疾病状况" in warn and "情绪状态" in warn and "老年人服务需求" in warn
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", _by_id(browser, "stw-not-effective"))
    _shot(browser, "01_visit_not_effective_warning")
    with engine.connect() as conn:
        eff = conn.execute(select(Visit.effective, Visit.ineffective_reason).where(Visit.elder_id == empty_elder)
                           .order_by(Visit.id.desc())).first()
    assert eff[0] is False and "疾病状况" in eff[1]

    # 2. a phone visit that answers health and mood and records a 助餐 need
    _choose(browser, _by_id(browser, "stw-elder"), str(elder_id))
    _answer(browser, "illness", "无变化")
    _answer(browser, "mood", "无变化")
    meal = browser.find_element(By.CSS_SELECTOR, "#stw-need-kinds input[value='助餐']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", meal)
    meal.click()
    _by_id(browser, "stw-needs").send_keys("希望每天午餐送到家")
    msg = _save(browser)
    assert "已保存探访记录" in msg and "已生成服务任务 1 项" in msg, msg
    assert not browser.find_elements(By.ID, "stw-not-effective")
    _shot(browser, "02_visit_with_meal_need_saved")
    with engine.connect() as conn:
        task = conn.execute(select(ServiceTask.id, ServiceTask.steward_id, ServiceTask.status, ServiceTask.kind)
                            .where(ServiceTask.elder_id == elder_id, ServiceTask.kind == "meal")
                            .order_by(ServiceTask.id.desc())).first()
    assert task is not None and task.steward_id == service_id and task.status == "open"

    # 3. the elder's 服务管家, at phone width: the task and the day's visit on the 服务任务 tab
    browser.set_window_size(390, 844)
    try:
        _login(browser, svc_app, "svc17", PASSWORD)
        _wait(lambda: _by_id(browser, f"svc-task-{task.id}").text, what="the new task in the list")
        row = _by_id(browser, f"svc-task-{task.id}").text
        assert "助餐" in row and "待处理" in row and "希望每天午餐送到家" in row
        assert f"svc-task-{foreign}" not in browser.page_source  # another steward's task is not listed
        visits = _wait(lambda: _by_id(browser, "svc-visit-table").text, what="the day's visits")
        assert f"（{elder_id}）" in visits and "助餐" in visits
        _shot(browser, "03_service_steward_tasks_phone")

        def act(task_id: int, button: str) -> str:
            box = _by_id(browser, "svc-id")
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(Keys.DELETE, str(task_id))
            before = _by_id(browser, "svc-msg").text
            b = _by_id(browser, button)
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", b)
            b.click()
            return _wait(lambda: (t := _by_id(browser, "svc-msg").text) != before and t, what=f"answer to {button}")

        # the server refuses another steward's task
        refused = act(foreign, "svc-start")
        assert "未保存" in refused and "不属于您" in refused
        assert "处理中" in act(task.id, "svc-start")
        _wait(lambda: "处理中" in _by_id(browser, f"svc-task-{task.id}").text, what="list shows 处理中")
        _by_id(browser, "svc-desc").send_keys("联系驿站每日送午餐")
        _by_id(browser, "svc-provider").send_keys("社区养老服务驿站")
        _choose(browser, _by_id(browser, "svc-sat"), "基本满意")
        done = act(task.id, "svc-serve")
        assert "开展关爱" in done and "已完成" in done, done
        _wait(lambda: f"svc-task-{task.id}" not in browser.page_source, what="the done task leaves the list")
        _shot(browser, "04_service_steward_task_closed_phone")
    finally:
        browser.set_window_size(1400, 1000)
    with engine.connect() as conn:
        st = conn.scalar(select(ServiceTask.status).where(ServiceTask.id == task.id))
        cs = conn.execute(select(CareService.seq, CareService.kind, CareService.satisfaction, CareService.recorded_by)
                          .where(CareService.task_id == task.id)).one()
        earlier = conn.scalar(select(CareService.id).where(CareService.elder_id == elder_id,
                                                           CareService.task_id.is_(None)).limit(1))
        fst = conn.scalar(select(ServiceTask.status).where(ServiceTask.id == foreign))
    assert st == "done" and fst == "open"
    assert cs.kind == "助餐" and str(getattr(cs.satisfaction, "value", cs.satisfaction)) == "neutral"
    assert cs.recorded_by == "svc17" and cs.seq >= 1 and (earlier is None or cs.seq >= 2)
    assert isinstance(today, date)
