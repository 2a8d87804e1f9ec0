"""人户分离: an elder is served by the street of usual residence (经常居住地)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridmap.domain.enums import ReferralTarget
from gridmap.register.residence import (
    RULE_TEXT_ZH,
    decide_serving_street,
    referral_target,
    serving_street,
)


def test_rule_text_is_the_documents() -> None:
    assert "人户分离" in RULE_TEXT_ZH and "经常居住地的街镇" in RULE_TEXT_ZH


def test_separated_elder_is_served_by_the_street_of_usual_residence() -> None:
    d = decide_serving_street("羊坊店街道", "学院路街道", False)
    assert d.street == "学院路街道" and d.separated and not d.inconsistent
    assert "人户分离" in d.reason_zh


def test_elder_living_at_hukou_is_served_there() -> None:
    assert serving_street("学院路街道", "学院路街道", True) == "学院路街道"
    assert serving_street("学院路街道", None, True) == "学院路街道"


def test_hukou_street_never_serves_an_elder_living_elsewhere() -> None:
    assert serving_street("羊坊店街道", None, False) is None


def test_contradictory_record_is_served_at_residence_and_flagged() -> None:
    d = decide_serving_street("羊坊店街道", "学院路街道", True)
    assert d.street == "学院路街道" and d.inconsistent and "核实" in d.reason_zh


@given(st.one_of(st.none(), st.sampled_from(["甲街道", "乙街道", " ", ""])),
       st.one_of(st.none(), st.sampled_from(["甲街道", "乙街道", " "])),
       st.one_of(st.none(), st.booleans()))
def test_residence_street_wins_whenever_known(hukou: str | None, home: str | None,
                                              lives: bool | None) -> None:
    s = serving_street(hukou, home, lives)
    if home and home.strip():
        assert s == home.strip()
    elif s is not None:
        assert lives is True and s == (hukou or "").strip()


def test_needs_of_tekun_and_family_planning_elders_go_to_the_street_of_residence() -> None:
    assert referral_target(tekun=True, family_planning_special=False) is ReferralTarget.STREET_OF_RESIDENCE
    assert referral_target(tekun=False, family_planning_special=True) is ReferralTarget.STREET_OF_RESIDENCE
    assert referral_target(tekun=False, family_planning_special=False) is ReferralTarget.FIRST_CONTACT
