"""A street's facts (read by the street build tasks of distributed planning) read that street's visits and hazards only,
and give the same facts as the whole register's."""

from __future__ import annotations

from datetime import date

from gridmap.domain.enums import Change, HazardKind, HazardStatus, Severity, VisitMode, VisitorRole
from gridmap.rules.store import read_facts
from gridmap.store.db import session_scope
from gridmap.store.models import Hazard, Visit
from tests.scale.conftest import build_tiny_register

ON = date(2026, 12, 7)


def _visits_and_hazards(engine, ids) -> None:
    with session_scope(engine, user="test") as s:
        for k, eid in enumerate(ids["elders"]):
            for j, day in enumerate((date(2026, 11, 2 + k % 5), date(2026, 11, 20 + k % 7), date(2026, 12, 9))):
                # the last one is after ON: it must not count; every third elder's second visit is not effective
                s.add(Visit(elder_id=eid, visited_on=day, mode=VisitMode.IN_HOME, visitor_role=VisitorRole.VISIT_STEWARD,
                            effective=not (j == 1 and k % 3 == 0), mood=Change.BETTER if j == 1 else None))
            if k % 4 == 0:
                s.add(Hazard(elder_id=eid, kind=HazardKind.GAS, severity=Severity.HIGH, source="visit",
                             status=HazardStatus.OPEN, opened_on=date(2026, 11, 10)))
            if k % 5 == 0:
                s.add(Hazard(elder_id=eid, kind=HazardKind.FIRE, severity=Severity.LOW, source="visit",
                             status=HazardStatus.CLOSED, opened_on=date(2026, 11, 1), closed_on=date(2026, 11, 3)))


def _key(f) -> tuple:
    return (f.id, f.street, f.last_visit_on, tuple(sorted(f.last_answers.items())), f.open_hazards,
            f.has_first_contact, f.steward_id)


def test_a_streets_facts_equal_the_registers_facts_of_that_street(engine):
    ids = build_tiny_register(engine, per_street=5)
    _visits_and_hazards(engine, ids)
    whole = read_facts(engine, ON)
    assert {f.street for f in whole} == {"甲街道", "乙街道"}
    assert any(f.open_hazards for f in whole) and any(f.last_answers for f in whole)
    for street in ("甲街道", "乙街道"):
        part = read_facts(engine, ON, street=street)
        assert part and [_key(f) for f in part] == [_key(f) for f in whole if f.street == street]
    # a steward's facts likewise (T-1 has elders in both streets)
    sid = ids["visit"]["甲街道"]
    mine = read_facts(engine, ON, steward_id=sid)
    assert len({f.street for f in mine}) == 2
    assert [_key(f) for f in mine] == [_key(f) for f in whole if f.steward_id == sid]

