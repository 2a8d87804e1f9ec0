"""Tests of the synthetic register generator: IDs, phones, distributions, streets, rules, determinism, files."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.domain.idcard import age_on, parse_id_number
from gridmap.register.columns import CANONICAL_COLUMNS, map_headers, parse_yes_no
from gridmap.synth import targets as T
from gridmap.synth.register import allocate_streets, generate_register, street_shares

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^010-\d{8}$")


@pytest.fixture(scope="module")
def admin(data_dir):
    from gridmap.layers.admin import load_admin_layers

    return load_admin_layers(data_dir)


@pytest.fixture(scope="module")
def reg1k(admin):
    return generate_register(admin, 1000, 7, near_roads=False)


@pytest.fixture(scope="module")
def reg30k(admin):
    return generate_register(admin, 30000, 11, near_roads=False)


def _digest(reg) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(reg.sheet(), index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(reg.visits.drop(columns=["started_at", "ended_at", "entered_at"]).astype(str),
                                        index=False).to_numpy().tobytes())
    return h.hexdigest()


def _check_people(reg) -> None:
    e = reg.elders
    ids = e["居民身份证号码"]
    assert ids.is_unique
    for number, sex, born, age in zip(ids, e["性别"], e["birth_date"], e["age"], strict=True):
        _, b, s = parse_id_number(number)
        assert (b, s) == (born, sex)
        assert age_on(b, reg.reference_date) == age >= 60
    for col in ("联系电话", "第一联系人电话"):
        ok = e[col].map(lambda p: bool(MOBILE.match(p) or LANDLINE.match(p)))
        assert ok.all(), e.loc[~ok, col].head()
    assert reg.stewards["phone"].map(lambda p: bool(MOBILE.match(p))).all()
    # household members' ID numbers (where given) are valid and differ from the elders'
    member_ids = [m["id_number"] for hh in e["household"] for m in hh if m["id_number"]]
    for number in member_ids[:2000]:
        parse_id_number(number)
    assert not set(member_ids) & set(ids)


def test_people_1k(reg1k):
    assert len(reg1k.elders) == 1000
    _check_people(reg1k)


@pytest.mark.slow
def test_people_30k(reg30k):
    assert len(reg30k.elders) == 30000
    _check_people(reg30k)


def _shares(e: pd.DataFrame) -> dict[str, float]:
    cats = e["categories"]
    return {
        "age_80_plus": float((e["age"] >= 80).mean()),
        "disabled": float(cats.map(lambda c: "disabled" in c).mean()),
        "severely_handicapped": float(e["是否重残"].mean()),
        "family_planning_special": float(e["是否计划生育特殊家庭"].mean()),
        "living_alone": float(e["是否独居"].mean()),
        "empty_nest": float(e["是否空巢"].mean()),
        "other_only": float(cats.map(lambda c: c == ["other"]).mean()),
        "refuse": float((~e["是否愿意接受探访"]).mean()),
        "signed": float(e["是否签约驿站或家庭照护床位"].mean()),
        "female": float((e["性别"] == "女").mean()),
    }


@pytest.mark.parametrize("which", ["reg1k", pytest.param("reg30k", marks=pytest.mark.slow)])
def test_distributions_match_targets(which, request):
    reg = request.getfixturevalue(which)
    n = len(reg.elders)
    got = _shares(reg.elders)
    want = T.expected_shares()
    for key, p in want.items():
        tol = 4 * np.sqrt(p * (1 - p) / n) + 0.005  # four binomial standard errors
        assert abs(got[key] - p) <= tol, (key, got[key], p, tol)
    # the programme over-represents the very old compared with the population
    assert got["age_80_plus"] > T.POPULATION_80_PLUS_SHARE + 0.1


@pytest.mark.parametrize("which", ["reg1k", pytest.param("reg30k", marks=pytest.mark.slow)])
def test_street_shares_follow_census(which, request, admin):
    reg = request.getfixturevalue(which)
    n = len(reg.elders)
    got = reg.elders["街道（乡镇）"].value_counts().reindex(admin.streets["name"], fill_value=0)
    want = street_shares(admin.streets).reindex(got.index) * n
    assert (got - want).abs().max() <= 1.0  # largest-remainder allocation of census × weight
    assert got.sum() == n
    assert len(got) == 29
    # inner streets have more elders per resident than the north-western towns
    pop = admin.streets.set_index("name")["pop_2020"]
    per_res = got / pop
    assert per_res[list(T.OLD_INNER_STREETS)].mean() > 1.5 * per_res[list(T.NEW_NORTHWEST_TOWNS)].mean()
    # every elder's community belongs to its street
    comm_street = admin.communities.set_index("code")["street"]
    assert (reg.elders["community_code"].map(comm_street) == reg.elders["街道（乡镇）"]).all()


def test_allocation_is_exact_for_any_n(admin):
    for n in (0, 1, 29, 1001, 120_000):
        assert allocate_streets(admin.streets, n).sum() == n


def test_categories_overlap_as_designed(reg1k):
    e = reg1k.elders
    cats = e["categories"]
    assert cats.map(len).min() >= 1  # every elder qualifies somehow
    assert not (e["是否独居"] & e["是否空巢"]).any()  # one household type
    disabled = cats.map(lambda c: "disabled" in c)
    assert (disabled & (e["是否独居"] | e["是否空巢"])).any()  # categories overlap
    assert (disabled & e["是否重残"]).any()
    # 失能 has a level; 重残 a grade and certificate number (ID + type code + grade)
    assert (e.loc[disabled, "失能等级"].isin(["重度", "中度", "轻度"])).all()
    assert (e.loc[~disabled, "失能等级"] == "").all()
    h = e[e["是否重残"]]
    assert h["disability_grade"].isin([1, 2, 3]).all()
    assert (h["残疾人证号"].str.len() == 20).all()
    assert (h["残疾人证号"].str[:18] == h["居民身份证号码"]).all()
    assert (h["残疾人证号"].str[19].astype(int) == h["disability_grade"]).all()
    assert h.loc[h["disability_grade"] == 3, "disability_type"].isin(["智力", "精神"]).all()
    assert (e.loc[~e["是否重残"], "残疾人证号"] == "").all()
    # 计生特殊: the only child died or is disabled
    assert (e.loc[e["是否计划生育特殊家庭"], "n_children"] <= 1).all()
    # 特困 only without children (no one legally bound to support them)
    assert (e.loc[e["低保特困情况"] == "特困", "n_children"] == 0).all()
    # living alone: nobody in the household list
    assert (e.loc[e["是否独居"], "household"].map(len) == 0).all()
    assert (e.loc[e["是否空巢"], "household"].map(len) >= 1).all()


@pytest.mark.parametrize("which", ["reg1k", pytest.param("reg30k", marks=pytest.mark.slow)])
def test_first_contacts_follow_the_rules(which, request):
    from gridmap.register.first_contact import is_valid_phone

    e = request.getfixturevalue(which).elders
    rule = e["first_contact_rule"]
    kids = e["n_children"] > 0
    assert (rule[kids] == "child").all()
    assert e.loc[kids, "第一联系人关系"].isin(["儿子", "女儿"]).all()
    named = ~kids & e["first_contact_designation"].isin(["designated_relative", "heir"])
    assert (rule[named] == e.loc[named, "first_contact_designation"]).all()
    nobody = ~kids & ~named
    staff = nobody & ~e["spouse_alive"]
    assert (rule[staff] == "community_staff").all()
    # the committee staff member is the community's visit steward
    assert (e.loc[staff, "第一联系人"] == e.loc[staff, "探访管家"]).all()
    assert (rule[nobody & e["spouse_alive"]] == "community_designated").all()
    # only elders without children and without anyone living with them name someone
    cores = e["spouse_coresident"] | e["child_coresident"]
    assert not (named & cores).any()
    assert e["第一联系人"].str.len().min() >= 2
    assert e["第一联系人电话"].map(is_valid_phone).all()
    if len(e) >= 30000:
        assert set(rule) == {"child", "designated_relative", "heir", "community_designated", "community_staff"}


def test_homes_inside_their_community(reg1k, admin):
    e = reg1k.elders
    polys = admin.communities.set_index("code").geometry
    geoms = polys.reindex(e["community_code"]).to_numpy()
    inside = shapely.contains_xy(geoms, e["经度"].to_numpy(), e["纬度"].to_numpy())
    # homes located to the community point may sit on its edge: allow those only
    assert inside[e["geocode_quality"] != "community"].all()
    assert e["家庭住址"].str.startswith("北京市海淀区").all()
    assert (e["坐标系"] == "WGS84").all()


def test_stewards_double_steward_system(reg1k, admin):
    s = reg1k.stewards
    visit = s[s["kind"] == "visit"]
    assert visit["community_code"].is_unique and len(visit) == len(admin.communities)
    service = s[s["kind"] == "service"]
    counts = reg1k.elders.groupby("community_code").size()
    per_comm = service.groupby("community_code").size()
    expect = np.maximum(1, np.ceil(counts / T.ELDERS_PER_SERVICE_STEWARD)).astype(int)
    assert (per_comm.reindex(counts.index) == expect).all()
    by_code = s.set_index("code")
    e = reg1k.elders
    assert (by_code.loc[e["visit_steward_code"], "community_code"].to_numpy() == e["community_code"].to_numpy()).all()
    assert (by_code.loc[e["service_steward_code"], "kind"] == "service").all()


def test_visit_history(reg1k):
    v = reg1k.visits
    e = reg1k.elders
    ref = reg1k.reference_date
    first = ref - timedelta(days=ref.weekday()) - timedelta(weeks=T.HISTORY_WEEKS)
    assert v["visited_on"].min() >= first and v["visited_on"].max() < ref
    assert (v["visited_on"].max() - v["visited_on"].min()).days >= 7 * (T.HISTORY_WEEKS - 1)
    per = v.groupby("elder_index").size().reindex(range(len(e)), fill_value=0)
    willing = e["是否愿意接受探访"].to_numpy()
    refusers = v[~willing[v["elder_index"]]]
    assert (refusers["mode"] == "phone").all()
    assert per[~willing].between(1, 2).all()  # about monthly
    assert per[willing].mean() > 0.85 * T.HISTORY_WEEKS  # weekly with gaps
    assert (per[willing] < T.HISTORY_WEEKS).any()  # gaps exist
    signed = e["是否签约驿站或家庭照护床位"].to_numpy()
    assert (v.loc[signed[v["elder_index"]], "visitor_role"] == "service_steward").all()
    late = v["late_entry"]
    assert 0 < late.mean() < 0.1
    assert ((v.loc[late, "entered_at"] - v.loc[late, "ended_at"]) >= pd.Timedelta(days=3)).all()
    assert v.loc[v["mode"] == "in_home", "gps_lon"].notna().all()
    assert v.groupby("elder_index")["seq"].apply(lambda s: list(s) == list(range(1, len(s) + 1))).all()


def test_deterministic(admin, reg1k):
    again = generate_register(admin, 1000, 7, near_roads=False)
    assert _digest(again) == _digest(reg1k)
    other = generate_register(admin, 1000, 8, near_roads=False)
    assert _digest(other) != _digest(reg1k)


@pytest.mark.slow
def test_xlsx_and_csv_round_trip(reg1k, tmp_path):
    from openpyxl import load_workbook

    from gridmap.synth.writer import write_register

    paths = write_register(reg1k, tmp_path / "r.xlsx", stewards_out=tmp_path / "s.csv", visits_out=tmp_path / "v.xlsx")
    wb = load_workbook(paths[0], read_only=True)
    rows = list(wb.active.iter_rows(values_only=True))
    from gridmap.register.columns import member_columns

    # the form's columns in order, then household members 二 as repeated groups 家庭成员1… (issue 20)
    assert list(rows[0]) == list(CANONICAL_COLUMNS) + member_columns(3)
    assert len(rows) == 1001
    mapping, mapped, unknown = map_headers(list(rows[0]))
    assert not unknown and not mapped and len(mapping) == len(CANONICAL_COLUMNS) + 18
    col = list(rows[0]).index("是否独居")
    assert [parse_yes_no(r[col]) for r in rows[1:]] == reg1k.elders["是否独居"].tolist()
    col = list(rows[0]).index("居民身份证号码")
    assert [r[col] for r in rows[1:]] == reg1k.elders["居民身份证号码"].tolist()
    write_register(reg1k, tmp_path / "r.csv")
    raw = (tmp_path / "r.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(tmp_path / "r.csv", encoding="utf-8-sig", dtype=str)
    assert list(back.columns) == list(CANONICAL_COLUMNS) + member_columns(3)
    assert set(back["是否重残"]) <= {"是", "否"}


@pytest.mark.slow
def test_cli_writes_same_file_for_same_seed(tmp_path, data_dir):
    from typer.testing import CliRunner

    from gridmap.cli import app

    runner = CliRunner()
    outs = []
    for name in ("a.csv", "b.csv"):
        res = runner.invoke(app, ["synth", "register", "--elders", "200", "--seed", "5", "--no-near-roads",
                                  "--out", str(tmp_path / name), "--data-dir", str(data_dir)])
        assert res.exit_code == 0, res.output
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    res = runner.invoke(app, ["synth", "register", "--elders", "5", "--out", str(tmp_path / "x.txt"),
                              "--no-near-roads", "--data-dir", str(data_dir)])
    assert res.exit_code == 1 and "xlsx" in res.output
