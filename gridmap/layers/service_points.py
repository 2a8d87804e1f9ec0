"""Load the community health points (cleaned, with a report) and generate care stations.

Health points
-------------
``points/community_health_centres_wgs84.geojson`` lists Haidian's community
health service centres (社区卫生服务中心), stations (社区卫生服务站) and one
township clinic (卫生院), geocoded by a third party. :func:`load_health_points`
keeps **every row** and flags problems instead of dropping them silently:

``duplicate``
    Same name and same coordinates as an earlier row (a repeated row):
    ``kept=False``.
``same_name``
    Same name as an earlier row at another place: ``kept=False`` for the
    later row, to be checked by hand.
``outside_haidian``
    The point is outside the district outline (a geocoding error):
    ``kept=False``; the reason says how far outside.
``shared_coordinates``
    Different facilities geocoded to exactly the same spot (the geocoder fell
    back to a common address): kept, but their position is doubtful.
``street_mismatch``
    The name starts with a street (``甘家口街道潘庄…``) other than the one
    the point falls in: kept, to be checked.

Several issues are joined with ``;``. The :class:`CleaningReport` lists the
flagged rows with their reasons, in English and Chinese.

Care stations (synthetic)
-------------------------
The data has no list of elderly-care stations. Beijing's standard is one
community elderly-care station (社区养老服务驿站) per community and one
street regional elderly-care service centre (街道区域养老服务中心) per street.
:func:`generate_care_stations` creates them, flagged ``synthetic=True``: a
station near its community's point (a seeded random offset of at most
:data:`STATION_OFFSET_M`, kept inside the community polygon), and a street
centre near the community point closest to the middle of the street.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.config import get_settings
from gridmap.layers.admin import STREET_ALIASES, load_district, load_streets, normalize_street_name
from gridmap.layers.crs import METRIC_CRS, WGS84, check_in_haidian, to_metric

__all__ = [
    "SERVICE_POINT_COLUMNS",
    "STATION_OFFSET_M",
    "CleaningReport",
    "combine_service_points",
    "generate_care_stations",
    "load_health_points",
]

#: Largest distance between a synthetic care station and its community point.
STATION_OFFSET_M: float = 150.0

#: Columns shared by the health points and the generated care stations.
SERVICE_POINT_COLUMNS: list[str] = [
    "point_id", "name", "kind", "street", "street_code", "community_code",
    "synthetic", "kept", "issue", "lon", "lat", "geometry",
]

_STREET_PREFIX = re.compile(
    "^(" + "|".join(sorted({a for v in STREET_ALIASES.values() for a in v if len(a) > 2} | set(STREET_ALIASES),
                           key=len, reverse=True)) + ")"
)


@dataclass
class CleaningReport:
    """What :func:`load_health_points` found.

    Attributes
    ----------
    n_rows
        Rows in the file.
    n_unique
        Distinct facilities (rows less exact duplicates).
    n_kept
        Rows kept for use (``kept`` True).
    counts
        Number of rows per issue code.
    by_kind
        Number of distinct facilities per kind.
    issues
        One row per flagged point: ``point_id``, ``name``, ``issue``,
        ``kept``, ``reason_en``, ``reason_zh``, ``lon``, ``lat``.
    """

    n_rows: int
    n_unique: int
    n_kept: int
    counts: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    issues: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self, lang: str = "en") -> str:
        """One-paragraph summary, ``lang`` = ``"en"`` or ``"zh"``."""
        if lang == "zh":
            parts = "，".join(f"{k} {v} 条" for k, v in self.counts.items()) or "无"
            return (f"社区卫生服务点共 {self.n_rows} 行，{self.n_unique} 个不重复机构，保留 {self.n_kept} 个；"
                    f"发现问题：{parts}。")
        parts = ", ".join(f"{v} {k}" for k, v in self.counts.items()) or "none"
        return (f"{self.n_rows} health-point rows, {self.n_unique} distinct facilities, {self.n_kept} kept; "
                f"issues: {parts}.")


def _kind_of(name: str) -> str:
    if "社区卫生服务中心" in name:
        return "health_centre"
    if "社区卫生服务站" in name:
        return "health_station"
    return "clinic"


def _street_in_name(name: str) -> str | None:
    m = _STREET_PREFIX.match(name)
    return normalize_street_name(m.group(1)) if m else None


def load_health_points(
    data_dir: Path | str | None = None,
    district: gpd.GeoDataFrame | None = None,
    streets: gpd.GeoDataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, CleaningReport]:
    """Load the community health centres and stations, flagging rather than dropping problems.

    Parameters
    ----------
    data_dir
        The data directory; default from settings.
    district
        The district outline (:func:`~gridmap.layers.admin.load_district`);
        loaded if not given.
    streets
        The streets (:func:`~gridmap.layers.admin.load_streets`) to find each
        point's street; loaded if not given.

    Returns
    -------
    (geopandas.GeoDataFrame, CleaningReport)
        The frame has one row per file row and :data:`SERVICE_POINT_COLUMNS`
        (``kind`` is ``health_centre``, ``health_station`` or ``clinic``;
        ``street`` is the street the point falls in, else the one the source
        gives; ``synthetic`` False) plus ``street_in_name`` and ``reason_en``
        / ``reason_zh`` (empty when there is no issue).
    """
    base = Path(data_dir) if data_dir is not None else get_settings().data_dir
    hd = base / "haidian" if (base / "haidian").is_dir() else base
    raw = gpd.read_file(hd / "points" / "community_health_centres_wgs84.geojson").to_crs(WGS84)
    if district is None:
        district = load_district(hd.parent)
    if streets is None:
        streets = load_streets(hd.parent)
    n = len(raw)
    lon = raw.geometry.x.to_numpy()
    lat = raw.geometry.y.to_numpy()
    names = raw["name"].astype(str).str.strip().to_numpy()
    issues: list[list[str]] = [[] for _ in range(n)]
    reasons_en: list[list[str]] = [[] for _ in range(n)]
    reasons_zh: list[list[str]] = [[] for _ in range(n)]
    kept = np.ones(n, dtype=bool)

    def flag(i: int, code: str, en: str, zh: str, drop: bool) -> None:
        issues[i].append(code)
        reasons_en[i].append(en)
        reasons_zh[i].append(zh)
        if drop:
            kept[i] = False

    ids = [f"H{i + 1:03d}" for i in range(n)]
    check = check_in_haidian(lon, lat, district, rows=list(range(n)), field="geometry", raise_errors=False)
    for err in check.errors:
        assert err.row is not None
        # drop the "row i, field geometry: " prefix; the point id says which row
        flag(err.row, "outside_haidian", err.message_en.split(": ", 1)[-1], err.message_zh.split("：", 1)[-1], True)

    first_by_name: dict[str, int] = {}
    first_by_xy: dict[tuple[float, float], int] = {}
    for i in range(n):
        key = (round(lon[i], 6), round(lat[i], 6))
        j = first_by_name.get(names[i])
        if j is not None:
            if first_by_xy.get(key) == j:
                flag(i, "duplicate", f"repeats {ids[j]} (same name and coordinates)",
                     f"与{ids[j]}重复（名称和坐标相同）", True)
            else:
                flag(i, "same_name", f"same name as {ids[j]} at another place",
                     f"与{ids[j]}同名但位置不同", True)
            continue
        first_by_name[names[i]] = i
        j = first_by_xy.get(key)
        if j is not None:
            for k in (j, i):
                other = i if k == j else j
                if "shared_coordinates" not in issues[k]:
                    flag(k, "shared_coordinates",
                         f"same coordinates as {ids[other]} ({names[other]}); position doubtful",
                         f"与{ids[other]}（{names[other]}）坐标相同，位置存疑", False)
        else:
            first_by_xy[key] = i

    metric_streets = streets.to_crs(METRIC_CRS)
    mx, my = to_metric(lon, lat)
    pts = shapely.points(mx, my)
    located: list[str | None] = [None] * n
    for name, geom in zip(metric_streets["name"], metric_streets.geometry, strict=True):
        inside = shapely.covers(geom, pts)
        for i in np.flatnonzero(inside):
            located[i] = located[i] or name
    source_street = [normalize_street_name(s) if isinstance(s, str) and s else None for s in raw.get("street", [None] * n)]
    in_name = [_street_in_name(nm) for nm in names]
    for i in range(n):
        if located[i] and in_name[i] and located[i] != in_name[i] and kept[i]:
            flag(i, "street_mismatch", f"name says {in_name[i]} but the point lies in {located[i]}",
                 f"名称中为{in_name[i]}，但点位在{located[i]}", False)
    code_by_street = dict(zip(streets["name"], streets["code"], strict=True))
    street = [located[i] or source_street[i] or in_name[i] for i in range(n)]
    out = gpd.GeoDataFrame(
        {
            "point_id": ids,
            "name": names,
            "kind": [_kind_of(nm) for nm in names],
            "street": street,
            "street_code": [code_by_street.get(s) if s else None for s in street],
            "community_code": None,
            "synthetic": False,
            "kept": kept,
            "issue": [";".join(x) for x in issues],
            "lon": lon,
            "lat": lat,
            "street_in_name": in_name,
            "reason_en": ["; ".join(x) for x in reasons_en],
            "reason_zh": ["；".join(x) for x in reasons_zh],
        },
        geometry=raw.geometry.values,
        crs=WGS84,
    )
    flagged = out[out["issue"] != ""]
    counts: dict[str, int] = {}
    for codes in flagged["issue"]:
        for c in codes.split(";"):
            counts[c] = counts.get(c, 0) + 1
    unique = out[~out["issue"].str.contains("duplicate")]
    report = CleaningReport(
        n_rows=n,
        n_unique=len(unique),
        n_kept=int(kept.sum()),
        counts=counts,
        by_kind=unique["kind"].value_counts().to_dict(),
        issues=flagged[["point_id", "name", "issue", "kept", "reason_en", "reason_zh", "lon", "lat"]].reset_index(drop=True),
    )
    return out, report


def _offset_inside(poly: shapely.Geometry, x: float, y: float, rng: np.random.Generator) -> tuple[float, float]:
    """A random point within STATION_OFFSET_M of (x, y) and inside ``poly`` (metric); (x, y) if none found."""
    for _ in range(20):
        r = STATION_OFFSET_M * np.sqrt(rng.random())
        a = rng.random() * 2 * np.pi
        cand = (x + r * np.cos(a), y + r * np.sin(a))
        if poly.contains(shapely.Point(cand)):
            return cand
    return x, y


def generate_care_stations(
    communities: gpd.GeoDataFrame, streets: gpd.GeoDataFrame, seed: int = 0
) -> gpd.GeoDataFrame:
    """Generate one care station per community and one care centre per street (synthetic).

    Parameters
    ----------
    communities
        From :func:`~gridmap.layers.admin.load_communities` (needs ``code``,
        ``short_name``, ``kind``, ``street``, ``street_code``, ``point``,
        ``geometry``).
    streets
        From :func:`~gridmap.layers.admin.load_streets`.
    seed
        Seed of the random offsets (same seed, same result).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`SERVICE_POINT_COLUMNS`: ``kind`` ``care_station`` (point_id
        ``CS-<community code>``, e.g. name ``翠微路社区养老服务驿站``) or
        ``street_care_centre`` (``SC-<street code>``, e.g.
        ``学院路街道区域养老服务中心``), ``synthetic`` True, ``kept`` True,
        ``issue`` empty. Each lies inside its community (or street) polygon.
    """
    rng = np.random.default_rng(seed)
    comm = communities.sort_values("code").reset_index(drop=True)
    cm = comm.to_crs(METRIC_CRS)
    pts = gpd.GeoSeries(comm["point"].to_numpy(), crs=WGS84).to_crs(METRIC_CRS)
    rows: list[dict[str, object]] = []
    for i in range(len(comm)):
        poly = cm.geometry.iloc[i]
        x, y = _offset_inside(poly, pts.iloc[i].x, pts.iloc[i].y, rng)
        short = comm["short_name"].iloc[i]
        suffix = "养老服务驿站" if comm["kind"].iloc[i] == "村" or short.endswith("社区") else "社区养老服务驿站"
        rows.append({
            "point_id": f"CS-{comm['code'].iloc[i]}", "name": short + suffix, "kind": "care_station",
            "street": comm["street"].iloc[i], "street_code": comm["street_code"].iloc[i],
            "community_code": comm["code"].iloc[i], "x": x, "y": y,
        })
    sm = streets.sort_values("code").to_crs(METRIC_CRS)
    for code, name, geom in zip(sm["code"], sm["name"], sm.geometry, strict=True):
        mine = np.flatnonzero(comm["street_code"].to_numpy() == code)
        centre = geom.centroid if geom.contains(geom.centroid) else geom.representative_point()
        if len(mine):
            d = [pts.iloc[k].distance(centre) for k in mine]
            k = mine[int(np.argmin(d))]
            x, y = _offset_inside(cm.geometry.iloc[k], pts.iloc[k].x, pts.iloc[k].y, rng)
            ccode = comm["code"].iloc[k]
        else:
            x, y, ccode = centre.x, centre.y, None
        rows.append({
            "point_id": f"SC-{code}", "name": f"{name}区域养老服务中心", "kind": "street_care_centre",
            "street": name, "street_code": code, "community_code": ccode, "x": x, "y": y,
        })
    df = pd.DataFrame(rows)
    geom = gpd.GeoSeries(shapely.points(df["x"], df["y"]), crs=METRIC_CRS).to_crs(WGS84)
    out = gpd.GeoDataFrame(df.drop(columns=["x", "y"]), geometry=geom.values, crs=WGS84)
    out["synthetic"] = True
    out["kept"] = True
    out["issue"] = ""
    out["lon"] = out.geometry.x
    out["lat"] = out.geometry.y
    return out[SERVICE_POINT_COLUMNS]


def combine_service_points(health: gpd.GeoDataFrame, care: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Stack the kept health points and the care stations into one layer with :data:`SERVICE_POINT_COLUMNS`."""
    kept = health[health["kept"]][SERVICE_POINT_COLUMNS]
    return gpd.GeoDataFrame(pd.concat([kept, care[SERVICE_POINT_COLUMNS]], ignore_index=True), crs=WGS84)
