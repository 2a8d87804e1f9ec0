"""Masking of personal data: ID numbers, phones, names and exact addresses.

Masked by default in every view, export and log (the document orders that the
elders' privacy be protected); unmasking is a permission that is audited.
"""

from __future__ import annotations

import re

_HOUSE = re.compile(r"(\d+号楼|\d+号院|\d+单元|\d+室|\d+层|\d+号|[0-9A-Za-z\-]+$)")


def mask_id_number(value: str | None) -> str | None:
    """``110108194003051285`` → ``110108********1285`` (region and last four kept)."""
    if not value:
        return value
    v = str(value).strip()
    if len(v) <= 10:
        return "*" * len(v)
    return v[:6] + "*" * (len(v) - 10) + v[-4:]


def mask_phone(value: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; landlines keep the area code and last four."""
    if not value:
        return value
    v = re.sub(r"\s+", "", str(value))
    digits = re.sub(r"\D", "", v)
    if len(digits) == 11 and digits.startswith("1"):
        return digits[:3] + "****" + digits[-4:]
    if "-" in v:
        area, _, rest = v.partition("-")
        return area + "-" + "*" * max(len(rest) - 4, 0) + rest[-4:]
    if len(v) <= 4:
        return "*" * len(v)
    return "*" * (len(v) - 4) + v[-4:]


def mask_name(value: str | None) -> str | None:
    """``张三`` → ``张*``, ``张三丰`` → ``张*丰``, ``欧阳娜娜`` → ``欧**娜``."""
    if not value:
        return value
    v = str(value).strip()
    if len(v) == 1:
        return "*"
    if len(v) == 2:
        return v[0] + "*"
    return v[0] + "*" * (len(v) - 2) + v[-1]


def mask_address(value: str | None) -> str | None:
    """Drop building, unit and room numbers: ``…科育社区5号楼2单元301`` → ``…科育社区****``."""
    if not value:
        return value
    v = str(value).strip()
    m = re.search(r"\d", v)
    if m is None:
        return v
    return v[: m.start()] + "****"
