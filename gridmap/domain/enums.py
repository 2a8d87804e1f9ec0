"""Enumerations of the programme, each value with its Chinese label from the document.

Values are short English codes (stored in the database and JSON); ``label``
gives the Chinese term shown in the UI and spreadsheets, and ``from_label``
parses either form.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class _Labelled(StrEnum):
    """A StrEnum whose members carry a Chinese label (``_labels`` mapping)."""

    @property
    def label(self) -> str:
        """The Chinese term for this value."""
        return _LABELS[type(self).__name__][self.value]

    @classmethod
    def from_label(cls, text: str) -> Self:
        """Parse a code or a Chinese label (surrounding spaces ignored).

        Raises
        ------
        ValueError
            If ``text`` is neither a code nor a label of this enumeration.
        """
        t = str(text).strip()
        for member in cls:
            if t == member.value or t == member.label:
                return member
        raise ValueError(f"{t!r} is not a valid {cls.__name__}")


class Category(_Labelled):
    """Kinds of older people with special difficulties (服务人群); an elder may have several."""

    LIVING_ALONE = "living_alone"
    EMPTY_NEST = "empty_nest"
    DISABLED = "disabled"
    SEVERELY_HANDICAPPED = "severely_handicapped"
    FAMILY_PLANNING_SPECIAL = "family_planning_special"
    OTHER = "other"


class DisabilityLevel(_Labelled):
    """失能等级 from the elder capability assessment (一级重度, 二级中度, 三级轻度)."""

    SEVERE = "severe"
    MODERATE = "moderate"
    MILD = "mild"


class WelfareStatus(_Labelled):
    """低保特困情况: subsistence allowance, extreme poverty support, low income."""

    DIBAO = "dibao"
    TEKUN = "tekun"
    LOW_INCOME = "low_income"
    HARDSHIP = "hardship"  # 生活困难 (issue 20: a value the departments use)


class ElderStatus(_Labelled):
    """Where an elder stands in the programme."""

    ACTIVE = "active"
    MOVED_OUT = "moved_out"
    IN_HOSPITAL = "in_hospital"
    DECEASED = "deceased"
    EXITED = "exited"


class GeocodeQuality(_Labelled):
    """How precisely a location is known; compares best > worst.

    ``GeocodeQuality.BUILDING > GeocodeQuality.COMMUNITY`` is true, so
    ``q >= GeocodeQuality.COMMUNITY`` means "community level or better".
    """

    EXACT = "exact"
    BUILDING = "building"
    COMMUNITY = "community"
    STREET = "street"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Precision rank: 4 for exact down to 0 for failed."""
        return _GEOCODE_RANK[self.value]

    @property
    def label_zh(self) -> str:
        """The Chinese label (精确坐标/楼栋/社区/街道/失败)."""
        return self.label

    def _cmp(self, other: object) -> int | None:
        if isinstance(other, str) and str(other) in _GEOCODE_RANK:
            return _GEOCODE_RANK[self.value] - _GEOCODE_RANK[str(other)]
        return None

    def __lt__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c < 0

    def __le__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c <= 0

    def __gt__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c > 0

    def __ge__(self, other: object) -> bool:
        c = self._cmp(other)
        return NotImplemented if c is None else c >= 0

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    __hash__ = str.__hash__


_GEOCODE_RANK = {"exact": 4, "building": 3, "community": 2, "street": 1, "failed": 0}


class StewardKind(_Labelled):
    """The two stewards of the 双管家 system."""

    VISIT = "visit"
    SERVICE = "service"


class TravelMode(_Labelled):
    """How a steward travels between homes."""

    WALK = "walk"
    BIKE = "bike"
    EBIKE = "ebike"
    CAR = "car"


class FirstContactRule(_Labelled):
    """Which rule of the document chose an elder's first contact (第一联系人)."""

    CHILD = "child"
    DESIGNATED_RELATIVE = "designated_relative"
    HEIR = "heir"
    COMMUNITY_DESIGNATED = "community_designated"
    COMMUNITY_STAFF = "community_staff"


