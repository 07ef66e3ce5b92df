"""The quality site's build time and page sizes for ten years of four services (a local lake, DuckDB).

    .venv/bin/python benchmarks/report.py [--years 10] [--repeats 5]

The inputs are made cheaply, with the real code where it counts: one small month of each service
goes through Clean, Publish and Load (DuckDBWarehouse.replace_month), which gives a real quality
report, manifest and load_log table; every other month's report, manifest and load_log row is a
copy of its service's with the month's own date, counts and checksum, written where the pipeline
writes them. A few months are loaded twice (re-issued), one is stale, one is a gap and one has lost
its quality report, as a real warehouse has. All four services span the same years, fhv and fhvhv
included (their real files start in 2015 and 2019): the point is the number of months.

Timed: ``report.build`` (the whole site; target at most 5 s), the same as a user runs it
(``taxi-luigi report``, a process: Python, Luigi and DuckDB start up too) and ``report.is_current``
(what every finished year wrapper asks: one load_log query). Writes
benchmarks/RESULTS-report.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from taxi_luigi import clean, report, services
from taxi_luigi.demo import sample
from taxi_luigi.lake.local import LocalLake
from taxi_luigi.months import through
from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

REPO = Path(__file__).resolve().parent.parent
LAST_YEAR = 2025
TEMPLATE = dt.date(2023, 1, 1)  # a month every service has a sample of: the one loaded for real


def template(work: Path, svc: services.Service, lake: LocalLake, warehouse: DuckDBWarehouse, month: dt.date) -> dict:
    """One real month through Clean, Publish and Load: its quality report, as the pipeline wrote it."""
    truth = sample.write_month(work / "mirror", svc.name, month.year, month.month, "tlc", 500)
    out = clean.Outputs(work / f"{svc.name}.parquet", work / f"{svc.name}.quarantine.parquet")
    quality = clean.clean_month(truth.path, ".parquet", svc, month, out, label=svc.name)
    (report_path := work / f"{svc.name}.quality.json").write_text(json.dumps(quality))
    files = {"data": out.data, "quarantine": out.quarantine, "report": report_path}
    manifest = lake.publish_month(svc.name, month, files, {"url": str(truth.path)})
    warehouse.replace_month(svc, month, lake, manifest, svc.name)
    return quality


def copies(svc: services.Service, quality: dict, months: list[dt.date], lake: LocalLake) -> list[tuple]:
    """Every other month's quality report and manifest in the lake; its load_log rows, returned."""
    log = []
    loaded_at = dt.datetime(LAST_YEAR + 1, 1, 2)
    for i, month in enumerate(months):
        scale = 1000 + 37 * i  # a size per month, so no month's numbers pass for another's
        by_reason = {reason: (n * scale) // 1000 for reason, n in quality["quarantine_by_reason"].items()}
        clean_rows = (quality["rows_clean"] * scale) // 1000
        month_quality = {
            **quality,
            "month": f"{month:%Y-%m}",
            "rows_clean": clean_rows,
            "rows_quarantined": sum(by_reason.values()),
            "rows_in": clean_rows + sum(by_reason.values()),
            "quarantine_by_reason": by_reason,
            "null_counts": {name: min(clean_rows, (n * scale) // 1000) for name, n in quality["null_counts"].items()},
            "other_columns": ["extra_flag"] if month.year == LAST_YEAR - 3 else [],  # a year of drift
            "pickup_min": f"{month:%Y-%m}-01T00:01:02",
            "pickup_max": f"{month:%Y-%m}-28T23:58:59",
        }
        checksum = hashlib.sha256(f"{svc.name} {month} {scale}".encode()).hexdigest()
        gap, stale, lost, reissued = i == 30, i == len(months) - 1, i == 50, i % 17 == 5
        if gap:
            continue
        (lake.path / lake.key(svc.name, month, "report")).parent.mkdir(parents=True, exist_ok=True)
        if not lost:
            (lake.path / lake.key(svc.name, month, "report")).write_text(json.dumps(month_quality, indent=2))
        manifest = {"service": svc.name, "month": f"{month:%Y-%m}", "checksum": checksum, "rows": clean_rows}
        (lake.path / lake.key(svc.name, month, "manifest")).write_text(json.dumps(manifest, indent=2))
        row = [svc.name, month, checksum, clean_rows, sum(by_reason.values()), lake.key(svc.name, month, "data")]
        if reissued:
            log.append((*row[:2], "0" * 64, clean_rows - 3, row[4], row[5], loaded_at - dt.timedelta(days=40)))
        log.append((*row[:2], "f" * 64 if stale else checksum, *row[3:], loaded_at + dt.timedelta(minutes=i)))
    return log


def timed(repeats: int, fn) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS-report.md")
    args = parser.parse_args(argv)
    first = dt.date(LAST_YEAR - args.years + 1, 1, 1)
    months = through(first, dt.date(LAST_YEAR, 12, 1))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lake, warehouse = LocalLake(str(work / "lake")), DuckDBWarehouse(work / "warehouse.duckdb")
        started = time.perf_counter()
        log = []
        for svc in services.SERVICES.values():
            quality = template(work / svc.name, svc, lake, warehouse, TEMPLATE)
            log += copies(svc, quality, [m for m in months if m != TEMPLATE], lake)
        with duckdb.connect(str(warehouse.path)) as con:
            con.executemany("INSERT INTO load_log VALUES (?, ?, ?, ?, ?, ?, ?)", log)
        made = time.perf_counter() - started
        out = work / "site"
        build = timed(args.repeats, lambda: report.build(lake, warehouse, out))
        cfg = work / "override.cfg"
        cfg.write_text(
            f"[paths]\ndata_dir = {work}\n[lake]\nroot = {lake.root}\n[warehouse]\nurl = duckdb:///{warehouse.path}\n"
        )
        command = [str(Path(sys.executable).parent / "taxi-luigi"), "report", "--out", str(work / "site-cli")]
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        cli = timed(args.repeats, lambda: subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True))
        current = timed(args.repeats, lambda: report.is_current(warehouse, out))
        assert report.is_current(warehouse, out)
        built = report.build(lake, warehouse, out)
        loads = len(warehouse.load_history())
    sizes = "\n".join(f"| {name} | {size / 1e3:,.0f} |" for name, size in built.pages.items())
    text = f"""# The quality site for {args.years} years of four services

Measured {dt.datetime.now():%Y-%m-%d %H:%M} with `.venv/bin/python benchmarks/report.py --years {args.years} \
--repeats {args.repeats}` (Python {platform.python_version()}, DuckDB {duckdb.__version__}, a local lake; inputs made \
in {made:.1f} s: {len(months) * 4:,} months, {loads:,} load_log rows).

| what | best s | median s | target |
|---|---:|---:|---|
| `report.build`: read {len(months) * 4:,} months, write {len(built.pages)} pages | {min(build):.2f} | \
{statistics.median(build):.2f} | at most 5 s: {"yes" if max(build) <= 5 else "**no**"} |
| `taxi-luigi report`, the whole command | {min(cli):.2f} | {statistics.median(cli):.2f} | at most 5 s: \
{"yes" if max(cli) <= 5 else "**no**"} |
| `report.is_current`: the check every finished wrapper makes | {min(current):.3f} | \
{statistics.median(current):.3f} | |

| page | kB |
|---|---:|
{sizes}
| all pages | {sum(built.pages.values()) / 1e3:,.0f} |
"""
    args.results.write_text(text)
    print(text)
    return 0 if max(build + cli) <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
