"""ORM models of the programme: admin areas, the register, stewards, visits and follow-up.

SQLAlchemy 2 typed declarative models. Geometries are shapely objects in
EPSG:4326 (:class:`~gridmap.store.types.GeometryType`); enumerations are the
StrEnums of :mod:`gridmap.domain.enums` stored as short codes. Elders and
visits carry a ``version`` column: a save based on a stale copy is refused
(optimistic locking). Every change to a register record is written to
``register_change`` by :mod:`gridmap.store.history`; the audit log is
append-only (enforced by triggers on both backends, see :mod:`gridmap.store.db`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import shapely
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gridmap.domain.enums import (
    Category,
    Change,
    ChangeKind,
    DeviceKind,
    DeviceStatus,
    DisabilityLevel,
    ElderStatus,
    EventKind,
    FamilyChange,
    FirstContactRule,
    GeocodeQuality,
    HazardKind,
    HazardStatus,
    IllnessChange,
    ReferralStatus,
    ReferralTarget,
    Role,
    Safety,
    Satisfaction,
    Severity,
    StationKind,
    StewardKind,
    TravelMode,
    VisitMode,
    VisitorRole,
    WelfareStatus,
)
from gridmap.store.types import EnumListType, EnumType, GeometryType


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of all gridmap tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def _gist(table: str, column: str = "geom") -> Index:
    """A GiST index on PostGIS only (SQLite stores WKB and gets no index)."""
    return Index(f"ix_{table}_{column}_gist", column, postgresql_using="gist").ddl_if(
        dialect="postgresql"
    )


# ---------------------------------------------------------------- admin areas


class District(Base):
    """区: the district (Haidian, 110108)."""

    __tablename__ = "district"
    __table_args__ = (_gist("district"),)

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    approximate: Mapped[bool] = mapped_column(Boolean, default=False)
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("MULTIPOLYGON"))

    streets: Mapped[list[Street]] = relationship(back_populates="district")


class Street(Base):
    """街道/镇: a street or town, with its 2020 census population."""

    __tablename__ = "street"
    __table_args__ = (_gist("street"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    district_code: Mapped[str] = mapped_column(ForeignKey("district.code"))
    pop_2020: Mapped[int | None]
    area_km2: Mapped[float | None] = mapped_column(Float)
    approximate: Mapped[bool] = mapped_column(Boolean, default=False)
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("MULTIPOLYGON"))

    district: Mapped[District] = relationship(back_populates="streets")
    communities: Mapped[list[Community]] = relationship(back_populates="street")


class Community(Base):
    """社区/村: a residents' or villagers' committee area."""

    __tablename__ = "community"
    __table_args__ = (_gist("community"), _gist("community", "centre"))

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    street_id: Mapped[int] = mapped_column(ForeignKey("street.id"), index=True)
    kind: Mapped[str] = mapped_column(String(4), default="社区")  # 社区 or 村
    ur_code: Mapped[str | None] = mapped_column(String(3))
    approximate: Mapped[bool] = mapped_column(Boolean, default=True)
    centre: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("MULTIPOLYGON"))

    street: Mapped[Street] = relationship(back_populates="communities")
    grids: Mapped[list[Grid]] = relationship(back_populates="community")


class Grid(Base):
    """网格: the smallest management area, sized to one steward's workload."""

    __tablename__ = "grid"
    __table_args__ = (_gist("grid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    name: Mapped[str | None] = mapped_column(String(60))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    workload: Mapped[float | None] = mapped_column(Float)
    approximate: Mapped[bool] = mapped_column(Boolean, default=True)
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("MULTIPOLYGON"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(60))

    community: Mapped[Community] = relationship(back_populates="grids")


# ------------------------------------------------------------ service points


class ServiceStation(Base):
    """A care centre, care station (驿站) or health centre/station."""

    __tablename__ = "service_station"
    __table_args__ = (_gist("service_station"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[StationKind] = mapped_column(EnumType(StationKind))
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"))
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(String(80))
    issue: Mapped[str | None] = mapped_column(String(200))  # duplicate / outside etc.
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))


# ------------------------------------------------------------------ stewards


class Steward(Base):
    """A 探访管家 (community) or 服务管家 (care provider)."""

    __tablename__ = "steward"
    __table_args__ = (_gist("steward", "base"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[StewardKind] = mapped_column(EnumType(StewardKind))
    organisation: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("service_station.id"))
    base: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))
    work_days: Mapped[list[Any]] = mapped_column(JSON, default=lambda: [1, 2, 3, 4, 5])
    shift_start: Mapped[time] = mapped_column(Time, default=time(8, 30))
    shift_end: Mapped[time] = mapped_column(Time, default=time(17, 0))
    max_work_minutes: Mapped[int] = mapped_column(Integer, default=360)
    travel_mode: Mapped[TravelMode] = mapped_column(EnumType(TravelMode), default=TravelMode.WALK)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


# ------------------------------------------------------------------ register


class Elder(Base):
    """An entry of the register (台账): sections 一–四 of the record form 附件1-2."""

    __tablename__ = "elder"
    __table_args__ = (
        _gist("elder"),
        Index("ix_elder_street_status", "street_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    # 一、探访对象基本情况
    name: Mapped[str] = mapped_column(String(40))
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    sex: Mapped[str | None] = mapped_column(String(2))  # 男/女, derived from the ID number
    birth_date: Mapped[date | None] = mapped_column(Date)  # derived from the ID number
    phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(200))  # 家庭住址 (usual residence)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id"))  # 经常居住地 street
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), index=True)
    lives_at_hukou: Mapped[bool | None] = mapped_column(Boolean)  # 是否居住在户籍所在地
    hukou_address: Mapped[str | None] = mapped_column(String(200))
    hukou_street: Mapped[str | None] = mapped_column(String(40))
    categories: Mapped[list[Category]] = mapped_column(EnumListType(Category), default=list)
    disability_level: Mapped[DisabilityLevel | None] = mapped_column(EnumType(DisabilityLevel))
    disability_cert_no: Mapped[str | None] = mapped_column(String(40))  # 残疾人证号
    disability_grade: Mapped[int | None] = mapped_column(Integer)  # 残疾等级 1-4
    disability_type: Mapped[str | None] = mapped_column(String(20))  # 肢体/视力/智力/精神...
    other_notes: Mapped[str | None] = mapped_column(Text)  # 其他情况
    other_reason: Mapped[str | None] = mapped_column(String(500))  # 其他特殊困难情形 (其他 category, issue 20)

    # 三、家庭生活条件
    water_safe: Mapped[bool | None] = mapped_column(Boolean)
    electricity_safe: Mapped[bool | None] = mapped_column(Boolean)
    housing_safe: Mapped[bool | None] = mapped_column(Boolean)
    monthly_income: Mapped[float | None] = mapped_column(Float)  # 家庭每月收入（元）
    benefits: Mapped[str | None] = mapped_column(Text)  # 养老保险、社会救助和社会福利补贴
    welfare_status: Mapped[WelfareStatus | None] = mapped_column(EnumType(WelfareStatus))
    dispersed_support: Mapped[bool] = mapped_column(Boolean, default=False)  # 分散供养特困

    # 四、已享受帮扶情况
    assistance_units: Mapped[list[Any]] = mapped_column(JSON, default=list)
    assistance_person: Mapped[str | None] = mapped_column(String(40))
    assistance_phone: Mapped[str | None] = mapped_column(String(20))
    assistance_measures: Mapped[str | None] = mapped_column(Text)

    # programme
    willing_to_be_visited: Mapped[bool] = mapped_column(Boolean, default=True)
    signed_care_station: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_home_care_bed: Mapped[bool] = mapped_column(Boolean, default=False)
    family_doctor_signed: Mapped[bool | None] = mapped_column(Boolean)
    wants_family_doctor: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[ElderStatus] = mapped_column(EnumType(ElderStatus), default=ElderStatus.ACTIVE)
    status_date: Mapped[date | None] = mapped_column(Date)
    entered_on: Mapped[date | None] = mapped_column(Date)
    exited_on: Mapped[date | None] = mapped_column(Date)
    exit_reason: Mapped[str | None] = mapped_column(String(200))

    # location
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))
    geocode_quality: Mapped[GeocodeQuality] = mapped_column(
        EnumType(GeocodeQuality), default=GeocodeQuality.FAILED
    )

    # stewards (双管家)
    visit_steward_id: Mapped[int | None] = mapped_column(ForeignKey("steward.id"), index=True)
    service_steward_id: Mapped[int | None] = mapped_column(ForeignKey("steward.id"), index=True)
    # issue 17 part B (migration 0010): the 驿站 (care station) an elder signed with a station or a home care bed
    # is signed with (四(二)); the station visits them, the street supervises
    station_id: Mapped[int | None] = mapped_column(ForeignKey("service_station.id", name="fk_elder_station_id"),
                                                   index=True)

    # provenance: field name -> source department(s)
    field_sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    household: Mapped[list[HouseholdMember]] = relationship(
        back_populates="elder", cascade="all, delete-orphan", order_by="HouseholdMember.seq"
    )
    first_contact: Mapped[FirstContact | None] = relationship(
        back_populates="elder", cascade="all, delete-orphan", uselist=False
    )
    visit_steward: Mapped[Steward | None] = relationship(foreign_keys=[visit_steward_id])
    service_steward: Mapped[Steward | None] = relationship(foreign_keys=[service_steward_id])
    devices: Mapped[list[Device]] = relationship(back_populates="elder")
    visits: Mapped[list[Visit]] = relationship(back_populates="elder")

    __mapper_args__ = {"version_id_col": version}


