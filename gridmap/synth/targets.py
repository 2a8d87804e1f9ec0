"""Documented target proportions of the synthetic register (sources and assumptions).

Every number the generator draws from lives here, so the tests can check the
output against the same constants and a reader can see what was assumed.

Sources
-------
* 7th census (2020): Haidian had 3,133,469 residents; 18.4 % were 60 or over.
  Populations per street/town are in ``haidian/streets_population_2020.csv``.
* Haidian 2022 (registered residents): 605,000 aged 60+, 133,000 aged 80+,
  i.e. 80+ ≈ 22 % of the 60+ population.
* The programme document (海淀区特殊困难老年人探访关爱服务工作方案):
  categories 独居/空巢/失能/重残/计划生育特殊家庭/其他; 失能 levels 一级重度,
  二级中度, 三级轻度; 重残 = disability certificate grade 1–2 of any type or
  grade 3 of the intellectual (智力) or mental (精神) type; 一键式 terminals for
  80+ and 计生特殊 elders; devices for the economically poor (低保/特困);
  signed care station / home care bed elders are visited by the station.

Assumptions (no published per-programme statistics exist)
---------------------------------------------------------
* **Age.** The programme selects the old and frail, so the 80+ share among
  programme elders is set to :data:`TARGET_80_PLUS` = 38 % (vs 22 % in the
  whole 60+ population); the age bands are :data:`AGE_BANDS`.
* **Streets.** Elders are spread over the 29 streets in proportion to the
  2020 census population times :data:`STREET_WEIGHTS`: the old inner
  streets (built up in the 1950s–80s, with ageing work-unit compounds)
  weigh 1.3, the new north-western towns, whose population is young
  migrants and new estates, weigh 0.7, everyone else 1.0.
* **Household.** Elders who are 失能, 重残 or 计生特殊 qualify by that; the
  others qualify mostly by living alone or in an empty nest, and a few
  (:data:`P_OTHER_ONLY`) under 其他 (e.g. very old with a sick carer).
* Disability (失能) rises with age (:data:`P_DISABLED_BY_AGE`).

The expected marginal shares of the mixture are computed by
:func:`expected_shares` from the same constants (the tests compare with it).
"""

from __future__ import annotations

import numpy as np

#: Reference share of 60+ residents in Haidian (2020 census).
AGED_60_SHARE = 0.184
#: 80+ share of the whole 60+ population (2022: 133,000 / 605,000).
POPULATION_80_PLUS_SHARE = 133_000 / 605_000
#: 80+ share among programme elders (assumption, see module docstring).
TARGET_80_PLUS = 0.38

#: Age bands (lo, hi inclusive) and their probabilities among programme elders.
AGE_BANDS: list[tuple[int, int, float]] = [
    (60, 64, 0.10),
    (65, 69, 0.14),
    (70, 74, 0.17),
    (75, 79, 0.21),
    (80, 84, 0.19),
    (85, 89, 0.12),
    (90, 94, 0.055),
    (95, 104, 0.015),
]

#: P(female) under 80 and at 80+ (women outlive men).
P_FEMALE_UNDER_80 = 0.54
P_FEMALE_80_PLUS = 0.62

#: Old inner streets (weight 1.3) and new north-western towns (weight 0.7).
OLD_INNER_STREETS = ("万寿路街道", "羊坊店街道", "甘家口街道", "八里庄街道", "紫竹院街道",
                     "北下关街道", "海淀街道", "中关村街道", "花园路街道")
NEW_NORTHWEST_TOWNS = ("温泉镇", "西北旺镇", "苏家坨镇", "上庄镇")
INNER_WEIGHT = 1.3
NORTHWEST_WEIGHT = 0.7


def street_weight(name: str) -> float:
    """The documented weight of a street (1.3 inner, 0.7 north-western town, else 1.0)."""
    if name in OLD_INNER_STREETS:
        return INNER_WEIGHT
    if name in NEW_NORTHWEST_TOWNS:
        return NORTHWEST_WEIGHT
    return 1.0


#: Gamma shape of community weights inside a street (mean 1; smaller = more uneven).
COMMUNITY_WEIGHT_SHAPE = 4.0

