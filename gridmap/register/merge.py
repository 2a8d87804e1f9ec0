"""Merge validated ledger records into the register: one entry per person, every field with its sources.

Matching: by ID number; else by name + birth date + normalised address (a
mistyped or missing ID). Each stored field remembers the departments that gave
it (``Elder.field_sources = {field: [source codes]}``; ``_listed_by`` lists the
departments whose ledgers list the elder).

Rules for one incoming value ``v`` of field ``f`` from department ``S``:

* ``v`` empty: no information — nothing changes (a department that does not
  know a field does not erase it), unless ``S`` is the field's only source:
  then the value is cleared (e.g. 低保 ended).
* ``v`` equal to the stored value: ``S`` is added to the field's sources.
* Nobody gave ``f`` before: ``v`` is stored.
* ``S`` is the field's only source: an update (the history records it).
* Otherwise two departments disagree: a :class:`FieldConflict` is written. The
  stored value is kept — unless ``S`` is the authority for ``f``
  (:data:`AUTHORITY`: 残联 for disability certificate and grade, 卫健 for 失能
  and 计划生育特殊家庭, 民政 for 低保特困 and living situation), then ``v`` wins and
  the conflict is recorded as ``auto_resolved`` so a person can still review
  it. The same open conflict is never written twice.

This module works on ORM objects in a caller's session; it neither commits nor
opens transactions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gridmap.domain.enums import (
    Category,
    FirstContactRule,
    GeocodeQuality,
    Source,
    StewardKind,
)
from gridmap.register.validate import RowError, normalize_address_key
from gridmap.store.history import serialize
from gridmap.store.models import (
    Community,
    Elder,
    FieldConflict,
    FirstContact,
    Grid,
    HouseholdMember,
    RegisterRowHash,
    Steward,
    Street,
)

#: Department that decides a field when departments disagree.
AUTHORITY: dict[str, Source] = {
    "disability_cert_no": Source.DISABLED_FEDERATION,
    "disability_grade": Source.DISABLED_FEDERATION,
    "disability_type": Source.DISABLED_FEDERATION,
    "categories.severely_handicapped": Source.DISABLED_FEDERATION,
    "disability_level": Source.HEALTH,
    "categories.family_planning_special": Source.HEALTH,
    "welfare_status": Source.CIVIL_AFFAIRS,
    "categories.living_alone": Source.CIVIL_AFFAIRS,
    "categories.empty_nest": Source.CIVIL_AFFAIRS,
}

#: Record key → Elder column merged as a plain field.
SCALAR_FIELDS: dict[str, str] = {
    "name": "name", "sex": "sex", "birth_date": "birth_date", "phone": "phone",
    "lives_at_hukou": "lives_at_hukou", "hukou_address": "hukou_address", "hukou_street": "hukou_street",
    "disability_level": "disability_level", "disability_cert_no": "disability_cert_no",
    "disability_grade": "disability_grade", "disability_type": "disability_type",
    "welfare_status": "welfare_status", "willing_to_be_visited": "willing_to_be_visited",
    "signed_care": "signed_care_station", "other_notes": "other_notes",
    # 三、家庭生活条件, 四、已享受帮扶情况, 家庭医生, 其他 (issue 20)
    "dispersed_support": "dispersed_support", "water_safe": "water_safe", "electricity_safe": "electricity_safe",
    "housing_safe": "housing_safe", "monthly_income": "monthly_income", "benefits": "benefits",
    "assistance_units": "assistance_units", "assistance_person": "assistance_person",
    "assistance_phone": "assistance_phone", "assistance_measures": "assistance_measures",
    "wants_family_doctor": "wants_family_doctor", "family_doctor_signed": "family_doctor_signed",
    "other_reason": "other_reason",
}
#: Columns that cannot be NULL: the value an emptied field takes.
NOT_NULL_DEFAULTS: dict[str, Any] = {
    "willing_to_be_visited": True, "signed_care_station": False, "dispersed_support": False,
    "assistance_units": [],
}
#: Household member attributes compared and stored (二、家庭基本情况).
MEMBER_ATTRS = ("seq", "name", "sex", "id_number", "relation", "health", "welfare_status")
CATEGORY_FLAGS: dict[str, Category] = {
    "living_alone": Category.LIVING_ALONE,
    "empty_nest": Category.EMPTY_NEST,
    "severely_handicapped": Category.SEVERELY_HANDICAPPED,
    "family_planning_special": Category.FAMILY_PLANNING_SPECIAL,
    "other": Category.OTHER,  # derived: 其他特殊困难情形 given (see :func:`_flags`)
}
LISTED_BY = "_listed_by"


@dataclass
class AreaIndex:
    """Database ids of streets, communities, grids and stewards (by name / code)."""

    street_ids: dict[str, int] = field(default_factory=dict)  # canonical name → id
    community_ids: dict[str, int] = field(default_factory=dict)  # code → id
    grid_ids: dict[str, int] = field(default_factory=dict)  # code → id
    grid_community: dict[str, str] = field(default_factory=dict)  # grid code → community code
    stewards: dict[tuple[int | None, str], int] = field(default_factory=dict)  # (community id, name) → id
    steward_codes: dict[str, int] = field(default_factory=dict)
    #: community id → its 探访管家 (the active visit steward with the lowest code; 三(二)3: one per community)
    community_visit_steward: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> AreaIndex:
        """Read the ids from the database (empty maps when no layers are stored)."""
        idx = cls()
        idx.street_ids = {n: i for i, n in session.execute(select(Street.id, Street.name))}
        idx.community_ids = {c: i for i, c in session.execute(select(Community.id, Community.code)) if c}
        for gid, code, ccode in session.execute(
                select(Grid.id, Grid.code, Community.code).join(Community, Community.id == Grid.community_id)):
            idx.grid_ids[code] = gid
            idx.grid_community[code] = ccode
        for sid, code, name, cid, kind, active in session.execute(
                select(Steward.id, Steward.code, Steward.name, Steward.community_id, Steward.kind,
                       Steward.active).order_by(Steward.code)):
            idx.steward_codes[code] = sid
            idx.stewards.setdefault((cid, name), sid)
            idx.stewards.setdefault((None, name), sid)
            if cid is not None and active and kind is StewardKind.VISIT:
                idx.community_visit_steward.setdefault(cid, sid)
        return idx


@dataclass
class MergeOutcome:
    """What a merge did: counts, the elder ids seen, changed fields per elder, new warnings."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    attached: list[int] = field(default_factory=list)  # rows attached by name + birth + address
    unmatched: list[int] = field(default_factory=list)  # pending rows with no match (stay rejected)
    seen: dict[int, dict[str, Any]] = field(default_factory=dict)  # elder id → record
    changed_fields: dict[int, set[str]] = field(default_factory=dict)
    new_elders: list[Elder] = field(default_factory=list)
    new_records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    #: rows of new elders given their community's visit steward (no steward named, or the name not found)
    stewards_defaulted: list[int] = field(default_factory=list)
    #: ids of the new elders written by the bulk path (:mod:`gridmap.register.bulk`)
    new_ids: list[int] = field(default_factory=list)


