"""Benchmark: import and geocode a 60,000-row ledger (SQLite, and PostGIS when reachable).

Writes medians and rows/s to bench/results/register.json and register.md, with
references measured in the same run: a plain pandas read of the same file,
geocoding alone, and the row-by-row ORM merge (``import_ledger(bulk=False)``,
the code path before the bulk writer) on a fresh database of each backend.

Re-imports: the identical file (answered from its import batch by SHA-256) and
the same content in a file with other bytes (columns in reverse order), which
goes through reading, validation and the merge and must report every row
unchanged.

Usage: python bench/register.py [--rows 60000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _generate(n: int, out: Path) -> Path:
    from gridmap.layers.admin import load_admin_layers
    from gridmap.synth.register import generate_register
    from gridmap.synth.writer import write_register

    reg = generate_register(load_admin_layers(), n, 7, near_roads=False)
    write_register(reg, out)
    return out


def _time(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-reference", action="store_true", help="Skip the row-by-row ORM reference import.")
    ap.add_argument("--reference-on", default="sqlite,postgis",
                    help="Backends on which the row-by-row reference import runs (comma-separated).")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_register_"))
    os.environ["GRIDMAP_VAR_DIR"] = str(tmp / "var")
    from gridmap.register.importer import import_ledger, load_reference, read_ledger
    from gridmap.store.db import init_db, make_engine

    csv_path = _generate(args.rows, tmp / "ledger.csv")
    layers, ref = load_reference()
    results: dict[str, object] = {"rows": args.rows, "machine": platform.platform(), "python": platform.python_version()}
    import pandas as pd

    t_pandas = [_time(lambda: pd.read_csv(csv_path, dtype=str))[0] for _ in range(3)]
    t_read = [_time(lambda: read_ledger(csv_path))[0] for _ in range(3)]
    ledger = read_ledger(csv_path)
    ref.gazetteer._cache.clear()
    t_geo, _ = _time(lambda: ref.gazetteer.geocode_many(ledger.frame["家庭住址"]))
    other_bytes = tmp / "ledger_reordered.csv"
    pd.read_csv(csv_path, dtype=str, keep_default_na=False).iloc[:, ::-1].to_csv(other_bytes, index=False)
    results["reference"] = {"pandas_read_csv_s": statistics.median(t_pandas), "read_ledger_s": statistics.median(t_read),
                            "geocode_only_s": t_geo, "geocode_rows_per_s": args.rows / t_geo}
    backends = {"sqlite": f"sqlite:///{tmp / 'bench.sqlite'}"}
    pg = os.environ.get("GRIDMAP_TEST_POSTGIS_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/gridmap_test")
    try:
        from gridmap.store.db import check_connection

        check_connection(make_engine(pg))
        backends["postgis"] = pg
    except Exception:  # noqa: BLE001 - PostGIS optional
        pass
    def fresh(name: str, url: str):  # noqa: ANN202
        engine = make_engine(url)
        if name == "postgis":
            from sqlalchemy import text

            from gridmap.store.models import Base

            with engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
            Base.metadata.drop_all(engine)
        else:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        init_db(engine)
        ref.gazetteer._cache.clear()
        return engine

    import resource

    for name, url in backends.items():
        times, again, other, orm = [], [], [], []
        for _ in range(args.repeat):
            if not args.no_reference and name in args.reference_on.split(","):
                engine = fresh(name, url)
                dt0, rep0 = _time(lambda e=engine: import_ledger(e, csv_path, "民政", bulk=False))
                orm.append(dt0)
                engine.dispose()
            engine = fresh(name, url)
            dt, rep = _time(lambda e=engine: import_ledger(e, csv_path, "民政"))
            times.append(dt)
            dt2, rep2 = _time(lambda e=engine: import_ledger(e, csv_path, "民政"))
            again.append(dt2)
            dt3, rep3 = _time(lambda e=engine: import_ledger(e, other_bytes, "民政"))
            other.append(dt3)
            engine.dispose()
        med = statistics.median(times)
        results[name] = {"import_s": med, "rows_per_s": args.rows / med, "reimport_s": statistics.median(again),
                         "reimport_other_bytes_s": statistics.median(other),
                         "rows_imported": rep.rows_imported, "rows_rejected": rep.rows_rejected,
                         "field_warnings": len([w for w in rep.warnings if w.row > 0]),
                         "reimport_unchanged": rep2.rows_unchanged,
                         "reimport_other_bytes_unchanged": rep3.rows_unchanged,
                         "reimport_other_bytes_updated": rep3.rows_updated,
                         "reference_row_by_row_s": statistics.median(orm) if orm else None,
                         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        print(name, results[name], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "register.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    r = results["reference"]
    lines = [f"# Register import benchmark ({args.rows} rows, synthetic ledger, CSV)", "",
             f"Machine: {results['machine']}, Python {results['python']}", "",
             "| step | seconds (median) | rows/s |", "|---|---:|---:|",
             f"| reference: pandas.read_csv | {r['pandas_read_csv_s']:.2f} | {args.rows / r['pandas_read_csv_s']:,.0f} |",
             f"| read_ledger (header detection, raw cells) | {r['read_ledger_s']:.2f} | {args.rows / r['read_ledger_s']:,.0f} |",
             f"| reference: geocoding alone (cold cache) | {r['geocode_only_s']:.2f} | {r['geocode_rows_per_s']:,.0f} |"]
    for name in backends:
        b = results[name]
        if b["reference_row_by_row_s"]:
            lines.append(f"| reference: full import on {name}, row-by-row ORM merge (bulk=False) | "
                         f"{b['reference_row_by_row_s']:.2f} | {args.rows / b['reference_row_by_row_s']:,.0f} |")
        lines.append(f"| full import on {name}, bulk writer (validate, geocode, grids, merge, commit) | "
                     f"{b['import_s']:.2f} | {b['rows_per_s']:,.0f} |")
        lines.append(f"| re-import of the same file on {name} (SHA-256 known: answered from its batch) | "
                     f"{b['reimport_s']:.3f} | {args.rows / b['reimport_s']:,.0f} |")
        lines.append(f"| re-import of the same content, other bytes, on {name} (full path) | "
                     f"{b['reimport_other_bytes_s']:.2f} | {args.rows / b['reimport_other_bytes_s']:,.0f} |")
    lines += ["", "| backend | imported | rejected | field warnings | unchanged (same file) | "
              "unchanged / updated (other bytes) | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in backends:
        b = results[name]
        lines.append(f"| {name} | {b['rows_imported']:,} | {b['rows_rejected']:,} | {b['field_warnings']:,} | "
                     f"{b['reimport_unchanged']:,} | {b['reimport_other_bytes_unchanged']:,} / "
                     f"{b['reimport_other_bytes_updated']:,} | {b['peak_rss_mb']:,.0f} |")
    (RESULTS / "register.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
