"""Sign-in for the Dash app at the Flask level: /login, /logout, server-side sessions, CSRF, limits, the guard.

:func:`install_auth` adds to a :class:`dash.Dash` app:

* ``GET /login``: a Chinese HTML form with inputs ``username``, ``password``
  and a hidden CSRF token; ``POST /login`` checks the token, the rate limits
  and the password (:func:`gridmap.access.authenticate`), then opens a
  server-side session and redirects to ``/`` (303).
* ``POST /logout`` (with the CSRF token): ends **every** session of the user.
* a ``before_request`` guard: every route except ``/login``, ``/healthz``,
  the favicon and ``/assets/`` needs a session. Dash's endpoints
  (``/_dash-layout``, ``/_dash-dependencies``, ``/_dash-update-component``,
  the scripts under ``/_dash-component-suites/``, every ``/_dash-…``) and
  ``/gm-layers/…`` answer **401** without one; pages redirect to ``/login?next=…``.
* the read API (``/api/…``, :mod:`gridmap.api`) also takes an
  ``Authorization: Bearer <token>`` header (:mod:`gridmap.access.tokens`;
  accepted there only, and then the cookie is not looked at): the token's
  user with exactly that user's scope; a wrong or ended token gets **401**
  JSON. Any method but GET/HEAD/OPTIONS there gets **405** (read-only; no
  CSRF is involved).
* CSRF on every state-changing request (POST, PUT, PATCH, DELETE): the token
  of the session must come in the ``X-CSRFToken`` header or a ``csrf_token``
  form field, else **403**. Dash's renderer (dash ≥ 3) already sends the
  ``X-CSRFToken`` header from the ``_csrf_token`` cookie, which this module
  sets (readable by scripts, ``SameSite=Strict``); no extra JavaScript.

Sessions
--------
Sessions live in the store (``user_session``, :mod:`gridmap.access.sessions`):
the cookie ``gridmap_session`` (Flask-signed; HttpOnly, SameSite=Lax, Secure
over https) carries only a random 256-bit session token and the CSRF token;
the store keeps the token's SHA-256, the user, the times and the client
address. Every request looks the session up by primary key, so a session
ended on the server is refused at once, in every worker process: signing
out, and an administrator's password, role or area change or disabling
(``gridmap users …``), end every session of the user; a saved copy of the
cookie then gets 401. Sessions also end after ``session_hours`` (8) and when
idle for ``session_idle_minutes`` (120). A new session (new token and CSRF
token) is made at every sign-in (no fixation). The user record is re-read at
most every ``user_cache_seconds`` per session (role changes end the session
anyway).

Sign-in limits
--------------
Per client address, failed sign-ins (answers 401 or 429) are limited with
flask-limiter (``GRIDMAP_LOGIN_LIMITS``, default ``10/minute;50/hour``, a
moving window): one password tried across many user names from one address
is stopped. The per-account limits, which never lock the owner out of an
address they signed in from before, are in :mod:`gridmap.access.users`.
Limit counters live in ``GRIDMAP_RATELIMIT_STORAGE`` (default
``memory://``: **per process**, so with several gunicorn workers each worker
counts alone and the address limit is effectively multiplied by the number
of workers; give a shared storage such as ``redis://host:6379/0`` there).

Proxies, request size, headers
------------------------------
Behind a reverse proxy the scheme comes from ``X-Forwarded-Proto`` (werkzeug
``ProxyFix``, ``x_proto=1``), so cookies get ``Secure`` when the proxy speaks
https, with no setting. The client address is the TCP peer's: an
``X-Forwarded-For`` header is trusted only when ``GRIDMAP_TRUSTED_PROXIES``
names how many proxies stand in front (e.g. ``1``), because the address
limit keys on it and a client could otherwise pick any address per request.
Request bodies are limited to ``GRIDMAP_MAX_REQUEST_MB`` (default 2 MB;
the app has no uploads, and its largest callback body, the planner's
proposal, is far below): bigger ones get **413** with a bilingual JSON
message, unread. ``/favicon.ico`` is an icon (never the app page), and no
response names the server software (``Server: gridmap``).

Dashboard code calls :func:`current_user` (the signed-in
:class:`gridmap.access.User`, with its :class:`~gridmap.access.Scope`),
:func:`csrf_token`, :func:`logout_button` and :func:`log_access`.
"""

from __future__ import annotations

import hmac
import html
import os
import pkgutil
import secrets
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import dash
import flask
from flask import Response, g, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter, RequestLimit
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import WSGIRequestHandler

from gridmap.access import (
    RateLimited,
    User,
    audit,
    audit_name,
    authenticate,
    end_user_sessions,
    load_user_by_id,
    session_secret,
    session_user_id,
    start_session,
)
from gridmap.access.sessions import token_hash
from gridmap.access.tokens import token_user
from gridmap.access.users import create_demo_users
from gridmap.store.db import DatabaseUnavailable

