"""The sign-in layer over HTTP (Flask test client) on a small Dash app with ``install_auth``, both backends.

The app's callbacks read the register through :mod:`gridmap.access` with the
signed-in user's scope, so every role's scope is checked through the HTTP layer.
"""

from __future__ import annotations

import json
import re

import dash
import pytest
from dash import Input, Output, dcc, html
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import gridmap.access as acc
from gridmap.dashboard.auth import (
    CSRF_COOKIE,
    current_user,
    install_auth,
    log_access,
    logout_button,
)
from gridmap.store.models import AuditLog, Elder, FirstContact
from tests.access.conftest import PASSWORD, USERS, VISIBLE


def make_app(engine):
    """A minimal Dash app: one callback lists the visible elders, one reads an elder by id."""
    app = dash.Dash(__name__)

    def layout():
        u = current_user()
        return html.Div([html.Span(u.label if u else "", id="who"), logout_button(),
                         dcc.Input(id="elder-id"), html.Div(id="list"), html.Div(id="detail")])

    app.layout = layout

    @app.callback(Output("list", "children"), Input("elder-id", "value"))
    def _list(_v):
        u = current_user()
        with engine.connect() as conn:
            ids = conn.execute(select(Elder.id).where(acc.elder_clause(u.scope)).order_by(Elder.id)).scalars().all()
        log_access("view", "elder_list", None, {"rows": len(ids)})
        return json.dumps(ids)

    @app.callback(Output("detail", "children"), Input("elder-id", "value"), prevent_initial_call=True)
    def _detail(v):
        rec = acc.read_elder(engine, current_user(), v, "test")
        return json.dumps(rec, default=str, ensure_ascii=False) if rec else ""

    @app.server.get("/healthz")
    def healthz():
        return "ok"

    install_auth(app, engine, secret_key="test-secret-key-0123456789")
    return app


def _payload(output: str, value):
    cid, prop = output.split(".")
    return {"output": output, "outputs": {"id": cid, "property": prop},
            "inputs": [{"id": "elder-id", "property": "value", "value": value}],
            "changedPropIds": ["elder-id.value"], "state": []}


