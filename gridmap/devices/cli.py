"""``gridmap devices``: the device work lists, states and alarms from the shell.

``list`` and ``worklist`` print a Chinese table, or with ``--json`` a JSON array (ids only, no
personal data); refused input prints the reason in Chinese and English and exits 1.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail, open_store_or_exit
from gridmap._errors import GridmapError, ValidationError

devices_app = typer.Typer(help="Home-safety devices: who is entitled, states, alarms. 智能安防设备", no_args_is_help=True)
_err = Console(stderr=True)

DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL).")]
RulesOpt = Annotated[Optional[Path], typer.Option("--rules", help="A district rules YAML (default: the document's).")]
StreetOpt = Annotated[Optional[str], typer.Option("--street", help="Only this street, e.g. 学院路街道.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON array instead of the table.")]
ByOpt = Annotated[Optional[str], typer.Option("--by", help="Who makes the change (default: the OS user).")]
TodayOpt = Annotated[Optional[str], typer.Option("--today", help="The day ages are taken on, YYYY-MM-DD (default: today in Beijing).")]


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=220)


def _user(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in containers
        return "cli"


def _day(today: str | None) -> date | None:
    if not today:
        return None
    try:
        return date.fromisoformat(today)
    except ValueError:
        raise ValidationError("expected a date like 2026-12-07", "日期格式应为 2026-12-07", field="today",
                              value=today, code="date") from None


def _plain(v: Any) -> Any:
    import pandas as pd

    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return None
    if isinstance(v, (datetime, pd.Timestamp)):
        return pd.Timestamp(v).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return v.item() if hasattr(v, "item") else v


def _rules(path: Path | None) -> Any:
    from gridmap.rules.config import load_rules

    return load_rules(path)


def device_records(df: Any) -> list[dict[str, Any]]:
    """``devices list --json``: id, elder_id, kind (work-list kind), state, then installer and where."""
    from gridmap.devices.domain import kind_of_stored

    return [{"id": int(r["id"]), "elder_id": int(r["elder_id"]), "kind": kind_of_stored(r["kind"]),
             "state": str(r["state"]), "installer": _plain(r["installer"]), "installed_on": _plain(r["installed_on"]),
             "alarm_count": int(r["alarm_count"]), "street": _plain(r["street"]), "community": _plain(r["community"])}
            for r in df.to_dict("records")]


def worklist_records(df: Any) -> list[dict[str, Any]]:
    """``devices worklist --json``: elder_id, reason, state, then kind, installer, device_id, where."""
    return [{"elder_id": int(r["elder_id"]), "reason": r["reason"], "state": r["state"], "kind": r["kind"],
             "installer": r["installer"], "device_id": _plain(r["device_id"]), "street": _plain(r["street"]),
             "community": _plain(r["community"])} for r in df.to_dict("records")]


@devices_app.command("list")
def list_cmd(street: StreetOpt = None, as_json: JsonOpt = False, database_url: DbOpt = None) -> None:
    """List the recorded devices (kind, state, installer, alarms)."""
    from gridmap.devices.domain import STATE_LABELS, kind_of_stored
    from gridmap.devices.store import read_devices

    try:
        df = read_devices(open_store_or_exit(database_url), street=street)
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(device_records(df), ensure_ascii=False))
        return
    t = Table(title=f"设备 / devices ({len(df)})")
    for c in ("编号", "老人", "类型", "状态", "安装单位", "报警次数", "街道", "社区"):
        t.add_column(c)
    for r in df.head(500).to_dict("records"):
        t.add_row(str(r["id"]), str(r["elder_id"]), kind_of_stored(r["kind"]), STATE_LABELS.get(r["state"], r["state"]),
                  str(r["installer"] or ""), str(r["alarm_count"]), str(r["street"] or ""), str(r["community"] or ""))
    _console().print(t)


@devices_app.command("worklist")
def worklist_cmd(
    kind: Annotated[str, typer.Option("--kind", help="smoke_alarm | one_key | fire_kit | home_safety")],
    street: StreetOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the list as .xlsx.")] = None,
    today: TodayOpt = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Who is entitled to a device kind by the document, each with the reason, state and installer."""
    from gridmap.devices.domain import STATE_LABELS, parse_kind
    from gridmap.devices.store import worklist

    try:
        kind = parse_kind(kind)
        if out is not None and out.suffix.lower() != ".xlsx":
            raise ValidationError(f"--out must end in .xlsx, got {out.name}", f"--out 须为 .xlsx 文件：{out.name}",
                                  field="out", value=str(out), code="extension")
        rules = _rules(rules_file)
        df = worklist(open_store_or_exit(database_url), kind, rules=rules, street=street, on=_day(today))
        if out is not None:
            from gridmap.sheets import write_frames_xlsx

            sheet = df.assign(state=df["state"].map(lambda s: STATE_LABELS.get(s, s))).rename(columns={
                "elder_id": "老人编号", "kind": "设备类型", "reason": "配备依据", "state": "状态", "installer": "安装单位",
                "device_id": "设备编号", "street": "街道", "community": "社区"})
            write_frames_xlsx(out, {"设备清单": sheet})
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(worklist_records(df), ensure_ascii=False))
    else:
        t = Table(title=f"{kind} 配备清单 / work list ({len(df)})")
        for c in ("老人", "配备依据", "状态", "安装单位", "街道", "社区"):
            t.add_column(c)
        for r in df.head(300).to_dict("records"):
            t.add_row(str(r["elder_id"]), r["reason"], STATE_LABELS.get(r["state"], r["state"]), r["installer"],
                      str(r["street"] or ""), str(r["community"] or ""))
        _console().print(t)
        counts = df["state"].value_counts().to_dict() if len(df) else {}
        _err.print("、".join(f"{STATE_LABELS[s]} {n}" for s, n in counts.items()) or "无")
    if out is not None:
        _err.print(f"[green]✓[/green] {out}")


