"""Issue #14 items 2, 7 and 9 (sign-in part), both backends: revocable sessions, sign-in limits, request limits.

* a cookie saved before sign-out, a password change, a role change or disabling
  (from the ``gridmap users`` CLI) gets 401 on ``/_dash-layout`` and on a callback;
* failures from other addresses never lock the owner out of their own address;
  one password across many user names from one address is limited (429);
  ``gridmap audit report`` shows password spraying and the limits hit;
  an unknown user name (a password typed in the wrong box) is never stored;
* request bodies are limited (413, bilingual), ``/favicon.ico`` is an icon, no
  response without a session names Dash/Python/Werkzeug versions, cookies are
  Secure behind an https proxy, weak passwords are refused.
"""

from __future__ import annotations

import json
import platform
import threading
from datetime import UTC, datetime, timedelta

import dash
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner
from werkzeug.serving import make_server

import gridmap.access as acc
from gridmap._errors import ValidationError
from gridmap.access.users import UNKNOWN_USER
from gridmap.cli import app as cli_app
from gridmap.dashboard.auth import CSRF_COOKIE, SESSION_COOKIE, QuietRequestHandler, install_auth
from gridmap.store.models import AuditLog, UserSession
from tests.access.conftest import PASSWORD
from tests.access.test_auth_http import _csrf_from_form, _payload, call, login, make_app

runner = CliRunner()
NEW_PASSWORD = "violet harbour lantern 42"


@pytest.fixture
def app(world, engine):
    return make_app(engine)


def _url(engine) -> list[str]:
    return ["--database-url", engine.url.render_as_string(hide_password=False)]


def _saved(client) -> dict[str, str]:
    """The cookies of a signed-in browser, as an attacker would copy them."""
    return {n: client.get_cookie(n).value for n in (SESSION_COOKIE, CSRF_COOKIE)}


def _replay(app, saved: dict[str, str]):
    c = app.server.test_client()
    for name, value in saved.items():
        c.set_cookie(name, value)
    return c


def _assert_refused(app, saved: dict[str, str]) -> None:
    c = _replay(app, saved)
    assert c.get("/_dash-layout").status_code == 401
    assert call(c, "list.children", None).status_code == 401  # with the saved CSRF token


# ------------------------------------------------------------------ item 2: sessions end on the server


def test_saved_cookie_is_refused_after_logout_and_every_session_ends(app, engine):
    c, other = app.server.test_client(), app.server.test_client()
    assert login(c, "dist").status_code == 303 and login(other, "dist").status_code == 303
    saved = _saved(c)
    assert _replay(app, saved).get("/_dash-layout").status_code == 200  # the copy works while signed in
    token = c.get_cookie(CSRF_COOKIE).value  # the session's CSRF token (what logout_button posts)
    r = c.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303
    _assert_refused(app, saved)
    assert other.get("/_dash-layout").status_code == 401  # the user's other browser is signed out too
    with engine.connect() as conn:
        reasons = conn.execute(select(UserSession.revoked_reason)).scalars().all()
        tokens = conn.execute(select(UserSession.token_hash)).scalars().all()
    assert reasons == ["logout", "logout"]
    assert not any(saved[SESSION_COOKIE] in t for t in tokens)  # only hashes are stored
    assert login(c, "dist").status_code == 303 and c.get("/_dash-layout").status_code == 200