class HouseholdMember(Base):
    """二、家庭基本情况: one member of the elder's household."""

    __tablename__ = "household_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(40))
    sex: Mapped[str | None] = mapped_column(String(2))
    id_number: Mapped[str | None] = mapped_column(String(18))
    relation: Mapped[str | None] = mapped_column(String(20))  # 与户主关系
    health: Mapped[str | None] = mapped_column(String(40))
    welfare_status: Mapped[WelfareStatus | None] = mapped_column(EnumType(WelfareStatus))

    elder: Mapped[Elder] = relationship(back_populates="household")


class FirstContact(Base):
    """第一联系人 of an elder, with the rule of the document that chose it."""

    __tablename__ = "first_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int] = mapped_column(
        ForeignKey("elder.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(40))
    relation: Mapped[str | None] = mapped_column(String(20))
    phone: Mapped[str | None] = mapped_column(String(20))
    rule: Mapped[FirstContactRule] = mapped_column(EnumType(FirstContactRule))
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    chosen_on: Mapped[date | None] = mapped_column(Date)

    elder: Mapped[Elder] = relationship(back_populates="first_contact")


class RegisterChange(Base):
    """History of the register: one changed field (who, when, old and new value)."""

    __tablename__ = "register_change"
    __table_args__ = (Index("ix_register_change_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    elder_id: Mapped[int | None] = mapped_column(Integer, index=True)
    field: Mapped[str] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(60))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(200))


# ---------------------------------------------------------- devices, hazards


class Device(Base):
    """A home-safety or monitoring device at an elder's home."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"), index=True)
    kind: Mapped[DeviceKind] = mapped_column(EnumType(DeviceKind))
    status: Mapped[DeviceStatus] = mapped_column(EnumType(DeviceStatus))
    serial: Mapped[str | None] = mapped_column(String(60))
    funded_by: Mapped[str | None] = mapped_column(String(60))
    installed_on: Mapped[date | None] = mapped_column(Date)
    last_tested_on: Mapped[date | None] = mapped_column(Date)
    alarm_count: Mapped[int] = mapped_column(Integer, default=0)
    last_alarm_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # issue 17 part B (migration 0010): who installs it, when its state last changed
    installer: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    elder: Mapped[Elder] = relationship(back_populates="devices")


class DeviceEvent(Base):
    """issue 17 part B (migration 0010): a device's state change or an alarm from a monitoring platform.

    An alarm row keeps ``alarm_key`` (device, time, type): the same alarm ingested twice is stored once.
    """

    __tablename__ = "device_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), index=True)
    elder_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(20))  # state / alarm
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by_user: Mapped[str] = mapped_column(String(60))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    alarm_type: Mapped[str | None] = mapped_column(String(40))
    alarm_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    alarm_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    emergency: Mapped[bool | None] = mapped_column(Boolean)
    referral_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)


class Hazard(Base):
    """A home-safety hazard (风险隐患), tracked until closed."""

    __tablename__ = "hazard"
    __table_args__ = (_gist("hazard"), Index("ix_hazard_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    elder_id: Mapped[int | None] = mapped_column(ForeignKey("elder.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visit.id"), index=True)
    kind: Mapped[HazardKind] = mapped_column(EnumType(HazardKind))
    severity: Mapped[Severity] = mapped_column(EnumType(Severity))
    source: Mapped[str] = mapped_column(String(40))  # visit / joint inspection / device
    description: Mapped[str | None] = mapped_column(Text)
    owner_unit: Mapped[str | None] = mapped_column(String(80))  # 物业 / 燃气 / 消防 / 街镇...
    status: Mapped[HazardStatus] = mapped_column(EnumType(HazardStatus), default=HazardStatus.OPEN)
    opened_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    geom: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))
    # issue 16: the life-cycle (gridmap.followups)
    status_reason: Mapped[str | None] = mapped_column(Text)  # why 无法整改
    transferred_to: Mapped[str | None] = mapped_column(String(120))  # 已移交 to which unit
    reopened_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    inspection_id: Mapped[int | None] = mapped_column(
        ForeignKey("joint_inspection.id", name="fk_hazard_inspection_id"), index=True
    )

    __mapper_args__ = {"version_id_col": version}


class JointInspection(Base):
    """联合入户排查 (四.(四)1): the street, community and departments visiting homes together on one day."""

    __tablename__ = "joint_inspection"

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"))
    held_on: Mapped[date] = mapped_column(Date)
    departments: Mapped[list[Any]] = mapped_column(JSON, default=list)  # 物业、住建、燃气、消防、电力…
    homes_visited: Mapped[list[Any]] = mapped_column(JSON, default=list)  # elder ids
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HazardEvent(Base):
    """One change of a hazard's state: who, when, from which state to which, note and photo reference."""

    __tablename__ = "hazard_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazard.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by_user: Mapped[str] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(20))  # None: opened
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    photo_ref: Mapped[str | None] = mapped_column(String(200))


class Notification(Base):
    """Outbox of reminders (提醒子女等亲属): queued here, sent by ``gridmap jobs run`` through a gateway.

    ``recipient`` is what the gateway needs (a phone number): personal data, shown masked only.
    """

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int | None] = mapped_column(ForeignKey("elder.id"), index=True)
    hazard_id: Mapped[int | None] = mapped_column(ForeignKey("hazard.id"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"))
    channel: Mapped[str] = mapped_column(String(20))  # sms / wechat / log
    recipient: Mapped[str | None] = mapped_column(String(60))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued / sent / failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


# ------------------------------------------------------------------- visits


class Visit(Base):
    """五、探访情况: one visit with every answer of the record form."""

    __tablename__ = "visit"
    __table_args__ = (
        Index("ix_visit_elder_date", "elder_id", "visited_on"),
        _gist("visit", "gps"),
        Index("uq_visit_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"))
    seq: Mapped[int | None] = mapped_column(Integer)  # 第 n 次开展探访
    visited_on: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mode: Mapped[VisitMode] = mapped_column(EnumType(VisitMode))
    effective: Mapped[bool] = mapped_column(Boolean, default=True)
    visitor_role: Mapped[VisitorRole] = mapped_column(EnumType(VisitorRole))
    visitor_name: Mapped[str | None] = mapped_column(String(40))
    steward_id: Mapped[int | None] = mapped_column(ForeignKey("steward.id"), index=True)

    family_change: Mapped[FamilyChange | None] = mapped_column(EnumType(FamilyChange))
    family_change_count: Mapped[int | None] = mapped_column(Integer)
    expression: Mapped[Change | None] = mapped_column(EnumType(Change))  # 表达能力
    mobility: Mapped[Change | None] = mapped_column(EnumType(Change))  # 行动能力
    illness: Mapped[IllnessChange | None] = mapped_column(EnumType(IllnessChange))
    illness_name: Mapped[str | None] = mapped_column(String(80))
    mood: Mapped[Change | None] = mapped_column(EnumType(Change))  # 情绪状态
    gas_safety: Mapped[Safety | None] = mapped_column(EnumType(Safety))
    water_heating_safety: Mapped[Safety | None] = mapped_column(EnumType(Safety))
    electricity_safety: Mapped[Safety | None] = mapped_column(EnumType(Safety))
    personal_hygiene: Mapped[Change | None] = mapped_column(EnumType(Change))
    home_hygiene: Mapped[Change | None] = mapped_column(EnumType(Change))
    indoor_environment: Mapped[Change | None] = mapped_column(EnumType(Change))
    needs: Mapped[str | None] = mapped_column(Text)  # 老年人服务需求
    suggestions: Mapped[str | None] = mapped_column(Text)  # 实施关爱服务建议

    visitor_signature: Mapped[str | None] = mapped_column(String(40))
    elder_signature: Mapped[str | None] = mapped_column(String(40))
    recorder_signature: Mapped[str | None] = mapped_column(String(40))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    gps: Mapped[shapely.Geometry | None] = mapped_column(GeometryType("POINT"))
    gps_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    entered_by: Mapped[str | None] = mapped_column(String(60))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    late_entry: Mapped[bool] = mapped_column(Boolean, default=False)  # paper record entered later
    # one submission stored once (issue 16 item 7): the form's key, or one derived from elder, visitor, start
    idempotency_key: Mapped[str | None] = mapped_column(String(80))  # unique: uq_visit_idempotency_key
    # issue 17 part A (migration 0009): 反应能力, 赡养, 房屋安全, 饮水安全; the needs as codes of the rules'
    # service_needs (NULL: not asked, []: 无); why the visit is not effective (the items left unanswered)
    reaction: Mapped[Change | None] = mapped_column(EnumType(Change))
    family_support: Mapped[str | None] = mapped_column(String(20))
    housing_safety: Mapped[Safety | None] = mapped_column(EnumType(Safety))
    drinking_water_safety: Mapped[Safety | None] = mapped_column(EnumType(Safety))
    need_kinds: Mapped[list[Any] | None] = mapped_column(JSON)
    ineffective_reason: Mapped[str | None] = mapped_column(String(300))
    # issue 18 (migration 0011): with the visitor's consent, how far (metres) the phone was from the elder's home
    # when the visit was saved; the position itself is not kept (流于形式 check: rules formality.max_distance_m)
    position_distance_m: Mapped[float | None] = mapped_column(Float)

    elder: Mapped[Elder] = relationship(back_populates="visits")

    __mapper_args__ = {"version_id_col": version}


class CareService(Base):
    """六、关爱服务情况: a care service delivered, with the elder's satisfaction."""

    __tablename__ = "care_service"

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visit.id"), index=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    served_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str | None] = mapped_column(String(40))  # 助餐/助医/助浴/助洁/...
    description: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(120))
    staff_signature: Mapped[str | None] = mapped_column(String(40))
    satisfaction: Mapped[Satisfaction | None] = mapped_column(EnumType(Satisfaction))
    # issue 17 part A (migration 0009): the service task this care service answers (第 n 次开展关爱: seq)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("service_task.id", name="fk_care_service_task_id"),
                                                index=True)
    recorded_by: Mapped[str | None] = mapped_column(String(60))


