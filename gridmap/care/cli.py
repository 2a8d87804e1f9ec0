"""``gridmap stations`` (四(二) the 驿站's 巡视探访, supervised by the street), ``gridmap doctors``
(三(五)2 family-doctor hand-over per centre) and ``gridmap survey`` (二.1/二.2 重点摸排 each month).

A Chinese table by default, ``--json`` a JSON array (ids only, no personal data).
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail, open_store_or_exit
from gridmap._errors import GridmapError, ValidationError

stations_app = typer.Typer(help="Care stations (驿站): signed elders, 巡视探访 per week, double visits.", no_args_is_help=True)
doctors_app = typer.Typer(help="Family doctors: elders who want a contract, per health centre. 家庭医生", no_args_is_help=True)
survey_app = typer.Typer(help="重点摸排: 80+ living alone or empty-nest not assessed this month.", no_args_is_help=True)
_err = Console(stderr=True)
BEIJING = timezone(timedelta(hours=8))

DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL).")]
RulesOpt = Annotated[Optional[Path], typer.Option("--rules", help="A district rules YAML (default: the document's).")]
StreetOpt = Annotated[Optional[str], typer.Option("--street", help="Only this street, e.g. 学院路街道.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON array instead of the table.")]
WeekOpt = Annotated[Optional[str], typer.Option("--week", help="ISO week, e.g. 2026-W49 (default: this week).")]


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=220)


def _today() -> date:
    return datetime.now(BEIJING).date()


def _plain(v: Any) -> Any:
    import pandas as pd

    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return None
    if isinstance(v, date):
        return v.isoformat()
    return v.item() if hasattr(v, "item") else v


def _records(df: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]


def _rules(path: Path | None) -> Any:
    from gridmap.rules.config import load_rules

    return load_rules(path)


def _week(week: str | None) -> str:
    from gridmap.rules.requirements import parse_week, week_of

    if week is None:
        return week_of(_today())
    parse_week(week)
    return week.upper()


def station_frames(engine: Any, week: str, rules: Any, *, street: str | None = None) -> tuple[Any, Any]:
    """(station view, double visits) of ``week`` read from the store."""
    from gridmap.care.domain import double_visits, station_view
    from gridmap.care.rules import care_rules
    from gridmap.care.store import read_care_elders, read_care_visits
    from gridmap.rules.requirements import parse_week

    mon, sun = parse_week(week)
    elders = read_care_elders(engine, mon, street=street)
    signed = elders[elders["signed"]]
    visits = read_care_visits(engine, mon, sun, elder_ids=signed["elder_id"].tolist()) if len(signed) else \
        read_care_visits(engine, mon, mon - timedelta(days=1))
    kw = dict(programme_statuses=[s.value for s in rules.programme_statuses],
              effective_modes=[m.value for m in rules.effective_modes])
    care = care_rules(rules)
    return station_view(elders, visits, week, care, **kw), double_visits(elders, visits, week, care, **kw)


@stations_app.command("view")
def stations_view(week: WeekOpt = None, street: StreetOpt = None, as_json: JsonOpt = False,
                  rules_file: RulesOpt = None, database_url: DbOpt = None) -> None:
    """Per 驿站: signed elders, visited by the station this week (巡视探访率), double visits; lowest rate first."""
    try:
        wk = _week(week)
        view, _ = station_frames(open_store_or_exit(database_url), wk, _rules(rules_file), street=street)
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(_records(view), ensure_ascii=False))
        return
    t = Table(title=f"{wk} 驿站巡视探访 / station visits ({len(view)} stations)")
    for c in ("驿站", "街道", "签约老人", "已巡视探访", "巡视探访率", "管家也探访", "重复探访"):
        t.add_column(c)
    for r in view.head(300).to_dict("records"):
        t.add_row(str(r["station"]), str(r["street"] or ""), str(r["signed"]), str(r["visited"]), f"{r['rate']:.0%}",
                  str(r["steward_visited"]), str(r["double_visits"]))
    _console().print(t)


@stations_app.command("doubles")
def stations_doubles(week: WeekOpt = None, street: StreetOpt = None, as_json: JsonOpt = False,
                     rules_file: RulesOpt = None, database_url: DbOpt = None) -> None:
    """Signed elders visited in the week both by their station and by the visit steward (flag)."""
    try:
        wk = _week(week)
        _, dbl = station_frames(open_store_or_exit(database_url), wk, _rules(rules_file), street=street)
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(_records(dbl), ensure_ascii=False))
        return
    t = Table(title=f"{wk} 重复探访 / visited by both ({len(dbl)})")
    for c in ("老人", "驿站", "街道", "社区", "驿站探访", "管家探访"):
        t.add_column(c)
    for r in dbl.to_dict("records"):
        t.add_row(str(r["elder_id"]), str(r["station"]), str(r["street"]), str(r["community"]),
                  str(r["station_visits"]), str(r["steward_visits"]))
    _console().print(t)


@stations_app.command("assign")
def stations_assign(all_: Annotated[bool, typer.Option("--all", help="Re-assign every signed elder, not only those without one.")] = False,
                    by: Annotated[str, typer.Option("--by", help="Who makes the change.")] = "cli",
                    database_url: DbOpt = None) -> None:
    """Record the nearest care station for signed elders without one."""
    from gridmap.care.store import assign_stations

    try:
        n = assign_stations(open_store_or_exit(database_url), user=by, only_missing=not all_)
    except GridmapError as exc:
        fail(exc)
    _err.print(f"[green]✓[/green] {n} elders given their nearest care station / 已登记就近驿站")


def doctor_frame(engine: Any, rules: Any, *, street: str | None = None) -> Any:
    """The family-doctor hand-over list read from the store."""
    from gridmap.care.domain import doctor_handover
    from gridmap.care.rules import care_rules
    from gridmap.care.store import read_care_elders, read_points

    return doctor_handover(read_care_elders(engine, _today(), street=street), read_points(engine), care_rules(rules),
                           programme_statuses=[s.value for s in rules.programme_statuses])


@doctors_app.command("list")
def doctors_list(street: StreetOpt = None,
                 centre: Annotated[Optional[str], typer.Option("--centre", help="Only this centre (name or id).")] = None,
                 as_json: JsonOpt = False, rules_file: RulesOpt = None, database_url: DbOpt = None) -> None:
    """Elders without a family-doctor contract who want one, each with the nearest health centre or station."""
    try:
        df = doctor_frame(open_store_or_exit(database_url), _rules(rules_file), street=street)
        if centre is not None:
            df = df[(df["centre"] == centre) | (df["centre_id"].astype(str) == str(centre))]
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(_records(df), ensure_ascii=False))
        return
    per = df.groupby(["centre"], dropna=False).size().sort_values(ascending=False)
    t = Table(title=f"家庭医生签约意愿 / want a family doctor ({len(df)} elders, {len(per)} centres)")
    for c in ("卫生服务中心（站）", "人数"):
        t.add_column(c)
    for name, n in per.head(100).items():
        t.add_row(str(name), str(n))
    _console().print(t)


def survey_frame(engine: Any, month: date, rules: Any, *, street: str | None = None) -> Any:
    """The 重点摸排 list of ``month`` read from the store."""
    from gridmap.care.domain import key_survey
    from gridmap.care.rules import care_rules
    from gridmap.care.store import read_care_elders, read_care_visits

    start = month.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    elders = read_care_elders(engine, start, street=street)
    visits = read_care_visits(engine, date(2000, 1, 1), end)
    return key_survey(elders, visits, start, care_rules(rules),
                      programme_statuses=[s.value for s in rules.programme_statuses],
                      effective_modes=[m.value for m in rules.effective_modes])


def parse_month(month: str | None) -> date:
    """``2026-12`` → its first day (default: this month in Beijing)."""
    if month is None:
        return _today().replace(day=1)
    try:
        return date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValidationError("expected a month like 2026-12", "月份格式应为 2026-12", field="month", value=month,
                              code="month") from None


@survey_app.command("list")
def survey_list(month: Annotated[Optional[str], typer.Option("--month", help="e.g. 2026-12 (default: this month).")] = None,
                street: StreetOpt = None, as_json: JsonOpt = False, rules_file: RulesOpt = None,
                database_url: DbOpt = None) -> None:
    """重点摸排: elders 80+ living alone or empty-nest not yet assessed this month, per community."""
    try:
        m = parse_month(month)
        df = survey_frame(open_store_or_exit(database_url), m, _rules(rules_file), street=street)
    except GridmapError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(_records(df), ensure_ascii=False))
        return
    from gridmap.care.domain import per_community

    per = per_community(df, "未摸排")
    t = Table(title=f"{m:%Y-%m} 重点摸排 / key survey due ({len(df)} elders)")
    for c in ("街道", "社区", "未摸排"):
        t.add_column(c)
    for r in per.to_dict("records"):
        t.add_row(str(r["street"]), str(r["community"]), str(r["未摸排"]))
    _console().print(t)
