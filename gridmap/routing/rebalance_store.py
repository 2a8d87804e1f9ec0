"""Reading a street's grids, elders and visit stewards for rebalancing, and writing or undoing an accepted proposal.

All SQL of :mod:`gridmap.routing.rebalance` lives here. Writes run in one ORM transaction
(:func:`gridmap.store.db.session_scope`): the elders' new visit stewards are recorded in the register
history (``register_change``) and one change-feed row (kind ``plan``) tells every server process which
street changed. A proposal is kept in ``plan_proposal`` (``moves`` holds the whole proposal as JSON:
``{"format": "grids/1", "moves": [...], "splits": [...], "undone_at": null, ...}``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from gridmap._errors import GridmapError, ValidationError
from gridmap.domain.enums import ChangeKind, StewardKind
from gridmap.routing.territory import (
    DETOUR,
    WALK_M_PER_MIN,
    ElderLoad,
    GridUnit,
    StewardUnit,
)
from gridmap.store.changes import record_change
from gridmap.store.db import session_scope
from gridmap.store.models import (
    Community,
    Elder,
    Grid,
    PlanProposal,
    Steward,
    Street,
    utcnow,
)

__all__ = [
    "FORMAT",
    "StreetUnits",
    "account_id",
    "apply_proposal",
    "grid_unit",
    "helpers_near",
    "keep_proposal",
    "load_proposal",
    "load_street",
    "neighbours_of",
    "street_names",
    "undo_proposal",
]

#: ``plan_proposal.moves`` format of a grid rebalancing proposal.
FORMAT = "grids/1"


@dataclass
class StreetUnits:
    """What a street's rebalancing starts from."""

    street: str
    street_id: int
    grids: list[GridUnit]
    stewards: list[StewardUnit]
    steward_ids: dict[str, int]
    steward_names: dict[str, str]
    community_names: dict[str, str]
    grid_geoms: dict[str, Any] = field(default_factory=dict)
    grid_pk: dict[str, int] = field(default_factory=dict)
    elder_xy: dict[int, tuple[float, float]] = field(default_factory=dict)
    community_ids: dict[str, int] = field(default_factory=dict)
    #: The walk road graph the travel came from (``None``: straight line × detour); redrawing cuts along its edges.
    graph: Any = None


def street_names(engine: Engine) -> list[str]:
    """Names of the streets (in code order)."""
    with engine.connect() as conn:
        return list(conn.execute(select(Street.name).order_by(Street.code)).scalars())


def _street_id(conn: Any, street: str) -> int:
    sid = conn.execute(select(Street.id).where(Street.name == street)).scalar()
    if sid is None:
        raise ValidationError(f"no street named {street!r}", f"未找到街道“{street}”", field="street", value=street,
                              code="unknown_street")
    return int(sid)


def _hop_minutes(xy: np.ndarray) -> float:
    """Mean nearest-neighbour walking minutes between the homes (metric x, y), straight line × detour."""
    if len(xy) < 2:
        return 0.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.mean(d[:, 1])) * DETOUR / WALK_M_PER_MIN


def _tour_length(D: np.ndarray) -> float:
    """Length of a closed tour through all points of the (symmetrised) matrix: nearest neighbour, then 2-opt."""
    n = len(D)
    if n < 2:
        return 0.0
    D = (D + D.T) / 2.0
    order = [0]
    left = set(range(1, n))
    while left:
        last = order[-1]
        nxt = min(left, key=lambda j: (D[last, j], j))
        order.append(nxt)
        left.remove(nxt)
    tour = np.array(order + [0])
    improved = n >= 4
    rounds = 0
    while improved and rounds < 20:
        improved = False
        rounds += 1
        for i in range(1, n - 1):
            a, b = tour[i - 1], tour[i]
            c, d = tour[i + 1:n], tour[i + 2:n + 1]
            delta = D[a, c] + D[b, d] - D[a, b] - D[c, d]
            k = int(np.argmin(delta))
            if delta[k] < -1e-9:
                j = i + 1 + k
                tour[i:j + 1] = tour[i:j + 1][::-1]
                improved = True
    return float(D[tour[:-1], tour[1:]].sum())


