"""``gridmap users`` and ``gridmap audit report`` on both backends."""

from __future__ import annotations

from typer.testing import CliRunner

import gridmap.access as acc
from gridmap.cli import app
from tests.access.conftest import seed_world

runner = CliRunner()


def test_users_commands(engine, tmp_path):
    seed_world(engine)
    url = ["--database-url", engine.url.render_as_string(hide_password=False)]
    r = runner.invoke(app, ["users", "add", "alice", "--role", "street", "--street", "甲街道", "--password-stdin", *url],
                      input="a long password\n")
    assert r.exit_code == 0, r.output
    assert acc.authenticate(engine, "alice", "a long password", "t").scope.street_names == ("甲街道",)
    r = runner.invoke(app, ["users", "add", "bob", "--role", "community", "--community", "甲一社区",
                            "--steward", "V-A1", "--password-stdin", *url], input="another password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "eve", "--role", "mayor", "--password-stdin", *url], input="a lantern over quiet water\n")
    assert r.exit_code == 1 and "未知角色" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["users", "set-role", "alice", "--role", "planner", "--grant", "乙街道", *url])
    assert r.exit_code == 0, r.output
    assert acc.load_user(engine, "alice").scope.street_names == ("乙街道",)
    r = runner.invoke(app, ["users", "disable", "bob", *url])
    assert r.exit_code == 0 and acc.authenticate(engine, "bob", "another password", "t") is None
    r = runner.invoke(app, ["users", "list", *url])
    assert r.exit_code == 0 and "alice" in r.output and "停用" in r.output
    assert "password" not in r.output and "argon2" not in r.output
    r = runner.invoke(app, ["audit", "report", "--since", "1h", *url])
    assert r.exit_code == 0, r.output  # nothing unusual yet
    for _ in range(5):
        acc.authenticate(engine, "alice", "wrong password", "9.9.9.9")
    r = runner.invoke(app, ["audit", "report", "--since", "1h", "--csv", str(tmp_path / "r.csv"), *url])
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert r.exit_code == 1 and "failed_logins" in text and "9.9.9.9" in text
