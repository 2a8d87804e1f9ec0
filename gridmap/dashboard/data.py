"""Data access of the dashboard: cached calls to the rules/store functions, always through the user's scope.

Every query takes the signed-in :class:`gridmap.access.User` (whose
:class:`gridmap.access.Scope` says which elders, streets and stewards are
seen: :func:`gridmap.access.visible_elder_ids` cached per data version and
scope, then :func:`gridmap.access.filter_frame`) and the view's
:class:`Filters`; results are cached per (data version, scope, filters) and
the version is bumped by every write, so a visit recorded by a steward shows
at once in the supervisor's numbers. Elder details go through
:func:`gridmap.access.read_elder` (masked, audited); saving a visit needs
:func:`gridmap.access.can_edit`.

The register inputs of the indicators (:func:`gridmap.rules.store.indicator_inputs`)
are read once for the whole district (12 weeks of visits plus history) and
updated in place after a write (only the new visit and the follow-ups are
re-read), which keeps every callback fast on a 120,000-elder register.
Personal fields leave this module masked (:mod:`gridmap.domain.masking`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from gridmap.access import (
    EDITABLE,
    PermissionDenied,
    Scope,
    User,
    can_edit,
    filter_frame,
    read_elder,
    steward_clause,
)
from gridmap.access import visible_elder_ids as _visible_elder_ids
from gridmap.domain.enums import Category, Role
from gridmap.domain.masking import mask_address, mask_name
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.indicators import compute_indicators, elder_status, period_of
from gridmap.rules.requirements import parse_week, week_of
from gridmap.rules.store import (
    RecordResult,
    elders_frame,
    indicator_inputs,
    read_facts,
    read_hazards,
    read_referrals,
    read_visits,
    record_visit,
)
from gridmap.rules.visits import ANSWER_FIELDS, parse_visit
from gridmap.store.layers_store import read_layer
from gridmap.store.models import Elder, Steward

__all__ = ["SYSTEM_USER", "DashboardData", "Filters", "Scope", "StreetRefresh", "User", "current_user",
           "today_beijing"]

from gridmap.domain.clock import BEIJING, today_beijing  # noqa: E402,F401 - re-exported

#: Weeks shown in the trend chart and the week filter.
HISTORY_WEEKS = 12


#: The identity of work done outside a request (background warm-up) and of the dashboard without
#: sign-in (``create_app(..., auth=False)``, tests of the pure dashboard): the whole district.
SYSTEM_USER = User(id=0, username="system", display_name="演示用户（区民政局）", role=Role.DISTRICT,
                   scope=Scope(role=Role.DISTRICT, street_ids=None, street_names=None))


def current_user() -> User:
    """The signed-in user of the current request (:func:`gridmap.dashboard.auth.current_user`).

    Outside a request (background work), or in an app built without sign-in,
    :data:`SYSTEM_USER`. Inside a request of an app with sign-in and no user
    (which the sign-in guard never lets through) raises :class:`PermissionDenied`.
    """
    import flask

    from gridmap.dashboard import auth

    user = auth.current_user()
    if user is not None:
        return user
    if flask.has_request_context() and auth.is_installed():
        raise PermissionDenied("not signed in", "未登录或登录已过期，请重新登录")
    return SYSTEM_USER


@dataclass(frozen=True)
class Filters:
    """Filters of the supervisor view (``None`` = all)."""

    week: str
    street: str | None = None
    community: str | None = None
    category: str | None = None


class _Cache:
    """A small thread-safe LRU cache; concurrent requests for one key compute it once."""

    def __init__(self, size: int = 512) -> None:
        self._d: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        while True:
            with self._lock:
                if key in self._d:
                    self._d.move_to_end(key)
                    return self._d[key]
                ev = self._inflight.get(key)
                if ev is None:
                    ev = self._inflight[key] = threading.Event()
                    owner = True
                else:
                    owner = False
            if not owner:
                ev.wait(120)
                continue  # computed (or failed: then compute it here)
            try:
                value = compute()
                with self._lock:
                    self._d[key] = value
                    while len(self._d) > self._size:
                        self._d.popitem(last=False)
                return value
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                ev.set()

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self._size:
                self._d.popitem(last=False)

    def peek(self, key: Hashable) -> Any:
        """The cached value of ``key``, or ``None`` (nothing computed)."""
        with self._lock:
            return self._d.get(key)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def discard(self, stale: Callable[[Hashable], bool]) -> int:
        """Forget the entries whose key ``stale(key)`` is true (the others stay); returns how many."""
        with self._lock:
            keys = [k for k in self._d if stale(k)]
            for k in keys:
                del self._d[k]
            return len(keys)


def _has_category(cats: pd.Series, category: str) -> pd.Series:
    return cats.apply(lambda c: category in {str(x) for x in (c if isinstance(c, (list, tuple, set, frozenset)) else [])})


def _light(visits: pd.DataFrame) -> pd.DataFrame:
    """Visits without the section 五 answers, ``visited_on`` as datetime64 (parsed once, not per view).

    ``compute_indicators`` then skips the copied-answers check (答案重复照抄),
    whose row-wise key takes ~20 s on 850,000 visits; that sign of 流于形式
    stays in the supervision report (``gridmap report``), not the live view.
    """
    v = visits.drop(columns=[c for c in ANSWER_FIELDS if c in visits.columns])
    return v.assign(visited_on=pd.to_datetime(v["visited_on"]).astype("datetime64[ns]"))


def _indicators(e: pd.DataFrame, v: pd.DataFrame, h: pd.DataFrame, r: pd.DataFrame, week: str, level: str,
                rules: Rules, as_of: date | None = None) -> pd.DataFrame:
    _mon, sunday = parse_week(week)
    if e.empty or v.empty or not (pd.to_datetime(v["visited_on"]) <= pd.Timestamp(sunday)).any():
        # no visit recorded up to that week: nothing to measure (and compute_indicators
        # fails on pandas 3 when no visit precedes the period's end)
        return pd.DataFrame()
    return compute_indicators(e, v, h, r, week=week, level=level, rules=rules, as_of=as_of)


def _status(e: pd.DataFrame, v: pd.DataFrame, week: str, rules: Rules, as_of: date | None = None) -> pd.DataFrame:
    period = period_of(week=week)
    if as_of is not None and period.start <= as_of < period.end:  # the current week: overdue as of today
        period = replace(period, end=as_of, month_end=min(period.month_end, as_of))
    st = elder_status(e, v, period, rules)
    st["visited"] = st[f"visited_{week}"]
    st["state"] = np.where(st["visited"], "visited", np.where(st["overdue"], "overdue", "due"))
    return st


def _trend_counts(e: pd.DataFrame, v: pd.DataFrame, weeks: list[str], rules: Rules) -> pd.DataFrame:
    """Per week (oldest first): willing elders, those visited that week, whether any visit was recorded."""
    base = period_of(week=weeks[-1])
    start, _ = parse_week(weeks[0])
    st = elder_status(e, v, replace(base, start=start, weeks=tuple(weeks)), rules)
    w = st[st["willing"].astype(bool)]
    vd = pd.to_datetime(v["visited_on"])
    # a week before the first recorded visit has no data (not a 0% rate)
    has_data = [bool(((vd >= pd.Timestamp(parse_week(k)[0])) & (vd <= pd.Timestamp(parse_week(k)[1]))).any())
                for k in weeks]
    return pd.DataFrame({"week": weeks, "willing": len(w),
                         "visited": [int(w[f"visited_{k}"].sum()) for k in weeks], "has_data": has_data})


def _trend_rates(counts: list[pd.DataFrame], weeks: list[str]) -> pd.DataFrame:
    willing = sum(c["willing"].to_numpy() for c in counts) if counts else np.zeros(len(weeks))
    visited = sum(c["visited"].to_numpy() for c in counts) if counts else np.zeros(len(weeks))
    has = np.logical_or.reduce([c["has_data"].to_numpy() for c in counts]) if counts else np.zeros(len(weeks), bool)
    rates = [float(vi / wi) if wi and ok else float("nan") for vi, wi, ok in zip(visited, willing, has, strict=True)]
    return pd.DataFrame({"week": weeks, "weekly_rate": rates, "monday": [parse_week(k)[0] for k in weeks]})


_SORT = (["weekly_rate", "monthly_rate", "overdue", "hazards_open"], [True, True, False, False])
#: Rates of the indicators and the count each is a mean over (for combining streets).
_WEIGHTS = {"weekly_rate": "willing", "week_progress": "due_by_today", "monthly_rate": "elders", "overdue_days_mean": "overdue",
            "hazard_days_to_close": "hazards_closed", "smoke_alarm_coverage": "elders",
            "terminal_coverage": "_term_needed"}


def _merge_rows(old: pd.DataFrame, fresh: pd.DataFrame, elder_ids: list[int]) -> pd.DataFrame:
    """``old`` with the rows of ``elder_ids`` replaced by ``fresh`` (theirs, read again), in id order as a full
    read gives them."""
    keep = old[~old["elder_id"].isin(elder_ids)]
    if len(fresh) and len(old):
        fresh = fresh.copy()
        for c in fresh.columns.intersection(old.columns):  # a few rows read alone may have come as object
            if fresh[c].dtype != old[c].dtype:
                try:
                    fresh[c] = fresh[c].astype(old[c].dtype)
                except (TypeError, ValueError):
                    pass
    parts = [p for p in (keep, fresh) if len(p)]
    if not parts:
        return old.iloc[0:0].reset_index(drop=True)
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return out.sort_values("id", kind="stable").reset_index(drop=True)


def _sort_indicators(out: pd.DataFrame) -> pd.DataFrame:
    if out.empty or not set(_SORT[0]) <= set(out.columns):
        return out
    return out.sort_values(_SORT[0], ascending=_SORT[1], na_position="last", kind="stable")


def combine_district(rows: list[pd.DataFrame], term_needed: list[int]) -> pd.DataFrame:
    """One district row from per-street indicator rows (as :func:`compute_indicators` at ``district``).

    Counts add up; each rate is the mean of its streets weighted by the count it is a
    mean over (:data:`_WEIGHTS`; ``term_needed``: per street, elders who should have a
    one-key terminal); ``overdue_days_max`` is the maximum.
    """
    pairs = [(r, d) for r, d in zip(rows, term_needed, strict=True) if not r.empty]
    if not pairs:
        return pd.DataFrame()
    t = pd.concat([r for r, _ in pairs])
    t["_term_needed"] = [d for r, d in pairs for _ in range(len(r))]
    out: dict[str, Any] = {}
    for c in t.columns:
        if c == "_term_needed":
            continue
        x = pd.to_numeric(t[c], errors="coerce")
        if c in _WEIGHTS:
            w = pd.to_numeric(t[_WEIGHTS[c]], errors="coerce").fillna(0).to_numpy(dtype=float)
            ok = x.notna().to_numpy() & (w > 0)
            out[c] = float((x.to_numpy()[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
        elif c == "overdue_days_max":
            out[c] = x.max()
        else:
            out[c] = int(x.fillna(0).sum())
    return pd.DataFrame([out], index=pd.Index(["海淀区"], name="district"))


@dataclass(frozen=True)
class StreetRefresh:
    """What :meth:`DashboardData.refresh_street` re-read: the street's elders, the visits found in the store
    and not yet in the cache, the streets whose cached results are recomputed, the cache entries dropped."""

    street: str
    elders: int
    visits_added: int
    streets: tuple[str, ...]
    cache_entries_dropped: int


class DashboardData:
    """Cached, scoped access to the register for the dashboard.

    Parameters
    ----------
    engine
        The store.
    today
        The date the dashboard works on (default: today in Beijing).
    rules
        Visit rules (default :func:`gridmap.rules.config.load_rules`).
    """

    #: Seconds without a write before the background re-warm starts (the views asked right after a save go first).
    REWARM_DELAY_S = 2.0
    #: How many saves back a street's frames are derived from its earlier frames (:meth:`_derived_part_frames`).
    DERIVE_VERSIONS = 16
    #: Longest pause of the background warm-up, between two of its steps, while requests are being answered.
    YIELD_MAX_S = 2.0

    def __init__(self, engine: Engine, *, today: date | None = None, rules: Rules | None = None) -> None:
        self.engine = engine
        self._today = today
        self.rules = rules or load_rules()
        self.version = 0
        self._lock = threading.RLock()
        self._inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
        #: visits saved since the inputs were read, not yet appended to their visits frame (see :meth:`inputs`)
        self._pending_visits: list[pd.DataFrame] = []
        #: (street, street version, epoch) → the visits the write that made that version added (see :meth:`_part_frames`)
        self._added: dict[tuple[str, int, int], pd.DataFrame] = {}
        self._layers: dict[str, Any] = {}
        self._cache = _Cache(8192)
        #: the change feed (:mod:`gridmap.store.changes`): the seq up to which this process has applied it
        self.followed_seq = self._seq_now()
        #: seq read right before the register was last read whole (changes up to it are in it)
        self._loaded_seq = self.followed_seq
        #: per street: seq read right before the street was last re-read (:meth:`refresh_street`)
        self._street_seq: dict[str, int] = {}
        #: seqs of this process's own writes already applied (:meth:`_remember_own`)
        self._own_seqs: set[int] = set()
        #: missing seqs below ``followed_seq`` → when first missed (re-checked for GAP_GRACE_S)
        self._gaps: dict[int, float] = {}
        self._follow_thread: threading.Thread | None = None
        self._follow_stop = threading.Event()
        self._follow_lock = threading.Lock()
        self._background_pid: int | None = None
        import os

        self._pid = os.getpid()
        #: what the follower did: changes applied, streets refreshed, full re-reads
        self.follow_stats: dict[str, int] = {"changes": 0, "streets": 0, "rereads": 0, "skipped_own": 0}
        #: per street: bumped by every write to one of its elders (partial caches stay valid elsewhere)
        self._street_version: dict[str, int] = {}
        #: bumped when the register's membership may change (invalidate): scope id sets are re-read
        self._epoch = 0
        self._warm_lock = threading.Lock()
        self._warm_pending = False
        self._warm_thread: threading.Thread | None = None
        self._full_warm_epoch = -1  # the epoch whose complete warm-up (warm_more) is done
        self._scopes_warmed: set[Hashable] = set()
        self._frozen = False
        self._last_write = 0.0
        #: requests being answered (:meth:`request_started`): the background warm-up pauses for them
        self._active = 0
        self._active_lock = threading.Lock()
        #: more background warm-up (the views' own pieces, e.g. the map of each street), run after :meth:`warm_more`
        self.warm_hooks: list[Callable[[], None]] = []
        #: where the weekly plans are stored (``<root>/<week>/<steward code>/plan.json``);
        #: ``None``: ``gridmap plan week``'s default, ``<var>/plans``
        self.plans_root: Path | None = None

    # ------------------------------------------------------------ time
    @property
    def today(self) -> date:
        """The working date."""
        return self._today or today_beijing()

    def weeks(self) -> list[str]:
        """The ISO weeks of the trend and the week filter, newest first."""
        monday = self.today - timedelta(days=self.today.weekday())
        return [week_of(monday - timedelta(weeks=i)) for i in range(HISTORY_WEEKS)]

    def default_week(self) -> str:
        """The week the views open on (:func:`gridmap.rules.indicators.default_week`: the last one on a Monday)."""
        from gridmap.rules.indicators import default_week

        return default_week(self.today)

    # ------------------------------------------------------------ layers
    def layer(self, name: str) -> Any:
        """A store layer (cached; layers change only with ``gridmap layers build``)."""
        with self._lock:
            if name not in self._layers:
                self._layers[name] = read_layer(self.engine, name)
            return self._layers[name]

    def streets(self, user: User) -> list[str]:
        """Street names the user may see (``scope.street_names``; ``None`` = all)."""
        names = sorted(self.layer("streets")["name"].tolist())
        if user.scope.street_names is not None:
            allowed = set(user.scope.street_names)
            names = [n for n in names if n in allowed]
        return names

    def missing_ledgers(self, user: User, street: str | None = None) -> list[dict[str, Any]]:
        """Monthly ledgers (每月更新) of the latest period already due: one entry per street the user sees.

        issue 20 item 5: ``gridmap.register.missing.missing_months_report`` (due day from the rules), missing
        ones first; entries ``{street, period, due, arrived, status}``.
        """
        from gridmap.register.missing import missing_months_report

        seen = set(self.streets(user))
        rows = missing_months_report(self.engine, today=self.today, rules=self.rules)
        return [m.as_dict() for m in rows if m.street in seen and (not street or m.street == street)]

    def communities(self, user: User, street: str | None = None) -> list[str]:
        """Community names (of one street) the user may see."""
        c = self.layer("communities")
        if street:
            c = c[c["street"] == street]
        sc = user.scope
        if not sc.is_all:
            whole = set(sc.street_names or ()) if sc.street_ids else set()
            c = c[c["street"].isin(whole) | c["name"].isin(sc.community_names)]
        return sorted(c["name"].tolist())

    def scope_bounds(self, user: User) -> list[list[float]] | None:
        """``[[south, west], [north, east]]`` of the user's own area (streets, else communities); ``None`` = district."""
        sc = user.scope
        if sc.is_all:
            return None
        parts = []
        if sc.street_names:
            s = self.layer("streets")
            parts.append(s[s["name"].isin(sc.street_names)])
        if sc.community_names:
            c = self.layer("communities")
            parts.append(c[c["name"].isin(sc.community_names)])
        parts = [p for p in parts if not p.empty]
        if not parts:
            return None
        b = np.array([p.total_bounds for p in parts])
        return [[float(b[:, 1].min()), float(b[:, 0].min())], [float(b[:, 3].max()), float(b[:, 2].max())]]

    # ------------------------------------------------------------ scope
    def visible_ids(self, scope: Scope) -> frozenset[int] | None:
        """Ids of the elders ``scope`` sees (``None`` = all), cached per data version and scope."""
        if scope.is_all:
            return None
        return self._cache.get(("ids", self._epoch, scope), lambda: _visible_elder_ids(self.engine, scope))

    def visible_steward_ids(self, scope: Scope) -> frozenset[int] | None:
        """Ids of the stewards ``scope`` sees (``None`` = all)."""
        if scope.is_all:
            return None

        def compute() -> frozenset[int]:
            with self.engine.connect() as conn:
                return frozenset(conn.execute(select(Steward.id).where(steward_clause(scope))).scalars())

        return self._cache.get(("steward_ids", self._epoch, scope), compute)

    def elder_scope_row(self, elder_id: int) -> dict[str, Any] | None:
        """The fields of an elder the scope rules look at (street, community, stewards), or ``None``."""
        with self.engine.connect() as conn:
            r = conn.execute(select(Elder.id, Elder.street_id, Elder.community_id, Elder.visit_steward_id,
                                    Elder.service_steward_id).where(Elder.id == int(elder_id))).mappings().first()
        return dict(r) if r is not None else None

    # ------------------------------------------------------------ register inputs
    def inputs(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The district's (elders, visits, hazards, referrals) frames, read once.

        Visits saved since are appended here, on first use after the save (copying the district's
        850,000 visits is not paid by the save itself; the saved elder's street is updated at once,
        see :meth:`_after_write`).
        """
        with self._lock:
            if self._inputs is None:
                self._loaded_seq = self._seq_now()  # before reading: every change up to it is in what is read
                start, _ = parse_week(self.weeks()[-1])
                e, v, h, r = indicator_inputs(self.engine, start, self.today, rules=self.rules, answers=False)
                self._inputs = (e, _light(v), h, r)
                self._pending_visits = []
            elif self._pending_visits:
                e, v, h, r = self._inputs
                self._inputs = (e, pd.concat([v, *self._pending_visits]), h, r)
                self._pending_visits = []
            return self._inputs

    def warm(self) -> None:
        """Read the inputs and compute the default view (for a fast first page)."""
        from sqlalchemy.orm import configure_mappers

        configure_mappers()  # the first save would otherwise pay for it
        f = Filters(week=self.default_week())
        u = SYSTEM_USER
        for step in (lambda: self.kpis(u, f), lambda: self.indicators(u, f, "street"), lambda: self.trend(u, f),
                     lambda: self.status(u, f), lambda: self.overdue_elders(u, f)):
            self.yield_to_requests()
            step()

    def warm_more(self) -> bool:
        """Precompute the other levels of the default week and the district KPIs of every week; ``False`` when a
        write came meanwhile (left for the next pass)."""
        u = SYSTEM_USER
        version, epoch = self.version, self._epoch
        f = Filters(week=self.default_week())
        for level in ("community", "grid", "steward"):
            self.yield_to_requests()
            if self.version != version:
                return False
            self.indicators(u, f, level)
        from gridmap.domain.enums import Category

        for c in Category:
            self.yield_to_requests()
            if self.version != version:
                return False
            self.kpis(u, replace(f, category=c.value))
            self.trend(u, replace(f, category=c.value))
        for w in self.weeks()[1:]:
            self.yield_to_requests()
            if self.version != version:
                return False
            self.kpis(u, Filters(week=w))
            self.indicators(u, Filters(week=w), "street")
        from gridmap.dashboard.planner import workload

        for street in self.streets(u):  # the planner's first view of each street
            self.yield_to_requests()
            if self.version != version:
                return False
            workload(self, street, f.week)
        for hook in self.warm_hooks:
            self.yield_to_requests()
            if self.version != version:
                return False
            hook()
        self._freeze_once()
        self._full_warm_epoch = epoch
        return True

    def _freeze_once(self) -> None:
        """After the first complete warm-up, move what it built out of the garbage collector's sight (``gc.freeze``).

        A full collection walks every container object of the process (the register's per-elder lists, the
        cached map GeoJSON, the road graph: millions of objects on 120,000 elders) while every request waits:
        about a second, seen as random spikes of whichever callback was running. Frozen objects are still freed
        by reference counting when a cache drops them; only those caught in reference cycles would stay, a
        bounded amount since this happens once.
        """
        if self._frozen:
            return
        self._frozen = True
        import gc

        gc.collect()
        gc.freeze()

    def warm_scope(self, user: User) -> None:
        """Compute the default view of a limited scope (started in the background when its page loads)."""
        if user.scope.is_all:
            return
        f = Filters(week=self.default_week())
        try:
            self.kpis(user, f)
            self.trend(user, f)
            self.indicators(user, f, "street")
            self.overdue_elders(user, f)
        except Exception:
            import logging

            logging.getLogger("gridmap.dashboard").warning("scope warm-up failed", exc_info=True)

    def start_warm_scope(self, user: User) -> None:
        """:meth:`warm_scope` in a daemon thread, once per (data version, scope)."""
        if user.scope.is_all:
            return
        key = (self.version, user.scope)
        with self._warm_lock:
            if key in self._scopes_warmed:
                return
            self._scopes_warmed.add(key)
            if len(self._scopes_warmed) > 1000:
                self._scopes_warmed.clear()
        threading.Thread(target=self.warm_scope, args=(user,), daemon=True, name="gridmap-warm-scope").start()

    def steward_elder_ids(self, steward_id: int, user: User | None = None) -> list[int]:
        """Elders of a steward that ``user`` may see (all of them without ``user``).

        A service steward's own elders are those whose 服务管家 they are (their scope);
        any other steward's are the elders whose 探访管家 it is.
        """
        sc = user.scope if user is not None else None
        if sc is not None and sc.steward_field == "service_steward_id" and sc.steward_id == steward_id:
            return sorted(self.visible_ids(sc) or ())
        e = self.inputs()[0]
        ids = e.loc[e["steward_id"] == steward_id, "elder_id"].astype(int)
        if sc is not None and not sc.is_all:
            ids = ids[ids.isin(self.visible_ids(sc) or frozenset())]
        return ids.tolist()

    def street_elder_ids(self, street: str) -> list[int]:
        """Elders living in a street (from the cached register)."""
        e = self.inputs()[0]
        return e.loc[e["street"] == street, "elder_id"].astype(int).tolist()

    def facts(self, on: date, elder_ids: list[int]) -> list[Any]:
        """:func:`read_facts` of some elders (by id: the last-visit query then uses the index)."""
        if not elder_ids:
            return []
        return read_facts(self.engine, on, elder_ids=elder_ids, rules=self.rules)

    # ------------------------------------------------------------ partitions
    # The register is cut by street: every view of whole streets (the district, a street, a
    # street supervisor's area, a community of a street) is computed per street and combined,
    # and each street's results are cached under that street's own version. A visit saved in
    # one street then recomputes only that street; the district's figures are recombined from
    # the other streets' cached parts (the counts add up, the rates are weighted means).

    def _all_streets(self) -> tuple[str, ...]:
        def compute() -> tuple[str, ...]:
            st = self.inputs()[0]["street"]
            names = sorted({str(x) for x in st.dropna().unique()})
            return tuple(names + ([""] if st.isna().any() else []))  # "" = elders without a street

        return self._cache.get(("all_streets", self._epoch), compute)

    def _parts(self, user: User, f: Filters) -> tuple[str, ...] | None:
        """The streets whose (filtered) elders make up the view, or ``None`` when it is not whole streets."""
        sc = user.scope
        whole = sc.is_all or (sc.street_names and not sc.community_ids and sc.steward_id is None)
        if not whole:
            return None
        allowed = None if sc.is_all else set(sc.street_names or ())
        street = f.street
        if f.community and not street:
            c = self.layer("communities")
            hit = c.loc[c["name"] == f.community, "street"]
            street = str(hit.iloc[0]) if len(hit) else None
            if street is None:
                return None
        if street:
            return (street,) if allowed is None or street in allowed else None
        return self._all_streets() if allowed is None else tuple(sorted(allowed))

    def version_of(self, user: User, f: Filters) -> Hashable:
        """The data version a view depends on: its streets' versions, else the global version."""
        parts = self._parts(user, f)
        if parts is None:
            return ("g", self.version, self._epoch)
        return ("p", self._epoch, tuple(self._street_version.get(p, 0) for p in parts))

    def _pkey(self, street: str) -> tuple[Any, ...]:
        return (street, self._street_version.get(street, 0), self._epoch)

    def _part_frames(self, street: str, community: str | None, category: str | None) -> tuple[pd.DataFrame, ...]:
        """(elders, visits, hazards, referrals) of one street (and community, category)."""
        def compute() -> tuple[pd.DataFrame, ...]:
            derived = self._derived_part_frames(street, community, category)
            if derived is not None:  # after a save in this street: from its frames before the save
                return derived
            elders, visits, hazards, referrals = self.inputs()
            e = elders[elders["street"].isna()] if street == "" else elders[elders["street"] == street]
            if community:
                e = e[e["community"] == community]
            if category:
                e = e[_has_category(e["categories"], category)]
            ids = e["elder_id"]
            return (e, visits[visits["elder_id"].isin(ids)], hazards[hazards["elder_id"].isin(ids)],
                    referrals[referrals["elder_id"].isin(ids)])

        return self._cache.get(("pf", *self._pkey(street), community, category), compute)

    def _part_ind(self, street: str, f: Filters, level: str) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            e, v, h, r = self._part_frames(street, f.community, f.category)
            return _indicators(e, v, h, r, f.week, level, self.rules, self.today)

        return self._cache.get(("pind", *self._pkey(street), f.community, f.category, f.week, level), compute)

    def _part_status(self, street: str, f: Filters) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            e, v, _h, _r = self._part_frames(street, f.community, f.category)
            return _status(e, v, f.week, self.rules, self.today)

        return self._cache.get(("pstatus", *self._pkey(street), f.community, f.category, f.week), compute)

    def _part_trend(self, street: str, f: Filters) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            e, v, _h, _r = self._part_frames(street, f.community, f.category)
            return _trend_counts(e, v, list(reversed(self.weeks())), self.rules)

        return self._cache.get(("ptrend", *self._pkey(street), f.community, f.category), compute)

    def _term_needed(self, street: str, f: Filters) -> int:
        """Elders of the part in the programme who should have a one-key terminal (80+ or 计生特殊)."""
        def compute() -> int:
            e = self._part_frames(street, f.community, f.category)[0]
            prog = {str(x) for x in self.rules.programme_statuses}
            e = e[e["status"].astype(str).isin(prog)]
            fps = _has_category(e["categories"], Category.FAMILY_PLANNING_SPECIAL.value) if len(e) else False
            return int(((e["age"].fillna(0) >= self.rules.min_age) | fps).sum())

        # cached with the street's parts: the district's KPIs after a save recount only the saved elder's street
        return self._cache.get(("pterm", *self._pkey(street), f.community, f.category), compute)

    def part_cached(self, user: User, f: Filters, name: str, compute: Callable[[], Any]) -> Any:
        """A value derived from a view's elders (e.g. their map points), cached per street when the view is one
        street (shared by every user who sees that whole street), else per view and data version."""
        parts = self._parts(user, f)
        if parts is not None and len(parts) == 1:
            key: Hashable = ("px", name, *self._pkey(parts[0]), f.community, f.category, f.week)
        else:
            key = ("vx", name, self.version_of(user, f), user.scope, f)
        return self._cache.get(key, compute)

    def _scoped(self, user: User, filters: Filters) -> tuple[pd.DataFrame, ...]:
        parts = self._parts(user, filters)
        if parts is not None and len(parts) == 1:
            return self._part_frames(parts[0], filters.community, filters.category)
        key = ("scoped", self.version_of(user, filters), user.scope, filters.street, filters.community,
               filters.category)

        def compute() -> tuple[pd.DataFrame, ...]:
            elders, visits, hazards, referrals = self.inputs()
            e = filter_frame(elders, user.scope, visible_ids=self.visible_ids(user.scope))
            if filters.street:
                e = e[e["street"] == filters.street]
            if filters.community:
                e = e[e["community"] == filters.community]
            if filters.category:
                e = e[_has_category(e["categories"], filters.category)]
            if len(e) == len(elders):
                return elders, visits, hazards, referrals
            ids = e["elder_id"]
            return (e, visits[visits["elder_id"].isin(ids)], hazards[hazards["elder_id"].isin(ids)],
                    referrals[referrals["elder_id"].isin(ids)])

        return self._cache.get(key, compute)

    # ------------------------------------------------------------ indicators
    def indicators(self, user: User, filters: Filters, level: str) -> pd.DataFrame:
        """:func:`compute_indicators` of the filtered register for the week at ``level``."""
        key = ("ind", self.version_of(user, filters), user.scope, filters, level)

        def compute() -> pd.DataFrame:
            parts = self._parts(user, filters)
            if parts is not None and level == "district":
                rows = [self._part_ind(p, filters, "street") for p in parts]
                den = [self._term_needed(p, filters) for p in parts]
                return combine_district(rows, den)
            if parts is not None:
                frames = [x for x in (self._part_ind(p, filters, level) for p in parts) if not x.empty]
                out = pd.concat(frames) if frames else pd.DataFrame()
                if out.empty or not out.index.has_duplicates:
                    return _sort_indicators(out)
                # a unit spanning streets (a steward with elders in two streets): computed whole
            e, v, h, r = self._scoped(user, filters)
            return _indicators(e, v, h, r, filters.week, level, self.rules, self.today)

        return self._cache.get(key, compute)

    def kpis(self, user: User, filters: Filters) -> dict[str, Any]:
        """The KPI cards: one row of district-level indicators (empty dict if no elder matches)."""
        ind = self.indicators(user, filters, "district")
        if ind.empty:
            return {}
        return ind.iloc[0].to_dict()

    def status(self, user: User, filters: Filters) -> pd.DataFrame:
        """Per elder of the filter: visited this week, overdue (days), last visit (rules' ``elder_status``)."""
        parts = self._parts(user, filters)
        if parts is not None and len(parts) == 1:
            return self._part_status(parts[0], filters)
        key = ("status", self.version_of(user, filters), user.scope, filters)

        def compute() -> pd.DataFrame:
            if parts is not None:
                frames = [self._part_status(p, filters) for p in parts]
                return pd.concat(frames, ignore_index=True) if frames else _status(*self._scoped(
                    user, filters)[:2], filters.week, self.rules)
            e, v, _h, _r = self._scoped(user, filters)
            return _status(e, v, filters.week, self.rules, self.today)

        return self._cache.get(key, compute)

    def trend(self, user: User, filters: Filters) -> pd.DataFrame:
        """Weekly visit rate of the filtered register over the last weeks (oldest first).

        Uses :func:`gridmap.rules.indicators.elder_status` over a period covering
        all weeks (the rate of a week is the share of willing elders in the
        programme with an effective visit that week, as in ``compute_indicators``).
        """
        key = ("trend", self.version_of(user, filters), user.scope, replace(filters, week=""))

        def compute() -> pd.DataFrame:
            weeks = list(reversed(self.weeks()))
            parts = self._parts(user, filters)
            if parts is not None:
                counts = [self._part_trend(p, filters) for p in parts]
            else:
                e, v, _h, _r = self._scoped(user, filters)
                counts = [_trend_counts(e, v, weeks, self.rules)]
            return _trend_rates(counts, weeks)

        return self._cache.get(key, compute)

    # ------------------------------------------------------------ tables
    def overdue_elders(self, user: User, filters: Filters, limit: int = 500) -> pd.DataFrame:
        """Overdue elders of the filter, most overdue first, with masked names and addresses."""
        st = self.status(user, filters)
        od = st[st["overdue"]].sort_values("overdue_days", ascending=False).head(limit)
        if od.empty:
            return pd.DataFrame(columns=["elder_id", "name", "address", "street", "community", "grid",
                                         "steward", "last_visit", "overdue_days"])
        ids = od["elder_id"].astype(int).tolist()
        with self.engine.connect() as conn:
            rows = conn.execute(select(Elder.id, Elder.name, Elder.address).where(Elder.id.in_(ids))).all()
        names = {i: (n, a) for i, n, a in rows}
        stewards = self.steward_names()
        return pd.DataFrame({
            "elder_id": ids,
            "name": [mask_name(names.get(i, (None, None))[0]) for i in ids],
            "address": [mask_address(names.get(i, (None, None))[1]) for i in ids],
            "street": od["street"].tolist(),
            "community": od["community"].tolist(),
            "grid": od["grid_id"].tolist(),
            "steward": [stewards.get(s, "—") if pd.notna(s) else "—" for s in od["steward_id"]],
            "last_visit": od["last_visit"].tolist(),
            "overdue_days": od["overdue_days"].astype(int).tolist(),
        })

    def steward_names(self) -> dict[int, str]:
        """Steward id → ``name（code）``."""
        def compute() -> dict[int, str]:
            with self.engine.connect() as conn:
                return {i: f"{n}（{c}）" for i, n, c in conn.execute(select(Steward.id, Steward.name, Steward.code))}

        return self._cache.get(("stewards",), compute)

    def stewards(self, user: User, street: str | None = None) -> pd.DataFrame:
        """Stewards with their community, street, base and work settings."""
        def compute() -> pd.DataFrame:
            from gridmap.store.models import Community, Street
            q = (select(Steward.id, Steward.code, Steward.name, Steward.kind, Steward.base,
                        Steward.max_work_minutes, Steward.travel_mode, Steward.shift_start, Steward.shift_end,
                        Community.name.label("community"), Street.name.label("street"))
                 .outerjoin(Community, Community.id == Steward.community_id)
                 .outerjoin(Street, Street.id == Community.street_id)
                 .where(Steward.active.is_(True)).order_by(Steward.id))
            with self.engine.connect() as conn:
                df = pd.DataFrame([dict(r) for r in conn.execute(q).mappings()])
            if df.empty:
                return df
            df["kind"] = [getattr(k, "value", k) for k in df["kind"]]
            df["base_lon"] = [g.x if g is not None else np.nan for g in df["base"]]
            df["base_lat"] = [g.y if g is not None else np.nan for g in df["base"]]
            return df.drop(columns=["base"])

        df = self._cache.get(("steward_table",), compute)
        if df.empty:
            return df
        ids = self.visible_steward_ids(user.scope)
        if ids is not None:
            df = df[df["id"].isin(ids)]
        if street:
            df = df[df["street"] == street]
        return df

    def elder_detail(self, user: User, elder_id: int, client: str | None = None) -> dict[str, Any] | None:
        """One elder's details, masked; ``None`` when outside the user's scope or unknown.

        Read with :func:`gridmap.access.read_elder`, which audits the view (or the
        refusal, as ``denied``).
        """
        if client is None:
            from gridmap.dashboard.auth import client_address

            client = client_address()
        rec = read_elder(self.engine, user, elder_id, client)
        if rec is None:
            return None
        elders = self.inputs()[0]
        row = elders[elders["elder_id"] == int(rec["elder_id"])]
        r = row.iloc[0] if not row.empty else {}
        fc = " ".join(x for x in (rec.get("first_contact_name"), rec.get("first_contact_phone")) if x) or "无"
        return {"elder_id": int(rec["elder_id"]), "name": rec["name"], "address": rec["address"],
                "phone": rec["phone"], "age": r.get("age"), "street": r.get("street"),
                "community": r.get("community"), "grid": r.get("grid_id"), "categories": r.get("categories"),
                "last_visit": r.get("last_visit_on"), "first_contact": fc}

    # ------------------------------------------------------------ writing
    def steward_row(self, steward_id: int) -> dict[str, Any] | None:
        """One steward as the store has it now (``id``, ``kind``, ``active``, ``community_id``, ``street``), or
        ``None``: what the server checks a write naming a steward against (never the page's copy)."""
        from gridmap.store.models import Community, ServiceStation, Street

        with self.engine.connect() as conn:
            r = conn.execute(
                select(Steward.id, Steward.kind, Steward.active, Steward.community_id,
                       Street.name.label("street"), ServiceStation.street_id.label("station_street_id"))
                .outerjoin(Community, Community.id == Steward.community_id)
                .outerjoin(ServiceStation, ServiceStation.id == Steward.station_id)
                .outerjoin(Street, Street.id == Community.street_id)
                .where(Steward.id == int(steward_id))).mappings().first()
        if r is None:
            return None
        out = dict(r)
        out["kind"] = str(getattr(out["kind"], "value", out["kind"]))
        return out

    def record_visit(self, user: User, data: dict[str, Any], *, idempotency_key: str | None = None) -> RecordResult:
        """Validate (``parse_visit``) and save (``record_visit``) a visit, then refresh the caches.

        ``idempotency_key`` (made when the form opened) makes a second save of the same submission
        return the visit stored before (``duplicate``), with nothing new written.

        Who the visit is recorded under is decided here, from the signed-in user and the store, never
        taken from the page: a steward user (one with a steward of their own) records as themself; any
        other user may name a steward they see (:func:`gridmap.access.steward_clause`), active, or else the
        elder's own visit steward is used. The elder must be within the user's scope and belong to that
        steward (its 探访管家 or 服务管家, or living in a visit steward's community). A steward
        ``visitor_role`` (探访管家/服务管家) is the recording steward's kind; the document's other service
        forces (志愿者, 社工…) are kept as given.

        Raises
        ------
        gridmap._errors.ValidationError
            When the form is invalid.
        gridmap.access.PermissionDenied
            When the user's role may not record visits (planner, inspector), the elder is outside the
            user's scope, the steward is not the user's own, outside their area, inactive or unknown,
            or the elder is not that steward's (audited as ``denied``).
        """
        from gridmap.dashboard.auth import log_access
        from gridmap.domain.enums import StewardKind, VisitorRole

        sc = user.scope
        if sc.read_only or Role(user.role) not in EDITABLE["visit"]:
            log_access("denied", "visit", data.get("elder_id"), {"reason": "role_may_not_edit"})
            raise PermissionDenied(f"the role {user.role.value} may not record visits",
                                   f"您的角色（{Role(user.role).label}）只能查看，无权保存探访记录")
        data = dict(data)
        posted = data.pop("steward_id", None)
        rec = parse_visit(data, self.rules)  # validated without the page's steward
        elder = self.elder_scope_row(rec.elder_id)
        if not can_edit(sc, "visit", elder=elder):
            log_access("denied", "elder", rec.elder_id, {"reason": "outside_area", "op": "record_visit"})
            raise PermissionDenied("elder not in your area", "您的管辖范围内没有该老人，未保存")
        assert elder is not None
        try:
            posted_id = int(posted) if posted not in (None, "") else None
        except (TypeError, ValueError):
            posted_id = -1  # not a steward id: refused below as unknown
        own = user.steward_id if user.steward_id is not None else sc.steward_id

        def refuse(reason: str, en: str, zh: str) -> PermissionDenied:
            log_access("denied", "visit", rec.elder_id, {"reason": reason, "op": "record_visit",
                                                         "steward_id": posted_id})
            return PermissionDenied(en, zh)

        if own is not None:
            if posted_id is not None and posted_id != int(own):
                raise refuse("not_own_steward", "a steward records visits under their own name only",
                             "管家只能以本人名义记录探访，未保存")
            steward_id: int | None = int(own)
        elif posted_id is not None:
            steward_id = posted_id
            allowed = self.visible_steward_ids(sc)
            if allowed is not None and steward_id not in allowed:
                raise refuse("steward_outside_area", "this steward is not in your area",
                             "该管家不在您的管辖范围内，未保存")
        else:
            steward_id = elder["visit_steward_id"]
        role = rec.visitor_role
        if steward_id is not None:
            st = self.steward_row(int(steward_id))
            if st is None or not st["active"]:
                raise refuse("unknown_or_inactive_steward", "no active steward with this id",
                             "未找到该管家或该管家已停用，未保存")
            mine = steward_id in (elder["visit_steward_id"], elder["service_steward_id"]) or (
                st["kind"] == StewardKind.VISIT.value and st["community_id"] is not None
                and st["community_id"] == elder["community_id"])
            if not mine:
                raise refuse("elder_not_stewards", "this elder is not one of this steward's elders",
                             "该老人不属于所选管家，未保存")
            if role in (VisitorRole.VISIT_STEWARD, VisitorRole.SERVICE_STEWARD):
                role = (VisitorRole.SERVICE_STEWARD if st["kind"] == StewardKind.SERVICE.value
                        else VisitorRole.VISIT_STEWARD)
        rec = replace(rec, steward_id=int(steward_id) if steward_id is not None else None, visitor_role=role,
                      # issue 17: the rules' effective-visit test of parse_visit (items answered) kept
                      effective=rec.effective and rec.mode in self.rules.effective_modes
                      and role in self.rules.credited_roles)
        before = self._seq_now()
        # the form's idempotency key: the same submission saved again is the visit stored before
        res = record_visit(self.engine, rec, rules=self.rules, user=user.username, idempotency_key=idempotency_key)
        if res.duplicate:
            log_access("view", "visit", res.visit_id, {"elder_id": rec.elder_id, "op": "record_visit_duplicate"})
            return res
        log_access("update", "visit", res.visit_id, {"elder_id": rec.elder_id, "op": "record_visit",
                                                     "steward_id": rec.steward_id})
        self._after_write(rec.elder_id, rec.visited_on)
        self._remember_own(before, user.username, rec.elder_id)
        return res

    def _after_write(self, elder_id: int, visited_on: date) -> None:
        """Refresh only what a visit changes: its row, the elder's last visit, hazards and referrals.

        Incremental: the new visit is kept aside and appended to the district's visits on their next
        use (:meth:`inputs`); the saved elder's street's (elders, visits, hazards, referrals) frames are
        derived, when next asked, from its frames before the save plus the new visit
        (:meth:`_derived_part_frames`), so the views asked right after the save (the district's KPIs, the
        street's trend) recompute that one street without re-reading or re-filtering the district. The
        frames are the same as a full recomputation gives (same rows, same order, same index); the other
        streets' cached results stay valid (see :meth:`version_of`).
        """
        self._apply_visits([elder_id], visited_on, visited_on)

    def _apply_visits(self, elder_ids: list[int], since: date, until: date) -> bool:
        """The incremental refresh of :meth:`_after_write` for some elders' visits in ``[since, until]``.

        Used by this process's own saves and by the change follower for visits saved elsewhere.
        Returns ``False`` (nothing done) when an elder is not in the cached register (a new elder:
        the caller re-reads the street instead).
        """
        import time as _time

        with self._lock:
            if self._inputs is None:
                self._epoch += 1  # nothing read yet: whatever is cached is stale
            else:
                elders, visits, _h, _r = self._inputs
                known = elders.loc[elders["elder_id"].isin(elder_ids)]
                if len(known) < len(set(elder_ids)):
                    return False
                new = self._queue_visits(
                    read_visits(self.engine, since, until, elder_ids=sorted(elder_ids), answers=False))
                facts = read_facts(self.engine, self.today + timedelta(days=1), elder_ids=sorted(elder_ids),
                                   rules=self.rules)
                if facts:
                    rows = elders_frame(facts, self.today).set_index("elder_id")["last_visit_on"]
                    elders = elders.copy(deep=False)  # copy-on-write: only the changed column is copied
                    idx = known.index
                    elders.loc[idx, "last_visit_on"] = [rows.get(int(e), elders.at[i, "last_visit_on"])
                                                       for i, e in zip(idx, known["elder_id"], strict=True)]
                start, _ = parse_week(self.weeks()[-1])
                # only these elders' hazards and referrals can have changed: re-read theirs, keep the others
                # (re-reading the district's on every write cost each worker more than the requests did)
                ids = sorted({int(i) for i in elder_ids})
                hazards = _merge_rows(_h, read_hazards(self.engine, self.today, since=start, elder_ids=ids), ids)
                referrals = _merge_rows(_r, read_referrals(
                    self.engine, since=datetime.combine(start, datetime.min.time(), tzinfo=BEIJING),
                    elder_ids=ids), ids)
                self._inputs = (elders, visits, hazards, referrals)
                street_of = {int(e): ("" if pd.isna(st) else str(st))
                             for e, st in zip(known["elder_id"], known["street"], strict=True)}
                for street in sorted(set(street_of.values())):
                    # only this street's cached parts are stale: the others stay (see version_of)
                    mine = new[new["elder_id"].map(street_of) == street] if len(new) else new
                    sv = self._street_version[street] = self._street_version.get(street, 0) + 1
                    self._added[(street, sv, self._epoch)] = mine  # its frames are derived from the previous ones
                    self._added.pop((street, sv - self.DERIVE_VERSIONS, self._epoch), None)
            self.version += 1
            self._last_write = _time.monotonic()
        self._rewarm()
        return True

    def _queue_visits(self, read: pd.DataFrame) -> pd.DataFrame:
        """Keep the visits of ``read`` (from :func:`read_visits`, no answers) not yet in the district's visits
        aside, to be appended on their next use (:meth:`inputs`); returns them. Call with the lock held and the
        inputs read."""
        visits = self._inputs[1]  # type: ignore[index]
        new = _light(read)
        known = [visits, *self._pending_visits]
        if not new.empty:
            dup = {int(i) for k in known for i in k.loc[k["id"].isin(new["id"]), "id"]}
            new = new[~new["id"].isin(dup)].copy()
        if not new.empty:
            for c in new.columns.intersection(visits.columns):
                if new[c].dtype != visits[c].dtype:
                    try:
                        new[c] = new[c].astype(visits[c].dtype)
                    except (TypeError, ValueError):
                        pass
            n = sum(len(k) for k in known)
            top = max((int(k.index.max()) + 1 for k in known if len(k)), default=0)
            n = max(n, top)  # as one concatenation would number them (past any label left by a removal)
            new.index = pd.RangeIndex(n, n + len(new))
            self._pending_visits.append(new)
        return new

    def refresh_street(self, street: str) -> StreetRefresh:
        """Re-read one street's elders from the store and forget only the cached results they feed.

        What the planner's 重新规划本周 does (never a whole-cache clear, which made every page slow for
        everyone): the street's elders (those the store now places in the street, and those the cache had
        there) are re-read with their last visit, stewards, status and devices; visits of theirs saved
        outside the dashboard since the register was read are added; the hazards and referrals are re-read.
        Then the cached results of the street, and of any street an elder moved from or to, are dropped
        (their per-street version is bumped, see :meth:`version_of`), with the scopes' id sets and the
        steward table (cheap: one query each on next use). Every other street's cached results stay.

        Returns
        -------
        StreetRefresh
            What was re-read and which streets' results are recomputed.
        """
        import time as _time

        seq = self._seq_now()  # before reading: every change up to it is in what is read below
        with self._lock:
            n_elders, n_visits = 0, 0
            touched = {street}
            if self._inputs is not None:
                elders = self.inputs()[0]
                had = elders["street"].isna() if street == "" else elders["street"] == street
                cached = {int(i) for i in elders.loc[had, "elder_id"]}
                facts = read_facts(self.engine, self.today + timedelta(days=1), street=street,
                                   rules=self.rules) if street else []
                missing = sorted(cached - {f.id for f in facts})
                if missing:  # moved away, left the programme, or (street "") without a street
                    facts += read_facts(self.engine, self.today + timedelta(days=1), elder_ids=missing,
                                        rules=self.rules)
                fresh = elders_frame(facts, self.today)
                ids = cached | {int(i) for i in fresh["elder_id"]}
                old = elders[elders["elder_id"].isin(ids)]
                touched |= {"" if pd.isna(x) else str(x) for x in pd.concat([old["street"], fresh["street"]])}
                rest = elders[~elders["elder_id"].isin(ids)]
                start = int(elders.index.max()) + 1 if len(elders) else 0
                fresh.index = pd.RangeIndex(start, start + len(fresh))  # new labels: no derived frame reuses them
                merged = pd.concat([rest, fresh]) if len(rest) else fresh
                merged = merged.sort_values("elder_id", kind="stable")  # the order a full read gives
                first, _ = parse_week(self.weeks()[-1])
                read = read_visits(self.engine, first - timedelta(days=60), self.today, elder_ids=sorted(ids),
                                   answers=False)
                self._drop_gone_visits(ids, first - timedelta(days=60), read)
                n_visits = len(self._queue_visits(read))
                hazards = read_hazards(self.engine, self.today, since=first)
                referrals = read_referrals(self.engine, since=datetime.combine(first, datetime.min.time(),
                                                                               tzinfo=BEIJING))
                self._inputs = (merged, self._inputs[1], hazards, referrals)
                n_elders = len(fresh[fresh["street"].fillna("") == street])
            for t in touched:  # no ``_added`` entry for the new version: the frames are re-cut from the inputs
                self._street_version[t] = self._street_version.get(t, 0) + 1
                self._street_seq[t] = max(self._street_seq.get(t, 0), seq)
            per_street = {"pf", "pind", "pstatus", "ptrend", "pterm", "workload"}
            dropped = self._cache.discard(lambda k: isinstance(k, tuple) and bool(k) and (
                k[0] in {"ids", "steward_ids", "all_streets", "steward_table", "stewards"}
                or (k[0] in per_street and len(k) > 1 and k[1] in touched)
                or (k[0] == "px" and len(k) > 2 and k[2] in touched)))
            self.version += 1
            self._last_write = _time.monotonic()
            if self._inputs is None:  # nothing read yet: the register is read now (the planner's view needs it)
                e = self.inputs()[0]
                n_elders = int((e["street"].isna() if street == "" else e["street"] == street).sum())
        self._rewarm()
        return StreetRefresh(street=street, elders=n_elders, visits_added=n_visits,
                             streets=tuple(sorted(touched)), cache_entries_dropped=dropped)

    # ------------------------------------------------------------ plans proposed (kept on the server)
    #: Hours a rebalancing proposal may be accepted after it was computed.
    PROPOSAL_HOURS = 12

    def keep_proposal(self, user: User, street: str, week: str, moves: list[dict[str, Any]]) -> str:
        """Keep a rebalancing proposal the server computed for ``user``; returns its id (the page gets the id
        only, and :meth:`proposal` gives the moves back to the same user).

        Kept in the database (``plan_proposal``), not in this process: with several server processes the
        accept may reach another one. Proposals older than a week are removed here.
        """
        import secrets

        from sqlalchemy import delete

        from gridmap.store.models import PlanProposal, utcnow

        pid = secrets.token_urlsafe(16)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(PlanProposal).where(PlanProposal.created_at < now - timedelta(days=7)))
            conn.execute(PlanProposal.__table__.insert(), {
                "id": pid, "user_id": int(user.id), "street": street, "week": week,
                "moves": [dict(m) for m in moves], "created_at": now, "accepted_at": None})
        return pid

    def proposal(self, user: User, pid: Any) -> dict[str, Any] | None:
        """The proposal ``pid`` kept for ``user`` (``None``: unknown, already accepted, expired, or another
        user's)."""
        from gridmap.store.models import PlanProposal, utcnow

        if not isinstance(pid, str) or len(pid) > 64:
            return None
        with self.engine.connect() as conn:
            r = conn.execute(select(PlanProposal.street, PlanProposal.week, PlanProposal.moves).where(
                PlanProposal.id == pid, PlanProposal.user_id == int(user.id), PlanProposal.accepted_at.is_(None),
                PlanProposal.created_at >= utcnow() - timedelta(hours=self.PROPOSAL_HOURS))).first()
        if r is None:
            return None
        return {"user_id": int(user.id), "street": r.street, "week": r.week, "moves": list(r.moves or [])}

    def claim_proposal(self, user: User, pid: Any) -> dict[str, Any] | None:
        """Mark the proposal ``pid`` of ``user`` accepted and return it, atomically: of two accepts racing (in
        any processes) exactly one gets it (``UPDATE … WHERE accepted_at IS NULL``); ``None`` otherwise."""
        from sqlalchemy import update

        from gridmap.store.models import PlanProposal, utcnow

        p = self.proposal(user, pid)
        if p is None:
            return None
        with self.engine.begin() as conn:
            n = conn.execute(update(PlanProposal).where(
                PlanProposal.id == pid, PlanProposal.user_id == int(user.id), PlanProposal.accepted_at.is_(None))
                .values(accepted_at=utcnow())).rowcount
        return p if n == 1 else None

    def forget_proposal(self, pid: str) -> None:
        """Mark a proposal accepted (it cannot be accepted twice); see :meth:`claim_proposal`."""
        from sqlalchemy import update

        from gridmap.store.models import PlanProposal, utcnow

        with self.engine.begin() as conn:
            conn.execute(update(PlanProposal).where(PlanProposal.id == pid, PlanProposal.accepted_at.is_(None))
                         .values(accepted_at=utcnow()))

    def _derived_part_frames(self, street: str, community: str | None,
                             category: str | None) -> tuple[pd.DataFrame, ...] | None:
        """A street's frames after saves, from its frames before them (cached at an earlier street version, at
        most :data:`DERIVE_VERSIONS` back), or ``None``: the same elders rows (their current values), the visits
        those before plus the ones the saves added (in order), the hazards and referrals of the current inputs."""
        sv, ep = self._street_version.get(street, 0), self._epoch
        adds: list[pd.DataFrame] = []
        for v in range(sv - 1, max(-1, sv - 1 - self.DERIVE_VERSIONS), -1):
            add = self._added.get((street, v + 1, ep))
            if add is None:
                return None
            adds.append(add)
            old = self._cache.peek(("pf", street, v, ep, community, category))
            if old is not None:
                break
        else:
            return None
        elders, _visits, hazards, referrals = self._inputs  # type: ignore[misc]
        e = elders.loc[old[0].index]  # the same elders (membership changes bump the epoch), current values
        ids = e["elder_id"]
        new = [a for a in reversed(adds) if not a.empty]
        add = pd.concat(new) if new else pd.DataFrame()
        vis = old[1]
        if len(add):
            add = add[add["elder_id"].isin(ids)]
            if len(add):
                vis = pd.concat([vis, add])
        return (e, vis, hazards[hazards["elder_id"].isin(ids)], referrals[referrals["elder_id"].isin(ids)])

    def _rewarm(self) -> None:
        """(Re)compute the default view and the other weeks/levels in ONE background worker.

        Writes arriving while it runs are coalesced into one more pass.
        """
        with self._warm_lock:
            self._warm_pending = True
            if self._warm_thread is not None and self._warm_thread.is_alive():
                return
            self._warm_thread = threading.Thread(target=self._warm_loop, daemon=True, name="gridmap-warm")
            self._warm_thread.start()

    def start_warm(self) -> None:
        """Start the background warm-up (used by :func:`gridmap.dashboard.app.create_app`)."""
        self._rewarm()

    def request_started(self) -> None:
        """A request is being answered (the app's ``before_request``): the background warm-up pauses."""
        with self._active_lock:
            self._active += 1

    def request_finished(self) -> None:
        """The pair of :meth:`request_started` (the app's ``teardown_request``)."""
        with self._active_lock:
            self._active = max(0, self._active - 1)

    def yield_to_requests(self) -> None:
        """Between two steps of the background warm-up: wait while requests are being answered (at most
        :data:`YIELD_MAX_S`), so that a user's request does not share the CPU (and Python's lock) with it."""
        import time as _time

        if threading.current_thread() is not self._warm_thread:
            return
        end = _time.monotonic() + self.YIELD_MAX_S
        while self._active > 0 and _time.monotonic() < end:
            _time.sleep(0.01)

    def _warm_loop(self) -> None:
        import logging
        import time as _time

        while True:
            if self._inputs is not None and self.version:
                # after a write: start once no write came for REWARM_DELAY_S (the views asked right after
                # a save, and the saves that follow it, have the CPU to themselves)
                while (wait := self._last_write + self.REWARM_DELAY_S - _time.monotonic()) > 0:
                    _time.sleep(wait)
            with self._warm_lock:
                if not self._warm_pending:
                    return
                self._warm_pending = False
            try:
                self.warm()
                # the other levels, categories, weeks and the planner's first views: once per read of the
                # register. After a write only the default view is recomputed here; another view of the written
                # street is recomputed when someone asks for it (one street, not every view of it per write)
                if self._full_warm_epoch != self._epoch:
                    self.warm_more()
            except Exception:
                logging.getLogger("gridmap.dashboard").warning("warm-up failed", exc_info=True)

    def wait_warm(self, timeout: float | None = None) -> None:
        """Wait for the background warm-up to finish."""
        t = self._warm_thread
        if t is not None:
            t.join(timeout)

    def invalidate(self) -> None:
        """Forget everything (re-read the register on next use)."""
        with self._lock:
            self._layers.clear()
            self._inputs = None
            self._pending_visits = []
            self._added.clear()
            self.version += 1
            self._epoch += 1
            self._cache.clear()

    # ------------------------------------------------------------ the change feed (gridmap.store.changes)
    #: More new changes than this in one poll: re-read everything instead of street by street.
    FOLLOW_MAX_CHANGES = 200
    #: More streets touched than this in one poll: re-read everything.
    FOLLOW_MAX_STREETS = 8
    #: At most this many elders of one visit change are updated incrementally (else the street is re-read).
    FOLLOW_MAX_VISIT_ELDERS = 200

    def _seq_now(self) -> int:
        """The feed's latest seq (0 when it cannot be read, e.g. a store not yet migrated)."""
        from gridmap.store.changes import latest_seq

        try:
            return latest_seq(self.engine)
        except Exception:  # noqa: BLE001 - no change_log table: nothing to follow
            return 0

    def _remember_own(self, before: int, actor: str, elder_id: int) -> None:
        """Note the seq of this process's own visit save (already applied by :meth:`_after_write`): the follower
        then does not refresh its street a second time."""
        from gridmap.store.changes import read_changes

        try:
            for c in read_changes(self.engine, since=before, limit=50):
                if c.actor == actor and c.kind.value == "visit" and c.elders == (int(elder_id),):
                    with self._follow_lock:
                        self._own_seqs.add(c.seq)
                    break
        except Exception:  # noqa: BLE001 - then the follower refreshes it again (idempotent)
            pass

    def _drop_gone_visits(self, elder_ids: set[int], since: date, read: pd.DataFrame) -> int:
        """Remove from the district's visits those of ``elder_ids`` since ``since`` the store no longer has
        (``read``: what it has); returns how many. Call with the lock held and the inputs read."""
        e, visits, h, r = self.inputs()  # pending visits appended first
        mine = visits["elder_id"].isin(list(elder_ids)) & (visits["visited_on"] >= pd.Timestamp(since))
        gone = mine & ~visits["id"].isin(read["id"] if len(read) else [])
        n = int(gone.sum())
        if n:
            self._inputs = (e, visits[~gone], h, r)
        return n

    def poll_changes(self) -> dict[str, Any]:
        """Apply the changes of the feed made since :attr:`followed_seq` (by any process), once.

        Per change: this process's own saves (already applied) are skipped; visits of a few known elders
        are added incrementally (:meth:`_apply_visits`); any other change re-reads its streets
        (:meth:`refresh_street`), each street once per poll and only if it was not re-read after the change;
        a grid change also drops the cached layers. More than :data:`FOLLOW_MAX_CHANGES` new changes, more
        than :data:`FOLLOW_MAX_STREETS` streets, a change of the whole district (``"*"``) or a change too old
        to be in the feed's window re-read everything (:meth:`invalidate`). Missing seqs below the high-water
        mark are re-checked for :data:`gridmap.store.changes.GAP_GRACE_S` seconds (see that module).

        Returns
        -------
        dict
            ``seq`` (followed now), ``changes`` applied, ``streets`` refreshed, ``reread`` (bool).
        """
        import time as _time

        from gridmap.store.changes import GAP_GRACE_S, latest_seq, read_changes

        with self._follow_lock:
            last = self.followed_seq
            top = latest_seq(self.engine)
            now = _time.monotonic()
            for g in [g for g, t in self._gaps.items() if now - t > GAP_GRACE_S]:
                del self._gaps[g]  # rolled back (see gridmap.store.changes)
            if top <= last and not self._gaps:
                return {"seq": last, "changes": 0, "streets": 0, "reread": False}
            rows = read_changes(self.engine, since=last, limit=self.FOLLOW_MAX_CHANGES + 1, seqs=self._gaps)
            fresh = [c for c in rows if c.seq > last]
            if len(fresh) > self.FOLLOW_MAX_CHANGES:  # fallen behind: re-read everything
                self.invalidate()
                self.followed_seq, self._gaps = top, {}
                self.follow_stats["rereads"] += 1
                return {"seq": top, "changes": len(fresh), "streets": 0, "reread": True}
            for c in rows:
                self._gaps.pop(c.seq, None)
            seen = {c.seq for c in fresh}
            high = max(seen, default=last)
            for g in range(last + 1, high):
                if g not in seen:
                    self._gaps.setdefault(g, now)
            self.followed_seq = max(last, high)
            own = {c.seq for c in rows if c.seq in self._own_seqs}
            self._own_seqs -= {x for x in self._own_seqs if x <= self.followed_seq}
        self.follow_stats["skipped_own"] += len(own)
        todo = [c for c in rows if c.seq not in own]
        streets: set[str] = set()
        visits: dict[str, set[int]] = {}
        whole = False
        for c in todo:
            if c.kind.value == "grid":
                with self._lock:
                    self._layers.clear()
            if "*" in c.streets or c.kind.value == "calendar" and not c.streets:
                whole = True
                continue
            for st in c.streets or (("",) if c.elders else ()):  # elders without a street: street ""
                if c.seq <= max(self._loaded_seq, self._street_seq.get(st, 0)) and self._inputs is not None:
                    continue  # re-read after the change already
                if c.kind.value == "visit" and not c.many and 0 < len(c.elders) <= self.FOLLOW_MAX_VISIT_ELDERS:
                    visits.setdefault(st, set()).update(c.elders)
                else:
                    streets.add(st)
        self.follow_stats["changes"] += len(todo)
        if self._inputs is None:  # nothing read yet here: drop the small caches, the register is read on use
            if todo:
                self.invalidate()
            return {"seq": self.followed_seq, "changes": len(todo), "streets": 0, "reread": bool(todo)}
        if whole or len(streets | set(visits)) > self.FOLLOW_MAX_STREETS:
            self.invalidate()
            self.follow_stats["rereads"] += 1
            return {"seq": self.followed_seq, "changes": len(todo), "streets": 0, "reread": True}
        first, _ = parse_week(self.weeks()[-1])
        for st, ids in sorted(visits.items()):
            if st in streets:
                continue
            if not self._apply_visits(sorted(ids), first - timedelta(days=60), self.today):
                streets.add(st)  # an elder new to this process: re-read the street
        for st in sorted(streets):
            self.refresh_street(st)
        self.follow_stats["streets"] += len(streets) + len(set(visits) - streets)
        return {"seq": self.followed_seq, "changes": len(todo), "streets": len(streets | set(visits)),
                "reread": False}

    def follow_changes(self, interval: float = 1.0) -> threading.Thread:
        """Follow the change feed in a daemon thread (``gridmap-follow``): :meth:`poll_changes` every
        ``interval`` seconds, sooner on PostgreSQL when a ``NOTIFY gridmap_changes`` arrives. Idempotent per
        process; returns the thread."""
        with self._follow_lock:
            t = self._follow_thread
            if t is not None and t.is_alive():
                return t
            self._follow_stop.clear()
            t = self._follow_thread = threading.Thread(target=self._follow_loop, args=(float(interval),),
                                                       daemon=True, name="gridmap-follow")
            t.start()
            return t

    def stop_following(self, timeout: float | None = 5.0) -> None:
        """Stop the follower thread (tests, shutdown)."""
        self._follow_stop.set()
        t = self._follow_thread
        if t is not None:
            t.join(timeout)

    def _follow_loop(self, interval: float) -> None:
        import logging

        log = logging.getLogger("gridmap.dashboard")
        listener = self._listen()
        while not self._follow_stop.is_set():
            try:
                self.poll_changes()
            except Exception:  # noqa: BLE001 - the database may be briefly away: try again next time
                log.warning("following the change feed failed", exc_info=True)
            if listener is not None:
                try:
                    for _n in listener.notifies(timeout=interval, stop_after=1):
                        break
                    continue
                except Exception:  # noqa: BLE001 - connection lost: fall back to polling
                    listener = None
            self._follow_stop.wait(interval)

    def _listen(self) -> Any:
        """A psycopg connection ``LISTEN``-ing to the feed's channel on PostgreSQL (else ``None``)."""
        if self.engine.dialect.name != "postgresql":
            return None
        try:
            import psycopg

            from gridmap.store.changes import CHANNEL

            url = self.engine.url.set(drivername="postgresql")
            conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
            conn.execute(f"LISTEN {CHANNEL}")
            return conn
        except Exception:  # noqa: BLE001 - polling alone is enough
            return None

    def start_background(self, *, interval: float = 1.0) -> None:
        """Start this process's background work: the change follower and the warm-up. Idempotent per process
        (a forked server worker calls it after the fork: threads do not survive a fork)."""
        import os

        pid = os.getpid()
        if self._background_pid == pid:
            return
        if pid != self._pid:  # a forked child: the parent's threads are gone, and a lock it held stays held here
            self._pid = pid
            self._warm_lock, self._follow_lock = threading.Lock(), threading.Lock()
            self._follow_stop = threading.Event()
            self._warm_thread = self._follow_thread = None
            self._active_lock = threading.Lock()
            self._active = 0
        self._background_pid = pid
        self.follow_changes(interval)
        self.start_warm()

