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
    for step in ("course: pandas", "DuckDB one-liner", "taxi-luigi Clean", "CREATE TABLE AS", "taxi-luigi Load"):
        assert measured.count(f"| {step} |") == (1 if step == "course: pandas" else 2), step
    assert "| no-op rerun |" in measured and "| --workers 2 |" in measured
    assert targets.count("| yes |") + targets.count("| **no** |") >= 14
    # The benchmark's warehouses hold exactly what the sample planted as clean.
    for name, rows in (("yellow-dtc", 4000), ("fhvhv-tlc", 5000)):
        with duckdb.connect(str(tmp_path / "work" / name / "warehouse.duckdb"), read_only=True) as con:
            loaded = con.execute("SELECT sum(rows + quarantined) FROM load_log").fetchone()[0]
        assert loaded == rows
