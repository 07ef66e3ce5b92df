"""The DuckDB warehouse on real files: month replace, rollback on a count mismatch, another writer."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from taxi_luigi import clean, services
from taxi_luigi.demo import sample
from taxi_luigi.lake.local import LocalLake
from taxi_luigi.warehouse import WarehouseError
from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

MONTH = dt.date(2022, 4, 1)
LABEL = "green 2022-04"


def published(tmp_path, rows: int) -> tuple[LocalLake, dict]:
    """A green month of ``rows`` cleaned and published to a local lake of its own."""
    truth = sample.write_month(tmp_path / f"m{rows}", "green", 2022, 4, "tlc", rows)
    out = clean.Outputs(tmp_path / f"d{rows}.parquet", tmp_path / f"q{rows}.parquet")
    report = clean.clean_month(truth.path, ".parquet", services.GREEN, MONTH, out, label=LABEL)
    (report_path := tmp_path / f"r{rows}.json").write_text(json.dumps(report))
    the_lake = LocalLake(str(tmp_path / f"lake{rows}"))
    files = {"data": out.data, "quarantine": out.quarantine, "report": report_path}
    return the_lake, the_lake.publish_month("green", MONTH, files, {"url": str(truth.path)})


def month_count(wh: DuckDBWarehouse, table: str) -> int:
    import duckdb

    with duckdb.connect(str(wh.path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE source_month = ?", [MONTH]).fetchone()[0]


def test_replacing_a_month_leaves_exactly_the_new_rows(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    for rows in (800, 500):
        the_lake, manifest = published(tmp_path, rows)
        assert wh.replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL) == manifest["rows"]
        assert month_count(wh, "green_tripdata") == manifest["rows"]
        assert month_count(wh, "green_tripdata_quarantine") == manifest["quarantined"]
    assert wh.loaded_checksums("green") == {MONTH: manifest["checksum"]}
    assert [r["rows"] for r in wh.load_log("green")] == [manifest["rows"]]


def test_a_count_mismatch_rolls_everything_back(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    the_lake, manifest = published(tmp_path, 800)
    wh.replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL)
    new_lake, new_manifest = published(tmp_path, 500)
    with pytest.raises(WarehouseError, match=r"green 2022-04: loaded \d+ rows .* the manifest says 1 .*rolled back"):
        wh.replace_month(services.GREEN, MONTH, new_lake, {**new_manifest, "rows": 1}, LABEL)
    assert month_count(wh, "green_tripdata") == manifest["rows"]
    assert wh.loaded_checksums("green") == {MONTH: manifest["checksum"]}


def test_another_writer_is_waited_for_then_named(tmp_path):
    wh_path = tmp_path / "wh.duckdb"
    the_lake, manifest = published(tmp_path, 300)
    DuckDBWarehouse(wh_path).replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(wh_path)!r}); print(1, flush=True); "
            "time.sleep(float(input()))",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"  # the other process holds the write lock now
        with pytest.raises(WarehouseError, match=r"is held by another process .*waited 0 s"):
            DuckDBWarehouse(wh_path, lock_wait=0.3).loaded_checksums("green")
        holder.stdin.write("1\n")
        holder.stdin.flush()
        started = time.monotonic()
        assert DuckDBWarehouse(wh_path, lock_wait=30).loaded_checksums("green") == {MONTH: manifest["checksum"]}
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_forget_month_deletes_its_load_log_rows_and_the_rows_stay_until_the_next_load(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    assert wh.forget_month("green", MONTH) == 0
    assert not wh.path.exists()  # nothing loaded yet: no file is made just to forget
    the_lake, manifest = published(tmp_path, 400)
    for _ in range(2):
        wh.replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL)

    assert wh.forget_month("green' OR 'x' = 'x", MONTH) == 0  # bound as a parameter, never spliced into SQL
    assert wh.forget_month("green", MONTH) == 2  # every load of the month, not only the latest
    assert wh.loaded_checksums("green") == {}
    assert month_count(wh, "green_tripdata") == manifest["rows"]  # queries still see the month
    assert wh.forget_month("green", MONTH) == 0

    wh.replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL)
    assert wh.loaded_checksums("green") == {MONTH: manifest["checksum"]}
    assert month_count(wh, "green_tripdata") == manifest["rows"]


def test_load_history_lists_every_load_oldest_first_and_the_latest_is_load_log(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    assert wh.load_history() == []  # no file yet: nothing was loaded
    loads = [published(tmp_path, rows) for rows in (800, 500)]  # the source re-issued the month
    for the_lake, manifest in loads:
        wh.replace_month(services.GREEN, MONTH, the_lake, manifest, LABEL)

    history = wh.load_history("green")

    assert [(r["service"], r["month"], r["checksum"], r["rows"], r["quarantined"]) for r in history] == [
        ("green", MONTH, m["checksum"], m["rows"], m["quarantined"]) for _, m in loads
    ]
    assert {r["lake_object"] for r in history} == {"green/2022/green_tripdata_2022-04.parquet"}
    assert history[0]["loaded_at"] < history[1]["loaded_at"]
    assert wh.load_history() == history and wh.load_history("yellow") == []
    latest = {k: v for k, v in history[-1].items() if k != "lake_object"}
    assert wh.load_log("green") == [latest]
