"""Every process sees every write: writes from the CLI (and another process) reach a dashboard through the change feed.

In-process: a :class:`DashboardData` that has read the register applies the feed
(:meth:`DashboardData.poll_changes`) and then shows what a freshly started process
computes, street by street, on both backends. Acceptance (slow): two ``gridmap
serve`` processes on one database (SQLite file and PostGIS), a signed-in user in
each; a visit recorded with ``gridmap visits record`` for an overdue elder and a
``gridmap register import`` of new elders show in BOTH servers' KPI cards (逾期探访,
在册) within 5 s.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from gridmap.cli import app as cli
from gridmap.dashboard.data import SYSTEM_USER, DashboardData, Filters, today_beijing
from gridmap.rules.requirements import week_of
from tests.register.conftest import make_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]
STREET = "万寿路街道"  # the street of most rows of tests.register.conftest.make_rows
ANSWERS = dict(family_change="无变化", expression="无变化", mobility="无变化", illness="无变化", mood="无变化",
               gas_safety="安全", water_heating_safety="安全", electricity_safety="安全",
               personal_hygiene="无变化", home_hygiene="无变化", indoor_environment="无变化")
PASSWORD = "Tq7#vLm2!pRz9wXe"


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layers(data_dir: Path) -> Any:
    from gridmap.layers.build import build_layers

    return build_layers()


@pytest.fixture
def store(engine: Engine, layers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The real layers and a small synthetic register, on each backend."""
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path / "var"))
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=400, seed=11)
    return engine


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _same_figures(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same KPI figures (a figure with nothing to measure is NaN on both sides)."""
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return x == y

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def _street_kpis(data: DashboardData) -> dict[str, Any]:
    k = data.kpis(SYSTEM_USER, Filters(week=week_of(data.today), street=STREET))
    return {"overdue": int(k.get("overdue", 0)), "elders": int(k.get("elders", 0))}


def _overdue_elder(engine: Engine) -> int:
    st = DashboardData(engine).overdue_elders(SYSTEM_USER, Filters(week=week_of(today_beijing()), street=STREET))
    assert len(st), "no overdue elder in the street to visit"
    return int(st["elder_id"].iloc[0])


def _record_visit_cli(engine: Engine, elder_id: int, tmp_path: Path) -> None:
    f = tmp_path / f"visit-{elder_id}.json"
    f.write_text(json.dumps(dict(elder_id=elder_id, visited_on=today_beijing().isoformat(), mode="上门探访",
                                 visitor_role="志愿者", **ANSWERS), ensure_ascii=False), encoding="utf-8")
    res = CliRunner().invoke(cli, ["visits", "record", str(f), "--database-url", _url(engine)])
    assert res.exit_code == 0, res.output


def _import_cli(engine: Engine, tmp_path: Path, start: int) -> int:
    rows = [r for r in make_rows(6, start=start) if r["街道（乡镇）"] == STREET]
    res = CliRunner().invoke(cli, ["register", "import", str(write_csv(rows, tmp_path / f"new-{start}.csv")),
                                   "--source", "民政", "--database-url", _url(engine)])
    assert res.exit_code == 0, res.output
    return len(rows)


def test_a_process_applies_writes_of_others_street_by_street(store: Engine, tmp_path: Path) -> None:
    data = DashboardData(store)
    before = _street_kpis(data)
    other = DashboardData(store).kpis(SYSTEM_USER, Filters(week=week_of(data.today), street="学院路街道"))
    assert data.poll_changes()["changes"] == 0  # nothing new since it started
    elder = _overdue_elder(store)
    _record_visit_cli(store, elder, tmp_path)
    assert _street_kpis(data) == before  # a cache: not seen before following the feed
    done = data.poll_changes()
    assert done["changes"] == 1 and not done["reread"]
    fresh = _street_kpis(DashboardData(store))
    assert fresh["overdue"] == before["overdue"] - 1
    assert _street_kpis(data) == fresh
    st = data.status(SYSTEM_USER, Filters(week=week_of(data.today), street=STREET))
    assert bool(st.loc[st["elder_id"] == elder, "visited"].iloc[0])
    # an import of new elders: the street is re-read, the other streets' cached results stay
    n = _import_cli(store, tmp_path, 900)
    dropped_before = data.follow_stats["streets"]
    data.poll_changes()
    assert data.follow_stats["streets"] == dropped_before + 1
    fresh = _street_kpis(DashboardData(store))
    assert _street_kpis(data) == fresh and fresh["elders"] >= before["elders"] + 1 and n >= 1
    assert _same_figures(data.kpis(SYSTEM_USER, Filters(week=week_of(data.today), street="学院路街道")), other)
    # far behind: everything is re-read
    data.FOLLOW_MAX_CHANGES = 0
    _record_visit_cli(store, int(DashboardData(store).overdue_elders(
        SYSTEM_USER, Filters(week=week_of(data.today), street=STREET))["elder_id"].iloc[0]), tmp_path)
    assert data.poll_changes()["reread"]
    assert _street_kpis(data) == _street_kpis(DashboardData(store))


def test_rebalancing_proposal_is_kept_in_the_database_and_accepted_once(store: Engine) -> None:
    from gridmap.access.users import add_user

    user = add_user(store, "planner_p", "planner", grant=[STREET], password=PASSWORD)
    a, b = DashboardData(store), DashboardData(store)  # two processes
    pid = a.keep_proposal(user, STREET, "2026-W49", [{"elder_id": 1, "from_steward": 2, "to_steward": 3}])
    assert b.proposal(user, pid)["moves"] == [{"elder_id": 1, "from_steward": 2, "to_steward": 3}]
    other = add_user(store, "planner_q", "planner", grant=[STREET], password=PASSWORD)
    assert b.proposal(other, pid) is None and b.claim_proposal(other, pid) is None
    assert b.claim_proposal(user, pid) is not None
    assert a.claim_proposal(user, pid) is None and a.proposal(user, pid) is None


# ------------------------------------------------------------------ acceptance: two server processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """``gridmap serve`` (``--dev`` when the option exists) as a subprocess on a free loopback port."""

    def __init__(self, url: str, log: Path) -> None:
        helptext = subprocess.run([sys.executable, "-m", "gridmap", "serve", "--help"], capture_output=True,
                                  text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}).stdout
        args = ["--dev"] if "--dev" in helptext else []
        if "--escalate-every" in helptext:
            args += ["--escalate-every", "0"]
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRIDMAP_SECRET_KEY": "two-processes-secret-0123456789abcdef"}
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "gridmap", "serve", "--database-url", url,
                                      "--port", str(self.port), *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def wait_ready(self, timeout: float = 300.0) -> None:
        import requests

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError("server not ready:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class _Browser:
    """A signed-in user of one server, asking the supervisor's KPI callback as the page does."""

    def __init__(self, server: _Server, username: str) -> None:
        import requests

        self.base = server.base
        self.s = requests.Session()
        page = self.s.get(self.base + "/login", timeout=60)
        tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = self.s.post(self.base + "/login", data={"username": username, "password": PASSWORD,
                                                    "csrf_token": tok}, allow_redirects=False, timeout=60)
        assert r.status_code == 303, r.text[:300]
        deps = self.s.get(self.base + "/_dash-dependencies", timeout=60).json()
        self.dep = next(d for d in deps if d["output"].lstrip(".").startswith("sup-kpis.children"))

    def kpis(self) -> dict[str, int]:
        """逾期探访 and 在册 of the street, as the KPI cards show them."""
        values = {"sup-week.value": week_of(today_beijing()), "sup-street.value": STREET,
                  "sup-community.value": None, "sup-category.value": None, "data-version.data": 0}

        def part(x: dict[str, Any]) -> Any:
            return {"id": x["id"], "property": x["property"], "value": values.get(f"{x['id']}.{x['property']}")}

        outs = self.dep["output"][2:-2].split("...")
        body = {"output": self.dep["output"],
                "outputs": [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in outs],
                "inputs": [part(i) for i in self.dep["inputs"]], "state": [part(s) for s in self.dep["state"]],
                "changedPropIds": ["sup-week.value"]}
        r = self.s.post(self.base + "/_dash-update-component", json=body, timeout=60,
                        headers={"X-CSRFToken": self.s.cookies.get("_csrf_token", "")})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        text = json.dumps(r.json()["response"], ensure_ascii=False)
        m = re.search(r'"逾期探访".*?"([\d,]+)".*?"在册 ([\d,]+) 人"', text)
        assert m, text[:2000]
        return {"overdue": int(m.group(1).replace(",", "")), "elders": int(m.group(2).replace(",", ""))}


def _seen_within(browsers: list[_Browser], want: dict[str, int], seconds: float = 5.0) -> None:
    """Poll every server's KPI cards until each shows ``want``; fail with what each showed last."""
    end = time.monotonic() + seconds
    last: list[dict[str, int]] = []
    while True:
        last = [b.kpis() for b in browsers]
        if all(x == want for x in last):
            return
        if time.monotonic() > end:
            raise AssertionError(f"after {seconds} s the servers show {last}, expected {want} in each")
        time.sleep(0.25)


@pytest.mark.slow
def test_two_servers_see_cli_writes_within_5_seconds(store: Engine, tmp_path: Path) -> None:
    from gridmap.access.users import add_user

    pytest.importorskip("requests")
    add_user(store, "sup_two", "district", password=PASSWORD)
    servers = [_Server(_url(store), tmp_path / f"serve{i}.log") for i in (0, 1)]
    try:
        for s in servers:
            s.wait_ready()
        browsers = [_Browser(s, "sup_two") for s in servers]
        start = _street_kpis(DashboardData(store))
        _seen_within(browsers, start, 120)  # both have read the register (first view)

        # 1. a visit recorded from the command line for an overdue elder
        _record_visit_cli(store, _overdue_elder(store), tmp_path)
        want = _street_kpis(DashboardData(store))
        assert want["overdue"] == start["overdue"] - 1
        _seen_within(browsers, want)

        # 2. new elders imported from the command line
        _import_cli(store, tmp_path, 700)
        want = _street_kpis(DashboardData(store))
        assert want["elders"] > start["elders"]
        _seen_within(browsers, want)

        # 3. the command line again, one more visit (the servers keep following)
        _record_visit_cli(store, _overdue_elder(store), tmp_path)
        want2 = _street_kpis(DashboardData(store))
        assert want2["overdue"] == want["overdue"] - 1
        _seen_within(browsers, want2)
        for s in servers:
            import requests

            assert requests.get(s.base + "/healthz", timeout=10).json()["seq"] >= 3
    finally:
        for s in servers:
            s.stop()