@pytest.mark.parametrize("command", [
    ["users", "set-password", "street_a", "--password-stdin"],
    ["users", "set-role", "street_a", "--role", "street", "--street", "乙街道"],
    ["users", "disable", "street_a"],
    ["users", "sessions", "street_a", "--end"],
])
def test_saved_cookie_is_refused_after_an_admin_change_from_the_cli(app, engine, command):
    c = app.server.test_client()
    assert login(c, "street_a").status_code == 303
    saved = _saved(c)
    bystander = app.server.test_client()
    assert login(bystander, "dist").status_code == 303
    assert call(_replay(app, saved), "list.children", None).status_code == 200
    r = runner.invoke(cli_app, [*command, *_url(engine)], input=NEW_PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    _assert_refused(app, saved)  # at once: no waiting for the user cache
    assert c.get("/_dash-layout").status_code == 401
    assert bystander.get("/_dash-layout").status_code == 200  # other users keep their sessions
    if command[1] == "set-password":
        assert login(c, "street_a", NEW_PASSWORD).status_code == 303
        assert c.get("/_dash-layout").status_code == 200


def test_idle_and_expired_sessions_end(world, engine):
    uid = acc.load_user(engine, "dist").id
    t0 = datetime.now(UTC)
    tok = acc.start_session(engine, uid, "10.0.0.1", lifetime=timedelta(hours=8), now=t0)
    assert acc.session_user_id(engine, tok, now=t0 + timedelta(minutes=30)) == uid
    assert acc.session_user_id(engine, tok, idle=timedelta(minutes=20), now=t0 + timedelta(minutes=55)) is None
    tok = acc.start_session(engine, uid, "10.0.0.1", lifetime=timedelta(hours=1), now=t0)
    assert acc.session_user_id(engine, tok, now=t0 + timedelta(minutes=61)) is None
    assert acc.session_user_id(engine, "forged", now=t0) is None
    assert [s.username for s in acc.list_sessions(engine, "dist", now=t0)] == ["dist"]


# ------------------------------------------------------------------ item 7: sign-in limits


def _post_login(c, username, password, addr, headers=None):
    page = c.get("/login", environ_base={"REMOTE_ADDR": addr})
    return c.post("/login", data={"username": username, "password": password,
                                  "csrf_token": _csrf_from_form(page.text)},
                  environ_base={"REMOTE_ADDR": addr}, headers=headers or {})


def test_failures_from_other_addresses_never_lock_the_owner_out(app, engine):
    owner = app.server.test_client()
    assert _post_login(owner, "street_a", PASSWORD, "10.1.0.1").status_code == 303  # the owner's address
    attacker = app.server.test_client()
    codes = [_post_login(attacker, "street_a", f"guess {i}", f"10.9.0.{i % 6}").status_code for i in range(24)]
    assert codes.count(401) >= acc.users.MAX_FAILURES_PER_USER
    # the right password from an address that never signed in to the account is refused now ...
    assert _post_login(attacker, "street_a", PASSWORD, "10.9.9.9").status_code == 429
    # ... but the owner, from their address, signs in
    fresh = app.server.test_client()
    assert _post_login(fresh, "street_a", PASSWORD, "10.1.0.1").status_code == 303
    assert fresh.get("/_dash-layout").status_code == 200
    with pytest.raises(acc.RateLimited):
        acc.authenticate(engine, "street_a", PASSWORD, "10.9.9.8")
    assert acc.authenticate(engine, "street_a", PASSWORD, "10.1.0.1") is not None


def test_one_password_across_many_user_names_from_one_address_is_limited(app, engine):
    c = app.server.test_client()
    names = ["dist", "street_a", "comm_a1", "svc_1", "plan_b", "insp", "insp_a", "admin", "root", "test",
             "zhangsan", "lisi", "wangwu"]
    codes = [_post_login(c, n, "Summer2025!", "10.7.0.1", {"X-Forwarded-For": f"172.16.0.{i}"}).status_code
             for i, n in enumerate(names)]  # a forged X-Forwarded-For does not change the address
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    r = _post_login(c, "dist", PASSWORD, "10.7.0.1")
    assert r.status_code == 429 and "Too many" in r.text and "频繁" in r.text
    assert _post_login(c, "dist", PASSWORD, "10.7.0.2").status_code == 303  # another address is not limited
    with engine.connect() as conn:
        limited = conn.execute(select(AuditLog.client, AuditLog.detail)
                               .where(AuditLog.action == "login_limited")).all()
    assert ("10.7.0.1", {"limit": "address"}) in [(cl, d) for cl, d in limited]


def test_forwarded_address_is_used_only_from_trusted_proxies(world, engine):
    app = dash.Dash(__name__)
    app.layout = dash.html.Div("x")
    install_auth(app, engine, secret_key="test-secret-key-0123456789", trusted_proxies=1,
                 login_limits="3/minute")
    c = app.server.test_client()
    codes = [_post_login(c, "dist", "wrong one", "127.0.0.1", {"X-Forwarded-For": f"10.5.0.{i // 3}"}).status_code
             for i in range(6)]
    assert codes == [401] * 6  # three per forwarded client: none limited
    assert _post_login(c, "dist", "wrong one", "127.0.0.1", {"X-Forwarded-For": "10.5.0.0"}).status_code == 429


def test_a_password_typed_as_user_name_is_never_stored(app, engine):
    secret = "Qz9-mein-Passwort-7"
    assert acc.authenticate(engine, secret, "anything", "10.3.0.1") is None
    assert acc.authenticate(engine, secret, "anything", "10.3.0.1") is None
    c = app.server.test_client()
    for _ in range(12):  # through the web, up to and past the address limit
        _post_login(c, "  " + secret, "x", "10.3.0.2")
    with engine.connect() as conn:
        rows = conn.execute(select(AuditLog.username, AuditLog.entity_id, AuditLog.client, AuditLog.detail)).all()
    assert secret not in json.dumps([list(map(str, r)) for r in rows], ensure_ascii=False)
    unknown = {r.username for r in rows if r.username.startswith(UNKNOWN_USER)}
    assert len(unknown) == 1  # the same typed name is counted under one keyed hash


def test_audit_report_shows_password_spraying_and_limits(world, engine, tmp_path):
    for name in ["dist", "street_a", "comm_a1", "svc_1", "plan_b", "nobody1"]:  # one address, many names
        acc.authenticate(engine, name, "Spring2025!", "10.8.0.1")
    for i, name in enumerate(["insp", "insp_a", "ghost1", "ghost2", "ghost3", "ghost4"]):  # spread out
        acc.authenticate(engine, name, "Autumn2025!", f"10.8.1.{i}")
    for _ in range(acc.users.MAX_FAILURES + 1):  # a lock-out
        try:
            acc.authenticate(engine, "dist", "wrong!", "10.8.2.1")
        except acc.RateLimited:
            pass
    rep = acc.unusual_access_report(engine, datetime.now(UTC) - timedelta(hours=1))
    kinds = {r.kind: r for r in rep.itertuples()}
    assert kinds["password_spray"].client == "10.8.0.1" and kinds["password_spray"].count == 6
    # 12 names (5 real, 7 unknown, each counted by its keyed hash) from 8 addresses within the window
    assert kinds["distributed_spray"].username.startswith("12 user names")
    assert kinds["distributed_spray"].client.startswith("8 addresses")
    assert kinds["login_limited"].username == "dist" and kinds["login_limited"].client == "10.8.2.1"
    r = runner.invoke(cli_app, ["audit", "report", "--since", "1h", "--csv", str(tmp_path / "r.csv"), *_url(engine)])
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert r.exit_code == 1
    for kind in ("password_spray", "distributed_spray", "login_limited", "failed_logins"):
        assert kind in text, kind
    assert "nobody1" not in text and "ghost1" not in text  # unknown names are not kept


# ------------------------------------------------------------------ item 9: request size, favicon, versions, proxy


def test_request_body_limit_answers_413_bilingual_and_callbacks_still_work(app):
    c = app.server.test_client()
    assert login(c, "dist").status_code == 303
    assert call(c, "list.children", None).status_code == 200
    big = _payload("list.children", None) | {"padding": "x" * (3 * 1024 * 1024)}
    r = c.post("/_dash-update-component", json=big, headers={"X-CSRFToken": c.get_cookie(CSRF_COOKIE).value})
    assert r.status_code == 413
    body = r.get_json()
    assert "too large" in body["error"] and "请求过大" in body["error_zh"]
    assert app.server.test_client().post("/_dash-update-component", data=b"x" * (3 * 1024 * 1024),
                                         content_type="application/json").status_code == 413
    assert call(c, "list.children", None).status_code == 200


@pytest.fixture
def live(app):
    srv = make_server("127.0.0.1", 0, app.server, threaded=True, request_handler=QuietRequestHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_favicon_is_an_icon_and_nothing_without_a_session_names_versions(live):
    import requests

    r = requests.get(live + "/favicon.ico", timeout=10)
    assert (r.status_code == 200 and r.headers["Content-Type"].startswith("image/")) or r.status_code == 204
    assert b"<html" not in r.content.lower() and b"_dash-" not in r.content
    versions = [dash.__version__, "v" + dash.__version__.replace(".", "_"), "Werkzeug", "Python/",
                platform.python_version()]
    paths = ["/", "/favicon.ico", "/_favicon.ico", "/login", "/healthz", "/_dash-layout", "/_dash-dependencies",
             "/nothing-here", "/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js",
             "/assets/gridmap.css"]
    for path in paths:
        r = requests.get(live + path, timeout=10, allow_redirects=False)
        text = r.text + json.dumps(dict(r.headers))
        assert r.headers["Server"] == "gridmap", path
        assert not [v for v in versions if v in text], (path, [v for v in versions if v in text])
        assert "dash-renderer" not in r.text and "_dash-config" not in r.text, path  # never the app page


def test_app_run_serves_with_the_quiet_handler(app, monkeypatch):
    import werkzeug.serving

    seen = {}
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *a, **kw: seen.update(kw))
    app.run(host="127.0.0.1", port=8999, debug=False)  # what `gridmap serve` calls
    assert seen["request_handler"] is QuietRequestHandler


def test_cookies_are_secure_behind_an_https_proxy(app):
    c = app.server.test_client()
    page = c.get("/login", headers={"X-Forwarded-Proto": "https"})
    r = c.post("/login", headers={"X-Forwarded-Proto": "https"},
               data={"username": "dist", "password": PASSWORD, "csrf_token": _csrf_from_form(page.text)})
    assert r.status_code == 303
    cookies = r.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in h for h in cookies)
    c2 = app.server.test_client()
    assert "Secure" not in " ".join(login(c2, "dist").headers.getlist("Set-Cookie"))  # plain http: not Secure


