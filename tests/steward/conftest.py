"""Fixtures of the steward-in-the-field tests (issue 18): the dashboard's demo store, users and live app
(shared with tests/dashboard), and headless Chromium as a 390×844 phone."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.conftest import (  # noqa: F401
    CHROMEDRIVER,
    CHROMIUM,
    demo_engine,
    demo_users,
    live_app,
)

#: Where the screenshots of the steward's phone go (looked at by the helper, listed in the report).
SHOTS = Path("/work/notes/shots")


@pytest.fixture(scope="session")
def phone() -> Iterator[object]:
    """Headless Chromium with a 390×844 phone viewport (device scale 2, touch)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gridmap-phone-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
              "--disable-dev-shm-usage", "--window-size=390,844", "--lang=zh-CN", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shot(phone: object):
    """``shot(name)`` saves the phone's screen as /work/notes/shots/<name>.png (the full page with ``full=True``)."""
    import base64

    def take(name: str, full: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        if full:
            data = phone.execute_cdp_cmd("Page.captureScreenshot",  # type: ignore[attr-defined]
                                         {"format": "png", "captureBeyondViewport": True})["data"]
            path.write_bytes(base64.b64decode(data))
        else:
            phone.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    return take
