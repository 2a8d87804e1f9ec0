"""Write bench/results/summary.md from every bench/results/*.json: each figure, its median over runs, the machine, and its same-run reference.

``python bench/summary.py`` (the last step of ``make bench``). Each results
file is read as it is; two shapes are understood:

* an explicit ``"summary"`` list (bench/city.py writes one) of rows
  ``{"figure", "value", "unit", "runs": [...], "reference": {"name", "value", "unit"}, ...}``
  — the median is taken over ``runs`` when given, else ``value`` is shown;
* any other JSON, walked: every number is a figure named by its path; a
  list of numbers, or a dict with ``runs``/``median``, gives its median and
  run count; a sibling (or an ancestor's child) named like a reference —
  ``bks``, ``best_known``, ``reference``, ``baseline``, ``peer``, ``pyvrp…``,
  ``target…`` — is shown as what the figure is compared with in the same run
  (same leaf name preferred, e.g. ``ours_10.cost`` ↔ ``pyvrp_10.cost`` and
  ``bks``). Long lists of records (per street, per instance detail) are
  counted, not listed.

Peak memory: rows whose name mentions RSS/memory are listed first in each
file's section; a file without any says so. Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_REF = re.compile(r"(^|_)(bks|best_known|reference|baseline|peer|pyvrp|target)", re.IGNORECASE)
_MEM = re.compile(r"rss|memory|mem_mb|peak_mb", re.IGNORECASE)
_UNITS = [(re.compile(r"(_ms|_ms_.*)$|_ms_"), "ms"), (re.compile(r"rows_per_s|per_s$|_per_second"), "/s"),
          (re.compile(r"(_s|_seconds|_sec)$|_s_|seconds"), "s"), (re.compile(r"_mb$|_mb_|rss"), "MB"),
          (re.compile(r"_kb$|_kb_"), "kB"), (re.compile(r"_gb$"), "GB"), (re.compile(r"pct|_percent"), "%")]
_COSTLIKE = ("cost", "value", "objective", "distance", "travel_seconds")
MAX_ROWS = 60
MAX_LIST = 6


def _unit(path: str) -> str:
    leaf = path.split(".")[-1].lower()
    for rx, u in _UNITS:
        if rx.search(leaf):
            return u
    return ""


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.4g}" if abs(x) < 1e5 else f"{x:,.0f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def machine_of(data: dict[str, Any]) -> str:
    """The machine a results file says it was measured on."""
    m = data.get("machine")
    if isinstance(m, dict):
        return ", ".join(f"{k} {v}" for k, v in m.items() if v is not None)
    if isinstance(m, str):
        return m + (f", python {data['python']}" if data.get("python") else "")
    bits = [str(data[k]) for k in ("platform", "python", "cpus") if data.get(k)]
    return ", ".join(bits) or "not recorded"


def _label(item: dict[str, Any], i: int) -> str:
    for k in ("name", "label", "callback", "instance", "figure", "what", "mode", "code"):
        if isinstance(item.get(k), str):
            return item[k]
    return str(i)


def _walk(x: Any, path: str, rows: list[dict[str, Any]], refs: list[dict[str, Any]]) -> None:
    """Figures of a generic JSON (see the module docstring)."""
    if isinstance(x, dict):
        if isinstance(x.get("runs"), list) and x["runs"] and all(_num(r) for r in x["runs"]):
            rows.append({"figure": path, "value": x.get("median", statistics.median(x["runs"])),
                         "n": len(x["runs"]), "unit": _unit(path), "refs": refs})
            return
        local = [{"name": f"{path}.{k}".lstrip("."), "key": k, "value": v} for k, v in x.items()
                 if _REF.search(str(k)) and (_num(v) or isinstance(v, dict))]
        here = refs + local
        for k, v in x.items():
            if _REF.search(str(k)):
                continue
            _walk(v, f"{path}.{k}".lstrip("."), rows, here)
        for r in local:  # references are figures too (marked)
            if _num(r["value"]):
                rows.append({"figure": r["name"], "value": r["value"], "unit": _unit(r["name"]), "refs": [],
                             "is_reference": True})
            else:
                for kk, vv in r["value"].items():
                    if _num(vv):
                        rows.append({"figure": f"{r['name']}.{kk}", "value": vv, "unit": _unit(kk), "refs": [],
                                     "is_reference": True})
    elif isinstance(x, list):
        if x and all(_num(v) for v in x):
            rows.append({"figure": path, "value": statistics.median(x), "n": len(x), "unit": _unit(path),
                         "refs": refs})
        elif x and all(isinstance(v, dict) for v in x):
            if len(x) > MAX_LIST:
                rows.append({"figure": f"{path} (records)", "value": len(x), "unit": "", "refs": [], "count": True})
                return
            for i, v in enumerate(x):
                _walk(v, f"{path}[{_label(v, i)}]", rows, refs)
    elif _num(x):
        rows.append({"figure": path, "value": x, "unit": _unit(path), "refs": refs})


def _compared(row: dict[str, Any]) -> str:
    """The same-run references of a generic row: same leaf name first, then plain scalars."""
    leaf = row["figure"].split(".")[-1]
    out = []
    for r in row.get("refs", []):
        v = r["value"]
        if isinstance(v, dict):
            if _num(v.get(leaf)):
                out.append(f"{r['name']}.{leaf} {_fmt(v[leaf])}")
        elif _num(v) and (leaf in _COSTLIKE or (_unit(r["name"]) != "" and _unit(r["name"]) == _unit(row["figure"]))):
            out.append(f"{r['name']} {_fmt(v)}")
    return "; ".join(out[:3]) or "—"


def file_section(path: Path) -> list[str]:
    """Markdown of one results file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    when = data.get("measured_at") or datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="minutes")
    lines = [f"## {path.stem} (`{path.name}`)", "", f"Machine: {machine_of(data)}. Measured: {when}."
             + (f" Commit {data['commit']}." if data.get("commit") else ""), ""]
    if isinstance(data.get("summary"), list):
        lines += ["| figure | median | unit | runs | compared with (same run) |", "|---|---|---|---|---|"]
        for r in data["summary"]:
            runs = r.get("runs") or []
            med = statistics.median(runs) if runs and all(_num(x) for x in runs) else r.get("value")
            extra = []
            if r.get("per_problem_s") is not None:
                extra.append(f"per problem {_fmt(r['per_problem_s'])} s")
            if r.get("peak_rss_mb") is not None:
                extra.append(f"peak RSS {_fmt(r['peak_rss_mb'])} MB")
            ref = r.get("reference")
            comp = f"{ref['name']}: {_fmt(ref['value'])} {ref.get('unit', '')}".strip() if ref else "—"
            unit = r.get("unit", "") + (f" ({'; '.join(extra)})" if extra else "")
            lines.append(f"| {r['figure']} | {_fmt(med)} | {unit} | {len(runs) or 1} | {comp} |")
        has_mem = any(_MEM.search(json.dumps(r)) for r in data["summary"])
    else:
        rows: list[dict[str, Any]] = []
        _walk({k: v for k, v in data.items() if k not in ("machine", "commit", "measured_at", "summary")}, "",
              rows, [])
        has_mem = any(_MEM.search(r["figure"]) for r in rows)
        rows.sort(key=lambda r: (not _MEM.search(r["figure"]), r.get("is_reference", False)))
        lines += ["| figure | median | unit | runs | compared with (same run) |", "|---|---|---|---|---|"]
        for r in rows[:MAX_ROWS]:
            name = r["figure"] + (" *(reference)*" if r.get("is_reference") else "")
            lines.append(f"| {name} | {_fmt(r['value'])} | {r['unit']} | {r.get('n', data.get('runs', 1))} "
                         f"| {_compared(r)} |")
        if len(rows) > MAX_ROWS:
            lines.append(f"| … {len(rows) - MAX_ROWS} more figures in the JSON | | | | |")
    if not has_mem:
        lines += ["", "Peak memory: not recorded by this benchmark."]
    return lines + [""]


def write_summary(results: Path = RESULTS, out: Path | None = None) -> Path:
    """Write ``summary.md`` from every ``*.json`` in ``results``; returns its path."""
    out = out or results / "summary.md"
    files = sorted(p for p in results.glob("*.json"))
    lines = ["# Benchmark summary", "",
             (f"Written by `bench/summary.py` on {datetime.now(UTC).isoformat(timespec='minutes')} "
             f"({platform.node() or 'this machine'}, Python {platform.python_version()}) from "
             f"{len(files)} results files. Each figure is the median over its runs (runs = 1 when the benchmark "
             "measured once); *compared with* is the reference measured in the same run. Machines are as "
             "each benchmark recorded them."), ""]
    for p in files:
        try:
            lines += file_section(p)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            lines += [f"## {p.stem}", "", f"Could not read `{p.name}`: {type(exc).__name__}: {exc}", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    print(write_summary(a.results, a.out))


if __name__ == "__main__":
    main()
