"""Missing monthly ledgers (每月更新): which streets' ledger of a month has not arrived by the due day.

The programme document asks every street (街镇) to keep the register and
update it every month (建立……信息数据台账，每月更新). A monthly ledger of period
``P`` (``gridmap register update FILE --period P``) is due on day
``monthly_ledger_due_day`` of ``P`` (a key of the rules YAML, default
:data:`DEFAULT_DUE_DAY`). A street is *covered* for ``P`` by any monthly
ledger of ``P`` that listed at least one of its elders (a district-wide 民政
ledger covers every street it lists); its ledger *arrived* on the day of the
first such import.

:func:`missing_months` is the pure rule; :func:`monthly_arrivals` is the store
query; :func:`missing_months_report` joins them for the CLI
(``gridmap register missing-months``) and any other report.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gridmap._errors import GridmapError

#: Day of the month by which the month's ledger is due when the rules do not say.
DEFAULT_DUE_DAY = 10


@dataclass(frozen=True)
class MonthStatus:
    """One street's monthly ledger for one period."""

    street: str
    period: str  # YYYY-MM
    due: date
    arrived: date | None  # day of the first monthly import covering the street, None when none yet
    status: str  # "missing" (due date passed, nothing), "late" (arrived after the due date), "on_time", "not_due"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (dates ISO)."""
        d = asdict(self)
        d["due"] = self.due.isoformat()
        d["arrived"] = self.arrived.isoformat() if self.arrived else None
        return d


def due_date(period: date, due_day: int) -> date:
    """The due date of the ledger of ``period`` (its first day): day ``due_day`` of that month (or its last day)."""
    last = calendar.monthrange(period.year, period.month)[1]
    return date(period.year, period.month, min(due_day, last))


def default_period(today: date, due_day: int) -> date:
    """The latest period whose ledger is already due on ``today`` (this month once the due day has passed)."""
    this = today.replace(day=1)
    if today > due_date(this, due_day):
        return this
    return date(this.year - 1, 12, 1) if this.month == 1 else date(this.year, this.month - 1, 1)


def missing_months(streets: list[str], arrivals: dict[str, date], period: date, today: date,
                   due_day: int) -> list[MonthStatus]:
    """The status of every street's ledger of ``period``, missing ones first.

    Parameters
    ----------
    streets
        Every street that must send a ledger.
    arrivals
        Street → the day its ledger of ``period`` arrived.
    period
        First day of the month.
    today
        The day of the check.
    due_day
        Day of the month by which the ledger is due (1–28).
    """
    due = due_date(period, due_day)
    out = []
    for st in streets:
        got = arrivals.get(st)
        if got is None:
            status = "missing" if today > due else "not_due"
        else:
            status = "late" if got > due else "on_time"
        out.append(MonthStatus(st, f"{period:%Y-%m}", due, got, status))
    order = {"missing": 0, "late": 1, "not_due": 2, "on_time": 3}
    return sorted(out, key=lambda m: (order[m.status], m.street))


def rules_due_day(rules: Any = None) -> int:
    """``monthly_ledger_due_day`` of the rules YAML (default :data:`DEFAULT_DUE_DAY`), checked to be 1–28.

    Raises
    ------
    GridmapError
        When the rules give something other than a whole number 1–28.
    """
    raw = getattr(rules, "raw", None) or {}
    v = raw.get("monthly_ledger_due_day", DEFAULT_DUE_DAY)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 28:
        raise GridmapError(f"rules: monthly_ledger_due_day must be a whole number 1-28, got {v!r}",
                           f"规则项 monthly_ledger_due_day 须为1至28的整数，实为“{v}”")
    return v


# ------------------------------------------------------------------ store


def monthly_arrivals(engine: Engine, period: str) -> dict[str, date]:
    """Street → day its monthly ledger of ``period`` first arrived (monthly imports recorded with their streets)."""
    from gridmap.store.models import ImportBatch

    out: dict[str, date] = {}
    with Session(engine) as s:
        for when, report in s.execute(select(ImportBatch.imported_at, ImportBatch.report)
                                      .where(ImportBatch.period == period).order_by(ImportBatch.imported_at)):
            rep = report or {}
            if not rep.get("monthly"):
                continue
            for st in rep.get("streets") or []:
                out.setdefault(st, when.date())
    return out


def district_streets(engine: Engine) -> list[str]:
    """Every street of the district stored in the database."""
    from gridmap.store.models import Street

    with Session(engine) as s:
        return sorted(s.scalars(select(Street.name)))


def missing_months_report(engine: Engine, period: str | None = None, *, today: date | None = None,
                          rules: Any = None) -> list[MonthStatus]:
    """Every street's monthly-ledger status for ``period`` (default: the latest period already due)."""
    from gridmap.register.monthly import parse_period

    if rules is None:
        from gridmap.rules.config import load_rules

        rules = load_rules()
    due_day = rules_due_day(rules)
    today = today or date.today()
    p = parse_period(period) if period else default_period(today, due_day)
    return missing_months(district_streets(engine), monthly_arrivals(engine, f"{p:%Y-%m}"), p, today, due_day)