__all__ = [
    "QuietRequestHandler", "client_address", "create_demo_users", "csrf_token", "current_user", "install_auth",
    "is_installed",
    "log_access", "logout_button",
]

SESSION_COOKIE = "gridmap_session"
#: Cookie Dash's renderer reads the CSRF token from (dash's ``csrf_token_name`` default).
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Served without a session (the app's own CSS/JS; Dash's scripts, which name its version, need one).
_PUBLIC_PREFIXES = ("/assets/",)
#: Keep their own cache headers (everything else is ``no-store``).
_STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
_PUBLIC = frozenset({"/login", "/healthz", "/favicon.ico", "/_favicon.ico", "/api/v1/openapi.json"})
_API_PREFIXES = ("/_dash-", "/gm-layers/", "/api/")
#: Where an ``Authorization: Bearer`` API token is accepted (the read API only, never the dashboard).
_TOKEN_PREFIXES = ("/api/",)
#: Largest sign-in request accepted (the form is tiny; bigger bodies are refused unread).
MAX_LOGIN_BYTES = 16_384
#: Largest request body accepted by default (``GRIDMAP_MAX_REQUEST_MB``).
DEFAULT_MAX_REQUEST_MB = 2.0
#: Failed sign-ins allowed per client address by default (``GRIDMAP_LOGIN_LIMITS``).
DEFAULT_LOGIN_LIMITS = "10/minute;50/hour"
#: The ``Server`` header of every response (no software name or version).
SERVER_HEADER = "gridmap"
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


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's development server without its ``Server: Werkzeug/x Python/y`` header.

    :func:`install_auth` makes ``app.run`` use it; the app's own ``Server``
    header (:data:`SERVER_HEADER`) is then the only one.
    """

    def version_string(self) -> str:
        """The server's name as sent in error pages written by the server itself."""
        return SERVER_HEADER

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and a ``Date`` header (no ``Server`` header: the app sends its own)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


class _State:
    """The store, and the users of open sessions read from it (per session, for a few seconds)."""

    def __init__(self, engine: Engine, cache_seconds: float, idle: timedelta) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self.idle = idle
        self._users: dict[str, tuple[float, User | None]] = {}
        self._lock = threading.Lock()
        self._limited_audit: dict[str, float] = {}

    def session_user(self, token: str) -> User | None:
        """The user of the open session ``token`` (the session row is checked at every call)."""
        uid = session_user_id(self.engine, token, idle=self.idle)
        key = token_hash(token)
        if uid is None:
            with self._lock:
                self._users.pop(key, None)
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._users.get(key)
            if hit is not None and hit[0] > now and hit[1] is not None and hit[1].id == uid:
                return hit[1]
        u = load_user_by_id(self.engine, uid)
        with self._lock:
            self._users[key] = (now + self.cache_seconds, u)
            if len(self._users) > 10_000:
                self._users.clear()
        return u

    def forget(self, uid: int) -> None:
        """Drop the cached records of user ``uid`` (read again at the next request)."""
        with self._lock:
            for key in [k for k, (_, u) in self._users.items() if u is None or u.id == uid]:
                del self._users[key]

    def audit_limited_once(self, client: str, every: float = 60.0) -> bool:
        """Whether to audit an address-limit refusal for ``client`` now (at most once a minute each)."""
        now = time.monotonic()
        with self._lock:
            if self._limited_audit.get(client, 0.0) > now:
                return False
            if len(self._limited_audit) > 10_000:
                self._limited_audit.clear()
            self._limited_audit[client] = now + every
            return True


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
    """Where the current request came from: the TCP peer, or the forwarded address when
    ``GRIDMAP_TRUSTED_PROXIES`` says proxies stand in front (see the module docstring)."""
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
    if request.path.startswith(_TOKEN_PREFIXES):
        return (flask.jsonify(error="not signed in: send the session cookie or an Authorization: Bearer token",
                              error_zh="未登录或登录已过期，或接口令牌无效：请登录或提供 Bearer 令牌"),
                401, {"WWW-Authenticate": 'Bearer realm="gridmap"'})
    if _is_api(request.path):
        return flask.jsonify(error="not signed in", error_zh="未登录或登录已过期，请重新登录"), 401
    target = request.full_path if request.query_string else request.path
    return redirect("/login?next=" + quote(_safe_next(target), safe="/"), code=302)


def _read_only() -> Response:
    return (flask.jsonify(error=f"method {request.method} not allowed: the API is read-only (GET)",
                          error_zh=f"不支持 {request.method} 请求：接口只读（仅 GET）"), 405, {"Allow": "GET, HEAD"})


