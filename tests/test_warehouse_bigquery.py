"""The warehouse on BigQuery (bqemulator) fed from the lake on GCS (fake-gcs-server), with the official clients."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import luigi
import luigi.scheduler
import luigi.worker
import pytest
import requests
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import config, services, status
from taxi_luigi.config import configured_warehouse
from taxi_luigi.demo import sample
from taxi_luigi.tasks import Clean, Download, Load, Publish, TaxiYear

EMULATOR_LOCATION = "US-CENTRAL1"  # where fake-gcs-server puts every bucket: a us-central1 dataset loads from it


@pytest.fixture
def gcp(pipeline, gcs, bigquery, mirror):
    """The pipeline configured for a fresh bucket and dataset; returns a small helper for reading BigQuery."""
    bucket, dataset = f"lake-{uuid.uuid4().hex[:10]}", f"taxi_{uuid.uuid4().hex[:10]}"
    gcs.client().create_bucket(bucket)

    class Gcp:
        client = bigquery.client()

        @staticmethod
        def configure(lake_root: str | None = None, template: str = "", **sections: dict[str, object]) -> None:
            """The pipeline on the emulators; ``sections`` replace whole sections (``gcp={}``: luigi.cfg's)."""
            defaults = {
                "lake": {"root": lake_root or f"gs://{bucket}/tlc"},
                "gcs": {"api_endpoint": gcs.url},
                "gcp": {"location": EMULATOR_LOCATION},
                "warehouse": {"url": f"bigquery://test/{dataset}"},
                "bigquery": {"api_endpoint": bigquery.url},
            }
            pipeline.configure(template or mirror.template(), **{**defaults, **sections})

        @staticmethod
        def counts(table: str) -> dict[str, int]:
            sql = f"SELECT source_month, count(*) AS n FROM `test.{dataset}.{table}` GROUP BY 1 ORDER BY 1"
            return {f"{r['source_month']:%Y-%m}": r["n"] for r in Gcp.client.query(sql).result()}

        @staticmethod
        def log_rows() -> int:
            return next(iter(Gcp.client.query(f"SELECT count(*) FROM `test.{dataset}.load_log`").result()))[0]

    Gcp.configure()
    Gcp.dataset, Gcp.bucket = dataset, gcs.client().bucket(bucket)
    return Gcp


@pytest.mark.parametrize("service", list(services.SERVICES))
def test_every_service_lands_in_bigquery_exactly_across_the_2023_type_change(mirror, pipeline, gcp, service):
    truths = sample.write_mirror(mirror.root, [service], 2023, [1, 2, 3], "tlc", 700)

    assert pipeline.run(TaxiYear(service=service, year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS

    table = services.service(service).table
    assert gcp.counts(table) == {f"2023-{t.month:02d}": t.clean for t in truths}
    quarantined = {f"2023-{t.month:02d}": sum(t.reasons.values()) for t in truths if sum(t.reasons.values())}
    assert gcp.counts(f"{table}_quarantine") == quarantined
    created = gcp.client.get_table(f"test.{gcp.dataset}.{table}")
    schema = {f.name: f.field_type for f in created.schema}
    assert schema["pickup_datetime"] == "DATETIME" and schema["source_month"] == "DATE"
    assert (created.time_partitioning.type_, created.time_partitioning.field) == ("MONTH", "source_month")
    assert created.clustering_fields == ["pu_location_id", "do_location_id"]


def test_a_rerun_loads_nothing_and_asks_each_service_once(mirror, pipeline, gcp, gcs, bigquery, monkeypatch):
    sample.write_mirror(mirror.root, ["green"], 2022, range(1, 13), "tlc", 200)
    assert pipeline.run(TaxiYear(service="green", year=2022)).status == LuigiStatusCode.SUCCESS
    before = configured_warehouse(f"bigquery://test/{gcp.dataset}").load_log()

    calls = {gcs.url: [], bigquery.url: []}  # a spy on the transport: real requests, counted
    real_request = requests.Session.request

    def counted(session, method, url, *args, **kwargs):
        for base, seen in calls.items():
            if url.startswith(base):
                seen.append(f"{method} {url.removeprefix(base).split('?')[0]}")
        return real_request(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counted)
    result = pipeline.run(TaxiYear(service="green", year=2022))

    assert result.status == LuigiStatusCode.SUCCESS and "ran successfully" not in result.summary_text
    assert len(calls[gcs.url]) == 1  # one listing of the year's manifests
    posts = [c for c in calls[bigquery.url] if c.startswith("POST")]
    assert posts == ["POST /bigquery/v2/projects/test/jobs"] * 2  # the year's load_log, and the site's
    results = [c for c in calls[bigquery.url] if not c.startswith("POST")]
    assert results and all(c.startswith("GET /bigquery/v2/projects/test/queries/") for c in results)  # their rows
    assert configured_warehouse(f"bigquery://test/{gcp.dataset}").load_log() == before
    assert mirror.downloads() == 12


def test_a_republished_month_replaces_exactly_that_month(mirror, pipeline, gcp):
    sample.write_mirror(mirror.root, ["yellow"], 2022, [1, 2], "tlc", 600)
    pipeline.run(TaxiYear(service="yellow", year=2022, months="1-2"))
    first = gcp.counts("yellow_tripdata")

    new = sample.write_month(mirror.root, "yellow", 2022, 2, "tlc", 900)
    feb = dt.date(2022, 2, 1)
    for task in (Download(service="yellow", month=feb), Clean(service="yellow", month=feb)):
        Path(task.output().path).unlink()
    gcp.bucket.blob("tlc/yellow/2022/yellow_tripdata_2022-02.manifest.json").delete()  # what an invalidation does
    result = pipeline.run(TaxiYear(service="yellow", year=2022, months="1-2"))
    assert result.status == LuigiStatusCode.SUCCESS
    assert gcp.counts("yellow_tripdata") == {"2022-01": first["2022-01"], "2022-02": new.clean}
    assert gcp.log_rows() == 3
    wh = configured_warehouse(f"bigquery://test/{gcp.dataset}")
    history = wh.load_history("yellow")  # every load, oldest first: February twice, with two checksums
    assert [(f"{r['month']:%Y-%m}", r["lake_object"]) for r in history] == [
        ("2022-01", "yellow/2022/yellow_tripdata_2022-01.parquet"),
        ("2022-02", "yellow/2022/yellow_tripdata_2022-02.parquet"),
        ("2022-02", "yellow/2022/yellow_tripdata_2022-02.parquet"),
    ]
    assert history[1]["checksum"] != history[2]["checksum"] and history[1]["loaded_at"] < history[2]["loaded_at"]
    assert history[2]["rows"] == new.clean
    assert [{k: v for k, v in r.items() if k != "lake_object"} for r in (history[0], history[2])] == wh.load_log()
    assert wh.load_history("green") == []
    assert configured_warehouse(f"bigquery://test/{gcp.dataset}_never").load_history() == []  # no dataset


def test_a_failed_load_leaves_neither_a_log_row_nor_a_partial_month(mirror, pipeline, gcp):
    """A real permanent error: someone dropped a column of the table, so the INSERT fails in the transaction
    after the DELETE ran."""
    sample.write_mirror(mirror.root, ["fhv"], 2021, [3, 4], "tlc", 500)
    assert pipeline.run(TaxiYear(service="fhv", year=2021, months="3")).status == LuigiStatusCode.SUCCESS
    march = gcp.counts("fhv_tripdata")
    gcp.client.query(f"ALTER TABLE `test.{gcp.dataset}.fhv_tripdata` DROP COLUMN other_columns").result()

    load = Load(service="fhv", month=dt.date(2021, 4, 1))
    scheduler = luigi.scheduler.Scheduler()
    with luigi.worker.Worker(scheduler=scheduler, no_install_shutdown_handler=True) as worker:
        worker.add(load)
        assert not worker.run()

    error = scheduler.fetch_error(load.task_id)["error"]
    assert (
        f"fhv 2021-04: replacing bigquery://test/{gcp.dataset}.fhv_tripdata 2021-04 failed and was rolled back" in error
    )
    assert "drop it and rerun" in error

    assert gcp.counts("fhv_tripdata") == march
    assert gcp.log_rows() == 1
    tables = {t.table_id for t in gcp.client.list_tables(f"test.{gcp.dataset}")}
    assert not any(t.startswith("_staging_") for t in tables)


def test_a_local_lake_loads_into_bigquery_from_files(mirror, pipeline, gcp, tmp_path):
    truth = sample.write_month(mirror.root, "green", 2021, 8, "tlc", 400)
    gcp.configure(lake_root=str(tmp_path / "lake"))
    month = dt.date(2021, 8, 1)
    assert pipeline.run(Publish(service="green", month=month)).status == LuigiStatusCode.SUCCESS
    assert not Load(service="green", month=month).complete()  # asked of a dataset that does not exist yet
    assert pipeline.run(TaxiYear(service="green", year=2021, months="8")).status == LuigiStatusCode.SUCCESS
    assert gcp.counts("green_tripdata") == {"2021-08": truth.clean}
    assert gcp.log_rows() == 1


def test_the_default_us_dataset_loads_from_a_bucket_in_a_region(mirror, pipeline, gcp, gcs):
    """BigQuery loads a US dataset from a bucket in any location: with [gcp] location at luigi.cfg's default (US), the
    emulator's US-CENTRAL1 bucket publishes and loads."""
    truth = sample.write_month(mirror.root, "green", 2022, 5, "tlc", 400)
    gcp.configure(gcp={})
    assert config.gcp().location == "US"
    assert gcs.client().get_bucket(gcp.bucket.name).location == "US-CENTRAL1"

    assert pipeline.run(TaxiYear(service="green", year=2022, months="5")).status == LuigiStatusCode.SUCCESS

    assert gcp.counts("green_tripdata") == {"2022-05": truth.clean}
    assert gcp.log_rows() == 1
    assert gcp.client.get_dataset(f"test.{gcp.dataset}").location == "US"


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("EU", "a dataset in the EU multi-region loads only from a bucket in EU or in a region inside it"),
        ("europe-west1", "a dataset in the region europe-west1 loads only from a bucket in that same region"),
    ],
)
def test_a_dataset_that_cannot_load_from_the_bucket_stops_publish_before_any_upload(
    mirror, pipeline, gcp, gcs, location, rule
):
    sample.write_month(mirror.root, "yellow", 2022, 3, "tlc", 300)
    gcp.configure(gcp={"location": location})
    load = Load(service="yellow", month=dt.date(2022, 3, 1))
    scheduler = luigi.scheduler.Scheduler()
    with luigi.worker.Worker(scheduler=scheduler, no_install_shutdown_handler=True) as worker:
        worker.add(load)
        assert not worker.run()

    publish = load.requires()
    error = scheduler.fetch_error(publish.task_id)["error"]
    assert (
        f"the bucket gs://{gcp.bucket.name} is in US-CENTRAL1 and the BigQuery dataset's location is {location} "
        f"([gcp] location): BigQuery would refuse to load it, since {rule}" in error
    )
    assert "set [gcp] location to US, whose datasets load from a bucket in any location" in error
    assert publish.requires().complete() and not publish.complete()  # cleaned, then stopped
    assert list(gcs.client().list_blobs(gcp.bucket.name)) == []  # nothing uploaded
    assert gcp.dataset not in {d.dataset_id for d in gcp.client.list_datasets()}  # nor loaded


@pytest.mark.parametrize("location", ["europe-west1", "EU"])
def test_a_dataset_in_europe_loads_from_a_bucket_in_europe_west1(mirror, pipeline, gcp, gcs_europe_west1, location):
    """A regional dataset loads from a bucket in its own region, and an EU dataset from one in a region inside EU.
    The bucket is on a second fake-gcs-server, started in EUROPE-WEST1: the emulator's only way to put one there."""
    truth = sample.write_month(mirror.root, "fhv", 2021, 9, "tlc", 500)
    bucket = gcs_europe_west1.client().create_bucket(f"lake-{uuid.uuid4().hex[:10]}")
    assert gcs_europe_west1.client().get_bucket(bucket.name).location == "EUROPE-WEST1"
    gcp.configure(
        lake_root=f"gs://{bucket.name}/tlc", gcs={"api_endpoint": gcs_europe_west1.url}, gcp={"location": location}
    )

    assert pipeline.run(TaxiYear(service="fhv", year=2021, months="9")).status == LuigiStatusCode.SUCCESS

    assert gcp.counts("fhv_tripdata") == {"2021-09": truth.clean}
    assert gcp.log_rows() == 1
    assert gcp.client.get_dataset(f"test.{gcp.dataset}").location == location
    assert len(list(gcs_europe_west1.client().list_blobs(bucket.name))) == 4


def test_the_smoke_script_for_real_gcp_passes_on_the_emulators(gcs, bigquery):
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    gcs.client().create_bucket(bucket)
    where = ["--project", "test", "--bucket", bucket, "--dataset", "smoke", "--location", EMULATOR_LOCATION]
    run = subprocess.run(
        [
            sys.executable,
            "scripts/gcp_smoke.py",
            *where,
            "--gcs-endpoint",
            gcs.url,
            "--bigquery-endpoint",
            bigquery.url,
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("ok ") == 5 and "FAILED" not in run.stdout


def test_forget_month_deletes_its_load_log_rows_in_one_parameterised_query(mirror, pipeline, gcp):
    truths = sample.write_mirror(mirror.root, ["green"], 2022, [1, 2], "tlc", 300)
    assert pipeline.run(TaxiYear(service="green", year=2022, months="1-2")).status == LuigiStatusCode.SUCCESS
    wh = configured_warehouse(f"bigquery://test/{gcp.dataset}")
    jan, feb = dt.date(2022, 1, 1), dt.date(2022, 2, 1)
    loaded = {f"2022-{t.month:02d}": t.clean for t in truths}

    assert wh.forget_month("green' OR 'x' = 'x", feb) == 0  # bound as a parameter, never spliced into SQL
    assert wh.forget_month("green", feb) == 1
    assert set(wh.loaded_checksums("green")) == {jan}
    assert gcp.counts("green_tripdata") == loaded  # queries still see the month
    assert [(row.month, row.publish, row.load) for row in status.status(["green"], None, dt.date.today())] == [
        (jan, "done", "done"),
        (feb, "done", "missing"),
    ]
    assert wh.forget_month("green", feb) == 0
    assert configured_warehouse(f"bigquery://test/{gcp.dataset}_never").forget_month("green", feb) == 0  # no dataset

    assert pipeline.run(TaxiYear(service="green", year=2022, months="1-2")).status == LuigiStatusCode.SUCCESS
    assert set(wh.loaded_checksums("green")) == {jan, feb}
    assert gcp.counts("green_tripdata") == loaded
    assert gcp.log_rows() == 2
    months = status.status(["green"], None, dt.date.today())  # the GCS listing and BigQuery's load_log
    assert [(f"{m.month:%Y-%m}", m.load, m.rows) for m in months] == [(k, "done", n) for k, n in loaded.items()]
    assert all(m.loaded_at.tzinfo == dt.timezone.utc for m in months)


def test_a_table_of_an_older_schema_version_gets_the_new_columns_and_keeps_its_months(mirror, pipeline, gcp):
    from google.cloud import bigquery as bq

    from taxi_luigi.warehouse.bigquery import table_schema

    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2], "tlc", 300)
    older = [f for f in table_schema(services.service("yellow")) if f.name != "pickup_longitude"]
    table = bq.Table(f"test.{gcp.dataset}.yellow_tripdata", schema=older)
    table.time_partitioning = bq.TimePartitioning(type_=bq.TimePartitioningType.MONTH, field="source_month")
    dataset = bq.Dataset(f"test.{gcp.dataset}")
    dataset.location = EMULATOR_LOCATION
    gcp.client.create_dataset(dataset, exists_ok=True)
    gcp.client.create_table(table)  # as a warehouse made before the coordinates joined the schema

    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1,2")).status == LuigiStatusCode.SUCCESS

    assert gcp.counts("yellow_tripdata") == {f"2023-{t.month:02d}": t.clean for t in truths}
    # The column is there to query (bqemulator's table metadata does not show DDL-added columns; BigQuery's does).
    sql = f"SELECT count(pickup_longitude) AS n FROM `test.{gcp.dataset}.yellow_tripdata`"
    assert next(iter(gcp.client.query(sql).result()))["n"] == 0  # 2023 months have no coordinates
