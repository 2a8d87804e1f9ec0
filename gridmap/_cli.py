"""Helpers shared by the CLI modules: opening the store, reporting a GridmapError and exiting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from gridmap._errors import GridmapError

if TYPE_CHECKING:
    from sqlalchemy import Engine

_stderr = Console(stderr=True)


def open_store(database_url: str | None) -> Engine:
    """The store of a command: its engine, with a database made by an older gridmap migrated first.

    Raises
    ------
    GridmapError
        When the database cannot be reached or was made by a newer gridmap.
    """
    from gridmap.store.db import ensure_schema, make_engine

    engine = make_engine(database_url)
    ensure_schema(engine)  # one query when the schema is current
    return engine


def open_store_or_exit(database_url: str | None) -> Engine:
    """:func:`open_store`, printing the error in Chinese and English and exiting 1 when it fails."""
    try:
        return open_store(database_url)
    except GridmapError as exc:
        fail(exc)
        raise  # not reached: fail exits


def fail(exc: GridmapError, code: int = 1) -> None:
    """Print the error in Chinese and English on stderr and exit with ``code`` (no traceback)."""
    _stderr.print(f"[red]错误[/red] {exc.message_zh}\n[red]Error[/red] {exc.message_en}")
    raise typer.Exit(code) from None
