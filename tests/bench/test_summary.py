"""bench/summary.py: one short section per benchmark page, each run listed once, under 20 kB."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _summary_module():
    spec = importlib.util.spec_from_file_location("bench_summary", ROOT / "bench" / "summary.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_summary_has_one_table_per_benchmark_and_stays_small(tmp_path: Path) -> None:
    mod = _summary_module()
    for i in range(3):
        rows = "\n".join(f"| case {j} | {j * 1.5} | {j} |" for j in range(200))
        (tmp_path / f"b{i}.md").write_text(
            f"# Bench {i}\n\nMeasured 2026-12-01 at commit abc{i}.\n\n| case | s | ref s |\n|---|---:|---:|\n{rows}\n\n"
            "## More\n\n| other | x |\n|---|---|\n| y | 1 |\n", encoding="utf-8")
        (tmp_path / f"b{i}.json").write_text('{"runs": [1, 2, 3]}', encoding="utf-8")
    (tmp_path / "lone.json").write_text('{"passed": 5, "failed": 0}', encoding="utf-8")
    out = mod.write_summary(tmp_path)
    text = out.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 20_000
    for i in range(3):
        assert text.count(f"## Bench {i}") == 1
        assert f"commit abc{i}" in text
        assert "| case 0 |" in text and "| case 199 |" not in text  # cut, pointing to the full page
    assert "188 more rows in [`b0.md`]" in text
    assert "| other |" not in text  # only the headline table
    assert "passed 5; failed 0" in text  # a JSON without a page gets one line


def test_committed_summary_is_under_20_kb() -> None:
    assert (ROOT / "bench" / "results" / "summary.md").stat().st_size < 20_000
