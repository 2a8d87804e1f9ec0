"""No personal field appears unmasked in any page, export or log a user gets without unmasking (issue 8).

A 300-elder synthetic register on SQLite with the real layers; the personal
values (every elder's full name, ID number, phone, exact address with house
numbers, first contact's name and phone) are read from the store, then every
output a user can get without unmasking is produced and scanned:

* the dashboard (the real app with sign-in, Flask's test client): the layout
  and the callbacks of each view, for every demo role, including the xlsx export
  (decoded) and elder details inside and outside the user's area;
* ``register export`` (xlsx), the record form (xlsx and PDF, text by
  ``pdftotext``), the first-contacts export and its console output;
* ``gridmap visits due`` (console and CSV) and ``gridmap report`` (xlsx);
* a steward's route list (HTML, GPX, GeoJSON, PDF) from a stored weekly plan;
* the audit log (every column of every row) and everything logged through
  Python's ``logging`` while the tests ran, plus log files written under ``var/``.

Names of stewards (staff, shown openly by design) are left out of the scan
when an elder or first contact happens to share one.
Unmasked exports: refused without a reason, audited and watermarked with one.

Issue 14: a few elders get formula payloads (``=HYPERLINK(…)``, ``=cmd|…``,
``+1+1``, ``-2+3``, ``@SUM(A1)``, tab/CR-led text) as name, address, first
contact's name and notes, others addresses whose house is written in Chinese
or full-width numerals, and a steward a formula name; quarantined rows carry
the same payloads. Every xlsx (dashboard export, register export masked and
unmasked, record forms, first-contacts, supervision report, quarantine export)
and every CSV is read back: no formula cell, no text starting with a formula
character unescaped (gridmap.sheets puts ``'`` in front), and the house parts
never appear in a masked output.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ fixtures


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001
            self.lines.append(str(record.msg))


@pytest.fixture(scope="module")
def logs() -> Iterator[_Collect]:
    """Everything logged (any logger, DEBUG and up) while this module runs, with tracebacks."""
    h = _Collect()
    h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


@pytest.fixture(scope="module")
def started() -> float:
    return time.time()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, logs: _Collect, started: float) -> Engine:
    """300 synthetic elders on the real layers, with one demo user per role."""
    from gridmap.layers.build import build_layers
    from gridmap.store.db import init_db, make_engine
    from gridmap.store.layers_store import save_admin_layers
    from gridmap.synth.demo import load_demo_register

    path = tmp_path_factory.mktemp("privacy") / "p.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    layers = build_layers()
    save_admin_layers(engine, layers.district, layers.streets, layers.communities, layers.grids,
                      layers.service_points)
    load_demo_register(engine, layers, elders=300, seed=11)
    _inject_payloads(engine)
    return engine


#: Formula payloads (issue 14, item 1), put into names, addresses, first contacts and notes.
FORMULAS = ['=HYPERLINK("http://x.example/a","点击")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1", "＝1+1", " @SUM(A1)"]
#: Houses written in Chinese, full-width and mixed numerals (issue 14, item 3).
HOUSES = ["十三号楼二单元五零一室", "三号院七排九号", "１３号楼２单元４０１", "甲十二号楼三门四零二",
          "二十一栋一单元六〇三户", "１2号楼三单元"]
STEWARD_FORMULA = '=HYPERLINK("http://x.example/s","管家")'
FORMULA_START = tuple("=+-@＝＋－＠")


def _inject_payloads(engine: Engine) -> None:
    """Every 12th elder: formula payloads or a Chinese/full-width-numeral house; one steward a formula name."""
    from gridmap.store.db import session_scope
    from gridmap.store.models import Elder, Steward

    with session_scope(engine, user="privacy_test") as s:
        elders = s.scalars(select(Elder).order_by(Elder.id)).all()
        for k, e in enumerate(elders[::12]):
            f = FORMULAS[k % len(FORMULAS)]
            if k % 2 == 0:
                e.name = f
                e.other_notes = FORMULAS[(k + 4) % len(FORMULAS)]
                if e.first_contact is not None:
                    e.first_contact.name = FORMULAS[(k + 2) % len(FORMULAS)]
                if k % 4 == 0:
                    e.address = FORMULAS[(k + 1) % len(FORMULAS)]
            else:
                head = re.split(r"\d", e.address or "", maxsplit=1)[0]
                e.address = head + HOUSES[k % len(HOUSES)]
                e.hukou_address = head + HOUSES[(k + 1) % len(HOUSES)]
        st = s.scalars(select(Steward).order_by(Steward.id)).first()
        st.name = STEWARD_FORMULA


def unsafe_cells(blob: bytes | Path) -> list[tuple[str, str, Any]]:
    """Formula cells, and text cells that start (after blanks) with a formula character, a tab or a CR."""
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(blob) if isinstance(blob, bytes) else blob)
    bad = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f" or (isinstance(c.value, str) and unsafe_text(c.value)):
                    bad.append((ws.title, c.coordinate, c.value))
    return bad


def unsafe_text(v: str) -> bool:
    return v[:1] in ("\t", "\r", "\n") or v.lstrip(" \u3000\t\r\n").startswith(FORMULA_START)


def unsafe_csv(path: Path) -> list[str]:
    """CSV fields that start (after blanks) with a formula character, a tab or a CR."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [v for row in csv.reader(fh) for v in row if unsafe_text(v)]


