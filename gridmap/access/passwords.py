"""Password hashing with Argon2id (argon2-cffi), with bounded memory use under load.

Parameters follow the OWASP minimum for Argon2id (19 MiB, 2 passes, 1 lane)
rather than argon2-cffi's default (64 MiB, 4 lanes): fifty people signing in
at once then need about 1 GB at worst, and at most :data:`MAX_CONCURRENT`
hashes run at the same time (the others wait), so the server's memory stays
bounded. Hashes carry their parameters, so raising them later only needs
:func:`needs_rehash` at the next sign-in.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MAX_PASSWORD_LENGTH", "hash_password", "needs_rehash", "verify_password"]

#: Longer passwords are refused (they cost hashing time and are never typed).
MAX_PASSWORD_LENGTH = 1024
#: Hashes computed at the same time at most (each needs ``memory_cost`` KiB).
MAX_CONCURRENT = 4

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
#: A hash of a random password, verified when the user does not exist (same timing).
_DUMMY: str | None = None


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string, with salt and parameters) of ``password``.

    Raises
    ------
    ValueError
        When the password is empty or longer than :data:`MAX_PASSWORD_LENGTH`.
    """
    if not isinstance(password, str) or not password:
        raise ValueError("empty password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    with _SLOTS:
        return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a missing or malformed hash).

    A missing hash still costs one verification, so a wrong user name and a
    wrong password take the same time.
    """
    global _DUMMY
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    if not password_hash:
        if _DUMMY is None:
            _DUMMY = hash_password("gridmap-dummy-password")
        password_hash, password = _DUMMY, password + "\x00"
    try:
        with _SLOTS:
            return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (rehash at sign-in)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