class Referral(Base):
    """转介: a need found at a visit, sent to a target with a deadline."""

    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visit.id"), index=True)
    need: Mapped[str] = mapped_column(Text)
    target: Mapped[ReferralTarget] = mapped_column(EnumType(ReferralTarget))
    target_name: Mapped[str | None] = mapped_column(String(120))
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)  # 危及生命安全
    status: Mapped[ReferralStatus] = mapped_column(
        EnumType(ReferralStatus), default=ReferralStatus.OPEN
    )
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)
    # issue 16: the life-cycle (gridmap.followups)
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    satisfaction: Mapped[Satisfaction | None] = mapped_column(EnumType(Satisfaction))  # return visit/call
    resolved: Mapped[bool | None] = mapped_column(Boolean)  # set at 已办结

    __mapper_args__ = {"version_id_col": version}


class ReferralEvent(Base):
    """One change of a referral's state (same shape as :class:`HazardEvent`)."""

    __tablename__ = "referral_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by_user: Mapped[str] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    photo_ref: Mapped[str | None] = mapped_column(String(200))


class CalendarEvent(Base):
    """An extreme-weather alert or holiday that changes the visit rules for some days."""

    __tablename__ = "calendar_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EventKind] = mapped_column(EnumType(EventKind))
    name: Mapped[str] = mapped_column(String(80))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id"))  # None = whole district
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# ------------------------------------------------------------ users, audit