@pytest.fixture(scope="module")
def users(store: Engine) -> dict[str, str]:
    from gridmap.access import create_demo_users

    return create_demo_users(store)


@pytest.fixture(scope="module")
def secrets(store: Engine) -> dict[str, set[str]]:
    """The personal values to look for, by kind (see the module docstring)."""
    from gridmap.store.models import Elder, FirstContact, Steward

    with store.connect() as conn:
        elders = conn.execute(select(Elder.name, Elder.id_number, Elder.phone, Elder.address)).all()
        fcs = conn.execute(select(FirstContact.name, FirstContact.phone)).all()
        staff = [n for (n,) in conn.execute(select(Steward.name)) if n]
    names = {n for n, *_ in elders if n and len(n) >= 2} | {n for n, _ in fcs if n and len(n) >= 2}
    names = {n for n in names if not any(n in s for s in staff)}
    out = {
        "name": names,
        "id_number": {i for _, i, _, _ in elders if i},
        "phone": {re.sub(r"\D", "", p) for _, _, p, _ in elders if p} | {re.sub(r"\D", "", p) for _, p in fcs if p},
        "address": {a for *_, a in elders if a and re.search(r"\d", a)},
        "house": set(HOUSES),
    }
    out["phone"] = {p for p in out["phone"] if len(p) >= 7}
    # the formula payloads are attacks, not personal data (they also sit in the unmasked notes)
    out["name"] -= set(FORMULAS)
    out["address"] -= set(FORMULAS)
    assert len(out["name"]) > 200 and len(out["id_number"]) == 300 and len(out["phone"]) > 300
    assert len(out["address"]) > 200
    return out


def leaks(text: str, secrets: dict[str, set[str]]) -> list[str]:
    """The personal values found in ``text`` (digits of phones and IDs also matched without separators)."""
    digits = re.sub(r"[\s\-]", "", text)
    found = [f"name:{n}" for n in secrets["name"] if n in text]
    found += [f"id:{i}" for i in secrets["id_number"] if i in digits]
    found += [f"phone:{p}" for p in secrets["phone"] if p in digits]
    found += [f"address:{a}" for a in secrets["address"] if a in text]
    found += [f"house:{h}" for h in secrets["house"] if h in text]
    return found


