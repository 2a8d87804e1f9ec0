"""The 接诉即办 measures on the living demo's history (hazards and referrals moved on by the demo's life-cycle
work) equal the independent plain-Python computation on rows read straight from the tables, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gridmap.followups.measures import hazard_measures, referral_measures
from gridmap.followups.store import read_hazard_frame, read_referral_frame
from gridmap.rules.indicators import period_of
from gridmap.rules.requirements import week_of
from gridmap.store.models import Elder, Hazard, Referral, Street
from tests.followups.test_measures import _close, expected

pytestmark = pytest.mark.slow

TODAY = date(2026, 12, 10)


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))


def _code(v: Any) -> Any:
    return getattr(v, "value", v)


def _raw(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hazards and referrals with the street of their elder, straight from the tables."""
    with Session(engine) as conn:
        hz = [{"street": s, "owner_unit": h.owner_unit, "status": _code(h.status), "opened_on": h.opened_on,
               "deadline": h.deadline, "closed_on": h.closed_on}
              for h, s in conn.execute(select(Hazard, Street.name).join(Elder, Elder.id == Hazard.elder_id)
                                       .join(Street, Street.id == Elder.street_id)).all()]
        rf = [{"street": s, "receiver": r.target_name, "opened_at": _aware(r.opened_at),
               "deadline": _aware(r.deadline), "acknowledged_at": _aware(r.acknowledged_at),
               "in_progress_at": _aware(r.in_progress_at), "closed_at": _aware(r.closed_at),
               "escalated_at": _aware(r.escalated_at), "resolved": r.resolved,
               "satisfaction": _code(r.satisfaction)}
              for r, s in conn.execute(select(Referral, Street.name).join(Elder, Elder.id == Referral.elder_id)
                                       .join(Street, Street.id == Elder.street_id)).all()]
    return hz, rf


def test_measures_on_the_demo_history_equal_the_independent_computation(engine: Engine, data_dir: Path) -> None:
    from gridmap.layers.build import build_layers
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    layers = build_layers(data_dir)
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=250, seed=5, today=TODAY)
    hz, rf = _raw(engine)
    assert len(hz) > 5 and len(rf) > 5
    assert {h["status"] for h in hz} & {"fixed", "in_progress"}  # the demo moved some on
    h_frame, r_frame = read_hazard_frame(engine), read_referral_frame(engine)
    for week, month, as_of in ((week_of(TODAY), None, TODAY), (week_of(TODAY - timedelta(days=14)), None, TODAY),
                               (None, "2026-11", TODAY), (None, "2026-12", TODAY)):
        p = period_of(week, month)
        for key in ("street", "owner_unit", "receiver"):
            want_h, want_r = expected(hz, rf, p.start, p.end, as_of, key)
            if key != "receiver":
                got = hazard_measures(h_frame, week=week, month=month, as_of=as_of, by=key)
                assert set(got.index) == set(want_h)
                for unit, want in want_h.items():
                    for k in ("found", "fixed", "open", "overdue"):
                        assert got.loc[unit, k] == want[k], (week, month, unit, k)
                    assert _close(got.loc[unit, "fix_rate"], want["fix_rate"])
                    assert _close(got.loc[unit, "fix_days"], want["fix_days"])
            if key != "owner_unit":
                got = referral_measures(r_frame, week=week, month=month, as_of=as_of, by=key)
                assert set(got.index) == set(want_r)
                for unit, want in want_r.items():
                    for k in ("new", "due", "closed", "resolved", "rated", "satisfied", "overdue", "escalated"):
                        assert got.loc[unit, k] == want[k], (week, month, unit, k)
                    for k in ("response_rate", "resolution_rate", "satisfaction_rate", "close_days"):
                        assert _close(got.loc[unit, k], want[k]), (week, month, unit, k)
