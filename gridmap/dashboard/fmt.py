"""Chinese display conventions of the dashboard: dates, percentages, counts (万), weeks."""

from __future__ import annotations

import math
from datetime import date, datetime

from gridmap.rules.requirements import parse_week

__all__ = ["fmt_count", "fmt_date", "fmt_minutes", "fmt_pct", "fmt_week"]

_WEEKDAYS = "一二三四五六日"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_date(value: date | datetime | str | None, *, weekday: bool = False) -> str:
    """``2026年12月7日`` (optionally ``（星期一）``); ``—`` when missing."""
    if _missing(value) or value == "":
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    text = f"{value.year}年{value.month}月{value.day}日"
    if weekday:
        text += f"（星期{_WEEKDAYS[value.weekday()]}）"
    return text


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A share 0–1 as ``87.5%``; ``—`` when missing."""
    if _missing(value):
        return "—"
    return f"{float(value) * 100:.{digits}f}%"  # type: ignore[arg-type]


def fmt_count(value: float | None) -> str:
    """A count with 万 from 100,000 on (``12.0万``), thousands separators below."""
    if _missing(value):
        return "—"
    v = float(value)  # type: ignore[arg-type]
    if abs(v) >= 100_000:
        return f"{v / 10_000:.1f}万"
    return f"{round(v):,}"


def fmt_minutes(value: float | None) -> str:
    """Minutes as ``5小时20分`` or ``45分钟``."""
    if _missing(value):
        return "—"
    m = round(float(value))  # type: ignore[arg-type]
    if m >= 60:
        return f"{m // 60}小时{m % 60:02d}分"
    return f"{m}分钟"


def fmt_week(week: str) -> str:
    """``2026-W49`` as ``2026年第49周（11月30日—12月6日）``."""
    monday, sunday = parse_week(week)
    year, num = week.upper().split("-W")
    return f"{year}年第{int(num)}周（{monday.month}月{monday.day}日—{sunday.month}月{sunday.day}日）"