def xlsx_text(blob: bytes | Path) -> str:
    """Every cell, sheet name, header and footer of a workbook, as text."""
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(blob) if isinstance(blob, bytes) else blob)
    parts: list[str] = []
    for ws in wb.worksheets:
        parts.append(ws.title)
        for hf in (ws.oddHeader, ws.oddFooter, ws.evenHeader, ws.firstHeader):
            for p in (hf.left, hf.center, hf.right):
                parts.append(p.text or "")
        for row in ws.iter_rows(values_only=True):
            parts.extend("" if v is None else str(v) for v in row)
    return "\n".join(parts)


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True, timeout=60).stdout


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from gridmap.cli import app

    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    return r.output


# ------------------------------------------------------------------ the dashboard


def _dashboard_outputs(app: Any, username: str, password: str) -> tuple[str, dict[str, Any]]:
    """Everything one role gets from the dashboard's views (layout, callbacks, export decoded)."""
    from tests.dashboard.test_dashboard_scope_http import Client

    c = Client(app, username, password)
    data = c.data
    u = __import__("gridmap.access", fromlist=["load_user"]).load_user(data.engine, username)
    texts = [c.layout()]
    exports: list[bytes] = []
    week = data.default_week()
    streets = data.streets(u)
    base = {"sup-week.value": week, "sup-street.value": None, "sup-community.value": None,
            "sup-category.value": None, "sup-level.value": "street", "data-version.data": data.version,
            "sup-table-kind.value": "overdue"}
    views = [dict(base)]
    if streets:
        views.append({**base, "sup-street.value": streets[0]})
        comms = data.communities(u, streets[0])
        if comms:
            views.append({**base, "sup-street.value": streets[0], "sup-community.value": comms[0]})
    for v in views:
        texts.append(json.dumps(c.call("sup-kpis.children", v, ["sup-week.value"]), ensure_ascii=False))
        for level in ("street", "community", "grid"):
            texts.append(json.dumps(c.call("sup-choropleth.data", {**v, "sup-level.value": level},
                                           ["sup-level.value"]), ensure_ascii=False))
        for kind in ("overdue", "grid", "steward"):
            texts.append(json.dumps(c.call("sup-table.columnDefs", {**v, "sup-table-kind.value": kind},
                                           ["sup-table-kind.value"]), ensure_ascii=False))
        out = c.call("sup-download.data", {**v, "sup-export-btn.n_clicks": 1}, ["sup-export-btn.n_clicks"])
        if "sup-download" in out:
            blob = base64.b64decode(out["sup-download"]["data"]["content"])
            texts.append(xlsx_text(blob))
            exports.append(blob)
        texts.append(json.dumps(out.get("sup-msg", ""), ensure_ascii=False))
    if streets:
        texts.append(json.dumps(c.call("sup-community.options", {"sup-street.value": streets[0]},
                                       ["sup-street.value"]), ensure_ascii=False))
    elders = data.inputs()[0]
    for eid in elders["elder_id"].astype(int).tolist()[::25]:  # in and out of the area
        texts.append(json.dumps(c.call("sup-detail.children", {"sup-elders.clickData": {"properties": {"id": eid}},
                                                               "sup-week.value": week}, ["sup-elders.clickData"]),
                                ensure_ascii=False))
    stw = data.stewards(u)
    ids = stw["id"].astype(int).tolist()[:4] if len(stw) else []
    if u.steward_id:
        ids = [u.steward_id, *ids]
    for sid in ids:
        texts.append(json.dumps(c.call("stw-route.children", {"stw-steward.value": sid,
                                                              "stw-day.date": data.today.isoformat(),
                                                              "tabs.value": "steward",
                                                              "data-version.data": data.version},
                                       ["stw-steward.value"]), ensure_ascii=False))
    for street in streets[:2]:
        texts.append(json.dumps(c.call("pln-bars.figure", {"pln-street.value": street, "pln-week.value": week,
                                                           "tabs.value": "planner",
                                                           "data-version.data": data.version},
                                       ["pln-street.value"]), ensure_ascii=False))
    return "\n".join(texts), {"client": c, "exports": exports}


