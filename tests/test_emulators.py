"""The official Google clients against the emulators: what a GCS/BigQuery warehouse would rely on, and where the
emulators differ from the real services (those tests say so in their names, so an upgrade that changes them shows)."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.storage", reason="needs the gcp extra: pip install -e '.[gcp]'")
pytest.importorskip("google.cloud.bigquery", reason="needs the gcp extra: pip install -e '.[gcp]'")

import pyarrow as pa
import pyarrow.parquet as pq
from emulators import BigQueryEmulator, FakeGcs
from google.api_core.exceptions import BadRequest, PreconditionFailed
from google.cloud import bigquery as bq

SCHEMA = [
    bq.SchemaField("source_month", "DATE", mode="REQUIRED"),
    bq.SchemaField("vendor_id", "INT64"),
    bq.SchemaField("fare", "FLOAT64"),
]


def month_parquet(month: dt.date, rows: int) -> bytes:
    """A parquet file of ``rows`` trips of one month, columns in table order (see the positional-load test)."""
    table = pa.table(
        {
            "source_month": pa.array([month] * rows, pa.date32()),
            "vendor_id": pa.array(range(rows), pa.int64()),
            "fare": pa.array([10.5] * rows, pa.float64()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def new_table(client: bq.Client, name: str) -> str:
    """An empty month-partitioned table: the emulator's loads need their destination to exist."""
    client.create_dataset("taxi", exists_ok=True)
    table = bq.Table(f"{client.project}.taxi.{name}", schema=SCHEMA)
    table.time_partitioning = bq.TimePartitioning(type_=bq.TimePartitioningType.MONTH, field="source_month")
    client.create_table(table)
    return table.table_id


def load_file(client: bq.Client, table: str, data: bytes) -> bq.LoadJob:
    config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET, write_disposition=bq.WriteDisposition.WRITE_APPEND)
    return client.load_table_from_file(io.BytesIO(data), f"taxi.{table}", job_config=config).result()


def counts(client: bq.Client, table: str) -> dict[str, int]:
    rows = client.query(f"SELECT source_month, COUNT(*) AS n FROM taxi.{table} GROUP BY 1 ORDER BY 1").result()
    return {f"{row.source_month:%Y-%m}": row.n for row in rows}


def test_gcs_resumable_upload_round_trip(gcs: FakeGcs, tmp_path: Path) -> None:
    client = gcs.client()
    bucket = client.create_bucket("roundtrip")
    data = os.urandom(12 * 1024 * 1024 + 12345)  # over the client's 8 MiB multipart limit: three chunks and a bit
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    blob = bucket.blob("big.bin", chunk_size=4 * 1024 * 1024)
    blob.upload_from_filename(source, checksum="crc32c")
    assert blob.size == len(data)
    assert bucket.blob("big.bin").download_as_bytes(checksum="crc32c") == data


def test_gcs_generation_precondition_on_simple_upload(gcs: FakeGcs) -> None:
    bucket = gcs.client().create_bucket("preconditions")
    bucket.blob("once.txt").upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        bucket.blob("once.txt").upload_from_string(b"second", if_generation_match=0)
    assert bucket.blob("once.txt").download_as_bytes() == b"first"


def test_gcs_emulator_ignores_generation_precondition_on_resumable_upload(gcs: FakeGcs) -> None:
    """Real GCS answers 412 to the second upload; fake-gcs-server overwrites: test "create once" on small objects."""
    bucket = gcs.client().create_bucket("resumable-preconditions")
    first, second = os.urandom(9 * 1024 * 1024), os.urandom(9 * 1024 * 1024)  # over 8 MiB: resumable
    bucket.blob("once.bin", chunk_size=1024 * 1024).upload_from_string(first, if_generation_match=0)
    bucket.blob("once.bin", chunk_size=1024 * 1024).upload_from_string(second, if_generation_match=0)
    assert bucket.blob("once.bin").download_as_bytes() == second


def test_gcs_emulator_reports_its_one_location_for_every_bucket(gcs: FakeGcs, gcs_europe_west1: FakeGcs) -> None:
    """Real GCS creates a bucket where create_bucket(location=...) asks; fake-gcs-server reports its -location for
    every bucket: a bucket elsewhere takes a second server (here on the same root, so the same bucket shows in both)."""
    gcs.client().create_bucket("asked-for-eu", location="EU")
    assert gcs.client().get_bucket("asked-for-eu").location == "US-CENTRAL1"
    assert gcs_europe_west1.client().get_bucket("asked-for-eu").location == "EUROPE-WEST1"