@devices_app.command("add")
def add_cmd(
    elder: Annotated[int, typer.Argument(help="The elder's id.")],
    kind: Annotated[str, typer.Option("--kind", help="smoke_alarm | one_key | fire_kit | home_safety")],
    state: Annotated[str, typer.Option("--state", help="requested | installed | refused (or 已申请/已安装/拒绝安装).")] = "requested",
    serial: Annotated[Optional[str], typer.Option("--serial", help="The device's serial number.")] = None,
    own_cost: Annotated[bool, typer.Option("--own-cost", help="Asked for at the elder's own cost (自费).")] = False,
    note: Annotated[Optional[str], typer.Option("--note")] = None,
    by: ByOpt = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Record a device for an elder: asked for, refused or installed."""
    from gridmap.devices.store import add_device

    try:
        did = add_device(open_store_or_exit(database_url), elder, kind, state=state, user=_user(by),
                         rules=_rules(rules_file), serial=serial, note=note, funded_by="自费" if own_cost else None)
    except GridmapError as exc:
        fail(exc)
    print(json.dumps({"id": did, "elder_id": elder, "kind": kind, "state": state}, ensure_ascii=False))


@devices_app.command("update")
def update_cmd(
    device_id: Annotated[int, typer.Argument(help="The device's id.")],
    state: Annotated[str, typer.Option("--state", help="needed | requested | installed | refused | faulty | removed.")],
    note: Annotated[Optional[str], typer.Option("--note")] = None,
    by: ByOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Change a device's state (已申请 → 已安装, 已安装 → 故障 …)."""
    from gridmap.devices.domain import parse_state
    from gridmap.devices.store import update_device

    try:
        new = parse_state(state)
        old = update_device(open_store_or_exit(database_url), device_id, new, user=_user(by), note=note)
    except GridmapError as exc:
        fail(exc)
    print(json.dumps({"id": device_id, "from": old, "state": new}, ensure_ascii=False))


@devices_app.command("alarms")
def alarms_cmd(
    file: Annotated[Path, typer.Argument(help="CSV with columns device_id,time,alarm_type, or the same as JSON.")],
    as_json: JsonOpt = False,
    by: ByOpt = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Ingest alarms from a monitoring platform: each becomes the referrals or emergency the rules say."""
    from gridmap.care.rules import care_rules
    from gridmap.devices.domain import load_alarms
    from gridmap.devices.store import ingest_alarms

    try:
        rules = _rules(rules_file)
        alarms = load_alarms(file, care_rules(rules))
        res = ingest_alarms(open_store_or_exit(database_url), alarms, rules=rules, user=_user(by))
    except GridmapError as exc:
        fail(exc)
    recs = [{"row": r.row, "device_id": r.device_id, "alarm_type": r.alarm_type, "elder_id": r.elder_id,
             "emergency": r.emergency, "duplicate": r.duplicate, "ignored": r.ignored,
             "referral_ids": r.referral_ids, "device_state": r.device_state} for r in res]
    if as_json:
        print(json.dumps(recs, ensure_ascii=False))
    new = [r for r in res if not r.duplicate]
    _err.print(f"[green]✓[/green] {len(new)} 条报警录入 / alarms stored, {len(res) - len(new)} 条重复 / duplicates, "
               f"{sum(len(r.referral_ids) for r in new)} 件转介 / referrals "
               f"({sum(len(r.referral_ids) for r in new if r.emergency)} 紧急 / emergency)")


@devices_app.command("coverage")
def coverage_cmd(street: StreetOpt = None, as_json: JsonOpt = False, today: TodayOpt = None,
                 rules_file: RulesOpt = None, database_url: DbOpt = None) -> None:
    """Coverage per street and community: entitled elders, each state, 覆盖率."""
    from gridmap.devices.store import coverage

    try:
        df = coverage(open_store_or_exit(database_url), rules=_rules(rules_file), street=street, on=_day(today))
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps([{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")], ensure_ascii=False))
        return
    t = Table(title="设备覆盖率 / coverage")
    for c in ("街道", "社区", "类型", "应配备", "已安装", "覆盖率"):
        t.add_column(c)
    for r in df.head(400).to_dict("records"):
        t.add_row(str(r["street"]), str(r["community"]), r["kind"], str(r["entitled"]), str(r["installed"]),
                  f"{r['coverage']:.0%}")
    _console().print(t)