def match_key(name: str | None, birth: date | None, address: str | None) -> tuple[str, str, str] | None:
    """The fallback identity: name, birth date and normalised address (None when incomplete)."""
    if not name or birth is None or not address:
        return None
    return (name, birth.isoformat(), normalize_address_key(address))


def contact_rule(name: str | None, relation: str | None, phone: str | None) -> tuple[FirstContactRule, bool]:
    """The first-contact rule that a listed contact satisfies, and whether it is valid.

    Uses :func:`gridmap.register.first_contact.choose_first_contact` with the
    one contact the ledger gives: a child → ``child``; another relative the
    elder named → ``designated_relative`` (or ``heir``); a committee worker →
    ``community_staff``; anybody else → ``community_designated``.
    """
    from gridmap.register.first_contact import (
        Contact,
        RelationKind,
        Relative,
        StaffContact,
        choose_first_contact,
        relation_kind,
    )

    kind = relation_kind(relation)
    if kind is RelationKind.COMMUNITY_STAFF:
        choice = choose_first_contact([], has_spouse=False,
                                      community_staff=StaffContact(name or "", phone, relation or ""))
    else:
        choice = choose_first_contact(
            [Relative(name or "", relation or "", phone, designated=True, is_heir=kind is RelationKind.HEIR)],
            has_spouse=True, street_designated=Contact(name or "", phone, relation or ""))
    return choice.rule, bool(choice.valid)


_CONTACT_RULES: dict[tuple[bool, str | None, bool], tuple[FirstContactRule, bool]] = {}


def contact_rule_cached(name: str | None, relation: str | None, phone: str | None) -> tuple[FirstContactRule, bool]:
    """:func:`contact_rule`, worked out once per (name given, relation, phone valid).

    The rule follows from the relation word and whether the phone is valid, never
    from the name's or the number's text; a ledger repeats the same few relations.
    """
    from gridmap.register.first_contact import is_valid_phone

    key = (bool(name), relation, is_valid_phone(phone))
    hit = _CONTACT_RULES.get(key)
    if hit is None:
        if len(_CONTACT_RULES) > 10_000:
            _CONTACT_RULES.clear()
        hit = _CONTACT_RULES[key] = contact_rule(name, relation, phone)
    return hit


def _text(value: Any) -> str | None:
    return serialize(value)