def test_bigquery_emulator_loads_into_an_eu_dataset_from_a_bucket_anywhere(
    gcs: FakeGcs, bigquery: BigQueryEmulator
) -> None:
    """Real BigQuery refuses to load an EU dataset from a US-CENTRAL1 bucket ("Cannot read and write in different
    locations"); bqemulator loads it. So the tests check taxi-luigi's own refusal, made before any upload."""
    client = bigquery.client()
    dataset = bq.Dataset(f"{client.project}.in_eu")
    dataset.location = "EU"
    client.create_dataset(dataset)
    table = bq.Table(f"{client.project}.in_eu.loads", schema=SCHEMA)
    client.create_table(table)
    bucket = gcs.client().create_bucket("us-central1-lake")
    assert bucket.location == "US-CENTRAL1"
    bucket.blob("m.parquet").upload_from_string(month_parquet(dt.date(2023, 3, 1), 4))
    config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET)
    client.load_table_from_uri(
        "gs://us-central1-lake/m.parquet", "in_eu.loads", job_config=config, location="EU"
    ).result()
    assert next(iter(client.query("SELECT count(*) FROM in_eu.loads", location="EU").result()))[0] == 4


def test_bigquery_loads_from_file_and_from_gcs(gcs: FakeGcs, bigquery: BigQueryEmulator) -> None:
    client = bigquery.client()
    table = new_table(client, "loads")
    assert load_file(client, table, month_parquet(dt.date(2023, 1, 1), 3)).output_rows == 3

    gcs.client().create_bucket("lake").blob("2023-02.parquet").upload_from_string(month_parquet(dt.date(2023, 2, 1), 2))
    config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET, write_disposition=bq.WriteDisposition.WRITE_APPEND)
    job = client.load_table_from_uri("gs://lake/2023-02.parquet", f"taxi.{table}", job_config=config).result()

    assert counts(client, table) == {"2023-01": 3, "2023-02": 2}
    assert job.output_rows == 5  # emulator: rows in the table after the load; real BigQuery: 2, the rows loaded


def test_bigquery_transaction_replaces_a_month(bigquery: BigQueryEmulator) -> None:
    client = bigquery.client()
    table = new_table(client, "transaction")
    load_file(client, table, month_parquet(dt.date(2023, 1, 1), 3))
    load_file(client, table, month_parquet(dt.date(2023, 2, 1), 2))

    client.query(
        f"""
        BEGIN TRANSACTION;
        DELETE FROM taxi.{table} WHERE source_month = DATE '2023-01-01';
        INSERT INTO taxi.{table} (source_month, vendor_id, fare) VALUES (DATE '2023-01-01', 7, 1.5);
        COMMIT TRANSACTION;
        """
    ).result()

    assert counts(client, table) == {"2023-01": 1, "2023-02": 2}


def test_bigquery_failing_statement_rolls_the_transaction_back(bigquery: BigQueryEmulator) -> None:
    client = bigquery.client()
    table = new_table(client, "failing")
    load_file(client, table, month_parquet(dt.date(2023, 1, 1), 3))

    with pytest.raises(BadRequest):
        client.query(
            f"""
            BEGIN TRANSACTION;
            DELETE FROM taxi.{table} WHERE source_month = DATE '2023-01-01';
            INSERT INTO taxi.{table} (source_month, vendor_id, fare) VALUES (DATE '2023-01-01', 'not a number', 1.5);
            COMMIT TRANSACTION;
            """
        ).result()

    assert counts(client, table) == {"2023-01": 3}
    # The rollback is the transaction's doing: without one, the DELETE before the failure stays.
    with pytest.raises(BadRequest):
        client.query(f"DELETE FROM taxi.{table} WHERE source_month = DATE '2023-01-01'; SELECT ERROR('boom');").result()
    assert counts(client, table) == {}


def test_bigquery_emulator_loads_parquet_columns_by_position(bigquery: BigQueryEmulator) -> None:
    """Real BigQuery matches parquet columns to the table's by name; the emulator INSERTs them in file order."""
    client = bigquery.client()
    table = new_table(client, "positional")
    data = pq.read_table(io.BytesIO(month_parquet(dt.date(2023, 1, 1), 2)))
    sink = io.BytesIO()
    pq.write_table(data.select(["vendor_id", "fare", "source_month"]), sink)
    with pytest.raises(BadRequest, match="vendor_id"):
        load_file(client, table, sink.getvalue())


def test_bigquery_emulator_rejects_partition_decorators(bigquery: BigQueryEmulator) -> None:
    """Real BigQuery replaces one month with WRITE_TRUNCATE into table$202301; the emulator has no decorators."""
    client = bigquery.client()
    table = new_table(client, "decorator")
    config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET, write_disposition=bq.WriteDisposition.WRITE_TRUNCATE
    )
    data = io.BytesIO(month_parquet(dt.date(2023, 1, 1), 1))
    with pytest.raises(BadRequest, match="Invalid table id"):
        client.load_table_from_file(data, f"taxi.{table}$202301", job_config=config).result()