def _forbidden() -> Response:
    return flask.jsonify(error="missing or wrong CSRF token", error_zh="请求缺少或带有错误的安全令牌，请刷新页面"), 403


def _too_large(limit: int) -> Response:
    mb = f"{limit / 1_048_576:g}"
    return flask.jsonify(error=f"request too large (at most {mb} MB)", error_zh=f"请求过大（最多{mb} MB）"), 413


def _favicon(server: flask.Flask) -> Response:
    """The app's ``assets/favicon.ico`` if it has one, else Dash's icon (never a page)."""
    own = Path(server.root_path) / "assets" / "favicon.ico"
    try:
        body = own.read_bytes() if own.is_file() else pkgutil.get_data("dash", "favicon.ico")
    except OSError:
        body = None
    if not body:
        return Response(status=204)
    return Response(body, mimetype="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        raise ValueError(f"{name} must be a number / {name} 须为数字") from None


# ------------------------------------------------------------------ installation


def install_auth(app: dash.Dash, engine: Engine, *, secret_key: str | bytes | None = None,
                 secure_cookies: bool | None = None, session_hours: float = 8.0,
                 session_idle_minutes: float = 120.0, user_cache_seconds: float = 5.0,
                 login_limits: str | None = None, ratelimit_storage: str | None = None,
                 trusted_proxies: int | None = None, max_request_mb: float | None = None) -> None:
    """Require sign-in on every route of ``app`` (see the module docstring).

    Parameters
    ----------
    app
        The Dash app (its Flask server is ``app.server``).
    engine
        The store holding the users, the sessions and the audit log.
    secret_key
        Cookie-signing key; default :func:`gridmap.access.session_secret`
        (``GRIDMAP_SECRET_KEY``, or random per process with a warning).
    secure_cookies
        Force the cookies' Secure flag on or off; default ``GRIDMAP_SECURE_COOKIES``
        (``1``/``0``) or, when unset, Secure exactly when the request came over
        https (directly or, per ``X-Forwarded-Proto``, through a proxy).
    session_hours
        Session lifetime.
    session_idle_minutes
        A session unused this long ends.
    user_cache_seconds
        How long a user read from the store is reused within one session.
    login_limits
        Failed sign-ins allowed per client address (flask-limiter notation);
        default ``GRIDMAP_LOGIN_LIMITS`` or :data:`DEFAULT_LOGIN_LIMITS`.
    ratelimit_storage
        Where the limiter counts (``memory://``, per process; ``redis://…``
        shared by workers); default ``GRIDMAP_RATELIMIT_STORAGE`` or ``memory://``.
    trusted_proxies
        How many proxies in front may set ``X-Forwarded-For`` (the client
        address); default ``GRIDMAP_TRUSTED_PROXIES`` or 0 (the TCP peer).
    max_request_mb
        Largest request body; default ``GRIDMAP_MAX_REQUEST_MB`` or 2.
    """
    server: flask.Flask = app.server
    if _EXT in server.extensions:  # installed already (idempotent)
        return
    if secure_cookies is None and os.environ.get("GRIDMAP_SECURE_COOKIES") in ("0", "1"):
        secure_cookies = os.environ["GRIDMAP_SECURE_COOKIES"] == "1"
    if trusted_proxies is None:
        trusted_proxies = int(_env_float("GRIDMAP_TRUSTED_PROXIES", 0))
    max_bytes = int((max_request_mb if max_request_mb is not None
                     else _env_float("GRIDMAP_MAX_REQUEST_MB", DEFAULT_MAX_REQUEST_MB)) * 1_048_576)
    limits = login_limits or os.environ.get("GRIDMAP_LOGIN_LIMITS") or DEFAULT_LOGIN_LIMITS
    storage = ratelimit_storage or os.environ.get("GRIDMAP_RATELIMIT_STORAGE") or "memory://"

    # the scheme from the proxy (Secure cookies behind https); the address only from trusted proxies
    server.wsgi_app = ProxyFix(server.wsgi_app, x_for=max(0, trusted_proxies), x_proto=1)  # type: ignore[method-assign]
    server.secret_key = secret_key or session_secret()
    server.session_interface = _Sessions()
    server.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
        GRIDMAP_SECURE_COOKIES=secure_cookies,
        MAX_CONTENT_LENGTH=max_bytes,
    )
    state = _State(engine, user_cache_seconds, timedelta(minutes=session_idle_minutes))
    server.extensions[_EXT] = state
    limiter = Limiter(key_func=lambda: client_address() or "?", app=server, storage_uri=storage,
                      strategy="moving-window", key_prefix="gridmap-login", headers_enabled=False)

    @server.before_request
    def _guard() -> Any:
        g.gridmap_user = None
        path = request.path
        unsafe = request.method not in _SAFE
        if (request.content_length or 0) > max_bytes:
            return _too_large(max_bytes)
        if path in _PUBLIC or path.startswith(_PUBLIC_PREFIXES):
            if path == "/login" and unsafe and (request.content_length or 0) > MAX_LOGIN_BYTES:
                return flask.jsonify(error="request too large", error_zh="请求过大"), 413
            if unsafe and path.startswith(_TOKEN_PREFIXES):
                return _read_only()
            if unsafe and not _csrf_ok():
                return _forbidden()
            return None
        token = session.get("sid")
        user = None
        bearer = request.headers.get("Authorization") if path.startswith(_TOKEN_PREFIXES) else None
        try:
            if bearer is not None:  # a machine with an API token (gridmap.access.tokens); never the cookie then
                scheme, _, value = bearer.partition(" ")
                found = token_user(engine, value.strip()) if scheme.lower() == "bearer" else None
                user, g.gridmap_token_id = found if found is not None else (None, None)
            elif isinstance(token, str):
                user = state.session_user(token)
        except _DB_DOWN:
            return flask.jsonify(error="database unavailable", error_zh="数据库暂时无法连接"), 503
        if user is None or user.disabled:
            if session:
                session.clear()
            return _unauthorised()
        if unsafe and path.startswith(_TOKEN_PREFIXES):  # the read API is read-only: 405 before any CSRF check
            return _read_only()
        if unsafe and not _csrf_ok():
            return _forbidden()
        g.gridmap_user = user
        return None

    @server.errorhandler(RequestEntityTooLarge)
    def _too_large_body(_exc: RequestEntityTooLarge) -> Response:
        return _too_large(max_bytes)

    @server.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Server"] = SERVER_HEADER  # never "Werkzeug/x Python/y"
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith(_STATIC_PREFIXES) and not request.path.startswith("/gm-layers/") \
                and request.path != "/favicon.ico":
            resp.headers["Cache-Control"] = "no-store"
        tok = session.get("csrf")
        if tok and request.cookies.get(CSRF_COOKIE) != tok:
            resp.set_cookie(CSRF_COOKIE, tok, httponly=False, samesite="Strict", path="/",
                            secure=server.session_interface.get_cookie_secure(server),
                            max_age=int(session_hours * 3600))
        return resp

    flask_run = server.run

    def _run(*args: Any, **kwargs: Any) -> None:  # app.run / gridmap serve: no version in the Server header
        kwargs.setdefault("request_handler", QuietRequestHandler)
        flask_run(*args, **kwargs)

    server.run = _run  # type: ignore[method-assign]

    if not any(r.rule == "/favicon.ico" for r in server.url_map.iter_rules()):
        server.add_url_rule("/favicon.ico", "gridmap_favicon", lambda: _favicon(server))

    def _address_limited(_limit: RequestLimit) -> Response:
        client = client_address() or ""
        if state.audit_limited_once(client):
            try:
                audit(engine, audit_name(engine, request.form.get("username", "")), "login_limited", "app_user",
                      None, client, {"limit": "address"})
            except _DB_DOWN:
                pass
        return _login_page("登录尝试过于频繁，请稍后再试 / Too many sign-in attempts from this address; "
                           "try again later", "", 429)

    @server.route("/login", methods=["GET", "POST"])
    @limiter.limit(limits, methods=["POST"], deduct_when=lambda r: r.status_code in (401, 429),
                   on_breach=_address_limited)
    def login() -> Any:
        if request.method == "GET":
            return _login_page()
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        try:
            user = authenticate(engine, username, password, client_address())
        except RateLimited as exc:
            return _login_page(exc.message_zh, username, 429)
        except _DB_DOWN:
            return _login_page("数据库暂时无法连接，请稍后再试", username, 503)
        if user is None:
            return _login_page("用户名或密码错误，或账号已停用", username, 401)
        nxt = _safe_next(request.form.get("next"))
        try:
            token = start_session(engine, user.id, client_address(), lifetime=timedelta(hours=session_hours))
        except _DB_DOWN:
            return _login_page("数据库暂时无法连接，请稍后再试", username, 503)
        session.clear()  # a new session (no fixation): new session token and CSRF token
        session.permanent = True
        session["sid"] = token
        csrf_token()
        state.forget(user.id)
        return redirect(nxt, code=303)

    @server.route("/logout", methods=["POST"])
    def logout() -> Any:
        user = g.get("gridmap_user")
        if user is not None:  # the guard let this request in: its session is open
            ended = end_user_sessions(engine, user.id, "logout")
            state.forget(user.id)
            audit(engine, user, "logout", "app_user", user.id, client_address(), {"sessions_ended": ended})
        session.clear()
        resp = redirect("/login", code=303)
        resp.delete_cookie(CSRF_COOKIE, path="/")
        return resp
