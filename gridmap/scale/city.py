"""City-scale synthetic districts: Haidian's real layers plus shifted (optionally resized) copies standing in for others.

A :class:`City` is a list of :class:`CityDistrict`: the first is Haidian
(code ``110108``, real layers), each other one a copy of Haidian's streets and
communities translated by a few tens of kilometres in UTM 50N (and, with
``resize``, scaled about Haidian's centre), with codes renamed
``110108… → 1101NN…`` (``NN`` = 51, 52, …: codes no real Beijing district
uses) and names prefixed ``合成N区``. Copies are flagged ``synthetic``: they
stand in for the other districts' workload, not for their geography.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from gridmap._errors import ValidationError

#: Code of the real district the copies are made from.
HAIDIAN_CODE = "110108"
#: Copies are coded 110151, 110152, ... (no real Beijing district uses 1101NN with NN > 19).
SYNTHETIC_CODE_BASE = 110150
#: Most districts :func:`make_city` makes (codes stay below 110200).
MAX_DISTRICTS = 40
#: Scale factors cycled over the copies when ``resize=True`` (area × factor²).
RESIZE_FACTORS = (1.0, 0.85, 1.15, 0.9, 1.1)

_TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
_TO_WGS = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True)


@dataclass
class CityDistrict:
    """One district of the city.

    Attributes
    ----------
    code, name
        6-digit district code and name (``合成N区`` for copies).
    synthetic
        True for a copy of Haidian.
    dx_m, dy_m, scale
        Translation (metres, UTM 50N) and scale of the copy (0, 0, 1 for Haidian).
    streets, communities
        GeoDataFrames with the columns of :mod:`gridmap.layers.admin` (codes renamed), EPSG:4326.
    weight
        Relative workload (elders) of the district: ``scale²``.
    """

    code: str
    name: str
    synthetic: bool
    dx_m: float
    dy_m: float
    scale: float
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    weight: float = 1.0
    service_points: Any = field(default=None, repr=False)

    def layers(self) -> dict[str, Any]:
        """The layers mapping :func:`gridmap.synth.register.generate_register` takes."""
        out: dict[str, Any] = {"streets": self.streets, "communities": self.communities}
        if self.service_points is not None:
            out["service_points"] = self.service_points
        return out


@dataclass
class City:
    """The districts of a synthetic city."""

    districts: list[CityDistrict]

    @property
    def codes(self) -> list[str]:
        """District codes in order."""
        return [d.code for d in self.districts]

    def shares(self, total: int) -> dict[str, int]:
        """``total`` elders split over the districts by weight (largest remainder)."""
        w = np.array([d.weight for d in self.districts], dtype=float)
        raw = total * w / w.sum()
        n = np.floor(raw).astype(int)
        for i in np.argsort(-(raw - n))[: total - int(n.sum())]:
            n[i] += 1
        return {d.code: int(k) for d, k in zip(self.districts, n, strict=True)}


def _transform(geoms: np.ndarray, dx: float, dy: float, scale: float, cx: float, cy: float) -> np.ndarray:
    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = _TO_UTM.transform(coords[:, 0], coords[:, 1])
        x = cx + (np.asarray(x) - cx) * scale + dx
        y = cy + (np.asarray(y) - cy) * scale + dy
        lon, lat = _TO_WGS.transform(x, y)
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, fn)


def _offsets(n: int, spacing_m: float) -> list[tuple[float, float]]:
    """Haidian at (0, 0), copies on a square lattice around it, nearest first."""
    cells = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if (i, j) != (0, 0)]
    cells.sort(key=lambda c: (c[0] ** 2 + c[1] ** 2, c[1], c[0]))
    return [(0.0, 0.0)] + [(i * spacing_m, j * spacing_m) for i, j in cells[: n - 1]]


def make_city(
    n_districts: int = 10,
    *,
    layers: Any = None,
    spacing_km: float = 40.0,
    resize: bool = False,
) -> City:
    """Haidian plus ``n_districts - 1`` shifted copies (flagged synthetic).

    Parameters
    ----------
    n_districts
        Districts in the city, 1 to :data:`MAX_DISTRICTS`.
    layers
        Haidian's admin layers (``streets``, ``communities``); default
        :func:`gridmap.layers.admin.load_admin_layers`.
    spacing_km
        Distance between neighbouring districts' centres (Haidian is about 30 km tall).
    resize
        Scale the copies by :data:`RESIZE_FACTORS` (their workload by the factor squared).

    Returns
    -------
    City
    """
    if not 1 <= int(n_districts) <= MAX_DISTRICTS:
        raise ValidationError(f"n_districts must be between 1 and {MAX_DISTRICTS}, got {n_districts}",
                              f"区数须在 1 到 {MAX_DISTRICTS} 之间，实际为 {n_districts}",
                              field="n_districts", value=n_districts, code="range")
    if layers is None:
        from gridmap.layers.admin import load_admin_layers

        layers = load_admin_layers()
    streets = (layers["streets"] if isinstance(layers, dict) else layers.streets).sort_values("code")
    comm = (layers["communities"] if isinstance(layers, dict) else layers.communities).sort_values("code")
    streets = streets.reset_index(drop=True)
    comm = comm.reset_index(drop=True)
    c = shapely.union_all(streets.geometry.values).centroid
    cx, cy = _TO_UTM.transform(c.x, c.y)
    out = []
    for k, (dx, dy) in enumerate(_offsets(int(n_districts), spacing_km * 1000.0)):
        if k == 0:
            out.append(CityDistrict(HAIDIAN_CODE, "海淀区", False, 0.0, 0.0, 1.0, streets.copy(), comm.copy()))
            continue
        code = str(SYNTHETIC_CODE_BASE + k)
        scale = RESIZE_FACTORS[(k - 1) % len(RESIZE_FACTORS)] if resize else 1.0
        label = f"合成{k}区"

        def recode(s: Any, code: str = code) -> Any:
            return s.astype(str).str.replace(f"^{HAIDIAN_CODE}", code, regex=True)

        st = streets.copy()
        st["code"] = recode(st["code"])
        st["geometry"] = _transform(st.geometry.values, dx, dy, scale, cx, cy)
        if "area_km2" in st.columns:
            st["area_km2"] = st["area_km2"] * scale**2
        if "pop_2020" in st.columns:
            st["pop_2020"] = (st["pop_2020"] * scale**2).round().astype(int)
        cm = comm.copy()
        cm["code"] = recode(cm["code"])
        cm["street_code"] = recode(cm["street_code"])
        cm["name"] = label + cm["name"].astype(str)
        cm["geometry"] = _transform(cm.geometry.values, dx, dy, scale, cx, cy)
        if "point" in cm.columns:
            cm["point"] = gpd.GeoSeries(_transform(np.asarray(cm["point"].values), dx, dy, scale, cx, cy),
                                        crs="EPSG:4326", index=cm.index)
            cm["lon"] = [p.x for p in cm["point"]]
            cm["lat"] = [p.y for p in cm["point"]]
        if "area_km2" in cm.columns:
            cm["area_km2"] = cm["area_km2"] * scale**2
        out.append(CityDistrict(code, label, True, dx, dy, scale, gpd.GeoDataFrame(st, crs="EPSG:4326"),
                                gpd.GeoDataFrame(cm, crs="EPSG:4326"), weight=scale**2))
    return City(out)


__all__ = ["HAIDIAN_CODE", "MAX_DISTRICTS", "RESIZE_FACTORS", "SYNTHETIC_CODE_BASE", "City", "CityDistrict",
           "make_city"]
