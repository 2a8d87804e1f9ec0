"""The change feed: every write path appends one ``change_log`` row in its own transaction, none when it rolls back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.domain.enums import ChangeKind
from gridmap.store.changes import latest_seq, read_changes, record_change
from gridmap.store.models import ChangeLog, Elder, Steward, Street
from tests.register.conftest import make_rows, write_csv
from tests.rules.test_store_indicators import ANSWERS

#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layers(data_dir: Path) -> Any:
    from gridmap.layers.build import build_layers

    return build_layers()


@pytest.fixture
def store(engine: Engine, layers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The real streets, communities and grids in an empty store (a few of its grids only)."""
    from gridmap.store.layers_store import save_admin_layers

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path / "var"))
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids.head(40))
    return engine


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ChangeLog)).scalar_one())


def _import(engine: Engine, rows: list[dict[str, str]], path: Path, *extra: str) -> None:
    res = CliRunner().invoke(app, ["register", "update" if "--period" in extra else "import", str(path),
                                   "--source", "民政", "--database-url", _url(engine), *extra])
    assert res.exit_code == 0, res.output


def test_import_and_monthly_update_append_their_streets_and_elders(store: Engine, tmp_path: Path) -> None:
    rows = make_rows(6)
    before = latest_seq(store)
    _import(store, rows, write_csv(rows, tmp_path / "a.csv"))
    [c] = read_changes(store, since=before)
    with Session(store) as s:
        ids = set(s.scalars(select(Elder.id)))
        streets = set(s.scalars(select(Street.name).join(Elder, Elder.street_id == Street.id)))
    assert c.kind is ChangeKind.IMPORT and set(c.elders) == ids and len(ids) == 6
    assert set(c.streets) == streets == {"万寿路街道", "学院路街道"} and c.detail["file"] == "a.csv"
    # the monthly update: row 0 leaves (its street only), the others unchanged
    later = latest_seq(store)
    _import(store, rows[1:], write_csv(rows[1:], tmp_path / "b.csv"), "--period", "2025-02")
    [m] = read_changes(store, since=later)
    with Session(store) as s:
        gone = s.scalar(select(Elder).where(Elder.id_number == rows[0]["居民身份证号码"]))
        gone_street = s.get(Street, gone.street_id).name
    assert m.kind is ChangeKind.MONTHLY_UPDATE and m.detail["period"] == "2025-02"
    assert m.elders == (gone.id,) and m.streets == (gone_street,)


