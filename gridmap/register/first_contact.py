"""First contact (第一联系人) of an elder: the document's rules, checks, and register-level gaps.

The rules are those of 工作任务 一.3 of the programme document:

* an elder **with children** has a child as first contact (对有子女的特殊困难老年人，
  应将其子女列为探访关爱第一联系人) — rule ``CHILD``;
* an elder **without children** may name another relative or an heir
  (可由老人指定的其他亲属或继承人) — rule ``DESIGNATED_RELATIVE`` or ``HEIR``;
* an elder with **no spouse and no children** who names nobody has a staff member of
  the residents' / villagers' committee, set by the street of usual residence
  (由经常居住地所在的街镇指导村（居）委员会工作人员作为第一联系人) — rule ``COMMUNITY_STAFF``;
* otherwise (no children, a spouse or co-resident, nobody named) the street and the
  committee name one (无法指定的由街镇、村（居）委员会明确) — rule ``COMMUNITY_DESIGNATED``.

A contact without a valid phone number is not a valid first contact: nobody can be
called when the elder's life is in danger.

This module is pure domain code (dataclasses and DataFrames, no SQL).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from gridmap.domain.enums import FirstContactRule

# ------------------------------------------------------------------ relations


class RelationKind(StrEnum):
    """What a relation word (与老人关系) means for the first-contact rules."""

    SELF = "self"
    CHILD = "child"  # 子女, incl. adopted (养) and step (继) children
    SPOUSE = "spouse"
    PARENT = "parent"
    SIBLING = "sibling"
    GRANDCHILD = "grandchild"
    CHILD_IN_LAW = "child_in_law"  # 儿媳、女婿: not children in law
    OTHER_RELATIVE = "other_relative"
    HEIR = "heir"
    NON_RELATIVE = "non_relative"  # 邻居、朋友、保姆…
    COMMUNITY_STAFF = "community_staff"
    UNKNOWN = "unknown"


#: Ordered (pattern, kind): the first match wins, so longer/more specific words come first
#: (孙子 is a grandchild, 妻子 a spouse, 侄子 a nephew, 姐夫 a sibling's spouse).
_RELATION_PATTERNS: list[tuple[re.Pattern[str], RelationKind]] = [
    (re.compile(r"^(本人|自己|户主本人|self)$"), RelationKind.SELF),
    (re.compile(r"社区|居委|村委|街道|街镇|乡镇|网格|社工|工作人员|书记|主任|干部|民政|staff"),
     RelationKind.COMMUNITY_STAFF),
    (re.compile(r"继承人|heir"), RelationKind.HEIR),
    (re.compile(r"邻|朋友|友人|同事|保姆|护工|房东|租客|志愿|物业|干儿|干女|干亲|义子|义女|"
                r"neighbou?r|friend|carer"), RelationKind.NON_RELATIVE),
    (re.compile(r"孙|曾|grandson|granddaughter|grandchild"), RelationKind.GRANDCHILD),
    (re.compile(r"姐夫|妹夫|嫂|弟媳|弟妹|姑|姨|舅|叔|伯|婶|侄|甥|表|堂|爷|奶|外公|外婆|亲家|"
                r"nephew|niece|cousin|uncle|aunt"), RelationKind.OTHER_RELATIVE),
    (re.compile(r"媳|婿|in-?law"), RelationKind.CHILD_IN_LAW),
    (re.compile(r"妻|丈夫|老伴|配偶|爱人|夫妻|老公|老婆|^夫$|wife|husband|spouse"),
     RelationKind.SPOUSE),
    (re.compile(r"兄|弟|姐|妹|哥|sister|brother|sibling"), RelationKind.SIBLING),
    (re.compile(r"父|母|爸|妈|father|mother|parent"), RelationKind.PARENT),
    (re.compile(r"子|女|儿|闺|son|daughter|child"), RelationKind.CHILD),
    (re.compile(r"亲属|亲戚|家属|监护人|亲人|relative|guardian"), RelationKind.OTHER_RELATIVE),
]

#: Kinds that are relatives (亲属) of the elder for the designation rule.
RELATIVE_KINDS = frozenset({
    RelationKind.SPOUSE, RelationKind.PARENT, RelationKind.SIBLING, RelationKind.GRANDCHILD,
    RelationKind.CHILD_IN_LAW, RelationKind.OTHER_RELATIVE, RelationKind.CHILD,
})


def relation_kind(text: object) -> RelationKind:
    """Classify a relation word: ``"长子"`` → CHILD, ``"妻子"`` → SPOUSE, ``"孙女"`` → GRANDCHILD.

    Handles the common Chinese words (子/女/儿子/女儿/长女/次子/养子/养女/继子/继女/独生子女,
    配偶/老伴/妻子/丈夫, 儿媳/女婿, 孙子/外孙女, 侄子/外甥, 兄弟姐妹, 邻居, 社区工作人员,
    继承人 …) and a few English ones. Never raises: anything else is ``UNKNOWN``.
    """
    if text is None or (isinstance(text, float) and text != text):
        return RelationKind.UNKNOWN
    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text))).lower()
    if not t:
        return RelationKind.UNKNOWN
    for pattern, kind in _RELATION_PATTERNS:
        if pattern.search(t):
            return kind
    return RelationKind.UNKNOWN


# ---------------------------------------------------------------------- phones

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^(0\d{2,3})?[2-8]\d{6,7}$")


def normalize_phone(value: object) -> str | None:
    """Strip spaces, dashes, brackets and a ``+86``/``0086`` prefix; ``None`` for empty."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    t = unicodedata.normalize("NFKC", str(value)).strip()
    if isinstance(value, float) and value.is_integer():
        t = str(int(value))
    t = re.sub(r"[\s\-()（）]", "", t)
    t = re.sub(r"^(\+86|0086)", "", t)
    return t or None


