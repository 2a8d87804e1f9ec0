"""Sign-in for the Dash app at the Flask level: /login, /logout, sessions, CSRF and the request guard.

:func:`install_auth` adds to a :class:`dash.Dash` app:

* ``GET /login``: a Chinese HTML form with inputs ``username``, ``password``
  and a hidden CSRF token; ``POST /login`` checks the token, the rate limit
  and the password (:func:`gridmap.access.authenticate`), then sets the
  session cookie and redirects to ``/`` (303).
* ``POST /logout`` (with the CSRF token): ends the session.
* a ``before_request`` guard: every route except ``/login``, ``/healthz`` and
  static assets (``/assets/``, ``/_dash-component-suites/``, favicons) needs a
  session. Dash's endpoints (``/_dash-layout``, ``/_dash-dependencies``,
  ``/_dash-update-component``, every ``/_dash-…``) and ``/gm-layers/…`` answer
  **401** without one; pages redirect to ``/login?next=…``.
* CSRF on every state-changing request (POST, PUT, PATCH, DELETE): the token
  of the session must come in the ``X-CSRFToken`` header or a ``csrf_token``
  form field, else **403**. Dash's renderer (dash ≥ 3) already sends the
  ``X-CSRFToken`` header from the ``_csrf_token`` cookie, which this module
  sets (readable by scripts, ``SameSite=Strict``); no extra JavaScript.

Sessions are Flask's signed cookies (``gridmap_session``: HttpOnly,
SameSite=Lax, Secure when the request came over https or when
``GRIDMAP_SECURE_COOKIES=1``; 8 hours). The signing key is ``secret_key`` or
:func:`gridmap.access.session_secret` (``GRIDMAP_SECRET_KEY``). The user is
re-read from the store at most every ``user_cache_seconds`` (5 s), so a
disabled user or a changed role takes effect within seconds.

Dashboard code calls :func:`current_user` (the signed-in
:class:`gridmap.access.User`, with its :class:`~gridmap.access.Scope`),
:func:`csrf_token`, :func:`logout_button` and :func:`log_access`.
"""

from __future__ import annotations

import hmac
import html
import os
import secrets
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import dash
import flask
from flask import Response, g, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from gridmap.access import (
    RateLimited,
    User,
    audit,
    authenticate,
    load_user_by_id,
    session_secret,
)
from gridmap.access.users import create_demo_users
from gridmap.store.db import DatabaseUnavailable

__all__ = [
    "client_address", "create_demo_users", "csrf_token", "current_user", "install_auth", "is_installed",
    "log_access", "logout_button",
]

SESSION_COOKIE = "gridmap_session"
#: Cookie Dash's renderer reads the CSRF token from (dash's ``csrf_token_name`` default).
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
_PUBLIC = frozenset({"/login", "/healthz", "/favicon.ico", "/_favicon.ico"})
_API_PREFIXES = ("/_dash-", "/gm-layers/", "/api/")
#: Largest sign-in request accepted (the form is tiny; bigger bodies are refused unread).
MAX_LOGIN_BYTES = 16_384
_EXT = "gridmap_auth"
#: Errors meaning the database cannot be reached (answered 503, never a stack trace).
_DB_DOWN = (DatabaseUnavailable, OperationalError, InterfaceError)


class _Sessions(SecureCookieSessionInterface):
    """Signed cookie sessions whose Secure flag follows the request (https) unless configured."""

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        forced = app.config.get("GRIDMAP_SECURE_COOKIES")
        if forced is not None:
            return bool(forced)
        return bool(flask.has_request_context() and request.is_secure)


class _State:
    def __init__(self, engine: Engine, cache_seconds: float) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._users: dict[int, tuple[float, User | None]] = {}
        self._lock = threading.Lock()

    def user(self, uid: int) -> User | None:
        now = time.monotonic()
        with self._lock:
            hit = self._users.get(uid)
            if hit is not None and hit[0] > now:
                return hit[1]
        u = load_user_by_id(self.engine, uid)
        with self._lock:
            self._users[uid] = (now + self.cache_seconds, u)
            if len(self._users) > 10_000:
                self._users.clear()
        return u

    def forget(self, uid: int) -> None:
        with self._lock:
            self._users.pop(uid, None)


# ------------------------------------------------------------------ helpers for the dashboard


