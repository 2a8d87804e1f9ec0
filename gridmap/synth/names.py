"""Synthetic Chinese names and phone numbers (vectorised; no real persons).

Surnames follow the most common Chinese surnames with rough frequencies;
given names are drawn from characters typical of people born 1920–1965
(one or two characters). Phones are valid mainland mobile numbers
(``1[3-9]\\d{9}``) or Beijing landlines (``010-\\d{8}``).
"""

from __future__ import annotations

import numpy as np

#: Common surnames with relative weights (approximate national frequencies, %).
SURNAMES: dict[str, float] = {
    "王": 7.1, "李": 7.0, "张": 6.7, "刘": 5.4, "陈": 4.5, "杨": 3.1, "赵": 2.3, "黄": 2.2,
    "周": 2.1, "吴": 2.0, "徐": 1.7, "孙": 1.5, "胡": 1.3, "朱": 1.3, "高": 1.3, "林": 1.2,
    "何": 1.2, "郭": 1.2, "马": 1.1, "罗": 0.9, "梁": 0.9, "宋": 0.8, "郑": 0.8, "谢": 0.7,
    "韩": 0.7, "唐": 0.7, "冯": 0.7, "于": 0.6, "董": 0.6, "萧": 0.3, "程": 0.6, "曹": 0.6,
    "袁": 0.5, "邓": 0.5, "许": 0.5, "傅": 0.4, "沈": 0.4, "曾": 0.4, "彭": 0.4, "吕": 0.4,
    "苏": 0.4, "卢": 0.4, "蒋": 0.4, "蔡": 0.4, "贾": 0.3, "丁": 0.3, "魏": 0.3, "薛": 0.3,
    "叶": 0.3, "阎": 0.3, "余": 0.3, "潘": 0.3, "杜": 0.3, "戴": 0.3, "夏": 0.3, "钟": 0.3,
    "汪": 0.3, "田": 0.3, "任": 0.3, "姜": 0.3, "范": 0.3, "方": 0.3, "石": 0.3, "姚": 0.3,
    "谭": 0.2, "廖": 0.2, "邹": 0.2, "熊": 0.2, "金": 0.2, "陆": 0.2, "郝": 0.2, "孔": 0.2,
    "白": 0.2, "崔": 0.2, "康": 0.2, "毛": 0.2, "邱": 0.2, "秦": 0.2, "江": 0.2, "史": 0.2,
    "顾": 0.2, "侯": 0.2, "邵": 0.2, "孟": 0.2, "龙": 0.2, "万": 0.2, "段": 0.2, "雷": 0.2,
    "钱": 0.2, "汤": 0.2, "尹": 0.2, "黎": 0.2, "易": 0.2, "常": 0.2, "武": 0.2, "乔": 0.2,
    "贺": 0.2, "赖": 0.1, "龚": 0.1, "文": 0.1, "庞": 0.1, "樊": 0.1, "兰": 0.1, "殷": 0.1,
    "齐": 0.1, "牛": 0.1, "祁": 0.1, "关": 0.05, "欧阳": 0.05, "司马": 0.02, "诸葛": 0.01,
}

_MALE_1 = list("国建志文明永德学宝振玉庆海金福长春成俊华平立英秀祥保中树广东兴家")
_MALE_2 = list("华民强国明林生军杰伟山忠义才顺发田荣亮清新昌斌军泉勇武胜利贵")
_FEMALE_1 = list("秀淑桂玉凤兰金素丽翠慧美月春雪红宝文彩惠瑞桂爱淑静书")
_FEMALE_2 = list("英兰珍芳华荣琴梅云霞芝贞娥花敏清珠凤琳娟香莲芬仙秀萍")
_YOUNG_MALE = list("伟磊涛鹏军勇斌强浩宇杰东峰刚辉亮明晨")
_YOUNG_FEMALE = list("静丽艳娜燕敏婷颖洁雪琳蕾倩晶佳萍玲")

_MOBILE_PREFIXES = np.array([
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "176", "177", "178", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "191", "198", "199",
])


def surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` surnames by frequency."""
    keys = np.array(list(SURNAMES))
    w = np.array(list(SURNAMES.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=w / w.sum())]


def given_names(rng: np.random.Generator, female: np.ndarray, *, young: np.ndarray | None = None) -> np.ndarray:
    """Given names (1 or 2 characters) by sex; ``young`` marks people born after ~1965."""
    n = len(female)
    young = np.zeros(n, dtype=bool) if young is None else np.asarray(young, dtype=bool)
    m1, m2 = np.array(_MALE_1), np.array(_MALE_2)
    f1, f2 = np.array(_FEMALE_1), np.array(_FEMALE_2)
    ym, yf = np.array(_YOUNG_MALE), np.array(_YOUNG_FEMALE)
    a = np.where(female, f1[rng.integers(0, len(f1), n)], m1[rng.integers(0, len(m1), n)])
    b = np.where(female, f2[rng.integers(0, len(f2), n)], m2[rng.integers(0, len(m2), n)])
    a = np.where(young, np.where(female, yf[rng.integers(0, len(yf), n)], ym[rng.integers(0, len(ym), n)]), a)
    one = rng.random(n) < np.where(young, 0.45, 0.15)
    return np.where(one, b, np.char.add(a.astype(str), b.astype(str)))


def full_names(rng: np.random.Generator, female: np.ndarray, *, young: np.ndarray | None = None,
               surname: np.ndarray | None = None) -> np.ndarray:
    """Surname + given name; ``surname`` fixes the surname (e.g. a son's)."""
    s = surnames(rng, len(female)) if surname is None else np.asarray(surname)
    return np.char.add(s.astype(str), given_names(rng, female, young=young).astype(str))


def phones(rng: np.random.Generator, n: int, p_mobile: float) -> np.ndarray:
    """Mainland mobile numbers or Beijing landlines (``010-`` + 8 digits starting 6 or 8)."""
    mobile = rng.random(n) < p_mobile
    pre = _MOBILE_PREFIXES[rng.integers(0, len(_MOBILE_PREFIXES), n)]
    tail = rng.integers(0, 100_000_000, n)
    mob = np.char.add(pre.astype(str), np.char.zfill(tail.astype(str), 8))
    first = np.where(rng.random(n) < 0.6, "6", "8")
    land = np.char.add(np.char.add("010-", first), np.char.zfill(rng.integers(0, 10_000_000, n).astype(str), 7))
    return np.where(mobile, mob, land)


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mainland mobile numbers only (children, relatives, stewards)."""
    return phones(rng, n, 1.0)