def _location(rec: dict[str, Any], areas: AreaIndex, geom: Any = False) -> dict[str, Any]:
    if geom is False:
        geom = shapely.Point(rec["lon"], rec["lat"]) if rec.get("lon") is not None else None
    comm = rec.get("community_code")
    grid = rec.get("grid_code")
    if grid and areas.grid_community.get(grid) != comm and comm:
        grid = None
    return {
        "address": rec.get("address"),
        "geom": geom,
        "geocode_quality": GeocodeQuality(rec.get("geocode_quality") or "failed"),
        "street_id": areas.street_ids.get(rec.get("street") or ""),
        "community_id": areas.community_ids.get(comm or ""),
        "grid_id": areas.grid_ids.get(grid or ""),
    }


def _steward_id(areas: AreaIndex, text: str | None, community_id: int | None) -> int | None:
    if not text:
        return None
    return (areas.steward_codes.get(text) or areas.stewards.get((community_id, text))
            or areas.stewards.get((None, text)))


def _add_source(sources: dict[str, Any], key: str, src: str) -> bool:
    cur = sources.get(key)
    if cur is None:
        sources[key] = [src]
        return True
    if src not in cur:
        sources[key] = [*cur, src]
        return True
    return False


@dataclass
class _Known:
    """An elder left out of the ORM load (its row counted unchanged by its hash): enough for ``by_key``."""

    id: int
    id_number: str | None


