"""Need to know (issue 18) without a browser, on the demo register: the visit steward's own elders in clear
(audited, one row per elder), nobody else's; the printed route sheet of a stored weekly plan likewise."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, func, select

pytestmark = pytest.mark.slow


def _audited(engine: Engine, username: str) -> int:
    from gridmap.store.models import AuditLog

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.username == username, AuditLog.action == "view", AuditLog.entity == "elder")).scalar_one())


def test_only_the_assigned_visit_steward_sees_in_clear(demo_engine: Engine, demo_users: dict[str, str]) -> None:
    from gridmap.access import load_user
    from gridmap.access.needtoknow import need_to_know
    from gridmap.store.models import AuditLog, Elder, FirstContact

    steward = load_user(demo_engine, "demo_community")
    street = load_user(demo_engine, "demo_street")
    district = load_user(demo_engine, "demo_district")
    with demo_engine.connect() as conn:
        own = list(conn.execute(select(Elder.id).where(Elder.visit_steward_id == steward.steward_id)
                                .order_by(Elder.id).limit(5)).scalars())
        same_community = list(conn.execute(select(Elder.id).where(
            Elder.community_id.in_(sorted(steward.scope.community_ids)),
            Elder.visit_steward_id != steward.steward_id).limit(3)).scalars())
        others = list(conn.execute(select(Elder.id).where(Elder.visit_steward_id != steward.steward_id)
                                   .limit(3)).scalars())
        truth = {r.id: r for r in conn.execute(
            select(Elder.id, Elder.address, Elder.phone, FirstContact.phone.label("fc"), FirstContact.valid)
            .outerjoin(FirstContact, FirstContact.elder_id == Elder.id).where(Elder.id.in_(own)))}
    assert own and others
    before = _audited(demo_engine, "demo_community")
    clear = need_to_know(demo_engine, steward, own + others + same_community, "workbench", "127.0.0.1")
    assert set(clear) == set(own)  # not another steward's elders, even in the own community
    for eid in own:
        assert clear[eid]["address"] == truth[eid].address and clear[eid]["phone"] == truth[eid].phone
        assert clear[eid]["first_contact_phone"] == (truth[eid].fc if truth[eid].valid is not False else None)
    assert _audited(demo_engine, "demo_community") == before + len(own)
    with demo_engine.connect() as conn:
        last = conn.execute(select(AuditLog.detail).where(AuditLog.username == "demo_community")
                            .order_by(AuditLog.id.desc()).limit(1)).scalar_one()
    assert last["basis"] == "visit_steward" and last["view"] == "workbench"
    assert truth[own[-1]].address not in json.dumps(last, ensure_ascii=False)  # never the values
    for user in (street, district):
        n = _audited(demo_engine, user.username)
        assert need_to_know(demo_engine, user, own, "workbench") == {}
        assert _audited(demo_engine, user.username) == n


def test_printed_route_sheet_of_a_stored_plan(demo_engine: Engine, demo_users: dict[str, str],
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    from gridmap._errors import ValidationError
    from gridmap.access import load_user
    from gridmap.domain.masking import mask_address
    from gridmap.routing.district import plan_week
    from gridmap.routing.routelist import load_route_list, to_html
    from gridmap.routing.weekly import weekly_problems
    from gridmap.store.models import Elder, Steward

    steward = load_user(demo_engine, "demo_community")
    with demo_engine.connect() as conn:
        code = conn.execute(select(Steward.code).where(Steward.id == steward.steward_id)).scalar_one()
    from gridmap.domain.clock import today_beijing
    from gridmap.rules.requirements import week_of

    week = week_of(today_beijing())
    wp = weekly_problems(demo_engine, week, street=steward.street)
    prob = next((p for p in wp.problems if p.code == code), None)
    if prob is None or not prob.problem["visits"]:
        pytest.skip("the demo steward has no visits to plan this week")
    root = tmp_path_factory.mktemp("plans18")
    plan_week(demo_engine, week, problems=[prob], out_dir=root / week, time_limit=1, workers=1, geometry=False)
    plan = json.loads((root / week / code / "plan.json").read_text(encoding="utf-8"))
    day = next(r["day"] for r in plan["routes"] if r["stops"])
    rl = load_route_list(demo_engine, root / week, code, day, unmask_as=steward, draw_roads=False)
    ids = [s.elder_id for s in rl.stops]
    with demo_engine.connect() as conn:
        full = dict(conn.execute(select(Elder.id, Elder.address).where(Elder.id.in_(ids))).all())
    assert rl.stops and all(s.need_to_know and s.address == full[s.elder_id] for s in rl.stops)
    page = to_html(rl, map_svg="<svg></svg>")
    assert all(full[i] in page for i in ids) and "按需知悉" in page
    # anyone else: masked (a street supervisor needs a reason to unmask the phones, and never the address here)
    masked = load_route_list(demo_engine, root / week, code, day, draw_roads=False)
    assert all(s.address == mask_address(full[s.elder_id]) and not s.need_to_know for s in masked.stops)
    with pytest.raises(ValidationError):
        load_route_list(demo_engine, root / week, code, day, unmask_as=load_user(demo_engine, "demo_street"),
                        draw_roads=False)


def test_the_days_contacts_are_marked_done_when_their_visit_is_saved(demo_engine: Engine,
                                                                      demo_users: dict[str, str]) -> None:
    from gridmap.access import load_user
    from gridmap.dashboard.data import DashboardData
    from gridmap.dashboard.fieldday import clear_fields, day_contacts

    steward = load_user(demo_engine, "demo_community")
    street = load_user(demo_engine, "demo_street")
    data = DashboardData(demo_engine)
    day = data.today
    contacts = day_contacts(data, steward.steward_id, day, steward)
    todo = contacts[~contacts["done"]]
    if todo.empty:
        pytest.skip("no open phone contact today for the demo steward")
    assert set(contacts["kind"]) <= {"phone", "daily_care", "monitoring"}
    assert all(a for a in contacts["asks"]) and all("*" in p or p == "—" for p in contacts["phone"])  # masked
    # the steward's own: the phone in clear with a tel: number; a street supervisor: masked, nothing to dial
    empty = contacts.iloc[0:0].assign(order=[], lon=[], lat=[], address=[])
    _s, own, ids = clear_fields(data, steward, empty, contacts)
    assert set(ids) == set(contacts["elder_id"]) and own["tel"].notna().all()
    _s, other, ids2 = clear_fields(data, street, empty, contacts)
    assert not ids2 and other["tel"].isna().all()
    eid = int(todo.iloc[0]["elder_id"])
    form = {"elder_id": eid, "visited_on": day.isoformat(), "mode": "phone", "visitor_role": "visit_steward",
            "illness": "无变化", "mood": "无变化", "needs": ["无"]}
    data.record_visit(steward, form, idempotency_key=f"t18-contact-{eid}")
    after = day_contacts(data, steward.steward_id, day, steward).set_index("elder_id")
    assert bool(after.loc[eid, "done"])