def road_tour_minutes(G: Any, lonlat: np.ndarray) -> float:
    """Walking minutes per home of a closed tour through the homes ``lonlat`` on the road graph ``G``.

    The walk matrix between the homes comes from :func:`gridmap.layers.travel.travel_matrix` (points far
    from the network: straight line × the graph's detour factor).
    """
    from gridmap.layers.travel import travel_matrix

    pts = np.unique(np.asarray(lonlat, dtype=float).reshape(-1, 2), axis=0)
    if len(pts) < 2:
        return 0.0
    M = travel_matrix(G, pts[:, 0], pts[:, 1], mode="walk")
    return _tour_length(M.seconds / 60.0) / len(lonlat)


def road_access(G: Any, bases: dict[str, tuple[float, float]], points: dict[str, tuple[float, float]]
                ) -> dict[str, dict[str, float]]:
    """One-way walking minutes on ``G`` from every base (steward code -> lon/lat) to every point (grid -> lon/lat)."""
    from gridmap.layers.travel import travel_matrix

    if not bases or not points:
        return {g: {} for g in points}
    sk, gk = list(bases), list(points)
    xy = np.array([bases[k] for k in sk] + [points[k] for k in gk])
    M = travel_matrix(G, xy[:, 0], xy[:, 1], mode="walk").seconds / 60.0
    ns = len(sk)
    return {g: {s: float((M[i, ns + j] + M[ns + j, i]) / 2.0) for i, s in enumerate(sk)} for j, g in enumerate(gk)}


def walk_graph() -> Any:
    """The OSM walk graph (cached per process), or ``None`` when no road data can be loaded."""
    from gridmap.routing.district import load_graphs

    return load_graphs({"walk"}).get("walk")


def grid_unit(code: str, community: str, geom: Any, elders: tuple[ElderLoad, ...],
              elder_xy: dict[int, tuple[float, float]], neighbours: frozenset[str] = frozenset(),
              graph: Any = None, access: dict[str, float] | None = None) -> GridUnit:
    """A :class:`GridUnit` from a polygon (lon/lat) and its elders: centroid and in-grid hop minutes computed.

    With ``graph`` (the walk road graph) the hop is :func:`road_tour_minutes`, else nearest-neighbour
    straight line × detour.
    """
    from gridmap.layers._osm_sources import to_utm

    xy = np.array([elder_xy[e.elder_id] for e in elders if e.visits and e.elder_id in elder_xy]).reshape(-1, 2)
    if graph is not None and len(xy) >= 2:
        hop = road_tour_minutes(graph, xy)
    else:
        hop = _hop_minutes(np.column_stack(to_utm(xy[:, 0], xy[:, 1]))) if len(xy) >= 2 else 0.0
    c = geom.representative_point() if geom is not None and not geom.is_empty else None
    centroid = (float(c.x), float(c.y)) if c is not None else (float(xy[:, 0].mean()), float(xy[:, 1].mean())) \
        if len(xy) else (0.0, 0.0)
    return GridUnit(code, community, centroid, neighbours, hop, tuple(sorted(elders, key=lambda e: e.elder_id)),
                    access)


