"""The periodic jobs of the follow-ups: escalation of emergencies and sending the reminders.

Run by the server's scheduler (one process across workers, every ``jobs.every_seconds`` of the
rules) and once by ``gridmap jobs run`` (for cron).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from gridmap.followups.notify import Gateway, gateway_from_rules
from gridmap.followups.store import escalate_due, send_queued
from gridmap.rules.config import Rules, load_rules


def run_jobs(engine: Engine, *, rules: Rules | None = None, now: datetime | None = None,
             gateway: Gateway | None = None, by: str = "scheduler") -> dict[str, Any]:
    """Escalate the emergencies due (each once), then send the queued reminders; returns what was done."""
    rules = rules or load_rules()
    escalated = escalate_due(engine, now, rules=rules, by=by)
    sent = send_queued(engine, gateway or gateway_from_rules(rules), now=now)
    return {"escalated": escalated, **sent}


def summary(result: dict[str, Any]) -> str:
    """One line: ``2 referrals escalated, 5 reminders sent, 0 failed``."""
    return (f"{len(result['escalated'])} referrals escalated, {result['sent']} reminders sent, "
            f"{result['failed']} failed")


__all__ = ["run_jobs", "summary"]