def is_valid_phone(value: object) -> bool:
    """A mainland mobile (11 digits, 1[3-9]…) or a landline with an optional area code."""
    t = normalize_phone(value)
    if t is None or not t.isdigit():
        return False
    return bool(_MOBILE.match(t) or _LANDLINE.match(t))


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Relative:
    """A relative or other person who might be an elder's first contact.

    Parameters
    ----------
    name, relation, phone
        Who, their relation to the elder (与老人关系, free text) and phone.
    lives_with
        Lives with the elder (共同居住).
    lives_nearby
        Lives in the same street (tie-break after ``lives_with``).
    is_heir
        An heir (继承人) of the elder.
    designated
        Named by the elder as first contact (老人指定).
    contactable
        Alive and reachable; a deceased child does not count as a child.
    """

    name: str
    relation: str
    phone: str | None = None
    lives_with: bool = False
    lives_nearby: bool = False
    is_heir: bool = False
    designated: bool = False
    contactable: bool = True

    @property
    def kind(self) -> RelationKind:
        """The relation kind of :attr:`relation`."""
        return relation_kind(self.relation)


@dataclass(frozen=True)
class Contact:
    """A person set as first contact by the street / committee (not a relative of the record)."""

    name: str
    phone: str | None = None
    relation: str = "街镇、村（居）委会明确"


@dataclass(frozen=True)
class StaffContact(Contact):
    """A staff member of the residents' / villagers' committee set by the street of residence."""

    relation: str = "村（居）委会工作人员"
    organisation: str = ""


@dataclass(frozen=True)
class FirstContactChoice:
    """The chosen first contact, the rule that chose it, and whether it is usable."""

    name: str | None
    relation: str | None
    phone: str | None
    rule: FirstContactRule
    valid: bool
    reason_zh: str
    reason_en: str


@dataclass(frozen=True)
class Problem:
    """Something wrong with an elder's first contact."""

    code: str  # missing / no_phone / invalid_phone / rule_violation / rule_mismatch / not_contactable
    message_zh: str
    message_en: str


# ------------------------------------------------------------------- choosing


def _rank(r: Relative) -> tuple[int, int, int, int]:
    """Sort key: valid phone, lives with, lives nearby, designated (best first)."""
    return (
        0 if is_valid_phone(r.phone) else 1,
        0 if r.lives_with else 1,
        0 if r.lives_nearby else 1,
        0 if r.designated else 1,
    )


