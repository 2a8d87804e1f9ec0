"""Generate a synthetic register of older people with special difficulties, with stewards and visit history.

Deterministic for a seed and vectorised with numpy (30,000 elders in a few
seconds). All proportions come from :mod:`gridmap.synth.targets`, where the
sources and assumptions are documented. Everything is synthetic: names are
drawn from common surname/given-name lists, ID numbers are valid GB 11643
numbers that agree with sex and birth date, phones are valid mainland
formats; no real person is described.

The elders' table has the canonical Chinese columns of the record form
(:data:`gridmap.register.columns.CANONICAL_COLUMNS`) plus internal English
columns (``elder_key``, ``birth_date``, ``age``, ``categories``,
``household``, ``devices``, ``first_contact_rule`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridmap._errors import ValidationError
from gridmap._progress import step_bar
from gridmap.domain.enums import DisabilityLevel, WelfareStatus
from gridmap.register.columns import CANONICAL_COLUMNS
from gridmap.synth import names as nm
from gridmap.synth import targets as T

__all__ = ["SyntheticRegister", "allocate_streets", "check_digits", "generate_register", "street_shares"]

BEIJING = timezone(timedelta(hours=8))
_TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
_TO_WGS = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True)
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = np.array(list("10X98765432"))
#: Yes/no columns of the sheet.
#: Sections 三 of the form written as 是/否 too.
LIVING_COLUMNS = ("饮水是否安全", "生活用电是否安全", "住房是否安全")
#: Household members written as repeated groups 家庭成员1… (the form prints three rows).
SHEET_MEMBERS = 3
YES_NO_COLUMNS = ("是否居住在户籍所在地", "是否独居", "是否空巢", "是否重残", "是否计划生育特殊家庭",
                  "是否愿意接受探访", "是否签约驿站或家庭照护床位")


@dataclass
class SyntheticRegister:
    """A generated register.

    Attributes
    ----------
    elders
        One row per elder: the canonical Chinese columns plus internal columns.
    stewards
        探访管家 (one per community) and 服务管家 (per care station).
    visits
        Visit history of :data:`~gridmap.synth.targets.HISTORY_WEEKS` weeks.
    seed, reference_date
        What generated it.
    """

    elders: pd.DataFrame
    stewards: pd.DataFrame
    visits: pd.DataFrame
    seed: int
    reference_date: date
    info: dict[str, Any] = field(default_factory=dict)

    def sheet(self) -> pd.DataFrame:
        """The elders as a spreadsheet: canonical Chinese headers in order, 是/否 for yes/no."""
        df = self.elders[list(CANONICAL_COLUMNS)].copy()
        for col in YES_NO_COLUMNS + LIVING_COLUMNS:
            df[col] = np.where(df[col].to_numpy(dtype=bool), "是", "否")
        df["残疾等级"] = [f"{int(g)}级" if g and not pd.isna(g) else "" for g in df["残疾等级"]]
        return pd.concat([df, member_sheet_columns(self.elders["household"], SHEET_MEMBERS, df.index)], axis=1)


# ----------------------------------------------------------------- helpers


def member_sheet_columns(households: Any, n_members: int, index: Any = None) -> pd.DataFrame:
    """二、家庭基本情况 as repeated groups ``家庭成员1姓名`` … for ``n_members`` members (empty cells beyond)."""
    from gridmap.register.columns import member_columns

    cols = member_columns(n_members)
    data: dict[str, list[str]] = {c: [] for c in cols}
    for members in households:
        for k in range(1, n_members + 1):
            m = members[k - 1] if k <= len(members) else {}
            w = m.get("welfare_status")
            vals = [m.get("name") or "", m.get("sex") or "", m.get("id_number") or "", m.get("relation") or "",
                    m.get("health") or "", WelfareStatus(w).label if w else ("否" if m else "")]
            for c, v in zip(cols[(k - 1) * 6:k * 6], vals, strict=True):
                data[c].append(v)
    return pd.DataFrame(data, index=index)


def check_digits(first17: np.ndarray) -> np.ndarray:
    """GB 11643 check characters of an array of 17-digit strings (vectorised)."""
    s = np.asarray(first17, dtype="U17")
    digits = np.frombuffer(s.tobytes(), dtype=np.uint32).reshape(len(s), 17) - 48
    return _CHECK[(digits * _WEIGHTS).sum(axis=1) % 11]


def street_shares(streets: pd.DataFrame) -> pd.Series:
    """Target share of elders per street: census population × documented weight, normalised."""
    w = streets["pop_2020"].astype(float).to_numpy() * np.array([T.street_weight(s) for s in streets["name"]])
    return pd.Series(w / w.sum(), index=streets["name"].to_numpy(), name="share")


def allocate_streets(streets: pd.DataFrame, n: int) -> pd.Series:
    """Elders per street: largest-remainder rounding of ``n × street_shares`` (exact total)."""
    share = street_shares(streets)
    raw = share.to_numpy() * n
    base = np.floor(raw).astype(int)
    rest = n - base.sum()
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return pd.Series(base, index=share.index, name="elders")


def _pick(rng: np.random.Generator, options: dict[Any, float] | tuple[float, ...], n: int) -> np.ndarray:
    if isinstance(options, dict):
        keys = np.array(list(options), dtype=object)
        p = np.array(list(options.values()), dtype=float)
        return keys[rng.choice(len(keys), size=n, p=p / p.sum())]
    p = np.asarray(options, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _birth_dates(rng: np.random.Generator, ages: np.ndarray, ref: date) -> pd.DatetimeIndex:
    """Birth dates giving exactly ``ages`` on ``ref``.

    The youngest (60) turned 60 at least 90 days before ``ref``, so a register
    generated for a reference date validates as 60+ on the days around it too.
    """
    back = np.where(np.asarray(ages) <= 60, rng.integers(90, 365, len(ages)), rng.integers(0, 365, len(ages)))
    anniv = pd.Timestamp(ref) - pd.to_timedelta(back, unit="D")
    y = anniv.year.to_numpy() - ages
    m = anniv.month.to_numpy()
    d = anniv.day.to_numpy()
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    d = np.where((m == 2) & (d == 29) & ~leap, 28, d)
    return pd.DatetimeIndex(pd.to_datetime(pd.DataFrame({"year": y, "month": m, "day": d})))


def _id_numbers(rng: np.random.Generator, region: np.ndarray, born: pd.DatetimeIndex, male: np.ndarray,
                taken: set[str]) -> np.ndarray:
    """Valid unique ID numbers (order code parity = sex), avoiding ``taken`` (updated)."""
    n = len(region)
    ymd = np.asarray(born.strftime("%Y%m%d"), dtype="U8")
    stem = np.char.add(np.asarray(region, dtype="U6"), ymd)
    out = np.empty(n, dtype="U18")
    todo = np.arange(n)
    for _ in range(50):
        order = rng.integers(0, 500, len(todo)) * 2 + male[todo].astype(int)
        f17 = np.char.add(stem[todo], np.char.zfill(order.astype(str), 3))
        ids = np.char.add(f17, check_digits(f17))
        s = pd.Series(ids)
        bad = s.duplicated().to_numpy() | s.isin(taken).to_numpy()
        out[todo[~bad]] = ids[~bad]
        taken.update(ids[~bad].tolist())
        todo = todo[bad]
        if not len(todo):
            break
    return out


def _regions(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = _pick(rng, T.ID_REGION_SHARES, n)
    other_bj = np.array(T.OTHER_BEIJING_REGIONS)[rng.integers(0, len(T.OTHER_BEIJING_REGIONS), n)]
    other_pr = np.array(T.OTHER_PROVINCE_REGIONS)[rng.integers(0, len(T.OTHER_PROVINCE_REGIONS), n)]
    return np.where(kind == 0, "110108", np.where(kind == 1, other_bj, other_pr))


def _layer(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if not isinstance(obj, dict) else obj.get(name)


def _road_graph(near_roads: Any) -> Any:
    """The walk graph to sample homes near, or None (``"auto"``: only when a cached graph exists)."""
    if near_roads is None or near_roads is False:
        return None
    if near_roads is True or near_roads == "auto":
        from gridmap.config import get_settings

        if near_roads == "auto" and not any((get_settings().cache_dir / "roads").glob("*/walk.graphml")):
            return None
        from gridmap.layers.roads import build_road_graph

        return build_road_graph(mode="walk")
    return near_roads  # a graph


def _homes(rng: np.random.Generator, comm_m: gpd.GeoDataFrame, comm_idx: np.ndarray,
           graph: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random points (UTM) inside each elder's community; optionally pulled to 15–50 m of a road."""
    n = len(comm_idx)
    x = np.empty(n)
    y = np.empty(n)
    polys = comm_m.geometry.to_numpy()
    for c in np.unique(comm_idx):
        sel = np.flatnonzero(comm_idx == c)
        poly = polys[c]
        x0, y0, x1, y1 = poly.bounds
        got_x: list[np.ndarray] = []
        got_y: list[np.ndarray] = []
        need = len(sel)
        for _ in range(100):
            k = max(16, int(need * 3))
            cx = rng.uniform(x0, x1, k)
            cy = rng.uniform(y0, y1, k)
            inside = shapely.contains_xy(poly, cx, cy)
            got_x.append(cx[inside])
            got_y.append(cy[inside])
            need -= int(inside.sum())
            if need <= 0:
                break
        gx = np.concatenate(got_x)[: len(sel)]
        gy = np.concatenate(got_y)[: len(sel)]
        if len(gx) < len(sel):  # degenerate polygon: use its representative point
            rp = poly.representative_point()
            gx = np.concatenate([gx, np.full(len(sel) - len(gx), rp.x)])
            gy = np.concatenate([gy, np.full(len(sel) - len(gy), rp.y)])
        x[sel] = gx
        y[sel] = gy
    near = np.zeros(n, dtype=bool)
    if graph is not None and n:
        from gridmap.layers.roads import snap_points

        lon, lat = _TO_WGS.transform(x, y)
        snap = snap_points(graph, lon, lat)
        nodes = graph.nodes
        ux, uy = _TO_UTM.transform(np.array([nodes[u]["x"] for u in snap.u]), np.array([nodes[u]["y"] for u in snap.u]))
        vx, vy = _TO_UTM.transform(np.array([nodes[v]["x"] for v in snap.v]), np.array([nodes[v]["y"] for v in snap.v]))
        rx = ux + snap.position * (vx - ux)
        ry = uy + snap.position * (vy - uy)
        d = np.hypot(x - rx, y - ry)
        far = (d > 60) & (d < 2000)
        target = rng.uniform(15, 50, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(d > 0, target / d, 0)
        nx_ = rx + (x - rx) * f
        ny_ = ry + (y - ry) * f
        ok = far & shapely.contains_xy(polys[comm_idx], nx_, ny_)
        x = np.where(ok, nx_, x)
        y = np.where(ok, ny_, y)
        near = ok | (d <= 60)
    return x, y, near


# ----------------------------------------------------------------- generator


def generate_register(
    layers: Any,
    n: int,
    seed: int = 1,
    *,
    reference_date: date = date(2026, 12, 1),
    near_roads: Any = "auto",
    progress: bool = False,
    current_week: bool = False,
) -> SyntheticRegister:
    """Generate ``n`` synthetic elders with stewards and 8 weeks of visits.

    Parameters
    ----------
    layers
        An object (or dict) with ``streets`` and ``communities`` GeoDataFrames
        (a :class:`~gridmap.layers.build.Layers` or
        :class:`~gridmap.layers.admin.AdminLayers`); ``service_points`` is
        used for the care stations when present, else they are generated.
    n
        Number of elders (0 allowed).
    seed
        Random seed: same seed and layers, same output.
    reference_date
        "Today" of the register: ages are counted on it, the visit history
        ends the week before it (with ``current_week``, the day before it).
    near_roads
        ``"auto"`` (default): pull homes farther than 60 m from a road to
        15–50 m of it, only when a walk graph is already cached; ``True``:
        build the graph if needed; ``False``/None: no; or a graph.
    progress
        Print the steps (tqdm).
    current_week
        Also the visits of ``reference_date``'s week made before that day
        (the demo's partial current week); no visit is ever dated on or after it.

    Returns
    -------
    SyntheticRegister
    """
    if n < 0:
        raise ValidationError(f"number of elders must be >= 0, got {n}", f"老年人数量须不小于0，实际为{n}",
                              field="elders", value=n, code="invalid_count")
    steps = ["allocate", "people", "homes", "stewards", "visits"]
    bar = step_bar(len(steps), progress)
    rng = np.random.default_rng(seed)
    streets = _layer(layers, "streets").sort_values("code").reset_index(drop=True)
    comm = _layer(layers, "communities").sort_values("code").reset_index(drop=True)
    stations = _layer(layers, "service_points")
    if stations is None or "point_id" not in getattr(stations, "columns", []):
        from gridmap.layers.service_points import generate_care_stations

        stations = generate_care_stations(comm, streets, seed=seed)

    # ---- allocation: streets by census × weight, communities by gamma weights
    bar.set_description("allocate / 分配街道社区")
    per_street = allocate_streets(streets, n)
    comm_idx_parts = []
    for sname, k in per_street.items():
        members = np.flatnonzero(comm["street"].to_numpy() == sname)
        if k == 0 or not len(members):
            continue
        w = rng.gamma(T.COMMUNITY_WEIGHT_SHAPE, 1 / T.COMMUNITY_WEIGHT_SHAPE, len(members))
        counts = rng.multinomial(k, w / w.sum())
        comm_idx_parts.append(np.repeat(members, counts))
    comm_idx = np.concatenate(comm_idx_parts) if comm_idx_parts else np.zeros(0, dtype=int)
    n = len(comm_idx)
    bar.update(1)

    # ---- people
    bar.set_description("people / 人员属性")
    lo, hi, p = T._age_band_probs()
    band = rng.choice(len(p), size=n, p=p)
    age = rng.integers(lo[band], hi[band] + 1)
    # within the top band, fewer at the top: redraw 100+ mostly down
    age = np.where(age > 100, np.where(rng.random(n) < 0.7, age - 6, age), age)
    old = age >= 80
    female = rng.random(n) < np.where(old, T.P_FEMALE_80_PLUS, T.P_FEMALE_UNDER_80)
    male = ~female
    born = _birth_dates(rng, age, reference_date)

    disabled = rng.random(n) < np.where(old, T.P_DISABLED_BY_AGE[1], T.P_DISABLED_BY_AGE[0])
    dis_level = np.where(disabled, _pick(rng, T.DISABILITY_LEVELS, n), None)
    handicapped = rng.random(n) < T.P_SEVERELY_HANDICAPPED
    grade = np.where(handicapped, _pick(rng, T.HANDICAP_GRADES, n), 0).astype(int)
    type12 = _pick(rng, T.HANDICAP_TYPES_GRADE_1_2, n)
    type3 = _pick(rng, T.HANDICAP_TYPES_GRADE_3, n)
    htype = np.where(handicapped, np.where(grade == 3, type3, type12), None)
    fp = rng.random(n) < T.P_FAMILY_PLANNING_SPECIAL
    fp_died = fp & (rng.random(n) < T.P_FP_CHILD_DIED)
    qualified = disabled | handicapped | fp

    # children
    nch = np.where(old, _pick(rng, T.CHILDREN_80_PLUS, n), _pick(rng, T.CHILDREN_UNDER_80, n))
    nch = np.where(nch == 3, rng.integers(3, 6, n), nch)
    nch = np.where(fp_died, 0, np.where(fp, 1, nch))

    hh = np.where(qualified, _pick(rng, T.HOUSEHOLD_IF_QUALIFIED, n), _pick(rng, T.HOUSEHOLD_OTHERWISE, n))
    alone = hh == 0
    nest = hh == 1
    family = hh == 2
    # a family household lives with a child
    nch = np.where(family & (nch == 0) & ~fp, 1, nch)
    # 计生 child died → cannot live with a child: alone or empty nest
    fix = family & (nch == 0)
    alone = alone | (fix & (rng.random(n) < 0.5))
    nest = nest | (fix & ~alone)
    family = family & ~fix
    other_only = family & ~qualified

    age_key = np.select([age >= 90, age >= 80, age >= 70], [90, 80, 70], 60)
    p_sp = np.vectorize(T.P_SPOUSE.get)(age_key)
    spouse_alive = rng.random(n) < p_sp
    nest_old_child = nest & (nch > 0) & (age >= 82) & (rng.random(n) < T.P_EMPTY_NEST_WITH_OLD_CHILD)
    spouse_alive = np.where(alone, rng.random(n) < T.P_ALONE_HAS_SPOUSE,
                            np.where(nest & ~nest_old_child, True, spouse_alive))
    spouse_cores = spouse_alive & ~alone
    child_cores = family | nest_old_child
    coresident = spouse_cores | child_cores

    # names, IDs
    surname = nm.surnames(rng, n)
    name = nm.full_names(rng, female, surname=surname)
    taken: set[str] = set()
    eid = _id_numbers(rng, _regions(rng, n), born, male, taken)
    phone = nm.phones(rng, n, T.P_MOBILE)

    # spouse (co-resident or not, for the household list only when co-resident)
    sp_age = np.clip(age + np.where(female, rng.integers(0, 7, n), -rng.integers(0, 6, n)), 60, 108)
    sp_born = _birth_dates(rng, sp_age, reference_date)
    sp_id = _id_numbers(rng, _regions(rng, n), sp_born, female, taken)
    sp_name = nm.full_names(rng, male)
    # the co-resident (or contact) child
    ch_female = rng.random(n) < 0.5
    ch_age = np.where(nest_old_child, np.maximum(60, age - rng.integers(20, 26, n)), age - rng.integers(22, 38, n))
    ch_age = np.maximum(ch_age, 18)
    ch_born = _birth_dates(rng, ch_age, reference_date)
    ch_id = _id_numbers(rng, np.where(rng.random(n) < 0.8, "110108", _regions(rng, n)), ch_born, ~ch_female, taken)
    ch_surname = np.where(male, surname, nm.surnames(rng, n))  # children take the father's surname
    ch_name = nm.full_names(rng, ch_female, young=np.ones(n, dtype=bool), surname=ch_surname)
    ch_phone = nm.mobiles(rng, n)
    ch_disabled = fp & ~fp_died
    in_law = family & (rng.random(n) < 0.5) & ~ch_disabled
    grandchild = family & (rng.random(n) < 0.3) & ~ch_disabled

    # welfare
    tekun = (nch == 0) & (rng.random(n) < T.P_TEKUN_IF_NO_CHILDREN)
    u = rng.random(n)
    dibao = ~tekun & (u < T.P_DIBAO)
    low_income = ~tekun & ~dibao & (u < T.P_DIBAO + T.P_LOW_INCOME)
    welfare = np.where(tekun, WelfareStatus.TEKUN.value,
                       np.where(dibao, WelfareStatus.DIBAO.value, np.where(low_income, WelfareStatus.LOW_INCOME.value, None)))
    poor = tekun | dibao
    income = np.round(np.where(poor, T.INCOME_MEDIAN_POOR * rng.lognormal(0, 0.25, n),
                               T.INCOME_MEDIAN * rng.lognormal(0, T.INCOME_SIGMA, n)) * (1 + 0.8 * spouse_cores), -1)
    pension = np.round(np.where(poor, 0, income / (1 + 0.8 * spouse_cores) * rng.uniform(0.85, 1.0, n)), -1)
    allowance = np.select([age >= 100, age >= 90, age >= 80], [800, 500, 100], 0)

    refuse = rng.random(n) < T.P_REFUSE
    u = rng.random(n)
    signed_station = u < T.P_SIGNED_STATION
    signed_bed = (u >= T.P_SIGNED_STATION) & (u < T.P_SIGNED_STATION + T.P_SIGNED_HOME_BED)
    refuse = refuse & ~(signed_station | signed_bed)  # signing with a station means accepting its visits
    lives_at_hukou = rng.random(n) < T.P_LIVES_AT_HUKOU
    doctor = rng.random(n) < T.P_FAMILY_DOCTOR
    water_safe = rng.random(n) < T.P_WATER_SAFE
    elec_safe = rng.random(n) < T.P_ELECTRICITY_SAFE
    housing_safe = rng.random(n) < T.P_HOUSING_SAFE

    # first contact: who the elder can name (chosen below by the document's rules)
    has_child = nch > 0
    designation = _pick(rng, T.FIRST_CONTACT_NO_CHILD, n)
    # only elders without children and without anyone living with them name someone
    designation = np.where(~has_child & ~coresident, designation, "none")
    rel_kind = np.array(["侄子", "侄女", "外甥", "外甥女", "弟弟", "妹妹", "哥哥", "姐姐"])[rng.integers(0, 8, n)]
    rel_name = nm.full_names(rng, np.isin(rel_kind, ["侄女", "外甥女", "妹妹", "姐姐"]),
                             young=np.isin(rel_kind, ["侄子", "侄女", "外甥", "外甥女"]),
                             surname=np.where(np.isin(rel_kind, ["侄子", "侄女", "弟弟", "妹妹", "哥哥", "姐姐"]), surname,
                                              nm.surnames(rng, n)))
    rel_phone = nm.mobiles(rng, n)
    helper_kind = np.array(["楼门长", "社区志愿者", "网格员", "邻居"])[rng.integers(0, 4, n)]
    helper_name = nm.full_names(rng, rng.random(n) < 0.6)
    helper_phone = nm.mobiles(rng, n)
    bar.update(1)

    # ---- homes and addresses
    bar.set_description("homes / 住址坐标")
    comm_m = comm.to_crs("EPSG:32650")
    graph = _road_graph(near_roads)
    hx, hy, near = _homes(rng, comm_m, comm_idx, graph)
    quality = _pick(rng, T.GEOCODE_QUALITY, n)
    cpt = gpd.GeoSeries(comm["point"].to_numpy(), crs="EPSG:4326").to_crs("EPSG:32650")
    cx, cy = cpt.x.to_numpy()[comm_idx], cpt.y.to_numpy()[comm_idx]
    is_comm_q = quality == "community"
    hx = np.where(is_comm_q, cx, hx)
    hy = np.where(is_comm_q, cy, hy)
    lon, lat = _TO_WGS.transform(hx, hy)
    street_name = comm["street"].to_numpy()[comm_idx]
    short = comm["short_name"].to_numpy()[comm_idx]
    kind = comm["kind"].to_numpy()[comm_idx]
    cname = comm["name"].to_numpy()[comm_idx]
    ccode = comm["code"].to_numpy()[comm_idx]
    scode = comm["street_code"].to_numpy()[comm_idx]
    bldg = rng.integers(1, 40, n)
    unit = rng.integers(1, 7, n)
    room = rng.integers(1, 19, n) * 100 + rng.integers(1, 5, n)
    house = rng.integers(1, 300, n)
    comm_label = np.array([s if s.endswith(("社区", "村")) else s + ("村" if k == "村" else "社区")
                           for s, k in zip(short, kind, strict=True)], dtype=object)
    addr = np.where(
        kind == "村",
        [f"北京市海淀区{st}{cl}{h}号" for st, cl, h in zip(street_name, comm_label, house, strict=True)],
        [f"北京市海淀区{st}{cl}{b}号楼{u_}单元{r}" for st, cl, b, u_, r in zip(street_name, comm_label, bldg, unit, room,
                                                                       strict=True)],
    ) if n else np.zeros(0, dtype=object)
    all_streets = streets["name"].to_numpy()
    hukou_street = np.where(lives_at_hukou, street_name,
                            np.where(rng.random(n) < 0.6, all_streets[rng.integers(0, len(all_streets), n)], "外区"))
    hukou_address = np.where(
        lives_at_hukou, addr,
        np.where(hukou_street == "外区",
                 np.array(["北京市西城区", "北京市东城区", "北京市朝阳区", "北京市丰台区", "北京市石景山区"])[
                     rng.integers(0, 5, n)],
                 np.char.add("北京市海淀区", hukou_street.astype(str))))
    bar.update(1)

    # ---- stewards
    bar.set_description("stewards / 双管家")
    stewards, visit_code, service_code = _stewards(rng, comm, stations, comm_idx)
    st_name = dict(zip(stewards["code"], stewards["name"], strict=True))
    st_phone = dict(zip(stewards["code"], stewards["phone"], strict=True))
    rule, fc_name, fc_rel, fc_phone = _first_contacts(
        has_child, ch_name, np.where(ch_female, "女儿", "儿子"), ch_phone, child_cores, spouse_alive, sp_name,
        spouse_cores, designation, rel_name, rel_kind, rel_phone, helper_name, helper_kind, helper_phone,
        [st_name[c] for c in visit_code], [st_phone[c] for c in visit_code], cname)
    bar.update(1)

    # categories, devices, household lists
    cats: list[list[str]] = []
    for i in range(n):
        c = []
        if alone[i]:
            c.append("living_alone")
        if nest[i]:
            c.append("empty_nest")
        if disabled[i]:
            c.append("disabled")
        if handicapped[i]:
            c.append("severely_handicapped")
        if fp[i]:
            c.append("family_planning_special")
        if other_only[i]:
            c.append("other")
        cats.append(c)
    devices = _devices(rng, n, old | fp, poor, reference_date)
    cert = np.where(handicapped, np.char.add(np.char.add(eid.astype(str),
                                                         np.array([str(T.HANDICAP_TYPE_CODES.get(t, 4)) for t in htype])),
                                             grade.astype(str)), None)
    health_opts = np.array(["健康", "一般", "慢性病"])
    m_health = health_opts[rng.choice(3, size=n, p=[0.3, 0.35, 0.35])]
    household = []
    for i in range(n):
        members = []
        if spouse_cores[i]:
            members.append({"seq": len(members) + 1, "name": sp_name[i], "sex": "男" if female[i] else "女",
                            "id_number": sp_id[i], "relation": "配偶", "health": str(m_health[i]),
                            "welfare_status": welfare[i]})
        if child_cores[i]:
            members.append({"seq": len(members) + 1, "name": ch_name[i], "sex": "女" if ch_female[i] else "男",
                            "id_number": ch_id[i], "relation": "女" if ch_female[i] else "子",
                            "health": "残疾" if ch_disabled[i] else "健康", "welfare_status": welfare[i]})
            if in_law[i]:
                members.append({"seq": len(members) + 1, "name": nm_cache(rng, not ch_female[i]),
                                "sex": "男" if ch_female[i] else "女", "id_number": None,
                                "relation": "女婿" if ch_female[i] else "儿媳", "health": "健康",
                                "welfare_status": None})
            if grandchild[i]:
                gf = bool(rng.random() < 0.5)
                members.append({"seq": len(members) + 1, "name": nm_cache(rng, gf, surname[i] if not ch_female[i] else None),
                                "sex": "女" if gf else "男", "id_number": None,
                                "relation": "孙女" if gf else "孙子", "health": "健康", "welfare_status": None})
        household.append(members)
    notes_pool = np.array(["", "", "", "", "", "", "高龄，腿脚不便", "患高血压、糖尿病", "子女在外地工作",
                           "需要助餐服务", "听力较差，电话沟通困难", "老伴住院", "有认知障碍迹象"])
    notes = notes_pool[rng.integers(0, len(notes_pool), n)]
    notes = np.where(fp_died, "独生子女死亡", np.where(ch_disabled, "独生子女伤残", notes))
    notes = np.where(other_only, np.where(rng.random(n) < 0.5, "高龄且家庭照料困难", "照料者患病，家庭照料困难"), notes)
    benefits = [
        (f"养老金{int(pn)}元/月" if pn else "无养老金") + (f"；高龄津贴{al}元/月" if al else "")
        + ("；低保金" if dibao[i] else "") + ("；特困供养金" if tekun[i] else "")
        for i, (pn, al) in enumerate(zip(pension, allowance, strict=True))
    ]
    entered_on = pd.Timestamp(reference_date) - pd.to_timedelta(rng.integers(60, 900, n), unit="D")

    elders = pd.DataFrame({
        "姓名": name.astype(object), "性别": np.where(female, "女", "男"), "居民身份证号码": eid.astype(object),
        "联系电话": phone.astype(object), "街道（乡镇）": street_name, "居（村）": cname, "家庭住址": addr,
        "经度": np.round(lon, 6), "纬度": np.round(lat, 6), "坐标系": "WGS84",
        "是否居住在户籍所在地": lives_at_hukou, "是否独居": alone, "是否空巢": nest,
        "失能等级": [DisabilityLevel(v).label if v else "" for v in dis_level],
        "是否重残": handicapped, "残疾人证号": [c if c else "" for c in cert],
        "残疾等级": np.where(handicapped, grade, np.nan), "是否计划生育特殊家庭": fp,
        # the departments' words: a 特困 elder living at home is 分散供养特困
        "低保特困情况": ["分散供养特困" if v == WelfareStatus.TEKUN.value else WelfareStatus(v).label if v else ""
                   for v in welfare],
        "是否愿意接受探访": ~refuse, "是否签约驿站或家庭照护床位": signed_station | signed_bed,
        "第一联系人": fc_name, "第一联系人关系": fc_rel, "第一联系人电话": fc_phone,
        "探访管家": [st_name[c] for c in visit_code], "服务管家": [st_name[c] for c in service_code],
        "其他情况": notes,
        **_form_sections(np.random.default_rng(seed + 20), n, tekun, other_only, water_safe, elec_safe,
                         housing_safe, income, benefits, doctor, [st_name[c] for c in visit_code],
                         [st_phone[c] for c in visit_code], cname),
    })
    elders.insert(0, "elder_key", [f"SYN{seed:04d}-{i + 1:06d}" for i in range(n)])
    elders = elders.assign(
        birth_date=born.date, age=age, categories=cats, disability_level=dis_level,
        disability_grade=np.where(handicapped, grade, None), disability_type=htype,
        welfare_status=welfare, dispersed_support=tekun, n_children=nch, spouse_alive=spouse_alive,
        spouse_coresident=spouse_cores, child_coresident=child_cores, first_contact_rule=rule,
        first_contact_designation=designation,
        household=household, devices=devices, street_code=scode, community_code=ccode,
        geocode_quality=quality, near_road=near, hukou_street=hukou_street, hukou_address=hukou_address,
        water_safe=water_safe, electricity_safe=elec_safe, housing_safe=housing_safe,
        monthly_income=income, benefits=benefits, signed_care_station=signed_station,
        signed_home_care_bed=signed_bed, family_doctor_signed=doctor, entered_on=entered_on.date,
        visit_steward_code=visit_code, service_steward_code=service_code,
    )
    bar.update(1)
    bar.set_description("visits / 探访记录")
    visits = _visits(rng, elders, stewards, hx, hy, reference_date, current_week=current_week)
    bar.update(1)
    bar.close()
    return SyntheticRegister(elders, stewards, visits, seed, reference_date,
                             info={"per_street": per_street, "near_roads": graph is not None})


def _form_sections(rng: np.random.Generator, n: int, tekun: np.ndarray, other_only: np.ndarray,
                   water_safe: np.ndarray, elec_safe: np.ndarray, housing_safe: np.ndarray, income: np.ndarray,
                   benefits: list[str], doctor: np.ndarray, steward_names: list[str], steward_phones: list[str],
                   community: np.ndarray) -> dict[str, Any]:
    """Sections 三 and 四, 家庭医生签约意愿 and 其他特殊困难情形 of the record form (own generator: the
    other columns stay as they were for a seed)."""
    wish = np.where(doctor, "已签约", np.where(rng.random(n) < 0.6, "愿意", "不愿意"))
    helped = tekun | (rng.random(n) < 0.35)
    units_pool = np.array(["社区居委会", "社区居委会、养老服务驿站", "街道区域养老服务中心", "养老服务驿站、家庭医生",
                           "社区居委会、邻里亲属", "社会工作服务机构"])
    measures_pool = np.array(["每周电话问候，每月上门探访", "助餐、助洁服务", "定期上门巡诊、健康监测",
                              "节日慰问", "协助申请社会救助"])
    units = units_pool[rng.integers(0, len(units_pool), n)]
    measures = measures_pool[rng.integers(0, len(measures_pool), n)]
    return {
        "其他特殊困难情形": np.where(other_only, np.where(rng.random(n) < 0.5, "高龄且家庭照料困难",
                                                       "照料者患病，家庭照料困难"), ""),
        "饮水是否安全": water_safe, "生活用电是否安全": elec_safe, "住房是否安全": housing_safe,
        "家庭每月收入（元）": [f"{int(v)}" for v in income],
        "家庭每月领取养老保险、社会救助和社会福利补贴等情况": benefits,
        "帮扶单位（组织）": np.where(helped, units, ""),
        "帮扶责任人": np.where(helped, np.array(steward_names, dtype=object), ""),
        "帮扶责任人联系电话": np.where(helped, np.array(steward_phones, dtype=object), ""),
        "帮扶措施": np.where(helped, measures, ""),
        "家庭医生签约意愿": wish,
    }


def _first_contacts(has_child: np.ndarray, ch_name: np.ndarray, ch_rel: np.ndarray, ch_phone: np.ndarray,
                    child_cores: np.ndarray, spouse_alive: np.ndarray, sp_name: np.ndarray, spouse_cores: np.ndarray,
                    designation: np.ndarray, rel_name: np.ndarray, rel_kind: np.ndarray, rel_phone: np.ndarray,
                    helper_name: np.ndarray, helper_kind: np.ndarray, helper_phone: np.ndarray,
                    staff_name: list[str], staff_phone: list[str], organisation: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Choose each first contact with :func:`gridmap.register.first_contact.choose_first_contact`.

    Children come first; without children, a relative or heir the elder named;
    then, with no spouse, a staff member of the committee (the community's
    探访管家); otherwise a person the street/committee names (楼门长, 网格员…).
    """
    from gridmap.register.first_contact import (
        Contact,
        Relative,
        StaffContact,
        choose_first_contact,
    )

    n = len(has_child)
    out = np.empty((4, n), dtype=object)
    for i in range(n):
        people = []
        if has_child[i]:
            people.append(Relative(str(ch_name[i]), str(ch_rel[i]), str(ch_phone[i]), lives_with=bool(child_cores[i])))
        if spouse_alive[i]:
            people.append(Relative(str(sp_name[i]), "配偶", None, lives_with=bool(spouse_cores[i])))
        d = designation[i]
        if d in ("designated_relative", "heir"):
            rel = str(rel_kind[i]) if d == "designated_relative" else f"继承人（{rel_kind[i]}）"
            people.append(Relative(str(rel_name[i]), rel, str(rel_phone[i]), is_heir=d == "heir", designated=True))
        choice = choose_first_contact(
            people, has_spouse=bool(spouse_alive[i]),
            community_staff=StaffContact(staff_name[i], staff_phone[i], organisation=str(organisation[i])),
            street_designated=Contact(str(helper_name[i]), str(helper_phone[i]), relation=str(helper_kind[i])),
        )
        out[:, i] = (choice.rule.value, choice.name, choice.relation, choice.phone)
    return out[0], out[1], out[2], out[3]


def nm_cache(rng: np.random.Generator, female: bool, surname: str | None = None) -> str:
    """One synthetic full name (scalar helper for household members)."""
    s = None if surname is None else np.array([surname])
    return str(nm.full_names(rng, np.array([female]), young=np.array([True]), surname=s)[0])


def _devices(rng: np.random.Generator, n: int, entitled: np.ndarray, poor: np.ndarray, ref: date) -> list[list[dict]]:
    term = rng.random(n) < np.where(entitled, T.P_TERMINAL_IF_ENTITLED, T.P_TERMINAL_OTHERS)
    smoke = rng.random(n) < T.P_SMOKE_ALARM
    kit = rng.random(n) < T.P_FIRE_KIT
    monitor = poor & (rng.random(n) < T.P_HEALTH_MONITOR_POOR)
    faulty = rng.random((n, 4)) < T.P_DEVICE_FAULTY
    days = rng.integers(30, 1200, (n, 4))
    tested = rng.integers(5, 200, (n, 4))
    kinds = ("emergency_terminal", "smoke_alarm", "fire_kit", "health_monitor")
    funders = ("区民政局", "区消防救援局", "街镇", "区民政局")
    flags = (term, smoke, kit, monitor)
    out: list[list[dict]] = []
    for i in range(n):
        row = []
        for j in range(4):
            if flags[j][i]:
                inst = ref - timedelta(days=int(days[i, j]))
                row.append({"kind": kinds[j], "status": "faulty" if faulty[i, j] else "installed",
                            "serial": f"{kinds[j][:2].upper()}{i:06d}{j}", "funded_by": funders[j],
                            "installed_on": inst,
                            "last_tested_on": ref - timedelta(days=int(min(tested[i, j], days[i, j])))})
        out.append(row)
    return out


def _stewards(rng: np.random.Generator, comm: pd.DataFrame, stations: pd.DataFrame,
              comm_idx: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One 探访管家 per community (base: its care station) and 服务管家 per care station."""
    st = pd.DataFrame(stations).drop_duplicates("point_id").set_index("point_id")
    counts = np.bincount(comm_idx, minlength=len(comm))
    rows = []
    n_c = len(comm)
    vnames = nm.full_names(rng, rng.random(n_c) < 0.7, young=np.ones(n_c, dtype=bool))
    vphones = nm.mobiles(rng, n_c)
    visit_codes = np.empty(n_c, dtype=object)
    service_codes: list[list[str]] = []
    for i, c in enumerate(comm.itertuples(index=False)):
        pid = f"CS-{c.code}"
        if pid in st.index:
            g = st.loc[pid].geometry
            sname = st.loc[pid, "name"]
        else:
            g = c.point
            sname = f"{c.short_name}社区养老服务驿站"
        village = c.kind == "村"
        code = f"TF-{c.code}"
        visit_codes[i] = code
        rows.append({"code": code, "name": vnames[i], "kind": "visit", "organisation": c.name,
                     "phone": vphones[i], "community_code": c.code, "station_point_id": pid if pid in st.index else None,
                     "base_lon": g.x, "base_lat": g.y, "travel_mode": "ebike" if village else "walk",
                     "work_days": [1, 2, 3, 4, 5], "max_work_minutes": 360})
        k = max(1, math.ceil(counts[i] / T.ELDERS_PER_SERVICE_STEWARD))
        snames = nm.full_names(rng, rng.random(k) < 0.65, young=np.ones(k, dtype=bool))
        sphones = nm.mobiles(rng, k)
        codes = []
        for j in range(k):
            scode = f"FW-{c.code}-{j + 1}"
            codes.append(scode)
            rows.append({"code": scode, "name": snames[j], "kind": "service", "organisation": sname,
                         "phone": sphones[j], "community_code": c.code,
                         "station_point_id": pid if pid in st.index else None,
                         "base_lon": g.x, "base_lat": g.y, "travel_mode": "ebike",
                         "work_days": [1, 2, 3, 4, 5, 6], "max_work_minutes": 420})
        service_codes.append(codes)
    stewards = pd.DataFrame(rows)
    vcode = visit_codes[comm_idx] if len(comm_idx) else np.zeros(0, dtype=object)
    # service steward: round robin inside the community
    order_in_comm = np.zeros(len(comm_idx), dtype=int)
    seen: dict[int, int] = {}
    for i, c in enumerate(comm_idx):
        order_in_comm[i] = seen.get(int(c), 0)
        seen[int(c)] = order_in_comm[i] + 1
    scode = np.array([service_codes[c][o % len(service_codes[c])] for c, o in zip(comm_idx, order_in_comm, strict=True)],
                     dtype=object)
    return stewards, vcode, scode


def _visits(rng: np.random.Generator, elders: pd.DataFrame, stewards: pd.DataFrame, hx: np.ndarray, hy: np.ndarray,
            ref: date, *, current_week: bool = False) -> pd.DataFrame:
    """8 weeks of visits: weekly for the willing, monthly phone calls for refusers, with gaps.

    With ``current_week`` also the week of ``ref`` up to the day before ``ref``
    (visits drawn for ``ref`` or later are left out: nothing in the future).
    """
    n = len(elders)
    W = T.HISTORY_WEEKS + (1 if current_week else 0)
    monday = ref - timedelta(days=ref.weekday())
    first = monday - timedelta(weeks=T.HISTORY_WEEKS)
    willing = elders["是否愿意接受探访"].to_numpy(dtype=bool)
    signed = elders["是否签约驿站或家庭照护床位"].to_numpy(dtype=bool)
    comm_codes = elders["community_code"].to_numpy()
    happen = np.zeros((n, W), dtype=bool)
    # willing: weekly unless missed
    happen[willing] = rng.random((int(willing.sum()), W)) >= T.P_WEEK_MISSED
    long_gap = willing & (rng.random(n) < T.P_LONG_GAP)
    start = rng.integers(0, W - 2, n)
    for k in range(3):
        happen[np.flatnonzero(long_gap), start[long_gap] + k] = False
    ucomm, cinv = np.unique(comm_codes, return_inverse=True) if n else (np.zeros(0), np.zeros(0, dtype=int))
    off = rng.random(len(ucomm)) < T.P_STEWARD_WEEK_OFF
    off_week = rng.integers(0, W, len(ucomm))
    hit = willing & ~signed & off[cinv] if n else np.zeros(0, dtype=bool)
    happen[np.flatnonzero(hit), off_week[cinv][hit]] = False
    # refusers: a phone call every 4 weeks
    r0 = rng.integers(0, T.REFUSER_INTERVAL_WEEKS, n)
    weeks = np.arange(W)
    ref_rows = ~willing
    happen[ref_rows] = ((weeks[None, :] - r0[ref_rows, None]) % T.REFUSER_INTERVAL_WEEKS) == 0
    ei, wi = np.nonzero(happen)
    m = len(ei)
    is_signed = signed[ei]
    is_ref = ~willing[ei]
    mode = _pick(rng, T.VISIT_MODES_WILLING, m).astype(object)
    mode = np.where(is_ref, "phone", np.where(is_signed, "in_home", mode))
    role = _pick(rng, {"visit_steward": 0.85, "volunteer": 0.10, "social_worker": 0.05}, m).astype(object)
    role = np.where(is_ref, "visit_steward", np.where(is_signed, "service_steward", role))
    vcode = elders["visit_steward_code"].to_numpy()[ei]
    scode = elders["service_steward_code"].to_numpy()[ei]
    steward_code = np.where(role == "visit_steward", vcode, np.where(role == "service_steward", scode, None))
    st_name = dict(zip(stewards["code"], stewards["name"], strict=True))
    other_names = nm.full_names(rng, rng.random(m) < 0.6, young=np.ones(m, dtype=bool))
    visitor = np.array([st_name[c] if c is not None else o for c, o in zip(steward_code, other_names, strict=True)],
                       dtype=object)
    day = np.where(rng.random(m) < 0.05, 5, rng.integers(0, 5, m))
    visited = np.datetime64(first) + (wi * 7 + day).astype("timedelta64[D]")
    minutes = rng.integers(8 * 60 + 30, 16 * 60 + 30, m)
    dur = np.where(mode == "in_home", rng.integers(20, 46, m), np.where(mode == "video", rng.integers(10, 21, m),
                                                                         rng.integers(5, 13, m)))
    start_utc = (visited.astype("datetime64[m]") + minutes.astype("timedelta64[m]")
                 - np.timedelta64(8 * 60, "m"))
    started = pd.DatetimeIndex(start_utc).tz_localize("UTC").tz_convert(BEIJING)
    ended = started + pd.to_timedelta(dur, unit="m")
    late = rng.random(m) < T.P_LATE_ENTRY
    entered = ended + pd.to_timedelta(np.where(late, rng.integers(3, 15, m) * 1440, rng.integers(1, 30, m)), unit="m")
    in_home = mode == "in_home"
    phone = mode == "phone"

    def answers(opts: dict[str, float], allow: np.ndarray | None = None) -> np.ndarray:
        a = _pick(rng, opts, m).astype(object)
        return a if allow is None else np.where(allow, a, None)

    change = {"unchanged": 0.90, "better": 0.04, "worse": 0.06}
    safety = T.SAFETY_ANSWERS
    see = ~phone
    gx = hx[ei] + rng.normal(0, 8, m)
    gy = hy[ei] + rng.normal(0, 8, m)
    glon, glat = _TO_WGS.transform(gx, gy)
    needs_pool = np.array(["助餐", "助医", "助浴", "助洁", "精神慰藉", "居家适老化改造", "康复护理"])
    has_need = rng.random(m) < T.P_VISIT_NEED
    emergency = rng.random(m) < T.P_VISIT_EMERGENCY
    illness = answers({"unchanged": 0.93, "serious": 0.04, "improved": 0.03})
    visits = pd.DataFrame({
        "elder_key": elders["elder_key"].to_numpy()[ei],
        "elder_index": ei,
        "visited_on": pd.DatetimeIndex(visited).date,
        "started_at": started, "ended_at": ended,
        "mode": mode, "effective": True, "visitor_role": role, "visitor_name": visitor,
        "steward_code": steward_code,
        "family_change": answers({"unchanged": 0.97, "increased": 0.01, "decreased": 0.02}),
        "expression": answers(change), "mobility": answers(change), "illness": illness,
        "illness_name": np.where(illness == "serious",
                                 np.array(["高血压", "糖尿病", "冠心病", "脑梗", "慢阻肺"])[rng.integers(0, 5, m)], None),
        "mood": answers(change),
        "gas_safety": answers(safety, see), "water_heating_safety": answers(safety, see),
        "electricity_safety": answers(safety, see),
        "personal_hygiene": answers(change, see), "home_hygiene": answers(change, see),
        "indoor_environment": answers(change, see),
        "needs": np.where(has_need, needs_pool[rng.integers(0, len(needs_pool), m)], None),
        "visitor_signature": visitor,
        "elder_signature": np.where(in_home, elders["姓名"].to_numpy()[ei], None),
        "gps_lon": np.where(in_home, np.round(glon, 6), np.nan),
        "gps_lat": np.where(in_home, np.round(glat, 6), np.nan),
        "emergency": emergency,
        "late_entry": late,
        "entered_by": np.where(late, "纸质补录", "app"),
        "entered_at": entered,
    })
    if current_week:
        visits = visits[visits["visited_on"] < ref]
    visits = visits.sort_values(["elder_index", "visited_on"], kind="stable").reset_index(drop=True)
    visits.insert(2, "seq", visits.groupby("elder_index").cumcount().to_numpy() + 1)
    return visits
