"""Random sequences of state changes against the store (hypothesis state machine), on both backends.

Invariants after every step: the stored status is the one the issue's life-cycle gives; ``closed_on``
(hazard) / ``closed_at`` (referral) is set iff the state is terminal; there is one event per
transition (plus the opening); a refused change writes nothing (no event, no change-feed row).
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, func, select

from gridmap._errors import GridmapError
from gridmap.domain.enums import Category, FirstContactRule, HazardStatus, ReferralStatus
from gridmap.followups import store as fs
from gridmap.followups.lifecycle import finding_action
from gridmap.rules.store import record_visit
from gridmap.store.db import session_scope
from gridmap.store.models import ChangeLog, Elder, FirstContact, HazardEvent, ReferralEvent
from tests.followups.conftest import NOW, RULES, register, visit

H, R = HazardStatus, ReferralStatus
HAZARD_OK = {H.OPEN: {H.IN_PROGRESS, H.FIXED, H.CANNOT_FIX, H.TRANSFERRED},
             H.IN_PROGRESS: {H.FIXED, H.CANNOT_FIX, H.TRANSFERRED}}
REFERRAL_OK = {R.OPEN: {R.ACKNOWLEDGED, R.IN_PROGRESS, R.CLOSED}, R.ACKNOWLEDGED: {R.IN_PROGRESS, R.CLOSED},
               R.IN_PROGRESS: {R.CLOSED}}
_serial = count()


def _new_elder(engine: Engine, street_id: int, community_id: int) -> int:
    with session_scope(engine, user="test") as s:
        e = Elder(name="随机老人", birth_date=date(1940, 1, 1), street_id=street_id, community_id=community_id,
                  categories=[Category.LIVING_ALONE])
        s.add(e)
        s.flush()
        s.add(FirstContact(elder_id=e.id, name="子女", phone="13900000000", rule=FirstContactRule.CHILD))
        return int(e.id)


class FollowUps(RuleBasedStateMachine):
    engine: Engine
    street_id: int
    community_id: int

    @initialize()
    def open_one_of_each(self) -> None:
        self.elder = _new_elder(self.engine, self.street_id, self.community_id)
        self.day = date(2026, 10, 1)
        res = record_visit(self.engine, visit(self.elder, self.day.isoformat(), gas="不安全", needs="想办理老年卡",
                                              start=f"{8 + next(_serial) % 10:02d}:00"), rules=RULES, now=NOW)
        (self.hazard,), (self.referral,) = res.hazard_ids, res.referral_ids
        self.h_status, self.r_status = H.OPEN, R.OPEN
        self.h_events, self.r_events = 1, 1

    def _feed(self) -> int:
        with self.engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(ChangeLog)))

    @rule(to=st.sampled_from(list(HazardStatus)), reason=st.sampled_from([None, "老人拒绝改造"]),
          unit=st.sampled_from([None, "区房管局"]))
    def move_hazard(self, to: HazardStatus, reason: str | None, unit: str | None) -> None:
        ok = to in HAZARD_OK.get(self.h_status, set()) and (to != H.CANNOT_FIX or reason is not None)
        before = self._feed()
        try:
            fs.update_hazard(self.engine, self.hazard, to, by="tester", reason=reason, transferred_to=unit, now=NOW)
        except GridmapError as exc:
            assert not ok, exc
            assert self._feed() == before  # nothing written
            return
        assert ok, (self.h_status, to)
        self.h_status = to
        self.h_events += 1
        assert self._feed() == before + 1

    @rule(to=st.sampled_from(list(ReferralStatus)), sat=st.sampled_from([None, "满意", "基本满意", "不满意"]))
    def move_referral(self, to: ReferralStatus, sat: str | None) -> None:
        ok = to in REFERRAL_OK.get(self.r_status, set()) and (sat is None or to == R.CLOSED)
        before = self._feed()
        try:
            fs.update_referral(self.engine, self.referral, to, by="tester", satisfaction=sat,
                               now=NOW + timedelta(minutes=next(_serial)))
        except GridmapError as exc:
            assert not ok, exc
            assert self._feed() == before
            return
        assert ok, (self.r_status, to)
        self.r_status = to
        self.r_events += 1

    @rule(gas=st.sampled_from(["不安全", "较安全"]))
    def found_again(self, gas: str) -> None:
        """A later visit finds the same problem: reopened when fixed/unfixable, not duplicated when open."""
        self.day += timedelta(days=1)
        res = record_visit(self.engine, visit(self.elder, self.day.isoformat(), gas=gas, start="09:00"),
                           rules=RULES, now=NOW)
        action = finding_action(self.h_status)
        if action == "reopen":
            assert res.reopened_hazard_ids == [self.hazard] and res.hazard_ids == []
            self.h_status, self.h_events = H.OPEN, self.h_events + 1
        elif action == "skip":
            assert res.hazard_ids == [] and res.reopened_hazard_ids == []
        else:  # transferred: another unit has it; a new hazard is opened and followed from here
            assert len(res.hazard_ids) == 1
            self.hazard, self.h_status, self.h_events = res.hazard_ids[0], H.OPEN, 1

    @invariant()
    def stored_as_the_model_says(self) -> None:
        h = fs.read_hazard_frame(self.engine, elder_ids=[self.elder]).set_index("id").loc[self.hazard]
        assert h["status"] == self.h_status.value
        assert (h["closed_on"] is not None and h["closed_on"] == h["closed_on"]) == self.h_status.terminal
        r = fs.read_referral_frame(self.engine, elder_ids=[self.elder]).set_index("id").loc[self.referral]
        assert r["status"] == self.r_status.value
        assert (r["closed_at"] == r["closed_at"]) == (self.r_status == R.CLOSED)  # NaT != NaT
        with self.engine.connect() as c:
            he = c.scalar(select(func.count()).select_from(HazardEvent).where(HazardEvent.hazard_id == self.hazard))
            re_ = c.scalar(select(func.count()).select_from(ReferralEvent)
                           .where(ReferralEvent.referral_id == self.referral))
        assert (he, re_) == (self.h_events, self.r_events)


@pytest.mark.slow
def test_random_sequences_of_changes_keep_the_life_cycles(engine: Engine) -> None:
    ids = register(engine, 1)
    FollowUps.engine = engine
    FollowUps.street_id = ids["streets"]["甲街道"]
    FollowUps.community_id = ids["communities"]["甲街道"]
    run_state_machine_as_test(FollowUps, settings=settings(
        max_examples=12, stateful_step_count=10, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
