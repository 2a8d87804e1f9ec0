"""Where an elder is served: the street of usual residence (经常居住地) when it differs from the hukou.

The document (工作任务 一.3): "对于人户分离的探访关爱服务对象，为便于提供定期服务，一般由经常居住地的
街镇统筹开展巡访关爱服务" — an elder who does not live where the household is
registered (人户分离) is served by the street where they usually live.

The register keeps both places:

* ``Elder.street_id`` / ``Elder.community_id`` / ``Elder.address`` — the usual residence
  (经常居住地), the place every assignment uses: the grid, the visit steward (探访管家)
  and the service steward (服务管家), visit routes, and the routing of needs of
  特困 and 计划生育特殊家庭 elders to the street of residence (工作任务 四.(二)2:
  "转介至经常居住地街镇");
* ``Elder.hukou_street`` / ``Elder.hukou_address`` — the household registration (户籍),
  kept for the departments' ledgers and for matching records, never for assignment.

This module is pure domain code.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridmap.domain.enums import ReferralTarget

#: The rule, in the document's words.
RULE_TEXT_ZH = (
    "对于人户分离的探访关爱服务对象，为便于提供定期服务，一般由经常居住地的街镇统筹开展巡访关爱服务。"
)
#: The rule in English.
RULE_TEXT_EN = (
    "An elder who does not live where the household is registered (人户分离) is served by "
    "the street (town) of usual residence (经常居住地)."
)
#: The referral rule of 工作任务 四.(二)2.
REFERRAL_RULE_TEXT_ZH = (
    "对特殊困难老年人中的城乡特困老年人、计划生育特殊家庭老年人，探访关爱中获取的老年人服务需求信息，"
    "转介至经常居住地街镇；对其他特殊困难老年人，应及时告知老年人的探访关爱第一联系人。"
)


@dataclass(frozen=True)
class ServingDecision:
    """The street that serves an elder, and why."""

    street: str | None
    separated: bool  # 人户分离
    inconsistent: bool  # the record contradicts itself (says "lives at hukou" but streets differ)
    reason_zh: str
    reason_en: str


def _clean(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    t = str(value).strip()
    return t or None


def decide_serving_street(
    hukou_street: str | None, residence_street: str | None, lives_at_hukou: bool | None
) -> ServingDecision:
    """Decide the serving street with the reason (see :func:`serving_street`)."""
    hukou, home = _clean(hukou_street), _clean(residence_street)
    if home is not None:
        separated = lives_at_hukou is False or (hukou is not None and hukou != home)
        inconsistent = lives_at_hukou is True and hukou is not None and hukou != home
        if separated:
            zh = f"人户分离（户籍{hukou or '未知'}，经常居住地{home}），由经常居住地街镇{home}提供服务"
            en = f"registered in {hukou or 'unknown'} but lives in {home}: served by {home}"
        else:
            zh, en = f"人户一致，由{home}提供服务", f"lives where registered: served by {home}"
        if inconsistent:
            zh += "；登记为“居住在户籍所在地”但两地街道不同，请核实"
            en += "; recorded as living at the hukou but the streets differ, please check"
        return ServingDecision(home, separated, inconsistent, zh, en)
    if lives_at_hukou is True and hukou is not None:
        return ServingDecision(hukou, False, False, f"居住在户籍所在地，由{hukou}提供服务",
                               f"lives where registered: served by {hukou}")
    return ServingDecision(
        None, lives_at_hukou is False, False,
        "经常居住地街道未知，无法确定服务街镇，请核实居住地址",
        "the street of usual residence is unknown: cannot tell which street serves the elder",
    )


def serving_street(
    hukou_street: str | None, residence_street: str | None, lives_at_hukou: bool | None
) -> str | None:
    """The street that serves an elder: the street of usual residence.

    Parameters
    ----------
    hukou_street
        Street of household registration (户籍所在街道).
    residence_street
        Street of usual residence (经常居住地街道).
    lives_at_hukou
        是否居住在户籍所在地 as recorded (``None`` if unknown).

    Returns
    -------
    str or None
        ``residence_street`` whenever it is known (人户分离 or not); the hukou street
        only when the elder lives there and the residence street is not filled in;
        ``None`` when the residence is unknown and the elder does not live at the hukou
        (the hukou street never serves an elder who lives elsewhere).
    """
    return decide_serving_street(hukou_street, residence_street, lives_at_hukou).street


def referral_target(*, tekun: bool, family_planning_special: bool) -> ReferralTarget:
    """Where needs found at a visit go (工作任务 四.(二)2).

    特困 and 计划生育特殊家庭 elders: to the street of usual residence; others: the
    first contact. (Life-threatening emergencies go to the first contact *and* the
    community whatever the category — handled by the referral workflow.)
    """
    if tekun or family_planning_special:
        return ReferralTarget.STREET_OF_RESIDENCE
    return ReferralTarget.FIRST_CONTACT


__all__ = [
    "REFERRAL_RULE_TEXT_ZH", "RULE_TEXT_EN", "RULE_TEXT_ZH", "ServingDecision",
    "decide_serving_street", "referral_target", "serving_street",
]
