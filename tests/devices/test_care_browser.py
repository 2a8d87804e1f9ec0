"""The 设备与驿站 tab in headless Chromium: a street supervisor sees their street's device coverage per
community, their 驿站' 巡视探访 this week with the double visit flagged, the family-doctor hand-over and the
month's 重点摸排; the district sees one row per street. Screenshots: /work/notes/shots/17b-*.png."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from tests.dashboard.conftest import LiveApp, browser_login, serve
from tests.dashboard.test_dashboard_browser import _by_id, _tab, _wait

pytestmark = pytest.mark.slow
SHOTS = Path(os.environ.get("GRIDMAP_SHOTS", "/work/notes/shots"))
TODAY = date(2026, 12, 10)


@pytest.fixture(scope="module")
def care_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Engine, dict[str, str], dict]:
    import gridmap.synth.demo as demo
    from gridmap.access import create_demo_users
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.store.models import AppUser, Elder, Street, Visit

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('care') / 'care.sqlite'}")
    init_db(engine)
    layers = build_layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "record_history", lambda *a, **k: {})
    demo.load_demo_register(engine, layers, elders=400, seed=17, today=TODAY, near_roads=False)
    mp.undo()
    users = create_demo_users(engine)
    # a signed elder of the street user's street visited by both its station and the visit steward this week
    with engine.connect() as c:
        sid = c.execute(select(AppUser.street_id).where(AppUser.username == "demo_street")).scalar_one()
        eid, street = c.execute(select(Elder.id, Street.name).join(Street, Street.id == Elder.street_id).where(
            Elder.street_id == sid, Elder.signed_care_station.is_(True) | Elder.signed_home_care_bed.is_(True))
            .order_by(Elder.id)).first()
    with engine.begin() as c:
        for role, day in (("service_steward", 8), ("visit_steward", 9)):
            c.execute(insert(Visit.__table__), [{
                "elder_id": eid, "seq": 1, "visited_on": date(2026, 12, day), "mode": "in_home", "effective": True,
                "visitor_role": role, "visitor_name": "x", "entered_by": "t", "late_entry": False, "version": 1,
                "entered_at": datetime(2026, 12, day, 10, tzinfo=UTC)}])
    return engine, users, {"elder": eid, "street": street}


@pytest.fixture(scope="module")
def care_app(care_store: tuple[Engine, dict[str, str], dict]) -> Iterator[LiveApp]:
    from gridmap.dashboard.app import create_app

    app = create_app(care_store[0], warm=False, today=TODAY, secret_key="care-test-secret-0123456789abcdef0123")
    live = serve(app)
    yield live
    live.server.shutdown()  # type: ignore[attr-defined]


def _open_care(browser: Any, base: str, users: dict[str, str], username: str) -> None:
    browser_login(browser, base, username, users[username])
    _wait(lambda: _by_id(browser, "user-label").text, what="header")
    _tab(browser, "设备与驿站")
    _wait(lambda: _by_id(browser, "care-survey").text, timeout=90, what="the care tables")


def _rows(browser: Any, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    t = _by_id(browser, table_id)
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in t.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_street_and_district_see_devices_stations_doctors_and_survey(browser: Any, care_app: LiveApp,
                                                                      care_store: tuple) -> None:
    engine, users, seeded = care_store
    SHOTS.mkdir(parents=True, exist_ok=True)
    _open_care(browser, care_app.url, users, "demo_street")
    dev = _rows(browser, "care-devices")
    assert dev and {r[0] for r in dev} == {seeded["street"]}  # only the user's street, per community
    assert all("%" in cell for r in dev for cell in r[2:] if cell)
    st = _rows(browser, "care-stations")
    assert st and {r[1] for r in st} == {seeded["street"]}
    assert sum(int(r[5]) for r in st) >= 1  # the double visit is flagged
    assert "本周驿站与探访管家都探访了的 1 人" in _by_id(browser, "care-view").text
    assert _rows(browser, "care-doctors") and _rows(browser, "care-survey")
    browser.save_screenshot(str(SHOTS / "17b-care-street.png"))
    _open_care(browser, care_app.url, users, "demo_district")
    dev = _rows(browser, "care-devices")
    assert len({r[0] for r in dev}) == len(dev) > 5  # one row per street
    browser.save_screenshot(str(SHOTS / "17b-care-district.png"))
