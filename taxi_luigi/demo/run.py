"""``taxi-luigi demo``: the real pipeline, offline, on sample months served from 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import luigi
import luigi.configuration
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import services
from taxi_luigi.demo import sample
from taxi_luigi.demo.server import MirrorServer
from taxi_luigi.parameters import MonthsParameter
from taxi_luigi.tasks import TaxiYear
from taxi_luigi.warehouse import warehouse_for

DEMO_YEAR = 2023
DEMO_MONTHS = (1, 2, 3)  # 2023-02 is when the TLC changed column types and spelled Airport_fee


def demo(data: Path, rows: int, workers: int) -> int:
    """Generate a sample mirror, serve it on loopback and run the real pipeline against it, twice: the
    second run downloads nothing, which is the point of the targets. 0 if the first run succeeded."""
    mirror = data / "mirror"
    started = time.monotonic()
    truths = sample.write_mirror(mirror, services.SERVICES, DEMO_YEAR, DEMO_MONTHS, "tlc", rows)
    print(f"sample mirror: {len(truths)} files in {mirror} ({time.monotonic() - started:.1f} s)")
    config = luigi.configuration.get_config()
    config.set("paths", "data_dir", str(data))
    config.set("lake", "root", str(data / "lake"))
    config.set("warehouse", "url", f"duckdb:///{data / 'warehouse.duckdb'}")
    months = MonthsParameter().serialize(DEMO_MONTHS)
    tasks = [TaxiYear(service=name, year=DEMO_YEAR, months=months) for name in services.SERVICES]
    with MirrorServer(mirror) as server:
        config.set("source", "url_template", server.template())
        runs = []
        for _ in range(2):
            server.requests.clear()
            t0 = time.monotonic()
            result = luigi.build(
                tasks, local_scheduler=True, workers=workers, detailed_summary=True, log_level="WARNING"
            )
            runs.append((time.monotonic() - t0, server.downloads(), result.status))
    _print_summary(data)
    (first, first_gets, status), (second, second_gets, _) = runs
    print(
        f"\nfirst run: {first:.1f} s, {first_gets} downloads; "
        f"second run: {second:.1f} s, {second_gets} downloads (everything was already complete)"
    )
    print(f"warehouse: {data / 'warehouse.duckdb'}   lake: {data / 'lake'}")
    print(f"quality site: {data / 'report' / 'index.html'}")
    return 0 if status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY) else 1


def _print_summary(data: Path) -> None:
    rows = warehouse_for(f"duckdb:///{data / 'warehouse.duckdb'}").load_log()
    print(f"\n{'service':<8} {'month':<8} {'loaded':>10} {'quarantined':>12}")
    for r in rows:
        print(f"{r['service']:<8} {r['month']:%Y-%m}  {r['rows']:>10,} {r['quarantined']:>12,}")
    print(f"{'total':<17} {sum(r['rows'] for r in rows):>10,} {sum(r['quarantined'] for r in rows):>12,}")
