"""The lake on GCS, against fake-gcs-server driven by google-cloud-storage: exact, idempotent, never mixed."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

import duckdb
import luigi
import luigi.scheduler
import luigi.worker
import pytest
import requests
import sqlalchemy
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import lake as lake_module
from taxi_luigi.config import configured_lake
from taxi_luigi.demo import sample
from taxi_luigi.lake import LakeError
from taxi_luigi.lake.gcs import GCSLake
from taxi_luigi.tasks import Load, Publish, TaxiYear


@pytest.fixture
def bucket(gcs) -> str:
    name = f"lake-{uuid.uuid4().hex[:10]}"
    gcs.client().create_bucket(name)
    return name


EMULATOR_LOCATION = "US-CENTRAL1"  # fake-gcs-server puts every bucket there, whatever location is asked for


def on_gcs(pipeline, gcs, bucket: str, url_template: str, location: str = EMULATOR_LOCATION, **sections) -> None:
    pipeline.configure(
        url_template,
        lake={"root": f"gs://{bucket}/tlc"},
        gcs={"api_endpoint": gcs.url, "chunk_mb": 1},
        gcp={"location": location},
        **sections,
    )


def objects(gcs, bucket: str) -> dict[str, dict]:
    return {b.name: {"generation": b.generation, "metadata": b.metadata} for b in gcs.client().list_blobs(bucket)}


def warehouse_counts(url: str, table: str) -> dict[str, int]:
    """Rows per source_month in a DuckDB or PostgreSQL warehouse's table, read straight from it."""
    sql = f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1"
    if url.startswith("duckdb:///"):
        with duckdb.connect(url.removeprefix("duckdb:///"), read_only=True) as con:
            rows = con.execute(sql).fetchall()
    else:
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(sql)).fetchall()
        engine.dispose()
    return {f"{month:%Y-%m}": n for month, n in rows}


def test_a_year_published_on_gcs_loads_exact_counts_and_a_rerun_touches_nothing(
    mirror, pipeline, gcs, bucket, monkeypatch
):
    truths = sample.write_mirror(mirror.root, ["yellow"], 2022, [1, 2, 3], "tlc", 1200)
    on_gcs(pipeline, gcs, bucket, mirror.template())

    assert pipeline.run(TaxiYear(service="yellow", year=2022, months="1-3")).status == LuigiStatusCode.SUCCESS

    assert pipeline.counts("yellow_tripdata") == {f"2022-{t.month:02d}": t.clean for t in truths}
    stored = objects(gcs, bucket)
    assert sorted(stored) == sorted(
        f"tlc/yellow/2022/yellow_tripdata_2022-{m:02d}{suffix}"
        for m in (1, 2, 3)
        for suffix in (".parquet", ".quarantine.parquet", ".quality.json", ".manifest.json")
    )
    blob = gcs.client().bucket(bucket).blob("tlc/yellow/2022/yellow_tripdata_2022-02.manifest.json")
    manifest = json.loads(blob.download_as_text())
    assert manifest["rows"] == truths[1].clean
    assert (
        manifest["objects"]["data"]["generation"]
        == stored["tlc/yellow/2022/yellow_tripdata_2022-02.parquet"]["generation"]
    )
    assert stored["tlc/yellow/2022/yellow_tripdata_2022-02.manifest.json"]["metadata"] == {
        "checksum": manifest["checksum"]
    }
    assert not any((pipeline.data / "lake-cache").rglob("*.parquet"))  # Load's downloads are removed

    calls: list[str] = []  # a spy on the transport: the real requests go out, and are counted
    real_request = requests.Session.request

    def counted(session, method, url, *args, **kwargs):
        if url.startswith(gcs.url):
            calls.append(f"{method} {url.removeprefix(gcs.url)}")
        return real_request(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counted)
    result = pipeline.run(TaxiYear(service="yellow", year=2022, months="1-3"))

    assert result.status == LuigiStatusCode.SUCCESS and "ran successfully" not in result.summary_text
    assert len(calls) == 1 and calls[0].startswith(f"GET /storage/v1/b/{bucket}/o?"), calls  # one listing
    assert objects(gcs, bucket) == stored
    assert mirror.downloads() == 3


