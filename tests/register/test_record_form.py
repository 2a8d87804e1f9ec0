"""Issue 20: the whole record form 附件1-2 as import columns, field errors vs row errors, stewards, sources."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.enums import Category, StewardKind, WelfareStatus
from gridmap.domain.idcard import make_id_number
from gridmap.register.columns import (
    CANONICAL_COLUMNS,
    MEMBER_FIELD_VARIANTS,
    MEMBER_FIELDS,
    map_headers,
    member_column,
    parse_member_header,
)
from gridmap.register.form import parse_family_doctor, parse_income, parse_units, parse_welfare_detail
from gridmap.register.importer import import_ledger, list_quarantine
from gridmap.register.validate import mask_cell
from gridmap.store.models import Community, District, Elder, HouseholdMember, Steward, Street
from tests.register.conftest import make_rows, write_csv

runner = CliRunner()

#: The form's own labels the issue names (sections 三, 四, the family-doctor wish, 其他).
FORM_LABELS = ["饮水是否安全", "生活用电是否安全", "住房是否安全", "家庭每月收入（元）",
               "家庭每月领取养老保险、社会救助和社会福利补贴等情况", "帮扶单位（组织）", "帮扶责任人",
               "帮扶责任人联系电话", "帮扶措施", "家庭医生签约意愿", "其他特殊困难情形"]


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _cli(engine: Engine, *args: str):  # noqa: ANN202
    return runner.invoke(app, ["register", *args, "--database-url", _url(engine)])


# ------------------------------------------------------------ parsers (hypothesis, edge cases as examples)

WELFARE = {"低保": (WelfareStatus.DIBAO, False), "城乡低保": (WelfareStatus.DIBAO, False),
           "低收入": (WelfareStatus.LOW_INCOME, False), "特困": (WelfareStatus.TEKUN, None),
           "特困（城乡）": (WelfareStatus.TEKUN, None), "城乡特困": (WelfareStatus.TEKUN, None),
           "特困人员": (WelfareStatus.TEKUN, None), "分散供养特困": (WelfareStatus.TEKUN, True),
           "分散供养特困人员": (WelfareStatus.TEKUN, True), "集中供养特困": (WelfareStatus.TEKUN, False),
           "生活困难": (WelfareStatus.HARDSHIP, False), "无": (None, None), "": (None, None),
           "hardship": (WelfareStatus.HARDSHIP, False)}


@given(st.sampled_from(sorted(WELFARE)), st.sampled_from(["", " ", "\u3000"]))
@example("特困(城乡)", "")
@example("分散供养特困", " ")
def test_benefit_values_the_departments_use(value, pad):
    expected = WELFARE.get(value, (WelfareStatus.TEKUN, None))
    assert parse_welfare_detail(pad + value + pad) == expected


@given(st.text(max_size=12))
@example("富裕")
@example("特")
def test_benefit_parser_answers_or_raises_valueerror(text):
    try:
        status, dispersed = parse_welfare_detail(text)
    except ValueError:
        return
    assert status is None or isinstance(status, WelfareStatus)
    assert dispersed in (None, True, False)


@given(st.integers(0, 10_000_000), st.sampled_from(["{}", "{:,}", "{}元", "约{}", "{}.0", "{:,}元"]))
@example(0, "{}")
@example(3500, "{:,}元")
def test_income_amounts(amount, fmt):
    assert parse_income(fmt.format(amount)) == float(amount)


@given(st.sampled_from(["很多", "-5", "3500美元", "1e9", "abc", "20000000"]))
def test_income_refuses_what_is_no_amount(text):
    with pytest.raises(ValueError):
        parse_income(text)


@given(st.sampled_from([("已签约", (True, True)), ("愿意", (True, None)), ("不愿意", (False, None)),
                        ("是", (True, None)), ("否", (False, None)), ("未签约", (None, False)), ("", (None, None))]))
def test_family_doctor_wish(case):
    assert parse_family_doctor(case[0]) == case[1]


@given(st.lists(st.sampled_from(["社区居委会", "养老服务驿站", "家庭医生", "邻里亲属", "社会工作服务机构"]),
                min_size=1, max_size=4, unique=True), st.sampled_from(["、", "，", ",", "；", "/"]))
@example(["社区居委会"], "、")
def test_assistance_units_split(units, sep):
    assert parse_units(sep.join(units)) == units


@given(st.integers(1, 9), st.sampled_from(sorted(set(MEMBER_FIELDS) | set(MEMBER_FIELD_VARIANTS))))
@example(1, "居民身份证号码")
@example(9, "是否为低保对象/特困人员")
def test_household_member_headers(n, label):
    got = parse_member_header(f"家庭成员{n}{label}")
    canon = label if label in MEMBER_FIELDS else MEMBER_FIELD_VARIANTS[label]
    assert got == (n, canon)


def test_every_label_of_the_form_is_an_import_column():
    for label in FORM_LABELS:
        assert label in CANONICAL_COLUMNS
    headers = FORM_LABELS + [member_column(2, f) for f in MEMBER_FIELDS]
    mapping, mapped, unknown = map_headers(headers)
    assert unknown == [] and mapped == {}
    assert set(mapping.values()) == set(headers)


def test_household_member_id_numbers_are_masked_in_reports():
    number = make_id_number("110108", date(1950, 3, 3), 7, "女")
    shown = mask_cell("家庭成员2居民身份证号码", number)
    assert number not in shown and shown.startswith("110108") and "*" in shown
    assert mask_cell("家庭成员1姓名", "王秀兰") != "王秀兰"


# ------------------------------------------------------------ import: every column, both backends


def _full_row(i: int) -> dict[str, str]:
    row = make_rows(1, start=500 + i)[0]
    spouse = make_id_number("110108", date(1948, 2, 2), 11 + i, "男")
    row.update({
        "饮水是否安全": "是", "生活用电是否安全": "否", "住房是否安全": "√", "家庭每月收入（元）": "3,500元",
        "家庭每月领取养老保险、社会救助和社会福利补贴等情况": "养老金3000元/月；高龄津贴100元/月",
        "帮扶单位（组织）": "社区居委会、养老服务驿站", "帮扶责任人": "赵帮扶", "帮扶责任人联系电话": "13912345678",
        "帮扶措施": "每周电话问候", "家庭医生签约意愿": "愿意", "其他特殊困难情形": "照料者患病，家庭照料困难",
        "低保特困情况": "分散供养特困",
        member_column(1, "姓名"): "王配偶", member_column(1, "性别"): "男",
        member_column(1, "居民身份证号码"): spouse, member_column(1, "与户主关系"): "配偶",
        member_column(1, "健康状况"): "慢性病", member_column(1, "是否为低保对象/特困人员"): "低保",
        member_column(2, "姓名"): "王孙子", member_column(2, "与户主关系"): "孙子",
        member_column(2, "是否为低保对象/特困人员"): "否",
    })
    return row


def test_every_column_of_the_form_is_stored(engine, reference, ledger_dir):
    rows = [_full_row(0), _full_row(1)]
    rows[1]["低保特困情况"] = "生活困难"
    rows[1]["家庭医生签约意愿"] = "已签约"
    rows[1]["其他特殊困难情形"] = ""
    rep = import_ledger(engine, write_csv(rows, ledger_dir / "form.csv"), "人社局")
    assert rep.rows_imported == 2 and rep.rows_rejected == 0, rep.errors
    assert rep.source == "人社局" and [w for w in rep.warnings if w.row > 0] == []
    with Session(engine) as s:
        a = s.scalars(select(Elder).where(Elder.id_number == rows[0]["居民身份证号码"])).one()
        b = s.scalars(select(Elder).where(Elder.id_number == rows[1]["居民身份证号码"])).one()
        assert (a.water_safe, a.electricity_safe, a.housing_safe) == (True, False, True)
        assert a.monthly_income == 3500.0 and a.benefits.startswith("养老金3000")
        assert a.assistance_units == ["社区居委会", "养老服务驿站"]
        assert (a.assistance_person, a.assistance_phone, a.assistance_measures) == ("赵帮扶", "13912345678",
                                                                                   "每周电话问候")
        assert a.wants_family_doctor is True and a.family_doctor_signed is None
        assert b.wants_family_doctor is True and b.family_doctor_signed is True
        assert a.welfare_status is WelfareStatus.TEKUN and a.dispersed_support is True
        assert b.welfare_status is WelfareStatus.HARDSHIP and b.dispersed_support is False
        assert a.other_reason == "照料者患病，家庭照料困难" and Category.OTHER in a.categories
        assert b.other_reason is None and Category.OTHER not in b.categories
        members = s.scalars(select(HouseholdMember).where(HouseholdMember.elder_id == a.id)
                            .order_by(HouseholdMember.seq)).all()
        assert [(m.seq, m.name, m.relation) for m in members] == [(1, "王配偶", "配偶"), (2, "王孙子", "孙子")]
        assert members[0].id_number == rows[0][member_column(1, "居民身份证号码")] and members[0].sex == "男"
        assert members[0].welfare_status is WelfareStatus.DIBAO and members[1].welfare_status is None
        # history: the new elder and its members are recorded as created
        n_created = s.execute(text("SELECT count(*) FROM register_change WHERE field = '*created*' "
                                   "AND entity = 'household_member'")).scalar_one()
        assert n_created == 4


@pytest.mark.parametrize("source", ["人社局", "数据局", "大数据平台", "human_resources", "data_bureau"])
def test_human_resources_and_the_data_bureau_are_sources(engine, reference, ledger_dir, source):
    rep = import_ledger(engine, write_csv(make_rows(2, start=600), ledger_dir / "s.csv"), source)
    assert rep.rows_imported == 2 and rep.source in ("人社局", "数据局")


# ------------------------------------------------------------ field errors: imported, warned, quarantined, fixed


def test_a_field_error_keeps_the_elder_and_can_be_fixed_later(engine, reference, ledger_dir):
    rows = make_rows(4, start=700)
    first = import_ledger(engine, write_csv(rows, ledger_dir / "a.csv"), "民政")
    assert first.rows_imported == 4
    old_phone = rows[1]["联系电话"]
    rows[1]["联系电话"] = "12345"  # a typo: the stored phone stays
    rows[1]["是否独居"] = "是"  # the row's other fields still update
    rows[2]["家庭每月收入（元）"] = "很多"
    new = make_rows(1, start=720)[0]
    new["第一联系人电话"] = "1390000"  # a new elder with a typo: imported without that field
    rep_path = ledger_dir / "r.json"
    res = runner.invoke(app, ["register", "import", str(write_csv(rows + [new], ledger_dir / "b.csv")),
                              "--database-url", _url(engine), "--report", str(rep_path)])
    assert res.exit_code == 0, res.output
    d = json.loads(rep_path.read_text(encoding="utf-8"))
    assert d["rows_rejected"] == 0 and d["errors"] == [] and d["rows_imported"] == 1
    keys = {"row", "column", "value", "code", "message_zh", "message_en"}
    warned = {(w["row"], w["column"], w["code"]) for w in d["warnings"]}
    assert {(3, "联系电话", "phone_format"), (4, "家庭每月收入（元）", "income_invalid"),
            (6, "第一联系人电话", "phone_format")} <= warned
    assert all(set(w) == keys for w in d["warnings"])
    assert "12345" not in json.dumps(d, ensure_ascii=False)
    with Session(engine) as s:
        e = s.scalars(select(Elder).where(Elder.id_number == rows[1]["居民身份证号码"])).one()
        assert e.phone == old_phone and Category.LIVING_ALONE in e.categories
        n = s.scalars(select(Elder).where(Elder.id_number == new["居民身份证号码"])).one()
        assert n.first_contact is not None and n.first_contact.phone is None
    pending = list_quarantine(engine)
    assert {q["row"] for q in pending} == {3, 4, 6}
    # fixed in the quarantine export and re-submitted: the field is stored, the quarantine emptied
    out = ledger_dir / "fix.xlsx"
    assert _cli(engine, "quarantine", "export", str(out)).exit_code == 0
    import openpyxl

    wb = openpyxl.load_workbook(out)
    ws = wb.active
    headers = [c.value for c in ws[1]]
    for r in range(2, ws.max_row + 1):
        row_no = int(ws.cell(row=r, column=headers.index("原行号") + 1).value)
        col, value = {3: ("联系电话", "13812345678"), 4: ("家庭每月收入（元）", "2800"),
                      6: ("第一联系人电话", "13900002222")}[row_no]
        ws.cell(row=r, column=headers.index(col) + 1, value=value)
    wb.save(out)
    res = _cli(engine, "quarantine", "resubmit", str(out))
    assert res.exit_code == 0, res.output
    assert list_quarantine(engine) == []
    with Session(engine) as s:
        assert s.scalar(select(Elder.phone).where(Elder.id_number == rows[1]["居民身份证号码"])) == "13812345678"
        assert s.scalar(select(Elder.monthly_income).where(Elder.id_number == rows[2]["居民身份证号码"])) == 2800.0
        assert s.scalar(select(func.count()).select_from(Elder)) == 5


# ------------------------------------------------------------ nobody without a steward (三(二)3)


def _areas_with_steward(engine: Engine, reference) -> int:
    from gridmap.register.columns import normalize_header
    from gridmap.store.db import session_scope

    ref = reference[1]
    code = ref.communities["万寿路街道"][normalize_header("翠微路社区")]
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区"))
        s.flush()
        stt = Street(name="万寿路街道", code="110108001000", district_code="110108000000")
        s.add(stt)
        s.flush()
        c = Community(name=ref.community_names[code], code=code, street_id=stt.id)
        s.add(c)
        s.flush()
        for k, name in ((2, "后来的管家"), (1, "社区探访管家")):
            s.add(Steward(code=f"V-{k}", name=name, kind=StewardKind.VISIT, organisation=c.name, community_id=c.id))
        s.add(Steward(code="S-1", name="服务管家甲", kind=StewardKind.SERVICE, organisation="驿站", community_id=c.id))
        s.flush()
        return int(s.scalar(select(Steward.id).where(Steward.code == "V-1")))


def test_new_elders_without_a_matching_steward_get_the_communitys(engine, reference, ledger_dir):
    sid = _areas_with_steward(engine, reference)
    rows = [r for r in make_rows(9, start=800) if r["居（村）"] == "翠微路社区"][:3]
    rows[0]["探访管家"] = "不存在的人"
    rows[1]["探访管家"] = ""
    rows[2]["探访管家"] = "后来的管家"
    rep = import_ledger(engine, write_csv(rows, ledger_dir / "st.csv"), "民政")
    assert rep.rows_imported == 3
    with Session(engine) as s:
        got = {e.id_number: e.visit_steward_id for e in s.scalars(select(Elder))}
        other = s.scalar(select(Steward.id).where(Steward.code == "V-2"))
    assert got[rows[0]["居民身份证号码"]] == sid and got[rows[1]["居民身份证号码"]] == sid
    assert got[rows[2]["居民身份证号码"]] == other  # a matching name is kept
    assert sorted(rep.stewards_defaulted) == [2, 3]
    flagged = [w for w in rep.warnings if w.code == "steward_defaulted"]
    assert [(w.row, w.column) for w in flagged] == [(2, "探访管家")]
    assert rep.as_dict()["stewards_defaulted"] == [2, 3]


def test_the_row_by_row_path_gives_the_same_register(reference, ledger_dir, tmp_path):
    """The bulk path and the ORM reference path store the same elders, contacts, members and history."""
    from gridmap.store.db import init_db, make_engine

    rows = [_full_row(10), _full_row(11)] + make_rows(3, start=900)
    f = write_csv(rows, ledger_dir / "same.csv")

    def dump(eng: Engine) -> list[tuple]:
        with eng.connect() as c:
            elders = c.execute(text("SELECT id, name, id_number, phone, categories, welfare_status, "
                                    "dispersed_support, monthly_income, assistance_units, visit_steward_id, "
                                    "entered_on, field_sources, geocode_quality, street_id FROM elder "
                                    "ORDER BY id")).all()
            fcs = c.execute(text("SELECT elder_id, name, relation, phone, rule, valid FROM first_contact "
                                 "ORDER BY elder_id")).all()
            hm = c.execute(text("SELECT elder_id, seq, name, sex, id_number, relation, health, welfare_status "
                                "FROM household_member ORDER BY elder_id, seq")).all()
            hist = c.execute(text("SELECT entity, entity_id, elder_id, field FROM register_change "
                                  "ORDER BY entity, entity_id")).all()
            feed = c.execute(text("SELECT kind, elders FROM change_log ORDER BY seq")).all()
        return [tuple(map(str, r)) for r in elders + fcs + hm + hist + feed]

    got = {}
    for bulk in (True, False):
        eng = make_engine(f"sqlite:///{tmp_path / f'{bulk}.sqlite'}")
        init_db(eng)
        import_ledger(eng, f, "民政", bulk=bulk)
        got[bulk] = dump(eng)
        eng.dispose()
    assert got[True] == got[False]
    assert len(got[True]) > 5 + 5 + 4


# ------------------------------------------------------------ a department's own layout, never seen before


def test_a_departments_own_layout_with_a_household_sheet_imports(engine, reference, ledger_dir):
    import openpyxl

    rows = [_full_row(20), _full_row(21), _full_row(22)]
    layout = ["备注说明", "身份证号码", "老人姓名", "性别", "手机", "社区", "街道", "住址", "家庭月收入",
              "饮水安全", "用电安全", "住房安全", "帮扶单位", "帮扶人", "帮扶人电话", "帮扶措施", "家庭医生签约",
              "低保特困", "其他特殊困难", "录入人", "录入日期"]
    source_col = {"身份证号码": "居民身份证号码", "老人姓名": "姓名", "手机": "联系电话", "社区": "居（村）",
                  "街道": "街道（乡镇）", "住址": "家庭住址", "家庭月收入": "家庭每月收入（元）",
                  "饮水安全": "饮水是否安全", "用电安全": "生活用电是否安全", "住房安全": "住房是否安全",
                  "帮扶单位": "帮扶单位（组织）", "帮扶人": "帮扶责任人", "帮扶人电话": "帮扶责任人联系电话",
                  "家庭医生签约": "家庭医生签约意愿", "低保特困": "低保特困情况", "其他特殊困难": "其他特殊困难情形"}
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "海淀区特殊困难老年人台账"
    ws.append(["2026年11月 特殊困难老年人信息台账（某街道）"])
    ws.append(layout)
    for r in rows:
        ws.append(["" if h in ("备注说明", "录入人", "录入日期") else r.get(source_col.get(h, h), "") for h in layout])
    hs = wb.create_sheet("家庭成员")
    hs.append(["序号", "老人身份证号码", "成员姓名", "性别", "与老人关系", "身体状况", "是否低保特困", "身份证号"])
    spouse = make_id_number("110108", date(1947, 7, 7), 31, "女")
    hs.append([2, rows[1]["居民身份证号码"], "李女儿", "女", "女儿", "健康", "否", ""])
    hs.append([1, rows[1]["居民身份证号码"], "李老伴", "女", "配偶", "慢性病", "低保", spouse])
    hs.append([1, "110108199901011234", "查无此人", "男", "子", "健康", "否", ""])
    f = ledger_dir / "dept.xlsx"
    wb.save(f)
    rep = import_ledger(engine, f, "卫健")
    assert rep.rows_imported == 3 and rep.rows_rejected == 0, rep.errors
    assert {"备注说明", "录入人", "录入日期"} <= set(rep.unknown_headers)
    assert rep.mapped_headers["家庭月收入"] == "家庭每月收入（元）"
    with Session(engine) as s:
        e = s.scalars(select(Elder).where(Elder.id_number == rows[1]["居民身份证号码"])).one()
        assert e.monthly_income == 3500.0 and e.assistance_person == "赵帮扶" and e.wants_family_doctor is True
        members = [(m.seq, m.name, m.relation, m.id_number) for m in
                   s.scalars(select(HouseholdMember).where(HouseholdMember.elder_id == e.id)
                             .order_by(HouseholdMember.seq))]
    assert members == [(1, "李老伴", "配偶", spouse), (2, "李女儿", "女儿", None)]


# ------------------------------------------------------------ synthetic register and the migration


@pytest.mark.slow
def test_synth_register_writes_the_whole_form_and_it_imports(engine, reference, ledger_dir, tmp_path):
    from gridmap.layers.admin import load_admin_layers
    from gridmap.synth.register import generate_register
    from gridmap.synth.writer import write_register

    reg = generate_register(load_admin_layers(), 40, 3, near_roads=False)
    f = tmp_path / "synth.csv"
    write_register(reg, f)
    header = f.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    for label in FORM_LABELS + [member_column(1, x) for x in MEMBER_FIELDS]:
        assert label in header
    rep = import_ledger(engine, f, "民政")
    assert rep.rows_rejected == 0 and rep.rows_imported == 40, rep.errors[:3]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(HouseholdMember)) > 0
        assert s.scalar(select(func.count()).select_from(Elder).where(Elder.wants_family_doctor.is_not(None))) == 40
        assert s.scalar(select(func.count()).select_from(Elder).where(Elder.monthly_income.is_not(None))) == 40


def test_migration_0008_upgrades_an_existing_database(engine):
    from gridmap.store.db import current_revision, downgrade_db, init_db

    downgrade_db(engine, "0007")
    assert "other_reason" not in {c["name"] for c in inspect(engine).get_columns("elder")}
    init_db(engine)
    assert current_revision(engine) >= "0008"
    assert "other_reason" in {c["name"] for c in inspect(engine).get_columns("elder")}
