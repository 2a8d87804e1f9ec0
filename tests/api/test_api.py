"""The read API /api/v1 over HTTP (Flask test client) on both backends: the figures equal ``gridmap report``'s and
the dashboard cards', overdue elders masked and scoped, the change feed, tokens, audit, 400/401/405, OpenAPI."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app as cli
from gridmap.rules.indicators import INDICATOR_LABELS
from gridmap.store.models import AuditLog, Elder
from tests.api.conftest import WEEK, session_client

runner = CliRunner()
CJK = re.compile(r"[\u4e00-\u9fff]")


def _url(engine) -> str:  # noqa: ANN001
    return engine.url.render_as_string(hide_password=False)


def make_token(engine, username: str, *extra: str) -> tuple[int, str]:  # noqa: ANN001
    """``gridmap users token NAME`` through the CLI: (id, token) read from its output."""
    res = runner.invoke(cli, ["users", "token", username, *extra, "--database-url", _url(engine)])
    assert res.exit_code == 0, res.output
    token = re.search(r"gmt_[A-Za-z0-9_-]{40,}", res.output).group(0)
    tid = int(re.search(r"#(\d+)", res.output).group(1))
    return tid, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(client, url: str, token: str | None = None):  # noqa: ANN001, ANN201
    return client.get(url, headers=bearer(token) if token else {})


def _report(engine, tmp_path, *street: str) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    out = tmp_path / "report.xlsx"
    args = ["report", "--week", WEEK, "--out", str(out), "--database-url", _url(engine)]
    if street:
        args += ["--street", street[0]]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    return pd.read_excel(out, sheet_name=None)


def _same(api_rows: list[dict], sheet: pd.DataFrame, unit: str) -> None:
    """Each report row's figures equal the API row of the same area."""
    by_area = {r["area"]: r for r in api_rows}
    assert set(by_area) == set(sheet[unit].astype(str)), (by_area.keys(), sheet[unit].tolist())
    checks = {"weekly_rate": lambda r: r["weekly_rate"]["value"], "monthly_rate": lambda r: r["monthly_rate"]["value"],
              "overdue": lambda r: r["overdue"], "hazards_open": lambda r: r["open_hazards"],
              "referrals_open": lambda r: r["pending_referrals"], "elders": lambda r: r["elders"],
              "willing": lambda r: r["willing"], "visits": lambda r: r["visits"],
              "hazards_closed": lambda r: r["hazards_closed"],
              "smoke_alarm_coverage": lambda r: r["smoke_alarm_coverage"]["value"],
              "missing_steward": lambda r: r["missing_steward"]}
    for _, rep in sheet.iterrows():
        row = by_area[str(rep[unit])]
        for key, pick in checks.items():
            want = rep[INDICATOR_LABELS[key]]
            got = pick(row)
            if pd.isna(want):
                assert got is None, (rep[unit], key, got)
            else:
                assert got == pytest.approx(float(want)), (rep[unit], key, got, want)
    # the rows come in the report's order (laggards first)
    assert [r["area"] for r in api_rows] == sheet[unit].astype(str).tolist()


def test_indicators_equal_the_report(app, engine, tmp_path):
    """Street and community rows equal ``gridmap report``'s xlsx for the same week, whole district and one street."""
    _tid, token = make_token(engine, "dist")
    c = app.server.test_client()
    sheets = _report(engine, tmp_path)
    streets = get(c, f"/api/v1/indicators?week={WEEK}&level=street", token).get_json()
    assert streets["level"] == "street" and len(streets["rows"]) == 2
    # a meaningful comparison: the streets differ, visits and hazards counted
    assert sorted(r["weekly_rate"]["value"] for r in streets["rows"]) == pytest.approx([1 / 3, 2 / 3])
    assert sum(r["overdue"] for r in streets["rows"]) == 3 and sum(r["visits"] for r in streets["rows"]) == 3
    _same(streets["rows"], sheets["街道"], "街道")
    comm = get(c, f"/api/v1/indicators?week={WEEK}&level=community", token).get_json()
    _same(comm["rows"], sheets["社区"], "社区")

    one = _report(engine, tmp_path, "甲街道")
    jia = get(c, f"/api/v1/indicators?week={WEEK}&street=甲街道", token).get_json()
    assert jia["level"] == "street"  # the default level with a street
    _same(jia["rows"], one["街道"], "街道")
    jia_comm = get(c, f"/api/v1/indicators?week={WEEK}&street=甲街道&level=community", token).get_json()
    _same(jia_comm["rows"], one["社区"], "社区")
    r = jia["rows"][0]["weekly_rate"]
    assert r["numerator"] == 2 and r["denominator"] == 3


