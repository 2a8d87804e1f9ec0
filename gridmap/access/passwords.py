"""Password hashing with Argon2id (argon2-cffi) under bounded memory, and the strength check of new passwords.

New passwords must be strong (:func:`password_problem`): at least
:data:`MIN_PASSWORD_LENGTH` characters and a score of the ``zxcvbn``
strength estimator (the Python port of Dropbox's zxcvbn) of at least
:data:`MIN_SCORE` (of 0-4), which refuses common passwords (``password``,
``12345678``, keyboard walks, dates, the user's own name) whatever their length.

Parameters follow the OWASP minimum for Argon2id (19 MiB, 2 passes, 1 lane)
rather than argon2-cffi's default (64 MiB, 4 lanes): fifty people signing in
at once then need about 1 GB at worst, and at most :data:`MAX_CONCURRENT`
hashes run at the same time (the others wait), so the server's memory stays
bounded. Hashes carry their parameters, so raising them later only needs
:func:`needs_rehash` at the next sign-in.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

__all__ = [
    "MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "MIN_SCORE", "hash_password", "needs_rehash", "password_problem",
    "verify_password",
]

#: Longer passwords are refused (they cost hashing time and are never typed).
MAX_PASSWORD_LENGTH = 1024
#: Shorter new passwords are refused.
MIN_PASSWORD_LENGTH = 10
#: Lowest zxcvbn score (0 too guessable … 4 very unguessable) of a new password.
MIN_SCORE = 3
#: zxcvbn scores at most this many characters (its own limit); the rest only adds strength.
_ZXCVBN_MAX = 72
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


def password_problem(password: object, user_inputs: Sequence[str] = ()) -> tuple[str, str] | None:
    """Why ``password`` may not be set, as ``(English, Chinese)``, or ``None`` when it is strong enough.

    Parameters
    ----------
    password
        The new password.
    user_inputs
        Words of this user (user name, display name) that make a password weak.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        return (f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                f"密码长度须为{MIN_PASSWORD_LENGTH}至{MAX_PASSWORD_LENGTH}个字符")
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[w for w in user_inputs if w][:10])
    if int(result["score"]) < MIN_SCORE:
        why = result["feedback"].get("warning") or "it is easy to guess"
        return (f"the password is too weak ({why}): use a longer phrase of uncommon words, "
                "not a common password, a keyboard pattern, a date or your user name",
                "密码过于简单、容易被猜中：请使用由不常见词语组成的较长短语，"
                "不要使用常见密码、键盘序列、日期或用户名")
    return None


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