def load_street(engine: Engine, street: str, week: str, *, rules: Any = None, graph: Any = True) -> StreetUnits:
    """Grids (with adjacency, elders, the week's visits) and active visit stewards of ``street``.

    Elders are those in the programme (:func:`gridmap.rules.store.read_facts`); their visits and service
    minutes are the week's in-home visits of :func:`gridmap.rules.requirements.routing_visits`. A grid's
    neighbours are the grids of the street whose polygons touch it (within a metre).

    ``graph``: the walk road graph for the travel part of the workload; ``True`` (default) loads the
    cached OSM walk graph (:func:`walk_graph`), ``None``/``False`` or no road data: straight line × detour.
    """
    from gridmap.rules.config import load_rules
    from gridmap.rules.requirements import parse_week, routing_visits
    from gridmap.rules.store import read_facts

    rules = rules or load_rules()
    monday, _ = parse_week(week)
    with engine.connect() as conn:
        sid = _street_id(conn, street)
        comms = conn.execute(select(Community.id, Community.code, Community.name)
                             .where(Community.street_id == sid)).all()
        ccode = {r.id: r.code for r in comms}
        grows = conn.execute(select(Grid.id, Grid.code, Grid.community_id, Grid.geom)
                             .where(Grid.community_id.in_(list(ccode))).order_by(Grid.code)).all()
        srows = conn.execute(select(Steward.id, Steward.code, Steward.name, Steward.community_id, Steward.base,
                                    Steward.work_days, Steward.max_work_minutes)
                             .where(Steward.kind == StewardKind.VISIT, Steward.active.is_(True),
                                    Steward.community_id.in_(list(ccode)))).all()
        # the elders of the street's grids (by grid, so that an elder whose register street differs from its
        # home's grid still follows the grid)
        erows = conn.execute(select(Elder.id, Elder.grid_id, Elder.visit_steward_id, Elder.geom)
                             .where(Elder.grid_id.in_([r.id for r in grows]))).all() if grows else []
        other = {r.visit_steward_id for r in erows if r.visit_steward_id is not None} - {r.id for r in srows}
        scode_other = dict(conn.execute(select(Steward.id, Steward.code).where(Steward.id.in_(list(other)))).all()) \
            if other else {}
    facts = read_facts(engine, monday, elder_ids=[int(r.id) for r in erows], rules=rules) if erows else []
    in_programme = {f.id for f in facts}
    visits = {int(v["id"]): v for v in routing_visits(facts, week, rules)}
    scode = {r.id: r.code for r in srows} | scode_other
    gcode = {r.id: r.code for r in grows}
    by_grid: dict[str, list[ElderLoad]] = {r.code: [] for r in grows}
    elder_xy: dict[int, tuple[float, float]] = {}
    for r in erows:
        if r.id not in in_programme or r.grid_id not in gcode:
            continue
        v = visits.get(int(r.id))
        n = int(v["count"]) if v else 0
        by_grid[gcode[r.grid_id]].append(ElderLoad(int(r.id), scode.get(r.visit_steward_id), n,
                                                   float(n * v["service_minutes"]) if v else 0.0))
        if r.geom is not None:
            elder_xy[int(r.id)] = (float(r.geom.x), float(r.geom.y))
    geoms = {r.code: r.geom for r in grows}
    nb = neighbours_of(geoms)
    G = walk_graph() if graph is True else (graph or None)
    access: dict[str, dict[str, float]] = {}
    if G is not None:
        points = {}
        for r in grows:
            c = r.geom.representative_point() if r.geom is not None and not r.geom.is_empty else None
            if c is not None:
                points[r.code] = (float(c.x), float(c.y))
        bases = {r.code: (float(r.base.x), float(r.base.y)) for r in srows if r.base is not None}
        access = road_access(G, bases, points)
    grids = [grid_unit(r.code, ccode[r.community_id], r.geom, tuple(by_grid[r.code]), elder_xy,
                       frozenset(nb[r.code]), G, access.get(r.code) if G is not None else None) for r in grows]
    stewards = [StewardUnit(r.code, ccode[r.community_id],
                            (float(r.base.x), float(r.base.y)) if r.base is not None else None,
                            float(int(r.max_work_minutes or 360) * len(r.work_days or [1, 2, 3, 4, 5])), r.name)
                for r in sorted(srows, key=lambda r: r.code)]
    ids = {r.code: int(r.id) for r in srows} | {c: int(i) for i, c in scode_other.items()}
    return StreetUnits(street, sid, grids, stewards, ids, {r.code: r.name for r in srows},
                       {r.code: r.name for r in comms}, geoms, {r.code: int(r.id) for r in grows}, elder_xy,
                       {r.code: int(r.id) for r in comms}, G)