def _need_to_know(store: Engine, username: str, secrets: dict[str, set[str]]) -> set[str]:
    """Issue 18: what a community steward sees in clear by need to know — their own elders' (visit steward)
    address, phone and first contact's phone on their workbench; nothing for any other user."""
    from gridmap.access import load_user
    from gridmap.access.needtoknow import own_visit_steward
    from gridmap.store.models import Elder, FirstContact

    sid = own_visit_steward(load_user(store, username))
    if sid is None:
        return set()
    with store.connect() as conn:
        rows = conn.execute(select(Elder.address, Elder.phone, FirstContact.phone).outerjoin(
            FirstContact, FirstContact.elder_id == Elder.id).where(Elder.visit_steward_id == sid)).all()
    out: set[str] = set()
    for address, phone, fc in rows:
        out |= {f"address:{address}"} | {f"house:{h}" for h in secrets["house"] if address and h in address}
        out |= {f"phone:{re.sub(r'[^0-9]', '', p)}" for p in (phone, fc) if p}
    return out


def test_dashboard_pages_and_callbacks_of_every_role(store: Engine, users: dict[str, str],
                                                     secrets: dict[str, set[str]]) -> None:
    from gridmap.dashboard.app import create_app

    app = create_app(store, warm=False, secret_key="privacy-test-secret-0123456789abcdef")
    assert set(users) >= {"demo_district", "demo_street", "demo_community", "demo_service", "demo_planner",
                          "demo_inspector"}
    sizes = {}
    for name, pw in users.items():
        text, extra = _dashboard_outputs(app, name, pw)
        sizes[name] = len(text)
        found = [f for f in leaks(text, secrets) if f not in _need_to_know(store, name, secrets)]
        assert not found, (name, found[:5])
        for blob in extra["exports"]:  # the xlsx export: no formula, no unescaped formula text
            assert not unsafe_cells(blob), (name, unsafe_cells(blob)[:5])
    # the views did produce personal rows (masked): the scan looked at something
    assert sizes["demo_district"] > 20_000
    # the masked elder names do appear (the scan is not vacuous): e.g. 张*华
    text, extra = _dashboard_outputs(app, "demo_district", users["demo_district"])
    assert re.search(r"[\u4e00-\u9fff]\*", text)
    # and so do formula payloads, escaped: the district's export holds some of the injected elders
    assert any(re.search(r"(^|\n)'[=+\-@＝]", xlsx_text(b)) for b in extra["exports"])


# ------------------------------------------------------------------ exports and CLI