class AppUser(Base):
    """A user of gridmap, with a role scoped to an area."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(60))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(EnumType(Role))
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id"))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"))
    steward_id: Mapped[int | None] = mapped_column(ForeignKey("steward.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    areas: Mapped[list[UserArea]] = relationship(cascade="all, delete-orphan")


class UserArea(Base):
    """An extra street a user may see (planners are granted several)."""

    __tablename__ = "user_area"
    __table_args__ = (UniqueConstraint("user_id", "street_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    street_id: Mapped[int] = mapped_column(ForeignKey("street.id"))


class UserSession(Base):
    """A signed-in session of a user, kept on the server so that it can be ended (revoked) at once.

    The browser's cookie carries the random token; only its SHA-256 is stored here.
    """

    __tablename__ = "user_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(String(80))


class AuditLog(Base):
    """Append-only record of who saw or changed which record, when and from where."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_user_at", "username", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    username: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(40))  # view / unmask / update / export / denied
    entity: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MetaInfo(Base):
    """Key/value facts about the store (layers built from which data, when)."""

    __tablename__ = "meta_info"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# ------------------------------------------------------------ imports


class ImportBatch(Base):
    """One imported ledger file: its hash, where it is archived, and what it did."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str | None] = mapped_column(String(40))  # 民政 / 卫健 / 残联 / 医保
    archive_path: Mapped[str | None] = mapped_column(String(500))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(60))
    period: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM of a monthly update
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_imported: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class QuarantineRow(Base):
    """A rejected import row, kept with its errors until a user fixes and re-submits it."""

    __tablename__ = "quarantine_row"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)  # as a spreadsheet shows it (header = 1)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending/resubmitted/discarded
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(60))


class FieldConflict(Base):
    """Two departments disagree on a field of one elder: flagged for a person to resolve."""

    __tablename__ = "field_conflict"
    __table_args__ = (Index("ix_field_conflict_elder_status", "elder_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"))
    field: Mapped[str] = mapped_column(String(60))
    current_value: Mapped[str | None] = mapped_column(Text)
    current_source: Mapped[str | None] = mapped_column(String(40))
    incoming_value: Mapped[str | None] = mapped_column(Text)
    incoming_source: Mapped[str | None] = mapped_column(String(40))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open / resolved
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_value: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(60))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------ change feed (issue 15, helper E)


class ChangeLog(Base):
    """The change feed: one append-only row per committed write (import, visit, plan, grid, steward…).

    Written in the same transaction as the write (:func:`gridmap.store.changes.record_change`);
    every server process follows it by ``seq`` and re-reads only the streets touched
    (:meth:`gridmap.dashboard.data.DashboardData.follow_changes`). ``streets`` are street names;
    ``elders`` elder ids, at most :data:`gridmap.store.changes.MAX_ELDERS` of them: ``many`` true
    means the list was cut and a reader refreshes the whole street(s).
    """

    __tablename__ = "change_log"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[ChangeKind] = mapped_column(EnumType(ChangeKind))
    streets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    elders: Mapped[list[Any]] = mapped_column(JSON, default=list)
    many: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(60))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PlanProposal(Base):
    """A rebalancing proposal the server computed for a user, kept until that user accepts it (once).

    In the database, not in one process's memory: with several server processes the accept may
    reach another process than the one that computed the proposal.
    """

    __tablename__ = "plan_proposal"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random token the page holds
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    street: Mapped[str] = mapped_column(String(40))
    week: Mapped[str] = mapped_column(String(10))
    moves: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------ read API tokens (issue 15, helper G)


class ApiToken(Base):
    """A bearer token of the read API (``/api/v1``) for a machine acting as one user, with that user's scope.

    Only the SHA-256 of the token is stored (:mod:`gridmap.access.tokens`); the token itself is
    printed once by ``gridmap users token``. ``scope_key`` fingerprints the user's role and area
    when the token was made: a token whose user has another role or area now is refused, as is
    one revoked, expired, or whose user is disabled.
    """

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(60))
    scope_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(60))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


# ------------------------------------------------------------ service tasks (issue 17 part A, migration 0009)


class ServiceTask(Base):
    """服务任务: a need recorded at a visit (助餐、助医…), for the elder's 服务管家 or a unit, with a due date."""

    __tablename__ = "service_task"
    __table_args__ = (Index("ix_service_task_elder_kind", "elder_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elder.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visit.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # code of the rules' service_needs
    label: Mapped[str] = mapped_column(String(40))  # 助餐 …
    steward_id: Mapped[int | None] = mapped_column(ForeignKey("steward.id"), index=True)  # the 服务管家
    receiver_unit: Mapped[str | None] = mapped_column(String(120))  # a unit, when not a steward
    status: Mapped[str] = mapped_column(String(20), index=True)
    opened_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)  # the visit's needs note
    outcome: Mapped[str | None] = mapped_column(Text)  # why cancelled / what was done
    created_by: Mapped[str | None] = mapped_column(String(60))


class ServiceTaskEvent(Base):
    """A state change of a service task (who, when, from, to, note), as ``hazard_event``."""

    __tablename__ = "service_task_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("service_task.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by_user: Mapped[str] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    photo_ref: Mapped[str | None] = mapped_column(String(200))


# ------------------------------------------------------------ issue 20: register import speed (migration 0012)


class RegisterRowHash(Base):
    """The last ledger row merged for an elder from one department, and the elder's state right after it.

    :mod:`gridmap.register.merge` counts a re-sent equal row over an unchanged elder (same state hash) as
    unchanged without the field-by-field merge. No foreign key: a stale row of a removed elder never matches.
    """

    __tablename__ = "register_row_hash"

    elder_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    row_hash: Mapped[str] = mapped_column(String(32))
    state_hash: Mapped[str] = mapped_column(String(32))
