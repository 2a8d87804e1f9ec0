"""The plan of the JSON contract (routes, unassigned visits, summary) as plain typed objects, to and from JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap._errors import ValidationError
from gridmap.routing.problem import format_time, parse_time

REASONS: tuple[str, ...] = ("no_time", "time_window", "spacing", "days", "capacity")
FALLBACKS: tuple[str, ...] = ("phone", "video", "other_steward", "next_week")


@dataclass
class Stop:
    """One visit on a route; times in seconds since 00:00."""

    visit: str
    arrival: int
    start: int
    end: int


@dataclass
class Route:
    """The route of one steward on one day."""

    steward: str
    day: str
    stops: list[Stop]
    travel_seconds: float = 0.0
    distance_metres: float = 0.0
    work_minutes: float = 0.0
    geometry: dict[str, Any] | None = None


@dataclass
class Unassigned:
    """Occurrences of a visit the plan could not place, with the reason and the fallback."""

    visit: str
    occurrences: int
    reason: str
    fallback: str


@dataclass
class Summary:
    """Totals of a plan."""

    visits_required: int = 0
    visits_planned: int = 0
    travel_seconds: float = 0.0
    distance_metres: float = 0.0
    estimated_share: float = 0.0


@dataclass
class Plan:
    """A solution: routes per steward-day, unassigned visits, summary."""

    routes: list[Route] = field(default_factory=list)
    unassigned: list[Unassigned] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)

    def to_dict(self) -> dict[str, Any]:
        """The plan as the JSON contract's dict (times as ``"HH:MM"``)."""
        return {
            "routes": [{
                "steward": r.steward, "day": r.day,
                "stops": [{"visit": s.visit, "arrival": format_time(s.arrival), "start": format_time(s.start),
                           "end": format_time(s.end)} for s in r.stops],
                "travel_seconds": _num(r.travel_seconds), "distance_metres": _num(r.distance_metres),
                "work_minutes": _num(r.work_minutes),
                **({"geometry": r.geometry} if r.geometry is not None else {}),
            } for r in self.routes],
            "unassigned": [vars(u).copy() for u in self.unassigned],
            "summary": {k: _num(v) for k, v in vars(self.summary).items()},
        }

    def write(self, path: str | Path) -> None:
        """Write the plan as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")


def _num(x: float) -> float | int:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 4)


def _need(obj: Any, key: str, field_: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValidationError("is required", "为必填项", field=f"{field_}.{key}", code="required")
    return obj[key]


def parse_plan(data: dict[str, Any] | str | Path) -> Plan:
    """Read a plan (dict, JSON text or path) back into a :class:`Plan`.

    Raises
    ------
    ValidationError
        When a field is missing or malformed (named like ``routes[2].stops[0].start``).
    """
    if not isinstance(data, dict):
        try:
            text = data if isinstance(data, str) and data.lstrip().startswith("{") else Path(data).read_text("utf-8")
            data = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValidationError(f"cannot read the plan JSON: {exc}", f"无法读取计划 JSON：{exc}", field="plan",
                                  code="json") from exc
    routes = []
    for i, r in enumerate(_need(data, "routes", "plan") or []):
        f = f"routes[{i}]"
        stops = []
        for j, s in enumerate(_need(r, "stops", f) or []):
            g = f"{f}.stops[{j}]"
            stops.append(Stop(str(_need(s, "visit", g)), parse_time(_need(s, "arrival", g), f"{g}.arrival"),
                              parse_time(_need(s, "start", g), f"{g}.start"), parse_time(_need(s, "end", g), f"{g}.end")))
        routes.append(Route(str(_need(r, "steward", f)), str(_need(r, "day", f)), stops,
                            float(r.get("travel_seconds", 0)), float(r.get("distance_metres", 0)),
                            float(r.get("work_minutes", 0)), r.get("geometry")))
    unassigned = []
    for i, u in enumerate(data.get("unassigned") or []):
        f = f"unassigned[{i}]"
        unassigned.append(Unassigned(str(_need(u, "visit", f)), int(u.get("occurrences", 1)), str(_need(u, "reason", f)),
                                     str(u.get("fallback", ""))))
    s = data.get("summary") or {}
    summary = Summary(int(s.get("visits_required", 0)), int(s.get("visits_planned", 0)),
                      float(s.get("travel_seconds", 0)), float(s.get("distance_metres", 0)),
                      float(s.get("estimated_share", 0)))
    return Plan(routes, unassigned, summary)


__all__ = ["FALLBACKS", "REASONS", "Plan", "Route", "Stop", "Summary", "Unassigned", "parse_plan"]