# ------------------------------------------------------------------ item 9: weak passwords

WEAK = ["password", "12345678", "password123", "qwertyuiop", "1234567890", "aaaaaaaaaaaa", "iloveyou2024",
        "Passw0rd!", "Summer2025!"]


@pytest.mark.parametrize("weak", WEAK)
def test_weak_passwords_are_refused_everywhere(world, engine, weak):
    with pytest.raises(ValidationError) as ei:
        acc.add_user(engine, "newbie", "district", password=weak)
    assert ei.value.code in ("password", "weak_password") and "密码" in str(ei.value) and "password" in str(ei.value)
    assert ei.value.value is None  # the password is never echoed
    with pytest.raises(ValidationError):
        acc.set_password(engine, "street_a", weak)
    assert acc.authenticate(engine, "street_a", PASSWORD, "t") is not None  # unchanged
    r = runner.invoke(cli_app, ["users", "set-password", "street_a", "--password-stdin", *_url(engine)],
                      input=weak + "\n")
    assert r.exit_code == 1 and "密码" in r.output and "Traceback" not in r.output


def test_own_user_name_makes_a_password_weak(world, engine):
    with pytest.raises(ValidationError) as ei:
        acc.add_user(engine, "zhang_wei", "district", password="zhang_wei2025")
    assert ei.value.code == "weak_password"
    with pytest.raises(ValidationError):
        acc.set_password(engine, "street_a", "street_a2025")


