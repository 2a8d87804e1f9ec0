"""The planner view in headless Chromium (issue 19): grid rebalancing previewed on the map and in a list, workload
before/after, the effect on the week's plan, accepted through the store and undone; workforce sizing listed.

Screenshots are saved under /work/notes/shots19/ (``GRIDMAP_SHOTS19`` overrides the directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.dashboard.test_dashboard_browser import _by_id, _choose, _open, _scroll_to, _tab, _wait

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("GRIDMAP_SHOTS19", "/work/notes/shots19"))


def _shot(browser: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def _stewards_by_grid(engine: Any, street: str) -> dict[int, set[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT e.grid_id, e.visit_steward_id FROM elder e JOIN street s ON s.id = e.street_id "
            "WHERE s.name = :s AND e.grid_id IS NOT NULL"), {"s": street}).all()
    out: dict[int, set[Any]] = {}
    for g, s in rows:
        out.setdefault(g, set()).add(s)
    return out


def test_planner_previews_grid_moves_accepts_and_undoes(browser: Any, live_app: Any,
                                                        demo_users: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    from gridmap.routing.rebalance import propose_rebalance

    data = live_app.data
    week = data.default_week()
    engine = data.engine
    street, prop = None, None
    for s in data.streets(__import__("gridmap.dashboard.data", fromlist=["SYSTEM_USER"]).SYSTEM_USER)[:10]:
        p = propose_rebalance(engine, s, week, allow_cross_community=True, time_limit=3)
        if p.moves and p.result.ratio_after < p.result.ratio_before:
            street, prop = s, p
            break
    assert street is not None, "a street whose grids can be rebalanced"
    before = _stewards_by_grid(engine, street)
    browser.set_window_size(1400, 1100)
    _open(browser, live_app, demo_users)
    _tab(browser, "规划调度")
    _choose(browser, _by_id(browser, "pln-street"), street)
    _wait(lambda: street in _by_id(browser, "pln-msg").text, what="workload of the street")
    _wait(lambda: "需增加" in _by_id(browser, "pln-capacity").text, what="workforce sizing")
    _by_id(browser, "pln-cross").find_element(By.CSS_SELECTOR, "input").click()
    _by_id(browser, "pln-run").click()
    msg = _wait(lambda: "负载均衡方案" in _by_id(browser, "pln-msg").text and _by_id(browser, "pln-msg").text,
                what="rebalancing proposal")
    assert "整网格调整" in msg and "CP-SAT 下界" in msg and "最高周负载" in msg
    _wait(lambda: "调整后" in _by_id(browser, "pln-bars").text, what="before/after bars")
    rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#pln-moves-table tr")[1:], what="list of moves")
    assert len(rows) == len(prop.moves)
    assert {r.find_elements(By.TAG_NAME, "td")[0].text for r in rows} == {m["grid"] for m in prop.moves}
    effect = _wait(lambda: _by_id(browser, "pln-effect").text, what="effect on the week's plan")
    assert "计划上门" in effect and "路程" in effect
    moved = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#pln-map path[stroke='#d73027']"),
                  what="moved grids on the map")
    assert moved
    assert _stewards_by_grid(engine, street) == before  # a preview writes nothing
    _shot(browser, "planner_proposal_top")
    _scroll_to(browser, "pln-moves")
    _shot(browser, "planner_proposal_list")

    _by_id(browser, "pln-accept").click()
    _wait(lambda: _by_id(browser, "pln-msg").text and "负载均衡方案" not in _by_id(browser, "pln-msg").text,
          what="an answer to 采纳方案")
    assert "已采纳" in _by_id(browser, "pln-msg").text, _by_id(browser, "pln-msg").text
    after = _stewards_by_grid(engine, street)
    assert all(len(s) == 1 for s in after.values())  # all elders of a grid share one visit steward
    assert after != before
    with engine.connect() as conn:
        kind = conn.execute(text("SELECT kind FROM change_log ORDER BY seq DESC LIMIT 1")).scalar()
    assert kind == "plan"
    # the change (a new data version) redraws the map and the charts from the store: the proposal's red grids
    # leave the map, the bars show the workload as it now is, and split grids are drawn as the new grids
    _wait(lambda: not browser.find_elements(By.CSS_SELECTOR, "#pln-map path[stroke='#d73027']"),
          what="the map redrawn after 采纳方案")
    _wait(lambda: "调整后" not in _by_id(browser, "pln-bars").text, what="the bars redrawn after 采纳方案")
    new_grids = {n["grid"] for sp in prop.splits for n in sp["new_grids"]}
    if new_grids:
        assert new_grids <= set(data.layer("grids")["id"]), "the map's grid layer holds the redrawn grids"
    _scroll_to(browser, "pln-msg")
    _shot(browser, "planner_accepted")
    _wait(lambda: _by_id(browser, "pln-undo").is_enabled(), what="undo enabled")
    _by_id(browser, "pln-undo").click()
    _wait(lambda: "已撤销" in _by_id(browser, "pln-msg").text or "错误" in _by_id(browser, "pln-msg").text,
          what="undone")
    assert "已撤销" in _by_id(browser, "pln-msg").text, _by_id(browser, "pln-msg").text
    assert _stewards_by_grid(engine, street) == before
    _scroll_to(browser, "pln-capacity")
    _shot(browser, "planner_capacity")
