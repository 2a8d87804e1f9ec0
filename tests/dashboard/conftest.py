"""Fixtures of the dashboard tests: a small demo store with demo users, the app (sign-in required) on a
free loopback port, headless Chromium, and sign-in helpers for the browser and Flask's test client."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "screenshots"
CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GRIDMAP_CHROMEDRIVER", "/usr/bin/chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Engine:
    """A SQLite store with the real layers and a 2,000-elder synthetic register (built once per session)."""
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    path = tmp_path_factory.mktemp("dash") / "demo.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    layers = build_layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=2000, seed=7)
    return engine


@pytest.fixture(scope="session")
def demo_users(demo_engine: Engine) -> dict[str, str]:
    """One user per role (``demo_district``, ``demo_street``, …; :func:`gridmap.access.create_demo_users`)."""
    from gridmap.access import create_demo_users

    return create_demo_users(demo_engine)


def http_login(client: object, username: str, password: str) -> object:
    """Sign in through ``/login`` with Flask's test client (the form's CSRF token included)."""
    import re

    page = client.get("/login")  # type: ignore[attr-defined]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password,  # type: ignore[attr-defined]
                                       "csrf_token": token})


def browser_login(browser: object, base_url: str, username: str, password: str) -> None:
    """Sign in through the ``/login`` page in the browser (signs out a previous user first)."""
    from selenium.webdriver.common.by import By

    browser.get(base_url.rstrip("/") + "/login")  # type: ignore[attr-defined]
    browser.delete_all_cookies()  # type: ignore[attr-defined]
    browser.get(base_url.rstrip("/") + "/login")  # type: ignore[attr-defined]
    browser.find_element(By.NAME, "username").send_keys(username)  # type: ignore[attr-defined]
    browser.find_element(By.NAME, "password").send_keys(password)  # type: ignore[attr-defined]
    browser.find_element(By.ID, "login-button").click()  # type: ignore[attr-defined]


class LiveApp:
    """The dashboard served by werkzeug in a thread."""

    def __init__(self, app: object, port: int, server: object) -> None:
        self.app, self.port, self.server = app, port, server
        self.url = f"http://127.0.0.1:{port}/"

    @property
    def data(self):
        return self.app.gridmap_data  # type: ignore[attr-defined]


def serve(app: object) -> LiveApp:
    """Start ``app`` on a free loopback port."""
    from werkzeug.serving import make_server

    port = _free_port()
    server = make_server("127.0.0.1", port, app.server, threaded=True)  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return LiveApp(app, port, server)


@pytest.fixture(scope="session")
def live_app(demo_engine: Engine, demo_users: dict[str, str]) -> Iterator[LiveApp]:
    """The dashboard on the demo store, sign-in required (the real serve path)."""
    from gridmap.dashboard.app import create_app

    app = create_app(demo_engine, warm=True, secret_key="dashboard-test-secret-0123456789")
    live = serve(app)
    yield live
    live.server.shutdown()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium (skips when chromium or chromedriver is absent)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gridmap-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
              "--disable-dev-shm-usage", "--window-size=1400,1000", "--lang=zh-CN", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser: object):
    """``screenshot(name)`` saves a PNG under bench/results/screenshots/ when GRIDMAP_SCREENSHOTS=1."""
    def take(name: str) -> Path | None:
        if os.environ.get("GRIDMAP_SCREENSHOTS") != "1":
            return None
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        browser.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    return take


