"""Escalation runs by itself inside the server: the scheduler's period comes from the rules (a short window
in a test rules file), one process across workers holds the lock; ``gridmap jobs run`` does the same once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from gridmap.followups import store as fs
from gridmap.rules.store import record_visit
from tests.followups.conftest import RULES, register, visit


def test_the_jobs_period_comes_from_the_rules_file_unless_given(tmp_path, monkeypatch) -> None:
    from gridmap.dashboard.server import ServeOptions

    assert ServeOptions().jobs_every() == RULES.jobs_every_seconds == 300
    f = tmp_path / "rules.yaml"
    f.write_text("jobs:\n  every_seconds: 0.5\nreferrals:\n  emergency_ack_minutes: 1\n", encoding="utf-8")
    monkeypatch.setenv("GRIDMAP_RULES", str(f))
    assert ServeOptions().jobs_every() == 0.5
    assert ServeOptions(escalate_every=0).jobs_every() == 0  # --escalate-every 0: off


def test_an_unacknowledged_emergency_escalates_with_no_command_run(engine: Engine, tmp_path, monkeypatch) -> None:
    from gridmap.dashboard.server import Scheduler, ServeOptions

    f = tmp_path / "rules.yaml"
    f.write_text("jobs:\n  every_seconds: 0.3\nreferrals:\n  emergency_ack_minutes: 1\n"
                 "notifications:\n  gateway: log\n", encoding="utf-8")
    monkeypatch.setenv("GRIDMAP_RULES", str(f))
    (e1, _e2) = register(engine)["elders"]
    opened = datetime.now(UTC) - timedelta(minutes=2)  # the 1-minute window is over
    ids = record_visit(engine, visit(e1, "2026-12-01", emergency=True), now=opened).referral_ids
    fresh = record_visit(engine, visit(e1, "2026-12-01", emergency=True, start="11:00"),
                         now=datetime.now(UTC)).referral_ids
    assert fs.read_referral_frame(engine)["escalated_at"].isna().all()
    # two schedulers (two workers) on one database: the jobs run in one of them
    a, b = Scheduler(engine, ServeOptions().jobs_every()), Scheduler(engine, ServeOptions().jobs_every())
    a.start()
    b.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = fs.read_referral_frame(engine).set_index("id")
            if r.loc[ids, "escalated_at"].notna().all():
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a few more ticks: nothing is escalated twice
    finally:
        a.shutdown()
        b.shutdown()
    r = fs.read_referral_frame(engine).set_index("id")
    assert r.loc[ids, "escalated_at"].notna().all(), "not escalated by the scheduler"
    assert r.loc[fresh, "escalated_at"].isna().all()  # still within its window
    assert (r.loc[ids, "status"] == "open").all()
    from sqlalchemy import func, select

    from gridmap.store.models import ReferralEvent

    with engine.connect() as c:
        n = c.scalar(select(func.count()).select_from(ReferralEvent).where(ReferralEvent.note.like("%升级%")))
    assert n == len(ids)  # once each
    # the reminders queued for the emergencies were sent by the same jobs (log gateway)
    assert set(fs.read_notification_frame(engine)["status"]) == {"sent"}
