"""The 设备与驿站 view (issue 17 part B): device coverage, the 驿站's 巡视探访, family doctors, 重点摸排.

For supervisors (district, street, community, inspector): within the signed-in user's scope (the
rows are filtered by :func:`gridmap.access.filter_frame` on the server), per street (district users) or
per community:

* 设备覆盖率 — entitled elders and installed devices of each kind (:mod:`gridmap.devices`);
* 驿站巡视探访 — this week, per station: signed elders, visited by the station, rate, and the elders the
  visit steward visited too (重复探访, a flag: 四(二) no government-purchased visits for them);
* 家庭医生 — elders who want a contract, per nearest community health centre or station;
* 重点摸排 — this month, 80+ living alone or empty-nest not yet assessed, per community.

Only counts and names of areas and stations are shown (no personal data). The map's device layer
shows the same coverage per community in its tooltip (:func:`coverage_by_community`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, dcc, html, no_update

from gridmap.access import filter_frame
from gridmap.dashboard.data import DashboardData, User, current_user
from gridmap.dashboard.fmt import fmt_pct
from gridmap.domain.enums import Role

__all__ = ["care_tables", "coverage_by_community", "register", "tab"]

KIND_SHORT = {"smoke_alarm": "烟感", "one_key": "一键式终端", "fire_kit": "消防四件套", "home_safety": "居家安全产品"}


def _scoped(df: pd.DataFrame, data: DashboardData, user: User) -> pd.DataFrame:
    return filter_frame(df, user.scope, engine=data.engine)


def _coverage(data: DashboardData, user: User, by: tuple[str, ...]) -> pd.DataFrame:
    from gridmap.care.rules import care_rules
    from gridmap.devices import domain as D
    from gridmap.devices.store import district_streets, read_device_elders, read_devices
    from gridmap.rules.config import load_rules

    rules = load_rules()
    elders = _scoped(read_device_elders(data.engine), data, user)
    devices = _scoped(read_devices(data.engine), data, user)
    return D.coverage(elders, devices, care_rules(rules), data.today,
                      programme_statuses=[s.value for s in rules.programme_statuses],
                      district_streets=district_streets(data.engine), by=by)


def coverage_by_community(data: DashboardData, user: User) -> dict[tuple[str, str], str]:
    """(street, community) → "烟感 43%（3/7）、一键式终端 …" for the map's tooltip, cached per data version."""
    def compute() -> dict[tuple[str, str], str]:
        cov = _coverage(data, user, ("street", "community"))
        out: dict[tuple[str, str], list[str]] = {}
        for r in cov.itertuples():
            out.setdefault((r.street, r.community), []).append(
                f"{KIND_SHORT.get(r.kind, r.kind)} {fmt_pct(r.coverage)}（{r.installed}/{r.entitled}）")
        return {k: "覆盖率：" + "、".join(v) for k, v in out.items()}

    return data._cache.get(("care-cov", data.version, user.scope), compute)


def _table(frame: pd.DataFrame, table_id: str, pct: tuple[str, ...] = ()) -> html.Table:
    head = html.Thead(html.Tr([html.Th(c) for c in frame.columns]))
    rows = []
    for rec in frame.to_dict("records"):
        rows.append(html.Tr([html.Td(fmt_pct(v) if c in pct else ("" if v is None or (isinstance(v, float) and pd.isna(v)) else v))
                             for c, v in rec.items()]))
    return html.Table([head, html.Tbody(rows)], id=table_id, className="gm-table")