class _Racing(GCSLake):
    """A publisher that lets ``rival`` run between learning the month's versions and uploading ``at``."""

    def __init__(self, rival, at: str) -> None:
        configured = configured_lake()
        super().__init__(configured.root, configured.settings)
        self.rival, self.at = rival, at

    def put(self, key, path, expect=None, metadata=None):
        if key.endswith(self.at) and self.rival:
            rival, self.rival = self.rival, None
            rival()
        return super().put(key, path, expect, metadata)


def _month_files(tmp_path: Path, name: str, rows: int) -> dict[str, Path]:
    """A published month's three files, small enough for fake-gcs-server to enforce preconditions."""
    folder = tmp_path / name
    folder.mkdir()
    files = {kind: folder / f"f{suffix}" for kind, suffix in lake_module.KINDS.items() if kind != "manifest"}
    files["data"].write_bytes(b"data of " + name.encode())
    files["quarantine"].write_bytes(b"quarantine of " + name.encode())
    files["report"].write_text(json.dumps({"rows_clean": rows, "rows_quarantined": 1}))
    return files


@pytest.mark.parametrize("at", [".parquet", ".quarantine.parquet", ".manifest.json"])
def test_of_two_publishers_of_one_month_one_wins_and_the_other_fails_cleanly(pipeline, gcs, bucket, tmp_path, at):
    on_gcs(pipeline, gcs, bucket, "")
    month = dt.date(2021, 5, 1)
    winner = configured_lake()
    won = {}

    def rival() -> None:
        won.update(winner.publish_month("green", month, _month_files(tmp_path, "winner", 20), {"url": "b"}))

    loser = _Racing(rival, at)
    with pytest.raises(LakeError, match="changed while this month was being published"):
        loser.publish_month("green", month, _month_files(tmp_path, "loser", 10), {"url": "a"})

    manifest = winner.manifest("green", month)
    assert manifest == won and manifest["rows"] == 20
    with winner.verified_copies(manifest, "green 2021-05") as (data, quarantine):
        assert (data.read_bytes(), quarantine.read_bytes()) == (b"data of winner", b"quarantine of winner")


def test_an_upload_that_fails_half_way_leaves_no_manifest_and_a_rerun_publishes(
    mirror, pipeline, gcs, bucket, tmp_path
):
    """The failure is real: another writer takes the quarantine object between the data and the quarantine."""
    sample.write_month(mirror.root, "fhv", 2020, 7, "tlc", 800)
    on_gcs(pipeline, gcs, bucket, mirror.template())
    month = dt.date(2020, 7, 1)
    pipeline.run(Publish(service="fhv", month=month).requires())
    clean = Publish(service="fhv", month=month).requires()
    outputs = clean.outputs()
    files = {"data": outputs.data, "quarantine": outputs.quarantine, "report": Path(clean.output().path)}
    other = configured_lake()

    def intruder() -> None:
        other.put(other.key("fhv", month, "quarantine"), files["quarantine"], 0)

    with pytest.raises(LakeError):
        _Racing(intruder, ".quarantine.parquet").publish_month("fhv", month, files, {})
    assert not Publish(service="fhv", month=month).complete()
    assert not any(name.endswith(".manifest.json") for name in objects(gcs, bucket))

    assert pipeline.run(Publish(service="fhv", month=month)).status == LuigiStatusCode.SUCCESS
    assert Publish(service="fhv", month=month).complete()


