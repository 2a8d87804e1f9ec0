"""Register export (masked by default, audited when not) and the record form 附件1-2, both backends."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine, select

from gridmap._errors import ValidationError
from gridmap.domain.enums import (
    Category,
    Change,
    DisabilityLevel,
    FamilyChange,
    FirstContactRule,
    GeocodeQuality,
    IllnessChange,
    Safety,
    Satisfaction,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)
from gridmap.domain.idcard import make_id_number
from gridmap.register.columns import CANONICAL_COLUMNS
from gridmap.register.exports import (
    ExportError,
    export_record_form,
    export_register,
    load_record_form,
    read_register_frame,
    record_form_layout,
)
from gridmap.register.first_contact import elders_without_valid_first_contact
from gridmap.store.db import session_scope
from gridmap.store.models import (
    AuditLog,
    CareService,
    Community,
    District,
    Elder,
    FirstContact,
    Grid,
    HouseholdMember,
    Street,
    Visit,
)

ID1 = make_id_number("110108", date(1938, 5, 17), 3, "女")
ID2 = make_id_number("110108", date(1942, 1, 9), 5, "男")
ID3 = make_id_number("110108", date(1945, 3, 2), 7, "女")
SECRETS = [ID1, ID2, ID3, "13812345678", "13900001111", "13700002222", "王秀兰", "李大山", "张伟",
           "5号楼2单元301"]


def _area(x0: float, y0: float, size: float = 0.01) -> MultiPolygon:
    return MultiPolygon([box(x0, y0, x0 + size, y0 + size)])


def seed(engine: Engine) -> dict[str, int]:
    """Two streets, three elders (one with visits and a care service); returns ids."""
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区", geom=_area(116.0, 39.8, 0.4)))
        st1 = Street(code="110108010000", name="中关村街道", district_code="110108000000")
        st2 = Street(code="110108020000", name="学院路街道", district_code="110108000000")
        s.add_all([st1, st2])
        s.flush()
        co1 = Community(code="110108010001", name="科育社区居委会", street_id=st1.id)
        co2 = Community(code="110108020001", name="石油大院社区居委会", street_id=st2.id)
        s.add_all([co1, co2])
        s.flush()
        gr = Grid(code="110108010001-01", community_id=co1.id)
        s.add(gr)
        s.flush()
        e1 = Elder(name="王秀兰", id_number=ID1, sex="女", phone="13812345678",
                   address="北京市海淀区中关村街道科育社区5号楼2单元301", street_id=st1.id,
                   community_id=co1.id, grid_id=gr.id, lives_at_hukou=False, hukou_street="月坛街道",
                   hukou_address="北京市西城区月坛街道3号院", categories=[Category.LIVING_ALONE,
                   Category.SEVERELY_HANDICAPPED], disability_level=DisabilityLevel.MODERATE,
                   disability_cert_no=ID1 + "42", water_safe=True, electricity_safe=False,
                   housing_safe=True, monthly_income=3200, benefits="城乡居民养老保险",
                   welfare_status=WelfareStatus.DIBAO, assistance_units=["养老服务驿站", "某某公司"],
                   assistance_person="李娜", assistance_phone="010-62512345",
                   assistance_measures="每周助餐两次", other_notes="右腿行动不便",
                   geom=Point(116.3105, 39.9833), geocode_quality=GeocodeQuality.BUILDING)
        e1.household = [HouseholdMember(seq=1, name="王秀兰", sex="女", id_number=ID1, relation="户主",
                                        health="慢性病", welfare_status=WelfareStatus.DIBAO)]
        e1.first_contact = FirstContact(name="张伟", relation="儿子", phone="13900001111",
                                        rule=FirstContactRule.CHILD)
        e2 = Elder(name="李大山", id_number=ID2, sex="男", phone="13700002222",
                   address="北京市海淀区学院路街道石油大院8号楼101", street_id=st2.id,
                   community_id=co2.id, lives_at_hukou=True, categories=[Category.EMPTY_NEST])
        e2.household = [HouseholdMember(seq=1, name="李大山", relation="户主"),
                        HouseholdMember(seq=2, name="李小红", relation="女儿")]
        e2.first_contact = FirstContact(name="赵邻", relation="邻居", phone="13600003333",
                                        rule=FirstContactRule.COMMUNITY_DESIGNATED)
        e3 = Elder(name="孙桂芝", id_number=ID3, sex="女", street_id=st2.id, community_id=co2.id,
                   categories=[Category.FAMILY_PLANNING_SPECIAL])
        s.add_all([e1, e2, e3])
        s.flush()
        for i, d in enumerate([date(2025, 6, 3), date(2025, 6, 10)], start=1):
            s.add(Visit(elder_id=e1.id, seq=i, visited_on=d, mode=VisitMode.IN_HOME,
                        visitor_role=VisitorRole.VISIT_STEWARD, visitor_name="刘管家",
                        family_change=FamilyChange.UNCHANGED, expression=Change.UNCHANGED,
                        mobility=Change.WORSE, illness=IllnessChange.SERIOUS, illness_name="高血压",
                        mood=Change.BETTER, gas_safety=Safety.UNSAFE, water_heating_safety=Safety.SAFE,
                        electricity_safety=Safety.FAIRLY_SAFE, personal_hygiene=Change.UNCHANGED,
                        home_hygiene=Change.UNCHANGED, indoor_environment=Change.UNCHANGED,
                        needs=f"需要助浴{i}", suggestions="联系驿站", elder_signature="王秀兰",
                        signed_at=datetime(2025, 6, 10, 10, tzinfo=UTC)))
        s.add(CareService(elder_id=e1.id, seq=1, served_on=date(2025, 6, 12), kind="助浴",
                          description="上门助浴", provider="科育驿站", staff_signature="周护理",
                          satisfaction=Satisfaction.SATISFIED))
        s.flush()
        return {"e1": e1.id, "e2": e2.id, "e3": e3.id}


def _sheet_text(path: Path) -> str:
    wb = load_workbook(path)
    parts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows(values_only=True):
            parts.extend(str(v) for v in row if v is not None)
        parts.append(ws.oddHeader.center.text or "")
    return "\n".join(parts)


def test_register_export_has_the_canonical_columns_and_is_masked(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    res = export_register(engine, tmp_path / "reg.xlsx", user="张科员")
    assert res.rows == 3 and res.masked
    ws = load_workbook(res.path).active
    rows = list(ws.iter_rows(values_only=True))
    assert "张科员" in rows[0][0] and "已脱敏" in rows[0][0]  # watermark note, first row
    header = [h for h in rows[1] if h]
    assert header[: len(CANONICAL_COLUMNS)] == list(CANONICAL_COLUMNS)
    assert {"状态", "网格", "定位精度"} <= set(header)
    assert "张科员" in ws.oddHeader.center.text
    data = [dict(zip(rows[1], r)) for r in rows[2:]]
    wang = next(d for d in data if d["街道（乡镇）"] == "中关村街道")
    assert wang["姓名"] == "王*兰" and wang["联系电话"] == "138****5678"
    assert wang["居民身份证号码"] == ID1[:6] + "********" + ID1[-4:]
    assert wang["第一联系人"] == "张*" and wang["第一联系人电话"] == "139****1111"
    assert wang["是否独居"] == "是" and wang["是否重残"] == "是" and wang["网格"] == "110108010001-01"
    assert wang["定位精度"] == GeocodeQuality.BUILDING.label and wang["户籍所在街道"] == "月坛街道"
    text = _sheet_text(res.path)
    for secret in SECRETS:
        assert secret not in text, secret
    with session_scope(engine) as s:
        audit = s.scalars(select(AuditLog)).all()
        assert [(a.username, a.action) for a in audit] == [("张科员", "export")]


def test_unmasked_export_requires_a_reason_and_is_audited(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    with pytest.raises(ValidationError) as err:
        export_register(engine, tmp_path / "x.xlsx", mask=False, user="u")
    assert err.value.code == "reason_required"
    assert not (tmp_path / "x.xlsx").exists()
    res = export_register(engine, tmp_path / "x.xlsx", mask=False, user="u", reason="纸质档案归档")
    text = _sheet_text(res.path)
    assert ID1 in text and "13812345678" in text and "纸质档案归档" in text
    with session_scope(engine) as s:
        a = s.scalars(select(AuditLog).where(AuditLog.action == "export_unmasked")).one()
        assert a.username == "u" and a.detail["reason"] == "纸质档案归档" and a.detail["rows"] == 3


def test_export_of_one_street(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    res = export_register(engine, tmp_path / "s.xlsx", street="学院路街道")
    assert res.rows == 2
    with pytest.raises(ValidationError) as err:
        export_register(engine, tmp_path / "t.xlsx", street="不存在街道")
    assert err.value.code == "unknown_street"


def test_register_frame_feeds_the_first_contact_check(engine: Engine) -> None:
    ids = seed(engine)
    gaps = elders_without_valid_first_contact(read_register_frame(engine))
    by_id = dict(zip(gaps["elder_id"], gaps["problems"]))
    assert ids["e1"] not in by_id
    assert "rule_violation" in by_id[ids["e2"]]  # has a daughter, first contact a neighbour
    assert by_id[ids["e3"]] == ["missing"]


def test_record_form_has_the_sections_and_the_elders_values(engine: Engine, tmp_path: Path) -> None:
    ids = seed(engine)
    res = export_record_form(engine, ids["e1"], tmp_path / "form.xlsx", user="张科员")
    ws = load_workbook(res.path).active
    text = _sheet_text(res.path)
    assert "特殊困难老年人探访关爱服务记录表" in text
    for sec in ("一、探访对象基本情况", "二、家庭基本情况", "三、家庭生活条件", "四、已享受帮扶情况",
                "五、探访情况", "六、关爱服务情况", "备注：此表一式两份"):
        assert sec in text, sec
    assert "王*兰" in text and "138****5678" in text and "张*（儿子）" in text
    assert "☑是  □否" in text  # lives_at_hukou False → ☑ on 否? (checked below precisely)
    assert "□是  ☑否" in text
    assert "☑中度" in text and "□重度" in text
    assert "第 1 次开展探访" in text and "第 2 次开展探访" in text
    assert "☑上门探访" in text and "疾病名称：高血压" in text and "需要助浴2" in text
    assert "☑不安全" in text and "☑较安全" in text
    assert "☑养老服务设施网" in text and "☑企业" in text
    assert "关爱服务情况：助浴：上门助浴（科育驿站）" in text and "☑满意" in text
    assert "人户分离" in text and "第一联系人确定规则：子女" in text
    for secret in SECRETS:
        assert secret not in text, secret
    assert len(ws.merged_cells.ranges) > 20
    assert ws.page_setup.orientation == "portrait" and ws.print_area
    assert ws.cell(row=5, column=1).border.left.style == "thin"


def test_record_form_household_table_has_at_least_three_rows(engine: Engine) -> None:
    ids = seed(engine)
    rows = record_form_layout(load_record_form(engine, ids["e2"]))
    texts = [[c.text for c in r] for r in rows]
    start = texts.index(["序号", "姓名", "性别", "居民身份证号码", "与户主关系", "健康状况",
                         "是否为低保对象/特困人员"])
    assert [t[0] for t in texts[start + 1:start + 4]] == ["1", "2", "3"]
    assert texts[start + 2][1] == "李*红" and texts[start + 2][4] == "女儿"
    # no visit yet: one blank block, every box unticked
    block = [t for t in texts if any("开展探访" in x for x in t)]
    assert len(block) == 1
    assert not any("☑" in x for t in texts[texts.index(block[0]):] for x in t
                   if "满意度" not in x)


def test_unmasked_form_requires_reason_and_is_audited(engine: Engine, tmp_path: Path) -> None:
    ids = seed(engine)
    with pytest.raises(ValidationError):
        export_record_form(engine, ids["e1"], tmp_path / "f.xlsx", mask=False)
    res = export_record_form(engine, ids["e1"], tmp_path / "f.xlsx", mask=False, reason="纸质存档",
                             user="档案员")
    text = _sheet_text(res.path)
    assert "王秀兰" in text and "13812345678" in text
    with session_scope(engine) as s:
        a = s.scalars(select(AuditLog).where(AuditLog.action == "form_unmasked")).one()
        assert a.username == "档案员" and a.entity_id == str(ids["e1"])
    with pytest.raises(ExportError):
        export_record_form(engine, 999999, tmp_path / "n.xlsx")
    with pytest.raises(ExportError):
        export_record_form(engine, ids["e1"], tmp_path / "n.docx")


def test_record_form_pdf_is_written(engine: Engine, tmp_path: Path) -> None:
    pytest.importorskip("reportlab")
    ids = seed(engine)
    res = export_record_form(engine, ids["e1"], tmp_path / "form.pdf")
    data = res.path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 5000
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 1


@pytest.mark.slow
def test_export_of_many_rows_keeps_every_row_masked(tmp_path: Path) -> None:
    """Every row of a larger frame is written, each masked (the speed is measured in bench/exports.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from exports import _frame  # the benchmark's own frame

    n = 3_000
    res = export_register(_frame(n), tmp_path / "big.xlsx")
    assert res.rows == n
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "big.xlsx", read_only=True).worksheets[0]
    texts = [" ".join(str(c) for c in row if c is not None) for row in ws.iter_rows(values_only=True)]
    assert sum("王秀兰" in t for t in texts) == 0
    assert sum("13812345678" in t or ID1 in t for t in texts) == 0
    assert sum("科育社区" in t for t in texts) == n