def care_tables(data: DashboardData, user: User) -> list[Any]:
    """The four tables of the view for ``user`` (within their scope)."""
    from gridmap.care.domain import (
        doctor_handover,
        key_survey,
        per_community,
        station_view,
    )
    from gridmap.care.rules import care_rules
    from gridmap.care.store import read_care_elders, read_care_visits, read_points
    from gridmap.rules.config import load_rules
    from gridmap.rules.requirements import parse_week, week_of

    rules = load_rules()
    care = care_rules(rules)
    kw = dict(programme_statuses=[s.value for s in rules.programme_statuses])
    eff = [m.value for m in rules.effective_modes]
    district = Role(user.role) == Role.DISTRICT or user.scope.is_all
    unit = ("street",) if district else ("street", "community")

    cov = _coverage(data, user, unit)
    if cov.empty:
        cov_t = pd.DataFrame(columns=[*unit, *KIND_SHORT.values()])
    else:
        cov = cov.assign(text=[f"{fmt_pct(c)}（{i}/{e}）" for c, i, e in zip(cov["coverage"], cov["installed"],
                                                                            cov["entitled"], strict=True)])
        cov_t = cov.pivot_table(index=list(unit), columns="kind", values="text", aggfunc="first").reset_index()
        cov_t = cov_t.rename(columns={**KIND_SHORT, "street": "街道", "community": "社区"})
        cov_t.columns.name = None
        first = ["街道", "社区"][:len(unit)]
        cov_t = cov_t[first + [v for v in KIND_SHORT.values() if v in cov_t.columns]]
    week = week_of(data.today)
    mon, sun = parse_week(week)
    elders = _scoped(read_care_elders(data.engine, data.today), data, user)
    signed = elders[elders["signed"]]
    visits = read_care_visits(data.engine, mon, sun, elder_ids=signed["elder_id"].tolist())
    sv = station_view(elders, visits, week, care, effective_modes=eff, **kw)
    sv_t = sv[["station", "street", "signed", "visited", "rate", "double_visits"]].rename(columns={
        "station": "驿站", "street": "街道", "signed": "签约老人", "visited": "本周已巡视探访", "rate": "巡视探访率",
        "double_visits": "重复探访（驿站与管家）"})
    doc = doctor_handover(elders, read_points(data.engine), care, **kw)
    doc_t = doc.groupby(["centre"], dropna=False).size().rename("有签约意愿未签约").reset_index() \
        .rename(columns={"centre": "社区卫生服务中心（站）"}).sort_values("有签约意愿未签约", ascending=False)
    month = data.today.replace(day=1)
    sv_visits = read_care_visits(data.engine, month - timedelta(days=400), sun)
    survey = key_survey(elders, sv_visits, month, care, effective_modes=eff, **kw)
    su_t = per_community(survey, "本月未摸排").rename(columns={"street": "街道", "community": "社区"})
    return [
        html.H3("设备覆盖率（已安装 / 应配备）"),
        html.P("联网烟感报警器、消防“四件套”：全部在册老人；一键式智能终端：本区户籍80周岁及以上、计划生育特殊家庭；"
               "居家安全智能产品：低保、低收入、生活困难、特困老人。", className="gm-note"),
        _table(cov_t, "care-devices"),
        html.H3(f"驿站巡视探访（{week}）"),
        html.P(f"签约驿站或家庭养老照护床位的老人 {len(signed)} 人，由驿站巡视探访、街道监督，不计入探访管家的周探访率；"
               f"本周驿站与探访管家都探访了的 {int(sv['double_visits'].sum()) if len(sv) else 0} 人。", className="gm-note"),
        _table(sv_t, "care-stations", pct=("巡视探访率",)),
        html.H3(f"家庭医生签约意愿（{len(doc)} 人，按最近的社区卫生服务中心/站）"),
        _table(doc_t.head(200), "care-doctors"),
        html.H3(f"重点摸排（{month:%Y-%m}，80周岁及以上独居、空巢老人本月尚未上门摸排：{len(survey)} 人）"),
        _table(su_t, "care-survey"),
    ]


def layout() -> html.Div:
    return html.Div([dcc.Loading(html.Div(id="care-body"))], className="gm-care", id="care-view")


def tab(data: DashboardData, user: User) -> dcc.Tab | None:
    """The tab for supervisors (not planners or service stewards)."""
    if Role(user.role) in (Role.PLANNER, Role.SERVICE):
        return None
    return dcc.Tab(layout(), label="设备与驿站", value="care", id="tab-care")


def register(app: dash.Dash, data: DashboardData) -> None:
    """The tab's callback: its tables computed when it is opened (and after each write)."""

    @app.callback(Output("care-body", "children"), Input("tabs", "value"), Input("data-version", "data"))
    def _care(tab_value: str | None, _v: Any) -> Any:
        if tab_value != "care":
            return no_update
        user = current_user()
        if Role(user.role) in (Role.PLANNER, Role.SERVICE):
            return html.P("无权查看")
        return care_tables(data, user)