def test_district_is_one_row_equal_to_the_dashboard_cards(app, engine):
    """Level district (the default without a street): one row 海淀区 with the dashboard's KPI card figures."""
    from gridmap.dashboard.data import SYSTEM_USER, DashboardData, Filters

    _tid, token = make_token(engine, "dist")
    body = get(app.server.test_client(), f"/api/v1/indicators?week={WEEK}", token).get_json()
    assert body["level"] == "district" and len(body["rows"]) == 1
    row = body["rows"][0]
    assert row["area"] == "海淀区"
    k = DashboardData(engine, today=date(2025, 3, 17)).kpis(SYSTEM_USER, Filters(week=WEEK))
    assert k, "the dashboard has figures for the week"
    assert row["weekly_rate"]["value"] == pytest.approx(k["weekly_rate"]) == pytest.approx(0.5)
    assert row["monthly_rate"]["value"] == pytest.approx(k["monthly_rate"])
    assert row["smoke_alarm_coverage"]["value"] == pytest.approx(k["smoke_alarm_coverage"])
    for api_key, card in (("overdue", "overdue"), ("open_hazards", "hazards_open"), ("elders", "elders"),
                          ("pending_referrals", "referrals_open"), ("hazards_overdue", "hazards_overdue")):
        assert row[api_key] == k[card], api_key


@pytest.mark.slow
def test_overdue_masked_scoped_and_recordable(app, engine, api_world, tmp_path):
    """A street user sees only their street's overdue elders, masked; the ids are those `visits record` takes:
    recording a visit for one through the CLI takes it off the list (and off the overdue figure)."""
    _t, dist = make_token(engine, "dist")
    c = app.server.test_client()
    everyone = get(c, f"/api/v1/overdue?week={WEEK}", dist).get_json()
    with engine.connect() as conn:
        people = {i: (n, s) for i, n, s in conn.execute(select(Elder.id, Elder.name, Elder.street_id))}
    assert everyone["total"] == len(everyone["items"]) == 3
    for it in everyone["items"]:
        full = people[it["elder_id"]][0]
        assert it["name"] != full and it["name"][0] == full[0] and "*" in it["name"]
        assert full not in json.dumps(everyone, ensure_ascii=False)
        assert "号楼" not in (it["address"] or "")
    # scoped: street_a (甲街道) by session cookie and by token see the same, only their street
    street_a = session_client(app, "street_a")
    by_cookie = street_a.get(f"/api/v1/overdue?week={WEEK}").get_json()
    _t2, tok_a = make_token(engine, "street_a")
    by_token = get(c, f"/api/v1/overdue?week={WEEK}", tok_a).get_json()
    assert by_cookie == by_token
    jia_ids = {api_world.elders[k] for k in ("e2", "e5")}
    assert {it["elder_id"] for it in by_token["items"]} == jia_ids
    assert {it["street"] for it in by_token["items"]} == {"甲街道"}
    assert get(c, f"/api/v1/overdue?week={WEEK}&street=乙街道", tok_a).status_code == 403
    ind = get(c, f"/api/v1/indicators?week={WEEK}", tok_a).get_json()["rows"][0]
    assert ind["overdue"] == by_token["total"] == 2

    target = next(it for it in by_token["items"] if it["willing"])
    f = tmp_path / "visit.json"
    f.write_text(json.dumps({"elder_id": target["elder_id"], "visited_on": "2025-03-15", "mode": "电话问候",
                             "visitor_role": "探访管家", "illness": "无变化", "mood": "无变化", "needs": []},
                            ensure_ascii=False), encoding="utf-8")  # issue 17: an effective phone visit
    res = runner.invoke(cli, ["visits", "record", str(f), "--database-url", _url(engine)])
    assert res.exit_code == 0, res.output
    after = get(c, f"/api/v1/overdue?week={WEEK}", tok_a).get_json()
    assert {it["elder_id"] for it in after["items"]} == jia_ids - {target["elder_id"]}
    assert get(c, f"/api/v1/indicators?week={WEEK}", tok_a).get_json()["rows"][0]["overdue"] == 1


