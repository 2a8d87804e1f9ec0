"""Masking of personal data: ID numbers, phones, names and exact addresses.

Masked by default in every view, export and log (the document orders that the
elders' privacy be protected); unmasking is a permission that is audited.
"""

from __future__ import annotations

import re

#: Chinese numerals (small and financial forms) that count as a house number before a house word.
CJK_NUMERALS = "〇零一二三四五六七八九十百千两壹贰叁肆伍陆柒捌玖拾佰仟廿卅幺"
#: Words that follow a building, unit, floor, room or courtyard number (longest first).
HOUSE_WORDS = ("号楼", "号院", "单元", "号", "楼", "栋", "幢", "座", "门", "层", "室", "户", "院", "排",
               "巷", "弄", "组")
#: Where the community-level part of an address ends (the rest is the house).
_COMMUNITY_END = re.compile(r"社区(?:居民委员会|居委会)?|居民委员会|居委会|村民委员会|村委会")
_LETTERS = "A-Za-zＡ-Ｚａ-ｚ"
#: A numeral run (Chinese, letters, or any digit already folded to ``0``) followed by a house word.
_HOUSE_NUMBER = re.compile(
    rf"[{CJK_NUMERALS}{_LETTERS}0][{CJK_NUMERALS}{_LETTERS}0\-－—_#＃·.]*(?:{'|'.join(HOUSE_WORDS)})")
#: Characters that belong to a house number just before where it was found (``甲``3号, 十3号, B3).
_NUMBER_LEAD = set(CJK_NUMERALS) | set("甲乙丙丁第#＃-－—_·.") | {chr(c) for c in range(0x41, 0x5B)} \
    | {chr(c) for c in range(0x61, 0x7B)} | {chr(c) for c in range(0xFF21, 0xFF3B)} \
    | {chr(c) for c in range(0xFF41, 0xFF5B)} | {" ", "\u3000"}


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


def _is_digit(ch: str) -> bool:
    """A digit of any script that is not a Chinese character: 3, ３, ①, Ⅲ, ³…"""
    return ch.isnumeric() and not ("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"
                                   or ch >= "\U00020000" or ch in CJK_NUMERALS)


def house_number_start(value: str) -> int | None:
    """Where the house-number part of an address starts, or None when it has none.

    That is the first digit of any script (Arabic ``3``, full-width ``３``,
    circled ``③``…) or the first run of Chinese numerals or letters followed
    by a building/unit/floor/room/courtyard word (``十三号楼``, ``二单元``,
    ``五零一室``, ``三号院``, ``A座``), moved back over what still belongs to
    that number (the ``甲`` of ``甲3号``, the ``第`` of ``第三排``, the ``十`` of ``十3号楼``). Chinese
    numerals inside place names (``五道口``, ``八里庄``, ``西三旗``) are not
    followed by such a word and do not count.
    """
    folded = "".join("0" if _is_digit(ch) else ch for ch in value)
    cuts = [i for i in (folded.find("0"),) if i >= 0]
    m = _HOUSE_NUMBER.search(folded)
    if m is not None:
        cuts.append(m.start())
    if not cuts:
        return None
    cut = min(cuts)
    while cut > 0 and value[cut - 1] in _NUMBER_LEAD:
        cut -= 1
    return cut


def mask_address(value: str | None) -> str | None:
    """Drop the house: ``…知春里社区十三号楼二单元五零一室`` → ``…知春里社区****``.

    Everything after the community (``社区``, ``居委会``, ``村委会``) is masked,
    and so is everything from the house number on (:func:`house_number_start`:
    Arabic, full-width, other-script and Chinese numerals with their building,
    unit, room and courtyard words) when that comes first, e.g.
    ``北京市海淀区中关村大街２７号`` → ``北京市海淀区中关村大街****``. An address
    with neither is returned as it is. Masking a masked address changes nothing.
    """
    if not value:
        return value
    v = str(value).strip()
    cut = house_number_start(v)
    end = _COMMUNITY_END.search(v, 0, len(v) if cut is None else cut)
    if end is not None and end.end() < len(v):
        cut = end.end()
    if cut is None:
        return v
    return v[:cut] + "****"
