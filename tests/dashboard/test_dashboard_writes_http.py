"""The dashboard's write paths re-derive and re-check every write on the server (issue #14, items 5, 6, 9).

Through the real app (``create_app`` with sign-in, Flask's test client, callbacks posted with the CSRF
header as the renderer posts them) on the 2,000-elder demo store, with forged callback bodies:

* 重新规划本周 (``pln-replan``) is for users who may change plans only (not the read-only inspector),
  and re-reads only the selected street: the other streets' cached results stay;
* a visit is recorded under the steward the server derives (a steward user as themself; a supervisor
  for a steward of their area whose elder it is), never a steward of another street posted by the page;
* 采纳方案 (``pln-accept``) applies the proposal the server computed and kept for that user, re-checked,
  never moves posted by the page (an elder given a service steward as visit steward);
* a visit dated 1900-01-01 is refused.

Every refusal is a bilingual message, writes nothing (read back from the store) and is audited ``denied``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

from gridmap.access import load_user
from gridmap.dashboard.data import SYSTEM_USER, Filters
from gridmap.dashboard.planner import workload
from gridmap.domain.enums import StewardKind
from gridmap.routing.rebalance import rebalance
from gridmap.store.models import AuditLog, Community, Elder, ServiceStation, Steward, Street, Visit
from tests.dashboard.test_dashboard_scope_http import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(demo_engine: Engine, demo_users: dict[str, str]) -> Any:
    from gridmap.dashboard.app import create_app

    return create_app(demo_engine, warm=False, secret_key="writes-test-secret-0123456789abcdef")


@pytest.fixture(scope="module")
def sign_in(app: Any, demo_users: dict[str, str]) -> Callable[[str], Client]:
    return lambda name: Client(app, name, demo_users[name])


def _text(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False)


def _denied(engine: Engine, username: str, entity: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [d or {} for d in conn.execute(select(AuditLog.detail).where(
            AuditLog.username == username, AuditLog.action == "denied", AuditLog.entity == entity)).scalars()]


def _count_visits(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Visit)).scalar_one()


def _visit_stewards(engine: Engine) -> dict[int, int | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Elder.id, Elder.visit_steward_id)).all())


def _find(node: Any, cid: str) -> Any:
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == cid:
            return node["props"]
        node = list(node.values())
    if isinstance(node, list):
        for v in node:
            hit = _find(v, cid)
            if hit is not None:
                return hit
    return None


def _plan_values(c: Client, street: str, **kw: Any) -> dict[str, Any]:
    v = {"pln-street.value": street, "pln-week.value": c.data.default_week(), "pln-run.n_clicks": None,
         "pln-replan.n_clicks": None, "data-version.data": c.data.version, "tabs.value": "planner"}
    v.update(kw)
    return v


def _street_of(engine: Engine, user: str) -> tuple[str, ...]:
    return tuple(load_user(engine, user).scope.street_names or ())


@pytest.fixture
def restore_stewards(demo_engine: Engine, app: Any) -> Iterator[None]:
    """Put every elder's visit steward back after a test that accepts a proposal (the store is shared)."""
    before = _visit_stewards(demo_engine)
    yield
    after = _visit_stewards(demo_engine)
    changed = [e for e, s in after.items() if before.get(e) != s]
    if changed:
        with demo_engine.begin() as conn:
            for e in changed:
                conn.execute(update(Elder).where(Elder.id == e).values(visit_steward_id=before[e]))
        data = app.gridmap_data
        for street in {str(s) for s in data.inputs()[0].set_index("elder_id").loc[changed, "street"]}:
            data.refresh_street(street)


# ------------------------------------------------------------------ item 5: 重新规划本周


