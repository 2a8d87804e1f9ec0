"""First-contact rules of the document (工作任务 一.3), checks and register-level gaps."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.domain.enums import FirstContactRule
from gridmap.register.first_contact import (
    Contact,
    RelationKind,
    Relative,
    StaffContact,
    check_first_contact,
    choose_first_contact,
    elders_without_valid_first_contact,
    is_valid_phone,
    relation_kind,
    rule_counts,
)

STAFF = StaffContact(name="王红", phone="010-62345678", organisation="科育社区居委会")
NAMED = Contact(name="赵平", phone="13900001111")


@pytest.mark.parametrize("word", ["儿子", "女儿", "长子", "次女", "养子", "养女", "继子", "继女",
                                  "独生子女", "子", "女", "二儿子", "小女儿", "son", "Daughter"])
def test_child_words_are_children(word: str) -> None:
    assert relation_kind(word) is RelationKind.CHILD


@pytest.mark.parametrize(("word", "kind"), [
    ("妻子", RelationKind.SPOUSE), ("丈夫", RelationKind.SPOUSE), ("老伴", RelationKind.SPOUSE),
    ("配偶", RelationKind.SPOUSE), ("孙子", RelationKind.GRANDCHILD), ("外孙女", RelationKind.GRANDCHILD),
    ("侄子", RelationKind.OTHER_RELATIVE), ("外甥", RelationKind.OTHER_RELATIVE),
    ("儿媳", RelationKind.CHILD_IN_LAW), ("女婿", RelationKind.CHILD_IN_LAW),
    ("姐夫", RelationKind.OTHER_RELATIVE), ("弟弟", RelationKind.SIBLING),
    ("母亲", RelationKind.PARENT), ("邻居", RelationKind.NON_RELATIVE),
    ("干女儿", RelationKind.NON_RELATIVE), ("社区工作人员", RelationKind.COMMUNITY_STAFF),
    ("继承人", RelationKind.HEIR), ("本人", RelationKind.SELF), ("", RelationKind.UNKNOWN),
])
def test_relation_words_that_are_not_children(word: str, kind: RelationKind) -> None:
    assert relation_kind(word) is kind


@pytest.mark.parametrize(("phone", "ok"), [
    ("13812345678", True), ("138 1234 5678", True), ("+86 138-1234-5678", True),
    ("010-62345678", True), ("62345678", True), ("1381234567", False), ("12812345678", False),
    ("", False), (None, False), ("无", False), ("00000000", False),
])
def test_phone_validity(phone: str | None, ok: bool) -> None:
    assert is_valid_phone(phone) is ok


def test_elder_with_children_has_a_child_as_first_contact() -> None:
    rels = [Relative("李梅", "妻子", "13800000001", lives_with=True),
            Relative("李强", "儿子", "13800000002"),
            Relative("张三", "邻居", "13800000003", designated=True)]
    c = choose_first_contact(rels, has_spouse=True, community_staff=STAFF)
    assert (c.name, c.rule, c.valid) == ("李强", FirstContactRule.CHILD, True)
    assert "子女" in c.reason_zh


def test_child_with_a_phone_is_preferred_then_one_living_with_the_elder() -> None:
    rels = [Relative("甲", "长子", None, lives_with=True),
            Relative("乙", "次女", "13800000002"),
            Relative("丙", "小女儿", "13800000003", lives_with=True)]
    assert choose_first_contact(rels, has_spouse=False).name == "丙"
    assert choose_first_contact(rels[:2], has_spouse=False).name == "乙"


def test_child_without_phone_is_chosen_but_not_valid() -> None:
    c = choose_first_contact([Relative("甲", "儿子", "")], has_spouse=False, community_staff=STAFF)
    assert c.rule is FirstContactRule.CHILD and not c.valid
    assert "无联系电话" in c.reason_zh


def test_deceased_only_child_does_not_count_as_a_child() -> None:
    # 计划生育特殊家庭: the only child died; no spouse → committee staff
    rels = [Relative("甲", "独生子女", "13800000002", contactable=False)]
    c = choose_first_contact(rels, has_spouse=False, community_staff=STAFF)
    assert c.rule is FirstContactRule.COMMUNITY_STAFF and c.name == "王红" and c.valid


def test_no_children_designated_relative_is_first_contact() -> None:
    rels = [Relative("甲", "侄子", "13800000002", designated=True),
            Relative("乙", "弟弟", "13800000003")]
    c = choose_first_contact(rels, has_spouse=False, community_staff=STAFF)
    assert (c.name, c.rule, c.valid) == ("甲", FirstContactRule.DESIGNATED_RELATIVE, True)


def test_no_children_designated_heir_is_first_contact() -> None:
    rels = [Relative("甲", "朋友", "13800000002", designated=True, is_heir=True)]
    c = choose_first_contact(rels, has_spouse=False, community_staff=STAFF)
    assert (c.name, c.rule) == ("甲", FirstContactRule.HEIR)


def test_designated_neighbour_who_is_not_relative_or_heir_is_not_accepted() -> None:
    rels = [Relative("甲", "邻居", "13800000002", designated=True)]
    c = choose_first_contact(rels, has_spouse=False, community_staff=STAFF)
    assert c.rule is FirstContactRule.COMMUNITY_STAFF


def test_no_spouse_no_children_gets_community_staff() -> None:
    c = choose_first_contact([Relative("乙", "弟弟", "13800000003")], has_spouse=False,
                             community_staff=STAFF)
    assert (c.name, c.rule, c.valid) == ("王红", FirstContactRule.COMMUNITY_STAFF, True)
    assert "经常居住地" in c.reason_zh


def test_no_spouse_no_children_without_staff_set_is_not_valid() -> None:
    c = choose_first_contact([], has_spouse=False)
    assert c.rule is FirstContactRule.COMMUNITY_STAFF and not c.valid and c.name is None


def test_no_children_with_spouse_and_nobody_designated_is_named_by_the_street() -> None:
    rels = [Relative("李梅", "老伴", "13800000001", lives_with=True)]
    c = choose_first_contact(rels, community_staff=STAFF, street_designated=NAMED)
    assert (c.name, c.rule, c.valid) == ("赵平", FirstContactRule.COMMUNITY_DESIGNATED, True)
    missing = choose_first_contact(rels, community_staff=STAFF)
    assert missing.rule is FirstContactRule.COMMUNITY_DESIGNATED and not missing.valid


def test_check_flags_a_neighbour_when_a_child_exists() -> None:
    probs = check_first_contact(Contact("张三", "13800000003", "邻居"),
                                [Relative("李强", "儿子", "13800000002")])
    assert [p.code for p in probs] == ["rule_violation"]


def test_check_accepts_a_child_with_a_valid_phone() -> None:
    assert check_first_contact(Contact("李强", "13800000002", "儿子"),
                               [Relative("李强", "儿子")], rule="child") == []


def test_check_reports_missing_and_bad_phones_and_rule_mismatch() -> None:
    assert [p.code for p in check_first_contact(None)] == ["missing"]
    assert [p.code for p in check_first_contact(Contact("甲", "", "侄子"))] == ["no_phone"]
    assert [p.code for p in check_first_contact(Contact("甲", "12345", "侄子"))] == ["invalid_phone"]
    probs = check_first_contact(Contact("甲", "13800000002", "邻居"), rule=FirstContactRule.CHILD)
    assert [p.code for p in probs] == ["rule_mismatch"]


def test_register_lists_elders_without_valid_first_contact() -> None:
    df = pd.DataFrame([
        {"elder_id": 1, "name": "甲", "first_contact_name": "李强", "first_contact_relation": "儿子",
         "first_contact_phone": "13800000002", "first_contact_rule": "child",
         "household_relations": ["儿子"]},
        {"elder_id": 2, "name": "乙", "first_contact_name": None, "first_contact_relation": None,
         "first_contact_phone": None, "first_contact_rule": None, "household_relations": []},
        {"elder_id": 3, "name": "丙", "first_contact_name": "张三", "first_contact_relation": "邻居",
         "first_contact_phone": "13800000003", "first_contact_rule": "community_designated",
         "household_relations": ["配偶", "女儿"]},
        {"elder_id": 4, "name": "丁", "first_contact_name": "王五", "first_contact_relation": "侄子",
         "first_contact_phone": "1380000", "first_contact_rule": "designated_relative",
         "household_relations": []},
    ])
    gaps = elders_without_valid_first_contact(df)
    assert list(gaps["elder_id"]) == [2, 3, 4]
    codes = dict(zip(gaps["elder_id"], gaps["problems"]))
    assert codes[2] == ["missing"] and codes[3] == ["rule_violation"] and codes[4] == ["invalid_phone"]
    counts = rule_counts(df).set_index("rule")["count"]
    assert counts["child"] == 1 and counts["none"] == 1 and counts.sum() == len(df)


# ------------------------------------------------------------------ properties

_WORDS = ["儿子", "女儿", "长子", "养女", "妻子", "老伴", "孙子", "侄女", "邻居", "弟弟", "继承人",
          "社区工作人员", "儿媳", "女婿", "朋友", "", "母亲"]
_phones = st.sampled_from(["13812345678", "010-62345678", "", None, "123", "15900001111"])
_relatives = st.builds(
    Relative, name=st.text(min_size=1, max_size=4),
    relation=st.one_of(st.sampled_from(_WORDS), st.text(max_size=6)),
    phone=_phones, lives_with=st.booleans(), lives_nearby=st.booleans(), is_heir=st.booleans(),
    designated=st.booleans(), contactable=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(rels=st.lists(_relatives, max_size=6), has_spouse=st.one_of(st.none(), st.booleans()),
       staff=st.booleans())
def test_chosen_contact_is_a_child_whenever_a_child_with_a_phone_exists(
    rels: list[Relative], has_spouse: bool | None, staff: bool
) -> None:
    c = choose_first_contact(rels, has_spouse=has_spouse, community_staff=STAFF if staff else None,
                             street_designated=NAMED)
    assert isinstance(c.rule, FirstContactRule)
    live_children = [r for r in rels if r.contactable and r.kind is RelationKind.CHILD]
    if any(is_valid_phone(r.phone) for r in live_children):
        assert c.rule is FirstContactRule.CHILD and c.valid
        assert relation_kind(c.relation) is RelationKind.CHILD
    if live_children:
        assert c.rule is FirstContactRule.CHILD
    else:
        assert c.rule is not FirstContactRule.CHILD
    # a choice is valid only with a name and a valid phone
    if c.valid:
        assert c.name and is_valid_phone(c.phone)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=12), st.none(), st.floats(allow_nan=True)))
def test_relation_parser_never_crashes(text: object) -> None:
    assert isinstance(relation_kind(text), RelationKind)
    check_first_contact(Contact("甲", "13800000002", str(text)), [Relative("乙", str(text))],
                        rule=str(text))