def _best(candidates: Sequence[Relative]) -> Relative:
    # sorted() is stable: among equals the order given (e.g. the ledger's) wins
    return sorted(candidates, key=_rank)[0]


def _phone_note(phone: str | None) -> tuple[bool, str, str]:
    if is_valid_phone(phone):
        return True, "", ""
    if not normalize_phone(phone):
        return False, "；但无联系电话，不是有效的第一联系人", "; but has no phone, so not a valid first contact"
    return False, f"；但联系电话“{phone}”无效", f"; but the phone {phone!r} is not valid"


def choose_first_contact(
    relatives: Iterable[Relative],
    *,
    has_spouse: bool | None = None,
    community_staff: StaffContact | None = None,
    street_designated: Contact | None = None,
) -> FirstContactChoice:
    """Choose an elder's first contact by the document's rules (工作任务 一.3).

    Parameters
    ----------
    relatives
        The elder's relatives and other people (children, spouse, heirs, neighbours…).
    has_spouse
        Whether the elder has a living spouse; ``None`` infers it from ``relatives``.
    community_staff
        The committee staff member set by the street of usual residence, if known.
    street_designated
        The contact named by the street / committee for elders with a spouse or
        co-resident but no children and nobody designated, if known.

    Returns
    -------
    FirstContactChoice
        ``valid`` is false when the rule leaves nobody with a valid phone.

    Notes
    -----
    Tie-breaks among several children (or several designated people): a valid
    phone first, then one living with the elder, then one living nearby, then
    one the elder named, then the order given.
    """
    people = [r for r in relatives if r.contactable]
    if has_spouse is None:
        has_spouse = any(r.kind is RelationKind.SPOUSE for r in people)

    children = [r for r in people if r.kind is RelationKind.CHILD]
    if children:
        c = _best(children)
        ok, zh, en = _phone_note(c.phone)
        return FirstContactChoice(
            c.name, c.relation, normalize_phone(c.phone), FirstContactRule.CHILD, ok,
            f"有子女，应将子女列为第一联系人（共{len(children)}名子女，选{c.relation}{c.name}）{zh}",
            f"has children: a child must be the first contact ({len(children)} children, "
            f"chose the {c.relation}){en}",
        )

    named = [r for r in people if r.designated and (r.is_heir or r.kind in RELATIVE_KINDS
                                                      or r.kind is RelationKind.HEIR)]
    if named:
        c = _best(named)
        heir = c.is_heir or c.kind is RelationKind.HEIR
        rule = FirstContactRule.HEIR if heir else FirstContactRule.DESIGNATED_RELATIVE
        ok, zh, en = _phone_note(c.phone)
        who_zh = "继承人" if heir else "其他亲属"
        who_en = "an heir" if heir else "another relative"
        return FirstContactChoice(
            c.name, c.relation, normalize_phone(c.phone), rule, ok,
            f"无子女，由老人指定的{who_zh}{c.name}作为第一联系人{zh}",
            f"no children: {who_en} named by the elder is the first contact{en}",
        )

    if not has_spouse:
        if community_staff is None:
            return FirstContactChoice(
                None, StaffContact.relation, None, FirstContactRule.COMMUNITY_STAFF, False,
                "无配偶、无子女，应由经常居住地街镇指导村（居）委会工作人员作为第一联系人，但尚未指定",
                "no spouse and no children: a committee staff member set by the street of "
                "usual residence must be the first contact, but none is set yet",
            )
        ok, zh, en = _phone_note(community_staff.phone)
        org = f"（{community_staff.organisation}）" if community_staff.organisation else ""
        return FirstContactChoice(
            community_staff.name, community_staff.relation, normalize_phone(community_staff.phone),
            FirstContactRule.COMMUNITY_STAFF, ok,
            f"无配偶、无子女，由经常居住地街镇指导村（居）委会工作人员{org}作为第一联系人{zh}",
            f"no spouse and no children: a committee staff member set by the street of usual "
            f"residence is the first contact{en}",
        )

    if street_designated is None:
        return FirstContactChoice(
            None, Contact.relation, None, FirstContactRule.COMMUNITY_DESIGNATED, False,
            "无子女且未指定其他亲属或继承人，需由街镇、村（居）委会明确第一联系人，但尚未明确",
            "no children and nobody named by the elder: the street or committee must name the "
            "first contact, but has not yet",
        )
    ok, zh, en = _phone_note(street_designated.phone)
    return FirstContactChoice(
        street_designated.name, street_designated.relation, normalize_phone(street_designated.phone),
        FirstContactRule.COMMUNITY_DESIGNATED, ok,
        f"无子女且未指定其他亲属或继承人，由街镇、村（居）委会明确第一联系人{zh}",
        f"no children and nobody named by the elder: named by the street or committee{en}",
    )


