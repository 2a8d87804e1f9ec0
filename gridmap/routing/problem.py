"""The planning problem of the JSON contract as plain typed objects, parsed and validated with bilingual errors.

A problem is a dict (JSON) of ``days``, ``stewards``, ``visits`` and an
optional ``matrix`` (see the README). :func:`parse_problem` turns it into a
:class:`Problem` whose times are integer seconds since 00:00 and whose days
are :class:`datetime.date`; every error names the offending field, e.g.
``visits[3].time_windows[0]``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap._errors import ValidationError

MODES: tuple[str, ...] = ("walk", "bike", "ebike", "car")
OBJECTIVES: tuple[str, ...] = ("travel_seconds", "distance_metres")
#: Beyond this many day combinations per visit, only the first ones (in date order) are kept.
MAX_PATTERNS = 2000
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass
class Steward:
    """One steward (a vehicle on each of its working days).

    Attributes
    ----------
    id
        Identifier.
    start, end
        Indices of the start and end locations in the problem's matrix.
    shift
        ``(start, end)`` in seconds since 00:00.
    max_work_seconds
        Travel + service per day (default: the shift length).
    mode
        Travel mode.
    days
        Indices into ``Problem.days`` this steward works.
    capacity
        Maximum load per day (``None``: unlimited).
    """

    id: str
    start: int
    end: int
    shift: tuple[int, int]
    max_work_seconds: int
    mode: str
    days: list[int]
    capacity: int | None = None


@dataclass
class Visit:
    """A visit to one elder, required ``count`` times in the period.

    Attributes
    ----------
    id
        Identifier (the elder).
    location
        Index in the matrix.
    service_seconds
        Time on site.
    count
        Required occurrences.
    min_gap_days
        Minimum days between occurrences.
    days
        Allowed day indices.
    patterns
        Allowed combinations of day indices (each sorted, ``count`` long);
        derived from ``days``/``min_gap_days`` unless ``day_patterns`` was given.
    time_windows
        Allowed service start intervals in seconds (empty: any time in the shift).
    priority
        1 (low) .. 5 (highest).
    steward
        Fixed steward id, if any (the preferred one of a joint plan: see ``allowed``).
    demand
        Load of one occurrence.
    allowed
        Joint plans (one community's visit steward, service stewards and other credited visitors planned
        together): the stewards allowed to make the visit, when the problem gives ``steward`` as a list
        ``["S1", "S2"]`` (the first preferred) or an object ``{"allowed": [...], "preferred": "S1"}``;
        empty for a single fixed steward or none.
    preferred
        The steward preferred for continuity (the elder's own visit steward) in a joint plan.
    """

    id: str
    location: int
    service_seconds: int
    count: int = 1
    min_gap_days: int = 1
    days: list[int] = field(default_factory=list)
    patterns: list[tuple[int, ...]] = field(default_factory=list)
    time_windows: list[tuple[int, int]] = field(default_factory=list)
    priority: int = 3
    steward: str | None = None
    demand: int = 0
    explicit_patterns: bool = False
    allowed: list[str] = field(default_factory=list)
    preferred: str | None = None


@dataclass
class Problem:
    """A weekly (or any period) planning problem.

    Attributes
    ----------
    days
        The planning days.
    stewards, visits
        See :class:`Steward`, :class:`Visit`.
    points
        ``[lon, lat]`` of each matrix index when coordinates were given (else empty).
    seconds, metres
        Travel matrices (lists of lists) when given in the problem, else ``None``
        (computed from the road network by :func:`gridmap.routing.matrix.problem_matrix`).
    objective
        ``"travel_seconds"`` (default) or ``"distance_metres"``.
    """

    days: list[dt.date]
    stewards: list[Steward]
    visits: list[Visit]
    points: list[tuple[float, float]] = field(default_factory=list)
    seconds: list[list[float]] | None = None
    metres: list[list[float]] | None = None
    objective: str = "travel_seconds"

    @property
    def has_matrix(self) -> bool:
        """True when the problem carried its own matrix."""
        return self.seconds is not None

    def day_str(self, d: int) -> str:
        """The ISO date of day index ``d``."""
        return self.days[d].isoformat()


# ------------------------------------------------------------------ helpers


def _err(field_: str, en: str, zh: str, value: object = None, code: str = "invalid") -> ValidationError:
    return ValidationError(en, zh, field=field_, value=value, code=code)


def parse_time(value: object, field_: str) -> int:
    """Parse ``"HH:MM"``, ``"HH:MM:SS"`` or integer seconds since 00:00 into seconds.

    Parameters
    ----------
    value
        The value as given.
    field_
        Field name for the error message.

    Returns
    -------
    int
        Seconds since 00:00 (may exceed 24 h for integer input).
    """
    if isinstance(value, bool):
        raise _err(field_, "a time must be \"HH:MM\" or integer seconds", "时间须为“HH:MM”或整数秒", value, "time")
    if isinstance(value, int):
        if value < 0:
            raise _err(field_, "a time cannot be negative", "时间不能为负数", value, "time")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m:
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if h <= 47 and mi < 60 and s < 60:
                return h * 3600 + mi * 60 + s
    raise _err(field_, f"a time must be \"HH:MM\" or integer seconds, got {value!r}",
               f"时间须为“HH:MM”或整数秒，实际为 {value!r}", value, "time")


def format_time(seconds: float) -> str:
    """Seconds since 00:00 as ``"HH:MM"`` (or ``"HH:MM:SS"`` when not a whole minute)."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}" if sec == 0 else f"{h:02d}:{m:02d}:{sec:02d}"


def _int(value: object, field_: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise _err(field_, f"must be an integer, got {value!r}", f"须为整数，实际为 {value!r}", value, "type")
    v = int(value)
    if lo is not None and v < lo:
        raise _err(field_, f"must be at least {lo}, got {v}", f"不能小于 {lo}，实际为 {v}", value, "range")
    if hi is not None and v > hi:
        raise _err(field_, f"must be at most {hi}, got {v}", f"不能大于 {hi}，实际为 {v}", value, "range")
    return v


def _number(value: object, field_: str, lo: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(field_, f"must be a finite number, got {value!r}", f"须为有限数值，实际为 {value!r}", value, "type")
    if lo is not None and value < lo:
        raise _err(field_, f"must be at least {lo}, got {value}", f"不能小于 {lo}，实际为 {value}", value, "range")
    return float(value)


def _list(value: object, field_: str, nonempty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise _err(field_, f"must be a list, got {type(value).__name__}", f"须为列表，实际为 {type(value).__name__}",
                   value, "type")
    if nonempty and not value:
        raise _err(field_, "must not be empty", "不能为空", value, "empty")
    return value


def _str(value: object, field_: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(field_, f"must be a non-empty string, got {value!r}", f"须为非空字符串，实际为 {value!r}", value, "type")
    return value


def _lonlat(value: object, field_: str) -> tuple[float, float]:
    v = _list(value, field_)
    if len(v) != 2:
        raise _err(field_, "must be [lon, lat]", "须为 [经度, 纬度]", value, "lonlat")
    lon, lat = _number(v[0], f"{field_}[0]"), _number(v[1], f"{field_}[1]")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise _err(field_, f"[{lon}, {lat}] is not a longitude/latitude pair", f"[{lon}, {lat}] 不是经纬度", value, "lonlat")
    return lon, lat


def _interval(value: object, field_: str) -> tuple[int, int]:
    v = _list(value, field_)
    if len(v) != 2:
        raise _err(field_, "must be [start, end]", "须为 [开始, 结束]", value, "interval")
    a, b = parse_time(v[0], f"{field_}[0]"), parse_time(v[1], f"{field_}[1]")
    if b < a:
        raise _err(field_, f"ends before it starts ({v[0]} > {v[1]})", f"结束早于开始（{v[0]} > {v[1]}）", value, "interval")
    return a, b


def _check_keys(obj: dict[str, Any], allowed: set[str], field_: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _err(f"{field_}.{extra[0]}", f"unknown field {extra[0]!r}; allowed: {sorted(allowed)}",
                   f"未知字段 {extra[0]!r}；允许的字段：{sorted(allowed)}", obj[extra[0]], "unknown_field")


def _patterns_from_gap(days: Sequence[int], dates: Sequence[dt.date], count: int, gap: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for combo in itertools.combinations(sorted(days), count):
        if all((dates[b] - dates[a]).days >= gap for a, b in zip(combo[:-1], combo[1:])):
            out.append(combo)
            if len(out) >= MAX_PATTERNS:
                break
    return out


# ------------------------------------------------------------------ parse


_STEWARD_KEYS = {"id", "start", "end", "start_index", "end_index", "shift", "max_work_minutes", "mode", "days",
                 "capacity"}
_VISIT_KEYS = {"id", "location", "location_index", "service_minutes", "count", "min_gap_days", "days",
               "day_patterns", "time_windows", "priority", "steward", "demand"}
_TOP_KEYS = {"days", "stewards", "visits", "matrix", "objective"}


def parse_problem(data: dict[str, Any] | str | Path) -> Problem:
    """Validate a problem (dict, JSON text or path) and return it as a :class:`Problem`.

    Parameters
    ----------
    data
        The problem in the JSON contract.

    Returns
    -------
    Problem

    Raises
    ------
    ValidationError
        On the first malformed field, naming it (``visits[3].time_windows[0]``).
    """
    if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        try:
            data = json.loads(Path(data).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise _err("problem", f"cannot read the problem JSON: {exc}", f"无法读取问题 JSON：{exc}", str(data),
                       "json") from exc
    elif isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise _err("problem", f"not valid JSON: {exc}", f"不是有效的 JSON：{exc}", None, "json") from exc
    if not isinstance(data, dict):
        raise _err("problem", "the problem must be a JSON object", "问题须为 JSON 对象", None, "type")
    _check_keys(data, _TOP_KEYS, "problem")
    for key in ("days", "stewards", "visits"):
        if key not in data:
            raise _err(key, "is required", "为必填项", None, "required")

    # days
    days: list[dt.date] = []
    for i, d in enumerate(_list(data["days"], "days", nonempty=True)):
        try:
            days.append(dt.date.fromisoformat(_str(d, f"days[{i}]")))
        except ValueError as exc:
            raise _err(f"days[{i}]", f"not a date YYYY-MM-DD: {d!r}", f"不是日期 YYYY-MM-DD：{d!r}", d, "date") from exc
    if len(set(days)) != len(days):
        raise _err("days", "days repeat", "日期重复", data["days"], "duplicate")
    order = sorted(range(len(days)), key=lambda i: days[i])
    if order != list(range(len(days))):
        raise _err("days", "days must be in date order", "日期须按先后排列", data["days"], "order")
    day_index = {d.isoformat(): i for i, d in enumerate(days)}

    def day_list(value: object, field_: str) -> list[int]:
        out = []
        for j, d in enumerate(_list(value, field_)):
            key = _str(d, f"{field_}[{j}]")
            try:
                key = dt.date.fromisoformat(key).isoformat()
            except ValueError as exc:
                raise _err(f"{field_}[{j}]", f"not a date YYYY-MM-DD: {d!r}", f"不是日期 YYYY-MM-DD：{d!r}", d,
                           "date") from exc
            if key not in day_index:
                raise _err(f"{field_}[{j}]", f"{d} is not one of the planning days", f"{d} 不在计划日期内", d, "day")
            out.append(day_index[key])
        if len(set(out)) != len(out):
            raise _err(field_, "days repeat", "日期重复", value, "duplicate")
        return sorted(out)

    # matrix
    seconds = metres = None
    size: int | None = None
    if data.get("matrix") is not None:
        m = data["matrix"]
        if not isinstance(m, dict):
            raise _err("matrix", "must be an object with seconds and metres", "须为含 seconds 与 metres 的对象", None, "type")
        _check_keys(m, {"seconds", "metres"}, "matrix")
        if "seconds" not in m:
            raise _err("matrix.seconds", "is required when a matrix is given", "给出矩阵时为必填项", None, "required")
        seconds = _square(m["seconds"], "matrix.seconds")
        size = len(seconds)
        if m.get("metres") is not None:
            metres = _square(m["metres"], "matrix.metres")
            if len(metres) != size:
                raise _err("matrix.metres", f"has {len(metres)} rows but matrix.seconds has {size}",
                           f"有 {len(metres)} 行，而 matrix.seconds 有 {size} 行", None, "shape")
        else:
            metres = [[0.0] * size for _ in range(size)]

    points: list[tuple[float, float]] = []
    point_of: dict[tuple[float, float], int] = {}

    def location(obj: dict[str, Any], key: str, field_: str) -> int:
        idx_key = f"{key}_index"
        if idx_key in obj and obj[idx_key] is not None:
            if size is None:
                raise _err(f"{field_}.{idx_key}", "an index needs a matrix in the problem", "使用索引时须提供 matrix",
                           obj[idx_key], "needs_matrix")
            return _int(obj[idx_key], f"{field_}.{idx_key}", 0, size - 1)
        if key not in obj or obj[key] is None:
            raise _err(f"{field_}.{key}", f"is required ([lon, lat] or {idx_key})", f"为必填项（[经度, 纬度] 或 {idx_key}）",
                       None, "required")
        if size is not None:
            raise _err(f"{field_}.{key}", f"with a matrix, give {idx_key} instead of coordinates",
                       f"给出矩阵时请用 {idx_key} 而非坐标", obj[key], "needs_index")
        p = _lonlat(obj[key], f"{field_}.{key}")
        if p not in point_of:
            point_of[p] = len(points)
            points.append(p)
        return point_of[p]

    # stewards
    stewards: list[Steward] = []
    seen: set[str] = set()
    for i, s in enumerate(_list(data["stewards"], "stewards", nonempty=True)):
        f = f"stewards[{i}]"
        if not isinstance(s, dict):
            raise _err(f, "must be an object", "须为对象", s, "type")
        _check_keys(s, _STEWARD_KEYS, f)
        sid = _str(s.get("id"), f"{f}.id")
        if sid in seen:
            raise _err(f"{f}.id", f"duplicate steward id {sid!r}", f"管家编号 {sid!r} 重复", sid, "duplicate")
        seen.add(sid)
        start = location(s, "start", f)
        end = location(s, "end", f) if (s.get("end") is not None or s.get("end_index") is not None) else start
        if "shift" not in s:
            raise _err(f"{f}.shift", "is required", "为必填项", None, "required")
        shift = _interval(s["shift"], f"{f}.shift")
        mw = s.get("max_work_minutes")
        max_work = shift[1] - shift[0] if mw is None else int(round(_number(mw, f"{f}.max_work_minutes", 0) * 60))
        mode = s.get("mode", "walk")
        if mode not in MODES:
            raise _err(f"{f}.mode", f"unknown mode {mode!r}; use one of {MODES}", f"未知出行方式 {mode!r}，可选 {MODES}",
                       mode, "mode")
        sdays = day_list(s["days"], f"{f}.days") if s.get("days") is not None else list(range(len(days)))
        cap = None if s.get("capacity") is None else _int(s["capacity"], f"{f}.capacity", 0)
        stewards.append(Steward(sid, start, end, shift, max_work, mode, sdays, cap))
    steward_ids = {s.id for s in stewards}

    # visits
    visits: list[Visit] = []
    seen = set()
    for i, v in enumerate(_list(data["visits"], "visits")):
        f = f"visits[{i}]"
        if not isinstance(v, dict):
            raise _err(f, "must be an object", "须为对象", v, "type")
        _check_keys(v, _VISIT_KEYS, f)
        vid = _str(v.get("id"), f"{f}.id")
        if vid in seen:
            raise _err(f"{f}.id", f"duplicate visit id {vid!r}", f"探访编号 {vid!r} 重复", vid, "duplicate")
        seen.add(vid)
        loc = location(v, "location", f)
        service = int(round(_number(v.get("service_minutes", 0), f"{f}.service_minutes", 0) * 60))
        count = _int(v.get("count", 1), f"{f}.count", 1, len(days))
        gap = _int(v.get("min_gap_days", 1), f"{f}.min_gap_days", 0)
        if count > 1:
            gap = max(gap, 1)
        vdays = day_list(v["days"], f"{f}.days") if v.get("days") is not None else list(range(len(days)))
        explicit = v.get("day_patterns") is not None
        if explicit:
            patterns = []
            for j, p in enumerate(_list(v["day_patterns"], f"{f}.day_patterns", nonempty=True)):
                pd_ = day_list(p, f"{f}.day_patterns[{j}]")
                if len(pd_) != count:
                    raise _err(f"{f}.day_patterns[{j}]", f"has {len(pd_)} days but count is {count}",
                               f"含 {len(pd_)} 天，但 count 为 {count}", p, "pattern")
                patterns.append(tuple(pd_))
            patterns = list(dict.fromkeys(patterns))
        else:
            patterns = _patterns_from_gap(vdays, days, count, gap)
        windows: list[tuple[int, int]] = []
        for j, w in enumerate(_list(v.get("time_windows") or [], f"{f}.time_windows")):
            windows.append(_interval(w, f"{f}.time_windows[{j}]"))
        windows.sort()
        for j in range(1, len(windows)):
            if windows[j][0] <= windows[j - 1][1]:
                raise _err(f"{f}.time_windows", "time windows overlap", "时间窗重叠", v.get("time_windows"), "overlap")
        prio = _int(v.get("priority", 3), f"{f}.priority", 1, 5)
        st = v.get("steward")
        allowed, preferred = _allowed_stewards(st, f"{f}.steward", steward_ids)
        if allowed:  # a joint plan: the solver is told the preferred steward only after assignment (joint.py)
            st = None
        elif st is not None and (not isinstance(st, str) or st not in steward_ids):
            raise _err(f"{f}.steward", f"unknown steward {st!r}", f"未知管家 {st!r}", st, "unknown_steward")
        demand = _int(v.get("demand", 0), f"{f}.demand", 0)
        visits.append(Visit(vid, loc, service, count, gap, vdays, patterns, windows, prio, st, demand, explicit,
                            allowed, preferred))

    objective = data.get("objective", "travel_seconds")
    if objective not in OBJECTIVES:
        raise _err("objective", f"must be one of {OBJECTIVES}", f"须为 {OBJECTIVES} 之一", objective, "objective")
    return Problem(days, stewards, visits, points, seconds, metres, objective)


def _allowed_stewards(value: object, field_: str, steward_ids: set[str]) -> tuple[list[str], str | None]:
    """``(allowed, preferred)`` of a joint plan's ``steward`` (a list, first preferred, or ``{"allowed",
    "preferred"}``); ``([], None)`` for a single steward id or none."""
    if value is None or isinstance(value, str):
        return [], None
    preferred = None
    if isinstance(value, dict):
        extra = set(value) - {"allowed", "preferred"}
        if extra:
            raise _err(field_, f"unknown keys {sorted(extra)}", f"未知字段 {sorted(extra)}", value, "keys")
        preferred = value.get("preferred")
        value = value.get("allowed")
    if not isinstance(value, list) or not value:
        raise _err(field_, "must be a steward id, a non-empty list of ids or {allowed, preferred}",
                   "须为管家编号、非空编号列表或 {allowed, preferred}", value, "type")
    for x in value:
        if not isinstance(x, str) or x not in steward_ids:
            raise _err(field_, f"unknown steward {x!r}", f"未知管家 {x!r}", x, "unknown_steward")
    if len(set(value)) != len(value):
        raise _err(field_, "a steward is listed twice", "管家重复列出", value, "duplicate")
    preferred = value[0] if preferred is None else preferred
    if preferred not in value:
        raise _err(f"{field_}.preferred", f"preferred steward {preferred!r} is not among the allowed",
                   f"首选管家 {preferred!r} 不在允许的管家之中", preferred, "preferred")
    return list(value), str(preferred)


def _square(value: object, field_: str) -> list[list[float]]:
    rows = _list(value, field_, nonempty=True)
    n = len(rows)
    out = []
    for i, r in enumerate(rows):
        r = _list(r, f"{field_}[{i}]")
        if len(r) != n:
            raise _err(f"{field_}[{i}]", f"has {len(r)} values; the matrix must be {n}×{n}",
                       f"有 {len(r)} 个值；矩阵须为 {n}×{n}", None, "shape")
        row = []
        for j, x in enumerate(r):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                raise _err(f"{field_}[{i}][{j}]", f"must be a finite number ≥ 0, got {x!r}", f"须为 ≥0 的有限数值，实际为 {x!r}",
                           x, "type")
            row.append(x)
        out.append(row)
    return out


__all__ = ["MODES", "OBJECTIVES", "Problem", "Steward", "Visit", "format_time", "parse_problem", "parse_time"]
