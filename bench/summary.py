"""Write bench/results/summary.md: one table per benchmark, each run listed once, under 20 kB.

``python bench/summary.py`` (the last step of ``make bench``). Every benchmark
writes its own curated ``bench/results/<name>.md`` (the headline table first,
medians and the reference measured in the same run) beside its JSON. The
summary takes from each: its title, the lines that say when, where and on which
commit it was measured, and its first table, cut to ``--max-rows`` rows with a
pointer to the full file. A JSON without a Markdown page (bench/results/faults.json
is written by a test) gets one line naming its top-level figures.
Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MAX_ROWS = 12
LIMIT_BYTES = 20_000
_WHEN = re.compile(r"(measured|machine|commit|median of|python|cores|runs?\b)", re.IGNORECASE)


def _sections(text: str) -> tuple[str, list[str], list[str]]:
    """Title, the 'when/where' lines before the first table, and the first table of a results page."""
    title = ""
    context: list[str] = []
    table: list[str] = []
    for line in text.splitlines():
        if not title and line.startswith("# "):
            title = line[2:].strip()
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            break
        if line.strip() and _WHEN.search(line) and len(context) < 2 and len(line) < 400:
            context.append(line.strip())
    return title, context, table


def md_section(path: Path, max_rows: int = MAX_ROWS) -> list[str]:
    """The summary of one benchmark page."""
    title, context, table = _sections(path.read_text(encoding="utf-8"))
    out = [f"## {title or path.stem} — [`{path.name}`]({path.name})", ""]
    out += [*context, ""] if context else []
    if table:
        head, body = table[:2], table[2:]
        out += head + body[:max_rows]
        if len(body) > max_rows:
            out.append(f"| … {len(body) - max_rows} more rows in [`{path.name}`]({path.name}) |")
    else:
        out.append(f"(no table: see [`{path.name}`]({path.name}))")
    return [*out, ""]


def _scalar_figures(data: dict[str, Any]) -> str:
    bits = [f"{k} {v}" for k, v in data.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            and len(str(v)) < 40]
    return "; ".join(bits[:8]) or "no scalar figures"


def json_section(path: Path) -> list[str]:
    """One line for a results JSON that has no Markdown page."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"## {path.stem}", "", f"Could not read `{path.name}`: {exc}", ""]
    text = _scalar_figures(data) if isinstance(data, dict) else f"{len(data)} records"
    return [f"## {path.stem} — [`{path.name}`]({path.name})", "", text, ""]


def write_summary(results: Path = RESULTS, out: Path | None = None, max_rows: int = MAX_ROWS) -> Path:
    """Write ``summary.md`` from the benchmark pages in ``results``; returns its path."""
    out = out or results / "summary.md"
    pages = sorted(p for p in results.glob("*.md") if p.name != out.name)
    lone = sorted(p for p in results.glob("*.json") if not p.with_suffix(".md").exists())
    lines = ["# Benchmark summary", "",
             f"Written by `bench/summary.py` on {datetime.now(UTC).isoformat(timespec='minutes')} from "
             f"{len(pages)} benchmark pages. Each section is the headline table of one benchmark as it wrote it "
             "(medians, and the reference measured in the same run); the full page and its JSON are linked.", ""]
    for p in pages:
        lines += md_section(p, max_rows)
    for p in lone:
        lines += json_section(p)
    text = "\n".join(lines)
    while len(text.encode("utf-8")) > LIMIT_BYTES and max_rows > 3:  # keep the summary short
        return write_summary(results, out, max_rows - 3)
    out.write_text(text, encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-rows", type=int, default=MAX_ROWS)
    a = ap.parse_args()
    print(write_summary(a.results, a.out, a.max_rows))


if __name__ == "__main__":
    main()