def test_changes_since_and_scoped(app, engine, api_world, tmp_path):
    """The change feed from a sequence number; a street user gets only their street's changes and elders."""
    _t, dist = make_token(engine, "dist")
    _t2, tok_a = make_token(engine, "street_a")
    c = app.server.test_client()
    first = get(c, "/api/v1/changes?since=0", dist).get_json()
    assert first["items"] and first["next_since"] == first["items"][-1]["seq"]
    assert get(c, f"/api/v1/changes?since={first['next_since']}", dist).get_json()["items"] == []
    e3, e1 = api_world.elders["e3"], api_world.elders["e1"]
    for eid in (e3, e1):  # 乙街道, then 甲街道
        f = tmp_path / f"v{eid}.json"
        f.write_text(json.dumps({"elder_id": eid, "visited_on": "2025-03-15", "mode": "电话问候",
                                 "visitor_role": "探访管家"}, ensure_ascii=False), encoding="utf-8")
        assert runner.invoke(cli, ["visits", "record", str(f), "--database-url", _url(engine)]).exit_code == 0
    new = get(c, f"/api/v1/changes?since={first['next_since']}", dist).get_json()["items"]
    assert [(x["kind"], x["elders"], x["streets"]) for x in new] == [("visit", [e3], ["乙街道"]),
                                                                   ("visit", [e1], ["甲街道"])]
    mine = get(c, f"/api/v1/changes?since={first['next_since']}", tok_a).get_json()
    assert [(x["elders"], x["streets"]) for x in mine["items"]] == [([e1], ["甲街道"])]
    assert mine["next_since"] == new[-1]["seq"]  # read past the change it may not see
    allowed = {api_world.elders[k] for k in ("e1", "e2", "e5", "e7")}
    every = get(c, "/api/v1/changes?since=0", tok_a).get_json()["items"]
    assert every and all(set(x["elders"]) <= allowed and set(x["streets"]) <= {"甲街道"} for x in every)
    limited = get(c, "/api/v1/changes?since=0&limit=1", dist).get_json()
    assert len(limited["items"]) == 1 and limited["more"] is True


def test_token_lifecycle(app, engine):
    """Made by the CLI, listed without the token, used; revoked, disabled user, role change, expiry: 401."""
    from gridmap.access import disable_user, set_role
    from gridmap.access.tokens import create_token

    c = app.server.test_client()
    url = f"/api/v1/indicators?week={WEEK}"
    tid, token = make_token(engine, "insp", "--expires", "30", "--label", "BI")
    assert get(c, url, token).status_code == 200
    listed = runner.invoke(cli, ["users", "tokens", "insp", "--database-url", _url(engine)])
    assert listed.exit_code == 0 and token not in listed.output and token[4:20] not in listed.output
    assert str(tid) in listed.output and "active" in listed.output
    res = runner.invoke(cli, ["users", "token-revoke", str(tid), "--database-url", _url(engine)])
    assert res.exit_code == 0, res.output
    assert get(c, url, token).status_code == 401
    assert "revoked" in runner.invoke(cli, ["users", "tokens", "--database-url", _url(engine)]).output
    assert runner.invoke(cli, ["users", "token-revoke", "999", "--database-url", _url(engine)]).exit_code != 0

    _t, t2 = make_token(engine, "insp")
    assert get(c, url, t2).status_code == 200
    disable_user(engine, "insp")
    assert get(c, url, t2).status_code == 401
    disable_user(engine, "insp", disabled=False)
    assert get(c, url, t2).status_code == 401  # re-enabling does not bring the token back

    _t, t3 = make_token(engine, "street_a")
    assert get(c, url, t3).status_code == 200
    set_role(engine, "street_a", "street", street="乙街道")
    assert get(c, url, t3).status_code == 401

    _t, t4 = create_token(engine, "dist", expires_days=1, now=datetime.now(UTC) - timedelta(days=2))
    assert get(c, url, t4).status_code == 401
    assert get(c, url, "gmt_" + "x" * 43).status_code == 401
    assert c.get(url, headers={"Authorization": f"Basic {token}"}).status_code == 401
    # a token is refused outside /api/ (it is not a dashboard sign-in)
    _t, t5 = make_token(engine, "dist")
    assert c.get("/_dash-layout", headers=bearer(t5)).status_code == 401


