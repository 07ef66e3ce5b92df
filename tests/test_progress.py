"""Progress reaches the scheduler: DuckDB's own progress while a statement runs, rows at the end."""

from __future__ import annotations

import datetime as dt

import duckdb
import luigi
import luigi.scheduler
import luigi.worker

from taxi_luigi import progress
from taxi_luigi.demo import sample
from taxi_luigi.tasks import Clean, Load


def test_watch_reports_rows_done_while_a_statement_runs():
    said: list[tuple[int, str]] = []
    con = progress.track(duckdb.connect())
    with progress.watch(con, lambda pct, msg: said.append((pct, msg)), 20, 80, lambda: 1000, "counted", every=0.02):
        con.execute("SELECT count(*) FROM range(3000000000) t(i) WHERE i % 7 = 3").fetchall()
    assert said, "no progress was reported during a statement of several seconds"
    assert all(20 <= pct <= 80 and msg.endswith("of 1,000 rows counted") for pct, msg in said)


def test_clean_and_load_leave_their_rows_in_the_scheduler(mirror, pipeline):
    truth = sample.write_month(mirror.root, "green", 2022, 4, "tlc", 900)
    pipeline.configure(mirror.template())
    scheduler = luigi.scheduler.Scheduler()
    load = Load(service="green", month=dt.date(2022, 4, 1))
    with luigi.worker.Worker(scheduler=scheduler, no_install_shutdown_handler=True) as worker:
        worker.add(load)
        assert worker.run()

    quarantined = sum(truth.reasons.values())
    for task, message in (
        (Clean(service="green", month=load.month), f"{truth.clean:,} clean, {quarantined:,} quarantined"),
        (load, f"loaded {truth.clean:,} rows"),
    ):
        assert scheduler.get_task_status_message(task.task_id)["statusMessage"] == message
        assert scheduler.get_task_progress_percentage(task.task_id)["progressPercentage"] == 100
