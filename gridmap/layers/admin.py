"""Load Haidian's district outline, its 29 streets/towns and 654 communities/villages.

Sources (under ``<data_dir>/haidian``, see ``PROVENANCE.md``):

* ``boundaries/district_wgs84.geojson`` – the district outline.
* ``boundaries/streets_wgs84.geojson`` – 29 street/town polygons with the 2020
  (7th) census population.
* ``admin_units.csv`` – the 29 town-level units and 654 communities (社区居委会)
  and villages (村委会) with 12-digit statistical codes; a WGS84 centre point
  for 310 communities.

Street names
------------
The three files spell streets differently (``学院路街道办事处`` / ``学院路街道``;
``东升地区办事处`` / ``东升镇``; ``万柳地区办事处`` / ``万柳镇``). The canonical form
used everywhere in the package is the **official name with its 街道 or 镇
suffix**: the 22 sub-districts end in ``街道`` (``学院路街道``), the 7 towns
whose offices are called ``…地区办事处`` end in ``镇`` (``西北旺镇``). The town
administered by the 万柳地区办事处 is officially **海淀镇**; its canonical name
is ``海淀镇`` and ``万柳``, ``万柳镇``, ``万柳地区``, ``万柳地区办事处`` are
aliases (``海淀`` alone or ``海淀街道`` is the different 海淀街道).
:func:`normalize_street_name` maps any spelling to the canonical name.

Street polygons
---------------
Taken as published (three were repaired with ``make_valid`` upstream; stray
line parts are dropped). 马连洼街道 and 青龙桥街道 overlap by about 0.07 km²:
overlaps are given to the street with the lower statistical code and cut
from the other, whose row is then flagged ``approximate``. The streets do not
tile the district outline exactly (about 1.1 km² of gaps and 1.1 km² outside
it); they are not clipped.

Community points and polygons (all flagged ``approximate``)
-----------------------------------------------------------
There are no community boundaries in any open source, so they are derived:

1. **Known points** – the 310 centre points of ``admin_units.csv``. A point
   that falls outside its own street polygon but within
   :data:`SNAP_DISTANCE_M` of it is moved onto the nearest spot
   :data:`INSET_M` inside the street (``point_source = "moved"``); one
   farther away (a geocoding hit on a namesake place elsewhere, e.g. the
   village 八家 13 km away) is discarded and the community is placed as if it
   had no point (``point_source = "placed_far"``).
2. **Placed points** – communities without a usable point are placed one by
   one, in code order, on a regular candidate lattice (about 3,000 cells per
   street) inside their street: each takes the candidate that maximises
   ``min(distance to every point already there, 2 × distance to the street
   boundary)`` (greedy farthest-point sampling kept off the edge). This is
   deterministic, fills the parts of the street far from known points, and
   works for a street with no known point at all (the first point goes to
   the spot deepest inside the street) (``point_source = "placed"``).
3. **Polygons** – a Voronoi split of all points of a street (in UTM 50N)
   clipped to the street polygon. The cells of a street therefore cover it
   without gaps or overlaps, and each community's point lies in its own
   polygon.

Everything is computed on load (about a second); nothing is cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from shapely.geometry.base import BaseGeometry

from gridmap._errors import DataDirError, ValidationError
from gridmap.config import get_settings
from gridmap.layers.crs import METRIC_CRS, WGS84

__all__ = [
    "INSET_M",
    "SNAP_DISTANCE_M",
    "STREET_ALIASES",
    "AdminLayers",
    "load_admin_layers",
    "load_communities",
    "load_district",
    "load_streets",
    "normalize_street_name",
    "short_community_name",
]

#: Known community points at most this far outside their street are moved inside.
SNAP_DISTANCE_M: float = 250.0
#: How far inside the street a moved point is put.
INSET_M: float = 20.0
_LATTICE_CELLS = 3000
_EDGE_WEIGHT = 2.0

# Core name (without suffix) -> canonical name.
_CANONICAL: dict[str, str] = {
    core + "街道": core + "街道"
    for core in (
        "万寿路 永定路 羊坊店 甘家口 八里庄 紫竹院 北下关 北太平庄 学院路 中关村 海淀 青龙桥 "
        "清华园 燕园 香山 清河 花园路 西三旗 马连洼 田村路 上地 曙光"
    ).split()
}
_TOWNS = ("东升", "温泉", "四季青", "西北旺", "苏家坨", "上庄")
_CANONICAL.update({t + "镇": t + "镇" for t in _TOWNS})
_CANONICAL["海淀镇"] = "海淀镇"

#: Aliases per canonical street name (spellings met in the data and in use).
STREET_ALIASES: dict[str, tuple[str, ...]] = {
    name: (
        (name[:-2] + "街道办事处", name[:-2])
        if name.endswith("街道")
        else (name[:-1] + "地区办事处", name[:-1] + "地区", name[:-1] + "乡", name[:-1])
    )
    for name in _CANONICAL
}
STREET_ALIASES["海淀镇"] = ("万柳地区办事处", "万柳地区", "万柳镇", "万柳", "海淀乡", "海淀地区", "海淀镇人民政府")

_PREFIX = re.compile(r"^(北京市|北京)?(海淀区)?")
_SUFFIX = re.compile(r"(街道办事处|地区办事处|镇人民政府|乡人民政府|人民政府|办事处|街道|地区|镇|乡)$")


def normalize_street_name(name: str) -> str:
    """Map any spelling of a Haidian street/town to its canonical name.

    Parameters
    ----------
    name
        E.g. ``"学院路街道办事处"``, ``"学院路"``, ``"北京市海淀区学院路街道"``,
        ``"西北旺地区办事处"``, ``"西北旺地区"``, ``"西北旺"``, ``"万柳镇"``,
        ``"万柳地区办事处"``, ``"海淀镇"`` (full-width spaces and
        parentheses such as ``"海淀镇(万柳)"`` are tolerated).

    Returns
    -------
    str
        The canonical name: ``"学院路街道"``, ``"西北旺镇"``, ``"海淀镇"``…

    Raises
    ------
    ValidationError
        If the name is not one of the 29 (code ``unknown_street``).
    """
    raw = name
    text = re.sub(r"\s+", "", str(name)).replace("（", "(").replace("）", ")")
    paren = re.search(r"\((.*?)\)", text)
    text = re.sub(r"\(.*?\)", "", text)
    text = _PREFIX.sub("", text)
    m = _SUFFIX.search(text)
    suffix = m.group(1) if m else ""
    core = text[: m.start()] if m else text
    if core == "万柳" or (paren and paren.group(1).startswith("万柳") and core == "海淀"):
        return "海淀镇"
    if core == "海淀":
        return "海淀镇" if suffix and suffix not in ("街道", "街道办事处") else "海淀街道"
    if core in _TOWNS:
        return core + "镇"
    if core + "街道" in _CANONICAL:
        return core + "街道"
    raise ValidationError(
        f"{raw!r} is not one of Haidian's 29 streets/towns",
        f"“{raw}”不是海淀区29个街道（镇）之一",
        field="street",
        value=raw,
        code="unknown_street",
    )


def short_community_name(name: str) -> str:
    """Strip 社区居委会 / 居委会 / 村委会 / 村民委员会 / 居民委员会 from a community name.

    ``"翠微路社区居委会"`` → ``"翠微路"``; ``"树村村委会"`` → ``"树村"``.
    """
    return re.sub(r"(社区居民委员会|社区居委会|居民委员会|居委会|村民委员会|村委会)$", "", str(name).strip())


def _haidian_dir(data_dir: Path | str | None) -> Path:
    base = Path(data_dir) if data_dir is not None else get_settings().data_dir
    path = base / "haidian" if (base / "haidian").is_dir() else base
    if not (path / "admin_units.csv").is_file():
        raise DataDirError(
            f"Haidian geodata not found under {base} (expected haidian/admin_units.csv); set GRIDMAP_DATA_DIR",
            f"在 {base} 下找不到海淀区地理数据（应有 haidian/admin_units.csv）；请设置 GRIDMAP_DATA_DIR",
        )
    return path


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygon parts of a geometry (drops stray lines of make_valid)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts)


def load_district(data_dir: Path | str | None = None) -> gpd.GeoDataFrame:
    """Load the Haidian district outline.

    Parameters
    ----------
    data_dir
        The data directory (holding ``haidian/``); default from settings.

    Returns
    -------
    geopandas.GeoDataFrame
        One row: ``adcode`` (``"110108"``), ``name`` (``"海淀区"``),
        ``area_km2``, ``geometry`` (MultiPolygon, EPSG:4326).
    """
    path = _haidian_dir(data_dir) / "boundaries" / "district_wgs84.geojson"
    gdf = gpd.read_file(path).to_crs(WGS84)
    out = gpd.GeoDataFrame(
        {"adcode": gdf["adcode"].astype(str).to_numpy()[:1], "name": gdf["name"].to_numpy()[:1]},
        geometry=[shapely.make_valid(gdf.union_all())],
        crs=WGS84,
    )
    out["area_km2"] = out.to_crs(METRIC_CRS).area / 1e6
    return out[["adcode", "name", "area_km2", "geometry"]]


def _read_units(hd: Path) -> pd.DataFrame:
    units = pd.read_csv(hd / "admin_units.csv", dtype={"code": str, "parent": str})
    units["code"] = units["code"].str.zfill(12)
    units["parent"] = units["parent"].str.zfill(12)
    return units


def load_streets(data_dir: Path | str | None = None) -> gpd.GeoDataFrame:
    """Load the 29 streets/towns with their codes and 2020 census population.

    Parameters
    ----------
    data_dir
        The data directory; default from settings.

    Returns
    -------
    geopandas.GeoDataFrame
        Sorted by code, columns ``code`` (12 digits), ``name`` (canonical, see
        :func:`normalize_street_name`), ``official_name`` (as in
        ``admin_units.csv``), ``aliases`` (tuple of str), ``kind``
        (``"街道"`` or ``"镇"``), ``pop_2020`` (int), ``area_km2`` (of the
        polygon, UTM 50N), ``approximate`` (True where the polygon was
        trimmed to remove an overlap), ``geometry`` (EPSG:4326).
    """
    hd = _haidian_dir(data_dir)
    gdf = gpd.read_file(hd / "boundaries" / "streets_wgs84.geojson").to_crs(WGS84)
    gdf["name"] = [normalize_street_name(n) for n in gdf["name"]]
    units = _read_units(hd)
    towns = units[units["level"] == "town"].copy()
    towns["name_c"] = [normalize_street_name(n) for n in towns["name"]]
    merged = towns.merge(gdf, left_on="name_c", right_on="name", how="outer", suffixes=("_unit", ""), indicator=True)
    if (merged["_merge"] != "both").any():
        bad = merged.loc[merged["_merge"] != "both", "name_c"].fillna(merged["name"]).tolist()
        raise DataDirError(f"streets do not match between files: {bad}", f"各文件的街道名称对不上：{bad}")
    merged = merged.sort_values("code").reset_index(drop=True)
    metric = gpd.GeoSeries([_polygonal(shapely.make_valid(g)) for g in merged.geometry], crs=WGS84).to_crs(METRIC_CRS)
    geoms = list(metric.values)
    approximate = np.zeros(len(geoms), dtype=bool)
    taken: list[BaseGeometry] = []
    for i, g in enumerate(geoms):
        if taken:
            prior = shapely.union_all(taken)
            if g.intersection(prior).area > 1.0:
                g = _polygonal(g.difference(prior))
                approximate[i] = True
        taken.append(g)
        geoms[i] = g
    metric = gpd.GeoSeries(geoms, crs=METRIC_CRS)
    out = gpd.GeoDataFrame(
        {
            "code": merged["code"].to_numpy(),
            "name": merged["name_c"].to_numpy(),
            "official_name": merged["name_unit"].to_numpy(),
            "aliases": [STREET_ALIASES[n] for n in merged["name_c"]],
            "kind": ["街道" if n.endswith("街道") else "镇" for n in merged["name_c"]],
            "pop_2020": merged["pop_2020_census7"].astype(int).to_numpy(),
            "area_km2": metric.area.to_numpy() / 1e6,
            "approximate": approximate,
        },
        geometry=metric.to_crs(WGS84).values,
        crs=WGS84,
    )
    return out


def _lattice(poly: BaseGeometry, cells: int) -> np.ndarray:
    """Centres of a square lattice of about ``cells`` cells inside ``poly`` (metric)."""
    minx, miny, maxx, maxy = poly.bounds
    step = max(np.sqrt(poly.area / cells), 1.0)
    xs = np.arange(minx + step / 2, maxx, step)
    ys = np.arange(miny + step / 2, maxy, step)
    gx, gy = np.meshgrid(xs, ys)
    pts = shapely.points(gx.ravel(), gy.ravel())
    shapely.prepare(poly)
    inside = shapely.contains(poly, pts)
    if not inside.any():
        rep = poly.representative_point()
        return np.array([[rep.x, rep.y]])
    return np.column_stack([gx.ravel()[inside], gy.ravel()[inside]])


def _place_points(poly: BaseGeometry, known: np.ndarray, n_new: int) -> np.ndarray:
    """Place ``n_new`` points in ``poly`` far from ``known`` points and from the edge (metric)."""
    if n_new == 0:
        return np.empty((0, 2))
    cand = _lattice(poly, _LATTICE_CELLS)
    edge = shapely.distance(shapely.points(cand), poly.boundary) * _EDGE_WEIGHT
    if len(known):
        d = np.min(np.hypot(cand[:, None, 0] - known[None, :, 0], cand[:, None, 1] - known[None, :, 1]), axis=1)
    else:
        d = np.full(len(cand), np.inf)
    placed = []
    for _ in range(n_new):
        score = np.minimum(d, edge)
        k = int(np.argmax(score))
        p = cand[k]
        placed.append(p)
        d = np.minimum(d, np.hypot(cand[:, 0] - p[0], cand[:, 1] - p[1]))
    return np.array(placed)


def _snap_inside(poly: BaseGeometry, x: float, y: float) -> tuple[float, float]:
    """Move a point just outside ``poly`` to the nearest spot ``INSET_M`` inside it."""
    inner = poly.buffer(-INSET_M)
    target = inner if not inner.is_empty else poly
    _, q = shapely.ops.nearest_points(shapely.Point(x, y), target)
    return q.x, q.y


def _separate_duplicates(pts: np.ndarray) -> np.ndarray:
    """Nudge exactly coincident points 5 m apart so each gets its own Voronoi cell."""
    pts = pts.copy()
    seen: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(pts):
        key = (round(x, 3), round(y, 3))
        if key in seen:
            seen[key] += 1
            angle = seen[key] * 2.399963  # golden angle, deterministic
            pts[i] = (x + 5.0 * np.cos(angle), y + 5.0 * np.sin(angle))
        else:
            seen[key] = 0
    return pts


def _voronoi_cells(poly: BaseGeometry, pts: np.ndarray) -> list[BaseGeometry]:
    """Voronoi cells of ``pts`` clipped to ``poly``, in the order of ``pts`` (metric)."""
    if len(pts) == 1:
        return [poly]
    mp = shapely.multipoints(pts)
    minx, miny, maxx, maxy = poly.bounds
    extent = shapely.box(minx - 1000, miny - 1000, maxx + 1000, maxy + 1000)
    cells = shapely.get_parts(shapely.voronoi_polygons(mp, extend_to=extent, ordered=True))
    if len(cells) != len(pts):  # pragma: no cover - coincident points are separated beforehand
        raise RuntimeError("Voronoi split lost a point")
    return [_polygonal(shapely.make_valid(shapely.intersection(c, poly))) for c in cells]


def load_communities(data_dir: Path | str | None = None, streets: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Load the 654 communities/villages with derived points and polygons.

    See the module docstring for how points are placed and polygons derived.

    Parameters
    ----------
    data_dir
        The data directory; default from settings.
    streets
        The frame from :func:`load_streets` (loaded if not given).

    Returns
    -------
    geopandas.GeoDataFrame
        Sorted by code, columns ``code`` (12 digits), ``name`` (official,
        e.g. ``翠微路社区居委会``), ``short_name`` (``翠微路``), ``street``
        (canonical street name), ``street_code``, ``kind`` (``"社区"`` or
        ``"村"``), ``ur_code`` (urban/rural code, Int64), ``has_point`` (the
        source gives a point), ``point_source`` (``known``, ``moved``,
        ``placed``, ``placed_far``), ``lon``, ``lat`` (WGS84 of the known or
        placed point), ``point`` (the same as a shapely Point, GeoSeries),
        ``area_km2``, ``approximate`` (always True), ``geometry``
        (Polygon/MultiPolygon, EPSG:4326, the active geometry).
    """
    hd = _haidian_dir(data_dir)
    if streets is None:
        streets = load_streets(hd.parent)
    units = _read_units(hd)
    comm = units[units["level"] != "town"].sort_values("code").reset_index(drop=True)
    street_by_code = dict(zip(streets["code"], streets["name"], strict=True))
    unknown = sorted(set(comm["parent"]) - set(street_by_code))
    if unknown:
        raise DataDirError(f"communities refer to unknown street codes {unknown}", f"社区所属街道代码未知：{unknown}")
    streets_m = streets.to_crs(METRIC_CRS)
    from gridmap.layers.crs import to_metric

    mx, my = to_metric(comm["lon_wgs84"].to_numpy(), comm["lat_wgs84"].to_numpy())
    has_point = comm["lon_wgs84"].notna().to_numpy() & comm["lat_wgs84"].notna().to_numpy()
    px = np.full(len(comm), np.nan)
    py = np.full(len(comm), np.nan)
    source = np.array(["placed"] * len(comm), dtype=object)
    geoms: list[BaseGeometry | None] = [None] * len(comm)
    for s_code, s_geom in zip(streets_m["code"], streets_m.geometry, strict=True):
        idx = np.flatnonzero(comm["parent"].to_numpy() == s_code)
        if len(idx) == 0:
            continue
        shapely.prepare(s_geom)
        known_idx = []
        for i in idx:
            if not has_point[i]:
                continue
            pt = shapely.Point(mx[i], my[i])
            if shapely.contains(s_geom, pt):
                px[i], py[i], source[i] = mx[i], my[i], "known"
                known_idx.append(i)
            elif s_geom.distance(pt) <= SNAP_DISTANCE_M:
                px[i], py[i] = _snap_inside(s_geom, mx[i], my[i])
                source[i] = "moved"
                known_idx.append(i)
            else:
                source[i] = "placed_far"
        todo = [i for i in idx if i not in set(known_idx)]
        known = np.column_stack([px[known_idx], py[known_idx]]) if known_idx else np.empty((0, 2))
        new = _place_points(s_geom, known, len(todo))
        for i, p in zip(todo, new, strict=True):
            px[i], py[i] = p
        order = list(idx)
        pts = _separate_duplicates(np.column_stack([px[order], py[order]]))
        px[order], py[order] = pts[:, 0], pts[:, 1]
        for i, cell in zip(order, _voronoi_cells(s_geom, pts), strict=True):
            geoms[i] = cell
    metric_geoms = gpd.GeoSeries(geoms, crs=METRIC_CRS)
    points = gpd.GeoSeries(shapely.points(px, py), crs=METRIC_CRS).to_crs(WGS84)
    kind = np.where(comm["name"].str.endswith(("村委会", "村民委员会")), "村", "社区")
    out = gpd.GeoDataFrame(
        {
            "code": comm["code"].to_numpy(),
            "name": comm["name"].to_numpy(),
            "short_name": [short_community_name(n) for n in comm["name"]],
            "street": [street_by_code[c] for c in comm["parent"]],
            "street_code": comm["parent"].to_numpy(),
            "kind": kind,
            "ur_code": comm["ur_code"].astype("Int64").to_numpy(),
            "has_point": has_point,
            "point_source": source.astype(str),
            "lon": points.x.to_numpy(),
            "lat": points.y.to_numpy(),
            "area_km2": metric_geoms.area.to_numpy() / 1e6,
            "approximate": True,
        },
        geometry=metric_geoms.to_crs(WGS84).values,
        crs=WGS84,
    )
    out["point"] = gpd.GeoSeries(points.values, index=out.index, crs=WGS84)
    return out


@dataclass(frozen=True)
class AdminLayers:
    """The three admin layers, all in EPSG:4326.

    Attributes
    ----------
    district
        From :func:`load_district`.
    streets
        From :func:`load_streets`.
    communities
        From :func:`load_communities`.
    """

    district: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame


def load_admin_layers(data_dir: Path | str | None = None) -> AdminLayers:
    """Load district, streets and communities in one call.

    Parameters
    ----------
    data_dir
        The data directory; default ``get_settings().data_dir``.

    Returns
    -------
    AdminLayers
    """
    district = load_district(data_dir)
    streets = load_streets(data_dir)
    communities = load_communities(data_dir, streets=streets)
    return AdminLayers(district=district, streets=streets, communities=communities)
