"""Masking policy: which fields are personal and how each is masked by default.

Every view, export and log shows personal fields masked
(:mod:`gridmap.domain.masking`); only :func:`gridmap.access.audit.unmask`
(a permission, with a reason, audited) returns them in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from gridmap.domain.masking import mask_address, mask_id_number, mask_name, mask_phone

__all__ = ["PERSONAL_FIELDS", "mask_frame", "mask_record", "mask_value"]

#: Personal field → its masking function (names as in the store and the frames): the one
#: masking table of every view, export (:mod:`gridmap.register.exports`) and log.
PERSONAL_FIELDS: dict[str, Callable[[str | None], str | None]] = {
    "name": mask_name,
    "id_number": mask_id_number,
    "phone": mask_phone,
    "address": mask_address,
    "hukou_address": mask_address,
    "disability_cert_no": mask_id_number,
    "assistance_person": mask_name,
    "assistance_phone": mask_phone,
    "first_contact_name": mask_name,
    "first_contact_phone": mask_phone,
    "household_name": mask_name,
    "household_id_number": mask_id_number,
    "household_names": mask_name,  # the register frame's list of household members' names
    "elder_signature": mask_name,  # 被探访人（签字） of a visit
}


def mask_value(field: str, value: Any) -> Any:
    """``value`` masked if ``field`` is personal, else unchanged (a list: each element masked)."""
    fn = PERSONAL_FIELDS.get(field)
    if fn is None or value is None or (isinstance(value, float) and pd.isna(value)):
        return value
    if isinstance(value, (list, tuple)):
        return [mask_value(field, v) for v in value]
    return fn(str(value))


def mask_record(record: Mapping[str, Any], unmasked: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``record`` with every personal field masked except those in ``unmasked``."""
    keep = set(unmasked)
    return {k: (v if k in keep else mask_value(k, v)) for k, v in record.items()}


def mask_frame(df: pd.DataFrame, unmasked: Iterable[str] = ()) -> pd.DataFrame:
    """A copy of ``df`` with the personal columns masked except those in ``unmasked``."""
    keep = set(unmasked)
    out = df.copy()
    for col in out.columns:
        if col in PERSONAL_FIELDS and col not in keep:
            out[col] = out[col].map(lambda v, c=col: mask_value(c, v))
    return out
