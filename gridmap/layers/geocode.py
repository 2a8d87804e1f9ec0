"""Offline geocoding of Haidian address strings through a gazetteer of known names.

The gazetteer is built from the layers the package already has (streets,
communities, service points, road names and named OSM features); no online
service is called. An address is normalised (full-width to half-width,
``北京市``/``海淀区`` prefixes stripped, Chinese numerals before ``号``/``单元``
turned into digits, ``栋``/``幢``/``座`` read as ``号楼``), scanned for the longest
known names (leftmost-longest dictionary scan), and only when no community or
site is found there, matched fuzzily (``rapidfuzz``) against community names.

Quality levels (best first), shown by the map and the register:

``exact`` (精确坐标)
    A coordinate was given (as arguments or written in the address).
``building`` (楼栋)
    A *known located* building or named site matched: a service point, a named
    OSM feature, or a building point supplied in ``extra_places`` (with a
    ``community_code`` and ``building_no``). A building number alone is **not**
    enough: the data hold no building footprints for communities, so an address
    such as ``翠微路社区5号楼`` resolves at ``community`` quality (its building
    number is kept in the result) rather than at a made-up point.
``community`` (社区)
    The community's (居委会/村委会) centre point, or the representative point of
    its polygon when it has no point.
``street`` (街道)
    The street/town polygon's representative point, or a named road's middle
    point when the address names a road but no community (still street quality:
    a road is not a location of a house).
``failed`` (失败)
    Nothing usable; the result carries a reason in Chinese and English.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.domain.enums import GeocodeQuality

__all__ = [
    "GeocodeQuality",
    "GeocodeResult",
    "GazetteerEntry",
    "Gazetteer",
    "QUALITY_LABELS_ZH",
    "build_gazetteer",
    "load_osm_places",
    "normalize_address",
    "parse_house_parts",
    "quality_label",
]


#: Chinese labels of the quality levels.
QUALITY_LABELS_ZH: dict[GeocodeQuality, str] = {q: q.label for q in GeocodeQuality}


def quality_label(quality: GeocodeQuality | str, lang: str = "zh") -> str:
    """Return the display label of a quality level.

    Parameters
    ----------
    quality
        A :class:`GeocodeQuality` or its value (``"community"``).
    lang
        ``"zh"`` for the Chinese label, ``"en"`` for the English value.

    Returns
    -------
    str
    """
    q = GeocodeQuality(quality)
    return QUALITY_LABELS_ZH[q] if lang == "zh" else q.value


@dataclass(frozen=True)
class GeocodeResult:
    """The outcome of geocoding one address.

    ``lon``/``lat`` are WGS84 (EPSG:4326) and NaN when ``quality`` is failed.
    ``matched`` is the gazetteer name that decided the point; ``score`` is 1.0
    for a dictionary match, the fuzzy similarity (0–1) for a fuzzy one and
    lower for weak or ambiguous matches.
    """

    address: str
    lon: float
    lat: float
    quality: GeocodeQuality
    street: str | None = None
    community_code: str | None = None
    community: str | None = None
    building_no: str | None = None
    matched: str | None = None
    score: float = 0.0
    message_zh: str | None = None
    message_en: str | None = None
    approximate: bool = False

    @property
    def ok(self) -> bool:
        """True when a point was found (quality is not failed)."""
        return self.quality != GeocodeQuality.FAILED


@dataclass(frozen=True)
class GazetteerEntry:
    """One named place of the gazetteer.

    ``kind`` is one of ``street``, ``community``, ``service_point``,
    ``place`` (a named OSM feature), ``building`` or ``road``; ``quality`` is
    the level a match on it yields.
    """

    name: str
    aliases: tuple[str, ...]
    kind: str
    street: str | None
    community_code: str | None
    lon: float
    lat: float
    quality: GeocodeQuality
    building_no: str | None = None
    approximate: bool = False


# --------------------------------------------------------------------------- normalisation

_PREFIX_RE = re.compile(
    r"^(?:中国)?(?:北京市|北京(?=海淀))?(?:市辖区)?"
    r"(?:海淀区|海淀(?!街道|镇|乡|地区|路|南路|北路|西路|东路|大街|桥|公园|医院|黄庄|村|社区))?"
)
_DROP_RE = re.compile(r"[\s,，。、;；:：·'\"“”‘’()（）\[\]【】<>《》{}]+")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUM_RE = re.compile(r"([零〇一二两三四五六七八九十百]+)(?=号|单元|层|楼|室|栋|幢|座|门)")
_BLDG_SYN_RE = re.compile(r"(\d+)(?:栋|幢|座|号楼|楼)")

# house parts, read from the text after the matched place
_YARD_RE = re.compile(r"([甲乙丙丁]?\d+(?:-\d+)?)号院")
_BLDG_RE = re.compile(r"([甲乙丙丁]?\d+(?:-\d+)?)号楼")
_UNIT_RE = re.compile(r"(\d+)单元")
_ROOM_RE = re.compile(r"(\d+)(?:室|号)?$")
_NO_RE = re.compile(r"([甲乙丙丁]?\d+(?:-\d+)?)号(?![楼院])")

_HOUSE_TAIL_RE = re.compile(r"[甲乙丙丁]?\d+(?:-\d+)?(?:号楼|号院|单元|栋|室|层)|[甲乙丙丁]?\d+(?:-\d+)?号?$")
_COORD_RE = re.compile(r"(-?\d{1,3}\.\d+)\s*[,，\s/]\s*(-?\d{1,3}\.\d+)")

_COMMUNITY_SUFFIXES = ("社区居委会", "居民委员会", "村民委员会", "社区居民委员会", "居委会", "村委会", "社区", "村")
_STREET_SUFFIXES = ("街道办事处", "地区办事处", "街道", "地区", "镇政府", "镇", "乡")


def _cn_to_int(text: str) -> int | None:
    """Convert a simple Chinese numeral (up to 999) to an int."""
    if all(c in _CN_DIGITS for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, cur = 0, 0
    for c in text:
        if c in _CN_DIGITS:
            cur = _CN_DIGITS[c]
        elif c == "十":
            total += (cur or 1) * 10
            cur = 0
        elif c == "百":
            total += (cur or 1) * 100
            cur = 0
        else:
            return None
    return total + cur


def normalize_address(text: str) -> str:
    """Normalise an address string for matching.

    NFKC folding (full-width digits and letters to half-width), lower case,
    spaces and punctuation removed, ``中国``/``北京市``/``海淀区`` prefixes
    stripped, Chinese numerals before ``号``/``单元``/``层``/``室`` made digits and
    ``5栋``/``5幢``/``5座`` written ``5号楼``.

    Parameters
    ----------
    text
        The raw address.

    Returns
    -------
    str
        The normalised string (may be empty).
    """
    s = str(text)
    for _ in range(4):  # NFKC, lower() and dropping spaces can each undo the others once
        t = unicodedata.normalize("NFKC", _DROP_RE.sub("", unicodedata.normalize("NFKC", s).lower()))
        if t == s:
            break
        s = t
    s = s.replace("—", "-").replace("－", "-").replace("~", "-")
    prev = None
    while prev != s:
        prev = s
        s = _PREFIX_RE.sub("", s, count=1)
    s = _CN_NUM_RE.sub(lambda m: str(v) if (v := _cn_to_int(m.group(1))) is not None else m.group(1), s)
    s = _BLDG_SYN_RE.sub(r"\1号楼", s)
    return s


def parse_house_parts(text: str) -> dict[str, str | None]:
    """Read yard (号院), building (号楼), unit (单元) and room from an address tail.

    Parameters
    ----------
    text
        Normalised text after the place name, e.g. ``"3号院2号楼1单元501"``.

    Returns
    -------
    dict
        Keys ``yard``, ``building``, ``unit``, ``room`` and ``number`` (a plain
        ``xx号`` house number), each a string or None.
    """
    out: dict[str, str | None] = {"yard": None, "building": None, "unit": None, "room": None, "number": None}
    if m := _YARD_RE.search(text):
        out["yard"] = m.group(1)
    if m := _BLDG_RE.search(text):
        out["building"] = m.group(1)
    if m := _UNIT_RE.search(text):
        out["unit"] = m.group(1)
        tail = text[m.end():]
        if r := _ROOM_RE.search(tail):
            out["room"] = r.group(1)
    elif out["building"] and (r := _ROOM_RE.search(text[_BLDG_RE.search(text).end():])):  # type: ignore[union-attr]
        out["room"] = r.group(1)
    if out["building"] is None and out["yard"] is None and (m := _NO_RE.search(text)):
        out["number"] = m.group(1)
    return out


def _stem(name: str, suffixes: Sequence[str]) -> str:
    for suf in sorted(suffixes, key=len, reverse=True):
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return name


# --------------------------------------------------------------------------- gazetteer

_TIER = {"building": 3, "service_point": 3, "place": 3, "community": 2, "road": 1, "street": 0}


@dataclass
class Gazetteer:
    """A dictionary of Haidian place names for offline geocoding.

    Build it with :func:`build_gazetteer`; call :meth:`geocode` for one address
    or :meth:`geocode_many` for a column of them.
    """

    entries: list[GazetteerEntry]
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    fuzzy_cutoff: float = 80.0
    _index: dict[str, list[tuple[int, bool]]] = field(default_factory=dict, repr=False)
    _lengths: list[int] = field(default_factory=list, repr=False)
    _by_street: dict[str, int] = field(default_factory=dict, repr=False)
    _buildings: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _fuzzy_choices: dict[str | None, tuple[list[str], list[int]]] = field(default_factory=dict, repr=False)
    _cache: dict[str, GeocodeResult] = field(default_factory=dict, repr=False)
    _street_tree: shapely.STRtree | None = field(default=None, repr=False)
    _comm_tree: shapely.STRtree | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, list[tuple[int, bool]]] = {}
        for i, e in enumerate(self.entries):
            strong = {normalize_address(a) for a in e.aliases[:1]} | {
                normalize_address(a) for a in e.aliases if not a.startswith("~")
            }
            weak = {normalize_address(a[1:]) for a in e.aliases if a.startswith("~")} - strong
            for a, is_strong in [(a, True) for a in strong] + [(a, False) for a in weak]:
                if len(a) < 2:
                    continue
                lst = index.setdefault(a, [])
                if all(j != i for j, _ in lst):
                    lst.append((i, is_strong))
            if e.kind == "street":
                self._by_street[e.name] = i
            if e.kind == "building" and e.community_code and e.building_no:
                self._buildings[(e.community_code, e.building_no)] = i
        self._index = index
        self._lengths = sorted({len(a) for a in index}, reverse=True)
        # fuzzy choices: community names without 居委会/村委会 and their stems, per street
        for i, e in enumerate(self.entries):
            if e.kind != "community":
                continue
            for a in {normalize_address(a.lstrip("~")) for a in e.aliases}:
                if len(a) < 2:
                    continue
                for key in (None, e.street):
                    names, ids = self._fuzzy_choices.setdefault(key, ([], []))
                    names.append(a)
                    ids.append(i)
        geoms = self.streets.geometry.values
        self._street_tree = shapely.STRtree(geoms)
        cg = self.communities.geometry.values
        polys = np.array([g if (g is not None and g.geom_type in ("Polygon", "MultiPolygon")) else None for g in cg])
        self._comm_tree = shapely.STRtree(polys) if any(p is not None for p in polys) else None

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        kinds = pd.Series([e.kind for e in self.entries]).value_counts().to_dict()
        return f"Gazetteer({len(self.entries)} entries: {kinds})"

    def __len__(self) -> int:
        return len(self.entries)

    def _scan(self, s: str) -> list[tuple[int, int, str, list[tuple[int, bool]]]]:
        """Leftmost-longest scan of ``s`` for known names."""
        out = []
        i, n = 0, len(s)
        index, lengths = self._index, self._lengths
        while i < n:
            for L in lengths:
                if L > n - i:
                    continue
                sub = s[i : i + L]
                hits = index.get(sub)
                if hits is not None:
                    out.append((i, i + L, sub, hits))
                    i += L
                    break
            else:
                i += 1
        return out

    def _locate_point(self, lon: float, lat: float) -> tuple[str | None, str | None, str | None]:
        pt = shapely.Point(lon, lat)
        street = None
        assert self._street_tree is not None
        for j in sorted(self._street_tree.query(pt, predicate="intersects")):
            street = str(self.streets.iloc[j]["name"])
            break
        code = name = None
        if self._comm_tree is not None:
            for j in sorted(self._comm_tree.query(pt, predicate="intersects")):
                row = self.communities.iloc[j]
                code, name = str(row["code"]), str(row["name"])
                break
        return street, code, name

    def _result(
        self,
        address: str,
        e: GazetteerEntry,
        quality: GeocodeQuality | None = None,
        *,
        score: float = 1.0,
        building_no: str | None = None,
        message: tuple[str, str] | None = None,
    ) -> GeocodeResult:
        comm_name = None
        if e.community_code is not None and e.kind in ("community", "building"):
            comm_name = self._community_names.get(e.community_code)
        return GeocodeResult(
            address=address,
            lon=e.lon,
            lat=e.lat,
            quality=quality or e.quality,
            street=e.street,
            community_code=e.community_code,
            community=comm_name,
            building_no=building_no,
            matched=e.name,
            score=round(score, 3),
            message_zh=message[0] if message else None,
            message_en=message[1] if message else None,
            approximate=e.approximate or (quality is not None and quality < e.quality),
        )

    @property
    def _community_names(self) -> dict[str, str]:
        names = getattr(self, "_cnames", None)
        if names is None:
            names = {e.community_code: e.name for e in self.entries if e.kind == "community" and e.community_code}
            object.__setattr__(self, "_cnames", names)
        return names

    @staticmethod
    def _failed(address: str, zh: str, en: str) -> GeocodeResult:
        return GeocodeResult(address, math.nan, math.nan, GeocodeQuality.FAILED, message_zh=zh, message_en=en)

    # ------------------------------------------------------------------ public
    def geocode(self, address: str | None, lon: float | None = None, lat: float | None = None) -> GeocodeResult:
        """Locate one address.

        Parameters
        ----------
        address
            The address text (any of the usual Chinese forms).
        lon, lat
            A WGS84 coordinate if the record already has one: the result is
            then ``exact`` and the address only names the area.

        Returns
        -------
        GeocodeResult
        """
        raw = "" if address is None or (isinstance(address, float) and math.isnan(address)) else str(address)
        if lon is not None and lat is not None and not (math.isnan(lon) or math.isnan(lat)):
            return self._exact(raw, float(lon), float(lat))
        s = normalize_address(raw)
        if not s:
            return self._failed(raw, "地址为空", "the address is empty")
        cached = self._cache.get(s)
        if cached is not None:
            return cached if cached.address == raw else _replace_address(cached, raw)
        m = _COORD_RE.search(unicodedata.normalize("NFKC", raw))
        if m:
            a, b = float(m.group(1)), float(m.group(2))
            if 115.0 < a < 118.0 and 39.0 < b < 41.5:
                return self._exact(raw, a, b)
            if 115.0 < b < 118.0 and 39.0 < a < 41.5:
                return self._exact(raw, b, a)
        res = self._geocode_norm(raw, s)
        if len(self._cache) < 500_000:
            self._cache[s] = res
        return res

    def _exact(self, raw: str, lon: float, lat: float) -> GeocodeResult:
        street, code, name = self._locate_point(lon, lat)
        msg = None
        if street is None:
            msg = ("坐标不在海淀区任何街道内", "the coordinate lies outside every Haidian street polygon")
        return GeocodeResult(
            raw, lon, lat, GeocodeQuality.EXACT, street, code, name, None, "coordinate", 1.0,
            msg[0] if msg else None, msg[1] if msg else None,
        )

    def _geocode_norm(self, raw: str, s: str) -> GeocodeResult:
        matches = self._scan(s)
        ents = self.entries
        # street hint: strong street matches first, else weak ones
        strong_streets = [ents[i].name for _, _, _, hits in matches for i, st in hits if ents[i].kind == "street" and st]
        weak_streets = [ents[i].name for _, _, _, hits in matches for i, st in hits if ents[i].kind == "street" and not st]
        hint = set(strong_streets) or set(weak_streets)
        last_end = max((e for _, e, _, _ in matches), default=0)

        fuzzy_tried = False
        for tier in (3, 2, 1):
            if tier == 1:
                # before settling for a road, try the community names fuzzily (typos)
                fuzzy_tried = True
                if (fz := self._fuzzy(raw, s, matches, hint)) is not None:
                    return fz
            # a bare core name that is also a street's (清河, 羊坊店) is read as the street
            cands = [
                (st, end - start, end, i, sub)
                for start, end, sub, hits in matches
                for i, st in hits
                if _TIER[ents[i].kind] == tier
                and (st or not any(ents[j].kind == "street" for j, _ in hits))
            ]
            if not cands:
                continue
            if hint:
                narrowed = [c for c in cands if ents[c[3]].street in hint or ents[c[3]].street is None]
                if not narrowed and tier == 3:
                    continue  # a site in another street than the one written: distrust it
                cands = narrowed or cands
            best_key = max((c[0], c[1]) for c in cands)
            top = [c for c in cands if (c[0], c[1]) == best_key]
            ids = sorted({c[3] for c in top})
            score = 1.0 if best_key[0] else 0.9
            if len(ids) == 1:
                e = ents[ids[0]]
                end = max(c[2] for c in top)
                parts = parse_house_parts(s[end:])
                bno = parts["building"]
                if e.kind == "community":
                    if math.isnan(e.lon):
                        st = self._street_entry(e.street)
                        if st is None:
                            continue
                        return self._result(raw, st, GeocodeQuality.STREET, score=score * 0.8,
                                            message=(f"社区“{e.name}”没有位置，按街道定位",
                                                     f"community {e.name} has no location; placed at its street"))
                    if bno is not None and (e.community_code, bno) in self._buildings:
                        b = ents[self._buildings[(e.community_code, bno)]]
                        return self._result(raw, b, GeocodeQuality.BUILDING, score=score, building_no=bno)
                    return self._result(raw, e, score=score, building_no=bno)
                if e.kind == "road":
                    if hint and e.street not in hint:
                        break  # the road's middle lies in another street: use the street written
                    return self._result(raw, e, score=score * 0.9, building_no=parts["number"] or bno,
                                        message=("只定位到道路", "located to a road only"))
                return self._result(raw, e, score=score, building_no=bno)
            # ambiguous name
            streets = {ents[i].street for i in ids}
            if len(streets) == 1 and (st := self._street_entry(next(iter(streets)))) is not None:
                names = "、".join(sorted({ents[i].name for i in ids}))
                return self._result(raw, st, GeocodeQuality.STREET, score=0.6,
                                    message=(f"“{top[0][4]}”对应多个地点（{names}），只定位到街道",
                                             f"'{top[0][4]}' names several places ({names}); located to the street only"))
            if not hint:
                names = "、".join(sorted({f"{ents[i].name}（{ents[i].street}）" for i in ids}))
                return self._failed(raw, f"“{top[0][4]}”对应不同街道的多个地点：{names}；请写明街道",
                                    f"'{top[0][4]}' names places in several streets: {names}; add the street")
            break

        # fuzzy fallback on community names
        if not fuzzy_tried and (fz := self._fuzzy(raw, s, matches, hint)) is not None:
            return fz
        if hint:
            name = sorted(hint)[0] if len(hint) == 1 else None
            if name is not None and (st := self._street_entry(name)) is not None:
                return self._result(raw, st, score=1.0 if strong_streets else 0.8,
                                    building_no=parse_house_parts(s[last_end:])["building"],
                                    message=("只定位到街道", "located to the street only"))
            return self._failed(raw, f"地址中出现多个街道：{'、'.join(sorted(hint))}",
                                f"the address names several streets: {', '.join(sorted(hint))}")
        return self._failed(raw, "地名库中找不到地址里的街道、社区或地点",
                            "no street, community or known place of Haidian was found in the address")

    def _street_entry(self, name: str | None) -> GazetteerEntry | None:
        if name is None or name not in self._by_street:
            return None
        return self.entries[self._by_street[name]]

    def _fuzzy(self, raw: str, s: str, matches: list, hint: set[str]) -> GeocodeResult | None:
        try:
            from rapidfuzz import fuzz, process
        except ImportError:  # pragma: no cover - optional
            return None
        rest = s
        for start, end, _, hits in sorted(matches, key=lambda m: m[0], reverse=True):
            if any(self.entries[i].kind == "street" for i, _ in hits):
                rest = rest[:start] + " " + rest[end:]
        if tail := _HOUSE_TAIL_RE.search(rest):
            rest = rest[: tail.start()]
        rest = rest.strip().split(" ")[-1]
        if len(rest) < 2:
            return None
        key = next(iter(hint)) if len(hint) == 1 else None
        names, ids = self._fuzzy_choices.get(key, ([], []))
        if not names:
            return None
        cutoff = self.fuzzy_cutoff - (5 if key is not None else 0)
        best = process.extractOne(rest, names, scorer=fuzz.ratio, score_cutoff=cutoff)
        if best is None:
            return None
        _, sc, pos = best
        e = self.entries[ids[pos]]
        if math.isnan(e.lon):
            return None
        bno = parse_house_parts(s)["building"]
        return self._result(raw, e, score=sc / 100.0, building_no=bno,
                            message=(f"模糊匹配：“{rest}”≈“{e.name}”", f"fuzzy match: '{rest}' ~ '{e.name}'"))

    def geocode_many(
        self,
        addresses: Iterable[str | None],
        lons: Iterable[float | None] | None = None,
        lats: Iterable[float | None] | None = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Geocode a column of addresses.

        Parameters
        ----------
        addresses
            The address strings (a Series keeps its index in the result).
        lons, lats
            Optional coordinates per row (NaN/None where absent); rows with
            both give ``exact`` results.
        progress
            Show a tqdm progress bar.

        Returns
        -------
        pandas.DataFrame
            Columns ``address, lon, lat, quality, quality_zh, street,
            community_code, community, building_no, matched, score,
            message_zh, message_en, approximate``, one row per input, same order.
        """
        index = addresses.index if isinstance(addresses, pd.Series) else None
        addr = list(addresses)
        lo = list(lons) if lons is not None else [None] * len(addr)
        la = list(lats) if lats is not None else [None] * len(addr)
        if not (len(lo) == len(la) == len(addr)):
            raise ValueError("addresses, lons and lats must have the same length")
        it: Iterable = zip(addr, lo, la)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(addr), desc="geocoding", unit="addr")
        rows = [self.geocode(a, _num(x), _num(y)) for a, x, y in it]
        df = pd.DataFrame(
            {
                "address": [r.address for r in rows],
                "lon": np.array([r.lon for r in rows], dtype=float),
                "lat": np.array([r.lat for r in rows], dtype=float),
                "quality": [r.quality.value for r in rows],
                "quality_zh": [QUALITY_LABELS_ZH[r.quality] for r in rows],
                "street": [r.street for r in rows],
                "community_code": [r.community_code for r in rows],
                "community": [r.community for r in rows],
                "building_no": [r.building_no for r in rows],
                "matched": [r.matched for r in rows],
                "score": np.array([r.score for r in rows], dtype=float),
                "message_zh": [r.message_zh for r in rows],
                "message_en": [r.message_en for r in rows],
                "approximate": np.array([r.approximate for r in rows], dtype=bool),
            },
            index=index,
        )
        return df


