"""Helpers of the issue 17 part B tests: a demo register without its visit history (fast), the CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from gridmap.cli import app
from tests.dashboard.conftest import browser  # noqa: F401 - headless Chromium for test_care_browser.py

TODAY = date(2026, 12, 10)
runner = CliRunner()


def url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run(engine: Engine, *args: str) -> Any:
    """``gridmap ARGS --database-url …`` in-process; the result (exit_code, stdout)."""
    return runner.invoke(app, [*args, "--database-url", url(engine)])


@pytest.fixture(scope="session")
def layers(data_dir: Path) -> Any:
    from gridmap.layers.build import build_layers

    return build_layers(data_dir)


def load_demo(engine: Engine, layers: Any, monkeypatch: pytest.MonkeyPatch, *, elders: int, seed: int = 3) -> None:
    """``gridmap demo``'s register (elders, stewards, devices, stations, grids) without the visit history."""
    import gridmap.synth.demo as demo
    from gridmap.store.layers_store import save_admin_layers

    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    monkeypatch.setattr(demo, "record_history", lambda *a, **k: {})
    demo.load_demo_register(engine, layers, elders=elders, seed=seed, today=TODAY, near_roads=False)