def current_user() -> User | None:
    """The signed-in user of the current request (``None`` outside a request or without a session)."""
    if not flask.has_request_context():
        return None
    return g.get("gridmap_user")


def is_installed() -> bool:
    """Whether the app of the current request requires sign-in (:func:`install_auth` ran on it)."""
    return flask.has_request_context() and flask.current_app.extensions.get(_EXT) is not None


def csrf_token() -> str:
    """The CSRF token of the current session (created if missing); for forms posted by pages."""
    tok = session.get("csrf")
    if not tok:
        tok = secrets.token_urlsafe(32)
        session["csrf"] = tok
    return tok


def logout_button(label: str = "退出登录") -> Any:
    """A Dash form that signs out (POST /logout with the CSRF token); put it in the page header."""
    from dash import dcc
    from dash import html as dhtml

    token = csrf_token() if flask.has_request_context() else ""
    return dhtml.Form([
        dcc.Input(type="hidden", name=CSRF_FIELD, value=token, id="logout-csrf"),
        dhtml.Button(label, type="submit", id="logout-button", className="gm-logout"),
    ], method="POST", action="/logout", id="logout-form", style={"display": "inline"})


def client_address() -> str | None:
    """Where the current request came from (the peer address; proxies are not trusted)."""
    return request.remote_addr if flask.has_request_context() else None


def log_access(action: str, entity: str | None = None, entity_id: Any = None,
               detail: dict[str, Any] | None = None) -> None:
    """Audit an action of the current user (``view``, ``denied``, ``update``, ``export``…) from a page.

    List views should pass ``detail={"rows": n}`` (the unusual-access report counts them).
    Does nothing outside a request with a signed-in user.
    """
    if not flask.has_request_context():
        return
    user = g.get("gridmap_user")
    st: _State | None = flask.current_app.extensions.get(_EXT)
    if user is None or st is None:
        return
    audit(st.engine, user, action, entity, entity_id, client_address(), detail)


