"""Unmasking from the command line needs a real user with the permission (issue 14, item 9).

``register export | form | first-contacts | quarantine export --unmask`` used
to accept any ``--user`` text. Now the user must exist, be enabled and have a
role that may unmask; the rows are those of the user's area; refusals are
audited as ``denied``; the ``unmask`` audit row names the operating-system
account beside the gridmap user.
"""

from __future__ import annotations

import getpass
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.store.models import AuditLog, Elder
from tests.access.conftest import add_users, seed_world

runner = CliRunner()


def _cli(engine, *args: str):
    return runner.invoke(app, ["register", *args, "--database-url", engine.url.render_as_string(hide_password=False)])


def _audit(engine) -> list[tuple[str, str, dict]]:
    with Session(engine) as s:
        return [(a.username, a.action, a.detail or {}) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


def _sheet_text(path) -> str:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    return json.dumps([[c for c in r] for ws in wb.worksheets for r in ws.iter_rows(values_only=True)],
                      ensure_ascii=False, default=str)


@pytest.fixture
def world(engine):
    w = seed_world(engine)
    add_users(engine)
    with Session(engine) as s:
        names = {k: s.get(Elder, i).name for k, i in w.elders.items()}
    return w, names


@pytest.mark.parametrize("who", ["nobody_here", "plan_b", "insp"])
def test_unmask_refused_for_unknown_users_and_roles_without_the_permission(engine, world, tmp_path, who):
    w, names = world
    commands = [
        ["export", "--out", str(tmp_path / "r.xlsx")],
        ["form", str(w.elders["e1"]), "--out", str(tmp_path / "f.xlsx")],
        ["first-contacts", "--out", str(tmp_path / "g.xlsx")],
        ["quarantine", "export", str(tmp_path / "q.xlsx")],
    ]
    for cmd in commands:
        r = _cli(engine, *cmd, "--unmask", "--reason", "核查", "--user", who)
        assert r.exit_code == 2, (cmd, r.output)
        assert "--user" in r.output
        for name in names.values():
            assert name not in r.output
    assert not list(tmp_path.glob("*.xlsx"))
    denied = [(u, d) for u, a, d in _audit(engine) if a == "denied"]
    assert len(denied) == len(commands)
    os_user = getpass.getuser()
    assert all(d["os_user"] == os_user for _u, d in denied)
    # a name that is no user is not stored as typed
    assert all(u != "nobody_here" for u, _d in denied)
    assert not any(a in ("unmask", "export_unmasked", "form_unmasked") for _u, a, _d in _audit(engine))


def test_unmask_by_a_permitted_user_covers_their_area_and_audits_the_os_account(engine, world, tmp_path):
    w, names = world
    out = tmp_path / "r.xlsx"
    r = _cli(engine, "export", "--out", str(out), "--unmask", "--reason", "年度核查", "--user", "street_a")
    assert r.exit_code == 0, r.output
    text = _sheet_text(out)
    assert names["e1"] in text and names["e2"] in text  # 甲街道, in clear
    assert names["e3"] not in text and names["e4"] not in text  # 乙街道: not the user's area
    rows = _audit(engine)
    unmask = [(u, d) for u, a, d in rows if a == "unmask"]
    assert unmask == [("street_a", {"command": "register export", "reason": "年度核查",
                                    "os_user": getpass.getuser(), "file": "r.xlsx", "rows": 2})]
    # the form of an elder outside the area is refused, like a missing one
    r = _cli(engine, "form", str(w.elders["e3"]), "--out", str(tmp_path / "f.xlsx"), "--unmask",
             "--reason", "纸质档案", "--user", "street_a")
    assert r.exit_code == 1 and not (tmp_path / "f.xlsx").exists()
    assert names["e3"] not in r.output
    r = _cli(engine, "form", str(w.elders["e1"]), "--out", str(tmp_path / "f.xlsx"), "--unmask",
             "--reason", "纸质档案", "--user", "street_a")
    assert r.exit_code == 0, r.output
    assert names["e1"] in _sheet_text(tmp_path / "f.xlsx")
    assert any(a == "unmask" and d.get("command") == "register form" and d["os_user"] == getpass.getuser()
               for _u, a, d in _audit(engine))


def test_masked_exports_still_take_any_user_name(engine, world, tmp_path):
    _w, names = world
    out = tmp_path / "m.xlsx"
    r = _cli(engine, "export", "--out", str(out), "--user", "科员")
    assert r.exit_code == 0, r.output
    text = _sheet_text(out)
    assert "科员" in text and not any(n in text for n in names.values())