def test_register_exports_and_forms_are_masked(store: Engine, secrets: dict[str, set[str]],
                                               tmp_path: Path) -> None:
    from gridmap.register.exports import (
        export_first_contact_gaps,
        export_record_form,
        export_register,
        read_register_frame,
    )
    from gridmap.register.first_contact import elders_without_valid_first_contact
    from gridmap.store.models import Elder

    res = export_register(store, tmp_path / "reg.xlsx", user="privacy_test")
    assert res.masked and res.rows == 300
    text = xlsx_text(tmp_path / "reg.xlsx")
    assert "*" in text and not leaks(text, secrets), leaks(text, secrets)[:5]
    assert not unsafe_cells(tmp_path / "reg.xlsx"), unsafe_cells(tmp_path / "reg.xlsx")[:5]
    assert re.search(r"\n'=\*+\)", text)  # the masked payload name, escaped (not vacuous)

    with store.connect() as conn:
        ids = conn.execute(select(Elder.id).order_by(Elder.id).limit(5)).scalars().all()
        ids += conn.execute(select(Elder.id).order_by(Elder.id)).scalars().all()[12:60:12]  # with payloads
    for eid in ids:
        export_record_form(store, eid, tmp_path / f"form{eid}.xlsx", user="privacy_test")
        text = xlsx_text(tmp_path / f"form{eid}.xlsx")
        assert not leaks(text, secrets), (eid, leaks(text, secrets)[:5])
        assert not unsafe_cells(tmp_path / f"form{eid}.xlsx"), (eid, unsafe_cells(tmp_path / f"form{eid}.xlsx")[:5])
    if shutil.which("pdftotext"):
        for eid in ids[:3]:
            export_record_form(store, eid, tmp_path / f"form{eid}.pdf", user="privacy_test")
            text = pdf_text(tmp_path / f"form{eid}.pdf")
            assert "探访" in text  # the text layer was read
            assert not leaks(text, secrets), (eid, leaks(text, secrets)[:5])

    gaps = elders_without_valid_first_contact(read_register_frame(store))
    export_first_contact_gaps(gaps, tmp_path / "fc.xlsx", user="privacy_test", audit_engine=store)
    text = xlsx_text(tmp_path / "fc.xlsx")
    assert not leaks(text, secrets), leaks(text, secrets)[:5]
    assert not unsafe_cells(tmp_path / "fc.xlsx"), unsafe_cells(tmp_path / "fc.xlsx")[:5]
    url = store.url.render_as_string(hide_password=False)
    text = _cli("register", "first-contacts", "--database-url", url, "--limit", "300",
                "--out", str(tmp_path / "fc2.xlsx"))
    text += xlsx_text(tmp_path / "fc2.xlsx")
    assert not leaks(text, secrets), leaks(text, secrets)[:5]
    assert not unsafe_cells(tmp_path / "fc2.xlsx"), unsafe_cells(tmp_path / "fc2.xlsx")[:5]


def test_pdf_text_is_checked() -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF record form was not scanned")


def test_visits_due_and_report_are_masked(store: Engine, secrets: dict[str, set[str]], tmp_path: Path) -> None:
    from gridmap.dashboard.data import today_beijing
    from gridmap.rules.requirements import week_of

    url = store.url.render_as_string(hide_password=False)
    week = week_of(today_beijing())
    text = _cli("visits", "due", "--week", week, "--database-url", url, "--out", str(tmp_path / "due.csv"))
    text += (tmp_path / "due.csv").read_text(encoding="utf-8-sig")
    assert "老人" in text and not leaks(text, secrets), leaks(text, secrets)[:5]
    assert not unsafe_csv(tmp_path / "due.csv")
    text = _cli("report", "--week", week, "--out", str(tmp_path / "report.xlsx"), "--database-url", url)
    text += xlsx_text(tmp_path / "report.xlsx")
    assert not leaks(text, secrets), leaks(text, secrets)[:5]
    assert not unsafe_cells(tmp_path / "report.xlsx"), unsafe_cells(tmp_path / "report.xlsx")[:5]


