"""The ``gridmap register`` sub-app: import department ledgers, monthly updates, quarantine, conflicts."""

from __future__ import annotations

import typer

register_app = typer.Typer(
    help="Register of elders (台账): import, monthly update, quarantine, conflicts, exports.",
    no_args_is_help=True,
)