def test_a_failed_import_leaves_no_change(store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gridmap.register.importer as importer

    def boom(*_a: Any, **_k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(importer, "archive_file", boom)  # the last step before the commit
    n = _count(store)
    with pytest.raises(OSError):
        importer.import_ledger(store, write_csv(make_rows(3), tmp_path / "c.csv"), "民政")
    assert _count(store) == n
    with Session(store) as s:
        assert s.scalar(select(func.count()).select_from(Elder)) == 0


def test_cli_visit_record_appends_a_visit_change(store: Engine, tmp_path: Path) -> None:
    rows = make_rows(3)
    _import(store, rows, write_csv(rows, tmp_path / "a.csv"))
    with Session(store) as s:
        e = s.scalars(select(Elder).order_by(Elder.id)).first()
        street = s.get(Street, e.street_id).name
    f = tmp_path / "visit.json"
    f.write_text(json.dumps(dict(elder_id=e.id, visited_on="2026-11-27", mode="上门探访", visitor_role="志愿者",
                                 **ANSWERS), ensure_ascii=False), encoding="utf-8")
    before = latest_seq(store)
    res = CliRunner().invoke(app, ["visits", "record", str(f), "--database-url", _url(store)])
    assert res.exit_code == 0, res.output
    [c] = read_changes(store, since=before)
    assert c.kind is ChangeKind.VISIT and c.elders == (e.id,) and c.streets == (street,)
    # an unknown elder: refused, nothing written
    f.write_text(json.dumps(dict(elder_id=999999, visited_on="2026-11-27", mode="上门探访", visitor_role="志愿者",
                                 **ANSWERS), ensure_ascii=False), encoding="utf-8")
    n = _count(store)
    assert CliRunner().invoke(app, ["visits", "record", str(f), "--database-url", _url(store)]).exit_code != 0
    assert _count(store) == n


def test_grids_import_appends_a_grid_change_of_its_streets(store: Engine, layers: Any) -> None:
    from gridmap.store.layers_store import save_admin_layers

    grids = layers.grids.head(40).copy()
    grids["workload"] = grids["workload"].fillna(0) + 1
    before = latest_seq(store)
    save_admin_layers(store, layers.district, layers.streets, layers.communities, grids)
    [c] = read_changes(store, since=before)
    comm = layers.communities.set_index("code")["street"]
    assert c.kind is ChangeKind.GRID and set(c.streets) == {comm[x] for x in grids["community_code"]}
    bad = grids.copy()
    bad.loc[bad.index[0], "community_code"] = "no-such-community"
    n = _count(store)
    with pytest.raises(KeyError):
        save_admin_layers(store, layers.district, layers.streets, layers.communities, bad)
    assert _count(store) == n


def test_steward_change_of_an_elder_is_a_steward_change(store: Engine, tmp_path: Path) -> None:
    from gridmap.store.repository import update_elder

    rows = make_rows(2)
    _import(store, rows, write_csv(rows, tmp_path / "a.csv"))
    with Session(store) as s, s.begin():
        e = s.scalars(select(Elder).order_by(Elder.id)).first()
        st = Steward(code="T-9", name="测试管家", kind="visit", organisation="社区", community_id=e.community_id)
        s.add(st)
        s.flush()
        eid, sid, street = e.id, st.id, s.get(Street, e.street_id).name
    before = latest_seq(store)
    update_elder(store, eid, {"visit_steward_id": sid}, user="planner1")
    [c] = read_changes(store, since=before)
    assert (c.kind, c.elders, c.streets, c.actor) == (ChangeKind.STEWARD, (eid,), (street,), "planner1")


def test_plan_week_appends_one_plan_change_per_street(store: Engine, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import gridmap.routing.district as district
    from gridmap.routing.weekly import StewardProblem

    with Session(store) as s, s.begin():
        from gridmap.store.models import Community

        c1, c2 = s.scalars(select(Community).join(Street).where(
            Street.name.in_(["学院路街道", "万寿路街道"])).order_by(Community.street_id.desc())).all()[:1] + \
            s.scalars(select(Community).join(Street).where(Street.name == "万寿路街道")).all()[:1]
        for i, c in enumerate((c1, c2)):
            s.add(Steward(code=f"P-{i}", name=f"管家{i}", kind="visit", organisation="社区", community_id=c.id))
        s.flush()
        ids = [s.scalar(select(Steward.id).where(Steward.code == f"P-{i}")) for i in (0, 1)]
        names = {s.get(Street, c1.street_id).name, s.get(Street, c2.street_id).name}
    problems = [StewardProblem(ids[i], f"P-{i}", f"管家{i}", "visit", "2026-W49",
                               {"days": [], "stewards": [], "visits": []}, {}) for i in (0, 1)]
    monkeypatch.setattr(district, "load_graphs", lambda modes: {})
    monkeypatch.setattr(district, "solve_task", lambda t: {"code": t["code"], "error": None, "seconds": 0.0,
                                                           **{k: 0 for k in ("visits_required", "visits_planned",
                                                                             "unassigned", "travel_seconds",
                                                                             "distance_metres", "estimated_share")},
                                                           "work_minutes": {}, "unassigned_by_reason": {}, "check_ok": True,
                                                           "violations": [], "repaired": False})
    before = latest_seq(store)
    district.plan_week(store, "2026-W49", out_dir=tmp_path / "plans", problems=problems, workers=1)
    got = read_changes(store, since=before)
    assert {c.kind for c in got} == {ChangeKind.PLAN}
    assert {c.streets for c in got} == {(n,) for n in names} and len(got) == len(names)
    assert all(c.detail["week"] == "2026-W49" for c in got)


def test_record_change_on_a_session_is_one_row_with_the_records_and_none_on_rollback(store: Engine) -> None:
    n = _count(store)
    with pytest.raises(RuntimeError), Session(store) as s, s.begin():
        record_change(s, ChangeKind.CALENDAR, streets=["*"])
        raise RuntimeError("rolled back")
    assert _count(store) == n
    with Session(store) as s, s.begin():
        record_change(s, "calendar", streets=["*"], detail={"name": "高温"})
    [c] = read_changes(store, since=latest_seq(store) - 1)
    assert c.kind is ChangeKind.CALENDAR and c.streets == ("*",) and c.detail == {"name": "高温"}


def test_change_log_is_append_only(store: Engine) -> None:
    with Session(store) as s, s.begin():
        record_change(s, "plan", streets=["学院路街道"])
    n = _count(store)
    for stmt in (update(ChangeLog).values(actor="x"), ChangeLog.__table__.delete()):
        with pytest.raises(DBAPIError), store.begin() as conn:
            conn.execute(stmt)
    assert _count(store) == n >= 1


def test_too_many_elders_are_cut_with_the_many_flag(store: Engine) -> None:
    from gridmap.store.changes import MAX_ELDERS

    with store.begin() as conn:
        seq = record_change(conn, "import", streets=["学院路街道"], elders=range(MAX_ELDERS + 5))
    [c] = read_changes(store, since=seq - 1)
    assert c.many and len(c.elders) == MAX_ELDERS


def test_seq_commit_order_on_postgres(store: Engine) -> None:
    """A transaction that appended first but commits later never leaves a follower past its seq: the second
    append waits for the first commit (the advisory lock), so the seqs become visible in order."""
    if store.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (SQLite has one writer at a time)")
    import threading

    first = store.connect()
    t1 = first.begin()
    s1 = record_change(first, "plan", streets=["学院路街道"])
    out: dict[str, int] = {}

    def second() -> None:
        with store.begin() as conn:
            out["s2"] = record_change(conn, "plan", streets=["万寿路街道"])

    th = threading.Thread(target=second)
    th.start()
    th.join(1.0)
    assert th.is_alive(), "the second append did not wait for the first transaction"
    assert latest_seq(store) < s1  # nothing visible yet
    t1.commit()
    first.close()
    th.join(10)
    assert out["s2"] > s1 and [c.seq for c in read_changes(store, since=s1 - 1)] == [s1, out["s2"]]
    with store.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