# ------------------------------------------------------------------ pages


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · 海淀区特殊困难老年人探访关爱</title>
<style>
body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;background:#f4f6f8;margin:0}}
main{{max-width:360px;margin:12vh auto;background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002}}
h1{{font-size:1.2em;margin:0 0 1em}} label{{display:block;margin:.8em 0 .3em}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;padding:.5em;font-size:1em}}
button{{margin-top:1.2em;width:100%;padding:.6em;font-size:1em;background:#1f6feb;color:#fff;border:0;border-radius:4px}}
.error{{color:#b42318;background:#fef3f2;padding:.6em;border-radius:4px}} .note{{color:#667085;font-size:.85em}}
</style></head>
<body><main>
<h1>海淀区特殊困难老年人探访关爱 · 登录</h1>
{error}
<form method="post" action="/login" autocomplete="off">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">用户名</label><input type="text" id="username" name="username" value="{username}" required maxlength="60" autofocus>
<label for="password">密码</label><input type="password" id="password" name="password" required maxlength="1024">
<button type="submit" id="login-button">登录</button>
</form>
<p class="note">本系统含老年人个人信息，仅限授权人员使用；所有访问均被记录。</p>
</main></body></html>
"""


def _safe_next(value: str | None) -> str:
    """A local path to go to after sign-in (anything else becomes ``/``)."""
    if not value or not isinstance(value, str) or len(value) > 500:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith(("//", "/login", "/logout")) \
            or "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    return value


def _login_page(error: str | None = None, username: str = "", status: int = 200) -> Response:
    err = f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>' if error else ""
    body = _PAGE.format(error=err, csrf=html.escape(csrf_token()), username=html.escape(username[:60]),
                        next=html.escape(_safe_next(request.values.get("next"))))
    return Response(body, status=status, mimetype="text/html")


def _csrf_ok() -> bool:
    want = session.get("csrf")
    got = request.headers.get(CSRF_HEADER)
    if not got and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        got = request.form.get(CSRF_FIELD)
    return bool(want and got and hmac.compare_digest(str(want), str(got)))


def _is_api(path: str) -> bool:
    return path.startswith(_API_PREFIXES) or "application/json" in request.headers.get("Accept", "") \
        and "text/html" not in request.headers.get("Accept", "")


def _unauthorised() -> Response:
    if _is_api(request.path):
        return flask.jsonify(error="not signed in", error_zh="未登录或登录已过期，请重新登录"), 401
    target = request.full_path if request.query_string else request.path
    return redirect("/login?next=" + quote(_safe_next(target), safe="/"), code=302)


def _forbidden() -> Response:
    return flask.jsonify(error="missing or wrong CSRF token", error_zh="请求缺少或带有错误的安全令牌，请刷新页面"), 403


# ------------------------------------------------------------------ installation


def install_auth(app: dash.Dash, engine: Engine, *, secret_key: str | bytes | None = None,
                 secure_cookies: bool | None = None, session_hours: float = 8.0,
                 user_cache_seconds: float = 5.0) -> None:
    """Require sign-in on every route of ``app`` (see the module docstring).

    Parameters
    ----------
    app
        The Dash app (its Flask server is ``app.server``).
    engine
        The store holding the users and the audit log.
    secret_key
        Session-signing key; default :func:`gridmap.access.session_secret`
        (``GRIDMAP_SECRET_KEY``, or random per process with a warning).
    secure_cookies
        Force the cookies' Secure flag on or off; default ``GRIDMAP_SECURE_COOKIES``
        (``1``/``0``) or, when unset, Secure exactly when the request came over https.
    session_hours
        Session lifetime.
    user_cache_seconds
        How long a user read from the store is reused.
    """
    server: flask.Flask = app.server
    if _EXT in server.extensions:  # installed already (idempotent)
        return
    if secure_cookies is None and os.environ.get("GRIDMAP_SECURE_COOKIES") in ("0", "1"):
        secure_cookies = os.environ["GRIDMAP_SECURE_COOKIES"] == "1"
    server.secret_key = secret_key or session_secret()
    server.session_interface = _Sessions()
    server.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
        GRIDMAP_SECURE_COOKIES=secure_cookies,
    )
    state = _State(engine, user_cache_seconds)
    server.extensions[_EXT] = state

    @server.before_request
    def _guard() -> Any:
        g.gridmap_user = None
        path = request.path
        unsafe = request.method not in _SAFE
        if path in _PUBLIC or path.startswith(_STATIC_PREFIXES):
            if path == "/login" and unsafe and (request.content_length or 0) > MAX_LOGIN_BYTES:
                return flask.jsonify(error="request too large", error_zh="请求过大"), 413
            if unsafe and not _csrf_ok():
                return _forbidden()
            return None
        uid = session.get("uid")
        user = None
        if isinstance(uid, int):
            try:
                user = state.user(uid)
            except _DB_DOWN:
                return flask.jsonify(error="database unavailable", error_zh="数据库暂时无法连接"), 503
            if user is None or user.disabled or user.username != session.get("username"):
                session.clear()
                user = None
        if user is None:
            return _unauthorised()
        if unsafe and not _csrf_ok():
            return _forbidden()
        g.gridmap_user = user
        return None

    @server.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith(_STATIC_PREFIXES) and not request.path.startswith("/gm-layers/"):
            resp.headers["Cache-Control"] = "no-store"
        tok = session.get("csrf")
        if tok and request.cookies.get(CSRF_COOKIE) != tok:
            resp.set_cookie(CSRF_COOKIE, tok, httponly=False, samesite="Strict", path="/",
                            secure=server.session_interface.get_cookie_secure(server),
                            max_age=int(session_hours * 3600))
        return resp

    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return _login_page()
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        try:
            user = authenticate(engine, username, password, request.remote_addr)
        except RateLimited as exc:
            return _login_page(exc.message_zh, username, 429)
        except _DB_DOWN:
            return _login_page("数据库暂时无法连接，请稍后再试", username, 503)
        if user is None:
            return _login_page("用户名或密码错误，或账号已停用", username, 401)
        nxt = _safe_next(request.form.get("next"))
        session.clear()  # a new session (no fixation): new CSRF token too
        session.permanent = True
        session["uid"] = user.id
        session["username"] = user.username
        session["at"] = int(time.time())
        csrf_token()
        state.forget(user.id)
        return redirect(nxt, code=303)

    @server.route("/logout", methods=["POST"])
    def logout() -> Any:
        uid = session.get("uid")
        if isinstance(uid, int):
            user = state.user(uid)
            if user is not None:
                audit(engine, user, "logout", "app_user", user.id, request.remote_addr)
        session.clear()
        resp = redirect("/login", code=303)
        resp.delete_cookie(CSRF_COOKIE, path="/")
        return resp