def neighbours_of(geoms: dict[str, Any]) -> dict[str, set[str]]:
    """Grid code -> codes of the grids whose polygons touch it (within a metre)."""
    import geopandas as gpd

    from gridmap.layers.crs import METRIC_CRS

    codes = list(geoms)
    nb: dict[str, set[str]] = {c: set() for c in codes}
    if not codes:
        return nb
    gm = gpd.GeoSeries([geoms[c] for c in codes], crs="EPSG:4326").to_crs(METRIC_CRS)
    tree = shapely.STRtree(gm.to_numpy())
    left, right = tree.query(gm.buffer(1.0).to_numpy(), predicate="intersects")
    for a, b in zip(left, right, strict=True):
        if a != b:
            nb[codes[a]].add(codes[b])
    return nb


def helpers_near(engine: Engine, street: str) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    """Active 服务管家 of ``street`` (by their station's or community's street: code, name, organisation, base,
    weekly minutes) and the centre of each community of the street."""
    from gridmap.store.models import ServiceStation

    with engine.connect() as conn:
        sid = _street_id(conn, street)
        rows = conn.execute(
            select(Steward.code, Steward.name, Steward.base, Steward.work_days, Steward.max_work_minutes,
                   Steward.organisation)
            .outerjoin(ServiceStation, ServiceStation.id == Steward.station_id)
            .outerjoin(Community, Community.id == Steward.community_id)
            .where(Steward.kind == StewardKind.SERVICE, Steward.active.is_(True), Steward.base.is_not(None),
                   (ServiceStation.street_id == sid) | (Community.street_id == sid))).all()
        centres = dict(conn.execute(select(Community.code, Community.centre).where(Community.street_id == sid)).all())
    helpers = [{"steward": r.code, "name": r.name, "organisation": r.organisation,
                "base": (float(r.base.x), float(r.base.y)),
                "minutes": float(int(r.max_work_minutes or 360) * len(r.work_days or [1, 2, 3, 4, 5]))} for r in rows]
    return helpers, {c: (float(p.x), float(p.y)) for c, p in centres.items() if p is not None}


def account_id(engine: Engine, name: str, *, create: bool = False) -> int | None:
    """The ``app_user`` id of ``name`` (enabled or not); with ``create``, a disabled district account is made.

    Command-line proposals are kept under the operator's gridmap user when there is one, else under the
    disabled service account ``cli`` (it cannot sign in; ``plan_proposal`` needs a user).
    """
    from gridmap.store.models import AppUser

    with engine.connect() as conn:
        uid = conn.execute(select(AppUser.id).where(AppUser.username == name)).scalar()
    if uid is None and create:
        from gridmap.access.users import add_user, disable_user

        add_user(engine, name, "district", password=secrets.token_urlsafe(24), display_name="命令行 / command line")
        disable_user(engine, name)
        return account_id(engine, name)
    return None if uid is None else int(uid)


def keep_proposal(engine: Engine, user_id: int, street: str, week: str, payload: dict[str, Any]) -> str:
    """Store a proposal for ``user_id`` (not yet accepted); returns its id."""
    pid = secrets.token_urlsafe(12)
    with engine.begin() as conn:
        conn.execute(PlanProposal.__table__.insert(), {
            "id": pid, "user_id": int(user_id), "street": street, "week": week,
            "moves": {**payload, "format": FORMAT, "undone_at": None}, "created_at": utcnow()})
    return pid


def load_proposal(engine: Engine, pid: str) -> dict[str, Any] | None:
    """The stored proposal ``pid`` (``None``: unknown or not a grid proposal) with ``accepted_at``."""
    with engine.connect() as conn:
        r = conn.execute(select(PlanProposal.user_id, PlanProposal.street, PlanProposal.week, PlanProposal.moves,
                                PlanProposal.accepted_at, PlanProposal.created_at)
                         .where(PlanProposal.id == pid)).first()
    if r is None or not isinstance(r.moves, dict) or r.moves.get("format") != FORMAT:
        return None
    return {**r.moves, "id": pid, "user_id": r.user_id, "street": r.street, "week": r.week,
            "accepted_at": r.accepted_at, "created_at": r.created_at}


