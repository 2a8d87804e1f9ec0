"""The programme's clock: Beijing time (UTC+8, no daylight saving) and today's date there."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

#: Beijing time. The programme's days, weeks and months are Beijing's, whatever the server's zone.
BEIJING = timezone(timedelta(hours=8))


def today_beijing() -> date:
    """Today's date in Beijing."""
    return datetime.now(BEIJING).date()


def now_beijing() -> datetime:
    """The current time in Beijing (timezone-aware)."""
    return datetime.now(BEIJING)
