"""Bulk path of the merge: new elders written with one multi-row INSERT … RETURNING per chunk.

The ORM path (:meth:`gridmap.register.merge._Merger.new_elder`) builds one
:class:`~gridmap.store.models.Elder` object per row and lets the unit of work
insert them one statement per row, with the history listener writing one
``*created*`` row each. Here the same values are built as plain dicts and
written with one SQLAlchemy Core ``insert`` executemany (ids allocated up front:
the table's sequence on PostgreSQL, after the largest id on SQLite under the
transaction's write lock; psycopg 3 pipelines the statements, sqlite3 runs them in
C), the first contacts and household members likewise, and their
history rows (``register_change``, field ``*created*``) in one executemany.
The change feed gets the elders and streets through the session's pending
change (:func:`gridmap.store.changes.pending`), so the import's one
``change_log`` row names them as the ORM path would.

Everything runs in the caller's session and transaction.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import Table, func, insert, select, text

from gridmap.domain.enums import Category, ChangeKind, ElderStatus
from gridmap.register.validate import RowError
from gridmap.store import changes
from gridmap.store.models import (
    Elder,
    FirstContact,
    HouseholdMember,
    RegisterChange,
    utcnow,
)

if TYPE_CHECKING:
    from gridmap.register.merge import _Merger

_CATEGORY_ORDER = {c: i for i, c in enumerate(Category)}


def _elder_row(m: _Merger, rec: dict[str, Any], now: Any,
               geom: Any = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The elder table row of a new elder and its first contact (or None), as :meth:`_Merger.new_elder` sets them.

    ``geom``: the record's point when already built (vectorised by the caller), else it is built here.
    """
    from gridmap.register.merge import (
        CATEGORY_FLAGS,
        LISTED_BY,
        NOT_NULL_DEFAULTS,
        SCALAR_FIELDS,
        _location,
        _steward_id,
        contact_rule_cached,
    )

    src = m.src
    loc = _location(rec, m.areas, geom)
    sources: dict[str, Any] = {LISTED_BY: [src]}
    row: dict[str, Any] = {col: None for col in SCALAR_FIELDS.values()}
    row.update(name=rec["name"], id_number=rec.get("id_number"), **loc)
    for key, col in SCALAR_FIELDS.items():
        v = rec.get(key)
        if v is not None:
            row[col] = v
            sources[col] = [src]
    for col, default in NOT_NULL_DEFAULTS.items():
        if row.get(col) is None:
            row[col] = list(default) if isinstance(default, list) else default
    cats = []
    for flag, cat in CATEGORY_FLAGS.items():
        v = rec.get(flag)
        if v is not None:
            sources[f"categories.{flag}"] = [src]
            if v:
                cats.append(cat)
    if rec.get("disability_level") is not None:
        cats.append(Category.DISABLED)
    row["categories"] = sorted(set(cats), key=_CATEGORY_ORDER.__getitem__)
    if loc["address"]:
        sources["address"] = [src]
    vs = _steward_id(m.areas, rec.get("visit_steward"), loc["community_id"])
    ss = _steward_id(m.areas, rec.get("service_steward"), loc["community_id"])
    if rec.get("visit_steward") and vs is not None:
        sources["visit_steward_id"] = [src]
    if rec.get("service_steward") and ss is not None:
        sources["service_steward_id"] = [src]
    if vs is None:
        vs = m.areas.community_visit_steward.get(loc["community_id"] or -1)
        if vs is not None:
            m.out.stewards_defaulted.append(rec["row"])
            if rec.get("visit_steward"):
                m.out.warnings.append(RowError(
                    rec["row"], "探访管家", rec["visit_steward"], "steward_defaulted",
                    "未找到该探访管家，已由所在社区的探访管家负责",
                    "no such visit steward: the community's visit steward was assigned", "warning").masked())
    row["visit_steward_id"], row["service_steward_id"] = vs, ss
    if rec.get("household") and any(x.get("name") for x in rec["household"]):
        sources["household"] = [src]
    fc = None
    if rec.get("first_contact_name"):
        rule, valid = contact_rule_cached(rec["first_contact_name"], rec.get("first_contact_relation"),
                                          rec.get("first_contact_phone"))
        fc = {"name": rec["first_contact_name"][:40], "relation": rec.get("first_contact_relation") or None,
              "phone": rec.get("first_contact_phone"), "rule": rule, "valid": valid, "chosen_on": date.today()}
        sources["first_contact"] = [src]
    row.update(
        version=1, status=ElderStatus.ACTIVE, status_date=None, entered_on=rec.get("_entered_on") or date.today(),
        exited_on=None, exit_reason=None, signed_home_care_bed=False, field_sources=sources,
        created_at=now, updated_at=now,
    )
    return row, fc


