"""Keep a demo alive: stewards record today's due visits through the real visit path while the dashboard is served.

:func:`start_simulator` starts a daemon thread that, every ``every`` seconds
(optionally only during working hours), picks one willing elder whose weekly
visit is still due this week — the longest without a visit first — and records
a plausible visit by that elder's visit steward with
:func:`gridmap.rules.visits.parse_visit` and
:func:`gridmap.rules.store.record_visit`, the path of a visit entered in the
steward view or with ``gridmap visits record``. Hazards and referrals follow
from the answers by the rules, and the visit reaches every server process
through the change feed, so a supervisor watching sees the figures move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Engine

from gridmap.synth import targets as T

__all__ = ["Simulator", "start_simulator", "simulated_visit"]

log = logging.getLogger(__name__)
BEIJING = timezone(timedelta(hours=8))
#: Who enters the simulated visits (register history, change feed).
SIM_USER = "simulator"
_CHANGE = {"unchanged": 0.90, "better": 0.04, "worse": 0.06}


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array(list(options.values()), dtype=float)
    return str(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def simulated_visit(facts: Any, now: datetime, rng: np.random.Generator, *,
                    safety: dict[str, float] | None = None) -> dict[str, Any]:
    """A plausible visit of one elder (an :class:`~gridmap.rules.facts.ElderFacts`) just made, as entered JSON.

    In-home with the answers of section 五 (safety answers drawn from
    ``safety``, default :data:`gridmap.synth.targets.SAFETY_ANSWERS`), by the
    elder's visit steward, ended a few minutes before ``now``, GPS near home.
    """
    safety = safety or T.SAFETY_ANSWERS
    local = now.astimezone(BEIJING)
    minutes = int(rng.integers(20, 46))
    ended = local - timedelta(minutes=int(rng.integers(1, 10)))
    started = ended - timedelta(minutes=minutes)
    m: dict[str, Any] = {
        "elder_id": facts.id, "visited_on": local.date().isoformat(), "mode": "in_home",
        "visitor_role": "visit_steward", "steward_id": facts.steward_id,
        "started_at": started.isoformat(), "ended_at": ended.isoformat(), "signed_at": ended.isoformat(),
        "entered_by": "app", "entered_at": local.isoformat(),
        "family_change": "unchanged", "illness": _pick(rng, {"unchanged": 0.93, "serious": 0.04, "improved": 0.03}),
    }
    for k in ("expression", "mobility", "mood", "personal_hygiene", "home_hygiene", "indoor_environment"):
        m[k] = _pick(rng, _CHANGE)
    for k in ("gas_safety", "water_heating_safety", "electricity_safety"):
        m[k] = _pick(rng, safety)
    if m["illness"] == "serious":
        m["illness_name"] = str(rng.choice(["高血压", "糖尿病", "冠心病", "脑梗", "慢阻肺"]))
    # issue 17 (A): 反应能力, 赡养, 房屋安全, 饮水安全 too; the needs as the rules' labels (无: an empty list)
    m["reaction"] = _pick(rng, _CHANGE)
    m["family_support"] = _pick(rng, {"regular": 0.7, "occasional": 0.25, "none": 0.05})
    for k in ("housing_safety", "drinking_water_safety"):
        m[k] = _pick(rng, {"safe": 0.996, "fairly_safe": 0.003, "unsafe": 0.001})
    m["needs"] = [str(rng.choice(["助餐", "助医", "助浴", "助洁", "精神慰藉"]))] if rng.random() < T.P_VISIT_NEED else []
    if facts.lon is not None and facts.lat is not None:
        m["gps"] = [round(facts.lon + float(rng.normal(0, 8e-5)), 6), round(facts.lat + float(rng.normal(0, 6e-5)), 6)]
        m["gps_time"] = started.isoformat()
    return m


@dataclass
class Simulator:
    """The running simulator: its thread, what it recorded, and how to stop it."""

    thread: threading.Thread
    stop_event: threading.Event
    recorded: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop and wait for it."""
        self.stop_event.set()
        self.thread.join(timeout)


def start_simulator(
    engine: Engine,
    *,
    every: float = 5.0,
    stop_event: threading.Event | None = None,
    hours: tuple[int, int] | None = None,
    seed: int = 1,
    safety: dict[str, float] | None = None,
    clock: Callable[[], datetime] | None = None,
    refresh_s: float = 600.0,
) -> Simulator:
    """Start recording one of today's due visits every ``every`` seconds in a daemon thread.

    Parameters
    ----------
    engine
        The demo's store.
    every
        Seconds between two visits.
    stop_event
        Set it to stop (default: a new one, see :meth:`Simulator.stop`).
    hours
        ``(first, last)`` hour of the working day in Beijing (e.g. ``(8, 18)``);
        ``None``: always.
    seed
        Random seed of the answers.
    safety
        Shares of the safety answers (default the demo's).
    clock
        Returns "now" (default: the current time).
    refresh_s
        Seconds after which the due elders are read again (others also record visits).

    Returns
    -------
    Simulator
    """
    from gridmap.rules.config import load_rules
    from gridmap.rules.store import read_facts, record_visit
    from gridmap.rules.visits import parse_visit

    stop = stop_event or threading.Event()
    clock = clock or (lambda: datetime.now(UTC))
    rules = load_rules()
    rng = np.random.default_rng(seed)
    sim = Simulator(threading.Thread(target=lambda: None), stop)
    state: dict[str, Any] = {"queue": [], "read_at": None, "day": None}

    def due_queue(today: date) -> list[Any]:
        """Willing elders with a visit steward not yet visited this week, longest without a visit first."""
        monday = today - timedelta(days=today.weekday())
        facts = read_facts(engine, today + timedelta(days=1), rules=rules)
        due = [f for f in facts if f.willing and f.steward_id is not None
               and (f.last_visit_on is None or f.last_visit_on < monday)]
        due.sort(key=lambda f: (f.last_visit_on or date.min, f.id))
        return due

    def run() -> None:
        while not stop.is_set():
            now = clock()
            local = now.astimezone(BEIJING)
            try:
                if hours is None or hours[0] <= local.hour < hours[1]:
                    stale = state["read_at"] is None or (now - state["read_at"]).total_seconds() > refresh_s
                    if stale or state["day"] != local.date() or not state["queue"]:
                        state["queue"] = due_queue(local.date())
                        state["read_at"], state["day"] = now, local.date()
                    if state["queue"]:
                        f = state["queue"].pop(0)
                        rec = parse_visit(simulated_visit(f, now, rng, safety=safety), rules, now=now)
                        res = record_visit(engine, rec, rules=rules, now=now, user=SIM_USER)
                        sim.recorded.append(res.visit_id)
                        log.info("simulated visit %s (elder %s): %d hazards, %d referrals", res.visit_id,
                                 rec.elder_id, len(res.hazard_ids), len(res.referral_ids))
            except Exception as exc:  # keep the demo alive; the error is logged and kept
                sim.errors.append(repr(exc))
                log.warning("simulator: %r", exc)
            stop.wait(every)

    sim.thread = threading.Thread(target=run, name="gridmap-simulator", daemon=True)
    sim.thread.start()
    return sim