def test_quarantine_export_and_audit_csv_write_payloads_inert(store: Engine, secrets: dict[str, set[str]],
                                                              tmp_path: Path, data_dir: Path) -> None:
    """Rejected ledger rows with formula payloads and numeral houses: the quarantine export, masked and not."""
    import pandas as pd

    from gridmap.register.importer import export_quarantine
    from tests.register.conftest import make_rows

    rows = make_rows(len(FORMULAS), seed=5, start=900)
    for i, r in enumerate(rows):
        r["姓名"] = FORMULAS[i]
        r["家庭住址"] = FORMULAS[(i + 1) % len(FORMULAS)] if i % 2 else f"北京市海淀区学院路街道知春里社区{HOUSES[i % len(HOUSES)]}"
        r["联系电话"] = "0000"  # rejected: every row goes to the quarantine
    good = rows[0]["居民身份证号码"]
    rows[0]["居民身份证号码"] = good[:17] + ("1" if good[17] != "1" else "2")  # a mistyped check digit too
    ledger = tmp_path / "payload.csv"
    pd.DataFrame(rows).to_csv(ledger, index=False, encoding="utf-8-sig")
    from typer.testing import CliRunner

    from gridmap.cli import app

    url = store.url.render_as_string(hide_password=False)
    report = tmp_path / "import-report.json"
    res = CliRunner().invoke(app, ["register", "import", str(ledger), "--source", "民政", "--report", str(report),
                                   "--database-url", url])
    assert res.exit_code == 1, res.output  # rows rejected
    said = res.output + report.read_text(encoding="utf-8")
    personal = {r["居民身份证号码"] for r in rows} | {r["家庭住址"] for r in rows} \
        | {h for h in HOUSES} | {f for f in FORMULAS if len(f) > 3}
    assert not [p for p in personal if p in said], "import report or console shows a personal value"
    for mask in (True, False):
        out = tmp_path / f"q{mask}.xlsx"
        n = export_quarantine(store, out, mask=mask)
        assert n >= len(FORMULAS)
        assert not unsafe_cells(out), (mask, unsafe_cells(out)[:5])
        text = xlsx_text(out)
        assert "'" + (FORMULAS[0] if not mask else "=") in text  # the payloads are there, escaped
    CliRunner().invoke(app, ["audit", "report", "--since", "30d", "--csv", str(tmp_path / "audit.csv"),
                             "--database-url", url])
    assert (tmp_path / "audit.csv").exists() and not unsafe_csv(tmp_path / "audit.csv")


def test_route_list_files_are_masked(store: Engine, secrets: dict[str, set[str]], tmp_path: Path) -> None:
    if not (ROOT / "gridmap" / "routing" / "routelist.py").exists():
        pytest.skip("gridmap/routing/routelist.py does not exist in this version")
    from sqlalchemy import func

    from gridmap.dashboard.data import today_beijing
    from gridmap.routing.district import plan_week
    from gridmap.routing.routelist import load_route_list, write_route_list
    from gridmap.rules.requirements import week_of
    from gridmap.store.models import Elder, Street

    with store.connect() as conn:  # the street with the most elders (a few stewards with stops)
        street = conn.execute(select(Street.name).join(Elder, Elder.street_id == Street.id)
                              .group_by(Street.name).order_by(func.count(Elder.id).desc())).scalars().first()
    week = week_of(today_beijing())
    run = plan_week(store, week, street=street, out_dir=tmp_path / "plans", time_limit=0.2, budget=20,
                    workers=1)
    written = 0
    for s in run.stewards:
        if s.status != "ok":
            continue
        days = [d for d in s.work_minutes if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(d))] \
            or _plan_days(tmp_path / "plans", s.code)
        for day in sorted(days):
            rl = load_route_list(store, tmp_path / "plans", s.code, day, draw_roads=False)
            if not rl.stops:
                continue
            for suffix in (".html", ".gpx", ".geojson", ".pdf"):
                p = write_route_list(rl, tmp_path / f"{s.code}_{day}{suffix}")
                text = pdf_text(p) if suffix == ".pdf" and shutil.which("pdftotext") else \
                    p.read_text(encoding="utf-8", errors="ignore") if suffix != ".pdf" else ""
                assert not leaks(text, secrets), (p.name, leaks(text, secrets)[:5])
            written += 1
            break
        if written >= 3:
            break
    if written == 0:
        pytest.skip(f"the plan of {street} for {week} has no stops to list")


def _plan_days(plan_dir: Path, code: str) -> list[str]:
    days: set[str] = set()
    for f in (plan_dir / code).glob("*.json") if (plan_dir / code).exists() else []:
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        for x in _walk(d):
            if isinstance(x, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", x):
                days.add(x)
    return sorted(days)


def _walk(x: Any) -> Iterator[Any]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield k
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)
    else:
        yield x


# ------------------------------------------------------------------ unmasked exports


