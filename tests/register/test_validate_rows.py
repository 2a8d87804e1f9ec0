"""Validation of ledger rows: every bad cell is reported with its reason, good rows pass clean."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap.domain.idcard import make_id_number
from gridmap.register.validate import (
    infer_contact_rule,
    parse_grade,
    parse_phone,
    validate_frame,
)
from tests.register.conftest import make_rows


def _codes(result, row=2):
    return {e.code for e in result.errors if e.row == row}


def _one(reference, **changes):
    row = make_rows(1)[0]
    row.update(changes)
    return validate_frame(pd.DataFrame([row]), ref=reference[1])


def test_good_rows_pass_and_geocode(reference):
    res = validate_frame(pd.DataFrame(make_rows(12)), ref=reference[1])
    assert res.errors == []
    assert len(res.records) == 12
    r = res.records[0]
    assert r["street"] == "万寿路街道" and r["community_code"].startswith("110108")
    assert r["geocode_quality"] in ("community", "building") and 116 < r["lon"] < 117


IDENTITY_CASES = [
    ({"居民身份证号码": "11010819400101123"}, "居民身份证号码", "id_format"),
    ({"居民身份证号码": "110108194013011234"}, "居民身份证号码", "id_birth_date"),
    ({"居民身份证号码": make_id_number("110108", date(1990, 1, 1), 1, "女")}, "居民身份证号码", "under_60"),
    ({"经度": "121.47", "纬度": "31.23"}, "经度", "coord_outside_haidian"),
    ({"姓名": ""}, "姓名", "missing_required"),
    ({"姓名": "张" * 41}, "姓名", "too_long"),
]


@pytest.mark.parametrize(("changes", "column", "code"), IDENTITY_CASES)
def test_identity_errors_reject_the_row(reference, changes, column, code):
    """Only who the elder is (ID, name, under 60, outside Haidian, duplicate) rejects a row (issue 20)."""
    res = _one(reference, **changes)
    assert res.records == [] and res.field_errors == []
    hits = [e for e in res.errors if e.code == code]
    assert hits, [e.code for e in res.errors]
    e = hits[0]
    assert e.row == 2 and e.column == column
    assert e.message_zh and e.message_en and e.message_zh != e.message_en


FIELD_CASES = [
    ({"性别": "男"}, "性别", "sex_mismatch", ()),
    ({"性别": "未知"}, "性别", "sex_invalid", ()),
    ({"联系电话": "12345"}, "联系电话", "phone_format", ("phone",)),
    ({"第一联系人电话": "1390000"}, "第一联系人电话", "phone_format", ("first_contact",)),
    ({"是否独居": "也许"}, "是否独居", "yes_no_invalid", ("living_alone",)),
    ({"失能等级": "很重"}, "失能等级", "disability_level_invalid", ("disability_level",)),
    ({"是否重残": "是", "残疾人证号": "X1"}, "残疾等级", "handicap_grade_missing", ("severely_handicapped",)),
    ({"是否重残": "是", "残疾等级": "1"}, "残疾人证号", "handicap_cert_missing", ("severely_handicapped",)),
    ({"是否重残": "是", "残疾等级": "四级", "残疾人证号": "A1"}, "残疾等级", "handicap_grade_invalid",
     ("disability_grade", "severely_handicapped")),
    ({"残疾等级": "五级"}, "残疾等级", "handicap_grade_invalid", ("disability_grade",)),
    ({"低保特困情况": "富裕"}, "低保特困情况", "welfare_invalid", ("welfare_status",)),
    ({"坐标系": "EPSG:9999"}, "坐标系", "crs_invalid", ()),
    ({"经度": "39.99", "纬度": "116.33"}, "经度", "coord_swapped", ()),
    ({"经度": "abc", "纬度": "39.9"}, "经度", "coord_invalid", ()),
    ({"街道（乡镇）": "不存在街道"}, "街道（乡镇）", "street_unknown", ()),
    ({"居（村）": "不存在社区"}, "居（村）", "community_unknown", ()),
    ({"居（村）": "二里庄社区"}, "居（村）", "community_not_in_street", ()),
    ({"家庭住址": "x" * 300}, "家庭住址", "too_long", ("address",)),
    ({"饮水是否安全": "还行"}, "饮水是否安全", "yes_no_invalid", ("water_safe",)),
    ({"生活用电是否安全": "?"}, "生活用电是否安全", "yes_no_invalid", ("electricity_safe",)),
    ({"住房是否安全": "危"}, "住房是否安全", "yes_no_invalid", ("housing_safe",)),
    ({"家庭每月收入（元）": "很多"}, "家庭每月收入（元）", "income_invalid", ("monthly_income",)),
    ({"帮扶责任人联系电话": "110"}, "帮扶责任人联系电话", "phone_format", ("assistance_phone",)),
    ({"家庭医生签约意愿": "看情况"}, "家庭医生签约意愿", "family_doctor_invalid", ("wants_family_doctor",)),
    ({"家庭成员1姓名": "李四", "家庭成员1居民身份证号码": "110108194001011234"}, "家庭成员1居民身份证号码",
     "member_id_invalid", ("household",)),
    ({"家庭成员1性别": "男"}, "家庭成员1姓名", "member_name_missing", ("household",)),
    ({"家庭成员1姓名": "李四", "家庭成员1是否为低保对象/特困人员": "富"}, "家庭成员1是否为低保对象/特困人员",
     "welfare_invalid", ("household",)),
]


@pytest.mark.parametrize(("changes", "column", "code", "cleared"), FIELD_CASES)
def test_field_errors_keep_the_elder_without_that_field(reference, changes, column, code, cleared):
    """Any other error imports the elder, the field left empty, with a field-level warning (issue 20)."""
    res = _one(reference, **changes)
    assert res.errors == [], [(e.column, e.code) for e in res.errors]
    assert len(res.records) == 1
    rec = res.records[0]
    hits = [e for e in res.field_errors if e.code == code]
    assert hits, [e.code for e in res.field_errors]
    e = hits[0]
    assert e.row == 2 and e.column == column and e.severity == "warning"
    assert e.message_zh and e.message_en and e.message_zh != e.message_en
    for key in cleared:
        assert key in rec["_skip"] and rec[key] is None
    if column in ("经度", "坐标系", "街道（乡镇）", "居（村）"):
        assert rec["lon"] is not None and rec["street"]  # located from the address instead


def test_grade_three_depends_on_type(reference):
    rid = make_rows(1)[0]["居民身份证号码"]
    mental = _one(reference, 是否重残="是", 残疾等级="3", 残疾人证号=rid + "63")
    assert mental.errors == [] and mental.records[0]["disability_type"] == "精神"
    limb = _one(reference, 是否重残="是", 残疾等级="3", 残疾人证号=rid + "43")
    assert "handicap_grade_invalid" in {e.code for e in limb.field_errors}
    assert limb.records[0]["severely_handicapped"] is None
    unknown = _one(reference, 是否重残="是", 残疾等级="3", 残疾人证号="C123")
    assert unknown.errors == [] and {w.code for w in unknown.warnings} == {"handicap_type_unknown"}


def test_unlocatable_address_without_coordinates(reference):
    res = _one(reference, **{"街道（乡镇）": "", "居（村）": "", "家庭住址": "某某某"})
    assert res.errors == [] and len(res.records) == 1
    assert "address_not_geocoded" in {e.code for e in res.field_errors}
    assert "address" in res.records[0]["_skip"]


def test_duplicate_id_in_file_names_first_row(reference):
    rows = make_rows(2)
    rows[1]["居民身份证号码"] = rows[0]["居民身份证号码"]
    rows[1]["性别"] = rows[0]["性别"]
    res = validate_frame(pd.DataFrame(rows), ref=reference[1])
    dup = [e for e in res.errors if e.code == "duplicate_in_file"]
    assert len(dup) == 1 and dup[0].row == 3 and "2" in dup[0].message_zh
    assert len(res.records) == 1


def test_gcj02_file_is_detected_and_converted(reference):
    from gridmap.layers.crs import gcj02_to_wgs84, wgs84_to_gcj02

    layers = reference[0]
    comm = layers.communities.sample(40, random_state=1)
    rows = make_rows(40)
    for r, c in zip(rows, comm.itertuples(), strict=True):
        lon, lat = wgs84_to_gcj02(c.point.x, c.point.y)
        r.update({"街道（乡镇）": c.street, "居（村）": "", "经度": f"{lon:.6f}", "纬度": f"{lat:.6f}"})
    res = validate_frame(pd.DataFrame(rows), ref=reference[1])
    assert "coord_likely_gcj02" in {w.code for w in res.warnings}
    got = {r["row"]: (r["lon"], r["lat"]) for r in res.records}
    lon0, lat0 = gcj02_to_wgs84(float(rows[0]["经度"]), float(rows[0]["纬度"]))
    assert got[2] == pytest.approx((lon0, lat0), abs=1e-6)


def test_rule_of_contact_from_relation():
    assert infer_contact_rule("儿子").value == "child"
    assert infer_contact_rule("社区工作人员").value == "community_staff"
    assert infer_contact_rule("侄子").value == "designated_relative"


# ------------------------------------------------------------ properties


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.sampled_from(["", "+86", "86", "+86 "]))
def test_any_mobile_number_parses(number, prefix):
    assert parse_phone(prefix + number) == number


@given(st.text(max_size=30))
def test_phone_parser_returns_or_raises_valueerror(text):
    try:
        out = parse_phone(text)
    except ValueError:
        return
    assert out is None or len(out) <= 20


@given(st.integers(1, 4), st.sampled_from(["{}", "{}级", "残疾{}级"]))
def test_grades(g, fmt):
    assert parse_grade(fmt.format(g)) == g


CELL = st.one_of(st.text(max_size=40), st.none(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                 st.sampled_from(["是", "否", "Y", "1", "√", "×", "重度", "低保", "13800138000", "116.3", "39.9"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({}, optional={c: CELL for c in make_rows(1)[0]}), min_size=1, max_size=6),
       st.data())
def test_random_cells_never_crash_and_every_row_is_accounted_for(reference, rows, data):
    base = make_rows(len(rows), seed=3)
    for b, r in zip(base, rows, strict=True):
        b.update(r)
    res = validate_frame(pd.DataFrame(base), ref=reference[1])
    good = {r["row"] for r in res.records}
    bad = {e.row for e in res.errors}
    assert good.isdisjoint(bad)
    assert good | bad | {r["row"] for r in res.pending} == set(range(2, len(base) + 2))
    for e in res.errors:
        assert e.code and e.message_zh and e.message_en and e.column


# ------------------------------------------------------------ implausible birth dates (issue 14, item 9)


def test_birth_date_in_2099_is_refused_naming_row_and_field(reference):
    with_id = _one(reference, 出生日期="2099-01-01")  # the ID is fine: the column used to be ignored
    without_id = _one(reference, 出生日期="2099-01-01", 居民身份证号码="")
    for res in (with_id, without_id):
        hits = [e for e in res.errors + res.field_errors if e.code == "birth_date_future"]
        assert hits, [(e.code, e.column) for e in res.errors]
        e = hits[0]
        assert (e.row, e.column) == (2, "出生日期") and "2099" in e.message_zh and "future" in e.message_en
    # with a valid ID the person is known: a field error; without one the row cannot say who it is
    assert len(with_id.records) == 1 and with_id.errors == []
    assert without_id.records == [] and without_id.pending == []
    too_old = _one(reference, 居民身份证号码=make_id_number("110108", date(1895, 6, 1), 1, "女"), 性别="女")
    e = next(e for e in too_old.errors if e.code == "birth_date_too_old")
    assert e.column == "居民身份证号码" and "120" in e.message_zh and "120" in e.message_en
    future_id = _one(reference, 居民身份证号码="110108209901011234")
    e = next(e for e in future_id.errors if e.column == "居民身份证号码")
    assert "将来" in e.message_zh and "future" in e.message_en and "20990101" not in e.message_zh + e.message_en


def test_birth_date_column_contradicting_the_id_is_refused(reference):
    row = make_rows(1)[0]
    res = _one(reference, 出生日期="1931-05-05")
    assert row["居民身份证号码"][6:14] != "19310505"
    assert res.errors == [] and len(res.records) == 1  # the ID number decides: a field warning
    assert [(e.column, e.code) for e in res.field_errors] == [("出生日期", "birth_date_mismatch")]


@settings(max_examples=40, deadline=None)
@given(born=st.dates(date(1800, 1, 1), date(2200, 12, 31)), with_id=st.booleans())
def test_any_birth_date_outside_0_to_120_years_is_an_error(born, with_id):
    today = date(2025, 6, 1)
    from gridmap.register.validate import Reference

    row = make_rows(1)[0]
    row["出生日期"] = born.isoformat()
    if not with_id:
        row["居民身份证号码"] = ""
    res = validate_frame(pd.DataFrame([row]), ref=Reference(today=today))
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    birth_errors = {e.code for e in res.errors + res.field_errors if e.column == "出生日期"}
    if born > today:
        assert "birth_date_future" in birth_errors
    elif age > 120:
        assert "birth_date_too_old" in birth_errors
    else:
        assert not birth_errors & {"birth_date_future", "birth_date_too_old"}
    if birth_errors & {"birth_date_future", "birth_date_too_old"} and not with_id:
        assert not res.records and not res.pending
