"""Benchmark: write the 120,000-row register export (masked xlsx with watermark).

The export is timed against a reference measured in the same run: the same
frame written by a bare openpyxl write-only workbook (no masking, no
watermark, no formula guard), the floor any xlsx export pays. Medians of
``--repeat`` runs go to bench/results/exports.json and exports.md.

Usage: python bench/exports.py [--rows 120000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ID1 = "110108194203150023"


def _frame(n: int):
    import pandas as pd

    return pd.DataFrame({
        "name": ["王秀兰"] * n, "sex": ["女"] * n, "id_number": [ID1] * n,
        "phone": ["13812345678"] * n, "street": ["中关村街道"] * n, "community": ["科育社区居委会"] * n,
        "address": ["北京市海淀区中关村街道科育社区5号楼2单元301"] * n, "lon": [116.3105] * n,
        "lat": [39.9833] * n, "crs": ["WGS84"] * n, "lives_at_hukou": [True] * n,
        "living_alone": [False] * n, "first_contact_name": ["张伟"] * n,
        "first_contact_phone": ["13900001111"] * n, "elder_id": range(n),
    })


def _reference(df, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("台账")
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append(list(row))
    wb.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=120_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from gridmap.register.exports import export_register

    df = _frame(args.rows)
    tmp = Path(tempfile.mkdtemp(prefix="bench_exports_"))
    ours: list[float] = []
    ref: list[float] = []
    for i in range(args.repeat):
        t = time.perf_counter()
        res = export_register(df, tmp / f"ours{i}.xlsx")
        ours.append(time.perf_counter() - t)
        assert res.rows == args.rows
        t = time.perf_counter()
        _reference(df, tmp / f"ref{i}.xlsx")
        ref.append(time.perf_counter() - t)
        print(f"run {i + 1}/{args.repeat}: export {ours[-1]:.1f} s, reference {ref[-1]:.1f} s", flush=True)
    med_o, med_r = statistics.median(ours), statistics.median(ref)
    out = {
        "rows": args.rows, "repeat": args.repeat, "python": platform.python_version(),
        "export_s": ours, "reference_s": ref, "export_median_s": med_o, "reference_median_s": med_r,
        "ratio": med_o / med_r, "rows_per_s": args.rows / med_o, "target_s": 45,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exports.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    (RESULTS / "exports.md").write_text(
        "# Register export (xlsx)\n\n"
        f"{args.rows:,} rows, median of {args.repeat} runs, measured {time.strftime('%Y-%m-%d')}.\n\n"
        "| what | median s | rows/s | ratio to reference |\n|---|---:|---:|---:|\n"
        f"| gridmap register export (masked, watermark) | {med_o:.1f} | {args.rows / med_o:,.0f} | {med_o / med_r:.2f} |\n"
        f"| reference: bare openpyxl write-only | {med_r:.1f} | {args.rows / med_r:,.0f} | 1.00 |\n\n"
        f"Target: under 45 s. {'Met' if med_o < 45 else 'Not met'}.\n",
        encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
