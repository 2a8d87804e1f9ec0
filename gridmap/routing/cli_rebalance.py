"""The ``gridmap plan rebalance`` and ``gridmap plan capacity`` commands: grid rebalancing and workforce sizing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gridmap._cli import fail as _fail
from gridmap._errors import GridmapError, ValidationError
from gridmap.routing.cli import plan_app

_console = Console(stderr=True)


def _operator(engine: Any, user: str | None, street: str) -> tuple[int, str]:
    """(app_user id, actor) of the command: ``--user`` or the OS account when a gridmap user who may plan the
    street, else the disabled service account ``cli`` (actor ``cli:<os account>``)."""
    from sqlalchemy import select

    from gridmap.access import can_edit, load_user
    from gridmap.register.cli import os_account
    from gridmap.routing.rebalance_store import account_id
    from gridmap.store.changes import cli_actor
    from gridmap.store.models import Street

    name = user or os_account()
    u = load_user(engine, name)
    if u is None and user is not None:
        raise ValidationError(f"--user {user!r} is not a gridmap user", f"--user“{user}”不是系统用户", field="user",
                              value=user, code="unknown_user")
    if u is not None:
        with engine.connect() as conn:
            sid = conn.execute(select(Street.id).where(Street.name == street)).scalar()
        if not can_edit(u.scope, "plan", street_id=sid):
            raise ValidationError(f"user {u.username!r} may not change plans of {street}",
                                  f"用户“{u.username}”无权调整{street}的规划", field="user", value=u.username,
                                  code="may_not_plan")
        return int(u.id), u.username
    uid = account_id(engine, "cli", create=True)
    assert uid is not None
    return uid, cli_actor()


def _print_proposal(d: dict[str, Any]) -> None:
    t = Table(title=f"{d['street']} {d['week']} 网格负载均衡 / grid rebalancing"
              + (" (允许跨社区 cross-community allowed)" if d["allow_cross_community"] else ""))
    for c in ("网格 grid", "社区 community", "原管家 from", "新管家 to", "老人 elders", "跨社区 cross"):
        t.add_column(c)
    for m in d["moves"]:
        t.add_row(m["grid"], m["community_name"], f"{m['from_name'] or ''} {m['from_steward'] or '（无 none）'}",
                  f"{m['to_name'] or ''} {m['to_steward']}", str(len(m["elders"])), "是 yes" if m["cross_community"]
                  else "")
    _console.print(t)
    if d.get("splits"):
        for sp in d["splits"]:
            _console.print(f"拆分网格 split {sp['grid']} → {', '.join(sp['new_grids'])} ({sp['elders']} 位老人 elders)")
    s = Table(title="管家每周工作量（分钟）/ weekly workload per steward (minutes)")
    for c in ("管家 steward", "社区 community", "调整前 before", "调整后 after", "可用 capacity"):
        s.add_column(c, justify="right" if "fore" in c or "after" in c or "capa" in c else "left")
    for x in sorted(d["stewards"], key=lambda x: -x["workload_before"]):
        s.add_row(f"{x['name']} {x['steward']}", x["community_name"], f"{x['workload_before']:.0f}",
                  f"{x['workload_after']:.0f}", f"{x['capacity']:.0f}")
    _console.print(s)
    _console.print(
        f"最高周负载 largest {d['max_before']:.0f} → {d['max_after']:.0f} 分钟 min (最高/平均 largest/mean "
        f"{d['ratio_before']:.2f} → {d['ratio_after']:.2f}); CP-SAT 下界 bound {d['bound']:.0f}, gap {d['gap']:.1%}, "
        f"{d['status']}; {d['grids_moved']} 个网格 grids, {d['elders_moved']} 位老人 elders change steward, "
        f"{d['cross_community_moves']} 跨社区 cross-community")
    for n in d.get("notes") or []:
        _console.print(f"[yellow]注意[/yellow] {n}")


@plan_app.command("rebalance")
def plan_rebalance_command(
    street: Annotated[str | None, typer.Option("--street", help="Street (name), e.g. 北下关街道.")] = None,
    week: Annotated[str | None, typer.Option("--week", help="ISO week, e.g. 2026-W50.")] = None,
    allow_cross_community: Annotated[bool, typer.Option(
        "--allow-cross-community", help="Let a grid go to the visit steward of a neighbouring community (flagged).")
    ] = False,
    split: Annotated[bool, typer.Option("--split/--no-split", help="Cut grids heavier than the street's mean "
                                        "workload when that lowers the largest workload.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proposal as JSON on stdout.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Write the proposal (history, change feed).")] = False,
    undo: Annotated[str | None, typer.Option("--undo", help="Undo the applied proposal ID.")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.1, help="CP-SAT seconds per phase.")] = 10.0,
    user: Annotated[str | None, typer.Option("--user", help="Gridmap user who plans (default: the OS account; "
                                             "else the service account cli).")] = None,
    gpkg: Annotated[Path | None, typer.Option("--gpkg", help="Also write the proposal's grids (with their steward "
                                              "before and after) to this GeoPackage for QGIS.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
) -> None:
    """Propose moving whole grids between visit stewards to lower the largest weekly workload; --apply writes it.

    Grids stay within their community unless --allow-cross-community; all elders of a grid get the grid's
    steward. The optimiser is OR-Tools CP-SAT: its bound on the largest workload and the gap are printed.
    Exit 1 on refused input (unknown street, malformed week, stale proposal); nothing is half-written.
    """
    from gridmap._cli import open_store
    from gridmap.routing.rebalance import propose_rebalance
    from gridmap.routing.rebalance_store import apply_proposal, keep_proposal, undo_proposal

    try:
        engine = open_store(database_url)
        if undo is not None:
            p = undo_proposal(engine, undo, _operator(engine, user, _street_of(engine, undo))[1])
            n = sum(len(m["elders"]) for m in p["moves"])
            if as_json:
                typer.echo(json.dumps({"id": undo, "undone": True, "street": p["street"], "week": p["week"],
                                       "elders_restored": n, "grids_restored": len(p.get("splits") or [])},
                                      ensure_ascii=False))
            _console.print(f"[green]✓[/green] 已撤销 undone {undo}: {n} 位老人恢复原探访管家 elders restored"
                           + (f", {len(p['splits'])} 个网格恢复 grids restored" if p.get("splits") else ""))
            return
        if not street or not week:
            raise ValidationError("--street and --week are required (or --undo ID)", "须提供 --street 和 --week（或 --undo ID）",
                                  field="street" if not street else "week", code="missing")
        with _console.status("CP-SAT 优化中 / optimising…"):
            prop = propose_rebalance(engine, street, week, allow_cross_community=allow_cross_community,
                                     time_limit=time_limit, split=split)
        if apply:
            uid, actor = _operator(engine, user, street)
            payload = {**prop.to_dict(), "moves": prop.moves, "splits": prop.splits}
            prop.id = keep_proposal(engine, uid, street, week, payload)
            if prop.moves or prop.splits:
                apply_proposal(engine, prop.id, actor)
                prop.applied = True
        if gpkg is not None:
            from gridmap.layers.grids_io import write_proposal_grids

            write_proposal_grids(prop, gpkg)
    except GridmapError as exc:
        _fail(exc, 1)
    d = prop.to_dict()
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False))
    else:
        _print_proposal(d)
    if apply:
        _console.print(f"[green]✓[/green] 已写入 applied {d['id']} (撤销 undo: gridmap plan rebalance --undo {d['id']})"
                       if prop.applied else f"无需调整 nothing to change ({d['id']})")
    else:
        _console.print("预览，未写入 preview only: add --apply to write it")


def _street_of(engine: Any, pid: str) -> str:
    from gridmap.routing.rebalance_store import load_proposal

    p = load_proposal(engine, pid)
    if p is None:
        raise ValidationError("no such rebalancing proposal", "未找到该负载均衡方案", field="undo", value=pid,
                              code="unknown_proposal")
    return str(p["street"])


__all__ = ["plan_capacity_command", "plan_joint_command", "plan_rebalance_command"]


@plan_app.command("capacity")
def plan_capacity_command(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W50.")],
    street: Annotated[str | None, typer.Option("--street", help="Only this street (name), else the district.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
) -> None:
    """Per community: steward-hours the rules require this week, hours available, and who would close the gap."""
    from gridmap._cli import open_store
    from gridmap.routing.capacity import street_capacity
    from gridmap.routing.rebalance_store import street_names

    try:
        engine = open_store(database_url)
        streets = [street] if street else street_names(engine)
        rows = [c for s in streets for c in street_capacity(engine, s, week)]
    except GridmapError as exc:
        _fail(exc, 1)
    tot = {"required_hours": round(sum(c.required_hours for c in rows), 1),
           "available_hours": round(sum(c.available_hours for c in rows), 1),
           "gap_hours": round(sum(c.gap_hours for c in rows), 1),
           "stewards_needed": sum(c.stewards_needed for c in rows),
           "communities_short": sum(1 for c in rows if c.gap_hours > 0)}
    if as_json:
        typer.echo(json.dumps({"week": week, "street": street, "communities": [c.as_dict() for c in rows],
                               "totals": tot}, ensure_ascii=False))
        return
    t = Table(title=f"{week} {street or '全区 district'} 人手测算 / workforce sizing (hours per week)")
    for c in ("社区 community", "需要 required", "可用 available", "缺口 gap", "需增管家 more stewards",
              "附近服务管家 nearby service stewards"):
        t.add_column(c)
    for c in sorted(rows, key=lambda c: -c.gap_hours):
        t.add_row(f"{c.street} {c.community_name}", f"{c.required_hours:.1f}", f"{c.available_hours:.1f}",
                  f"{c.gap_hours:.1f}", str(c.stewards_needed),
                  "、".join(f"{h['name']}({h['minutes_away']:.0f}分钟, {h['hours']}h)" for h in c.helpers))
    _console.print(t)
    _console.print(f"合计 total: 需要 required {tot['required_hours']} h, 可用 available {tot['available_hours']} h, "
                   f"缺口 gap {tot['gap_hours']} h in {tot['communities_short']} communities: "
                   f"{tot['stewards_needed']} 名探访管家 more visit stewards")


@plan_app.command("joint")
def plan_joint_command(
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W50.")],
    community: Annotated[str, typer.Option("--community", help="Community code (12 digits).")],
    out: Annotated[Path, typer.Option("--out", help="Problem JSON to write (then gridmap plan solve / check).")] =
    Path("joint.json"),
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
) -> None:
    """Write the joint weekly problem of one community: its visit steward and the service stewards of its elders
    planned together, each visit allowed to any of them with its own steward preferred (continuity)."""
    from gridmap._cli import open_store
    from gridmap.routing.weekly import community_joint_problem

    try:
        engine = open_store(database_url)
        problem = community_joint_problem(engine, week, community)
    except GridmapError as exc:
        _fail(exc, 1)
    out.write_text(json.dumps(problem, ensure_ascii=False, indent=1))
    _console.print(f"[green]✓[/green] {out}: {len(problem['stewards'])} 名管家 stewards, {len(problem['visits'])} "
                   f"位老人 visits (gridmap plan solve {out} --out plan.json; gridmap plan check {out} plan.json)")
