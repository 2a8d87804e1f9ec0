"""The OpenAPI 3 description of the read API (served at ``/api/v1/openapi.json``), written by hand.

Kept beside the endpoints (:mod:`gridmap.api.views`) and checked by the tests
with ``openapi-spec-validator``; the parameters named here are exactly those
:mod:`gridmap.api.figures` accepts (any other is a 400).
"""

from __future__ import annotations

import copy
from typing import Any

from gridmap.api.figures import DEFAULT_CHANGES, DEFAULT_OVERDUE_LIMIT, MAX_CHANGES, MAX_LIMIT
from gridmap.rules.indicators import LEVELS

__all__ = ["VERSION", "openapi_spec"]

#: Version of the API description (the path carries the major version, ``v1``).
VERSION = "1.0.0"

_ERR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_ERRORS = {
    "400": _resp("Unknown parameter, parameter given twice, or a bad value (week not YYYY-Www, unknown street or "
                 "level, a number out of range). 参数错误。", _ERR),
    "401": _resp("No session cookie and no valid bearer token (unknown, revoked, expired, user disabled or role "
                 "changed). 未登录或令牌无效。", _ERR),
    "405": _resp("Any method but GET/HEAD: the API is read-only. 接口只读。", _ERR),
    "503": _resp("The database is unavailable. 数据库暂时无法连接。", _ERR),
}
_ERRORS_STREET = {**_ERRORS, "403": _resp("The street is outside the caller's area. 街道不在权限范围内。", _ERR)}

_WEEK = {"name": "week", "in": "query", "required": True,
         "description": "ISO week, e.g. 2026-W49 (YYYY-Www). ISO 周次。",
         "schema": {"type": "string", "pattern": r"^[0-9]{4}-[Ww][0-9]{2}$", "example": "2026-W49"}}
_STREET = {"name": "street", "in": "query", "required": False,
           "description": "A street's full name (e.g. 学院路街道); default every street the caller sees. It must be "
                          "within the caller's area (else 403).",
           "schema": {"type": "string", "example": "学院路街道"}}


