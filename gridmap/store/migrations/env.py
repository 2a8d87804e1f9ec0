"""Alembic environment: runs migrations on the engine handed over by gridmap.store.db."""

from __future__ import annotations

from typing import Any

from alembic import context

from gridmap.store.models import Base
from gridmap.store.types import EnumListType, EnumType, GeometryType

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render gridmap's portable column types as plain, importable types in migrations."""
    if type_ == "type" and isinstance(obj, EnumType):
        return "sa.String(length=40)"
    if type_ == "type" and isinstance(obj, EnumListType):
        return "sa.JSON()"
    if type_ == "type" and isinstance(obj, GeometryType):
        autogen_context.imports.add("from gridmap.store.types import GeometryType")
        return f"GeometryType({obj.geometry_type!r})"
    return False


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Ignore PostGIS's own tables (spatial_ref_sys, topology ...)."""
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from gridmap.store.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=render_item,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=False,
        )
        context.run_migrations()


run_migrations_online()