def test_unmasked_exports_need_a_reason_are_audited_and_watermarked(store: Engine, tmp_path: Path,
                                                                    secrets: dict[str, set[str]]) -> None:
    from gridmap._errors import ValidationError
    from gridmap.register.exports import export_record_form, export_register
    from gridmap.store.models import AuditLog, Elder

    with pytest.raises(ValidationError) as err:
        export_register(store, tmp_path / "u.xlsx", mask=False, user="privacy_test")
    assert err.value.code == "reason_required" and not (tmp_path / "u.xlsx").exists()
    with pytest.raises(ValidationError):
        export_register(store, tmp_path / "u.xlsx", mask=False, reason="  ", user="privacy_test")
    res = export_register(store, tmp_path / "u.xlsx", mask=False, reason="民政局年度核查", user="privacy_test")
    assert not res.masked
    text = xlsx_text(tmp_path / "u.xlsx")
    assert leaks(text, secrets)  # in clear, as asked
    assert not unsafe_cells(tmp_path / "u.xlsx"), unsafe_cells(tmp_path / "u.xlsx")[:5]  # but inert
    assert "'" + FORMULAS[0] in text
    assert "privacy_test" in text and "未脱敏" in text and "民政局年度核查" in text  # watermark: who, when, why
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", res.watermark)
    with store.connect() as conn:
        eid = conn.execute(select(Elder.id).limit(1)).scalar_one()
    with pytest.raises(ValidationError):
        export_record_form(store, eid, tmp_path / "f.xlsx", mask=False, user="privacy_test")
    form = export_record_form(store, eid, tmp_path / "f.xlsx", mask=False, reason="纸质档案", user="privacy_test")
    assert "privacy_test" in xlsx_text(tmp_path / "f.xlsx") and not form.masked
    with store.connect() as conn:
        rows = conn.execute(select(AuditLog.action, AuditLog.username, AuditLog.detail).where(
            AuditLog.username == "privacy_test")).all()
    unmasked = [d for a, _u, d in rows if "unmask" in a]
    with store.connect() as conn:  # every elder of the register (earlier tests of this module import more)
        n_elders = conn.execute(select(func.count()).select_from(Elder)).scalar_one()
    assert n_elders >= 300
    assert any(d.get("reason") == "民政局年度核查" and d.get("rows") == n_elders for d in unmasked), rows
    assert any(d.get("reason") == "纸质档案" for d in unmasked), rows
    # the CLI refuses --unmask without --reason
    from typer.testing import CliRunner

    from gridmap.cli import app

    r = CliRunner().invoke(app, ["register", "export", "--out", str(tmp_path / "c.xlsx"), "--unmask",
                                 "--database-url", store.url.render_as_string(hide_password=False)])
    assert r.exit_code != 0 and not (tmp_path / "c.xlsx").exists()


# ------------------------------------------------------------------ logs (last: after everything above)


def test_zz_audit_log_and_logs_hold_no_personal_value(store: Engine, secrets: dict[str, set[str]],
                                                      logs: _Collect, started: float) -> None:
    from gridmap.store.models import AuditLog

    with store.connect() as conn:
        rows = conn.execute(select(AuditLog.username, AuditLog.action, AuditLog.entity, AuditLog.entity_id,
                                   AuditLog.client, AuditLog.detail)).all()
    assert len(rows) > 50 and {"view", "denied", "login"} <= {r[1] for r in rows}
    # unmasked exports above are audited by reason only, never by value
    text = "\n".join(json.dumps([*r[:5], r[5]], ensure_ascii=False, default=str) for r in rows)
    assert not leaks(text, secrets), leaks(text, secrets)[:5]
    assert logs.lines, "nothing was logged at all (the handler is not attached)"
    text = "\n".join(logs.lines)
    assert not leaks(text, secrets), leaks(text, secrets)[:5]
    var = ROOT / "var"
    files = [p for p in var.rglob("*.log") if p.stat().st_mtime >= started] if var.exists() else []
    for p in files:
        t = p.read_text(encoding="utf-8", errors="ignore")
        assert not leaks(t, secrets), (p, leaks(t, secrets)[:5])