def _rate(desc: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": "#/components/schemas/Rate"}], "description": desc}


_SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "gridmap read API · 海淀区特殊困难老年人探访关爱 数据接口",
        "version": VERSION,
        "description": (
            "Read-only JSON for other systems (the district data bureau's platform, the 12345 hotline system, BI "
            "tools). The figures are those of `gridmap report` and the dashboard's cards for the same week and "
            "street (the same functions compute them). Every answer is cut to the caller's area (its user's role "
            "and scope); personal fields are masked; every call is audited (action `api`).\n\n"
            "Authenticate with the dashboard's session cookie, or with `Authorization: Bearer <token>` from "
            "`gridmap users token NAME [--expires DAYS]` (listed by `gridmap users tokens`, revoked by "
            "`gridmap users token-revoke ID`)."),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    "paths": {
        "/api/v1/indicators": {"get": {
            "operationId": "getIndicators",
            "summary": "Indicators of a week per area (周探访率、月有效探访率、逾期探访、未整改隐患、待处理转介…)",
            "description": "One row per unit of `level`, laggards first (lowest weekly rate, then most overdue), "
                           "as `gridmap report`. Level `district` gives one row, area 海淀区 (over the elders "
                           "the caller sees). Default level: `district` without `street`, `street` with it.",
            "parameters": [
                _WEEK, _STREET,
                {"name": "level", "in": "query", "required": False,
                 "description": "Unit of the rows; default `district` without street, `street` with one.",
                 "schema": {"type": "string", "enum": list(LEVELS)}},
            ],
            "responses": {"200": _resp("The indicators.", {"$ref": "#/components/schemas/Indicators"}),
                          **_ERRORS_STREET},
        }},
        "/api/v1/overdue": {"get": {
            "operationId": "getOverdue",
            "summary": "Elders overdue for a visit at the end of the week (masked), most overdue first",
            "description": "As many items in all (`total`) as the `overdue` figure of `/indicators` for the same "
                           "week and street. `elder_id` is the id `gridmap visits record` takes.",
            "parameters": [
                _WEEK, _STREET,
                {"name": "limit", "in": "query", "required": False, "description": "Most items returned.",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_OVERDUE_LIMIT}},
                {"name": "offset", "in": "query", "required": False, "description": "Items skipped first.",
                 "schema": {"type": "integer", "minimum": 0, "default": 0}},
            ],
            "responses": {"200": _resp("Overdue elders.", {"$ref": "#/components/schemas/Overdue"}),
                          **_ERRORS_STREET},
        }},
        "/api/v1/changes": {"get": {
            "operationId": "getChanges",
            "summary": "The change feed: writes after sequence number `since` (imports, visits, plans, grids…)",
            "description": "Poll with `since` = the previous answer's `next_since`. A caller who does not see the "
                           "whole district gets the changes naming a street of their area or an elder they see, "
                           "with the streets and elder ids cut to those.",
            "parameters": [
                {"name": "since", "in": "query", "required": False,
                 "description": "Changes with a larger sequence number (default 0: from the start).",
                 "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "required": False, "description": "Most changes read.",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES, "default": DEFAULT_CHANGES}},
            ],
            "responses": {"200": _resp("Changes.", {"$ref": "#/components/schemas/Changes"}), **_ERRORS},
        }},
        "/api/v1/openapi.json": {"get": {
            "operationId": "getOpenapi",
            "summary": "This description (no authentication needed)",
            "security": [],
            "responses": {"200": _resp("The OpenAPI 3 description.", {"type": "object"}), "405": _ERRORS["405"]},
        }},
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "A token from `gridmap users token NAME`: the user's role and area."},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "gridmap_session",
                              "description": "The dashboard's sign-in session (GET only, so no CSRF token)."},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error", "error_zh"], "properties": {
                "error": {"type": "string", "description": "English message"},
                "error_zh": {"type": "string", "description": "中文说明"},
                "field": {"type": "string", "nullable": True, "description": "The parameter at fault"},
                "code": {"type": "string", "description": "Machine-readable reason"},
            }},
            "Rate": {"type": "object", "required": ["value", "numerator", "denominator"], "properties": {
                "value": {"type": "number", "nullable": True, "minimum": 0, "maximum": 1,
                          "description": "numerator / denominator (null when the denominator is 0)"},
                "numerator": {"type": "integer", "minimum": 0},
                "denominator": {"type": "integer", "minimum": 0},
            }},
            "IndicatorRow": {"type": "object", "required": [
                "area", "elders", "willing", "weekly_rate", "monthly_rate", "overdue", "open_hazards",
                "pending_referrals"], "properties": {
                "area": {"type": "string", "description": "海淀区, a street, community, grid code or steward "
                                                          "`name（code）`"},
                "area_id": {"type": "integer", "nullable": True, "description": "Grid or steward id (those levels)"},
                "elders": {"type": "integer", "description": "在册老人 (in the programme)"},
                "willing": {"type": "integer", "description": "有意愿接受探访"},
                "weekly_rate": _rate("周探访率: willing elders visited effectively in the week / willing elders"),
                "monthly_rate": _rate("月有效探访率: elders with an effective visit in the week's month (up to "
                                      "its Sunday) / elders"),
                "overdue": {"type": "integer", "description": "逾期探访: elders overdue at the week's end"},
                "overdue_days_mean": {"type": "number", "nullable": True},
                "overdue_days_max": {"type": "number", "nullable": True},
                "open_hazards": {"type": "integer", "description": "未整改隐患 at the week's end"},
                "hazards_overdue": {"type": "integer"},
                "hazards_closed": {"type": "integer"},
                "hazard_days_to_close": {"type": "number", "nullable": True},
                "pending_referrals": {"type": "integer", "description": "待处理转介 at the week's end"},
                "referrals_overdue": {"type": "integer"},
                "visits": {"type": "integer", "description": "Visits in the week (any mode)"},
                "visits_by_mode": {"type": "object", "additionalProperties": {"type": "integer"}},
                "smoke_alarm_coverage": _rate("烟感覆盖率: elders with a smoke alarm / elders"),
                "terminal_coverage": _rate("一键式终端覆盖率: among elders 80+ and 计生特殊"),
                "missing_first_contact": {"type": "integer"},
                "missing_steward": {"type": "integer"},
                "missing_location": {"type": "integer"},
                "short_visits": {"type": "integer", "description": "过短上门探访"},
                "copied_answers": {"type": "integer", "description": "答案重复照抄"},
                "far_visits": {"type": "integer", "description": "定位偏离住址"},
                "followups": {"$ref": "#/components/schemas/FollowupMeasures"},
            }},
            "FollowupMeasures": {
                "type": "object",
                "description": "接诉即办 measures of the week as of today (levels district, street and community "
                               "only; the same figures as the report's sheet 隐患与转介)",
                "properties": {
                    "hazards_found": {"type": "integer", "description": "新发现隐患"},
                    "hazards_fixed": {"type": "integer", "description": "已整改"},
                    "fix_rate": {"type": "number", "nullable": True, "description": "整改率"},
                    "fix_days": {"type": "number", "nullable": True, "description": "平均整改天数"},
                    "hazards_overdue": {"type": "integer", "description": "逾期未整改"},
                    "referrals_new": {"type": "integer", "description": "新转介"},
                    "response_rate": {"type": "number", "nullable": True, "description": "响应率"},
                    "resolution_rate": {"type": "number", "nullable": True, "description": "解决率"},
                    "satisfaction_rate": {"type": "number", "nullable": True, "description": "满意率"},
                    "close_days": {"type": "number", "nullable": True, "description": "平均办结天数"},
                    "referrals_overdue": {"type": "integer", "description": "逾期转介"},
                    "escalated": {"type": "integer", "description": "已升级"},
                }},
            "Indicators": {"type": "object", "required": ["week", "level", "rows"], "properties": {
                "week": {"type": "string", "example": "2026-W49"},
                "street": {"type": "string", "nullable": True},
                "level": {"type": "string", "enum": list(LEVELS)},
                "rows": {"type": "array", "items": {"$ref": "#/components/schemas/IndicatorRow"}},
            }},
            "OverdueItem": {"type": "object", "required": ["elder_id", "name", "community", "steward",
                                                           "overdue_days"], "properties": {
                "elder_id": {"type": "integer", "description": "The store's elder id (as `gridmap visits record`)"},
                "name": {"type": "string", "nullable": True, "description": "Masked, e.g. 张*英"},
                "address": {"type": "string", "nullable": True, "description": "Masked"},
                "street": {"type": "string", "nullable": True},
                "community": {"type": "string", "nullable": True},
                "grid": {"type": "string", "nullable": True, "description": "Grid code"},
                "steward": {"type": "string", "nullable": True, "description": "探访管家 `name（code）`"},
                "steward_id": {"type": "integer", "nullable": True},
                "last_visit": {"type": "string", "format": "date", "nullable": True},
                "overdue_days": {"type": "integer"},
                "willing": {"type": "boolean"},
            }},
            "Overdue": {"type": "object", "required": ["week", "total", "items"], "properties": {
                "week": {"type": "string"},
                "street": {"type": "string", "nullable": True},
                "total": {"type": "integer"},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/OverdueItem"}},
            }},
            "Change": {"type": "object", "required": ["seq", "kind", "streets", "elders"], "properties": {
                "seq": {"type": "integer"},
                "at": {"type": "string", "format": "date-time", "nullable": True},
                "kind": {"type": "string", "description": "import, visit, plan, grid, steward…"},
                "streets": {"type": "array", "items": {"type": "string"}},
                "elders": {"type": "array", "items": {"type": "integer"}},
                "many": {"type": "boolean", "description": "The elder list was cut: the whole street(s) changed"},
            }},
            "Changes": {"type": "object", "required": ["since", "next_since", "items"], "properties": {
                "since": {"type": "integer"},
                "next_since": {"type": "integer", "description": "Pass as `since` next time"},
                "more": {"type": "boolean", "description": "`limit` changes were read: ask again at once"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
            }},
        },
    },
}


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3 description (a fresh copy)."""
    return copy.deepcopy(_SPEC)
