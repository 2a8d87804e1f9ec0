"""Fixtures of the register import tests: reference layers, ledger rows, database snapshots."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from gridmap.domain.idcard import make_id_number

#: Register tables an import may touch.
REGISTER_TABLES = ("elder", "first_contact", "register_change", "import_batch", "quarantine_row", "field_conflict")

#: Real (street, community, address stem) triples that geocode at community level.
PLACES = [
    ("万寿路街道", "翠微路社区", "翠微路2号院"),
    ("学院路街道", "二里庄社区", "二里庄小区"),
    ("万寿路街道", "翠微路社区", "复兴路24号院"),
]


@pytest.fixture(scope="session")
def reference(data_dir: Path) -> Any:
    """Layers and validation reference built once from the real data."""
    from gridmap.register.importer import load_reference

    return load_reference(data_dir)


@pytest.fixture(autouse=True)
def _var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Archive files go to a temporary var directory."""
    var = tmp_path / "var"
    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(var))
    return var


def make_rows(n: int, seed: int = 0, start: int = 0) -> list[dict[str, str]]:
    """``n`` valid ledger rows with the canonical headers (distinct ID numbers)."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        sex = "男" if i % 2 else "女"
        born = date(1930 + i % 30, 1 + i % 12, 1 + i % 28)
        street, comm, stem = PLACES[i % len(PLACES)]
        rows.append({
            "姓名": f"测试{chr(0x4E00 + i % 5000)}{i}", "性别": sex,
            "居民身份证号码": make_id_number("110108", born, i % 100, sex) if i < 100
            else make_id_number(f"1101{(i // 100) % 90 + 10:02d}", born, i % 100, sex),
            "联系电话": f"13{rng.randint(100000000, 999999999)}", "街道（乡镇）": street, "居（村）": comm,
            "家庭住址": f"{stem}{i % 40 + 1}号楼{i % 6 + 1}单元{101 + i % 20}", "经度": "", "纬度": "", "坐标系": "",
            "是否居住在户籍所在地": "是", "是否独居": "是" if i % 3 == 0 else "否", "是否空巢": "否",
            "失能等级": ["", "轻度", "中度", "重度"][i % 4], "是否重残": "否", "残疾人证号": "", "残疾等级": "",
            "是否计划生育特殊家庭": "否", "低保特困情况": "", "是否愿意接受探访": "是",
            "是否签约驿站或家庭照护床位": "否", "第一联系人": f"联系人{i}", "第一联系人关系": "儿子",
            "第一联系人电话": "13900001111", "探访管家": "", "服务管家": "", "其他情况": "",
        })
    return rows


def write_csv(rows: list[dict[str, str]], path: Path, encoding: str = "utf-8-sig") -> Path:
    """Write rows as a CSV ledger."""
    pd.DataFrame(rows).to_csv(path, index=False, encoding=encoding)
    return path


def write_xlsx(rows: list[dict[str, str]], path: Path, title: str | None = None) -> Path:
    """Write rows as an xlsx ledger, optionally under a title row (header then on row 2 or 3)."""
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = openpyxl.Workbook()
    ws = wb.active
    if title:
        ws.append([title])
        ws.append([])
    headers = list(rows[0]) if rows else ["姓名", "居民身份证号码", "家庭住址"]
    ws.append(headers)
    for r in rows:
        ws.append([ILLEGAL_CHARACTERS_RE.sub("", str(r.get(h, ""))) for h in headers])
    wb.save(path)
    return path


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the register tables, for before/after comparisons."""
    out = {}
    with engine.connect() as conn:
        for t in REGISTER_TABLES:
            out[t] = [tuple(str(v) for v in r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]
    return out


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for ledger files."""
    d = tmp_path / "ledgers"
    d.mkdir()
    yield d
