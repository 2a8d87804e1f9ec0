"""The HTTP layer of the read API: a Flask blueprint at ``/api/v1`` (GET only, JSON, every call audited).

Authentication is the dashboard's (:func:`gridmap.dashboard.auth.install_auth`):
its guard lets a request under ``/api/`` in with the session cookie or an
``Authorization: Bearer`` token (:mod:`gridmap.access.tokens`), answers 401
without either and 405 to any method but GET/HEAD/OPTIONS. Here each endpoint
checks its parameters (400 with a bilingual message naming the parameter,
403 for a street outside the caller's area), computes its answer with
:mod:`gridmap.api.figures` in the caller's scope, and writes one audit row
(action ``api``, the endpoint, the parameters, the rows returned, session or
token). ``/api/v1/openapi.json`` (:mod:`gridmap.api.openapi`) is public and holds no data.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import flask
from flask import Response, g, request
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from gridmap._errors import GridmapError
from gridmap.access import User, audit
from gridmap.api import figures
from gridmap.api.openapi import openapi_spec
from gridmap.rules.config import Rules, load_rules
from gridmap.store.db import DatabaseUnavailable

__all__ = ["API_PREFIX", "OPENAPI_PATH", "api_blueprint", "register_api"]

log = logging.getLogger("gridmap.api")
API_PREFIX = "/api/v1"
#: Served without a session (the description of the API holds no data).
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
_DB_DOWN = (DatabaseUnavailable, OperationalError, InterfaceError)


def _json(body: Any, status: int = 200) -> Response:
    """A JSON response with Chinese text as such (not ``\\u`` escapes)."""
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False), status=status,
                    mimetype="application/json")


def _client() -> str | None:
    return request.remote_addr


def _audit(engine: Engine, user: User, status: int, rows: int, error: str | None = None) -> None:
    """One audit row per call: action ``api``, entity = the endpoint."""
    detail: dict[str, Any] = {"rows": rows, "status": status,
                              "params": {k: v[:80] for k, v in request.args.items()},
                              "auth": "token" if g.get("gridmap_token_id") else "session"}
    if g.get("gridmap_token_id"):
        detail["token"] = int(g.gridmap_token_id)
    if error:
        detail["error"] = error
    try:
        audit(engine, user, "api", request.path, None, _client(), detail)
    except _DB_DOWN:
        log.warning("api call not audited: database unavailable")


def _handle(engine: Engine, compute: Callable[[User], tuple[dict[str, Any], int]]) -> Response:
    """Run one endpoint for the signed-in user: 401 without one, 400/403/503 bilingual, audited."""
    user: User | None = g.get("gridmap_user")
    if user is None or user.disabled:  # the guard lets no such request in; an app without sign-in has no API
        return _json({"error": "not signed in: send the session cookie or an Authorization: Bearer token",
                      "error_zh": "未登录或登录已过期，或接口令牌无效"}, 401)
    try:
        body, rows = compute(user)
    except figures.ApiError as exc:
        _audit(engine, user, exc.status, 0, exc.code)
        if exc.status == 403:
            try:
                audit(engine, user, "denied", "street", None, _client(), {"endpoint": request.path})
            except _DB_DOWN:
                pass
        return _json(exc.body(), exc.status)
    except _DB_DOWN:
        return _json({"error": "database unavailable", "error_zh": "数据库暂时无法连接"}, 503)
    except GridmapError as exc:  # a rule refused the request (e.g. a period the rules cannot compute)
        _audit(engine, user, 400, 0, type(exc).__name__)
        return _json({"error": exc.message_en, "error_zh": exc.message_zh, "field": getattr(exc, "field", None),
                      "code": getattr(exc, "code", "invalid")}, 400)
    _audit(engine, user, 200, rows)
    return _json(body)


class _Answers:
    """Answers kept per (endpoint, query, scope, last change sequence number): any write appends to the
    change feed (:mod:`gridmap.store.changes`), so a kept answer is served only while nothing was written."""

    def __init__(self, engine: Engine, size: int = 128) -> None:
        self.engine = engine
        self.size = size
        self._d: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        from gridmap.store.changes import latest_seq

        full = (key, latest_seq(self.engine))
        with self._lock:
            if full in self._d:
                self._d.move_to_end(full)
                return self._d[full]
        value = compute()
        with self._lock:
            self._d[full] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value


def api_blueprint(engine: Engine, rules: Rules | None = None) -> flask.Blueprint:
    """The read API's blueprint (register it on the dashboard's Flask server, see :func:`register_api`)."""
    rules = rules or load_rules()
    bp = flask.Blueprint("gridmap_api_v1", __name__, url_prefix=API_PREFIX)
    answers = _Answers(engine)

    @bp.get("/indicators")
    def indicators() -> Response:
        def compute(user: User) -> tuple[dict[str, Any], int]:
            q = figures.parse_indicators(request.args.to_dict(flat=False), engine, user)
            rows = answers.get(("indicators", q, user.scope),
                               lambda: figures.indicator_rows(engine, user, q, rules))
            return {"week": q.week, "street": q.street, "level": q.level, "rows": rows}, len(rows)

        return _handle(engine, compute)

    @bp.get("/overdue")
    def overdue() -> Response:
        def compute(user: User) -> tuple[dict[str, Any], int]:
            q = figures.parse_overdue(request.args.to_dict(flat=False), engine, user)
            items, total = answers.get(("overdue", q, user.scope),
                                       lambda: figures.overdue_items(engine, user, q, rules))
            return {"week": q.week, "street": q.street, "total": total, "offset": q.offset, "limit": q.limit,
                    "items": items}, len(items)

        return _handle(engine, compute)

    @bp.get("/changes")
    def changes() -> Response:
        def compute(user: User) -> tuple[dict[str, Any], int]:
            q = figures.parse_changes(request.args.to_dict(flat=False))
            items, last, more = figures.change_items(engine, user, q)
            return {"since": q.since, "next_since": last, "more": more, "items": items}, len(items)

        return _handle(engine, compute)

    @bp.get("/openapi.json")
    def openapi() -> Response:  # public (no data): nobody to audit
        return _json(openapi_spec())

    return bp


def register_api(server: flask.Flask, engine: Engine, rules: Rules | None = None) -> None:
    """Serve the read API at ``/api/v1`` on ``server`` (the Dash app's Flask server)."""
    server.register_blueprint(api_blueprint(engine, rules))