def _geometry_values(values: list[Any], dialect_name: str) -> list[Any]:
    """Points as the database takes them: hex EWKB (SRID 4326) for PostGIS, WKB bytes on SQLite; None stays."""
    idx = [i for i, v in enumerate(values) if v is not None and not v.is_empty]
    out: list[Any] = [None] * len(values)
    if not idx:
        return out
    arr = [values[i] for i in idx]
    if dialect_name == "postgresql":
        wkb = shapely.to_wkb(shapely.set_srid(arr, 4326), hex=True, include_srid=True)
    else:
        wkb = shapely.to_wkb(arr)
    for i, w in zip(idx, wkb, strict=True):
        out[i] = w
    return out


def _convert(proc: Any, values: list[Any]) -> list[Any]:
    """``proc`` of every value; a repeated hashable value (None, a flag, a code, a date) converted once."""
    memo: dict[tuple[type, Any], Any] = {}
    out = []
    for v in values:
        if v is None or isinstance(v, (str, int, float, date)):
            key = (type(v), v)
            hit = memo.get(key, memo)
            if hit is memo:
                hit = memo[key] = proc(v)
            out.append(hit)
        else:
            out.append(proc(v))
    return out


def write_rows(session: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (plain dicts with the same keys, primary keys set) into ``table`` in the session's transaction.

    Values are converted column by column with each column type's own bind
    processor (as SQLAlchemy would convert them row by row), then written with
    ``COPY … FROM STDIN`` on PostgreSQL (psycopg 3 ``cursor.copy``) and one DB-API
    ``executemany`` on SQLite. Columns the rows leave out take their scalar
    default; a table with a missing column whose default is computed goes through
    SQLAlchemy's ``insert`` executemany instead.
    """
    if not rows:
        return
    from gridmap.store.types import GeometryType

    conn = session.connection()
    dialect = conn.dialect
    keys = list(rows[0])
    n = len(rows)
    columns: list[list[Any]] = [[r[k] for r in rows] for k in keys]
    names = list(keys)
    for c in table.columns:
        if c.key in rows[0] or c.default is None:
            continue
        if not getattr(c.default, "is_scalar", False):
            session.execute(insert(table), rows)
            return
        names.append(c.key)
        columns.append([c.default.arg] * n)
    data: list[list[Any]] = []
    for name, values in zip(names, columns, strict=True):
        col = table.c[name]
        if isinstance(col.type, GeometryType):
            data.append(_geometry_values(values, dialect.name))
            continue
        proc = col.type._cached_bind_processor(dialect)
        data.append(_convert(proc, values) if proc is not None else values)
    quoted = ", ".join(dialect.identifier_preparer.quote(table.c[k].name) for k in names)
    tname = dialect.identifier_preparer.format_table(table)
    tuples = list(zip(*data, strict=True))
    if dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {tname} ({quoted}) FROM STDIN") as copy:
            for t in tuples:
                copy.write_row(t)
        return
    marks = ", ".join("?" for _ in names)
    conn.exec_driver_sql(f"INSERT INTO {tname} ({quoted}) VALUES ({marks})", tuples)


def _allocate_ids(session: Any, table: Table, n: int) -> list[int]:
    """``n`` fresh primary keys of ``table`` for this transaction.

    PostgreSQL: from the table's sequence (``nextval`` over ``generate_series``),
    safe beside other writers. SQLite: after the current largest id — the import
    already wrote its batch row, so this transaction holds SQLite's write lock and
    nobody else can insert meanwhile.
    """
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
                                    "FROM generate_series(1, :n)"), {"n": n}).scalars()
        return sorted(int(i) for i in rows)
    start = int(session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
    return list(range(start, start + n))


def insert_new_elders(session: Any, m: _Merger, recs: list[dict[str, Any]]) -> list[int]:
    """Insert the new elders of ``recs`` (their first contacts, household members and history) in bulk.

    Returns the new elder ids in the order of ``recs``; updates the merger's outcome
    (``imported``, ``seen``, ``new_ids``, defaulted stewards) and the transaction's
    pending change-feed row.
    """
    from gridmap.register.merge import MEMBER_ATTRS

    if not recs:
        return []
    now = utcnow()
    # the points of all located records in one vectorised call
    located = [i for i, rec in enumerate(recs) if rec.get("lon") is not None]
    geoms: list[Any] = [None] * len(recs)
    if located:
        pts = shapely.points([recs[i]["lon"] for i in located], [recs[i]["lat"] for i in located])
        for i, g in zip(located, pts, strict=True):
            geoms[i] = g
    built = [_elder_row(m, rec, now, g) for rec, g in zip(recs, geoms, strict=True)]
    et = Elder.__table__
    ids = _allocate_ids(session, et, len(built))
    for (r, _), i in zip(built, ids, strict=True):
        r["id"] = i
    write_rows(session, et, [r for r, _ in built])  # COPY / executemany: ids known
    user, source, reason = (session.info.get("user", "system"), session.info.get("source"),
                            session.info.get("reason"))

    def hist(entity: str, entity_id: int, elder_id: int) -> dict[str, Any]:
        return {"entity": entity, "entity_id": entity_id, "elder_id": elder_id, "field": "*created*",
                "old_value": None, "new_value": None, "changed_by": user, "changed_at": now,
                "source": source, "reason": reason}

    history = [hist("elder", i, i) for i in ids]
    fcs = [(eid, fc) for eid, (_, fc) in zip(ids, built, strict=True) if fc is not None]
    if fcs:
        ft = FirstContact.__table__
        fc_ids = _allocate_ids(session, ft, len(fcs))
        write_rows(session, ft, [{"id": fid, "elder_id": eid, **fc}
                                 for fid, (eid, fc) in zip(fc_ids, fcs, strict=True)])
        history += [hist("first_contact", fid, eid) for fid, (eid, _) in zip(fc_ids, fcs, strict=True)]
    members = [(eid, {a: x.get(a) for a in MEMBER_ATTRS}) for eid, rec in zip(ids, recs, strict=True)
               for x in (rec.get("household") or []) if x.get("name")]
    if members:
        ht = HouseholdMember.__table__
        m_ids = _allocate_ids(session, ht, len(members))
        write_rows(session, ht, [{"id": mid, "elder_id": eid, **vals}
                                 for mid, (eid, vals) in zip(m_ids, members, strict=True)])
        history += [hist("household_member", mid, eid) for mid, (eid, _) in zip(m_ids, members, strict=True)]
    write_rows(session, RegisterChange.__table__, history)
    # the change feed: the elders and their streets, as the ORM listener would note them
    p = changes.pending(session)
    p.elders.update(ids)
    p.street_ids.update(r["street_id"] for r, _ in built if r["street_id"] is not None)
    if ChangeKind.ELDER not in p.inferred:
        p.inferred.append(ChangeKind.ELDER)
    for name, n in (("elder", len(ids)), ("household_member", len(members)), ("first_contact", len(fcs))):
        if n:
            p.counts[name] = p.counts.get(name, 0) + n
    for eid, rec in zip(ids, recs, strict=True):
        m.out.seen[eid] = rec
        m.out.new_ids.append(eid)
        if rec.get("id_number"):
            m.new_id_numbers.add(rec["id_number"])
    m.out.imported += len(ids)
    return ids
