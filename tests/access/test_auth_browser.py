"""Headless Chromium signs in through /login and Dash's callbacks work (the renderer sends X-CSRFToken).

SQLite only (a browser test of the HTTP layer; the scope itself is covered on
both backends by test_auth_http.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gridmap.store.db import init_db, make_engine
from gridmap.store.models import AuditLog
from tests.access.conftest import PASSWORD, VISIBLE, add_users, seed_world
from tests.access.test_auth_http import make_app

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GRIDMAP_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from werkzeug.serving import make_server

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('auth') / 'a.sqlite'}")
    init_db(engine)
    world = seed_world(engine)
    add_users(engine)
    app = make_app(engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", engine, world
    server.shutdown()
    engine.dispose()


@pytest.fixture(scope="module")
def chrome():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gridmap-auth-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(pred, timeout=30.0):
    """Poll ``pred`` until it returns something true; elements of a page still loading are waited for."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
        except (NoSuchElementException, StaleElementReferenceException):
            v = None
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_browser_signs_in_runs_callbacks_and_signs_out(served, chrome):
    from selenium.webdriver.common.by import By

    url, engine, world = served
    chrome.get(url + "/")
    _wait(lambda: "/login" in chrome.current_url)
    chrome.find_element(By.NAME, "username").send_keys("comm_a1")
    chrome.find_element(By.NAME, "password").send_keys("wrong password")
    chrome.find_element(By.ID, "login-button").click()
    assert "用户名或密码错误" in _wait(lambda: chrome.find_element(By.ID, "login-error").text)
    chrome.find_element(By.NAME, "username").clear()
    chrome.find_element(By.NAME, "username").send_keys("comm_a1")
    chrome.find_element(By.NAME, "password").send_keys(PASSWORD)
    chrome.find_element(By.ID, "login-button").click()
    _wait(lambda: chrome.current_url.rstrip("/") == url)
    # the initial callback ran: it is a POST, so the renderer sent the CSRF header
    text = _wait(lambda: chrome.find_element(By.ID, "list").text)
    assert set(json.loads(text)) == {world.elders[k] for k in VISIBLE["comm_a1"]}
    assert "社区探访管家" in chrome.find_element(By.ID, "who").text
    # a callback asking for an elder outside the area shows nothing and is logged
    outside = world.elders["e2"]
    chrome.find_element(By.ID, "elder-id").send_keys(str(outside))
    time.sleep(1.5)
    assert chrome.find_element(By.ID, "detail").text == ""
    with engine.connect() as conn:
        denied = conn.execute(select(AuditLog.entity_id).where(AuditLog.username == "comm_a1",
                                                               AuditLog.action == "denied")).scalars().all()
    assert str(outside) in denied
    chrome.find_element(By.ID, "logout-button").click()
    _wait(lambda: "/login" in chrome.current_url)
    chrome.get(url + "/")
    _wait(lambda: "/login" in chrome.current_url)