def test_load_reads_the_generation_its_manifest_names_not_a_later_overwrite(mirror, pipeline, gcs, bucket):
    sample.write_month(mirror.root, "green", 2022, 6, "tlc", 500)
    on_gcs(pipeline, gcs, bucket, mirror.template())
    month = dt.date(2022, 6, 1)
    assert pipeline.run(Publish(service="green", month=month)).status == LuigiStatusCode.SUCCESS
    gcs.client().bucket(bucket).blob("tlc/green/2022/green_tripdata_2022-06.parquet").upload_from_string(b"PAR1 not it")

    load = Load(service="green", month=month)
    scheduler = luigi.scheduler.Scheduler()
    with luigi.worker.Worker(scheduler=scheduler, no_install_shutdown_handler=True) as worker:
        worker.add(load)
        assert not worker.run()

    assert re.search(
        r"green_tripdata_2022-06\.parquet generation \d+ is gone", scheduler.fetch_error(load.task_id)["error"]
    )
    assert not load.complete()
    assert not (pipeline.db.exists() and "green_tripdata" in pipeline.tables())


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_a_gcs_lake_for_a_warehouse_other_than_bigquery_publishes_and_loads_wherever_its_bucket_is(
    mirror, pipeline, gcs, bucket, request, backend
):
    """Only BigQuery loads from the bucket; DuckDB and PostgreSQL load local copies of its objects. So [gcp] location
    EU with the emulator's US-CENTRAL1 bucket, which an EU dataset would refuse, publishes and loads exactly."""
    truth = sample.write_month(mirror.root, "green", 2022, 4, "tlc", 300)
    url = request.getfixturevalue("pg_database") if backend == "postgresql" else f"duckdb:///{pipeline.db}"
    on_gcs(pipeline, gcs, bucket, mirror.template(), location="EU", warehouse={"url": url})
    assert gcs.client().get_bucket(bucket).location == EMULATOR_LOCATION

    assert pipeline.run(TaxiYear(service="green", year=2022, months="4")).status == LuigiStatusCode.SUCCESS

    assert len(objects(gcs, bucket)) == 4  # data, quarantine, report, manifest
    assert warehouse_counts(url, "green_tripdata") == {"2022-04": truth.clean}


def test_published_months_is_one_listing_and_delete_is_idempotent(pipeline, gcs, bucket, tmp_path, monkeypatch):
    on_gcs(pipeline, gcs, bucket, "")
    the_lake = configured_lake()
    may, june = dt.date(2021, 5, 1), dt.date(2021, 6, 1)
    published = {
        month: the_lake.publish_month("fhv", month, _month_files(tmp_path, f"fhv{month:%m}", 10), {})["checksum"]
        for month in (may, june)
    }
    the_lake.publish_month("fhvhv", may, _month_files(tmp_path, "fhvhv", 10), {})  # fhv_ names are not fhvhv_ ones
    calls: list[str] = []  # a spy on the transport: the real requests go out, and are counted
    real_request = requests.Session.request

    def counted(session, method, url, *args, **kwargs):
        if url.startswith(gcs.url):
            calls.append(method)
        return real_request(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counted)
    assert the_lake.published_months("fhv") == published
    assert calls == ["GET"]  # one listing

    manifest = the_lake.key("fhv", may, "manifest")
    assert the_lake.delete(manifest) is True
    assert the_lake.delete(manifest) is False  # already gone: fine
    assert the_lake.published_months("fhv") == {june: published[june]}
    for kind in ("data", "quarantine", "report"):
        assert the_lake.delete(the_lake.key("fhv", may, kind)) is True
    assert not any("fhv_tripdata_2021-05" in name for name in objects(gcs, bucket))
    assert the_lake.published_months("fhvhv") == {may: the_lake.manifest("fhvhv", may)["checksum"]}

    # A manifest put by other means, without the checksum in its metadata, is read instead.
    gcs.client().bucket(bucket).blob(f"tlc/{manifest}").upload_from_string(json.dumps({"checksum": "c0ffee"}))
    assert the_lake.published_months("fhv") == {may: "c0ffee", june: published[june]}
