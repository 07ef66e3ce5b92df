"""A tiny run of the benchmark, so it keeps working; its timings mean nothing at this size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_benchmark_runs_every_step_and_reports_every_target(tmp_path):
    results = tmp_path / "RESULTS.md"
    sizes = [
        "--yellow-rows",
        "4000",
        "--fhvhv-rows",
        "5000",
        "--year-rows",
        "100",
        "--workers-rows",
        "1000",
        "--repeats",
        "2",
    ]
    run = subprocess.run(
        [sys.executable, "benchmarks/run.py", *sizes, "--work", str(tmp_path / "work"), "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    text = results.read_text()
    measured, targets = text.split("## Targets (issue 4)")[0], text.split("## Targets (issue 4)")[1]
    expected = {
        "course: pandas": 1,
        "DuckDB one-liner": 2,
        "taxi-luigi Clean": 2,
        "CREATE TABLE AS": 2,
        "taxi-luigi Load": 3,  # DuckDB twice, PostgreSQL once
        "psql \\copy of a CSV": 1,
        "CSV COPY (the loader before)": 1,
        "course: pandas to_sql": 1,
        "no-op rerun": 1,
        "--workers 2": 1,
    }
    assert {how: measured.count(f"| {how} |") for how in expected} == expected
    assert targets.count("| yes |") + targets.count("| **no** |") == 19
    # The three PostgreSQL loads of the month hold the same rows: the clean ones.
    pg = [line.split(" | ") for line in measured.splitlines() if line.startswith("| postgres |")]
    assert len({row[3] for row in pg if row[2] != "course: pandas to_sql"}) == 1
    # The benchmark's warehouses hold exactly what the sample planted as clean.
    for name, rows in (("yellow-dtc", 4000), ("fhvhv-tlc", 5000)):
        with duckdb.connect(str(tmp_path / "work" / name / "warehouse.duckdb"), read_only=True) as con:
            loaded = con.execute("SELECT sum(rows + quarantined) FROM load_log").fetchone()[0]
        assert loaded == rows
