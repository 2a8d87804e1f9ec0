"""Every entity of the store survives a save and a fresh read, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine, select

from gridmap.domain.enums import (
    Category,
    Change,
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
from gridmap.domain.idcard import make_id_number, parse_id_number
from gridmap.store.db import session_scope
from gridmap.store.models import (
    AppUser,
    AuditLog,
    CalendarEvent,
    CareService,
    Community,
    Device,
    District,
    Elder,
    FirstContact,
    Grid,
    Hazard,
    HouseholdMember,
    Referral,
    RegisterChange,
    ServiceStation,
    Steward,
    Street,
    UserArea,
    Visit,
)

HOME = Point(116.3105, 39.9833)


def _area(x0: float, y0: float, size: float = 0.01) -> MultiPolygon:
    return MultiPolygon([box(x0, y0, x0 + size, y0 + size)])


def seed_areas(engine: Engine) -> dict[str, int]:
    """District, one street, one community, one grid; returns their ids."""
    with session_scope(engine, user="test") as s:
        s.add(District(code="110108000000", name="海淀区", geom=_area(116.0, 39.8, 0.4)))
        st = Street(code="110108010000", name="中关村街道", district_code="110108000000",
                    pop_2020=130672, area_km2=5.28, geom=_area(116.30, 39.97, 0.03))
        s.add(st)
        s.flush()
        co = Community(code="110108010001", name="科育社区居委会", street_id=st.id, kind="社区",
                       ur_code="111", centre=Point(116.31, 39.98), geom=_area(116.305, 39.975),
                       approximate=True)
        s.add(co)
        s.flush()
        gr = Grid(code="110108010001-01", community_id=co.id, workload=42.0,
                  geom=_area(116.305, 39.975, 0.005))
        s.add(gr)
        s.flush()
        return {"street": st.id, "community": co.id, "grid": gr.id}


def seed_elder(engine: Engine, ids: dict[str, int], **overrides: object) -> int:
    number = make_id_number("110108", date(1938, 5, 17), 3, "女")
    _, born, sex = parse_id_number(number)
    fields: dict[str, object] = dict(
        name="王秀兰", id_number=number, sex=sex, birth_date=born, phone="13812345678",
        address="北京市海淀区中关村街道科育社区5号楼2单元301", street_id=ids["street"],
        community_id=ids["community"], grid_id=ids["grid"], lives_at_hukou=False,
        hukou_address="北京市西城区", hukou_street="月坛街道",
        categories=[Category.LIVING_ALONE, Category.DISABLED, Category.SEVERELY_HANDICAPPED],
        disability_level=DisabilityLevel.MODERATE, disability_cert_no="11010819380517202X42",
        disability_grade=2, disability_type="肢体", other_notes="右腿行动不便",
        water_safe=True, electricity_safe=False, housing_safe=True, monthly_income=3200.5,
        benefits="城乡居民养老保险；高龄津贴", welfare_status=WelfareStatus.DIBAO,
        assistance_units=["养老服务设施网", "家庭医生"], assistance_person="李娜",
        assistance_phone="010-62512345", assistance_measures="每周助餐两次",
        willing_to_be_visited=True, signed_care_station=False, signed_home_care_bed=False,
        family_doctor_signed=False, wants_family_doctor=True,
        status=ElderStatus.ACTIVE, entered_on=date(2025, 5, 1), geom=HOME,
        geocode_quality=GeocodeQuality.BUILDING, field_sources={"phone": ["民政", "卫健"]},
    )
    fields.update(overrides)
    with session_scope(engine, user="test", source="民政") as s:
        elder = Elder(**fields)
        elder.household = [
            HouseholdMember(seq=1, name="王秀兰", sex="女", id_number=number, relation="户主",
                            health="慢性病", welfare_status=WelfareStatus.DIBAO),
            HouseholdMember(seq=2, name="张建国", sex="男", relation="配偶", health="健康"),
        ]
        elder.first_contact = FirstContact(name="张伟", relation="儿子", phone="13900001111",
                                           rule=FirstContactRule.CHILD, chosen_on=date(2025, 5, 2))
        s.add(elder)
        s.flush()
        return elder.id


def test_admin_areas_round_trip_with_geometry(engine: Engine) -> None:
    ids = seed_areas(engine)
    with session_scope(engine) as s:
        street = s.get(Street, ids["street"])
        assert street.name == "中关村街道" and street.pop_2020 == 130672
        assert street.geom.equals(_area(116.30, 39.97, 0.03))
        community = s.scalars(select(Community)).one()
        assert community.street.name == "中关村街道"
        assert community.centre.equals(Point(116.31, 39.98))
        assert community.approximate is True
        grid = s.scalars(select(Grid)).one()
        assert grid.community.code == "110108010001" and grid.workload == 42.0
        district = s.get(District, "110108000000")
        assert [st.name for st in district.streets] == ["中关村街道"]


def test_elder_round_trip_every_form_field(engine: Engine) -> None:
    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids)
    with session_scope(engine) as s:
        e = s.get(Elder, elder_id)
        assert e.name == "王秀兰" and e.sex == "女" and e.birth_date == date(1938, 5, 17)
        assert e.categories == [Category.LIVING_ALONE, Category.DISABLED, Category.SEVERELY_HANDICAPPED]
        assert e.disability_level is DisabilityLevel.MODERATE and e.disability_grade == 2
        assert e.lives_at_hukou is False and e.hukou_street == "月坛街道"
        assert e.electricity_safe is False and e.monthly_income == pytest.approx(3200.5)
        assert e.welfare_status is WelfareStatus.DIBAO
        assert e.assistance_units == ["养老服务设施网", "家庭医生"]
        assert e.geom.equals_exact(HOME, 1e-9)
        assert e.geocode_quality is GeocodeQuality.BUILDING
        assert e.field_sources == {"phone": ["民政", "卫健"]}
        assert [(m.seq, m.name, m.relation) for m in e.household] == [(1, "王秀兰", "户主"), (2, "张建国", "配偶")]
        assert e.household[0].welfare_status is WelfareStatus.DIBAO
        assert e.first_contact.rule is FirstContactRule.CHILD and e.first_contact.phone == "13900001111"
        assert e.version == 1


def test_categories_keep_order_and_drop_duplicates(engine: Engine) -> None:
    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids, categories=["empty_nest", Category.EMPTY_NEST, "其他" and "other"])
    with session_scope(engine) as s:
        assert s.get(Elder, elder_id).categories == [Category.EMPTY_NEST, Category.OTHER]


def test_stewards_stations_devices_hazards_visits_round_trip(engine: Engine) -> None:
    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids)
    with session_scope(engine, user="test") as s:
        station = ServiceStation(name="科育社区养老服务驿站", kind=StationKind.CARE_STATION,
                                 street_id=ids["street"], community_id=ids["community"],
                                 synthetic=True, geom=Point(116.309, 39.982))
        s.add(station)
        s.flush()
        visit_steward = Steward(code="V-110108010001", name="刘芳", kind=StewardKind.VISIT,
                                organisation="科育社区居委会", community_id=ids["community"],
                                base=Point(116.31, 39.98), work_days=[1, 2, 3, 4, 5],
                                shift_start=time(8, 30), shift_end=time(17, 0),
                                travel_mode=TravelMode.BIKE)
        service_steward = Steward(code="S-1", name="陈静", kind=StewardKind.SERVICE,
                                  organisation="科育社区养老服务驿站", station_id=station.id,
                                  base=station.geom, travel_mode=TravelMode.EBIKE)
        s.add_all([visit_steward, service_steward])
        s.flush()
        elder = s.get(Elder, elder_id)
        elder.visit_steward_id = visit_steward.id
        elder.service_steward_id = service_steward.id
        s.add(Device(elder_id=elder_id, kind=DeviceKind.SMOKE_ALARM, status=DeviceStatus.INSTALLED,
                     installed_on=date(2025, 6, 1), last_tested_on=date(2025, 11, 1), alarm_count=2,
                     last_alarm_at=datetime(2025, 10, 3, 8, 0, tzinfo=UTC)))
        visit = Visit(elder_id=elder_id, seq=3, visited_on=date(2025, 11, 20), mode=VisitMode.IN_HOME,
                      effective=True, visitor_role=VisitorRole.VISIT_STEWARD, visitor_name="刘芳",
                      steward_id=visit_steward.id, family_change=FamilyChange.DECREASED,
                      family_change_count=1, expression=Change.UNCHANGED, mobility=Change.WORSE,
                      illness=IllnessChange.SERIOUS, illness_name="高血压", mood=Change.BETTER,
                      gas_safety=Safety.UNSAFE, water_heating_safety=Safety.FAIRLY_SAFE,
                      electricity_safety=Safety.SAFE, personal_hygiene=Change.UNCHANGED,
                      home_hygiene=Change.WORSE, indoor_environment=Change.UNCHANGED,
                      needs="助浴", suggestions="联系燃气公司检查管线", visitor_signature="刘芳",
                      elder_signature="王秀兰", recorder_signature="刘芳",
                      signed_at=datetime(2025, 11, 20, 10, 30, tzinfo=UTC),
                      gps=Point(116.3106, 39.9834), gps_time=datetime(2025, 11, 20, 10, 0, tzinfo=UTC),
                      entered_by="liufang", late_entry=True)
        s.add(visit)
        s.flush()
        s.add(Hazard(elder_id=elder_id, visit_id=visit.id, kind=HazardKind.GAS, severity=Severity.HIGH,
                     source="visit", owner_unit="燃气公司", opened_on=date(2025, 11, 20),
                     deadline=date(2025, 11, 27), geom=HOME))
        s.add(CareService(elder_id=elder_id, visit_id=visit.id, seq=1, served_on=date(2025, 11, 21),
                          kind="助浴", provider="科育社区养老服务驿站", staff_signature="陈静",
                          satisfaction=Satisfaction.SATISFIED))
        s.add(Referral(elder_id=elder_id, visit_id=visit.id, need="助浴服务",
                       target=ReferralTarget.FIRST_CONTACT, target_name="张伟",
                       deadline=datetime(2025, 11, 23, tzinfo=UTC)))
        s.add(CalendarEvent(kind=EventKind.EXTREME_WEATHER, name="寒潮蓝色预警",
                            starts_on=date(2026, 12, 14), ends_on=date(2026, 12, 16),
                            params={"extra_in_home": 1}))
    with session_scope(engine) as s:
        elder = s.get(Elder, elder_id)
        assert elder.visit_steward.kind is StewardKind.VISIT and elder.visit_steward.travel_mode is TravelMode.BIKE
        assert elder.visit_steward.shift_start == time(8, 30) and elder.visit_steward.work_days == [1, 2, 3, 4, 5]
        assert elder.service_steward.organisation == "科育社区养老服务驿站"
        (device,) = elder.devices
        assert device.kind is DeviceKind.SMOKE_ALARM and device.alarm_count == 2
        (visit,) = elder.visits
        assert visit.mode is VisitMode.IN_HOME and visit.gas_safety is Safety.UNSAFE
        assert visit.illness is IllnessChange.SERIOUS and visit.family_change_count == 1
        assert visit.gps.equals_exact(Point(116.3106, 39.9834), 1e-9) and visit.late_entry
        hazard = s.scalars(select(Hazard)).one()
        assert hazard.status is HazardStatus.OPEN and hazard.deadline == date(2025, 11, 27)
        assert s.scalars(select(CareService)).one().satisfaction is Satisfaction.SATISFIED
        referral = s.scalars(select(Referral)).one()
        assert referral.status is ReferralStatus.OPEN and referral.target is ReferralTarget.FIRST_CONTACT
        event = s.scalars(select(CalendarEvent)).one()
        assert event.params == {"extra_in_home": 1} and event.ends_on == date(2026, 12, 16)
        station = s.scalars(select(ServiceStation)).one()
        assert station.synthetic and station.kind is StationKind.CARE_STATION


def test_users_areas_and_audit_round_trip(engine: Engine) -> None:
    ids = seed_areas(engine)
    with session_scope(engine) as s:
        user = AppUser(username="planner1", role=Role.PLANNER, password_hash="x")
        user.areas = [UserArea(street_id=ids["street"])]
        s.add(user)
        s.add(AuditLog(username="planner1", action="view", entity="elder", entity_id="1",
                       client="127.0.0.1", detail={"fields": ["phone"]}))
    with session_scope(engine) as s:
        user = s.scalars(select(AppUser)).one()
        assert user.role is Role.PLANNER and [a.street_id for a in user.areas] == [ids["street"]]
        log = s.scalars(select(AuditLog)).one()
        assert log.detail == {"fields": ["phone"]} and log.at is not None


def test_changes_to_an_elder_are_history(engine: Engine) -> None:
    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids)
    with session_scope(engine, user="liufang", source="民政", reason="每月更新") as s:
        e = s.get(Elder, elder_id)
        e.phone = "13700000000"
        e.categories = [Category.LIVING_ALONE]
        e.geom = Point(116.3110, 39.9840)
        e.household[1].health = "住院"
    with session_scope(engine) as s:
        rows = s.scalars(select(RegisterChange).where(RegisterChange.field != "*created*")
                         .order_by(RegisterChange.id)).all()
        by_field = {r.field: r for r in rows}
        assert by_field["phone"].old_value == "13812345678" and by_field["phone"].new_value == "13700000000"
        assert by_field["phone"].changed_by == "liufang" and by_field["phone"].source == "民政"
        assert by_field["phone"].reason == "每月更新"
        assert by_field["categories"].old_value == '["living_alone", "disabled", "severely_handicapped"]'
        assert by_field["geom"].new_value.startswith("POINT (116.311 39.984")
        assert by_field["health"].entity == "household_member" and by_field["health"].elder_id == elder_id
        assert s.get(Elder, elder_id).version == 2
        created = s.scalars(select(RegisterChange).where(RegisterChange.field == "*created*")).all()
        assert {r.entity for r in created} >= {"elder", "household_member", "first_contact"}


def test_an_elder_is_never_deleted(engine: Engine) -> None:
    from gridmap._errors import GridmapError

    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids)
    with pytest.raises(GridmapError, match="never deleted"):
        with session_scope(engine) as s:
            s.delete(s.get(Elder, elder_id))
    with session_scope(engine) as s:
        assert s.get(Elder, elder_id) is not None


@pytest.mark.parametrize("table", ["audit_log", "register_change"])
def test_audit_log_and_history_are_append_only(engine: Engine, table: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    ids = seed_areas(engine)
    seed_elder(engine, ids)
    with session_scope(engine) as s:
        s.add(AuditLog(username="u", action="view", entity="elder", entity_id="1"))
    for stmt in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(stmt))
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0


def test_empty_geometry_is_stored_as_null(engine: Engine) -> None:
    ids = seed_areas(engine)
    elder_id = seed_elder(engine, ids, geom=shapely.Point())
    with session_scope(engine) as s:
        assert s.get(Elder, elder_id).geom is None