class StationKind(_Labelled):
    """Service points on the map."""

    DISTRICT_CARE_CENTRE = "district_care_centre"
    STREET_CARE_CENTRE = "street_care_centre"
    CARE_STATION = "care_station"
    HEALTH_CENTRE = "health_centre"
    HEALTH_STATION = "health_station"
    CLINIC = "clinic"


class DeviceKind(_Labelled):
    """Home-safety and monitoring devices."""

    SMOKE_ALARM = "smoke_alarm"
    EMERGENCY_TERMINAL = "emergency_terminal"
    FIRE_KIT = "fire_kit"
    HEALTH_MONITOR = "health_monitor"
    OTHER = "other"
    HOME_SAFETY = "home_safety"  # 民政 居家安全智能产品 (issue 17)


class DeviceStatus(_Labelled):
    """State of an installed device."""

    REQUESTED = "requested"
    INSTALLED = "installed"
    FAULTY = "faulty"
    REMOVED = "removed"
    NEEDED = "needed"  # issue 17: entitled, not yet asked for
    REFUSED = "refused"  # issue 17: the elder declined it


class VisitMode(_Labelled):
    """探访方式 of the record form, plus remote monitoring named in the document."""

    PHONE = "phone"
    IN_HOME = "in_home"
    VIDEO = "video"
    REMOTE_MONITORING = "remote_monitoring"
    OTHER = "other"


class VisitorRole(_Labelled):
    """Who made a visit: the two stewards and the document's other service forces."""

    VISIT_STEWARD = "visit_steward"
    SERVICE_STEWARD = "service_steward"
    VOLUNTEER = "volunteer"
    SOCIAL_WORKER = "social_worker"
    PROPERTY_STAFF = "property_staff"
    FAMILY_DOCTOR = "family_doctor"
    NEIGHBOUR_RELATIVE = "neighbour_relative"
    OTHER = "other"


class Change(_Labelled):
    """无变化 / 较好 / 较差 answers of section 五."""

    UNCHANGED = "unchanged"
    BETTER = "better"
    WORSE = "worse"


class IllnessChange(_Labelled):
    """疾病状况: 无变化 / 严重 / 转好."""

    UNCHANGED = "unchanged"
    SERIOUS = "serious"
    IMPROVED = "improved"


class FamilyChange(_Labelled):
    """家庭人口: 无变化 / 增加 / 减少."""

    UNCHANGED = "unchanged"
    INCREASED = "increased"
    DECREASED = "decreased"


class Safety(_Labelled):
    """安全 / 较安全 / 不安全 answers (gas, water heating, electricity)."""

    SAFE = "safe"
    FAIRLY_SAFE = "fairly_safe"
    UNSAFE = "unsafe"


class Satisfaction(_Labelled):
    """老年人服务满意度评价."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"


class HazardKind(_Labelled):
    """Kinds of home-safety hazard (房屋、设施、用气、消防、用电)."""

    GAS = "gas"
    WATER_HEATING = "water_heating"
    ELECTRICITY = "electricity"
    FIRE = "fire"
    HOUSING = "housing"
    FACILITY = "facility"
    HYGIENE = "hygiene"
    OTHER = "other"


class Severity(_Labelled):
    """Hazard severity."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class HazardStatus(_Labelled):
    """Hazard life-cycle (四.(四)1 化解): 待处理 → 整改中 → 已整改 / 无法整改 / 已移交.

    ``fixed``, ``cannot_fix`` and ``transferred`` are terminal (:attr:`terminal`);
    a later visit finding the same problem reopens a fixed or unfixable hazard.
    ``CLOSED`` is an alias of ``FIXED`` kept for older code (the rows stored as
    ``closed`` before migration 0007 are ``fixed`` now).
    """

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    FIXED = "fixed"
    CANNOT_FIX = "cannot_fix"
    TRANSFERRED = "transferred"
    CLOSED = "fixed"  # alias of FIXED (before 0007: closed)

    @property
    def terminal(self) -> bool:
        """True for 已整改, 无法整改 and 已移交 (closed_on is set)."""
        return self.value in ("fixed", "cannot_fix", "transferred")

    @property
    def active(self) -> bool:
        """True for 待处理 and 整改中: the hazard still counts (extra visits, open counts)."""
        return self.value in ("open", "in_progress")


