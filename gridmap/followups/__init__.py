"""Follow-ups worked to closure (issue 16): hazards and referrals through their life-cycles.

* :mod:`gridmap.followups.lifecycle` — pure domain: allowed transitions, owner unit, due dates
  and receivers from the rules, reopening;
* :mod:`gridmap.followups.store` — the one module with the follow-up SQL (reads as DataFrames,
  state changes with their events, joint inspections, escalation, the notification outbox);
* :mod:`gridmap.followups.notify` — the gateway interface of the outbox (file/log adapter);
* :mod:`gridmap.followups.cli` — ``gridmap hazards``, ``gridmap referrals``, ``gridmap jobs``.
"""
