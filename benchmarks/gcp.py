"""Rows per second of Publish to GCS and Load into BigQuery, on the emulators the tests use.

    scripts/emulators && .venv/bin/python benchmarks/gcp.py [--rows 1000000]

The emulators are fake-gcs-server and bqemulator (DuckDB underneath) on 127.0.0.1, so
the figures say what taxi-luigi itself costs around the API calls, not what Google's
service would take. Writes benchmarks/RESULTS-gcp.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from emulators import BigQueryEmulator, FakeGcs  # noqa: E402
from run import Bench  # noqa: E402

from taxi_luigi.demo import sample  # noqa: E402
from taxi_luigi.demo.server import MirrorServer  # noqa: E402

MONTH = "2021-01"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the yellow parquet month")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS-gcp.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        truth = sample.write_month(work / "mirror", "yellow", 2021, 1, "tlc", args.rows)
        with (
            FakeGcs(root=work / "gcs", log=work / "gcs.log") as gcs,
            BigQueryEmulator(log=work / "bq.log", gcs_root=work / "gcs") as bq,
            MirrorServer(work / "mirror") as mirror,
        ):
            bucket = f"lake-{uuid.uuid4().hex[:8]}"
            gcs.client().create_bucket(bucket)
            bench = Bench(work, mirror.url)
            lines = ["| lake | step | rows | wall s | rows/s | peak RSS MB |", "|---|---|---:|---:|---:|---:|"]
            for lake_root in (f"gs://{bucket}/tlc", str(work / "local-lake")):
                cfg = bench.config(
                    f"run-{len(lines)}",
                    ".parquet",
                    lake={"root": lake_root},
                    gcs={"api_endpoint": gcs.url},
                    gcp={"location": "US-CENTRAL1"},  # where fake-gcs-server puts every bucket
                    warehouse={"url": f"bigquery://test/taxi_{uuid.uuid4().hex[:8]}"},
                    bigquery={"api_endpoint": bq.url},
                )
                task = ["--service", "yellow", "--month", MONTH]
                bench.luigi(cfg, "Clean", *task)
                kind = "GCS" if lake_root.startswith("gs://") else "local"
                for step in ("Publish", "Load"):
                    m = bench.luigi(cfg, step, *task)
                    lines.append(
                        f"| {kind} | {step} | {truth.clean:,} | {m.wall:.2f} | {truth.clean / m.wall:,.0f} "
                        f"| {m.peak_mb:,.0f} |"
                    )
    text = "\n".join(
        [
            "# Publish and Load on the GCP emulators",
            "",
            f"Measured {dt.datetime.now():%Y-%m-%d %H:%M} with `.venv/bin/python benchmarks/gcp.py --rows {args.rows}`"
            " (fake-gcs-server 1.54, bqemulator 1.4.0 on 127.0.0.1; each step is a `luigi` process, start-up "
            "included).",
            "",
            *lines,
        ]
    )
    args.results.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
