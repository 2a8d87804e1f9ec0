"""The demo loader on both backends: counts, links to stewards and grids, visit history, no duplicates on re-run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from gridmap.store.models import (
    Community,
    Device,
    Elder,
    FirstContact,
    Grid,
    HouseholdMember,
    RegisterChange,
    Steward,
    Visit,
)
from gridmap.synth import targets as T
from gridmap.synth.demo import STEWARD_PREFIX, count_synthetic, load_demo_register

N = 300
#: The demo's today (a Thursday): visits up to the day before.
TODAY = date(2026, 12, 10)


#: Slow: a module-wide fixture (server, road network, demo register) costs tens of seconds;
#: `make test` leaves it out, `make test-all` (CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layers(data_dir):
    from gridmap.layers.build import build_layers

    return build_layers(data_dir)


def _count(conn, model) -> int:
    return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_demo_register_loads_and_reloads(engine, layers):
    from gridmap.store.layers_store import save_admin_layers

    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    assert load_demo_register(engine, layers, elders=N, seed=3, near_roads=False, today=TODAY) == N
    with engine.connect() as conn:
        assert _count(conn, Elder) == N
        n_comm = _count(conn, Community)
        kinds = dict(conn.execute(select(Steward.kind, func.count()).group_by(Steward.kind)).all())
        assert kinds["visit"] == n_comm  # one 探访管家 per community
        assert kinds["service"] >= 1
        # every elder linked to a grid of its own community, and to stewards of its community
        rows = conn.execute(select(Elder.community_id, Grid.community_id, Steward.community_id, Steward.kind)
                            .join(Grid, Grid.id == Elder.grid_id)
                            .join(Steward, Steward.id == Elder.visit_steward_id)).all()
        assert len(rows) == N
        assert all(ec == gc == sc and k == "visit" for ec, gc, sc, k in rows)
        assert conn.execute(select(func.count()).select_from(Elder).where(
            Elder.service_steward_id.is_(None))).scalar_one() == 0
        # grids were redrawn from the elders' homes with the documented capacity
        assert conn.execute(select(func.max(Grid.workload))).scalar_one() <= T.GRID_CAPACITY
        assert conn.execute(select(func.sum(Grid.workload))).scalar_one() == pytest.approx(N)
        assert _count(conn, FirstContact) == N
        assert _count(conn, HouseholdMember) > 0 and _count(conn, Device) > 0
        # visit history: 8 weeks and this week up to yesterday
        lo, hi, n_visits = conn.execute(select(func.min(Visit.visited_on), func.max(Visit.visited_on),
                                               func.count())).one()
        monday = TODAY - timedelta(days=TODAY.weekday())
        assert lo >= monday - timedelta(weeks=T.HISTORY_WEEKS) and lo < monday - timedelta(weeks=T.HISTORY_WEEKS - 1)
        assert monday <= hi < TODAY
        assert n_visits > N * 5
        modes = dict(conn.execute(select(Visit.mode, func.count()).group_by(Visit.mode)).all())
        assert modes["in_home"] > modes["phone"] > 0
        assert conn.execute(select(func.count()).select_from(Visit).where(Visit.late_entry)).scalar_one() > 0
        # creation history written in bulk
        created = conn.execute(select(func.count()).select_from(RegisterChange).where(
            RegisterChange.entity == "elder", RegisterChange.field == "*created*",
            RegisterChange.source == "synthetic")).scalar_one()
        assert created == N
    first = count_synthetic(engine)

    # a second run replaces the synthetic register instead of adding to it
    load_demo_register(engine, layers, elders=N, seed=3, near_roads=False, today=TODAY)
    assert count_synthetic(engine) == first
    with engine.connect() as conn:
        assert _count(conn, Elder) == N
        assert _count(conn, FirstContact) == N
        assert conn.execute(select(func.count()).select_from(Steward).where(
            Steward.code.like(f"{STEWARD_PREFIX}%"))).scalar_one() == first["stewards"]