def _num(v: object) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _replace_address(res: GeocodeResult, raw: str) -> GeocodeResult:
    from dataclasses import replace

    return replace(res, address=raw)


# --------------------------------------------------------------------------- building the gazetteer


def _to_4326(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    from gridmap._errors import CoordinateError

    if gdf.crs is None:
        raise CoordinateError(
            f"the {what} layer has no CRS; set it (EPSG:4326 for WGS84)",
            f"{what}图层没有坐标参考系，请设置（WGS84 为 EPSG:4326）",
            field="crs",
            code="no_crs",
        )
    return gdf.to_crs(4326) if gdf.crs.to_epsg() != 4326 else gdf


def _point_of(geom: BaseGeometry | None) -> tuple[float, float]:
    if geom is None or geom.is_empty:
        return math.nan, math.nan
    p = geom if geom.geom_type == "Point" else geom.representative_point()
    return float(p.x), float(p.y)


def _street_aliases(name: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Strong spellings of a street/town; a bare core name is weak (``~`` prefix)."""
    stem = _stem(name, _STREET_SUFFIXES)
    if name.endswith("街道"):
        strong = [name, stem + "街道办事处", stem + "街道办"]
    else:
        strong = [name, stem + "地区", stem + "地区办事处", stem + "乡", stem + "镇政府", stem + "镇人民政府"]
    weak = []
    for a in extra:
        a = str(a)
        if _stem(a, _STREET_SUFFIXES + ("人民政府", "政府", "办事处")) == a:
            weak.append("~" + a)  # a bare core name such as 万柳 or 学院路
        else:
            strong.append(a)
    if len(stem) >= 2:
        weak.append("~" + stem)
    return tuple(dict.fromkeys(strong + weak))


def _community_aliases(name: str, short: str | None, kind: str | None = None) -> tuple[str, ...]:
    """Strong spellings of a community (with a suffix) and its weak bare core name."""
    stem = _stem(name, _COMMUNITY_SUFFIXES)
    is_village = kind == "村" if kind else name.endswith(("村委会", "村民委员会"))
    strong = [name]
    weak = []
    if short:
        if short.endswith(("社区", "村", "小区")):
            strong.append(short)
        else:
            weak.append("~" + short)
    if is_village:
        strong += [stem + "村", stem + "村委会", stem + "村民委员会"]
        if stem.endswith("村"):
            strong.append(stem)
    else:
        strong += [stem + "社区", stem + "社区居委会", stem + "居委会", stem + "小区"]
    if len(stem) >= 2:
        weak.append("~" + stem)
    return tuple(dict.fromkeys(strong + weak))


_GENERIC_BUILDING_RE = re.compile(r"^[东南西北中]?[甲乙丙丁]?\d+(?:号楼|楼|号|号院|栋|号公寓|单元)?$")


def build_gazetteer(
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    service_points: gpd.GeoDataFrame | None = None,
    road_names: gpd.GeoDataFrame | None = None,
    extra_places: gpd.GeoDataFrame | None = None,
    *,
    fuzzy_cutoff: float = 80.0,
) -> Gazetteer:
    """Build the gazetteer from the area layers and optional named points.

    Parameters
    ----------
    streets
        Street/town polygons with ``name`` (canonical, e.g. ``学院路街道``,
        ``西北旺镇``) and geometry.
    communities
        Communities with ``code``, ``name`` (full, e.g. ``翠微路社区居委会``),
        ``street`` (canonical street name), optional ``short_name`` and
        ``point`` columns, and geometry (polygon or point). A community's point
        is ``point`` if set, else the geometry if a point, else the polygon's
        representative point.
    service_points
        Optional named sites (health centres, care stations) with ``name``,
        optional ``street``/``community_code`` and point geometry.
    road_names
        Optional road lines with ``name``; lines of one name are merged and
        placed at the middle of the merged line (quality street).
    extra_places
        Optional named points with ``name`` and optional ``kind``
        (``building`` with ``community_code`` and ``building_no`` gives
        building-level points for community addresses; any other kind is a
        named site), ``street``, ``community_code``, ``building_no``; e.g.
        :func:`load_osm_places`. Places outside every street polygon are
        dropped.
    fuzzy_cutoff
        Minimum rapidfuzz ratio (0–100) for a fuzzy community match (5 less
        when the address names the street).

    Returns
    -------
    Gazetteer
    """
    streets = _to_4326(streets, "streets").reset_index(drop=True)
    communities = _to_4326(communities, "communities").reset_index(drop=True)
    entries: list[GazetteerEntry] = []
    tree = shapely.STRtree(streets.geometry.values)
    street_names = streets["name"].astype(str).tolist()

    def street_of(lon: float, lat: float) -> str | None:
        if math.isnan(lon):
            return None
        hits = tree.query(shapely.Point(lon, lat), predicate="intersects")
        return street_names[int(min(hits))] if len(hits) else None

    extra_col = streets["aliases"] if "aliases" in streets.columns else pd.Series([()] * len(streets))
    street_aliases = [
        _street_aliases(n, a if isinstance(a, (list, tuple)) else ()) for n, a in zip(street_names, extra_col)
    ]
    # a bare core name that is another street's own core (海淀 of 海淀镇 vs 海淀街道) stays with that street
    own_core = {_stem(n, _STREET_SUFFIXES): n for n in street_names if n.endswith("街道")}
    for name, aliases, geom in zip(street_names, street_aliases, streets.geometry.values):
        aliases = tuple(a for a in aliases if not (a.startswith("~") and own_core.get(a[1:], name) != name))
        lon, lat = _point_of(geom)
        entries.append(GazetteerEntry(name, aliases, "street", name, None, lon, lat, GeocodeQuality.STREET,
                                      approximate=True))

    has_point_col = "point" in communities.columns
    short_col = next((c for c in ("short_name", "short") if c in communities.columns), None)
    for idx, row in communities.iterrows():
        geom = row.geometry
        pt = row["point"] if has_point_col else None
        if isinstance(pt, BaseGeometry) and not pt.is_empty:
            lon, lat = float(pt.x), float(pt.y)
        else:
            lon, lat = _point_of(geom)
        name = str(row["name"])
        short = str(row[short_col]) if short_col and isinstance(row[short_col], str) else None
        street = row.get("street")
        street = str(street) if isinstance(street, str) else street_of(lon, lat)
        kind = row.get("kind") if isinstance(row.get("kind"), str) else None
        approx = not bool(row["has_point"]) if "has_point" in communities.columns else False
        entries.append(
            GazetteerEntry(name, _community_aliases(name, short, kind), "community", street, str(row["code"]), lon,
                           lat, GeocodeQuality.COMMUNITY, approximate=approx)
        )

    for layer, default_kind in ((service_points, "service_point"), (extra_places, "place")):
        if layer is None or len(layer) == 0:
            continue
        layer = _to_4326(layer, default_kind)
        for _, row in layer.iterrows():
            name = row.get("name")
            if not isinstance(name, str) or not name.strip():
                continue
            lon, lat = _point_of(row.geometry)
            st_in = street_of(lon, lat)
            if st_in is None:
                continue  # outside Haidian (or unplaced)
            kind = str(row.get("kind")) if default_kind == "place" and isinstance(row.get("kind"), str) else default_kind
            if kind not in ("building", "place", "service_point"):
                kind = "place" if default_kind == "place" else "service_point"
            cc = row.get("community_code")
            cc = str(cc) if isinstance(cc, (str, int, np.integer)) and not pd.isna(cc) else None
            bno = row.get("building_no")
            bno = normalize_address(str(bno)).removesuffix("号楼") if bno is not None and not pd.isna(bno) else None
            if kind == "building" and not (cc and bno) and _GENERIC_BUILDING_RE.match(normalize_address(name)):
                continue  # "7号楼" alone locates nothing
            base = re.sub(r"[(（][^)）]*[)）]", "", name)
            aliases = tuple(dict.fromkeys([name, base]))
            entries.append(GazetteerEntry(name, aliases, kind, st_in, cc, lon, lat, GeocodeQuality.BUILDING, bno))

    if road_names is not None and len(road_names) > 0:
        roads = _to_4326(road_names, "roads")
        roads = roads[roads["name"].notna() & roads.geometry.notna()]
        for name, grp in roads.groupby("name", sort=True):
            name = str(name)
            if len(normalize_address(name)) < 3:
                continue
            merged = shapely.line_merge(shapely.union_all(grp.geometry.values))
            if merged.geom_type == "MultiLineString":
                merged = max(merged.geoms, key=lambda g: g.length)
            p = merged.interpolate(0.5, normalized=True) if merged.geom_type == "LineString" else merged.representative_point()
            st = street_of(p.x, p.y)
            if st is None:
                continue
            entries.append(GazetteerEntry(name, (name,), "road", st, None, p.x, p.y, GeocodeQuality.STREET))

    return Gazetteer(entries=entries, streets=streets, communities=communities, fuzzy_cutoff=fuzzy_cutoff)


def load_osm_places(paths: Iterable[str | Path], *, max_extent_m: float = 1500.0) -> gpd.GeoDataFrame:
    """Read named OSM features (buildings, amenities, places) from ``.osm`` files.

    Roads, routes and features spread over more than ``max_extent_m`` are left
    out, as are names that occur at places more than 300 m apart (``南门``,
    ``食堂``) and bare numbers (``7号楼``), which locate nothing on their own.

    Parameters
    ----------
    paths
        OSM XML files.
    max_extent_m
        Largest extent (bounding-box diagonal, metres) of a feature kept.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``name, kind`` (``building`` or ``place``), point geometry in
        EPSG:4326.
    """
    import osmnx as ox

    frames = []
    for p in paths:
        g = ox.features_from_xml(str(p), tags={"name": True})
        if len(g) == 0:
            continue
        g = g.reset_index(drop=True)
        keep = g["name"].notna()
        for col in ("highway", "railway", "route", "public_transport", "waterway"):
            if col in g.columns:
                keep &= g[col].isna()
        g = g[keep]
        kind = np.where(g["building"].notna(), "building", "place") if "building" in g.columns else "place"
        frames.append(gpd.GeoDataFrame({"name": g["name"].astype(str).values, "kind": kind}, geometry=g.geometry.values, crs=4326))
    if not frames:
        return gpd.GeoDataFrame({"name": [], "kind": []}, geometry=[], crs=4326)
    g = pd.concat(frames, ignore_index=True)
    metric = g.to_crs(32650)
    b = metric.geometry.bounds
    diag = np.hypot(b["maxx"] - b["minx"], b["maxy"] - b["miny"])
    g = g[diag.values <= max_extent_m].copy()
    g["geometry"] = g.geometry.representative_point()
    norm = g["name"].map(normalize_address)
    g = g[(norm.str.len() >= 3) & ~norm.str.match(_GENERIC_BUILDING_RE.pattern)]
    # drop names used at places far apart
    m = g.to_crs(32650)
    spread = m.groupby("name").geometry.agg(lambda s: 0.0 if len(s) == 1 else float(np.hypot(*(np.ptp(np.c_[s.x, s.y], axis=0)))))
    ok = spread[spread <= 300.0].index
    g = g[g["name"].isin(ok)].drop_duplicates("name").reset_index(drop=True)
    return g[["name", "kind", "geometry"]]