class _Merger:
    def __init__(self, session: Session, source: Source, batch_id: int | None, areas: AreaIndex,
                 skip: dict[int, tuple[str | None, tuple[str, str, str] | None]] | None = None) -> None:
        self.s, self.src, self.batch_id, self.areas = session, source.value, batch_id, areas
        opts = (selectinload(Elder.first_contact), selectinload(Elder.household))
        if not skip:
            elders: list[Any] = list(session.scalars(select(Elder).options(*opts).order_by(Elder.id)).all())
        else:
            # elders whose row is unchanged (by hash) are not loaded: only the others, in chunks
            rest = [i for i in session.scalars(select(Elder.id).order_by(Elder.id)) if i not in skip]
            loaded: list[Any] = []
            for j in range(0, len(rest), 500):
                loaded += session.scalars(select(Elder).options(*opts).where(Elder.id.in_(rest[j:j + 500]))).all()
            loaded += [_Known(i, idn) for i, (idn, _) in skip.items()]
            elders = sorted(loaded, key=lambda e: e.id)
        self.by_id = {e.id_number: e for e in elders if e.id_number and not isinstance(e, _Known)}
        self.by_key: dict[tuple[str, str, str], Elder] = {}
        for e in elders:
            k = skip[e.id][1] if isinstance(e, _Known) else match_key(e.name, e.birth_date, e.address)
            if k:
                self.by_key.setdefault(k, e)
        #: elders whose merge wrote or met a conflict, or named an unknown steward: no row hash kept
        self.no_hash: set[int] = set()
        self.open_conflicts = {
            (c.elder_id, c.field, c.incoming_value, c.incoming_source)
            for c in session.scalars(select(FieldConflict).where(FieldConflict.status.in_(("open", "auto_resolved"))))
        }
        self.out = MergeOutcome()
        self.new_id_numbers: set[str] = set()
        self.bulk_new: list[dict[str, Any]] = []
        self.bulk = False
        #: id(record) → elder id of the records counted unchanged by hash (:class:`_RowHashes`)
        self.shortcut: dict[int, int] = {}

    # -------------------------------------------------------------- helpers
    def _conflict(self, e: Elder, key: str, cur: Any, cur_src: list[str], new: Any, auto: bool) -> None:
        self.no_hash.add(e.id)
        sig = (e.id, key, _text(new), self.src)
        if sig in self.open_conflicts:
            return
        self.open_conflicts.add(sig)
        self.s.add(FieldConflict(
            elder_id=e.id, field=key, current_value=_text(cur), current_source=",".join(cur_src),
            incoming_value=_text(new), incoming_source=self.src, batch_id=self.batch_id,
            status="auto_resolved" if auto else "open",
            resolved_value=_text(new) if auto else None,
            resolved_by=f"authority:{self.src}" if auto else None,
        ))
        self.out.conflicts += 1

    def _decide(self, e: Elder, sources: dict[str, Any], key: str, cur: Any, new: Any) -> bool:
        """True when ``new`` should be stored; records sources and conflicts."""
        cur_src = list(sources.get(key) or [])
        if new is None:
            if cur is not None and cur_src == [self.src]:
                sources.pop(key, None)
                return True
            return False
        if _text(cur) == _text(new):
            _add_source(sources, key, self.src)
            return False
        if not cur_src or cur is None and self.src not in cur_src:
            sources[key] = [self.src]
            return True
        if cur_src == [self.src]:
            return True
        authority = AUTHORITY.get(key)
        wins = authority is not None and authority.value == self.src
        self._conflict(e, key, cur, cur_src, new, wins)
        if wins:
            sources[key] = [self.src]
        return wins

    # -------------------------------------------------------------- merge
    def new_elder(self, rec: dict[str, Any]) -> Elder:
        loc = _location(rec, self.areas)
        sources: dict[str, Any] = {LISTED_BY: [self.src]}
        e = Elder(name=rec["name"], id_number=rec.get("id_number"), **loc)
        for key, col in SCALAR_FIELDS.items():
            v = rec.get(key)
            if v is not None:
                setattr(e, col, v)
                sources[col] = [self.src]
        for col, default in NOT_NULL_DEFAULTS.items():
            if getattr(e, col) is None:
                setattr(e, col, default)
        cats = []
        for flag, cat in CATEGORY_FLAGS.items():
            v = rec.get(flag)
            if v is not None:
                sources[f"categories.{flag}"] = [self.src]
                if v:
                    cats.append(cat)
        if rec.get("disability_level") is not None:
            cats.append(Category.DISABLED)
        e.categories = sorted(cats, key=lambda c: list(Category).index(c))
        if loc["address"]:
            sources["address"] = [self.src]
        e.visit_steward_id = _steward_id(self.areas, rec.get("visit_steward"), loc["community_id"])
        e.service_steward_id = _steward_id(self.areas, rec.get("service_steward"), loc["community_id"])
        for k, col in (("visit_steward", "visit_steward_id"), ("service_steward", "service_steward_id")):
            if rec.get(k) and getattr(e, col) is not None:
                sources[col] = [self.src]
        if e.visit_steward_id is None:
            # 三(二)3: every community has a 探访管家; nobody is left without one
            e.visit_steward_id = self.areas.community_visit_steward.get(loc["community_id"] or -1)
            if e.visit_steward_id is not None:
                self.out.stewards_defaulted.append(rec["row"])
                if rec.get("visit_steward"):
                    self.out.warnings.append(RowError(
                        rec["row"], "探访管家", rec["visit_steward"], "steward_defaulted",
                        "未找到该探访管家，已由所在社区的探访管家负责",
                        "no such visit steward: the community's visit steward was assigned", "warning").masked())
        if rec.get("household"):
            e.household = [HouseholdMember(**{a: m.get(a) for a in MEMBER_ATTRS}) for m in rec["household"]
                           if m.get("name")]
            sources["household"] = [self.src]
        if rec.get("first_contact_name"):
            rule, valid = contact_rule(rec["first_contact_name"], rec.get("first_contact_relation"),
                                       rec.get("first_contact_phone"))
            e.first_contact = FirstContact(name=rec["first_contact_name"][:40],
                                           relation=(rec.get("first_contact_relation") or None),
                                           phone=rec.get("first_contact_phone"), rule=rule, valid=valid,
                                           chosen_on=date.today())
            sources["first_contact"] = [self.src]
        e.entered_on = rec.get("_entered_on") or date.today()
        e.field_sources = sources
        self.s.add(e)
        self.out.new_elders.append(e)
        self.out.new_records.append(rec)
        self.out.imported += 1
        if e.id_number:
            self.by_id[e.id_number] = e
        k = match_key(e.name, e.birth_date, e.address)
        if k:
            self.by_key.setdefault(k, e)
        return e

    def update(self, e: Elder, rec: dict[str, Any]) -> None:
        sources = {k: list(v) if isinstance(v, list) else v for k, v in (e.field_sources or {}).items()}
        before = json.dumps(sources, sort_keys=True)
        changed: set[str] = set()
        _add_source(sources, LISTED_BY, self.src)
        skip: set[str] = rec.get("_skip") or set()
        for key, col in SCALAR_FIELDS.items():
            new = rec.get(key)
            if key == "name" and not new or key in skip:
                continue
            cur = getattr(e, col)
            if new is None and key not in rec:
                continue  # the ledger has no such column
            if self._decide(e, sources, col, cur, new):
                if new is None and col in NOT_NULL_DEFAULTS:
                    new = NOT_NULL_DEFAULTS[col]
                setattr(e, col, new)
                changed.add(col)
        # categories, one flag at a time
        cats = list(e.categories or [])
        for flag, cat in CATEGORY_FLAGS.items():
            key = f"categories.{flag}"
            new = rec.get(flag)
            if flag in skip:
                continue
            cur = (cat in cats) if key in sources else None
            if self._decide(e, sources, key, cur, new):
                if new and cat not in cats:
                    cats.append(cat)
                elif not new and cat in cats:
                    cats.remove(cat)
                changed.add("categories")
        want_disabled = e.disability_level is not None
        if want_disabled != (Category.DISABLED in cats):
            cats = [c for c in cats if c is not Category.DISABLED] + ([Category.DISABLED] if want_disabled else [])
            changed.add("categories")
        if "categories" in changed:
            e.categories = sorted(cats, key=lambda c: list(Category).index(c))
        # location follows the address; a better fix of the same address improves it
        loc = _location(rec, self.areas)
        if rec.get("address") and "address" not in skip:
            if self._decide(e, sources, "address", e.address, rec["address"]):
                for k, v in loc.items():
                    setattr(e, k, v)
                changed.add("address")
            elif (normalize_address_key(e.address) == normalize_address_key(rec["address"])
                  and loc["geom"] is not None and loc["geocode_quality"].rank > e.geocode_quality.rank):
                for k in ("geom", "geocode_quality", "street_id", "community_id", "grid_id"):
                    setattr(e, k, loc[k])
                changed.add("location")
        # stewards
        for k, col in (("visit_steward", "visit_steward_id"), ("service_steward", "service_steward_id")):
            if k in skip:
                continue
            sid = _steward_id(self.areas, rec.get(k), e.community_id)
            if rec.get(k) and sid is None:
                self.out.warnings.append(RowError(
                    rec["row"], "探访管家" if k == "visit_steward" else "服务管家", rec[k], "steward_unknown",
                    "未找到该管家，未关联", "no such steward found; not linked", "warning").masked())
                continue
            if self._decide(e, sources, col, getattr(e, col), sid):
                setattr(e, col, sid)
                changed.add("steward")
        # household members (二): the list as a whole
        if rec.get("household") is not None and "household" not in skip:
            self._household(e, sources, rec["household"], changed)
        # first contact
        if rec.get("first_contact_name") and "first_contact" not in skip:
            fc = e.first_contact
            new = (rec["first_contact_name"][:40], rec.get("first_contact_relation") or None,
                   rec.get("first_contact_phone"))
            cur = (fc.name, fc.relation, fc.phone) if fc is not None else None
            if self._decide(e, sources, "first_contact", "|".join(map(str, cur)) if cur else None,
                            "|".join(map(str, new))):
                rule, valid = contact_rule(*new)
                if fc is None:
                    e.first_contact = FirstContact(name=new[0], relation=new[1], phone=new[2], rule=rule,
                                                   valid=valid, chosen_on=date.today())
                else:
                    fc.name, fc.relation, fc.phone, fc.rule, fc.valid = new[0], new[1], new[2], rule, valid
                changed.add("first_contact")
        if json.dumps(sources, sort_keys=True) != before:
            e.field_sources = sources
        if changed or json.dumps(sources, sort_keys=True) != before:
            self.out.updated += 1
        else:
            self.out.unchanged += 1
        if changed:
            self.out.changed_fields[e.id] = changed

    def _household(self, e: Elder, sources: dict[str, Any], members: list[dict[str, Any]],
                   changed: set[str]) -> None:
        def as_text(ms: list[Any]) -> str:
            rows = [[_text(m.get(a) if isinstance(m, dict) else getattr(m, a)) for a in MEMBER_ATTRS] for m in ms]
            return json.dumps(rows, ensure_ascii=False)

        new = [m for m in members if m.get("name")]
        cur = list(e.household or [])
        if not self._decide(e, sources, "household", as_text(cur) if cur else None, as_text(new) if new else None):
            return
        by_seq = {m.seq: m for m in cur}
        keep = []
        for m in new:
            hm = by_seq.pop(m["seq"], None) or HouseholdMember()
            for a in MEMBER_ATTRS:
                if getattr(hm, a, None) != m.get(a):
                    setattr(hm, a, m.get(a))
            keep.append(hm)
        e.household = keep
        changed.add("household")

    def unchanged_row(self, eid: int, rec: dict[str, Any]) -> None:
        """A row equal to the last one merged over an unchanged elder: what :meth:`update` would do.

        Nothing is written; a steward name that matches nobody is warned about as :meth:`update` does
        (whether a name matches does not depend on the community: every steward is known by name alone).
        """
        skip: set[str] = rec.get("_skip") or set()
        for k in ("visit_steward", "service_steward"):
            if k in skip or not rec.get(k) or _steward_id(self.areas, rec[k], None) is not None:
                continue
            self.out.warnings.append(RowError(
                rec["row"], "探访管家" if k == "visit_steward" else "服务管家", rec[k], "steward_unknown",
                "未找到该管家，未关联", "no such steward found; not linked", "warning").masked())
        self.out.unchanged += 1
        self.out.seen[eid] = rec

    def merge(self, records: list[dict[str, Any]], pending: list[dict[str, Any]]) -> MergeOutcome:
        for rec in records:
            if self.shortcut:
                eid = self.shortcut.get(id(rec))
                if eid is not None:
                    self.unchanged_row(eid, rec)
                    continue
            e = self.by_id.get(rec["id_number"])
            if e is None:
                k = match_key(rec["name"], rec.get("birth_date"), rec.get("address"))
                cand = self.by_key.get(k) if k else None
                if cand is not None and cand.id_number is None:
                    e = cand  # a person stored without an ID now arrives with one
                    e.id_number = rec["id_number"]
                    self.by_id[rec["id_number"]] = e
            if e is None:
                if self.bulk:
                    self.bulk_new.append(rec)  # written in one go by gridmap.register.bulk
                else:
                    self.new_elder(rec)
            else:
                self.update(e, rec)
                self.out.seen[e.id] = rec
        for rec in pending:
            k = match_key(rec["name"], rec.get("birth_date"), rec.get("address"))
            e = self.by_key.get(k) if k else None
            if e is None:
                self.out.unmatched.append(rec["row"])
                continue
            r = dict(rec)
            r["id_number"] = e.id_number
            self.no_hash.add(e.id)
            self.update(e, r)
            self.out.seen[e.id] = rec
            self.out.attached.append(rec["row"])
            # the typed ID masked; the existing elder's ID is never echoed (see validate.mask_cell)
            given = rec.get("id_given") or ""
            self.out.warnings.append(RowError(
                rec["row"], "居民身份证号码", given, "id_matched_by_name",
                "身份证号码有误或缺失，已按姓名、出生日期和地址归入已有记录",
                "ID number mistyped or missing: matched an existing elder by name, birth date and address",
                "warning").masked())
        return self.out


