"""Address masking covers Arabic, Chinese, full-width and other-script numerals (issue 14, item 3).

An address keeps its street/community part and loses the house: building,
unit, floor, room and courtyard numbers in any script, with their words.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gridmap.access.policy import PERSONAL_FIELDS, mask_value
from gridmap.domain.masking import CJK_NUMERALS, mask_address, mask_name

CASES = [
    ("北京市海淀区学院路街道知春里社区十三号楼二单元五零一室", "北京市海淀区学院路街道知春里社区****"),
    ("北京市海淀区学院路街道知春里社区三号院", "北京市海淀区学院路街道知春里社区****"),
    ("北京市海淀区学院路街道知春里社区１３号楼", "北京市海淀区学院路街道知春里社区****"),
    ("北京市海淀区中关村街道科育社区5号楼2单元301", "北京市海淀区中关村街道科育社区****"),
    ("北京市海淀区八里庄街道八里庄北里社区甲3号楼", "北京市海淀区八里庄街道八里庄北里社区****"),
    ("北京市海淀区西三旗街道五道口十3号", "北京市海淀区西三旗街道五道口****"),
    ("北京市海淀区四季青镇六里屯村十号", "北京市海淀区四季青镇六里屯村****"),
    ("海淀区中关村大街２７号", "海淀区中关村大街****"),
    ("海淀区成府路B座", "海淀区成府路****"),
    ("海淀区花园路③号楼", "海淀区花园路****"),
    ("北京市海淀区万寿路街道二里沟社区第三排五号", "北京市海淀区万寿路街道二里沟社区****"),
    ("北京市海淀区学院路街道知春里社区北楼西侧平房", "北京市海淀区学院路街道知春里社区****"),
    ("北京市海淀区学院路街道知春里社区", "北京市海淀区学院路街道知春里社区"),  # nothing below the community
    ("北京市海淀区上地街道上地东里第一社区", "北京市海淀区上地街道上地东里第一社区"),
]


@pytest.mark.parametrize(("address", "masked"), CASES)
def test_the_house_is_masked_in_every_script(address: str, masked: str) -> None:
    assert mask_address(address) == masked


# ------------------------------------------------------------------ generated addresses

STREETS = ["学院路街道", "八里庄街道", "西三旗街道", "四季青镇", "万寿路街道", "海淀街道", "清河街道",
           "北下关街道", "紫竹院街道", "上地街道"]
#: Community names with Chinese numerals that are place names, not house numbers.
COMMUNITIES = ["知春里社区", "八里庄北里社区", "六里屯社区", "二里庄社区", "四道口社区", "三义庙社区",
               "五塔寺社区", "玉海园五里社区", "上地八一社区", "城建四社区", "颐阳一区社区", "五道口社区",
               "上地东里第一社区", "科育社区居委会", "西三旗社区"]
FULL = "０１２３４５６７８９"
SMALL = "零一二三四五六七八九"


def _arabic(n: int) -> str:
    return str(n)


def _full(n: int) -> str:
    return "".join(FULL[int(d)] for d in str(n))


def _cjk_digits(n: int) -> str:  # 501 → 五零一
    return "".join(SMALL[int(d)] for d in str(n))


def _cjk(n: int) -> str:  # 13 → 十三, 21 → 二十一, 105 → 一百零五
    if n < 10:
        return SMALL[n]
    if n < 20:
        return "十" + (SMALL[n % 10] if n % 10 else "")
    if n < 100:
        return SMALL[n // 10] + "十" + (SMALL[n % 10] if n % 10 else "")
    return _cjk_digits(n)


def _mixed(n: int) -> str:  # １3
    s = str(n)
    return "".join(FULL[int(d)] if i % 2 == 0 else d for i, d in enumerate(s))


SCRIPTS = st.sampled_from([_arabic, _full, _cjk_digits, _cjk, _mixed])


@st.composite
def houses(draw: st.DrawFn) -> str:
    """A house part: building (or courtyard), maybe unit, floor and room, in any script."""
    num = lambda lo, hi: draw(SCRIPTS)(draw(st.integers(lo, hi)))  # noqa: E731
    prefix = draw(st.sampled_from(["", "", "甲", "乙", "华清嘉园", "东区", "第"]))
    building = num(1, 40) + draw(st.sampled_from(["号楼", "栋", "幢", "座", "号院", "号", "排", "巷", "弄"]))
    parts = [prefix + building]
    if draw(st.booleans()):
        parts.append(num(1, 8) + draw(st.sampled_from(["单元", "门"])))
    if draw(st.booleans()):
        parts.append(num(1, 20) + "层")
    if draw(st.booleans()):
        parts.append(num(101, 1804) + draw(st.sampled_from(["室", "户", "号", ""])))
    return draw(st.sampled_from(["", "-", " "])).join(parts)


@given(street=st.sampled_from(STREETS), community=st.sampled_from(COMMUNITIES), house=houses(),
       city=st.sampled_from(["北京市海淀区", "海淀区", ""]))
@example(street="学院路街道", community="知春里社区", house="十三号楼二单元五零一室", city="北京市海淀区")
@example(street="学院路街道", community="知春里社区", house="三号院", city="")
@example(street="学院路街道", community="知春里社区", house="１３号楼", city="")
@example(street="八里庄街道", community="八里庄北里社区", house="甲１3号楼-2单元", city="")
def test_generated_addresses_keep_the_community_and_lose_the_house(street: str, community: str, house: str,
                                                                   city: str) -> None:
    head = city + street + community
    address = head + house
    masked = mask_address(address)
    assert masked == head + "****"
    tail = masked[len(head):]
    # no digit of any script and no Chinese numeral after the community
    assert not any(ch.isnumeric() or ch in CJK_NUMERALS for ch in tail)
    assert house not in masked
    assert mask_address(masked) == masked  # idempotent


@given(text=st.text(alphabet=st.sampled_from(list("海淀区学院路街道知春社区华清嘉园号楼单元室院栋座门层户"
                                                  "甲乙第-ABab 0123456789０１２３" + CJK_NUMERALS)),
                    max_size=30))
@example(text="知春里社区十3号")
def test_any_text_masking_is_idempotent_and_leaves_no_arabic_or_full_width_digit(text: str) -> None:
    masked = mask_address(text)
    if not text.strip():
        return
    assert mask_address(masked) == masked
    assert not re.search(r"[0-9０-９]", masked)


def test_the_one_masking_table_serves_exports_too() -> None:
    """The register export masks with access.policy (issue 21: the tables had drifted apart)."""
    from gridmap.register import exports

    assert not hasattr(exports, "_MASKS")
    for field in ("name", "id_number", "phone", "address", "hukou_address", "first_contact_name",
                  "first_contact_phone", "disability_cert_no", "household_names", "elder_signature"):
        assert field in PERSONAL_FIELDS, field
    assert mask_value("household_names", ["王秀兰", "李大山"]) == [mask_name("王秀兰"), mask_name("李大山")]
    assert mask_value("address", "海淀区知春里社区十三号楼") == "海淀区知春里社区****"
