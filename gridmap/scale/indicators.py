"""The core indicators computed in SQL where the data live (GROUP BY queries; no table is pulled into Python).

:func:`sql_indicators` gives, per street, community or district and for an
ISO week or a month, the same figures as
:func:`gridmap.rules.indicators.compute_indicators` (same definitions, same
rules: effective modes, credited roles, programme statuses):

``elders``, ``willing``, ``weekly_rate`` (周探访率), ``monthly_rate`` (月有效探访率),
``overdue`` (逾期探访), ``overdue_days_mean``, ``overdue_days_max``, ``visits``
(in the period, any mode), ``hazards_open`` (未整改隐患), ``hazards_overdue``.

The remaining indicators of the pandas module (device coverage, register
completeness, 流于形式 signs) stay there: they need per-visit history
comparisons that are cheap on one district's rows but not worth a SQL
rewrite now.

Two sources: ``"main"`` — the register of :mod:`gridmap.store.models` (SQLite
or PostGIS; the unit ``district`` is 海淀区 as in the pandas module) — and
``"city"`` — the city-scale store of :mod:`gridmap.scale.store` (PostGIS;
units are codes, ``district`` is the district code). One query: visits are
aggregated per elder (last effective visit up to the period's end, one flag
per ISO week, the month flag, visits in the period), hazards per elder, both
joined to the programme's elders and grouped by the unit. On the city store
the joins carry the district code so PostgreSQL joins and aggregates
partition by partition, and ``district=`` prunes to one district's partitions.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from gridmap._errors import ValidationError
from gridmap.rules.config import Rules, load_rules
from gridmap.rules.indicators import Period, period_of
from gridmap.rules.requirements import parse_week

#: Indicators :func:`sql_indicators` computes (a subset of gridmap.rules.indicators.INDICATOR_LABELS).
SQL_INDICATORS = ("elders", "willing", "weekly_rate", "monthly_rate", "overdue", "overdue_days_mean",
                  "overdue_days_max", "visits", "hazards_open", "hazards_overdue")
LEVELS = ("district", "street", "community")

_city_md = MetaData(schema="city")
CITY_ELDER = Table("elder", _city_md, Column("id", Integer), Column("district_code", String),
                   Column("street_code", String), Column("street", String), Column("community_code", String),
                   Column("status", String), Column("willing", Boolean))
CITY_VISIT = Table("visit", _city_md, Column("id", Integer), Column("district_code", String),
                   Column("elder_id", Integer), Column("visited_on", Date), Column("mode", String),
                   Column("effective", Boolean), Column("visitor_role", String))
CITY_HAZARD = Table("hazard", _city_md, Column("id", Integer), Column("district_code", String),
                    Column("elder_id", Integer), Column("opened_on", Date), Column("deadline", Date),
                    Column("closed_on", Date))


def _flag(cond: Any) -> Any:
    return case((cond, 1), else_=0)


def _days_between(dialect: str, end: date, col: Any) -> Any:
    if dialect == "postgresql":
        return literal_column(f"DATE '{end.isoformat()}'") - col
    return cast(func.julianday(end.isoformat()) - func.julianday(col), Integer)


def _date(dialect: str, d: date) -> Any:
    return literal_column(f"DATE '{d.isoformat()}'") if dialect == "postgresql" else literal(d.isoformat())


def indicator_query(
    dialect: str,
    period: Period,
    rules: Rules,
    *,
    level: str = "street",
    source: str = "main",
    district: str | None = None,
) -> Any:
    """The SQLAlchemy select of :func:`sql_indicators` (one row per unit)."""
    if level not in LEVELS:
        raise ValidationError(f"unknown level; use one of {', '.join(LEVELS)}",
                              f"未知统计层级；可选 {', '.join(LEVELS)}", field="level", value=level, code="level")
    if source not in ("main", "city"):
        raise ValidationError("source must be main or city", "数据源须为 main 或 city", field="source",
                              value=source, code="source")
    prog = sorted(str(getattr(s, "value", s)) for s in rules.programme_statuses)
    modes = sorted(str(getattr(m, "value", m)) for m in rules.effective_modes)
    roles = sorted(str(getattr(r, "value", r)) for r in rules.credited_roles)
    end, start = period.end, period.start
    if source == "main":
        from gridmap.domain.enums import ElderStatus, VisitMode, VisitorRole
        from gridmap.store.models import Community, Elder, Hazard, Street, Visit

        unit = {"district": literal("海淀区"), "street": Street.name, "community": Community.name}[level]
        e = (select(Elder.id.label("id"), unit.label("unit"), Elder.willing_to_be_visited.label("willing"))
             .select_from(Elder).outerjoin(Street, Street.id == Elder.street_id)
             .outerjoin(Community, Community.id == Elder.community_id)
             .where(Elder.status.in_([ElderStatus(s) for s in prog]), unit.is_not(None)))
        vt, ht = Visit, Hazard
        eff = and_(Visit.effective.is_(True), Visit.mode.in_([VisitMode(m) for m in modes]),
                   Visit.visitor_role.in_([VisitorRole(r) for r in roles]))
        vkeys, hkeys, ekeys = [Visit.elder_id], [Hazard.elder_id], ["id"]
        v_elder, h_elder = Visit.elder_id, Hazard.elder_id
        vd, v_dc, h_dc = Visit.visited_on, None, None
        h_open, h_dead, h_close = Hazard.opened_on, Hazard.deadline, Hazard.closed_on
    else:
        E, vt, ht = CITY_ELDER, CITY_VISIT, CITY_HAZARD
        unit = {"district": E.c.district_code, "street": E.c.street_code, "community": E.c.community_code}[level]
        e = select(E.c.id, E.c.district_code, unit.label("unit"), E.c.willing).where(
            E.c.status.in_(prog), unit.is_not(None))
        if district is not None:
            e = e.where(E.c.district_code == district)
        eff = and_(vt.c.effective.is_(True), vt.c.mode.in_(modes), vt.c.visitor_role.in_(roles))
        v_elder, h_elder = vt.c.elder_id, ht.c.elder_id
        v_dc, h_dc = vt.c.district_code, ht.c.district_code
        vkeys, hkeys, ekeys = [v_dc, v_elder], [h_dc, h_elder], ["district_code", "id"]
        vd = vt.c.visited_on
        h_open, h_dead, h_close = ht.c.opened_on, ht.c.deadline, ht.c.closed_on
    dialect_d = (lambda d: _date(dialect, d))
    cols = [*[k.label(n) for k, n in zip(vkeys, ["district_code", "elder_id"][-len(vkeys):], strict=True)],
            func.max(case((and_(eff, vd <= dialect_d(end)), vd))).label("last")]
    for i, w in enumerate(period.weeks):
        mon, sun = parse_week(w)
        cols.append(func.max(_flag(and_(eff, vd >= dialect_d(mon), vd <= dialect_d(min(sun, end))))).label(f"w{i}"))
    cols.append(func.max(_flag(and_(eff, vd >= dialect_d(period.month_start),
                                    vd <= dialect_d(period.month_end)))).label("m"))
    cols.append(func.sum(_flag(vd >= dialect_d(start))).label("n"))
    vq = select(*cols).where(vd <= dialect_d(end))
    if district is not None and v_dc is not None:
        vq = vq.where(v_dc == district)
    v = vq.group_by(*vkeys).subquery("v")
    is_open = and_(h_open <= dialect_d(end), or_(h_close.is_(None), h_close > dialect_d(end)))
    hq = select(*[k.label(n) for k, n in zip(hkeys, ["district_code", "elder_id"][-len(hkeys):], strict=True)],
                func.sum(_flag(is_open)).label("open"),
                func.sum(_flag(and_(is_open, h_dead.is_not(None), h_dead < dialect_d(end)))).label("late"),
                ).where(h_open <= dialect_d(end))
    if district is not None and h_dc is not None:
        hq = hq.where(h_dc == district)
    h = hq.group_by(*hkeys).subquery("h")
    es = e.subquery("e")

    def on(sub: Any) -> Any:
        conds = [sub.c.elder_id == es.c.id]
        if "district_code" in ekeys:
            conds.append(sub.c.district_code == es.c.district_code)
        return and_(*conds)

    willing = _flag(es.c.willing.is_(True))
    ref = period.start - timedelta(days=1)
    since = _days_between(dialect, end, func.coalesce(v.c.last, _date(dialect, ref)))
    per = (select(es.c.unit, willing.label("willing"),
                  *[func.coalesce(v.c[f"w{i}"], 0).label(f"w{i}") for i in range(len(period.weeks))],
                  func.coalesce(v.c.m, 0).label("m"), func.coalesce(v.c.n, 0).label("n"),
                  (since - case((es.c.willing.is_(True), 7), else_=31)).label("days"),
                  func.coalesce(h.c.open, 0).label("hopen"), func.coalesce(h.c.late, 0).label("hlate"))
           .select_from(es).outerjoin(v, on(v)).outerjoin(h, on(h))).subquery("per")
    nweeks = len(period.weeks)
    visited = sum((per.c[f"w{i}"] * per.c.willing for i in range(nweeks)), literal(0))
    return (select(per.c.unit.label("unit"), func.count().label("elders"), func.sum(per.c.willing).label("willing"),
                   (cast(func.sum(visited), Float) / func.nullif(func.sum(per.c.willing) * nweeks, 0))
                   .label("weekly_rate"),
                   cast(func.avg(per.c.m), Float).label("monthly_rate"),
                   func.sum(_flag(per.c.days > 0)).label("overdue"),
                   cast(func.avg(case((per.c.days > 0, per.c.days))), Float).label("overdue_days_mean"),
                   func.max(case((per.c.days > 0, per.c.days))).label("overdue_days_max"),
                   func.sum(per.c.n).label("visits"), func.sum(per.c.hopen).label("hazards_open"),
                   func.sum(per.c.hlate).label("hazards_overdue"))
            .group_by(per.c.unit))


#: ``work_mem`` of the indicator transaction on PostgreSQL: the per-elder visit aggregate of a
#: 120,000-elder district spills to disk with the 4 MB default (EXPLAIN showed 40 MB per partition).
WORK_MEM = "64MB"


def _prepare(conn: Any, source: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
    if source == "city":
        conn.exec_driver_sql("SET LOCAL enable_partitionwise_join = on")
        conn.exec_driver_sql("SET LOCAL enable_partitionwise_aggregate = on")


def sql_indicators(
    engine: Engine,
    *,
    week: str | None = None,
    month: str | None = None,
    level: str = "street",
    source: str = "main",
    district: str | None = None,
    rules: Rules | None = None,
) -> pd.DataFrame:
    """Indicators of one period per unit, computed by the database.

    Parameters
    ----------
    engine
        The store (``source="main"``: SQLite or PostGIS; ``"city"``: PostGIS with schema ``city``).
    week, month
        Exactly one: ISO week ``2026-W49`` or month ``2026-12``.
    level
        ``district``, ``street`` or ``community``.
    source
        ``main`` (the register) or ``city`` (the city-scale store).
    district
        City store only: one district's code (reads only its partitions).
    rules
        Visit rules (default from the rules file).

    Returns
    -------
    pandas.DataFrame
        Indexed by the unit (named after ``level``; names for ``main``, codes for ``city``),
        columns :data:`SQL_INDICATORS`, sorted laggards first as the pandas module does.
    """
    rules = rules or load_rules()
    period = period_of(week, month)
    q = indicator_query(engine.dialect.name, period, rules, level=level, source=source, district=district)
    with engine.begin() as conn:
        _prepare(conn, source)
        rows = conn.execute(q).mappings().all()
    df = pd.DataFrame(rows, columns=["unit", *SQL_INDICATORS])
    df = df.set_index("unit")
    df.index.name = level
    ints = ["elders", "willing", "overdue", "visits", "hazards_open", "hazards_overdue"]
    df[ints] = df[ints].fillna(0).astype(int)
    for c in ("weekly_rate", "monthly_rate", "overdue_days_mean", "overdue_days_max"):
        df[c] = df[c].astype(float)
    df = df.sort_values(["weekly_rate", "monthly_rate", "overdue", "hazards_open"],
                        ascending=[True, True, False, False], na_position="last", kind="stable")
    df.attrs["period"] = period
    return df


def explain_indicators(
    engine: Engine,
    *,
    week: str | None = None,
    month: str | None = None,
    level: str = "street",
    source: str = "city",
    district: str | None = None,
    rules: Rules | None = None,
) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the indicator query on PostgreSQL (the plan text)."""
    rules = rules or load_rules()
    period = period_of(week, month)
    q = indicator_query(engine.dialect.name, period, rules, level=level, source=source, district=district)
    sql = str(q.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.begin() as conn:
        _prepare(conn, source)
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql.replace("%", "%%")).all()
    return "\n".join(r[0] for r in rows)


__all__ = ["CITY_ELDER", "CITY_HAZARD", "CITY_VISIT", "LEVELS", "SQL_INDICATORS", "WORK_MEM", "explain_indicators",
           "indicator_query", "sql_indicators"]
