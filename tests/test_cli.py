"""The command line as a user runs it: help, db init, demo on both backends, serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.store.models import Community, Grid, ServiceStation, Street

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [[], ["db"], ["db", "init"], ["demo"], ["serve"], ["layers"], ["layers", "build"],
     ["layers", "export"], ["layers", "info"], ["layers", "fetch"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_db_init_creates_the_embedded_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'g.sqlite'}"
    result = runner.invoke(app, ["db", "init", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sub" / "g.sqlite").exists()
    from tests.store.test_migrations import _head

    assert f"revision {_head()}" in result.output


def test_db_init_reports_an_unreachable_server_clearly() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    result = runner.invoke(app, ["db", "init", "--database-url", url])
    assert result.exit_code == 1
    assert "无法连接数据库" in result.output and "cannot reach the database" in result.output
    assert "Traceback" not in result.output


def _counts(engine: Engine) -> dict[str, int]:
    from gridmap.store.db import session_scope

    with session_scope(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Street, Community, Grid, ServiceStation)}


@pytest.mark.slow
def test_demo_no_serve_builds_the_database_on_each_backend(engine: Engine, data_dir: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    for _ in range(2):  # a second run updates in place, nothing is duplicated
        result = runner.invoke(app, ["demo", "--no-serve", "--elders", "0", "--database-url", url])
        assert result.exit_code == 0, result.output
        counts = _counts(engine)
        assert counts["street"] == 29 and counts["community"] == 654
        assert counts["grid"] >= 654 and counts["service_station"] >= 654 + 29


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_answers_with_the_chinese_dashboard_after_sign_in(tmp_path: Path, data_dir: Path) -> None:
    import http.cookiejar
    import re
    import urllib.parse

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert runner.invoke(app, ["demo", "--no-serve", "--elders", "0", "--database-url", url]).exit_code == 0
    added = runner.invoke(app, ["users", "add", "tester", "--role", "district", "--password-stdin",
                                "--database-url", url], input="correct horse battery staple\n")
    assert added.exit_code == 0, added.output
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_SECRET_KEY": "test-secret-key-0123456789"}
    proc = subprocess.Popen([sys.executable, "-m", "gridmap", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        # without a session the Dash endpoints answer 401
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/_dash-layout", timeout=10)
        assert denied.value.code == 401
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/login", timeout=10) as r:
            form = r.read().decode()
        assert 'name="username"' in form and 'name="password"' in form
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        data = urllib.parse.urlencode({"username": "tester", "password": "correct horse battery staple",
                                       "csrf_token": token}).encode()
        with opener.open(f"{base}/login", data=data, timeout=30) as r:
            assert urllib.parse.urlparse(r.geturl()).path == "/"
            body = r.read().decode()
        assert "海淀区特殊困难老年人探访关爱" in body
        with opener.open(f"{base}/_dash-layout", timeout=60) as r:
            layout = r.read().decode("unicode_escape")
        assert "网格地图" in layout and "OpenStreetMap" in layout
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_demo_fails_cleanly_without_a_database_server() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    result = runner.invoke(app, ["demo", "--no-serve", "--database-url", url])
    assert result.exit_code == 1 and "无法连接数据库" in result.output


@pytest.mark.slow
def test_layers_info_reports_counts_and_road_coverage_per_street(data_dir: Path) -> None:
    result = runner.invoke(app, ["layers", "info"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "communities" in out and "654" in out
    assert "walk graph" in out and "km" in out
    for street in ("中关村街道", "苏家坨镇", "上庄镇"):
        assert street in out


@pytest.mark.slow
def test_layers_build_on_postgis_makes_tables_qgis_can_open(engine: Engine, data_dir: Path) -> None:
    from sqlalchemy import text

    url = engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["layers", "build", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert _counts(engine)["community"] == 654
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        rows = dict(conn.execute(text(
            "SELECT f_table_name, srid FROM geometry_columns WHERE f_table_name IN "
            "('street', 'community', 'grid', 'service_station', 'road_edges')")).all())
        gist = set(conn.execute(text(
            "SELECT tablename FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")).scalars())
        n_edges = conn.execute(text("SELECT count(*) FROM road_edges")).scalar()
        conn.execute(text("DROP TABLE road_edges"))
        conn.commit()
    assert set(rows) == {"street", "community", "grid", "service_station", "road_edges"}
    assert set(rows.values()) == {4326}
    assert {"street", "community", "grid", "service_station", "road_edges"} <= gist
    assert n_edges > 10000
