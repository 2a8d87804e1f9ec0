"""Two people editing one elder at once: neither change is lost."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gridmap._errors import ConflictError
from gridmap.store.models import Elder, RegisterChange
from gridmap.store.repository import update_elder
from tests.store.test_roundtrip import seed_areas, seed_elder


def test_a_stale_save_is_refused_not_silently_applied(engine: Engine) -> None:
    elder_id = seed_elder(engine, seed_areas(engine))
    a, b = Session(engine), Session(engine)
    try:
        ea, eb = a.get(Elder, elder_id), b.get(Elder, elder_id)
        ea.phone = "13700000001"
        a.commit()
        eb.address = "北京市海淀区中关村街道科育社区6号楼"
        with pytest.raises(StaleDataError):
            b.commit()
    finally:
        a.close()
        b.close()


def test_two_edits_of_different_fields_from_the_same_copy_both_survive(engine: Engine) -> None:
    elder_id = seed_elder(engine, seed_areas(engine))
    seen = {"phone": "13812345678", "address": "北京市海淀区中关村街道科育社区5号楼2单元301"}
    update_elder(engine, elder_id, {"phone": "13700000001"}, user="a", base={"phone": seen["phone"]})
    update_elder(engine, elder_id, {"address": "新地址1号"}, user="b", base={"address": seen["address"]})
    with Session(engine) as s:
        e = s.get(Elder, elder_id)
        assert (e.phone, e.address) == ("13700000001", "新地址1号")
        assert e.version == 3


def test_two_edits_of_the_same_field_the_second_is_refused_with_a_message(engine: Engine) -> None:
    elder_id = seed_elder(engine, seed_areas(engine))
    update_elder(engine, elder_id, {"phone": "13700000001"}, user="a", base={"phone": "13812345678"})
    with pytest.raises(ConflictError, match="changed by someone else") as info:
        update_elder(engine, elder_id, {"phone": "13700000002"}, user="b", base={"phone": "13812345678"})
    assert "已被他人修改" in info.value.message_zh
    with Session(engine) as s:
        assert s.get(Elder, elder_id).phone == "13700000001"


def test_concurrent_threads_lose_no_update(engine: Engine) -> None:
    """Two writers in parallel, each changing its own field 15 times: every change is kept."""
    elder_id = seed_elder(engine, seed_areas(engine))
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(field: str, prefix: str) -> None:
        try:
            barrier.wait()
            for i in range(15):
                update_elder(engine, elder_id, {field: f"{prefix}{i:02d}"}, user=field)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=("phone", "1370000")),
               threading.Thread(target=writer, args=("other_notes", "备注"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Session(engine) as s:
        e = s.get(Elder, elder_id)
        assert e.phone == "137000014" and e.other_notes == "备注14"
        assert e.version == 31
        history = s.scalars(select(RegisterChange.field).where(
            RegisterChange.elder_id == elder_id, RegisterChange.field.in_(["phone", "other_notes"]))).all()
        assert history.count("phone") == 15 and history.count("other_notes") == 15