#: P(失能) by age: under 80 / 80+.
P_DISABLED_BY_AGE = (0.15, 0.40)
#: 失能 levels: 重度 (一级), 中度 (二级), 轻度 (三级).
DISABILITY_LEVELS = {"severe": 0.30, "moderate": 0.35, "mild": 0.35}
#: 重残 (certificate grade 1–2 any type, grade 3 only 智力/精神).
P_SEVERELY_HANDICAPPED = 0.08
HANDICAP_GRADES = {1: 0.40, 2: 0.45, 3: 0.15}
#: Disability types of the certificate (code digit of the 残疾人证号: 1 视力 … 7 多重).
HANDICAP_TYPES_GRADE_1_2 = {"视力": 0.25, "听力": 0.12, "言语": 0.03, "肢体": 0.40,
                            "智力": 0.05, "精神": 0.08, "多重": 0.07}
HANDICAP_TYPES_GRADE_3 = {"智力": 0.45, "精神": 0.55}
HANDICAP_TYPE_CODES = {"视力": 1, "听力": 2, "言语": 3, "肢体": 4, "智力": 5, "精神": 6, "多重": 7}
#: 计划生育特殊家庭 (only child died = 80 %, or disabled grade 3+ = 20 %).
P_FAMILY_PLANNING_SPECIAL = 0.04
P_FP_CHILD_DIED = 0.80

#: Household of elders who qualify by 失能/重残/计生 (alone, empty nest, with family).
HOUSEHOLD_IF_QUALIFIED = (0.22, 0.40, 0.38)
#: Household of the others: alone, empty nest, or (rarely) with family under 其他.
HOUSEHOLD_OTHERWISE = (0.38, 0.54, 0.08)
P_OTHER_ONLY = HOUSEHOLD_OTHERWISE[2]

#: Number of children 0/1/2/3+ by age (under 80, 80+); 3+ means 3–5.
CHILDREN_UNDER_80 = (0.09, 0.60, 0.24, 0.07)
CHILDREN_80_PLUS = (0.06, 0.20, 0.30, 0.44)
#: P(spouse alive) by age band start 60/70/80/90.
P_SPOUSE = {60: 0.78, 70: 0.62, 80: 0.40, 90: 0.18}
#: Of living-alone elders with a spouse: the spouse lives elsewhere (care home, hospital).
#: (Living alone usually means widowed/divorced/never married.)
P_ALONE_HAS_SPOUSE = 0.05
#: Empty-nest elders 82+ with children who live with a child aged 60+ instead of a spouse.
P_EMPTY_NEST_WITH_OLD_CHILD = 0.12

#: Elders without children and without anyone living with them: they name a relative,
#: an heir, or nobody (then, by the document's rules as implemented in
#: gridmap.register.first_contact: no spouse → committee staff, else the street/committee names one).
FIRST_CONTACT_NO_CHILD = {"designated_relative": 0.60, "heir": 0.15, "community_designated": 0.25}

#: 低保 / 低收入 shares; 特困 only among elders without children (法定赡养人).
P_DIBAO = 0.04
P_LOW_INCOME = 0.04
P_TEKUN_IF_NO_CHILDREN = 0.10

#: Refuse visits (the document: visits only where the elder is willing); elders signed
#: with a care station or home bed accept its visits, so they are never refusers.
P_REFUSE = 0.07
#: Signed with a care station (签约驿站) or a home care bed (家庭照护床位).
P_SIGNED_STATION = 0.05
P_SIGNED_HOME_BED = 0.015

#: Living conditions (section 三): shares judged safe.
P_WATER_SAFE = 0.98
P_ELECTRICITY_SAFE = 0.93
P_HOUSING_SAFE = 0.96
#: Monthly household income (yuan): lognormal median and sigma; 低保/特困 much lower.
INCOME_MEDIAN = 5200.0
INCOME_SIGMA = 0.45
INCOME_MEDIAN_POOR = 1500.0

#: Lives at the place of household registration (人户一致).
P_LIVES_AT_HUKOU = 0.88
#: Phone: mobile (else Beijing landline 010-xxxxxxxx).
P_MOBILE = 0.62
#: Family doctor signed.
P_FAMILY_DOCTOR = 0.65

#: Devices: 一键式 terminal installed for 80+ / 计生 elders; smoke alarm; fire kit;
#: health monitor for 低保/特困 (district provides smart products to the poor).
P_TERMINAL_IF_ENTITLED = 0.85
P_TERMINAL_OTHERS = 0.08
P_SMOKE_ALARM = 0.60
P_FIRE_KIT = 0.30
P_HEALTH_MONITOR_POOR = 0.70
P_DEVICE_FAULTY = 0.03

#: Geocode quality of the synthetic homes: exact / building / community.
GEOCODE_QUALITY = {"exact": 0.10, "building": 0.85, "community": 0.05}

