"""``gridmap city``: SQL indicators of the register, the city load refused on SQLite with both messages."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from gridmap.cli import app
from tests.scale.conftest import build_tiny_register, engine_url

runner = CliRunner()


def test_city_indicators_of_the_register(engine, tmp_path):
    build_tiny_register(engine, per_street=3)
    out = tmp_path / "ind.csv"
    res = runner.invoke(app, ["city", "indicators", "--week", "2026-W48", "--level", "street", "--source", "main",
                              "--out", str(out), "--database-url", engine_url(engine)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, encoding="utf-8-sig")
    assert sorted(df["street"]) == ["乙街道", "甲街道"]
    assert "周探访率" in df.columns and df["在册老人"].sum() == 3 * 2 + 2 + 2


def test_city_load_needs_postgis(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    res = runner.invoke(app, ["city", "load", "--elders", "100", "--districts", "1", "--database-url", url])
    assert res.exit_code == 1
    assert "PostGIS" in res.output and "城市级存储需要" in res.output
