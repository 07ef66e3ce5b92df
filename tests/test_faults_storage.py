"""The warehouse or the lake failing under the real pipeline: a clear error, nothing partial, exact on the rerun."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import duckdb
import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi.demo import sample
from taxi_luigi.lake import lake_for
from taxi_luigi.tasks import Load, Publish, TaxiYear
from taxi_luigi.warehouse import warehouse_for

pytestmark = pytest.mark.slow


def test_the_postgresql_warehouse_stopped_fails_the_loads_clearly_and_the_rerun_is_exact(
    mirror, pipeline, postgres, pg_database, caplog
):
    if not postgres.can_restart:
        pytest.skip("the server named by TAXI_LUIGI_TEST_POSTGRES_URL is not ours to stop")
    truths = sample.write_mirror(mirror.root, ["green"], 2023, [1, 2], "tlc", 300)
    pipeline.configure(mirror.template(), warehouse={"url": pg_database})
    postgres.stop()
    try:
        result = pipeline.run(TaxiYear(service="green", year=2023, months="1,2"))
    finally:
        postgres.start()

    assert result.status == LuigiStatusCode.FAILED
    assert "cannot connect to the PostgreSQL warehouse" in caplog.text and "PGPASSWORD" in caplog.text
    assert all(Publish(service="green", month=dt.date(2023, m, 1)).complete() for m in (1, 2))
    assert not any(Load(service="green", month=dt.date(2023, m, 1)).complete() for m in (1, 2))

    rerun = pipeline.run(TaxiYear(service="green", year=2023, months="1,2"))

    assert rerun.status == LuigiStatusCode.SUCCESS
    assert {f"{r['month']:%Y-%m}": r["rows"] for r in warehouse_for(pg_database).load_log()} == {
        f"2023-{t.month:02d}": t.clean for t in truths
    }
    assert sum(mirror.requests.values()) == 2  # the rerun only loaded


def test_a_duckdb_file_held_by_another_writer_waits_then_fails_clearly_and_the_rerun_is_exact(mirror, pipeline):
    truths = sample.write_mirror(mirror.root, ["fhv"], 2023, [1], "tlc", 300)
    pipeline.configure(mirror.template(), warehouse={"lock_wait_seconds": 1})
    pipeline.db.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); con.execute('CREATE TABLE other (x INT)'); "
            "print('holding', flush=True); time.sleep(60)",
            str(pipeline.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = pipeline.run(Load(service="fhv", month=dt.date(2023, 1, 1)))
    finally:
        holder.kill()
        holder.wait()

    assert result.status == LuigiStatusCode.FAILED
    assert Publish(service="fhv", month=dt.date(2023, 1, 1)).complete()

    rerun = pipeline.run(Load(service="fhv", month=dt.date(2023, 1, 1)))

    assert rerun.status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("fhv_tripdata") == {"2023-01": truths[0].clean}
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM load_log").fetchone()[0] == 1


def test_a_lake_object_changed_after_publish_is_refused_by_load(mirror, pipeline, caplog):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [3], "tlc", 300)
    pipeline.configure(mirror.template())
    month = dt.date(2023, 3, 1)
    assert pipeline.run(Publish(service="yellow", month=month)).status == LuigiStatusCode.SUCCESS
    the_lake = lake_for(str(pipeline.lake))
    data = pipeline.lake / the_lake.key("yellow", month, "data")
    data.write_bytes(data.read_bytes()[:-100] + b"x" * 100)  # same size, other bytes

    result = pipeline.run(Load(service="yellow", month=month))

    assert result.status == LuigiStatusCode.FAILED
    assert "yellow 2023-03:" in caplog.text and "changed after it was published" in caplog.text
    assert "Invalidate the month from 'publish' on" in caplog.text
    assert not pipeline.db.exists()  # refused before the warehouse was touched
