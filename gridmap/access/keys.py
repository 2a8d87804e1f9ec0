"""Secrets of the running process, read from the environment (never from the repository).

``GRIDMAP_SECRET_KEY``
    Key that signs the dashboard's session cookies. When absent, a random
    key is generated for this process (with a warning): sessions then end
    when the process restarts. ``gridmap serve`` (gunicorn) makes that key in
    its master process before the workers fork, so every worker, and every
    worker gunicorn restarts, shares it (:mod:`gridmap.dashboard.server`);
    separate servers on one database (several hosts or containers) do not,
    and a restart signs everyone out, so production sets it. The generated
    key is never written to disk.
"""

from __future__ import annotations

import logging
import os
import secrets as _secrets  # the standard library module
import threading

__all__ = ["session_secret"]

log = logging.getLogger("gridmap.access")
_lock = threading.Lock()
_generated: bytes | None = None

#: Keys shorter than this are refused.
MIN_KEY_LENGTH = 16


def session_secret() -> bytes:
    """The session-signing key: ``GRIDMAP_SECRET_KEY`` or a random per-process key.

    Raises
    ------
    ValueError
        When ``GRIDMAP_SECRET_KEY`` is set but shorter than 16 characters.
    """
    global _generated
    env = os.environ.get("GRIDMAP_SECRET_KEY")
    if env:
        if len(env) < MIN_KEY_LENGTH:
            raise ValueError(f"GRIDMAP_SECRET_KEY must be at least {MIN_KEY_LENGTH} characters")
        return env.encode()
    with _lock:
        if _generated is None:
            log.warning("GRIDMAP_SECRET_KEY is not set: using a random key for this process "
                        "(sessions end at restart) / 未设置 GRIDMAP_SECRET_KEY，本进程使用随机密钥")
            _generated = _secrets.token_bytes(32)
        return _generated