def merge_records(session: Session, records: list[dict[str, Any]], pending: list[dict[str, Any]],
                  source: Source, *, batch_id: int | None = None, areas: AreaIndex | None = None,
                  chunk: int = 5000, on_progress: Any = None, bulk: bool = True) -> MergeOutcome:
    """Merge validated records (and ID-pending rows) into the register in ``session``.

    Parameters
    ----------
    session
        An open session; the caller commits.
    records
        Good rows from :func:`gridmap.register.validate.validate_frame`.
    pending
        Rows whose only fault is the ID: attached to an existing elder with the
        same name, birth date and address, else listed in ``unmatched``.
    source
        The department sending the ledger.
    batch_id
        The import batch (written on conflicts).
    areas
        Database ids of areas and stewards (loaded when None).
    bulk
        Write new elders with multi-row INSERTs (:mod:`gridmap.register.bulk`);
        False builds one ORM object per elder (the row-by-row reference path).

    Returns
    -------
    MergeOutcome
    """
    from gridmap.register.bulk import insert_new_elders

    areas = areas or AreaIndex.load(session)
    # issue 20: rows equal to the last one merged from this department over an elder unchanged since
    # (register_row_hash) are counted unchanged without loading or diffing the elder (bulk path only)
    hashes = _RowHashes(session, source, areas, records, pending) if bulk else None
    skip = hashes.unchanged if hashes is not None else {}
    m = _Merger(session, source, batch_id, areas,
                skip={eid: hashes.known[eid] for eid in skip.values()} if hashes is not None else None)
    m.bulk = bulk
    m.shortcut = {id(records[i]): eid for i, eid in skip.items()}
    for i in range(0, max(len(records), 1), chunk):
        m.merge(records[i:i + chunk], [])
        session.flush()
        if m.bulk_new:
            insert_new_elders(session, m, m.bulk_new)
            m.bulk_new = []
        if on_progress is not None:
            on_progress("merge", min(i + chunk, len(records)), len(records))
    m.merge([], pending)
    session.flush()
    for e, rec in zip(m.out.new_elders, m.out.new_records, strict=True):
        m.out.seen[e.id] = rec
    if hashes is not None:
        hashes.store(m)
    return m.out


