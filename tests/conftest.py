"""Shared fixtures: the real data directory and (see tests/store) the two database backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmap.config import get_settings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real geodata directory (``GRIDMAP_DATA_DIR``); tests needing it skip when it is absent."""
    path = get_settings().data_dir
    if not (path / "haidian").is_dir():
        pytest.skip(f"real geodata not found under {path} (set GRIDMAP_DATA_DIR)")
    return path
