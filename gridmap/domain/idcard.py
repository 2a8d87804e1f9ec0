"""Resident ID numbers (GB 11643-1999): checksum, birth date and sex."""

from __future__ import annotations

import re
from datetime import date

from gridmap._errors import ValidationError

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_PATTERN = re.compile(r"^\d{17}[\dX]$")


def check_digit(first17: str) -> str:
    """Return the GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalize_id_number(value: object) -> str:
    """Strip spaces and upper-case a trailing ``x``; does not validate."""
    return re.sub(r"\s+", "", str(value or "")).upper()


def parse_id_number(value: object, field: str = "居民身份证号码") -> tuple[str, date, str]:
    """Validate an 18-digit ID number and return ``(number, birth_date, sex)``.

    ``sex`` is ``"男"`` or ``"女"`` (17th digit odd = male).

    Raises
    ------
    ValidationError
        With code ``id_format``, ``id_birth_date`` or ``id_checksum``.
    """
    number = normalize_id_number(value)
    if not _PATTERN.match(number):
        raise ValidationError(
            "an ID number has 17 digits and a check digit or X",
            "身份证号码应为17位数字加1位校验码（数字或X）",
            field=field, value=value, code="id_format",
        )
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValidationError(
            "digits 7-14 are not a valid birth date",
            "第7-14位不是有效的出生日期",
            field=field, value=value, code="id_birth_date",
        ) from None
    if born.year < 1890 or born > date.today():
        raise ValidationError(
            "the birth date in digits 7-14 is not plausible (before 1890 or in the future)",
            "第7-14位的出生日期不合理（早于1890年或晚于今天）",
            field=field, value=value, code="id_birth_date",
        )
    expected = check_digit(number[:17])
    if number[17] != expected:
        raise ValidationError(
            "the check digit (18th character) does not match the first 17 digits",
            "校验码（第18位）与前17位不符",
            field=field, value=value, code="id_checksum",
        )
    sex = "男" if int(number[16]) % 2 == 1 else "女"
    return number, born, sex


def make_id_number(region: str, born: date, sequence: int, sex: str) -> str:
    """Build a valid synthetic ID number (for the generator and tests).

    Parameters
    ----------
    region
        Six-digit administrative code, e.g. ``"110108"`` for Haidian.
    born
        Birth date.
    sequence
        0-99: the first two digits of the order code.
    sex
        ``"男"`` or ``"女"``; sets the parity of the 17th digit.
    """
    odd = sex == "男"
    third = (sequence * 7) % 5 * 2 + (1 if odd else 0)
    first17 = f"{region}{born:%Y%m%d}{sequence % 100:02d}{third}"
    return first17 + check_digit(first17)


def age_on(born: date, on: date) -> int:
    """Age in whole years on a date."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