def test_cli_export_form_and_first_contacts(engine: Engine, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridmap.cli import app

    ids = seed(engine)
    url = engine.url.render_as_string(hide_password=False)
    run = CliRunner().invoke
    r = run(app, ["register", "export", "--out", str(tmp_path / "r.xlsx"), "--unmask",
                  "--database-url", url])
    assert r.exit_code == 2 and not (tmp_path / "r.xlsx").exists()
    r = run(app, ["register", "export", "--out", str(tmp_path / "r.xlsx"), "--user", "科员",
                  "--street", "中关村街道", "--database-url", url])
    assert r.exit_code == 0, r.output
    assert "科员" in _sheet_text(tmp_path / "r.xlsx")
    r = run(app, ["register", "form", str(ids["e1"]), "--out", str(tmp_path / "f.xlsx"),
                  "--database-url", url])
    assert r.exit_code == 0, r.output
    r = run(app, ["register", "form", "999999", "--out", str(tmp_path / "g.xlsx"), "--database-url", url])
    assert r.exit_code == 1 and "999999" in r.output
    r = run(app, ["register", "first-contacts", "--out", str(tmp_path / "gaps.xlsx"),
                  "--database-url", url])
    assert r.exit_code == 0, r.output
    flat = re.sub(r"[\s│┃]", "", r.output)  # rich wraps long cells on narrow terminals
    assert "elderswithoutavalidfirstcontact:2" in flat and "李大山" not in flat
    gaps = [row for row in load_workbook(tmp_path / "gaps.xlsx").active.iter_rows(values_only=True)][2:]
    assert sorted(g[0] for g in gaps) == sorted([ids["e2"], ids["e3"]])
    assert all("李大山" not in str(g) and "13600003333" not in str(g) for g in gaps)


# ------------------------------------------------------------------ formula injection and numerals (issue 14)

FORMULAS = ['=HYPERLINK("http://x.example/a","点击")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1", "＝1+1", " =1"]
FORMULA_START = tuple("=+-@＝＋－＠")


def _unsafe_cells(path: Path) -> list[tuple[str, str, object]]:
    """Formula cells, and text cells starting (after blanks) with a formula character, tab or CR."""
    bad = []
    for ws in load_workbook(path).worksheets:
        for row in ws.iter_rows():
            for c in row:
                v = c.value
                if c.data_type == "f" or (isinstance(v, str) and (
                        v[:1] in ("\t", "\r", "\n") or v.lstrip(" \u3000\t\r\n").startswith(FORMULA_START))):
                    bad.append((ws.title, c.coordinate, v))
    return bad


def _inject(engine: Engine, ids: dict[str, int]) -> None:
    """Formula-like names, address, first contact and notes; a Chinese-numeral and a full-width address."""
    with session_scope(engine, user="test") as s:
        e1, e2, e3 = s.get(Elder, ids["e1"]), s.get(Elder, ids["e2"]), s.get(Elder, ids["e3"])
        e1.name, e1.other_notes = FORMULAS[0], FORMULAS[4]
        e1.address = "北京市海淀区中关村街道科育社区十三号楼二单元五零一室"
        e1.first_contact.name = FORMULAS[2]
        e1.household[0].name = FORMULAS[1]
        e2.name, e2.address = FORMULAS[1], FORMULAS[5]
        e2.first_contact.name = FORMULAS[3]
        e3.name, e3.address, e3.other_notes = FORMULAS[6], "北京市海淀区学院路街道石油大院１３号楼", FORMULAS[7]
        e3.hukou_address = "北京市海淀区学院路街道石油大院三号院"


@pytest.mark.parametrize("mask", [True, False])
def test_every_xlsx_export_writes_formula_text_inert(engine: Engine, tmp_path: Path, mask: bool) -> None:
    import stat

    from gridmap.register.exports import export_first_contact_gaps
    from gridmap.sheets import restore_text

    ids = seed(engine)
    _inject(engine, ids)
    kw = {} if mask else {"mask": False, "reason": "核查"}
    files = [export_register(engine, tmp_path / "reg.xlsx", **kw).path]
    for e in ids.values():
        files.append(export_record_form(engine, e, tmp_path / f"form{e}.xlsx", **kw).path)
    gaps = elders_without_valid_first_contact(read_register_frame(engine))
    files.append(export_first_contact_gaps(gaps, tmp_path / "gaps.xlsx", **kw).path)
    for f in files:
        assert not _unsafe_cells(f), (f.name, _unsafe_cells(f)[:5])
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    rows = list(load_workbook(files[0]).active.iter_rows(values_only=True))
    data = [dict(zip(rows[1], r)) for r in rows[2:]]
    names = {restore_text(d["姓名"]) for d in data}
    addresses = {restore_text(d["家庭住址"]) for d in data}
    if mask:  # masked, then made inert: no leading "=" of the masked name either
        assert "'" + FORMULAS[0][0] + "*" * (len(FORMULAS[0]) - 2) + FORMULAS[0][-1] in {d["姓名"] for d in data}
        assert "北京市海淀区中关村街道科育社区****" in addresses
        assert "北京市海淀区学院路街道石油大院****" in addresses
        text = _sheet_text(files[0]) + "".join(_sheet_text(f) for f in files[1:])
        for house in ("十三号楼", "五零一室", "１３号楼", "三号院"):
            assert house not in text, house
    else:  # in clear, exactly the stored text once the quote is taken off
        assert set(FORMULAS[:2]) <= names  # (a \r is read back as \n from any XML: not compared)
        assert FORMULAS[5] in addresses
