"""Follow-ups worked to closure (issue 16): hazards and referrals through their life-cycles.

* :mod:`gridmap.followups.lifecycle` — pure domain: allowed transitions, owner unit, due dates
  and receivers from the rules, reopening, escalation once;
* :mod:`gridmap.followups.store` — the follow-ups' SQL (reads as DataFrames, state changes with
  their events, history, change feed and version checks, findings opened/reopened, escalation),
  with :mod:`~gridmap.followups.inspections` (joint inspections) and :mod:`~gridmap.followups.outbox`
  (the reminder outbox) split off for size;
* :mod:`gridmap.followups.notify` — the gateway interface of the outbox (file/log adapters);
* :mod:`gridmap.followups.jobs` — the periodic jobs (server scheduler, ``gridmap jobs run``);
* :mod:`gridmap.followups.cli` — ``gridmap hazards``, ``gridmap referrals``, ``gridmap jobs``.
"""