def test_strong_passwords_are_accepted_and_demo_users_get_strong_ones(world, engine):
    acc.add_user(engine, "newbie", "district", password=NEW_PASSWORD)
    acc.set_password(engine, "newbie", "mossy granite kettle drum")
    assert acc.authenticate(engine, "newbie", "mossy granite kettle drum", "t") is not None
    demo = acc.create_demo_users(engine)
    assert len(demo) >= 4 and all(acc.password_problem(pw, [n]) is None for n, pw in demo.items())
    assert all(acc.authenticate(engine, n, pw, "t") is not None for n, pw in demo.items())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(pw=st.text(max_size=9))
@example(pw="12345678")
@example(pw="Xk#9q!Lm2")
def test_short_passwords_are_always_refused(pw):
    assert acc.password_problem(pw) is not None


@settings(max_examples=60, deadline=None, derandomize=True)
@given(base=st.sampled_from(["password", "qwerty", "iloveyou", "letmein", "welcome", "dragon", "123456",
                             "abc123", "football", "sunshine"]),
       suffix=st.text(alphabet="0123456789!", max_size=4))
@example(base="password", suffix="1234")
def test_common_passwords_with_digits_are_refused(base, suffix):
    pw = (base + suffix).ljust(10, "1")
    assert acc.password_problem(pw) is not None
