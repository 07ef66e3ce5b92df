"""Smoke test on real GCP: one sample month through the whole chain into your bucket and dataset.

    .venv/bin/python scripts/gcp_smoke.py --project my-project --bucket my-bucket --dataset taxi_smoke --location US

Uses Application Default Credentials (`gcloud auth application-default login`). It writes
under gs://BUCKET/taxi-luigi-smoke/ and into DATASET (created if missing), checks the
counts in BigQuery against the sample's, runs again to show nothing is redone, and
prints what it left behind so you can delete it. The month is generated locally and
served on 127.0.0.1: nothing is downloaded from the TLC. With --gcs-endpoint and
--bigquery-endpoint it runs against emulators instead (the test suite does that).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import luigi
import luigi.configuration
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi.config import configured_warehouse
from taxi_luigi.demo import sample
from taxi_luigi.demo.server import MirrorServer
from taxi_luigi.tasks import TaxiYear

SERVICE, YEAR, MONTH, ROWS = "green", 2023, 2, 5000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--location", default="US", help="the dataset's location (made there); the bucket must be one it loads from"
    )
    parser.add_argument("--prefix", default="taxi-luigi-smoke")
    parser.add_argument("--gcs-endpoint", default="", help="an emulator's URL (default: Google's)")
    parser.add_argument("--bigquery-endpoint", default="", help="an emulator's URL (default: Google's)")
    args = parser.parse_args(argv)
    warehouse_url = f"bigquery://{args.project}/{args.dataset}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        truth = sample.write_month(work / "mirror", SERVICE, YEAR, MONTH, "tlc", ROWS)
        config = luigi.configuration.get_config()
        for section, key, value in (
            ("paths", "data_dir", str(work / "data")),
            ("lake", "root", f"gs://{args.bucket}/{args.prefix}"),
            ("warehouse", "url", warehouse_url),
            ("gcp", "project", args.project),
            ("gcp", "location", args.location),
            ("gcs", "api_endpoint", args.gcs_endpoint),
            ("bigquery", "api_endpoint", args.bigquery_endpoint),
        ):
            config.set(section, key, value)
        with MirrorServer(work / "mirror") as mirror:
            config.set("source", "url_template", mirror.template())
            task = TaxiYear(service=SERVICE, year=YEAR, months=str(MONTH))
            first = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="WARNING")
            if first.status != LuigiStatusCode.SUCCESS:
                print(first.summary_text)
                print("FAILED: see the errors above.", file=sys.stderr)
                return 1
            downloads = mirror.downloads()
            again = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="WARNING")
    log = [r for r in configured_warehouse().load_log(SERVICE) if f"{r['month']:%Y-%m}" == f"{YEAR}-{MONTH:02d}"]
    checks = {
        "one load_log row for the month": len(log) == 1,
        f"{truth.clean:,} clean rows loaded": bool(log) and log[0]["rows"] == truth.clean,
        f"{sum(truth.reasons.values()):,} quarantined": bool(log)
        and log[0]["quarantined"] == sum(truth.reasons.values()),
        "the rerun did nothing": again.status == LuigiStatusCode.SUCCESS
        and "ran successfully" not in again.summary_text,
        "one download in all": downloads == 1 and mirror.downloads() == 1,
    }
    for what, ok in checks.items():
        print(f"{'ok ' if ok else 'FAILED'}  {what}")
    print(
        f"\nLeft behind: gs://{args.bucket}/{args.prefix}/ and the tables {SERVICE}_tripdata, "
        f"{SERVICE}_tripdata_quarantine and load_log in {args.project}.{args.dataset}."
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
