"""Progress bars for long work: a tqdm bar, or a silent stand-in when progress is off."""

from __future__ import annotations

from typing import Any


class _NoBar:
    """The part of tqdm's interface the package uses, doing nothing."""

    def update(self, n: int = 1) -> None: ...

    def set_description(self, text: str) -> None: ...

    def close(self) -> None: ...


def step_bar(total: int, progress: bool) -> Any:
    """A tqdm bar of ``total`` steps when ``progress`` is true, else a silent stand-in."""
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="step")
