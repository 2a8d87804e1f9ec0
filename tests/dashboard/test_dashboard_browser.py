"""The dashboard in headless Chromium, signed in through /login: map layers, filters, a steward's visit changing
the supervisor's numbers, rebalancing, a street supervisor's view of their own street only.

Run with ``GRIDMAP_SCREENSHOTS=1`` to save a PNG of each view under
``bench/results/screenshots/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


def _scroll_to(browser: Any, element_id: str) -> None:
    browser.execute_script(f"document.getElementById('{element_id}').scrollIntoView({{block: 'center'}});")


def _wait(fn: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as exc:  # noqa: BLE001 - DOM still changing
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def _by_id(browser: Any, id_: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, id_)


def _choose(browser: Any, element: Any, text: str) -> None:
    """Pick an option of a Dash dropdown by typing into its search box."""
    from selenium.webdriver.common.keys import Keys

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    from selenium.webdriver.common.by import By

    def search_box() -> Any:
        act = browser.switch_to.active_element
        if act.tag_name == "input" and "dash-dropdown-search" in (act.get_attribute("class") or ""):
            return act
        boxes = [b for b in browser.find_elements(By.CSS_SELECTOR, "input.dash-dropdown-search") if b.is_displayed()]
        return boxes[-1] if boxes else None

    box = _wait(search_box, 10, "dropdown search box")
    box.send_keys(text)
    time.sleep(0.3)
    box.send_keys(Keys.ENTER)
    time.sleep(0.2)


def _sign_in(browser: Any, live_app: Any, users: dict[str, str], username: str) -> None:
    from tests.dashboard.conftest import browser_login

    browser_login(browser, live_app.url, username, users[username])
    _wait(lambda: browser.current_url.rstrip("/") == live_app.url.rstrip("/"), what="landing on / after sign-in")


def _open(browser: Any, live_app: Any, users: dict[str, str] | None = None, username: str = "demo_district",
          streets: int = 29) -> None:
    from selenium.webdriver.common.by import By

    browser.get(live_app.url)
    time.sleep(0.3)
    if "/login" in browser.current_url or not browser.find_elements(By.ID, "user-label") \
            or username not in (browser.get_cookie("gm_test_user") or {}).get("value", ""):
        assert users is not None, "sign in first"
        _sign_in(browser, live_app, users, username)
        browser.add_cookie({"name": "gm_test_user", "value": username})
    _wait(lambda: "%" in _by_id(browser, "kpi-weekly-rate").text, what="KPI cards")
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#sup-map path.leaflet-interactive")) >= streets,
          what=f"choropleth of {streets} streets")


def _tab(browser: Any, label: str) -> None:
    from selenium.webdriver.common.by import By

    tab = next(t for t in browser.find_elements(By.CSS_SELECTOR, ".tab") if t.text.strip() == label)
    tab.click()
    time.sleep(0.5)


def test_map_renders_with_layers(browser: Any, live_app: Any, demo_users: dict[str, str],
                                 screenshot: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, live_app, demo_users)
    assert "区民政局" in _by_id(browser, "user-label").text and _by_id(browser, "logout-button")
    control = browser.find_element(By.CSS_SELECTOR, "#sup-map .leaflet-control-layers").text
    for name in ("周探访率", "海淀区界", "隐患热点", "老人", "无路网数据区域", "路网", "居家安全设备", "放大至15级显示单个"):
        assert name in control
    # the offline background's roads: one line per road class (motorway … tertiary), the streets' areas coloured
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, '#sup-map path[stroke="#c9b79c"]')) >= 3,
          what="roads drawn")
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#sup-map path.leaflet-interactive")) >= 29,
          what="street areas drawn")
    legend = _by_id(browser, "map-legend").text
    assert "周探访率" in legend and "逾期未探访" in legend
    assert "OpenStreetMap" in browser.find_element(By.CSS_SELECTOR, "#sup-map .leaflet-control-attribution").text
    assert "全区范围只显示分区统计" in _by_id(browser, "sup-map-hint").text  # no per-elder data district-wide
    cols = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sup-trend .gm-trend-col"), what="trend chart")
    assert len(cols) == 12  # one column per week of the week filter
    assert any("%" in c.text for c in cols) and "目标100%" in _by_id(browser, "sup-trend").text
    assert "周探访率趋势" in browser.page_source
    time.sleep(1.0)
    screenshot("supervisor")


def test_filter_changes_kpis_and_shows_elders(browser: Any, live_app: Any, demo_users: dict[str, str],
                                              screenshot: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, live_app, demo_users)
    before = _by_id(browser, "kpi-overdue").text
    assert "在册 2,000 人" in before
    elders = live_app.data.inputs()[0]
    street = elders["street"].value_counts().index[0]
    n = int((elders["street"] == street).sum())
    _choose(browser, _by_id(browser, "sup-street"), street)
    _wait(lambda: f"在册 {n:,} 人" in _by_id(browser, "kpi-overdue").text, what="KPIs of the street")
    # the map's hint names the street once the street's layers have arrived (the district's choropleth
    # paths are on the map before that, so they cannot be what is waited for)
    _wait(lambda: street in _by_id(browser, "sup-map-hint").text, what="map of the street")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sup-map .marker-cluster, #sup-map path.leaflet-interactive"),
          what="elders on the map")
    # the overdue table lists only this street, names masked
    _scroll_to(browser, "sup-table-box")  # the grid is built once it is scrolled into view
    rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sup-table .ag-row"), what="overdue rows")
    assert rows and all(street in r.text for r in rows[:5])
    assert "*" in rows[0].text
    # the devices layer (off by default) shows the street's installed devices
    label = next(x for x in browser.find_elements(By.CSS_SELECTOR, "#sup-map .leaflet-control-layers label")
                 if "居家安全设备" in x.text)
    label.find_element(By.TAG_NAME, "input").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sup-map .gm-device, #sup-map .gm-device-cluster"),
          what="devices on the map")
    time.sleep(1.0)
    screenshot("supervisor_street")
    _by_id(browser, "sup-street").find_element(By.CSS_SELECTOR, ".dash-dropdown-clear").click() \
        if browser.find_elements(By.CSS_SELECTOR, "#sup-street .dash-dropdown-clear") else None


def test_steward_records_visit_and_supervisor_numbers_change(browser: Any, live_app: Any, demo_users: dict[str, str],
                                                              screenshot: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By

    from gridmap.dashboard.data import Filters, current_user
    from gridmap.domain.enums import Change, FamilyChange, IllnessChange, Safety

    data = live_app.data
    week = data.default_week()
    st = data.status(current_user(), Filters(week=week))
    cand = st[(st["state"] != "visited") & st["willing"].astype(bool) & st["steward_id"].notna()]
    assert not cand.empty, "the demo register has elders not yet visited this week"
    from gridmap.dashboard.steward import day_route

    elder = cand.iloc[0]
    for _, row in cand.head(15).iterrows():  # prefer a steward whose day still has stops (for the screenshot)
        stops, _base = day_route(data, int(row["steward_id"]), data.today)
        if len(stops):
            elder = row
            break
    stewards = data.stewards(current_user())
    code = stewards.loc[stewards["id"] == int(elder["steward_id"]), "code"].iloc[0]
    rate_before = data.kpis(current_user(), Filters(week=week))["weekly_rate"]

    _open(browser, live_app, demo_users)
    kpi_before = _by_id(browser, "kpi-weekly-rate").text
    _tab(browser, "管家工作台")
    _choose(browser, _by_id(browser, "stw-steward"), code)
    _wait(lambda: "站" in _by_id(browser, "stw-route").text or "全部完成" in _by_id(browser, "stw-route").text,
          what="route list")
    assert "简单最近邻" in browser.page_source  # the list is labelled honestly
    time.sleep(1.5)
    screenshot("steward")

    _choose(browser, _by_id(browser, "stw-elder"), str(int(elder["elder_id"])))
    # an in-home visit without the answers of section 五 is refused with a message
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", _by_id(browser, "stw-save"))
    _by_id(browser, "stw-save").click()
    msg = _wait(lambda: _by_id(browser, "stw-save-msg").text, what="validation message")
    assert "未保存" in msg and "第五部分" in msg
    labels = {"family_change": FamilyChange.UNCHANGED.label, "illness": IllnessChange.UNCHANGED.label,
              "family_support": "经常探望或来电"}
    for box in browser.find_elements(By.CSS_SELECTOR, "button[id*='stw-ans']"):
        field = next(f for f in ("family_change", "expression", "mobility", "illness", "mood", "gas_safety",
                                 "water_heating_safety", "electricity_safety", "personal_hygiene", "home_hygiene",
                                 "indoor_environment", "family_support", "reaction", "housing_safety",
                                 "drinking_water_safety") if f in box.get_attribute("id"))  # issue 17: 4 more items
        text = labels.get(field, Safety.SAFE.label if "safety" in field else Change.UNCHANGED.label)
        _choose(browser, box, text)
    # issue 17: an effective visit answers 老年人服务需求 too (here: 无)
    need_none = browser.find_element(By.CSS_SELECTOR, "#stw-need-kinds input[value='无']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", need_none)
    need_none.click()
    _by_id(browser, "stw-visitor").send_keys("测试管家")
    _by_id(browser, "stw-save").click()
    _wait(lambda: "已保存探访记录" in _by_id(browser, "stw-save-msg").text, what="saved message")

    rate_after = data.kpis(current_user(), Filters(week=week))["weekly_rate"]
    assert rate_after > rate_before
    _tab(browser, "街镇督导")
    _wait(lambda: _by_id(browser, "kpi-weekly-rate").text != kpi_before, what="supervisor KPI updated")


def test_planner_rebalancing_runs(browser: Any, live_app: Any, demo_users: dict[str, str],
                                  screenshot: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By

    from gridmap.dashboard.planner import workload

    data = live_app.data
    week = data.default_week()
    best, most = None, -1.0
    for street in data.streets(__import__("gridmap.dashboard.data", fromlist=["current_user"]).current_user())[:12]:
        st, _el = workload(data, street, week)
        over = float((st["load"] - st["capacity"]).clip(lower=0).sum()) if len(st) else 0.0
        if over > most:
            best, most = street, over
    _open(browser, live_app, demo_users)
    _tab(browser, "规划调度")
    _choose(browser, _by_id(browser, "pln-street"), best)
    _wait(lambda: best in _by_id(browser, "pln-msg").text, what="workload of the street")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#pln-bars .bars path"), what="workload bars")
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#pln-map path.leaflet-interactive")) >= 2,
          what="the street's grids on the planner map")
    _by_id(browser, "pln-run").click()
    msg = _wait(lambda: "负载均衡方案" in _by_id(browser, "pln-msg").text and _by_id(browser, "pln-msg").text,
                what="rebalancing result")
    assert "最高周负载" in msg
    _wait(lambda: "调整后" in _by_id(browser, "pln-bars").text, what="before/after bars")
    time.sleep(1.0)
    screenshot("planner")


def test_database_unreachable_is_a_message() -> None:
    import json

    from gridmap.dashboard.app import create_app
    from gridmap.store.db import make_engine

    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = create_app(engine, warm=False).server.test_client()
    assert client.get("/_dash-layout").status_code == 401  # sign-in first, even when the database is down
    from tests.dashboard.conftest import http_login

    r = http_login(client, "demo_district", "whatever-password")
    assert r.status_code == 503 and "数据库暂时无法连接" in r.text and "Traceback" not in r.text
    assert client.get("/healthz").status_code == 503
    # the views themselves (without sign-in) say so too
    client = create_app(engine, warm=False, auth=False).server.test_client()
    body = json.dumps(client.get("/_dash-layout").get_json(), ensure_ascii=False)
    assert "数据库暂时无法连接" in body and "Traceback" not in body


def test_street_supervisor_sees_only_their_street(browser: Any, live_app: Any, demo_users: dict[str, str],
                                                 screenshot: Callable[[str], Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from gridmap.access import load_user

    data = live_app.data
    user = load_user(data.engine, "demo_street")
    street = user.street
    elders = data.inputs()[0]
    n = int((elders["street"] == street).sum())
    _open(browser, live_app, demo_users, "demo_street", streets=1)
    assert "街镇督导" in _by_id(browser, "user-label").text
    _wait(lambda: f"在册 {n:,} 人" in _by_id(browser, "kpi-overdue").text, what="KPIs of the own street")
    # only the own street on the choropleth, only it in the street filter
    time.sleep(1.0)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sup-choropleth path.leaflet-interactive, "
                                     "#sup-map .leaflet-overlay-pane path.leaflet-interactive")) >= 1
    _by_id(browser, "sup-street").click()
    time.sleep(0.5)
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option, [role='option']")
               if o.text.strip()]
    other_streets = set(data.layer("streets")["name"]) - {street}
    assert street in options and not (set(options) & other_streets), options
    # the dropdown's own texts are Chinese too (search box, no match)
    search = next(b for b in browser.find_elements(By.CSS_SELECTOR, "input.dash-dropdown-search") if b.is_displayed())
    search.send_keys("不存在的街道")
    _wait(lambda: "无匹配结果" in browser.find_element(By.TAG_NAME, "body").text, what="Chinese 'no match' text")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert not any(w in body for w in ("No options", "Search", "Select...", "Select Date")), body[:300]
    search.send_keys(Keys.ESCAPE)
    browser.find_element(By.CSS_SELECTOR, "header h1").click()  # (the body's centre is on the map's layer list)
    _scroll_to(browser, "sup-table-box")  # the grid is built once it is scrolled into view
    rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sup-table .ag-row"), what="overdue rows")
    assert rows and all(street in r.text for r in rows[:10])
    # the map opened on the own street, not the whole district (scale bar of a street, not 5 km)
    scale = browser.find_element(By.CSS_SELECTOR, "#sup-map .leaflet-control-scale").text
    assert "km" not in scale or int(scale.split()[0]) <= 2, scale
    time.sleep(1.0)
    screenshot("supervisor_street_role")
    browser.find_element(By.ID, "logout-button").click()
    _wait(lambda: "/login" in browser.current_url, what="signed out")
    screenshot("login")


def test_steward_route_comes_from_the_stored_weekly_plan(browser: Any, live_app: Any, demo_users: dict[str, str],
                                                         screenshot: Callable[[str], Any],
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """A week planned with ``plan_week`` (one steward): the steward view lists its stops in the plan's order, with
    time windows, and draws them along the roads with numbered markers."""
    import json
    from datetime import date, timedelta

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from gridmap.dashboard.data import current_user
    from gridmap.routing.district import plan_week
    from gridmap.routing.weekly import weekly_problems

    data = live_app.data
    elders = data.inputs()[0]
    street = elders["street"].value_counts().index[0]
    week = data.default_week()
    wp = weekly_problems(data.engine, week, street=street)
    stewards = data.stewards(current_user())
    visit_codes = set(stewards.loc[stewards["kind"] == "visit", "code"])
    monday = data.today - timedelta(days=data.today.weekday())
    past = {(monday + timedelta(days=i)).isoformat() for i in range(7) if monday + timedelta(days=i) <= data.today}
    prob = next((p for p in sorted(wp.problems, key=lambda p: -len(p.problem["visits"]))
                 if p.code in visit_codes and set(p.problem["days"]) & past), None)
    if prob is None:
        pytest.skip("no steward of the largest street works on a day of this week up to today")
    root = tmp_path_factory.mktemp("plans")
    run = plan_week(data.engine, week, problems=[prob], out_dir=root / week, time_limit=1, workers=1, geometry=True)
    assert run.to_dict()["stewards"][0].get("error") in (None, "")
    plan = json.loads((root / week / prob.code / "plan.json").read_text(encoding="utf-8"))
    routes = [r for r in plan["routes"] if r["day"] in past and r["stops"]]
    if not routes:
        pytest.skip("the plan has no route on a day up to today")
    route = max(routes, key=lambda r: len(r["stops"]))
    data.plans_root = root
    try:
        _open(browser, live_app, demo_users)
        _tab(browser, "管家工作台")
        _choose(browser, _by_id(browser, "stw-steward"), prob.code)
        day = date.fromisoformat(route["day"])
        box = _by_id(browser, "stw-day")
        box = box if box.tag_name == "input" else box.find_element(By.TAG_NAME, "input")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(f"{day.year}年{day.month}月{day.day}日", Keys.ENTER)
        _wait(lambda: "已保存的周计划" in _by_id(browser, "stw-route").text, what="route from the stored plan")
        rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stw-route-table tbody tr"), what="stops")
        assert len(rows) == len(route["stops"])
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == [str(i + 1) for i in range(len(rows))]
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stw-map path.leaflet-interactive"), what="route line")
        markers = browser.find_elements(By.CSS_SELECTOR, "#stw-map .leaflet-marker-icon")
        assert len(markers) == len(rows)  # one numbered marker per stop
        cal = browser.find_element(By.CSS_SELECTOR, ".dash-datepicker-calendar").text  # still open: Chinese weekdays
        assert "一" in cal and "日" in cal and not any(w in cal for w in ("Mo", "Tu", "Su")), cal
        browser.find_element(By.TAG_NAME, "h3").click()  # close the calendar
        assert not any(w in _by_id(browser, "steward-view").text for w in ("AM", "PM"))
        time.sleep(1.5)
        screenshot("steward_plan")
    finally:
        data.plans_root = None
