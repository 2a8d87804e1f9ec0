"""Users, passwords, sign-in rate limiting, every role's scope, unmasking and the audit log (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

import gridmap.access as acc
from gridmap._errors import ValidationError
from gridmap.store.models import (
    AuditLog,
    Community,
    Elder,
    Grid,
    Hazard,
    Referral,
    Steward,
    Street,
    Visit,
)
from tests.access.conftest import PASSWORD, USERS, VISIBLE

# ------------------------------------------------------------------ passwords


def test_hash_is_salted_argon2id_and_verifies():
    h1, h2 = acc.hash_password("s3cret-pass"), acc.hash_password("s3cret-pass")
    assert h1.startswith("$argon2id$") and h1 != h2 and "s3cret" not in h1
    assert acc.verify_password(h1, "s3cret-pass") and acc.verify_password(h2, "s3cret-pass")
    assert not acc.verify_password(h1, "s3cret-pasS")
    assert not acc.verify_password("not a hash", "s3cret-pass")
    assert not acc.verify_password(None, "s3cret-pass")
    assert not acc.verify_password(h1, "x" * 5000)
    assert not acc.needs_rehash(h1)
    for bad in ("", "x" * 5000):
        with pytest.raises(ValueError):
            acc.hash_password(bad)


# ------------------------------------------------------------------ users, sign-in


def test_password_is_stored_hashed_and_sign_in_works(world, engine):
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT password_hash FROM app_user")).scalars().all()
    assert len(hashes) == len(USERS) and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    u = acc.authenticate(engine, "street_a", PASSWORD, "10.0.0.1")
    assert u is not None and u.username == "street_a" and u.street == "甲街道"
    assert acc.authenticate(engine, "street_a", "wrong password", "10.0.0.1") is None
    assert acc.authenticate(engine, "nobody", PASSWORD, "10.0.0.1") is None
    with engine.connect() as conn:
        actions = conn.execute(select(AuditLog.action, AuditLog.username).order_by(AuditLog.id)).all()
    assert ("login", "street_a") in actions and ("login_failed", "street_a") in actions
    assert any(a == "login_failed" and n.startswith(acc.users.UNKNOWN_USER) for a, n in actions)
    assert ("login_failed", "nobody") not in actions  # an unknown name is not stored as typed


def test_disabled_user_cannot_sign_in_and_role_change_changes_scope(world, engine):
    acc.disable_user(engine, "street_a")
    assert acc.authenticate(engine, "street_a", PASSWORD, "c") is None
    acc.disable_user(engine, "street_a", disabled=False)
    assert acc.authenticate(engine, "street_a", PASSWORD, "c") is not None
    u = acc.set_role(engine, "street_a", "street", street="乙街道")
    assert acc.visible_elder_ids(engine, u.scope) == {world.elders["e3"], world.elders["e4"]}
    u = acc.set_role(engine, "street_a", "district")
    assert u.scope.is_all and u.street is None


def test_add_user_refuses_bad_input(world, engine):
    cases = [
        (("dist", "district"), {}, "username_taken"),
        (("has space", "district"), {}, "username"),
        (("x", "mayor"), {}, "unknown_role"),
        (("x", "street"), {}, "street_required"),
        (("x", "street"), {"street": "丙街道"}, "unknown_street"),
        (("x", "community"), {"community": "没有社区"}, "unknown_community"),
        (("x", "service"), {"steward": "V-A1"}, "steward_kind"),  # a visit steward is not a 服务管家
        (("x", "service"), {}, "steward_required"),
    ]
    for args, kw, code in cases:
        with pytest.raises(ValidationError) as ei:
            acc.add_user(engine, *args, password=PASSWORD, **kw)
        assert ei.value.code == code, (args, kw)
    with pytest.raises(ValidationError) as ei:
        acc.add_user(engine, "y", "district", password="short")
    assert ei.value.code == "password"


def test_failed_sign_ins_are_rate_limited_per_user_and_client(world, engine):
    now = datetime.now(UTC)
    for _ in range(acc.users.MAX_FAILURES):
        assert acc.authenticate(engine, "dist", "wrong!", "10.0.0.9", now=now) is None
    with pytest.raises(acc.RateLimited):  # even the right password is refused now
        acc.authenticate(engine, "dist", PASSWORD, "10.0.0.9", now=now)
    # another client is not limited, nor another user from this client
    assert acc.authenticate(engine, "dist", PASSWORD, "10.0.0.10", now=now) is not None
    assert acc.authenticate(engine, "street_a", PASSWORD, "10.0.0.9", now=now) is not None
    # after the window the limit is lifted
    later = now + acc.users.WINDOW + timedelta(seconds=5)
    assert acc.authenticate(engine, "dist", PASSWORD, "10.0.0.9", now=later) is not None
    with engine.connect() as conn:
        limited = conn.execute(select(AuditLog).where(AuditLog.action == "login_limited")).all()
    assert len(limited) == 1


# ------------------------------------------------------------------ scopes


def _ids(world, names):
    return {world.elders[n] for n in names}


@pytest.mark.parametrize("username", [u[0] for u in USERS])
def test_each_role_sees_its_elders_and_their_records(world, engine, username):
    user = acc.load_user(engine, username)
    want = _ids(world, VISIBLE[username])
    sc = user.scope
    with engine.connect() as conn:
        elders = set(conn.execute(select(Elder.id).where(acc.elder_clause(sc))).scalars())
        visits = set(conn.execute(select(Visit.elder_id).where(acc.related_clause(sc, Visit.elder_id))).scalars())
        hazards = conn.execute(select(Hazard.elder_id).where(acc.related_clause(sc, Hazard.elder_id))).scalars().all()
        refs = set(conn.execute(select(Referral.elder_id).where(acc.related_clause(sc, Referral.elder_id))).scalars())
        all_rows = conn.execute(select(Elder.id, Elder.street_id, Elder.community_id, Elder.visit_steward_id,
                                       Elder.service_steward_id)).mappings().all()
    assert elders == want
    assert visits == want and refs == want
    # the hazard with no elder is seen by whole-district scopes only
    assert set(hazards) - {None} == want and (None in hazards) == sc.is_all
    # the pure-Python check agrees with SQL, and so does the DataFrame filter
    assert {r["id"] for r in all_rows if acc.can_see_elder(sc, r)} == want
    df = pd.DataFrame({"elder_id": sorted(world.elders.values()), "x": 1})
    assert set(acc.filter_frame(df, sc, engine=engine)["elder_id"]) == want
    vis = acc.visible_elder_ids(engine, sc)
    assert set(acc.filter_frame(df, sc, visible_ids=vis)["elder_id"]) == want


def test_area_clauses_follow_the_scope(world, engine):
    def q(model, clause):
        with engine.connect() as conn:
            return set(conn.execute(select(model.code).where(clause)).scalars())

    a = acc.load_user(engine, "street_a").scope
    assert q(Community, acc.community_clause(a)) == {"110108001001", "110108001002"}
    assert q(Grid, acc.grid_clause(a)) == {"G-A1", "G-A2"}
    assert q(Steward, acc.steward_clause(a)) == {"V-A1"}
    assert q(Street, acc.street_clause(a)) == {"110108001"}
    c = acc.load_user(engine, "comm_a1").scope
    assert q(Community, acc.community_clause(c)) == {"110108001001"}
    assert q(Grid, acc.grid_clause(c)) == {"G-A1", "G-B1"}  # B1 holds e3, still V-A1's elder
    s = acc.load_user(engine, "svc_1").scope
    assert q(Steward, acc.steward_clause(s)) == {"S-1"}
    assert q(Grid, acc.grid_clause(s)) == {"G-A1", "G-B1"}
    assert q(Community, acc.community_clause(s)) == set()
    d = acc.load_user(engine, "dist").scope
    assert q(Grid, acc.grid_clause(d)) == {"G-A1", "G-A2", "G-B1"}


def test_edit_rights(world, engine):
    e = {k: {"street_id": None, "community_id": None, "visit_steward_id": None, "service_steward_id": None}
         for k in world.elders}
    with engine.connect() as conn:
        for r in conn.execute(select(Elder.id, Elder.street_id, Elder.community_id, Elder.visit_steward_id,
                                     Elder.service_steward_id)).mappings():
            e[next(k for k, v in world.elders.items() if v == r["id"])] = dict(r)
    u = {name: acc.load_user(engine, name).scope for name, _, _ in USERS}
    A, B = world.streets["A"], world.streets["B"]
    assert acc.can_edit(u["dist"], "elder", elder=e["e3"]) and acc.can_edit(u["dist"], "grid", street_id=B)
    assert acc.can_edit(u["street_a"], "elder", elder=e["e1"]) and not acc.can_edit(u["street_a"], "elder", elder=e["e3"])
    assert acc.can_edit(u["comm_a1"], "visit", elder=e["e3"]) and not acc.can_edit(u["comm_a1"], "visit", elder=e["e4"])
    assert acc.can_edit(u["svc_1"], "visit", elder=e["e4"]) and not acc.can_edit(u["svc_1"], "elder", elder=e["e4"])
    assert acc.can_edit(u["plan_b"], "grid", street_id=B) and not acc.can_edit(u["plan_b"], "grid", street_id=A)
    assert not acc.can_edit(u["plan_b"], "visit", elder=e["e3"])
    for k in e:
        assert not acc.can_edit(u["insp"], "visit", elder=e[k]) and not acc.can_edit(u["insp"], "elder", elder=e[k])
    assert not acc.can_edit(u["insp"], "grid", street_id=A)


# ------------------------------------------------------------------ audit, unmask


def test_audit_log_is_append_only_through_the_app_engine(world, engine):
    acc.audit(engine, "dist", "view", "elder", 1, "127.0.0.1", {"rows": 1})
    for stmt in ("UPDATE audit_log SET username = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(stmt))
    with engine.connect() as conn:
        assert conn.execute(select(AuditLog.username).where(AuditLog.action == "view")).scalars().all() == ["dist"]


def test_unmask_needs_permission_scope_and_reason_and_is_audited(world, engine):
    e1, e3 = world.elders["e1"], world.elders["e3"]
    insp, plan, street = (acc.load_user(engine, n) for n in ("insp", "plan_b", "street_a"))
    assert not insp.can_unmask and not plan.can_unmask and street.can_unmask
    with pytest.raises(acc.PermissionDenied):
        acc.unmask(engine, insp, e1, ["phone"], "核实", "c1")
    with pytest.raises(ValidationError) as ei:
        acc.unmask(engine, street, e1, ["phone"], "  ", "c1")
    assert ei.value.code == "reason_required"
    with pytest.raises(ValidationError):
        acc.unmask(engine, street, e1, ["monthly_income"], "核实", "c1")
    with pytest.raises(acc.PermissionDenied):  # e3 lives in 乙街道
        acc.unmask(engine, street, e3, ["phone"], "核实", "c1")
    got = acc.unmask(engine, street, e1, ["phone", "id_number", "name"], "联系家属核实", "c1")
    with engine.connect() as conn:
        truth = conn.execute(select(Elder.phone, Elder.id_number, Elder.name).where(Elder.id == e1)).one()
        rows = conn.execute(select(AuditLog.action, AuditLog.username, AuditLog.entity_id,
                                       AuditLog.client, AuditLog.detail).order_by(AuditLog.id)).all()
    assert got == {"phone": truth.phone, "id_number": truth.id_number, "name": truth.name}
    unm = [r for r in rows if r.action == "unmask"]
    assert len(unm) == 1 and unm[0].username == "street_a" and unm[0].entity_id == str(e1)
    assert unm[0].detail["reason"] == "联系家属核实" and set(unm[0].detail["fields"]) == {"phone", "id_number", "name"}
    denied = [r for r in rows if r.action == "denied"]
    assert {r.username for r in denied} == {"insp", "street_a"} and len(denied) == 2
    # no audit row holds a personal value
    blob = " ".join(f"{r.username} {r.entity_id} {r.client} {r.detail}" for r in rows)
    for v in truth:
        assert v not in blob


def test_read_elder_is_masked_and_outside_area_returns_nothing(world, engine):
    street = acc.load_user(engine, "street_a")
    rec = acc.read_elder(engine, street, world.elders["e1"], "c")
    with engine.connect() as conn:
        truth = conn.execute(select(Elder.phone, Elder.id_number, Elder.name, Elder.address)
                             .where(Elder.id == world.elders["e1"])).one()
    assert rec["phone"] == truth.phone[:3] + "****" + truth.phone[-4:]
    assert rec["id_number"] == truth.id_number[:6] + "********" + truth.id_number[-4:]
    assert rec["name"] != truth.name and rec["address"] != truth.address
    assert acc.read_elder(engine, street, world.elders["e3"], "c") is None
    assert acc.read_elder(engine, street, 999999, "c") is None
    with engine.connect() as conn:
        acts = conn.execute(select(AuditLog.action, AuditLog.entity_id).where(AuditLog.username == "street_a")
                            ).all()
    assert ("view", str(world.elders["e1"])) in acts and ("denied", str(world.elders["e3"])) in acts


def test_unusual_access_report(world, engine):
    t0 = datetime.now(UTC) - timedelta(hours=1)
    street = acc.load_user(engine, "street_a")
    acc.audit(engine, "street_a", "view", "elder_list", None, "c1", {"rows": 150})
    acc.audit(engine, "street_a", "view", "elder_list", None, "c1", {"rows": 60})
    acc.audit(engine, "comm_a1", "view", "elder_list", None, "c2", {"rows": 50})
    acc.read_elder(engine, street, world.elders["e4"], "c1")  # denied
    acc.audit(engine, "street_a", "view", "elder", world.elders["e3"], "c1")  # a view that slipped through
    for _ in range(5):
        acc.authenticate(engine, "dist", "wrong!", "6.6.6.6")
    rep = acc.unusual_access_report(engine, t0, view_threshold=200)
    kinds = {(r.kind, r.username): r for r in rep.itertuples()}
    assert ("bulk_view", "street_a") in kinds and kinds[("bulk_view", "street_a")].count >= 210
    assert ("bulk_view", "comm_a1") not in kinds
    assert kinds[("denied", "street_a")].count == 1
    assert kinds[("outside_area", "street_a")].count == 1
    assert kinds[("failed_logins", "dist")].client == "6.6.6.6"
    assert list(rep.columns) == ["kind", "username", "client", "count", "first_at", "last_at", "detail"]
    assert acc.unusual_access_report(engine, datetime.now(UTC) + timedelta(hours=1)).empty


# ------------------------------------------------------------------ fuzzing

_NASTY = st.one_of(
    st.sampled_from(["' OR 1=1 --", "admin'--", "\" OR \"\"=\"", "'; DROP TABLE app_user; --", "%", "_",
                     "dist\x00", "ｄｉｓｔ", "dist ", " dist", "\u202edist", "😀" * 30, "x" * 10_000, ""]),
    st.text(max_size=200),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_NASTY, password=_NASTY)
def test_fuzzed_sign_in_never_crashes_nor_lets_in(world, engine, name, password):
    try:
        u = acc.authenticate(engine, name, password, "fuzz")
    except acc.RateLimited:
        return
    if u is not None:  # only a real name with its password gets in (NFKC width/space variants of it)
        assert password == PASSWORD and u.username in {n for n, _, _ in USERS}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM app_user")).scalar_one() == len(USERS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_NASTY)
def test_fuzzed_user_names_are_added_or_refused_cleanly(world, engine, name):
    try:
        u = acc.add_user(engine, name, "district", password=PASSWORD)
    except ValidationError:
        return
    assert 1 <= len(u.username) <= 60 and acc.load_user(engine, name).id == u.id