def test_every_call_is_audited(app, engine):
    """One ``api`` audit row per call, naming the endpoint, the rows returned, token or session."""
    _t, token = make_token(engine, "dist")
    c = app.server.test_client()
    with engine.connect() as conn:
        before = conn.execute(select(AuditLog.id).order_by(AuditLog.id.desc())).scalars().first() or 0
    calls = [(f"/api/v1/indicators?week={WEEK}&level=street", 2), (f"/api/v1/overdue?week={WEEK}", 3),
             ("/api/v1/changes?since=0&limit=2", 2), ("/api/v1/indicators?week=bad", 0)]
    for u, _n in calls:
        get(c, u, token)
    session_client(app, "dist").get(f"/api/v1/indicators?week={WEEK}")
    with Session(engine) as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.id > before, AuditLog.action == "api")
                         .order_by(AuditLog.id)).all()
    assert [(r.entity, r.detail["rows"]) for r in rows] == [
        ("/api/v1/indicators", 2), ("/api/v1/overdue", 3), ("/api/v1/changes", 2), ("/api/v1/indicators", 0),
        ("/api/v1/indicators", 1)]
    assert all(r.username == "dist" for r in rows)
    assert [r.detail["auth"] for r in rows] == ["token"] * 4 + ["session"]
    assert rows[3].detail["status"] == 400


BAD = [
    ("/api/v1/indicators", "week"),
    ("/api/v1/indicators?week=2025-11", "week"),
    ("/api/v1/indicators?week=2025W11", "week"),
    ("/api/v1/indicators?week=2025-W60", "week"),
    ("/api/v1/indicators?week=2025-W11&street=不存在街道", "street"),
    ("/api/v1/indicators?week=2025-W11&level=province", "level"),
    ("/api/v1/indicators?week=2025-W11&foo=1", "foo"),
    ("/api/v1/indicators?week=2025-W11&week=2025-W12", "week"),
    ("/api/v1/overdue?week=2025-W11&limit=0", "limit"),
    ("/api/v1/overdue?week=x", "week"),
    ("/api/v1/overdue?week=2025-W11&level=street", "level"),
    ("/api/v1/changes?since=abc", "since"),
    ("/api/v1/changes?since=-1", "since"),
    ("/api/v1/changes?since=1.5", "since"),
    ("/api/v1/changes?from=3", "from"),
]


def test_bad_parameters_get_a_bilingual_400(app, engine):
    _t, token = make_token(engine, "dist")
    c = app.server.test_client()
    for url, field in BAD:
        r = get(c, url, token)
        assert r.status_code == 400, (url, r.status_code, r.text)
        body = r.get_json()
        assert body["field"] == field, (url, body)
        assert CJK.search(body["error_zh"]), (url, body)
        assert field in body["error"], (url, body)


def test_without_auth_401_and_read_only_405(app, engine):
    c = app.server.test_client()
    for u in (f"/api/v1/indicators?week={WEEK}", f"/api/v1/overdue?week={WEEK}", "/api/v1/changes?since=0"):
        r = c.get(u)
        assert r.status_code == 401 and r.get_json()["error"] and CJK.search(r.get_json()["error_zh"])
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert c.get(u, headers=bearer("nonsense")).status_code == 401
    _t, token = make_token(engine, "dist")
    cookie = session_client(app, "dist")
    for method in ("post", "put", "patch", "delete"):
        assert getattr(c, method)(f"/api/v1/indicators?week={WEEK}", headers=bearer(token)).status_code == 405
        assert getattr(cookie, method)(f"/api/v1/overdue?week={WEEK}").status_code == 405
        assert getattr(c, method)("/api/v1/openapi.json").status_code == 405
    assert cookie.get(f"/api/v1/indicators?week={WEEK}").status_code == 200


