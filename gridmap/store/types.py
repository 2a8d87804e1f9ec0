"""Column types that work on both backends: geometry, enumerations, JSON lists.

Geometry
    On PostgreSQL the column is a PostGIS ``geometry(<kind>, 4326)`` (via
    GeoAlchemy2) with a GiST index; on SQLite it is the geometry's WKB in a
    BLOB. SpatiaLite is a C extension that pip cannot install, so the embedded
    backend keeps geometry portable and does spatial work in geopandas/shapely.
    On both, Python code reads and writes shapely geometries.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import shapely
from sqlalchemy import JSON, LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SRID = 4326


def _geoalchemy_element(value: Any) -> bool:
    """Whether ``value`` is a GeoAlchemy2 WKB/WKT element (GeoAlchemy2 is imported only for PostgreSQL: on the
    embedded backend a command does not pay for it, see :func:`gridmap.store.db.make_engine`)."""
    elements = sys.modules.get("geoalchemy2.elements")
    return elements is not None and isinstance(value, (elements.WKBElement, elements.WKTElement))


def _to_shape(value: Any) -> shapely.Geometry:
    from geoalchemy2.shape import to_shape

    return to_shape(value)


class GeometryType(TypeDecorator[shapely.Geometry]):
    """A shapely geometry in EPSG:4326: PostGIS geometry or WKB BLOB on SQLite.

    Parameters
    ----------
    geometry_type
        PostGIS geometry type name (``POINT``, ``MULTIPOLYGON``, ``LINESTRING``,
        ``GEOMETRY``).
    """

    impl = LargeBinary
    cache_ok = True
    # GeoAlchemy2's DDL hooks read these: gridmap creates its GiST indexes itself.
    spatial_index = False
    use_N_D_index = False
    use_typmod = None

    def __init__(self, geometry_type: str = "GEOMETRY") -> None:
        super().__init__()
        self.geometry_type = geometry_type.upper()

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect is None:  # GeoAlchemy2's DDL hooks probe without a dialect
            return LargeBinary()
        if dialect.name == "postgresql":
            from geoalchemy2 import Geometry as PostGISGeometry

            return dialect.type_descriptor(
                PostGISGeometry(self.geometry_type, srid=SRID, spatial_index=False)
            )
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if _geoalchemy_element(value):
            value = _to_shape(value)
        if not isinstance(value, shapely.Geometry):
            raise TypeError(f"expected a shapely geometry, got {type(value).__name__}")
        if value.is_empty:
            return None
        if dialect.name == "postgresql":
            from geoalchemy2.elements import WKBElement

            return WKBElement(shapely.to_wkb(value, include_srid=False), srid=SRID)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> shapely.Geometry | None:
        if value is None:
            return None
        if _geoalchemy_element(value):
            return _to_shape(value)
        if isinstance(value, str):  # hex WKB
            return shapely.from_wkb(bytes.fromhex(value))
        return shapely.from_wkb(bytes(value))

    def column_expression(self, col: Any) -> Any:  # keep raw WKB on PostGIS
        return col


class EnumType(TypeDecorator[StrEnum]):
    """A StrEnum stored as its short code in a VARCHAR (portable, no DB enum type)."""

    impl = String(40)
    cache_ok = True

    def __init__(self, enum_cls: type[StrEnum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum_cls(value)


class EnumListType(TypeDecorator[list[StrEnum]]):
    """A list of StrEnum members stored as a JSON array of codes (order kept, no duplicates)."""

    impl = JSON
    cache_ok = True

    def __init__(self, enum_cls: type[StrEnum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> list[str] | None:
        if value is None:
            return None
        out: list[str] = []
        for v in value:
            code = self.enum_cls(v).value
            if code not in out:
                out.append(code)
        return out

    def process_result_value(self, value: Any, dialect: Dialect) -> list[StrEnum] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        return [self.enum_cls(v) for v in value]
