"""``taxi-luigi``: the offline demo and the sample mirror (more commands join as the tool grows)."""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import luigi
import luigi.configuration
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import sample, services
from taxi_luigi.tasks import MonthsParameter, TaxiYear
from taxi_luigi.warehouse import warehouse_for

DEMO_YEAR = 2023
DEMO_MONTHS = (1, 2, 3)  # 2023-02 is when the TLC changed column types and spelled Airport_fee


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror quietly and counts GETs, so the demo can show a rerun downloads nothing."""

    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[tuple[str, type[_CountingHandler]]]:
    """Serve ``directory`` on a free port of 127.0.0.1 until the block ends."""
    handler = type("Handler", (_CountingHandler,), {"requests": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def demo(args: argparse.Namespace) -> int:
    """Generate a sample mirror, serve it on loopback and run the real pipeline against it."""
    data = Path(args.data_dir)
    mirror = data / "mirror"
    started = time.monotonic()
    truths = sample.write_mirror(mirror, services.SERVICES, DEMO_YEAR, DEMO_MONTHS, "tlc", args.rows)
    print(f"sample mirror: {len(truths)} files in {mirror} ({time.monotonic() - started:.1f} s)")
    config = luigi.configuration.get_config()
    config.set("paths", "data_dir", str(data))
    config.set("lake", "root", str(data / "lake"))
    config.set("warehouse", "url", f"duckdb:///{data / 'warehouse.duckdb'}")
    months = MonthsParameter().serialize(DEMO_MONTHS)
    tasks = [TaxiYear(service=name, year=DEMO_YEAR, months=months) for name in services.SERVICES]
    with serve(mirror) as (url, handler):
        config.set("source", "url_template", url + "/{service}/{service}_tripdata_{year}-{month:02d}.parquet")
        runs = []
        for _ in range(2):
            handler.requests = 0
            t0 = time.monotonic()
            result = luigi.build(
                tasks, local_scheduler=True, workers=args.workers, detailed_summary=True, log_level="WARNING"
            )
            runs.append((time.monotonic() - t0, handler.requests, result.status))
    _print_summary(data)
    (first, first_gets, status), (second, second_gets, _) = runs
    print(
        f"\nfirst run: {first:.1f} s, {first_gets} downloads; "
        f"second run: {second:.1f} s, {second_gets} downloads (everything was already complete)"
    )
    print(f"warehouse: {data / 'warehouse.duckdb'}   lake: {data / 'lake'}")
    return 0 if status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY) else 1


def _print_summary(data: Path) -> None:
    rows = warehouse_for(f"duckdb:///{data / 'warehouse.duckdb'}").load_log()
    print(f"\n{'service':<8} {'month':<8} {'loaded':>10} {'quarantined':>12}")
    for r in rows:
        print(f"{r['service']:<8} {r['month']:%Y-%m}  {r['rows']:>10,} {r['quarantined']:>12,}")
    print(f"{'total':<17} {sum(r['rows'] for r in rows):>10,} {sum(r['quarantined'] for r in rows):>12,}")


def write_sample(args: argparse.Namespace) -> int:
    """Write a sample mirror laid out as ``{service}/{service}_tripdata_YYYY-MM.ext``."""
    months = MonthsParameter().parse(args.months) or tuple(range(1, 13))
    for truth in sample.write_mirror(
        Path(args.out), args.services.split(","), args.year, months, args.format, args.rows
    ):
        print(f"{truth.path}  {truth.rows:,} rows, {truth.clean:,} clean")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-luigi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="run the whole pipeline offline on a generated sample")
    p.add_argument("--data-dir", default="data/demo", help="where the mirror, lake and warehouse go")
    p.add_argument("--rows", type=int, default=20_000, help="rows per month file")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=demo)
    p = commands.add_parser("sample", help="write a deterministic sample mirror in the real TLC formats")
    p.add_argument("--out", required=True)
    p.add_argument("--services", default=",".join(services.SERVICES))
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--months", default="", help="e.g. 1-3; default: all twelve")
    p.add_argument("--format", choices=sample.FORMATS, default="tlc")
    p.add_argument("--rows", type=int, default=10_000)
    p.set_defaults(func=write_sample)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