def test_the_inspector_cannot_replan_nor_clear_the_cache(sign_in: Callable[[str], Client],
                                                         demo_engine: Engine) -> None:
    c = sign_in("demo_inspector")
    data = c.data
    layout = json.loads(c.layout())
    button = _find(layout, "pln-replan")
    assert button is not None and button.get("disabled") is True  # shown disabled, with the reason
    assert "只能查看，不能重新规划" in _text(layout)
    # the district's figures are cached (what every page reads)
    f = Filters(week=data.default_week())
    data.kpis(SYSTEM_USER, f)
    street = data.streets(SYSTEM_USER)[0]
    workload(data, street, f.week)
    key = ("ind", data.version_of(SYSTEM_USER, f), SYSTEM_USER.scope, f, "district")
    version, cached = data.version, data._cache.peek(key)
    assert cached is not None
    # a forged click of the disabled button
    out = c.call("pln-bars.figure", _plan_values(c, street, **{"pln-replan.n_clicks": 1}), ["pln-replan.n_clicks"])
    text = _text(out)
    assert "您无权调整该街道的规划" in text and "may not change plans" in text  # bilingual refusal
    assert "pln-bars" not in out  # nothing recomputed or shown
    assert data.version == version and data._cache.peek(key) is cached and data._inputs is not None
    assert any(d.get("reason") == "may_not_replan" for d in _denied(demo_engine, "demo_inspector", "plan"))


def test_a_planners_replan_rereads_their_street_only_and_says_what_it_did(
        sign_in: Callable[[str], Client], demo_engine: Engine) -> None:
    c = sign_in("demo_planner")
    data = c.data
    a, b = _street_of(demo_engine, "demo_planner")[:2]
    week = data.default_week()
    assert _find(json.loads(c.layout()), "pln-replan").get("disabled") is not True
    st_a, el_a = workload(data, a, week)
    workload(data, b, week)
    f_b = Filters(week=week, street=b)
    data.kpis(SYSTEM_USER, f_b)
    key_b = ("ind", data.version_of(SYSTEM_USER, f_b), SYSTEM_USER.scope, f_b, "district")
    wl_b = ("workload", *data._pkey(b), week)
    cached_b, cached_wl_b = data._cache.peek(key_b), data._cache.peek(wl_b)
    assert cached_b is not None and cached_wl_b is not None
    # the register changes outside the dashboard: an elder of street A loses their visit steward
    assigned = el_a[el_a["steward_id"].notna()]
    eid, sid = int(assigned["elder_id"].iloc[0]), int(assigned["steward_id"].iloc[0])
    unassigned_before = int(el_a["steward_id"].isna().sum())
    try:
        with demo_engine.begin() as conn:
            conn.execute(update(Elder).where(Elder.id == eid).values(visit_steward_id=None))
        out = c.call("pln-bars.figure", _plan_values(c, a, **{"pln-replan.n_clicks": 1}), ["pln-replan.n_clicks"])
        msg = _text(out["pln-msg"]["children"])
        # it says what it re-read and recomputed: the elders, the stewards, planned vs unassigned
        n_elders = int((data.inputs()[0]["street"] == a).sum())
        st_now, el_now = workload(data, a, week)
        assert "已重新规划" in msg and f"{a}台账 {n_elders} 位老人" in msg
        assert f"重新计算 {len(st_now)} 名管家" in msg and f"本周需上门探访 {int(el_now['visits'].sum())} 次" in msg
        assert f"{int(el_now['steward_id'].isna().sum())} 位未分配" in msg
        assert int(el_now["steward_id"].isna().sum()) == unassigned_before + 1  # the change was read
        assert data._inputs is not None
        assert int(data.inputs()[0].set_index("elder_id").loc[eid, "steward_id"] != sid)
        # street B's cached results were not recomputed
        assert data._cache.peek(key_b) is cached_b and data._cache.peek(wl_b) is cached_wl_b
        assert data.version_of(SYSTEM_USER, f_b) == key_b[1]
        with demo_engine.connect() as conn:
            rows = conn.execute(select(AuditLog.detail).where(
                AuditLog.username == "demo_planner", AuditLog.action == "update", AuditLog.entity == "plan",
                AuditLog.entity_id == a)).scalars().all()
        assert any(d.get("op") == "replan" for d in rows)
    finally:
        with demo_engine.begin() as conn:
            conn.execute(update(Elder).where(Elder.id == eid).values(visit_steward_id=sid))
        data.refresh_street(a)