# ------------------------------------------------------------------ row hashes (issue 20)

#: Record keys that do not take part in the merge (the spreadsheet row, raw cells, a monthly entry date).
_HASH_SKIP = frozenset({"row", "_cells", "_entered_on"})


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode("utf-8"), digest_size=16).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return [type(value).__name__, str(value)]


def record_hash(rec: dict[str, Any]) -> str:
    """A stable hash of what a validated record brings to the merge (row number and raw cells left out).

    JSON (C encoder) of the sorted items; dates, sets and other non-JSON values by type and text.
    """
    text = json.dumps([(k, v) for k, v in sorted(rec.items()) if k not in _HASH_SKIP],
                      default=_json_default, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _areas_signature(areas: AreaIndex) -> str:
    return _digest([sorted(d.items(), key=repr) for d in (
        areas.street_ids, areas.community_ids, areas.grid_ids, areas.grid_community, areas.stewards,
        areas.steward_codes, areas.community_visit_steward)])


def state_hashes(session: Session, ids: set[int] | list[int], areas: AreaIndex) -> dict[int, str]:
    """Elder id → hash of its stored state: the elder row, household members, first contact, and the areas.

    Read as the database holds it (plain SQL, every column), so any change by any
    path — an edit, another department's ledger, a resolved conflict, a new steward
    — gives another hash.
    """
    conn = session.connection()
    sig = _areas_signature(areas)
    out: dict[int, str] = {}
    ordered = sorted(int(i) for i in ids)
    for j in range(0, len(ordered), 500):
        inlist = ",".join(str(i) for i in ordered[j:j + 500])  # integers only
        res = conn.exec_driver_sql(f"SELECT * FROM elder WHERE id IN ({inlist})")
        k_id = list(res.keys()).index("id")
        rows = {r[k_id]: tuple(r) for r in res}
        parts: dict[int, list[Any]] = {i: [] for i in rows}
        for table in ("household_member", "first_contact"):
            res = conn.exec_driver_sql(f"SELECT * FROM {table} WHERE elder_id IN ({inlist}) ORDER BY elder_id, id")
            k_e = list(res.keys()).index("elder_id")
            for r in res:
                parts.setdefault(r[k_e], []).append((table, tuple(r)))
        for i, row in rows.items():
            out[i] = _digest((sig, row, parts.get(i, [])))
    return out


class _RowHashes:
    """Which records of an import are unchanged by hash, and the hashes kept after the merge."""

    def __init__(self, session: Session, source: Source, areas: AreaIndex, records: list[dict[str, Any]],
                 pending: list[dict[str, Any]]) -> None:
        self.s, self.src, self.areas = session, source.value, areas
        self.records = records
        self.hashes = [record_hash(r) for r in records]
        self.stored = {eid: (rh, sh) for eid, rh, sh in session.execute(
            select(RegisterRowHash.elder_id, RegisterRowHash.row_hash, RegisterRowHash.state_hash)
            .where(RegisterRowHash.source == self.src))}
        #: record index → elder id of the rows counted unchanged
        self.unchanged: dict[int, int] = {}
        #: elder id → (ID number, match key) of those elders
        self.known: dict[int, tuple[str | None, tuple[str, str, str] | None]] = {}
        if not self.stored:
            return
        light = {idn: (eid, match_key(name, birth, addr)) for eid, idn, name, birth, addr in session.execute(
            select(Elder.id, Elder.id_number, Elder.name, Elder.birth_date, Elder.address)) if idn}
        pending_keys = {match_key(p.get("name"), p.get("birth_date"), p.get("address")) for p in pending}
        cands: dict[int, int] = {}
        for i, (rec, h) in enumerate(zip(records, self.hashes, strict=True)):
            hit = light.get(rec.get("id_number") or "")
            if hit is None or hit[1] in pending_keys and hit[1] is not None:
                continue
            st = self.stored.get(hit[0])
            if st is not None and st[0] == h:
                cands[i] = hit[0]
        if not cands:
            return
        now = state_hashes(session, set(cands.values()), areas)
        for i, eid in cands.items():
            if now.get(eid) == self.stored[eid][1]:
                self.unchanged[i] = eid
                self.known[eid] = (records[i].get("id_number"), light[records[i]["id_number"]][1])

    def store(self, m: _Merger) -> None:
        """Keep the row and state hashes of the elders this merge wrote or confirmed (not the skipped ones)."""
        from gridmap.register.bulk import write_rows

        skipped = set(self.unchanged.values())
        by_rec = {id(r): h for r, h in zip(self.records, self.hashes, strict=True)}
        keep: dict[int, str] = {}
        for eid, rec in m.out.seen.items():
            if eid in skipped or eid in m.no_hash:
                continue
            h = by_rec.get(id(rec))
            if h is None:
                continue  # an ID-pending row attached by name: always merged
            keep[eid] = h
        stale = sorted((set(m.out.seen) - skipped) & set(self.stored))
        t = RegisterRowHash.__table__
        for j in range(0, len(stale), 500):
            self.s.execute(t.delete().where(t.c.source == self.src, t.c.elder_id.in_(stale[j:j + 500])))
        if not keep:
            return
        states = state_hashes(self.s, set(keep), self.areas)
        write_rows(self.s, t, [{"elder_id": eid, "source": self.src, "row_hash": h, "state_hash": states[eid]}
                               for eid, h in keep.items() if eid in states])


# ------------------------------------------------------------------ conflicts


def list_conflicts(engine: Any, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    """Conflicts to review: ``open`` and ``auto_resolved`` (decided by the authority), or all."""
    with Session(engine) as s:
        q = select(FieldConflict, Elder.name).join(Elder, Elder.id == FieldConflict.elder_id).order_by(FieldConflict.id)
        if not include_resolved:
            q = q.where(FieldConflict.status.in_(("open", "auto_resolved")))
        return [{"id": c.id, "elder_id": c.elder_id, "elder_name": name, "field": c.field,
                 "current_value": c.current_value, "current_source": c.current_source,
                 "incoming_value": c.incoming_value, "incoming_source": c.incoming_source,
                 "status": c.status, "resolved_value": c.resolved_value} for c, name in s.execute(q)]


#: Conflict fields holding personal data → masking function (``first_contact`` is ``name|relation|phone``).
_PERSONAL_CONFLICT_FIELDS = {"name": "姓名", "phone": "联系电话", "address": "家庭住址", "hukou_address": "户籍地址",
                             "disability_cert_no": "残疾人证号"}


def mask_conflict(row: dict[str, Any]) -> dict[str, Any]:
    """A row of :func:`list_conflicts` as a listing shows it: the elder's name and personal values masked."""
    from gridmap.register.validate import mask_cell

    def m(value: Any) -> Any:
        if value is None:
            return None
        col = _PERSONAL_CONFLICT_FIELDS.get(row["field"])
        if col is not None:
            return mask_cell(col, value)
        if row["field"] == "first_contact":
            name, _, rest = str(value).partition("|")
            rel, _, phone = rest.partition("|")
            return "|".join((mask_cell("第一联系人", name), rel, mask_cell("第一联系人电话", phone)))
        return value

    out = dict(row)
    out["elder_name"] = mask_cell("姓名", row.get("elder_name"))
    for k in ("current_value", "incoming_value", "resolved_value"):
        out[k] = m(row.get(k))
    return out


def _parse_value(fieldname: str, value: str) -> Any:
    from gridmap.register.columns import parse_yes_no
    from gridmap.register.validate import (
        parse_disability_level,
        parse_grade,
        parse_welfare,
    )

    v = value.strip()
    if v in ("", "None", "null", "空"):
        return None
    if fieldname.startswith("categories.") or fieldname in (
            "lives_at_hukou", "willing_to_be_visited", "signed_care_station"):
        return parse_yes_no(v)
    if fieldname == "disability_level":
        return parse_disability_level(v)
    if fieldname == "welfare_status":
        return parse_welfare(v)
    if fieldname == "disability_grade":
        return parse_grade(v)
    if fieldname == "birth_date":
        return date.fromisoformat(v)
    if fieldname in ("visit_steward_id", "service_steward_id"):
        return int(v)
    return v


def resolve_conflict(engine: Any, conflict_id: int, value: str, *, user: str = "system") -> None:
    """Store ``value`` for the conflict's field (recorded in history) and mark the conflict resolved.

    ``value`` ``"current"`` or ``"incoming"`` keeps that side's value (the
    listing shows personal values masked).

    Raises
    ------
    GridmapError
        Unknown conflict, already resolved, or a value the field cannot take.
    """
    from gridmap._errors import GridmapError
    from gridmap.store.db import session_scope
    from gridmap.store.models import utcnow

    with session_scope(engine, user=user, source=Source.MANUAL.value,
                       reason=f"resolve conflict {conflict_id}") as s:
        c = s.get(FieldConflict, conflict_id)
        if c is None:
            raise GridmapError(f"no conflict {conflict_id}", f"没有编号为{conflict_id}的冲突")
        if c.status == "resolved":
            raise GridmapError(f"conflict {conflict_id} is already resolved", f"冲突{conflict_id}已解决")
        e = s.get(Elder, c.elder_id)
        # the listing masks personal values: keep one of the two by its side
        value = {"current": c.current_value, "incoming": c.incoming_value}.get(value.strip().lower(), value) or ""
        try:
            v = _parse_value(c.field, value)
        except (ValueError, TypeError):
            raise GridmapError(f"{value!r} is not a valid value for {c.field}",
                               f"“{value}”不是字段{c.field}的有效值") from None
        sources = dict(e.field_sources or {})
        text = _text(v)
        if text == c.incoming_value:
            sources[c.field] = [c.incoming_source]
        elif text == c.current_value:
            sources[c.field] = [x for x in (c.current_source or "").split(",") if x]
        else:
            sources[c.field] = [Source.MANUAL.value]
        if c.field.startswith("categories."):
            cat = CATEGORY_FLAGS[c.field.split(".", 1)[1]]
            cats = [x for x in (e.categories or []) if x is not cat] + ([cat] if v else [])
            e.categories = sorted(cats, key=lambda x: list(Category).index(x))
        elif c.field == "first_contact":
            parts = (value.split("|") + [None, None])[:3]
            name, rel, phone = [p if p not in (None, "", "None") else None for p in parts]
            rule, valid = contact_rule(name, rel, phone)
            if e.first_contact is None:
                e.first_contact = FirstContact(name=name or "", relation=rel, phone=phone, rule=rule, valid=valid)
            else:
                fc = e.first_contact
                fc.name, fc.relation, fc.phone, fc.rule, fc.valid = name or "", rel, phone, rule, valid
        elif hasattr(Elder, c.field):
            setattr(e, c.field, v)
        else:
            raise GridmapError(f"field {c.field} cannot be set", f"字段{c.field}无法设置")
        e.field_sources = sources
        c.status, c.resolved_value, c.resolved_by, c.resolved_at = "resolved", text, user, utcnow()
