"""The area a steward's stops share is said once on a phone; each stop keeps what finds the door."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gridmap.dashboard.fieldday import common_address_prefix

BASE = "北京市海淀区学院路街道学清苑社区"


def test_the_shared_community_is_cut_after_its_name() -> None:
    stops = [BASE + "14号楼3单元204", BASE + "32号楼5单元203", BASE + "1号楼6单元101"]
    assert common_address_prefix(stops) == BASE


def test_two_communities_share_the_street_only() -> None:
    stops = ["北京市海淀区学院路街道学清苑社区1号楼", "北京市海淀区学院路街道石油大院社区2号楼"]
    assert common_address_prefix(stops) == "北京市海淀区学院路街道"


def test_no_prefix_when_a_stop_would_be_left_empty_or_nothing_is_shared() -> None:
    assert common_address_prefix([BASE, BASE + "1号楼"]) == ""
    assert common_address_prefix(["学清苑社区1号楼", "清华园街道2号"]) == ""
    assert common_address_prefix([]) == ""


_AREA = st.sampled_from(["学清苑社区", "石油大院社区", "西三旗街道", "温泉镇", "东北旺村", "海淀区"])
_REST = st.text(alphabet="0123456789号楼单元室", min_size=1, max_size=8)


@given(st.lists(st.tuples(st.lists(_AREA, min_size=0, max_size=3), _REST), min_size=1, max_size=6))
def test_prefix_is_shared_whole_area_names_and_leaves_every_stop_something(parts) -> None:
    stops = ["".join(areas) + rest for areas, rest in parts]
    prefix = common_address_prefix(stops)
    assert all(s.startswith(prefix) and len(s) > len(prefix) for s in stops)
    assert prefix == "" or re.search(r"(社区|村|街道|镇|区)$", prefix)
