"""Monthly update (每月更新): who entered, left, died, changed category or steward since last month.

A department's monthly ledger is its *whole* list for the month
(``gridmap register update FILE --period YYYY-MM --source 民政``); a plain
``import`` never makes anybody leave, so a partial department file cannot
empty the register.

Rules of one monthly ledger of department ``S`` for period ``P``:

* a listed elder who is new enters the programme on the first day of ``P``;
* a listed elder who had left (status not active) re-enters (status active);
* a listed elder whose 其他情况 says 去世/死亡/已故/病故 leaves as ``deceased``;
  迁出/搬离/外迁/迁往 as ``moved_out`` (date: first day of ``P``);
* an active elder listed by ``S`` before but absent now is no longer listed by
  ``S``; when no department lists them any more they leave the programme
  (status ``exited``, exit date the first day of ``P``, reason naming the
  ledger). Nobody is deleted.

Every change is written to the register history by the store's listener with
the reason ``每月更新 P``; the summary counts them.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap._errors import GridmapError
from gridmap.domain.enums import ElderStatus, Source
from gridmap.register.merge import LISTED_BY, MergeOutcome
from gridmap.store.models import Elder

_DECEASED = re.compile(r"去世|死亡|已故|病故|离世|逝世")
_MOVED = re.compile(r"迁出|搬离|外迁|迁往|搬走|户籍迁移")


def parse_period(period: str) -> date:
    """``"2025-03"`` → ``date(2025, 3, 1)``.

    Raises
    ------
    GridmapError
        When the text is not ``YYYY-MM``.
    """
    m = re.fullmatch(r"(\d{4})-(\d{2})", (period or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise GridmapError(f"period must be YYYY-MM, got {period!r}", f"月份应为YYYY-MM格式，实为“{period}”")
    return date(int(m.group(1)), int(m.group(2)), 1)


def _leave(e: Elder, status: ElderStatus, on: date, reason: str) -> None:
    e.status = status
    e.status_date = on
    e.exited_on = on
    e.exit_reason = reason[:200]


def apply_monthly(session: Session, outcome: MergeOutcome, source: Source, period: str) -> dict[str, Any]:
    """Apply the monthly rules after a merge of department ``source``'s full ledger.

    Parameters
    ----------
    session
        The import's session (not committed here).
    outcome
        The merge of this month's ledger (``seen`` elder ids and their
        records, ``new_elders``, ``changed_fields``).
    source
        The department.
    period
        ``YYYY-MM``.

    Returns
    -------
    dict
        Counts ``entered, returned, deceased, moved_out, exited, category_changed,
        steward_changed, address_changed`` and ``exited_ids``.
    """
    start = parse_period(period)
    src = source.value
    summary: dict[str, Any] = {"period": period, "entered": 0, "returned": 0, "deceased": 0, "moved_out": 0,
                               "exited": 0, "category_changed": 0, "steward_changed": 0,
                               "address_changed": 0, "exited_ids": []}
    new_ids = {e.id for e in outcome.new_elders} | set(outcome.new_ids)
    for e in outcome.new_elders:
        e.entered_on = start  # the bulk path wrote it already (the record's _entered_on)
    summary["entered"] = len(new_ids)
    seen = set(outcome.seen)
    elders = {e.id: e for e in session.scalars(select(Elder))}
    for eid, rec in outcome.seen.items():
        e = elders.get(eid)
        if e is None:
            continue
        notes = (rec or {}).get("other_notes") or e.other_notes or ""
        if _DECEASED.search(notes):
            if e.status is not ElderStatus.DECEASED:
                _leave(e, ElderStatus.DECEASED, start, f"{period}月台账（{source.label}）注明：{notes}")
                summary["deceased"] += 1
            continue
        if _MOVED.search(notes):
            if e.status is not ElderStatus.MOVED_OUT:
                _leave(e, ElderStatus.MOVED_OUT, start, f"{period}月台账（{source.label}）注明：{notes}")
                summary["moved_out"] += 1
            continue
        if e.status is not ElderStatus.ACTIVE and eid not in new_ids:
            e.status = ElderStatus.ACTIVE
            e.status_date = start
            e.entered_on = start
            e.exited_on = None
            e.exit_reason = None
            summary["returned"] += 1
        changed = outcome.changed_fields.get(eid, set())
        summary["category_changed"] += "categories" in changed
        summary["steward_changed"] += "steward" in changed
        summary["address_changed"] += "address" in changed
    for e in elders.values():
        if e.id in seen:
            continue
        listed = list((e.field_sources or {}).get(LISTED_BY) or [])
        if src not in listed:
            continue
        sources = dict(e.field_sources or {})
        sources[LISTED_BY] = [s for s in listed if s != src]
        e.field_sources = sources
        if not sources[LISTED_BY] and e.status is ElderStatus.ACTIVE:
            _leave(e, ElderStatus.EXITED, start,
                   f"未列入{period}月{source.label}台账 / absent from the {period} {source.value} ledger")
            summary["exited"] += 1
            summary["exited_ids"].append(e.id)
    session.flush()
    return summary