def _set_stewards(s: Any, sid: int, changes: list[tuple[int, int | None, int | None]]) -> list[dict[str, Any]]:
    """Set each elder's visit steward ``old -> new`` after checking it is still ``old``; the conflicts."""
    conflicts = []
    elders = {e.id: e for e in s.scalars(select(Elder).where(Elder.id.in_([c[0] for c in changes])))}
    in_street = set(s.scalars(select(Grid.id).join(Community, Community.id == Grid.community_id)
                              .where(Community.street_id == sid)))
    for eid, old, new in changes:
        e = elders.get(eid)
        if e is None or e.grid_id not in in_street:
            conflicts.append({"elder_id": eid, "reason": "elder_outside_street"})
        elif e.visit_steward_id != old:
            conflicts.append({"elder_id": eid, "reason": "steward_changed", "expected": old,
                              "found": e.visit_steward_id})
        else:
            e.visit_steward_id = new
    return conflicts


def _multi(geom: Any) -> Any:
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    return shapely.MultiPolygon([p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"])


def _apply_splits(s: Any, p: dict[str, Any], actor: str, undo: bool) -> list[dict[str, Any]]:
    """Redraw (or, with ``undo``, restore) the grids a proposal splits; the conflicts found."""
    from shapely import wkt

    conflicts: list[dict[str, Any]] = []
    for sp in p.get("splits") or []:
        g = s.scalars(select(Grid).where(Grid.code == sp["grid"])).first()
        if g is None:
            conflicts.append({"grid": sp["grid"], "reason": "grid_gone"})
            continue
        expect = wkt.loads(sp["geom_after"] if undo else sp["geom_before"])
        if g.geom is None or shapely.symmetric_difference(g.geom, expect).area > 1e-10:
            conflicts.append({"grid": sp["grid"], "reason": "grid_redrawn"})
            continue
        if not undo:
            g.geom = _multi(wkt.loads(sp["geom_after"]))
            g.updated_by, g.updated_at = actor, utcnow()
            for n in sp["new_grids"]:
                if s.scalars(select(Grid.id).where(Grid.code == n["grid"])).first() is not None:
                    conflicts.append({"grid": n["grid"], "reason": "grid_code_taken"})
                    continue
                ng = Grid(code=n["grid"], name=n["grid"], community_id=g.community_id, workload=None,
                          approximate=g.approximate, geom=_multi(wkt.loads(n["geom"])), updated_by=actor)
                s.add(ng)
                s.flush()
                for e in s.scalars(select(Elder).where(Elder.id.in_(n["elders"]))):
                    if e.grid_id != g.id:
                        conflicts.append({"elder_id": e.id, "reason": "grid_changed"})
                    e.grid_id = ng.id
        else:
            for n in sp["new_grids"]:
                ng = s.scalars(select(Grid).where(Grid.code == n["grid"])).first()
                if ng is None:
                    conflicts.append({"grid": n["grid"], "reason": "grid_gone"})
                    continue
                for e in s.scalars(select(Elder).where(Elder.grid_id == ng.id)):
                    e.grid_id = g.id
                s.flush()
                s.delete(ng)
            g.geom = _multi(wkt.loads(sp["geom_before"]))
            g.updated_by, g.updated_at = actor, utcnow()
    s.flush()
    return conflicts


def _changes(p: dict[str, Any], undo: bool) -> list[tuple[int, int | None, int | None]]:
    out = []
    for m in p["moves"]:
        old, new = m["from_steward_id"], m["to_steward_id"]
        for eid in m["elders"]:
            out.append((int(eid), new, old) if undo else (int(eid), old, new))
    return out


def apply_proposal(engine: Engine, pid: str, actor: str, *, user_id: int | None = None) -> dict[str, Any]:
    """Accept proposal ``pid``: every moved elder gets its grid's steward, in one transaction (history, feed).

    Refused as a whole (nothing written) when the proposal is unknown, already accepted, belongs to
    another user (``user_id`` given), or any elder's steward changed since it was computed.
    """
    p = load_proposal(engine, pid)
    if p is None or (user_id is not None and p["user_id"] != user_id):
        raise ValidationError("no such rebalancing proposal", "未找到该负载均衡方案", field="id", value=pid,
                              code="unknown_proposal")
    if p["accepted_at"] is not None:
        raise ValidationError("this proposal was already accepted", "该方案已采纳", field="id", value=pid,
                              code="already_accepted")
    with session_scope(engine, user=actor, source="planner", reason=f"规划调度：网格负载均衡 {pid}") as s:
        n = s.execute(update(PlanProposal).where(PlanProposal.id == pid, PlanProposal.accepted_at.is_(None))
                      .values(accepted_at=utcnow())).rowcount
        if n != 1:
            raise ValidationError("this proposal was already accepted", "该方案已采纳", field="id", value=pid,
                                  code="already_accepted")
        sid = _street_id(s, p["street"])
        conflicts = _apply_splits(s, p, actor, undo=False) + _set_stewards(s, sid, _changes(p, undo=False))
        if conflicts:
            raise _Conflict(conflicts)
        elders = [int(e) for m in p["moves"] for e in m["elders"]]
        record_change(s, ChangeKind.PLAN, streets=[p["street"]], elders=elders, actor=actor,
                      detail={"op": "rebalance", "proposal": pid, "week": p["week"], "moves": len(p["moves"])})
    return p


def undo_proposal(engine: Engine, pid: str, actor: str) -> dict[str, Any]:
    """Undo an accepted proposal: every elder it moved gets its former visit steward back (one transaction).

    Refused as a whole when the proposal was not accepted, was undone already, or an elder's steward
    was changed after it (undo the later change first).
    """
    p = load_proposal(engine, pid)
    if p is None:
        raise ValidationError("no such rebalancing proposal", "未找到该负载均衡方案", field="id", value=pid,
                              code="unknown_proposal")
    if p["accepted_at"] is None:
        raise ValidationError("this proposal was never accepted: nothing to undo", "该方案未采纳，无需撤销",
                              field="id", value=pid, code="not_accepted")
    if p.get("undone_at"):
        raise ValidationError("this proposal was undone already", "该方案已撤销", field="id", value=pid,
                              code="already_undone")
    with session_scope(engine, user=actor, source="planner", reason=f"规划调度：撤销网格负载均衡 {pid}") as s:
        row = s.get(PlanProposal, pid)
        if row.moves.get("undone_at"):
            raise ValidationError("this proposal was undone already", "该方案已撤销", field="id", value=pid,
                                  code="already_undone")
        row.moves = {**row.moves, "undone_at": utcnow().isoformat(), "undone_by": actor}
        sid = _street_id(s, p["street"])
        conflicts = _set_stewards(s, sid, _changes(p, undo=True)) + _apply_splits(s, p, actor, undo=True)
        if conflicts:
            raise _Conflict(conflicts)
        elders = [int(e) for m in p["moves"] for e in m["elders"]]
        record_change(s, ChangeKind.PLAN, streets=[p["street"]], elders=elders, actor=actor,
                      detail={"op": "rebalance_undo", "proposal": pid, "week": p["week"]})
    return p


class _Conflict(GridmapError):
    """Some elders' stewards changed since the proposal was computed: nothing was written."""

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        ids = ", ".join(str(c.get("elder_id") or c.get("grid")) for c in conflicts[:10])
        super().__init__(
            f"{len(conflicts)} elders' visit stewards or grids changed since the proposal was computed ({ids}); "
            "nothing was written: compute a new proposal (or undo the later change first)",
            f"{len(conflicts)} 位老人的探访管家或网格在方案计算后已被调整（{ids}），未写入任何内容："
            "请重新计算方案（或先撤销之后的调整）")
        self.conflicts = conflicts


