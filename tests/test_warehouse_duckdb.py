"""The DuckDB warehouse on real files: month replace, rollback on a count mismatch, another writer."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from taxi_luigi import clean, lake, sample, services
from taxi_luigi.warehouse import WarehouseError
from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

MONTH = dt.date(2022, 4, 1)


def cleaned(tmp_path, rows: int) -> tuple[clean.Outputs, dict]:
    truth = sample.write_month(tmp_path / f"m{rows}", "green", 2022, 4, "tlc", rows)
    out = clean.Outputs(tmp_path / f"d{rows}.parquet", tmp_path / f"q{rows}.parquet")
    report = clean.clean_month(truth.path, ".parquet", services.GREEN, MONTH, out, label="green 2022-04")
    manifest = {
        "rows": report["rows_clean"],
        "quarantined": report["rows_quarantined"],
        "checksum": lake.sha256_file(out.data),
        "objects": {"data": {"key": f"green/2022/d{rows}.parquet"}},
    }
    return out, manifest


def month_count(wh: DuckDBWarehouse, table: str) -> int:
    import duckdb

    with duckdb.connect(str(wh.path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE source_month = ?", [MONTH]).fetchone()[0]


def test_replacing_a_month_leaves_exactly_the_new_rows(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    for rows in (800, 500):
        out, manifest = cleaned(tmp_path, rows)
        assert wh.replace_month(services.GREEN, MONTH, out.data, out.quarantine, manifest) == manifest["rows"]
        assert month_count(wh, "green_tripdata") == manifest["rows"]
        assert month_count(wh, "green_tripdata_quarantine") == manifest["quarantined"]
    assert wh.loaded_checksums("green") == {MONTH: manifest["checksum"]}
    assert [r["rows"] for r in wh.load_log("green")] == [manifest["rows"]]


def test_a_count_mismatch_rolls_everything_back(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    out, manifest = cleaned(tmp_path, 800)
    wh.replace_month(services.GREEN, MONTH, out.data, out.quarantine, manifest)
    new_out, new_manifest = cleaned(tmp_path, 500)
    with pytest.raises(WarehouseError, match=r"green 2022-04: loaded \d+ rows .* the manifest says 1 .*rolled back"):
        wh.replace_month(services.GREEN, MONTH, new_out.data, new_out.quarantine, {**new_manifest, "rows": 1})
    assert month_count(wh, "green_tripdata") == manifest["rows"]
    assert wh.loaded_checksums("green") == {MONTH: manifest["checksum"]}


def test_another_writer_is_waited_for_then_named(tmp_path):
    wh_path = tmp_path / "wh.duckdb"
    out, manifest = cleaned(tmp_path, 300)
    DuckDBWarehouse(wh_path).replace_month(services.GREEN, MONTH, out.data, out.quarantine, manifest)
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
