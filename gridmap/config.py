"""Settings read from the environment.

Every path and URL the package uses comes from here, so tests and the CLI can
point the whole system elsewhere with environment variables:

``GRIDMAP_DATABASE_URL``
    SQLAlchemy URL of the store. Default: an embedded SQLite file
    ``./var/gridmap.sqlite`` under the project directory.
``GRIDMAP_DATA_DIR``
    Directory of the real geodata (read-only). Default: ``../shared/data``
    beside the repository.
``GRIDMAP_VAR_DIR``
    Directory for caches and built files. Default: ``./var`` in the project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The repository root (the directory holding ``pyproject.toml``) when running
#: from a checkout; for an installed package, the current directory.
PROJECT_DIR: Path = Path(__file__).resolve().parent.parent
if not (PROJECT_DIR / "pyproject.toml").exists():  # pragma: no cover - installed wheel
    PROJECT_DIR = Path.cwd()


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process."""

    database_url: str
    data_dir: Path
    var_dir: Path

    @property
    def haidian_dir(self) -> Path:
        """Directory of the Haidian geodata inside the data directory."""
        return self.data_dir / "haidian"

    @property
    def cache_dir(self) -> Path:
        """Directory for built caches (road graphs, matrices)."""
        return self.var_dir / "cache"


def default_var_dir() -> Path:
    """Return ``GRIDMAP_VAR_DIR`` or ``./var`` in the project."""
    return Path(os.environ.get("GRIDMAP_VAR_DIR", PROJECT_DIR / "var")).resolve()


def default_data_dir() -> Path:
    """Return ``GRIDMAP_DATA_DIR`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("GRIDMAP_DATA_DIR")
    if env:
        return Path(env).resolve()
    return (PROJECT_DIR.parent / "shared" / "data").resolve()


def default_database_url(var_dir: Path | None = None) -> str:
    """Return ``GRIDMAP_DATABASE_URL`` or the embedded SQLite file under ``var``."""
    env = os.environ.get("GRIDMAP_DATABASE_URL")
    if env:
        return env
    var = var_dir or default_var_dir()
    return f"sqlite:///{var / 'gridmap.sqlite'}"


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    var = default_var_dir()
    return Settings(database_url=default_database_url(var), data_dir=default_data_dir(), var_dir=var)