def test_openapi_is_valid_and_lists_every_endpoint_and_parameter(app, engine):
    from openapi_spec_validator import validate

    from gridmap.api import figures

    r = app.server.test_client().get("/api/v1/openapi.json")  # public: no data in it
    assert r.status_code == 200
    spec = r.get_json()
    validate(spec)
    served = {rule.rule for rule in app.server.url_map.iter_rules() if rule.rule.startswith("/api/v1/")}
    assert served == set(spec["paths"])
    params = {p: [x["name"] for x in spec["paths"][p]["get"].get("parameters", [])] for p in spec["paths"]}
    assert params["/api/v1/indicators"] == ["week", "street", "level"]
    assert params["/api/v1/overdue"] == ["week", "street", "limit", "offset"]
    assert params["/api/v1/changes"] == ["since", "limit"]
    for p in ("/api/v1/indicators", "/api/v1/overdue", "/api/v1/changes"):
        assert {"200", "400", "401", "405"} <= set(spec["paths"][p]["get"]["responses"])
    # every key a row carries is described (a BI tool reads the schema to map the columns)
    _tid, token = make_token(engine, "dist")
    schemas = spec["components"]["schemas"]
    rows = get(app.server.test_client(), f"/api/v1/indicators?week={WEEK}&level=street", token).get_json()["rows"]
    assert rows and all(set(r) <= set(schemas["IndicatorRow"]["properties"]) for r in rows)
    assert all(set(r["followups"]) == set(schemas["FollowupMeasures"]["properties"]) for r in rows)
    # what the spec names is what the parser accepts: anything else is refused
    with pytest.raises(figures.ApiError):
        figures.parse_changes({"since": ["1"], "extra": ["1"]})
    assert figures.parse_changes({"since": ["7"], "limit": ["3"]}) == figures.ChangesQuery(7, 3)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
@example("2025-W53")  # 2025 has 52 weeks
@example("2026-W53")  # 2026 has 53
@example("２０２５-W11")  # full-width digits
@example("2025-w11")
def test_week_parameter_is_a_real_iso_week_or_a_bilingual_400(text):
    """Property: any text is either an existing ISO week (normalised upper-case) or refused with both languages."""
    from gridmap.api.figures import ApiError, _week
    from gridmap.rules.requirements import parse_week

    try:
        week = _week(text)
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "week" and CJK.search(exc.message_zh) and exc.message_en
        return
    assert re.fullmatch(r"[0-9]{4}-W[0-9]{2}", week) and week == text.strip().upper()
    parse_week(week)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=25))
@example("１２")  # full-width digits are not a number here
@example("9" * 19)
def test_since_parameter_is_a_non_negative_integer_or_a_400(text):
    from gridmap.api.figures import ApiError, parse_changes

    try:
        q = parse_changes({"since": [text]})
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "since" and CJK.search(exc.message_zh)
        return
    assert re.fullmatch(r"\s*[0-9]+\s*", text) and q.since == int(text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["week", "street", "level", "x", "since", "limit"]),
                       st.text(max_size=10), max_size=3))
def test_fuzzed_queries_never_fail_with_500(app, engine, params):
    """Whatever the query string, the answer is 200, 400 or 403 JSON (never a server error)."""
    from urllib.parse import urlencode

    from gridmap.access.tokens import create_token

    token = create_token(engine, "street_a")[1]
    c = app.server.test_client()
    for ep in ("indicators", "overdue", "changes"):
        r = get(c, f"/api/v1/{ep}?{urlencode(params)}", token)
        assert r.status_code in (200, 400, 403), (ep, params, r.status_code, r.text)
        body = r.get_json()
        if r.status_code != 200:
            assert body["error"] and CJK.search(body["error_zh"])


def test_only_the_tokens_hash_is_stored(engine, api_world):
    """Only the token's hash is stored."""
    from gridmap.access.tokens import create_token, token_user
    from gridmap.store.models import ApiToken

    tid, token = create_token(engine, "dist", label="12345热线")
    with engine.connect() as conn:
        row = conn.execute(select(ApiToken.__table__).where(ApiToken.id == tid)).first()
        dump = json.dumps([str(x) for x in row], ensure_ascii=False)
    assert token not in dump and token[4:] not in dump
    user, found = token_user(engine, token)
    assert user.username == "dist" and found == tid
