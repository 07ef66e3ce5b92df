"""A real luigid (scripts/luigid, its own venv) with real worker processes against a loopback mirror."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from luigid_server import Luigid, worker_config

from taxi_luigi.demo import sample

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[Luigid]:
    with Luigid(tmp_path / "scheduler").running() as server:
        yield server


DONE = re.compile(r"Worker\(.*?\) done\s+(\w+\(.*\))")


def test_luigid_starts_stops_and_keeps_its_state_and_history_under_the_data_dir(luigid):
    assert luigid.script("status").stdout.startswith("luigid is running")
    assert luigid.get("/history")[0] == 200
    again = luigid.script("start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert luigid.script("stop").returncode == 0
    assert luigid.script("status").returncode == 3
    scheduler = luigid.data_dir / "luigid"
    assert (scheduler / "state.pickle").is_file()  # saved on SIGTERM
    assert (scheduler / "history.db").is_file()
    assert luigid.script("start").returncode == 0


def test_two_workers_split_the_months_and_every_step_runs_once(luigid, mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2, 3, 4], "tlc", 400)
    mirror.delay = 1.0  # downloads long enough that both workers are in before the first one ends
    cfg = worker_config(tmp_path, luigid, mirror.template())
    command = [str(BIN / "luigi"), "--module", "taxi_luigi", "TaxiYear", "--service", "yellow", "--year", "2023"]
    command += ["--months", "1-4", "--worker-keep-alive"]
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    workers = [
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [w.communicate(timeout=300)[0] for w in workers]

    # 25 is [retcode] not_run: Luigi's answer when another worker ran some of a worker's tasks. The
    # source of truth is a rerun, which finds everything complete and exits 0.
    assert [w.returncode in (0, 25) for w in workers] == [True, True], logs
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "ran successfully" not in rerun.stderr and "complete ones were encountered" in rerun.stderr
    assert Counter(mirror.requests) == {f"/yellow/yellow_tripdata_2023-{m:02d}.parquet": 1 for m in range(1, 5)}
    done = [Counter(DONE.findall(log)) for log in logs]
    assert all(done), "each worker ran part of the work"
    ran = done[0] + done[1]
    steps = ("Download", "Clean", "Publish", "Load")
    expected = {f"{step}(service=yellow, month=2023-{m:02d})": 1 for step in steps for m in range(1, 5)}
    expected["QualitySite()"] = 1  # once, after the loads, by the worker that ran the year
    assert {task: n for task, n in ran.items() if not task.startswith("TaxiYear")} == expected
    with duckdb.connect(str(tmp_path / "data" / "wh.duckdb"), read_only=True) as con:
        log_rows = con.execute("SELECT source_month, rows FROM load_log ORDER BY 1").fetchall()
        loaded = con.execute("SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1 ORDER BY 1").fetchall()
    assert [(f"{m:%Y-%m}", n) for m, n in log_rows] == [(f"2023-{t.month:02d}", t.clean) for t in truths]
    assert [n for _, n in loaded] == [t.clean for t in truths]

    # The visualizer: readable names, the final status message and 100 % for every step.
    shown = luigid.tasks("DONE")
    loads = {t["params"]["month"]: t for t in shown.values() if t["name"] == "Load"}
    assert sorted(loads) == [f"2023-{m:02d}" for m in range(1, 5)]
    for t in truths:
        task = loads[f"2023-{t.month:02d}"]
        assert task["params"] == {"service": "yellow", "month": f"2023-{t.month:02d}"}
        assert task["display_name"] == f"Load(month=2023-{t.month:02d}, service=yellow)"
        assert task["status_message"] == f"loaded {t.clean:,} rows"
        assert task["progress_percentage"] == 100

    # The history pages answer, with these runs in them.
    status, page = luigid.get("/history")
    assert status == 200 and "Load" in page and "TaxiYear" in page
    with sqlite3.connect(luigid.data_dir / "luigid" / "history.db") as db:
        history = db.execute(
            "SELECT t.name, count(*) FROM tasks t JOIN task_events e ON e.task_id = t.id "
            "WHERE e.event_name = 'DONE' GROUP BY t.name"
        ).fetchall()
    assert dict(history) == {"Download": 4, "Clean": 4, "Publish": 4, "Load": 4, "QualitySite": 1, "TaxiYear": 1}


def test_the_task_history_can_live_in_postgresql_with_the_password_only_in_the_environment(
    mirror, tmp_path, pg_database
):
    import psycopg2
    from postgres_server import PASSWORD

    sample.write_mirror(mirror.root, ["green"], 2023, [1], "tlc", 200)
    server = Luigid(tmp_path / "scheduler", LUIGID_HISTORY_URL=pg_database)
    with server.running():
        cfg = worker_config(tmp_path, server, mirror.template())
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        command = [str(BIN / "luigi"), "--module", "taxi_luigi", "TaxiYear", "--service", "green", "--year", "2023"]
        run = subprocess.run(
            [*command, "--months", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        status, page = server.get("/history")
    assert status == 200 and "Load" in page
    with psycopg2.connect(pg_database.replace("+psycopg2", "")) as con, con.cursor() as cur:
        cur.execute("SELECT name, count(*) FROM tasks GROUP BY name ORDER BY name")
        assert dict(cur.fetchall()) == {
            "Clean": 1,
            "Download": 1,
            "Load": 1,
            "Publish": 1,
            "QualitySite": 1,  # the wrapper's quality site, after the loads: a step the visualizer shows
            "TaxiYear": 1,
        }
    written = "".join(p.read_text(errors="replace") for p in (server.data_dir / "luigid").glob("luigid.*"))
    assert PASSWORD not in written and "LUIGID_HISTORY_URL" in written
