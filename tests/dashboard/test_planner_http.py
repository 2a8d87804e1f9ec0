"""The planner's 采纳方案/撤销 over HTTP (issue 19): only the id of a proposal the server computed for this user is
accepted, never moves posted by the page; someone else's, a made-up or an accepted id is refused and audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from gridmap.access import load_user
from gridmap.store.models import AuditLog
from tests.dashboard.test_dashboard_scope_http import Client


@pytest.fixture(scope="module")
def app(demo_engine: Engine, demo_users: dict[str, str]) -> Any:
    from gridmap.dashboard.app import create_app

    return create_app(demo_engine, warm=False, secret_key="planner-http-secret-0123456789abcdef")


def _stewards(engine: Engine) -> dict[int, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, visit_steward_id FROM elder")).all())


def _values(c: Client, street: str, **kw: Any) -> dict[str, Any]:
    v = {"pln-street.value": street, "pln-week.value": c.data.default_week(), "pln-run.n_clicks": 1,
         "pln-replan.n_clicks": None, "data-version.data": c.data.version, "tabs.value": "planner",
         "pln-cross.value": ["cross"]}
    v.update(kw)
    return v


@pytest.mark.slow
def test_only_the_servers_proposal_for_this_user_is_accepted_and_undone(app: Any, demo_engine: Engine,
                                                                       demo_users: dict[str, str]) -> None:
    planner = Client(app, "demo_planner", demo_users["demo_planner"])
    street = load_user(demo_engine, "demo_planner").scope.street_names[0]
    out = planner.call("pln-bars.figure", _values(planner, street), ["pln-run.n_clicks"])
    prop = out["pln-proposal"]["data"]
    assert prop and set(prop) == {"id", "street", "moves"} and prop["moves"] > 0  # the page holds the id only
    before = _stewards(demo_engine)
    forged = [{"grid": "x", "from_steward": "a", "to_steward": "b", "elders": list(before)[:5]}]
    district = Client(app, "demo_district", demo_users["demo_district"])
    for who, body in ((district, prop),  # another user's proposal
                      (planner, {"id": "made-up", "street": street, "moves": forged}),
                      (planner, {"street": street, "moves": forged})):
        res = json.dumps(who.call("pln-msg.children", {"pln-accept.n_clicks": 1, "pln-proposal.data": body},
                                  ["pln-accept.n_clicks"]), ensure_ascii=False)
        assert "该方案不是服务器为您计算的" in res and "not computed for you by the server" in res, res
        assert _stewards(demo_engine) == before
    with demo_engine.connect() as conn:
        reasons = [d.get("reason") for d in conn.execute(select(AuditLog.detail).where(
            AuditLog.action == "denied", AuditLog.entity == "plan")).scalars() if d]
    assert reasons.count("unknown_proposal") >= 3

    res = planner.call("pln-msg.children", {"pln-accept.n_clicks": 1, "pln-proposal.data": {**prop, "moves": forged}},
                       ["pln-accept.n_clicks"])
    assert "已采纳" in json.dumps(res, ensure_ascii=False)
    after = _stewards(demo_engine)
    assert after != before
    applied = res["pln-applied"]["data"]
    again = planner.call("pln-msg.children", {"pln-accept.n_clicks": 2, "pln-proposal.data": prop},
                         ["pln-accept.n_clicks"])  # accepted once
    assert "该方案不是服务器为您计算的" in json.dumps(again, ensure_ascii=False) and _stewards(demo_engine) == after
    res = planner.call("pln-undo.disabled", {"pln-undo.n_clicks": 1, "pln-applied.data": applied},
                       ["pln-undo.n_clicks"])
    assert "已撤销" in json.dumps(res, ensure_ascii=False)
    assert _stewards(demo_engine) == before
