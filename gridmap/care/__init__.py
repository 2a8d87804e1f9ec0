"""Issue 17 part B: who else works on an elder besides the visit steward.

* :mod:`gridmap.care.rules` — the YAML sections ``devices``, ``stations``, ``family_doctors`` and
  ``key_survey`` checked into plain dataclasses;
* :mod:`gridmap.care.domain` — pure functions: the 驿站 view (四(二)), the family-doctor hand-over
  (三(五)2) and the monthly 重点摸排 list (二.1, 二.2);
* :mod:`gridmap.care.store` — the one module with their SQL; :mod:`gridmap.care.cli` — the commands.

The devices (三(五)2, 四(四)2) live in :mod:`gridmap.devices`.
"""
