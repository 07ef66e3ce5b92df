"""The commands a user types, run as subprocesses from the repo root: the card's command and the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from taxi_luigi.demo import sample

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def luigi_cli(*args: str, override: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(override)}
    return subprocess.run(
        [str(BIN / "luigi"), "--module", "taxi_luigi", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def override_file(tmp_path: Path, template: str) -> Path:
    cfg = tmp_path / "override.cfg"
    cfg.write_text(
        f"[source]\nurl_template = {template}\nretries = 1\nbackoff_seconds = 0.05\n"
        f"[paths]\ndata_dir = {tmp_path / 'data'}\n[lake]\nroot = {tmp_path / 'lake'}\n"
        f"[warehouse]\nurl = duckdb:///{tmp_path / 'wh.duckdb'}\n"
    )
    return cfg


def months_loaded(db: Path, table: str) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
    return {f"{m:%Y-%m}": n for m, n in rows}


def test_the_cards_command_loads_the_year_and_a_rerun_does_nothing(mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["yellow"], 2021, range(1, 13), "tlc", 200)
    cfg = override_file(tmp_path, mirror.template())

    first = luigi_cli("YellowYear", "--year", "2021", override=cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    assert months_loaded(tmp_path / "wh.duckdb", "yellow_tripdata") == {f"2021-{t.month:02d}": t.clean for t in truths}
    assert mirror.downloads() == 12

    again = luigi_cli("YellowYear", "--year", "2021", override=cfg)
    assert again.returncode == 0
    assert mirror.downloads() == 12
    assert "complete ones were encountered" in again.stderr


def test_a_failed_month_makes_the_run_exit_non_zero_and_names_it(mirror, tmp_path):
    (june,) = sample.write_mirror(mirror.root, ["green"], 2021, [6], "dtc", 200)
    cfg = override_file(tmp_path, mirror.template(".csv.gz"))
    run = luigi_cli("TaxiYear", "--service", "green", "--year", "2021", "--months", "6,7,8", override=cfg)
    assert run.returncode == 30  # [retcode] task_failed in luigi.cfg
    assert "green 2021-08: the source has no file at" in run.stderr
    assert "switch [source] preset / url_template" in run.stderr
    assert months_loaded(tmp_path / "wh.duckdb", "green_tripdata") == {"2021-06": june.clean}


def test_the_demo_runs_offline_and_prints_its_summary(tmp_path):
    demo = subprocess.run(
        [str(BIN / "taxi-luigi"), "demo", "--rows", "400", "--data-dir", str(tmp_path / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "second run" in demo.stdout and ", 0 downloads" in demo.stdout
    lines = [line.split() for line in demo.stdout.splitlines() if line.startswith(("yellow ", "fhvhv "))]
    assert len(lines) == 6
    with duckdb.connect(str(tmp_path / "demo" / "warehouse.duckdb"), read_only=True) as con:
        total = con.execute("SELECT sum(rows) FROM load_log").fetchone()[0]
    assert f"{total:,}" in demo.stdout


def test_the_documented_backfill_with_rangemonthly_loads_exactly_the_range(mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["green"], 2022, [10, 11, 12], "tlc", 200)
    cfg = override_file(tmp_path, mirror.template())
    backfill = ["RangeMonthly", "--of", "Load", "--of-params", '{"service": "green"}', "--param-name", "month"]
    backfill += ["--start", "2022-10", "--stop", "2022-12", "--months-back", "1000"]

    run = luigi_cli(*backfill, override=cfg)

    assert run.returncode == 0, run.stderr[-3000:]
    wanted = {f"2022-{t.month:02d}": t.clean for t in truths if t.month < 12}  # --stop is exclusive
    assert months_loaded(tmp_path / "wh.duckdb", "green_tripdata") == wanted
    assert luigi_cli(*backfill, override=cfg).returncode == 0
    assert mirror.downloads() == 2


def test_history_runs_through_the_newest_published_month_or_through(mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["fhv"], 2023, [1, 2, 3], "tlc", 200)
    cfg = override_file(tmp_path, mirror.template())

    run = luigi_cli("TaxiHistory", "--service", "fhv", "--start", "2023-02", "--through", "2023-02", override=cfg)

    assert run.returncode == 0, run.stderr[-3000:]
    assert months_loaded(tmp_path / "wh.duckdb", "fhv_tripdata") == {"2023-02": truths[1].clean}
    assert sum(mirror.probes.values()) == 1 and mirror.downloads() == 1

    run = luigi_cli("TaxiHistory", "--service", "fhv", "--start", "2023-01", override=cfg)

    assert run.returncode == 0, run.stderr[-3000:]
    assert months_loaded(tmp_path / "wh.duckdb", "fhv_tripdata") == {f"2023-{t.month:02d}": t.clean for t in truths}
    assert "fhv 2023-04.." in run.stderr and "not yet available" in run.stderr
    assert mirror.downloads() == 3


def test_a_whole_history_loads_with_one_command_and_a_hole_is_named(mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["fhvhv"], 2019, [2, 3, 4], "tlc", 200)  # fhvhv's first file is 2019-02
    cfg = override_file(tmp_path, mirror.template())

    run = luigi_cli("TaxiHistory", "--service", "fhvhv", override=cfg)

    assert run.returncode == 0, run.stderr[-3000:]
    assert months_loaded(tmp_path / "wh.duckdb", "fhvhv_tripdata") == {f"2019-{t.month:02d}": t.clean for t in truths}
    assert "fhvhv 2019-05.." in run.stderr and "not yet available" in run.stderr

    (mirror.root / "fhvhv" / "fhvhv_tripdata_2019-03.parquet").unlink()
    (tmp_path / "wh.duckdb").unlink()
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            path.unlink()
    shutil.rmtree(tmp_path / "lake")

    run = luigi_cli("TaxiHistory", "--service", "fhvhv", override=cfg)

    assert run.returncode == 30  # [retcode] task_failed
    assert "fhvhv 2019-03: the source has no file at" in run.stderr
    assert set(months_loaded(tmp_path / "wh.duckdb", "fhvhv_tripdata")) == {"2019-02", "2019-04"}
