"""The printed record form 附件1-2 (section 五) asks 赡养, 反应能力, 房屋安全, 饮水安全 and shows the needs ticked
at the visit (labels of the rules) with the note; an older visit without them shows its free text as before."""

from __future__ import annotations

from sqlalchemy import Engine

from gridmap.register.exports import load_record_form, record_form_layout
from gridmap.rules.store import record_visit
from tests.tasks.conftest import IN_HOME, NOW, PARSE_NOW, RULES, register


def _texts(engine: Engine, elder_id: int) -> list[str]:
    rows = record_form_layout(load_record_form(engine, elder_id, visits=1), mask=True)
    return [c.text for row in rows for c in row]


def test_the_printed_form_asks_the_new_items_and_shows_the_needs(engine: Engine) -> None:
    from gridmap.rules.visits import parse_visit

    e0 = register(engine)["elders"][0]
    rec = parse_visit(dict(elder_id=e0, visited_on="2026-12-01", mode="上门探访", visitor_role="探访管家",
                           **{**IN_HOME, "reaction": "较差", "family_support": "无人探望或来电",
                              "housing_safety": "不安全"}, needs=["助餐", "适老化改造"], needs_note="楼梯无扶手"),
                      RULES, now=PARSE_NOW)
    record_visit(engine, rec, rules=RULES, now=NOW)
    texts = _texts(engine, e0)
    joined = "\n".join(texts)
    for label in ("赡养情况", "反应能力", "房屋安全", "饮水安全"):
        assert label in texts, label
    i = texts.index("赡养情况")
    assert "☑无人探望或来电" in texts[i + 1] and "□经常探望或来电" in texts[i + 1]
    assert "☑较差" in texts[texts.index("反应能力") + 1]
    assert "☑不安全" in texts[texts.index("房屋安全") + 1] and "☑安全" in texts[texts.index("饮水安全") + 1]
    assert "老年人服务需求：助餐、适老化改造（楼梯无扶手）" in joined
