"""Helpers shared by the CLI modules: reporting a GridmapError and exiting."""

from __future__ import annotations

import typer
from rich.console import Console

from gridmap._errors import GridmapError

_stderr = Console(stderr=True)


def fail(exc: GridmapError, code: int = 1) -> None:
    """Print the error in Chinese and English on stderr and exit with ``code`` (no traceback)."""
    _stderr.print(f"[red]错误[/red] {exc.message_zh}\n[red]Error[/red] {exc.message_en}")
    raise typer.Exit(code) from None