#: ID region codes: Haidian, other Beijing districts, other provinces.
ID_REGION_SHARES = (0.55, 0.25, 0.20)
OTHER_BEIJING_REGIONS = ("110101", "110102", "110105", "110106", "110107", "110109", "110111", "110112")
OTHER_PROVINCE_REGIONS = ("130102", "130602", "370102", "410102", "210102", "140105", "320102",
                          "120101", "420102", "510104", "130203", "370202")

# ------------------------------------------------------------- stewards, visits

#: Elders per 服务管家 of one care station (at least one per station).
ELDERS_PER_SERVICE_STEWARD = 120
#: Grid capacity (elders per grid) used when the demo rebuilds grids from the register.
GRID_CAPACITY = 60
#: Weeks of visit history.
HISTORY_WEEKS = 8
#: Willing elders: mode shares of the weekly visit (in-home, phone, video).
VISIT_MODES_WILLING = {"in_home": 0.60, "phone": 0.30, "video": 0.10}
#: Share of elder-weeks with no visit (random gaps).
P_WEEK_MISSED = 0.06
#: Elders with a long gap (3 consecutive weeks, e.g. in hospital).
P_LONG_GAP = 0.02
#: Communities whose visit steward lost one whole week (leave, illness).
P_STEWARD_WEEK_OFF = 0.03
#: Refusers get a phone call about every 4 weeks (the monthly minimum).
REFUSER_INTERVAL_WEEKS = 4
#: Visits recorded on paper and entered 3–14 days late.
P_LATE_ENTRY = 0.03
#: Answers to each safety question (gas, water heating, electricity) of a visit that sees the home.
#: Every unsafe or fairly safe answer opens a hazard by the rules (``hazards_from_visit``), so the
#: shares are those of homes where a visit finds a problem: about 2 % of such visits find one
#: (assumption for a programme that has already run joint inspections, 三(四)1).
SAFETY_ANSWERS = {"safe": 0.993, "fairly_safe": 0.005, "unsafe": 0.002}
#: Visits that record a service need (老年人服务需求), which the rules refer (转介, 五.2).
P_VISIT_NEED = 0.015
#: Visits that find a danger to life (emergency referral to the first contact and the community).
P_VISIT_EMERGENCY = 0.0004


def _age_band_probs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.array([b[0] for b in AGE_BANDS])
    hi = np.array([b[1] for b in AGE_BANDS])
    p = np.array([b[2] for b in AGE_BANDS], dtype=float)
    return lo, hi, p / p.sum()


def expected_shares() -> dict[str, float]:
    """Expected marginal shares of the generator's mixture (what the tests check against).

    Returns
    -------
    dict
        ``age_80_plus``, ``disabled``, ``severely_handicapped``,
        ``family_planning_special``, ``living_alone``, ``empty_nest``,
        ``other_only``, ``refuse``, ``signed``, ``female``.
    """
    lo, _, p = _age_band_probs()
    old = lo >= 80
    p80 = float(p[old].sum())
    p_dis = (1 - p80) * P_DISABLED_BY_AGE[0] + p80 * P_DISABLED_BY_AGE[1]
    out = {"age_80_plus": p80, "disabled": p_dis, "severely_handicapped": P_SEVERELY_HANDICAPPED,
           "family_planning_special": P_FAMILY_PLANNING_SPECIAL}
    alone = nest = other = 0.0
    for young, share in ((True, 1 - p80), (False, p80)):
        pd_ = P_DISABLED_BY_AGE[0] if young else P_DISABLED_BY_AGE[1]
        q = 1 - (1 - pd_) * (1 - P_SEVERELY_HANDICAPPED) * (1 - P_FAMILY_PLANNING_SPECIAL)
        alone += share * (q * HOUSEHOLD_IF_QUALIFIED[0] + (1 - q) * HOUSEHOLD_OTHERWISE[0])
        nest += share * (q * HOUSEHOLD_IF_QUALIFIED[1] + (1 - q) * HOUSEHOLD_OTHERWISE[1])
        other += share * (1 - q) * HOUSEHOLD_OTHERWISE[2]
    out.update(living_alone=alone, empty_nest=nest, other_only=other,
               refuse=P_REFUSE * (1 - P_SIGNED_STATION - P_SIGNED_HOME_BED),
               signed=P_SIGNED_STATION + P_SIGNED_HOME_BED,
               female=(1 - p80) * P_FEMALE_UNDER_80 + p80 * P_FEMALE_80_PLUS)
    return out