def _csrf_from_form(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def login(client, username, password=PASSWORD, next_=None):
    page = client.get("/login")
    assert page.status_code == 200
    data = {"username": username, "password": password, "csrf_token": _csrf_from_form(page.text)}
    if next_:
        data["next"] = next_
    return client.post("/login", data=data)


def call(client, output, value, csrf=True):
    headers = {}
    if csrf:
        c = client.get_cookie(CSRF_COOKIE)
        headers["X-CSRFToken"] = c.value if c else ""
    return client.post("/_dash-update-component", json=_payload(output, value), headers=headers)


@pytest.fixture
def app(world, engine):
    return make_app(engine)


def test_without_session_dash_endpoints_answer_401_and_pages_redirect(app):
    c = app.server.test_client()
    assert c.get("/_dash-layout").status_code == 401
    assert c.get("/_dash-dependencies").status_code == 401
    assert c.post("/_dash-update-component", json=_payload("list.children", None)).status_code == 401
    r = c.get("/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert c.get("/healthz").status_code == 200
    page = c.get("/login")
    assert page.status_code == 200 and 'name="username"' in page.text and 'name="password"' in page.text
    assert "登录" in page.text and 'lang="zh-CN"' in page.text


def test_login_lands_on_root_with_secure_cookie_flags(app):
    c = app.server.test_client()
    r = login(c, "dist")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    cookies = r.headers.getlist("Set-Cookie")
    sess = next(h for h in cookies if h.startswith("gridmap_session="))
    assert "HttpOnly" in sess and "SameSite=Lax" in sess and "Secure" not in sess  # plain http here
    assert any(h.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" not in h for h in cookies)
    assert c.get("/").status_code == 200
    layout = c.get("/_dash-layout")
    assert layout.status_code == 200 and "区民政局" in json.dumps(layout.get_json(), ensure_ascii=False)
    assert call(c, "list.children", None).status_code == 200
    # an open redirect is refused: an outside `next` lands on /
    c2 = app.server.test_client()
    assert login(c2, "dist", next_="https://evil.example/").headers["Location"] == "/"


def test_cookies_are_secure_over_https(app):
    c = app.server.test_client()
    page = c.get("/login", base_url="https://localhost")
    r = c.post("/login", base_url="https://localhost",
               data={"username": "dist", "password": PASSWORD, "csrf_token": _csrf_from_form(page.text)})
    assert r.status_code == 303
    assert all("Secure" in h for h in r.headers.getlist("Set-Cookie"))


def test_wrong_password_then_rate_limit(app, engine):
    c = app.server.test_client()
    for _ in range(acc.users.MAX_FAILURES):
        r = login(c, "street_a", "not the password")
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = login(c, "street_a")  # the 6th attempt, even with the right password
    assert r.status_code == 429 and "次数过多" in r.text
    assert c.get("/_dash-layout").status_code == 401


def test_state_changing_requests_need_the_csrf_token(app):
    c = app.server.test_client()
    page = c.get("/login")
    r = c.post("/login", data={"username": "dist", "password": PASSWORD})  # no token
    assert r.status_code == 403
    r = c.post("/login", data={"username": "dist", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403
    assert login(c, "dist").status_code == 303
    assert call(c, "list.children", None, csrf=False).status_code == 403
    r = c.post("/_dash-update-component", json=_payload("list.children", None), headers={"X-CSRFToken": "forged"})
    assert r.status_code == 403
    assert call(c, "list.children", None).status_code == 200
    assert page.status_code == 200


def test_logout_needs_csrf_and_ends_the_session(app, engine):
    c = app.server.test_client()
    login(c, "dist")
    assert c.post("/logout").status_code == 403
    c.get("/logout")  # a GET (a link, an image) never signs out
    assert c.get("/_dash-layout").status_code == 200
    def find(node):  # the hidden csrf_token input of logout_button() in the layout
        if isinstance(node, dict):
            p = node.get("props", {})
            if p.get("name") == "csrf_token":
                return p["value"]
            return next((t for t in map(find, [p.get("children")]) if t), None)
        if isinstance(node, list):
            return next((t for t in map(find, node) if t), None)
        return None

    token = find(c.get("/_dash-layout").get_json())
    assert token
    r = c.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert c.get("/_dash-layout").status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(AuditLog.id).where(AuditLog.action == "logout")).first() is not None


def test_disabled_user_loses_the_session(app, engine):
    c = app.server.test_client()
    login(c, "street_a")
    assert c.get("/_dash-layout").status_code == 200
    acc.disable_user(engine, "street_a")
    app.server.extensions["gridmap_auth"].forget(acc.load_user(engine, "street_a").id)  # skip the 5 s cache
    assert c.get("/_dash-layout").status_code == 401


@pytest.mark.parametrize("username", [u[0] for u in USERS])
def test_each_role_scope_through_http(app, engine, world, username):
    c = app.server.test_client()
    assert login(c, username).status_code == 303
    r = call(c, "list.children", None)
    assert r.status_code == 200
    got = set(json.loads(r.get_json()["response"]["list"]["children"]))
    want = {world.elders[k] for k in VISIBLE[username]}
    assert got == want
    # asking for every elder by id: those outside the scope return nothing and are logged as denied
    bodies = []
    for name, eid in world.elders.items():
        r = call(c, "detail.children", eid)
        assert r.status_code == 200
        out = r.get_json()["response"]["detail"]["children"]
        bodies.append(out)
        assert bool(out) == (name in VISIBLE[username])
    with engine.connect() as conn:
        denied = conn.execute(select(AuditLog.entity_id).where(AuditLog.username == username,
                                                               AuditLog.action == "denied")).scalars().all()
        rows = conn.execute(select(Elder.name, Elder.phone, Elder.id_number, Elder.address)).all()
        fcs = conn.execute(select(FirstContact.name, FirstContact.phone)).all()
        logs = conn.execute(select(AuditLog.username, AuditLog.entity_id, AuditLog.client, AuditLog.detail)).all()
    assert sorted(denied) == sorted(str(world.elders[k]) for k in world.elders if k not in VISIBLE[username])
    # no personal value in clear in any response or audit row
    text = " ".join(bodies) + " " + " ".join(str(x) for x in logs)
    for row in [*rows, *fcs]:
        for v in row:
            assert v is None or v not in text


_NASTY = st.one_of(
    st.sampled_from(["' OR 1=1 --", "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>",
                     "dist\x00", "ｄｉｓｔ", "\u202e", "😀" * 100, "x" * 20_000, "../../etc/passwd", "%00", ""]),
    st.text(max_size=300),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=_NASTY, password=_NASTY, nxt=_NASTY)
def test_fuzzed_login_form_never_crashes_reflects_or_lets_in(app, username, password, nxt):
    c = app.server.test_client()
    page = c.get("/login")
    r = c.post("/login", data={"username": username, "password": password, "next": nxt,
                               "csrf_token": _csrf_from_form(page.text)})
    assert r.status_code in (303, 401, 413, 429), r.status_code
    if r.status_code == 303:  # only a real user with the real password, and only to a local path
        assert password == PASSWORD and r.headers["Location"].startswith("/")
        assert not r.headers["Location"].startswith("//")
    else:
        assert "<script>" not in r.text and "<img" not in r.text
