"""``gridmap visits`` (due visits, recording, events, escalation) and ``gridmap report``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError

visits_app = typer.Typer(help="Visit rules and records. 探访规则与记录", no_args_is_help=True)
console = Console(stderr=True)

DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL (default: GRIDMAP_DATABASE_URL).")]
RulesOpt = Annotated[Optional[Path], typer.Option("--rules", help="A district rules YAML (default: the document's).")]


def _engine(database_url: str | None):  # noqa: ANN202
    from gridmap._cli import open_store_or_exit

    return open_store_or_exit(database_url)


@visits_app.command("due")
def due(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W49.")],
    steward: Annotated[Optional[str], typer.Option("--steward", help="Steward id or code.")] = None,
    street: Annotated[Optional[str], typer.Option("--street", help="Street name, e.g. 学院路街道.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the requirements (.csv or .json).")] = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """List the visits due in a week (count, mode, deadline, priority, reasons)."""
    from gridmap.rules.config import load_rules
    from gridmap.rules.requirements import REASON_LABELS, parse_week, weekly_requirements
    from gridmap.rules.store import read_events, read_facts, resolve_steward

    try:
        rules = load_rules(rules_file)
        monday, sunday = parse_week(week)
        engine = _engine(database_url)
        sid = resolve_steward(engine, steward) if steward is not None else None
        facts = read_facts(engine, monday, street=street, steward_id=sid, rules=rules)
        events = read_events(engine, monday, sunday)
        req = weekly_requirements(facts, week, rules, events)
    except GridmapError as exc:
        _fail(exc)
    req = req.sort_values(["priority", "deadline"], ascending=[False, True])
    t = Table(title=f"{week} 应探访 / visits due ({len(facts)} elders, {len(events)} events)")
    for c in ("老人", "次数", "方式", "截止", "优先级", "类别", "原因"):
        t.add_column(c)
    for r in req.head(200).itertuples():
        t.add_row(str(r.elder_id), str(r.count), "上门" if r.mode == "in_home" else "远程",
                  r.deadline.isoformat(), str(r.priority),
                  ("日常看护" if r.kind == "daily_care" else "探访") + ("·驿站" if r.by == "care_station" else ""),
                  "、".join(REASON_LABELS.get(x, x) for x in r.reasons))
    Console().print(t)
    tot = req.groupby("mode")["count"].sum().to_dict() if len(req) else {}
    console.print(f"in-home {tot.get('in_home', 0)}, remote {tot.get('remote', 0)} "
                  f"(rows {len(req)}{', first 200 shown' if len(req) > 200 else ''})")
    if out is not None:
        if out.suffix.lower() == ".json":
            out.write_text(req.to_json(orient="records", date_format="iso", force_ascii=False), encoding="utf-8")
        else:
            from gridmap.sheets import write_csv

            write_csv(out, req)  # text inert (no formula), owner-only
        console.print(f"[green]✓[/green] {out}")


@visits_app.command("record")
def record(
    file: Annotated[Path, typer.Argument(help="A visit (JSON object) or a list of visits; - reads JSON lines from standard input.")],
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
    user: Annotated[str, typer.Option("--user", help="Who enters the records.")] = "cli",
) -> None:
    """Record visits from a JSON file: validated, hazards and referrals opened.

    ``-`` reads JSON lines from standard input instead and records each visit as its line arrives
    (a sync job or a field device piping records in): one process, one connection, a line each.
    """
    from gridmap.rules.config import load_rules
    from gridmap.rules.store import record_visit
    from gridmap.rules.visits import parse_visit

    if str(file) == "-":
        _record_stream(database_url, rules_file, user)
        return
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        console.print(f"[red]错误[/red] 无法读取 JSON 文件 {file}\n[red]Error[/red] cannot read JSON {file}: {exc}")
        raise typer.Exit(2) from None
    items = data if isinstance(data, list) else [data]
    try:
        rules = load_rules(rules_file)
        records = []
        for i, item in enumerate(items):
            try:
                records.append(parse_visit(item, rules))
            except GridmapError as exc:
                if len(items) > 1:
                    exc.message_en = f"visit {i + 1}: {exc.message_en}"
                    exc.message_zh = f"第{i + 1}条探访：{exc.message_zh}"
                raise
        engine = _engine(database_url)
        for item, rec in zip(items, records, strict=True):
            # one submission stored once: its idempotency_key, else the same elder, visitor and start time
            key = item.get("idempotency_key") if isinstance(item, dict) else None
            res = record_visit(engine, rec, rules=rules, user=user, idempotency_key=key)
            if res.duplicate:
                console.print(f"[yellow]=[/yellow] 已存储过，未重复录入 / duplicate: visit {res.visit_id} "
                              f"(elder {rec.elder_id}) was stored before; nothing new written")
                continue
            console.print(f"[green]✓[/green] visit {res.visit_id} (elder {rec.elder_id}"
                          f"{', 补录 late entry' if res.late_entry else ''}): "
                          f"{len(res.hazard_ids)} hazards{f' (+{len(res.reopened_hazard_ids)} reopened)' if res.reopened_hazard_ids else ''}, "
                          f"{len(res.referral_ids)} referrals, {len(res.care_service_ids)} care services"
                          f"{f', {len(res.task_ids)} service tasks' if res.task_ids else ''}")
            if not res.effective:  # issue 17 (A): stored, not counted
                console.print(f"[yellow]![/yellow] 非有效探访（{rec.ineffective_reason}），不计入探访率 / not an "
                              f"effective visit (unanswered: {', '.join(rec.missing_answers) or 'mode or role'})")
    except GridmapError as exc:
        _fail(exc, 2 if getattr(exc, "code", None) else 1)


def _record_stream(database_url: str | None, rules_file: Path | None, user: str) -> None:
    """``gridmap visits record -``: one visit per line of standard input, each stored as it arrives.

    A line that fails validation is reported (line number, field, reason, in Chinese and English) and
    skipped; the others are stored. The exit code is 2 when any line was refused, else 0.
    """
    import sys

    from gridmap.rules.config import load_rules
    from gridmap.rules.store import record_visit
    from gridmap.rules.visits import parse_visit

    try:
        rules = load_rules(rules_file)
        engine = _engine(database_url)
    except GridmapError as exc:
        _fail(exc, 2 if getattr(exc, "code", None) else 1)
    refused = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("a visit is a JSON object")
        except ValueError as exc:
            refused += 1
            console.print(f"[red]错误[/red] 第{n}行不是探访 JSON 对象 / [red]Error[/red] line {n}: not a visit "
                          f"JSON object ({exc})")
            continue
        try:
            rec = parse_visit(item, rules)
            res = record_visit(engine, rec, rules=rules, user=user, idempotency_key=item.get("idempotency_key"))
        except GridmapError as exc:
            refused += 1
            console.print(f"[red]错误[/red] 第{n}行：{exc.message_zh}\n[red]Error[/red] line {n}: {exc.message_en}")
            continue
        state = "duplicate" if res.duplicate else "stored"
        print(json.dumps({"line": n, "visit_id": res.visit_id, "elder_id": rec.elder_id, "status": state}), flush=True)
    if refused:
        raise typer.Exit(2)


@visits_app.command("events")
def events(
    file: Annotated[Path, typer.Argument(help="Events as CSV (kind,name,starts_on,ends_on[,street]), YAML or JSON.")],
    database_url: DbOpt = None,
) -> None:
    """Import calendar events (extreme weather alerts, holidays)."""
    from gridmap.rules.facts import load_events
    from gridmap.rules.store import save_events

    try:
        n = save_events(_engine(database_url), load_events(file))
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] {n} events stored")


@visits_app.command("escalate")
def escalate(database_url: DbOpt = None, rules_file: RulesOpt = None) -> None:
    """Escalate emergency referrals not acknowledged in time, each once (alias of the escalation of ``gridmap jobs run``)."""
    from gridmap.rules.config import load_rules
    from gridmap.rules.store import escalate_referrals

    try:
        ids = escalate_referrals(_engine(database_url), rules=load_rules(rules_file))
    except GridmapError as exc:
        _fail(exc)
    console.print(f"[green]✓[/green] {len(ids)} referrals escalated")


def report_command(
    out: Annotated[Path, typer.Option("--out", help="The xlsx to write.")] = Path("report.xlsx"),
    week: Annotated[Optional[str], typer.Option("--week", help="ISO week, e.g. 2026-W49.")] = None,
    month: Annotated[Optional[str], typer.Option("--month", help="Or a month, e.g. 2026-11.")] = None,
    street: Annotated[Optional[str], typer.Option("--street", help="Only this street.")] = None,
    today: Annotated[Optional[str], typer.Option(
        "--today", help="The as-of date of a period still running, YYYY-MM-DD (default: today in Beijing); "
                        "nothing is overdue before its due date.")] = None,
    rules_file: RulesOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Supervision report (xlsx): indicators per street, steward and community, laggards first; 隐患与转介."""
    from datetime import date

    from sqlalchemy import select

    from gridmap._errors import ValidationError
    from gridmap.followups.measures import followup_sheet
    from gridmap.followups.store import read_hazard_frame, read_referral_frame
    from gridmap.rules.config import load_rules
    from gridmap.rules.indicators import compute_indicators, period_of
    from gridmap.rules.report import write_report
    from gridmap.rules.store import indicator_inputs
    from gridmap.store.models import Steward

    try:
        rules = load_rules(rules_file)
        try:
            as_of = date.fromisoformat(today) if today else datetime.now(timezone(timedelta(hours=8))).date()
        except ValueError:
            raise ValidationError("expected a date like 2026-12-07", "日期格式应为 2026-12-07", field="today",
                                  value=today, code="date") from None
        if week is None and month is None:
            last = as_of - timedelta(days=7)
            y, w, _ = last.isocalendar()
            week = f"{y}-W{w:02d}"
        period = period_of(week, month)
        engine = _engine(database_url)
        elders, visits, hazards, referrals = indicator_inputs(
            engine, min(period.start, period.month_start), period.end, street=street, rules=rules)
        kw = dict(week=week, month=month, rules=rules, as_of=as_of)
        by_street = compute_indicators(elders, visits, hazards, referrals, level="street", **kw)
        by_steward = compute_indicators(elders, visits, hazards, referrals, level="steward", **kw)
        by_comm = compute_indicators(elders, visits, hazards, referrals, level="community", **kw)
        fu = followup_sheet(read_hazard_frame(engine, street=street), read_referral_frame(engine, street=street),
                            week=week, month=month, as_of=as_of,
                            streets=sorted(str(s) for s in by_street.index))
        with engine.connect() as conn:
            names = {i: f"{c} {n}" for i, c, n in conn.execute(select(Steward.id, Steward.code, Steward.name))}
        from gridmap.care.report import NOTES, care_sheets  # issue 17 part B: 设备, 驿站, 家庭医生, 重点摸排

        care = care_sheets(engine, rules, weeks=period.weeks, month=period.month_start, as_of=as_of, street=street)
        from gridmap.tasks.report import NOTES as TASK_NOTES  # issue 17 part A: 服务任务
        from gridmap.tasks.report import task_sheet

        care = {"服务任务": task_sheet(engine, start=period.start, end=period.end,
                                   as_of=as_of, street=street, streets=sorted(str(s) for s in by_street.index)),
                **care}
        NOTES = {k: [*TASK_NOTES[k], *NOTES[k]] for k in ("项目", "说明")}
        write_report(out, by_street, period=period, stewards=by_steward, communities=by_comm,
                     steward_names=names, followups=fu, as_of=as_of, extra_sheets=care, extra_notes=NOTES)
    except GridmapError as exc:
        _fail(exc)
    t = Table(title=f"{period.label} 督导报表 / supervision (laggards first)")
    for c in ("街道", "周探访率", "月有效探访率", "逾期探访", "未整改隐患"):
        t.add_column(c)
    for name, r in by_street.head(10).iterrows():
        t.add_row(str(name), f"{r['weekly_rate']:.1%}", f"{r['monthly_rate']:.1%}", str(r["overdue"]),
                  str(r["hazards_open"]))
    Console().print(t)
    console.print(f"[green]✓[/green] {out}: {len(by_street)} streets, {len(by_steward)} stewards")