class ReferralStatus(_Labelled):
    """Referral (转介) life-cycle: 待受理 → 已受理 → 处理中 → 已办结.

    Escalation is a flag (``referral.escalated_at``), not a status: an escalated
    referral keeps its status and is counted once.
    """

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"

    @property
    def terminal(self) -> bool:
        """True for 已办结."""
        return self.value == "closed"


class ReferralTarget(_Labelled):
    """Where a need is referred to by the document's rules."""

    STREET_OF_RESIDENCE = "street_of_residence"
    FIRST_CONTACT = "first_contact"
    COMMUNITY = "community"
    SERVICE_PROVIDER = "service_provider"
    HEALTH = "health"
    SERVICE_STEWARD = "service_steward"
    OTHER = "other"


class EventKind(_Labelled):
    """Calendar events that change the visit rules."""

    EXTREME_WEATHER = "extreme_weather"
    HOLIDAY = "holiday"
    OTHER = "other"


class Role(_Labelled):
    """User roles, each scoped to an area."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    SERVICE = "service"
    PLANNER = "planner"
    INSPECTOR = "inspector"


class Source(_Labelled):
    """Departments whose ledgers feed the register."""

    CIVIL_AFFAIRS = "civil_affairs"
    HEALTH = "health"
    DISABLED_FEDERATION = "disabled_federation"
    MEDICAL_INSURANCE = "medical_insurance"
    STREET = "street"
    SYNTHETIC = "synthetic"
    MANUAL = "manual"
    HUMAN_RESOURCES = "human_resources"  # 区人社局 (issue 20)
    DATA_BUREAU = "data_bureau"  # 区数据局: exports of the big-data platform (大数据平台)


class ChangeKind(_Labelled):
    """Kinds of write recorded in the change feed (``change_log``) that every server process follows."""

    IMPORT = "import"
    MONTHLY_UPDATE = "monthly_update"
    VISIT = "visit"
    HAZARD = "hazard"
    REFERRAL = "referral"
    FOLLOWUP = "followup"
    CALENDAR = "calendar"
    PLAN = "plan"
    GRID = "grid"
    STEWARD = "steward"
    ELDER = "elder"
    USER = "user"


_LABELS: dict[str, dict[str, str]] = {
    "Category": {
        "living_alone": "独居",
        "empty_nest": "空巢",
        "disabled": "失能",
        "severely_handicapped": "重残",
        "family_planning_special": "计划生育特殊家庭",
        "other": "其他",
    },
    "DisabilityLevel": {"severe": "重度", "moderate": "中度", "mild": "轻度"},
    "WelfareStatus": {"dibao": "低保", "tekun": "特困", "low_income": "低收入", "hardship": "生活困难"},
    "ElderStatus": {
        "active": "在册",
        "moved_out": "迁出",
        "in_hospital": "住院",
        "deceased": "去世",
        "exited": "退出",
    },
    "GeocodeQuality": {
        "exact": "精确坐标",
        "building": "楼栋",
        "community": "社区",
        "street": "街道",
        "failed": "失败",
    },
    "StewardKind": {"visit": "探访管家", "service": "服务管家"},
    "TravelMode": {"walk": "步行", "bike": "自行车", "ebike": "电动自行车", "car": "汽车"},
    "FirstContactRule": {
        "child": "子女",
        "designated_relative": "老人指定的其他亲属",
        "heir": "继承人",
        "community_designated": "街镇、村（居）委会明确",
        "community_staff": "村（居）委会工作人员",
    },
    "StationKind": {
        "district_care_centre": "区养老服务指导中心",
        "street_care_centre": "街镇区域养老服务中心",
        "care_station": "社区养老服务驿站",
        "health_centre": "社区卫生服务中心",
        "health_station": "社区卫生服务站",
        "clinic": "诊所",
    },
    "DeviceKind": {
        "smoke_alarm": "联网烟感报警器",
        "emergency_terminal": "一键式智能终端",
        "fire_kit": "消防四件套",
        "health_monitor": "健康监测设备",
        "other": "其他设备",
        "home_safety": "居家安全智能产品",
    },
    "DeviceStatus": {"requested": "已申请", "installed": "已安装", "faulty": "故障", "removed": "已拆除",
                     "needed": "待配备", "refused": "拒绝安装"},
    "VisitMode": {
        "phone": "电话问候",
        "in_home": "上门探访",
        "video": "互联网音视频",
        "remote_monitoring": "远程监测",
        "other": "其他",
    },
    "VisitorRole": {
        "visit_steward": "探访管家",
        "service_steward": "服务管家",
        "volunteer": "志愿者",
        "social_worker": "社工",
        "property_staff": "物业人员",
        "family_doctor": "家庭医生",
        "neighbour_relative": "邻里亲属",
        "other": "其他",
    },
    "Change": {"unchanged": "无变化", "better": "较好", "worse": "较差"},
    "IllnessChange": {"unchanged": "无变化", "serious": "严重", "improved": "转好"},
    "FamilyChange": {"unchanged": "无变化", "increased": "增加", "decreased": "减少"},
    "Safety": {"safe": "安全", "fairly_safe": "较安全", "unsafe": "不安全"},
    "Satisfaction": {
        "very_satisfied": "非常满意",
        "satisfied": "满意",
        "neutral": "基本满意",
        "dissatisfied": "不满意",
    },
    "HazardKind": {
        "gas": "燃气安全",
        "water_heating": "水暖安全",
        "electricity": "用电安全",
        "fire": "消防安全",
        "housing": "房屋安全",
        "facility": "设施安全",
        "hygiene": "卫生环境",
        "other": "其他",
    },
    "Severity": {"low": "低", "medium": "中", "high": "高", "critical": "危及生命"},
    "HazardStatus": {
        "open": "待处理",
        "in_progress": "整改中",
        "fixed": "已整改",
        "cannot_fix": "无法整改",
        "transferred": "已移交",
    },
    "ReferralStatus": {"open": "待受理", "acknowledged": "已受理", "in_progress": "处理中", "closed": "已办结"},
    "ReferralTarget": {
        "street_of_residence": "经常居住地街镇",
        "first_contact": "第一联系人",
        "community": "村（居）委会",
        "service_provider": "养老服务机构",
        "health": "卫生健康部门",
        "service_steward": "服务管家",
        "other": "其他",
    },
    "EventKind": {"extreme_weather": "极端天气", "holiday": "传统节假日", "other": "其他"},
    "Role": {
        "district": "区民政局",
        "street": "街镇督导",
        "community": "社区探访管家",
        "service": "服务管家",
        "planner": "规划人员",
        "inspector": "只读检查",
    },
    "Source": {
        "civil_affairs": "民政",
        "health": "卫健",
        "disabled_federation": "残联",
        "medical_insurance": "医保",
        "street": "街镇",
        "synthetic": "合成数据",
        "manual": "手工录入",
        "human_resources": "人社局",
        "data_bureau": "数据局",
    },
    "ChangeKind": {
        "import": "台账导入",
        "monthly_update": "月度更新",
        "visit": "探访记录",
        "hazard": "风险隐患",
        "referral": "转介",
        "followup": "跟进处置",
        "calendar": "日历事件",
        "plan": "探访计划",
        "grid": "网格调整",
        "steward": "管家调整",
        "elder": "老人信息",
        "user": "用户与权限",
    },
}