def test_refresh_street_equals_a_full_rereading_of_that_street(app: Any, demo_engine: Engine) -> None:
    data = app.gridmap_data
    street = data.streets(SYSTEM_USER)[2]
    f = Filters(week=data.default_week(), street=street)
    data.kpis(SYSTEM_USER, f)
    res = data.refresh_street(street)
    assert res.streets == (street,) and res.elders == int((data.inputs()[0]["street"] == street).sum())
    fresh = type(data)(demo_engine, today=data.today)
    got, want = data._part_frames(street, None, None), fresh._part_frames(street, None, None)
    for g, w, key in zip(got, want, ("elder_id", "id", "id", "id"), strict=True):
        pd.testing.assert_frame_equal(g.sort_values(key).reset_index(drop=True),
                                      w.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert _nan_equal(data.kpis(SYSTEM_USER, f)) == _nan_equal(fresh.kpis(SYSTEM_USER, f))


def _nan_equal(value: Any) -> Any:
    """``value`` with every NaN replaced by one marker, so that two figures both "not available" compare equal
    (``nan != nan``: e.g. the days to close a hazard in a street where none was closed)."""
    if isinstance(value, dict):
        return {k: _nan_equal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_nan_equal(v) for v in value)
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


# ------------------------------------------------------------------ item 6a: the visit's steward


def _save_values(eid: int, steward: Any, day: str, **kw: Any) -> dict[str, Any]:
    v = {"stw-save.n_clicks": 1, "stw-steward.value": steward, "stw-elder.value": eid, "stw-visited-on.date": day,
         "stw-mode.value": "phone", "stw-role.value": "visit_steward", "stw-visitor.value": "测试"}
    v.update(kw)
    return v


def _stewards(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(
            select(Steward.id, Steward.kind, Steward.community_id, Community.street_id,
                   ServiceStation.street_id.label("station_street"))
            .outerjoin(Community, Community.id == Steward.community_id)
            .outerjoin(ServiceStation, ServiceStation.id == Steward.station_id)).mappings().all())


def test_a_visit_cannot_be_saved_under_a_steward_of_another_street(sign_in: Callable[[str], Client],
                                                                   demo_engine: Engine) -> None:
    c = sign_in("demo_street")
    user = load_user(demo_engine, "demo_street")
    (street_id,) = tuple(user.scope.street_ids)
    with demo_engine.connect() as conn:
        eid, own_steward, comm = conn.execute(select(Elder.id, Elder.visit_steward_id, Elder.community_id).where(
            Elder.street_id == street_id, Elder.visit_steward_id.is_not(None)).limit(1)).one()
    st = _stewards(demo_engine)
    other = int(st.loc[(st["street_id"] != street_id) & st["street_id"].notna()
                       & (st["kind"].astype(str).str.contains("visit")), "id"].iloc[0])
    day = c.data.today.isoformat()
    before = _count_visits(demo_engine)
    out = _text(c.call("stw-save-msg.children", _save_values(eid, other, day), ["stw-save.n_clicks"]))
    assert "未保存" in out and "该管家不在您的管辖范围内" in out and "not in your area" in out
    assert _count_visits(demo_engine) == before
    assert any(d.get("reason") == "steward_outside_area" for d in _denied(demo_engine, "demo_street", "visit"))
    # a steward of the own street whose elder it is not (another community, not the elder's steward)
    with demo_engine.connect() as conn:
        stranger = conn.execute(select(Steward.id).join(Community, Community.id == Steward.community_id).where(
            Community.street_id == street_id, Steward.community_id != comm, Steward.kind == StewardKind.VISIT,
            Steward.id != own_steward)).scalars().first()
    if stranger is not None:
        out = _text(c.call("stw-save-msg.children", _save_values(eid, stranger, day), ["stw-save.n_clicks"]))
        assert "该老人不属于所选管家" in out and "not one of this steward's elders" in out
        assert _count_visits(demo_engine) == before
    # the elder's own steward: saved, under that steward
    out = _text(c.call("stw-save-msg.children", _save_values(eid, own_steward, day), ["stw-save.n_clicks"]))
    assert "已保存探访记录" in out
    with demo_engine.connect() as conn:
        sid, role = conn.execute(select(Visit.steward_id, Visit.visitor_role).order_by(Visit.id.desc())
                                 .limit(1)).one()
    assert sid == own_steward and str(getattr(role, "value", role)) == "visit_steward"


def test_a_steward_records_as_themself_only(sign_in: Callable[[str], Client], demo_engine: Engine) -> None:
    c = sign_in("demo_service")
    me = load_user(demo_engine, "demo_service").steward_id
    with demo_engine.connect() as conn:
        eid, visit_steward = conn.execute(select(Elder.id, Elder.visit_steward_id).where(
            Elder.service_steward_id == me, Elder.visit_steward_id.is_not(None)).limit(1)).one()
    day = c.data.today.isoformat()
    before = _count_visits(demo_engine)
    # the page names the elder's visit steward: refused (a service steward records as themself)
    out = _text(c.call("stw-save-msg.children", _save_values(eid, visit_steward, day), ["stw-save.n_clicks"]))
    assert "管家只能以本人名义记录探访" in out and "under their own name only" in out
    assert _count_visits(demo_engine) == before
    assert any(d.get("reason") == "not_own_steward" for d in _denied(demo_engine, "demo_service", "visit"))
    # their own: recorded as a service steward's visit, whatever role the page posts
    out = _text(c.call("stw-save-msg.children", _save_values(eid, me, day), ["stw-save.n_clicks"]))
    assert "已保存探访记录" in out
    with demo_engine.connect() as conn:
        sid, role = conn.execute(select(Visit.steward_id, Visit.visitor_role).order_by(Visit.id.desc())
                                 .limit(1)).one()
    assert sid == me and str(getattr(role, "value", role)) == "service_steward"


# ------------------------------------------------------------------ item 9: the visit date, from the form


def test_a_visit_dated_1900_is_refused_from_the_form(sign_in: Callable[[str], Client], demo_engine: Engine) -> None:
    c = sign_in("demo_street")
    user = load_user(demo_engine, "demo_street")
    with demo_engine.connect() as conn:
        eid, sid = conn.execute(select(Elder.id, Elder.visit_steward_id).where(
            Elder.street_id.in_(user.scope.street_ids), Elder.visit_steward_id.is_not(None)).limit(1)).one()
    before = _count_visits(demo_engine)
    out = _text(c.call("stw-save-msg.children", _save_values(eid, sid, "1900-01-01"), ["stw-save.n_clicks"]))
    assert "未保存" in out and "visited_on" in out
    assert "早于探访关爱工作开始日期 2024年1月1日" in out and "before the programme began on 2024-01-01" in out
    assert _count_visits(demo_engine) == before


# ------------------------------------------------------------------ item 6b: 采纳方案


def _service_steward_of(engine: Engine, street_id: int) -> int:
    st = _stewards(engine)
    hit = st[(st["kind"].astype(str).str.contains("service")) & (st["station_street"] == street_id)]
    return int(hit["id"].iloc[0])


def test_accept_moves_rechecks_each_move_against_the_store(app: Any, demo_engine: Engine,
                                                            restore_stewards: None) -> None:
    from gridmap.dashboard.planner import accept_moves

    data = app.gridmap_data
    planner = load_user(demo_engine, "demo_planner")
    a = planner.scope.street_names[0]
    other = next(s for s in data.streets(SYSTEM_USER) if s not in planner.scope.street_names)
    with demo_engine.connect() as conn:
        sid_a = conn.execute(select(Street.id).where(Street.name == a)).scalar_one()
        sid_o = conn.execute(select(Street.id).where(Street.name == other)).scalar_one()
        eid, frm = conn.execute(select(Elder.id, Elder.visit_steward_id).where(
            Elder.street_id == sid_a, Elder.visit_steward_id.is_not(None)).limit(1)).one()
        peer = conn.execute(select(Steward.id).join(Community, Community.id == Steward.community_id).where(
            Community.street_id == sid_a, Steward.kind == StewardKind.VISIT, Steward.id != frm)).scalars().first()
        far = conn.execute(select(Steward.id).join(Community, Community.id == Steward.community_id).where(
            Community.street_id == sid_o, Steward.kind == StewardKind.VISIT)).scalars().first()
        outsider = conn.execute(select(Elder.id, Elder.visit_steward_id).where(
            Elder.street_id == sid_o, Elder.visit_steward_id.is_not(None)).limit(1)).one()
    service = _service_steward_of(demo_engine, sid_a)
    before = _visit_stewards(demo_engine)
    moves = [{"elder_id": eid, "from_steward": frm, "to_steward": service},      # a service steward
             {"elder_id": eid, "from_steward": frm, "to_steward": 10 ** 9},      # no such steward
             {"elder_id": eid, "from_steward": frm, "to_steward": far},          # another street's
             {"elder_id": eid, "from_steward": -1, "to_steward": peer},          # stale: steward changed
             {"elder_id": outsider[0], "from_steward": outsider[1], "to_steward": peer},  # elder elsewhere
             {"elder_id": "x", "to_steward": peer}]
    res = accept_moves(data, moves, planner, a)
    assert res.applied == 0 and [r["reason"] for r in res.refused] == [
        "not_visit_steward", "unknown_steward", "steward_outside_area" if far not in (
            data.visible_steward_ids(planner.scope) or ()) else "steward_other_street",
        "steward_changed", "elder_outside_street", "malformed"]
    assert _visit_stewards(demo_engine) == before
    # an inactive visit steward is refused too; a valid move is applied
    with demo_engine.begin() as conn:
        conn.execute(update(Steward).where(Steward.id == peer).values(active=False))
    try:
        res = accept_moves(data, [{"elder_id": eid, "from_steward": frm, "to_steward": peer}], planner, a)
        assert res.applied == 0 and res.refused[0]["reason"] == "inactive_steward"
    finally:
        with demo_engine.begin() as conn:
            conn.execute(update(Steward).where(Steward.id == peer).values(active=True))
    res = accept_moves(data, [{"elder_id": eid, "from_steward": frm, "to_steward": peer}], planner, a)
    assert res.applied == 1 and _visit_stewards(demo_engine)[eid] == peer


def test_rebalance_gives_elders_only_to_stewards_that_may_receive() -> None:
    stewards = pd.DataFrame({"steward_id": [1, 2, 3], "capacity": [100.0, 1000.0, 1000.0],
                             "lon": [116.30, 116.3001, 116.40], "lat": [39.98, 39.98, 39.98],
                             "receives": [True, False, True]})
    elders = pd.DataFrame({"elder_id": range(10), "steward_id": [1] * 10, "minutes": [60.0] * 10,
                           "lon": [116.3002] * 10, "lat": [39.98] * 10})
    # without the column the near steward 2 takes the work; with it nobody may (3 is too far)
    assert set(rebalance(stewards.drop(columns="receives"), elders).moves["to_steward"]) == {2}
    p = rebalance(stewards, elders)
    assert p.moves.empty and p.after[1] == 600.0


def test_the_planners_grid_map_colours_a_running_week_by_its_progress(sign_in: Callable[[str], Client]) -> None:
    """On a weekday the planner's grid map shows each grid's progress against what is due by today (as the
    supervisor's map does), not the share of the whole week done so far, which paints every grid red."""
    from gridmap.rules.requirements import week_of

    c = sign_in("demo_planner")
    data = c.data
    street = _street_of(c.data.engine, "demo_planner")[0]
    week = week_of(data.today)
    out = c.call("pln-bars.figure", _plan_values(c, street, **{"pln-week.value": week}), ["pln-street.value"])
    feats = out["pln-grids"]["data"]["features"]
    ind = data.indicators(SYSTEM_USER, Filters(week=week, street=street), "grid")
    assert feats and "week_progress" in ind.columns
    want = ind["week_progress"].astype(float).round(4).to_dict()
    got = {f["properties"]["name"]: f["properties"]["rate"] for f in feats}
    compared = [k for k in got if str(k) in {str(x) for x in want}]
    assert compared
    for k in compared:
        w = want[next(x for x in want if str(x) == str(k))]
        assert (got[k] is None and w != w) or got[k] == w, (k, got[k], w)