# ------------------------------------------------------------------- checking


def _same_person(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).strip() == str(b).strip()


def check_first_contact(
    existing: Contact | Relative | None,
    relatives: Iterable[Relative] = (),
    *,
    rule: FirstContactRule | str | None = None,
    has_children: bool | None = None,
) -> list[Problem]:
    """Problems of an elder's recorded first contact.

    Parameters
    ----------
    existing
        The recorded first contact (name, relation, phone), or ``None`` when missing.
    relatives
        What is known of the elder's relatives (e.g. the household table).
    rule
        The rule recorded with the contact, if any.
    has_children
        Whether the elder has a living child; ``None`` infers it from ``relatives``.

    Returns
    -------
    list of Problem
        Empty when the first contact is present, reachable and follows the rules.
        Codes: ``missing``, ``no_phone``, ``invalid_phone``, ``not_contactable``,
        ``rule_violation`` (a child exists but the contact is not a child),
        ``rule_mismatch`` (the recorded rule does not fit the contact's relation).
    """
    rels = list(relatives)
    if has_children is None:
        has_children = any(r.contactable and r.kind is RelationKind.CHILD for r in rels)
    if existing is None or not str(existing.name or "").strip():
        return [Problem("missing", "未登记第一联系人", "no first contact recorded")]

    problems: list[Problem] = []
    phone = existing.phone
    if not normalize_phone(phone):
        problems.append(Problem("no_phone", "第一联系人无联系电话", "the first contact has no phone"))
    elif not is_valid_phone(phone):
        problems.append(Problem("invalid_phone", f"第一联系人电话“{phone}”无效",
                                f"the first contact's phone {phone!r} is not valid"))
    for r in rels:
        if _same_person(r.name, existing.name) and not r.contactable:
            problems.append(Problem("not_contactable", "第一联系人已去世或无法联系",
                                    "the first contact is deceased or cannot be reached"))
            break

    kind = relation_kind(existing.relation)
    if has_children and kind is not RelationKind.CHILD:
        problems.append(Problem(
            "rule_violation",
            f"老人有子女，但第一联系人为“{existing.relation or '未注明关系'}”；应将子女列为第一联系人",
            f"the elder has children but the first contact is {existing.relation or 'unspecified'!r}; "
            "a child must be the first contact",
        ))
    if rule:
        r_ = FirstContactRule(str(rule)) if str(rule) in FirstContactRule._value2member_map_ else None
        fits = {
            FirstContactRule.CHILD: {RelationKind.CHILD},
            FirstContactRule.DESIGNATED_RELATIVE: RELATIVE_KINDS - {RelationKind.CHILD},
            FirstContactRule.HEIR: set(RelationKind) - {RelationKind.SELF, RelationKind.CHILD},
            FirstContactRule.COMMUNITY_STAFF: {RelationKind.COMMUNITY_STAFF, RelationKind.UNKNOWN},
            FirstContactRule.COMMUNITY_DESIGNATED: set(RelationKind) - {RelationKind.SELF},
        }
        if r_ is None or kind not in fits[r_]:
            label = r_.label if r_ is not None else str(rule)
            problems.append(Problem(
                "rule_mismatch",
                f"登记的确定规则“{label}”与关系“{existing.relation or ''}”不符",
                f"the recorded rule {str(rule)!r} does not fit the relation {existing.relation!r}",
            ))
    if kind is RelationKind.SELF:
        problems.append(Problem("rule_violation", "第一联系人不能是老人本人",
                                "the first contact cannot be the elder themself"))
    return problems


# -------------------------------------------------------------- register level

#: Columns of :func:`elders_without_valid_first_contact`'s result.
GAP_COLUMNS = [
    "elder_id", "name", "street", "community", "first_contact_name", "first_contact_relation",
    "first_contact_phone", "first_contact_rule", "problems", "reason_zh", "reason_en",
]


def _val(row: Any, key: str) -> Any:
    v = row.get(key) if hasattr(row, "get") else getattr(row, key, None)
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v


def _relatives_of(row: Any) -> list[Relative]:
    rels = _val(row, "relatives")
    if rels is not None and len(rels) > 0:
        return [r if isinstance(r, Relative) else Relative(**r) for r in rels]
    relations = _val(row, "household_relations")
    names = _val(row, "household_names") or []
    if relations is None or len(relations) == 0:
        return []
    names = list(names) + [""] * (len(relations) - len(names))
    return [Relative(name=str(n or ""), relation=str(r or ""), lives_with=True)
            for n, r in zip(names, relations)]


def problems_of_row(row: Any) -> list[Problem]:
    """Problems of one register row (a mapping with the columns of the frame below)."""
    name = _val(row, "first_contact_name")
    existing = None if not name else Contact(
        name=str(name), phone=_val(row, "first_contact_phone"),
        relation=str(_val(row, "first_contact_relation") or ""),
    )
    has_children = _val(row, "has_children")
    return check_first_contact(
        existing, _relatives_of(row), rule=_val(row, "first_contact_rule"),
        has_children=None if has_children is None else bool(has_children),
    )


def elders_without_valid_first_contact(elders: pd.DataFrame) -> pd.DataFrame:
    """Elders whose first contact is missing, unreachable or breaks the rules.

    Parameters
    ----------
    elders
        One row per elder with ``first_contact_name``, ``first_contact_relation``,
        ``first_contact_phone`` and optionally ``elder_id``, ``name``, ``street``,
        ``community``, ``first_contact_rule``, ``has_children``, ``relatives``
        (lists of :class:`Relative`) or ``household_relations`` / ``household_names``
        (lists of strings from the household table 二、家庭基本情况).

    Returns
    -------
    DataFrame
        One row per elder with at least one problem, columns :data:`GAP_COLUMNS`
        (``problems`` is the list of codes; ``reason_zh`` / ``reason_en`` join the messages).
    """
    out: list[dict[str, Any]] = []
    for rec in elders.to_dict("records"):
        probs = problems_of_row(rec)
        if not probs:
            continue
        out.append({
            "elder_id": _val(rec, "elder_id"),
            "name": _val(rec, "name"),
            "street": _val(rec, "street"),
            "community": _val(rec, "community"),
            "first_contact_name": _val(rec, "first_contact_name"),
            "first_contact_relation": _val(rec, "first_contact_relation"),
            "first_contact_phone": _val(rec, "first_contact_phone"),
            "first_contact_rule": _val(rec, "first_contact_rule"),
            "problems": [p.code for p in probs],
            "reason_zh": "；".join(p.message_zh for p in probs),
            "reason_en": "; ".join(p.message_en for p in probs),
        })
    return pd.DataFrame(out, columns=GAP_COLUMNS)


def rule_counts(elders: pd.DataFrame) -> pd.DataFrame:
    """How many first contacts each rule chose (``rule``, ``label``, ``count``), all rules listed."""
    col = elders["first_contact_rule"] if "first_contact_rule" in elders else pd.Series(dtype=object)
    vc = col.dropna().astype(str).value_counts()
    rows = [{"rule": r.value, "label": r.label, "count": int(vc.get(r.value, 0))}
            for r in FirstContactRule]
    rows.append({"rule": "none", "label": "未登记", "count": int(len(elders) - col.notna().sum())})
    return pd.DataFrame(rows)


__all__ = [
    "Contact", "FirstContactChoice", "GAP_COLUMNS", "Problem", "RelationKind", "Relative",
    "StaffContact", "check_first_contact", "choose_first_contact",
    "elders_without_valid_first_contact", "is_valid_phone", "normalize_phone",
    "problems_of_row", "relation_kind", "rule_counts",
]
