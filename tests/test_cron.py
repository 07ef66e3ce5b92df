"""scripts/cron-run as cron runs it: a real process, a real HTTP mirror, its lock and its exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from luigid_server import Luigid

from taxi_luigi.demo import sample

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, template: str, name: str = "override.cfg", core: str = "", **cron: str) -> Path:
    data = tmp_path / "data"
    keys = {"services": "yellow,green", "start": "2023-01", **cron}
    cfg = tmp_path / name
    cfg.write_text(
        f"[core]\nlock_pid_dir = {tmp_path / 'luigi-pids'}\n{core}"
        f"[source]\nurl_template = {template}\nretries = 1\nbackoff_seconds = 0.05\ntimeout_seconds = 10\n"
        f"[paths]\ndata_dir = {data}\n[lake]\nroot = {data / 'lake'}\n"
        f"[warehouse]\nurl = duckdb:///{data / 'wh.duckdb'}\n"
        "[cron]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    )
    return cfg


def cron_run(cfg: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    return subprocess.Popen(
        [str(REPO / "scripts" / "cron-run"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def loaded(tmp_path: Path) -> dict[tuple[str, str], int]:
    """(service, month) -> rows, from the warehouse's load log."""
    with duckdb.connect(str(tmp_path / "data" / "wh.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT service, source_month, rows FROM load_log").fetchall()
    return {(service, f"{month:%Y-%m}"): n for service, month, n in rows}


def test_loads_through_the_newest_published_month_then_a_rerun_is_silent(mirror, tmp_path):
    truths = sample.write_mirror(mirror.root, ["yellow", "green"], 2023, [1, 2, 3], "tlc", 300)
    (mirror.root / "green" / "green_tripdata_2023-03.parquet").unlink()  # the TLC is late with green
    cfg = write_config(tmp_path, mirror.template())

    rc, out, err = finish(cron_run(cfg))

    assert rc == 0, err
    expected = {(t.service, f"2023-{t.month:02d}"): t.clean for t in truths if (t.service, t.month) != ("green", 3)}
    assert loaded(tmp_path) == expected
    assert "yellow 2023-04.." in out and "green 2023-03.." in out and "not yet available" in out
    assert sorted(mirror.requests.values()) == [1] * 5  # each published month downloaded once
    assert "cron-run: done" in out

    rc, out, err = finish(cron_run(cfg, "--quiet"))

    assert (rc, out, err) == (0, "", "")  # cron mails nothing
    assert sum(mirror.requests.values()) == 5
    assert loaded(tmp_path) == expected
    logs = sorted((tmp_path / "data" / "logs").glob("cron-run-*.log"))
    assert len(logs) == 2 and "Luigi Execution Summary" in logs[-1].read_text()


@pytest.mark.parametrize("workers", ["1", "2"])  # with 2, the Download fails in a task process of its own
def test_a_hole_before_the_newest_month_fails_with_the_month_and_task_failed_code(mirror, tmp_path, workers):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2, 3], "tlc", 300)
    (mirror.root / "yellow" / "yellow_tripdata_2023-02.parquet").unlink()
    cfg = write_config(tmp_path, mirror.template(), services="yellow")

    rc, out, err = finish(cron_run(cfg, "--quiet", "--workers", workers))

    assert rc == 30  # [retcode] task_failed in luigi.cfg
    assert out == ""
    assert "yellow 2023-02" in err and "yellow_tripdata_2023-02.parquet" in err
    assert "FAILED, exit code 30 (task_failed)" in err
    assert set(loaded(tmp_path)) == {("yellow", "2023-01"), ("yellow", "2023-03")}


def test_an_overlapping_run_exits_at_once_without_touching_anything(mirror, tmp_path):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1], "tlc", 100)
    cfg = write_config(tmp_path, mirror.template(), services="yellow")
    lock = tmp_path / "data" / "cron-run.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write('pid of the test holder'); f.flush(); print('locked', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        rc, out, err = finish(cron_run(cfg))
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()

    assert rc == 0, err
    assert f"cron-run: skipped, another run is still going: cron-run: pid of the test holder has held {lock}" in out
    assert waited < 10
    assert sum(mirror.requests.values()) + sum(mirror.probes.values()) == 0
    assert not (tmp_path / "data" / "wh.duckdb").exists()


def test_luigis_already_running_answer_is_a_skip_not_an_alarm(mirror, tmp_path):
    """Two cron-runs with different lock files: Luigi's own pid lock stops the second one."""
    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2], "tlc", 100)
    mirror.delay = 1.5
    first_cfg = write_config(tmp_path, mirror.template(), services="yellow")
    second_cfg = write_config(
        tmp_path, mirror.template(), "second.cfg", services="yellow", lock_file=tmp_path / "other.lock"
    )
    first = cron_run(first_cfg)
    pids = tmp_path / "luigi-pids"
    deadline = time.monotonic() + 60
    while not (pids.is_dir() and any(pids.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)

    rc, out, err = finish(cron_run(second_cfg))

    assert rc == 0, err
    assert "skipped: Luigi says these tasks are being run elsewhere" in out
    first_rc, _, first_err = finish(first)
    assert first_rc == 0, first_err
    assert loaded(tmp_path) == {("yellow", f"2023-{t.month:02d}"): t.clean for t in truths}
    assert sorted(mirror.requests.values()) == [1, 1]


def test_under_luigid_a_run_whose_tasks_another_worker_has_checks_again_and_skips_or_finishes(mirror, tmp_path):
    """Two cron-runs on one luigid (each its own lock file, Luigi's no_lock): the one whose tasks the other is
    running hears not_run from Luigi and makes its second pass; both exit 0, and every month is done once."""
    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2, 3, 4], "tlc", 300)
    mirror.delay = 1.0
    with Luigid(tmp_path / "scheduler").running() as luigid:
        core = f"local_scheduler = false\nscheduler_url = {luigid.url}\nno_lock = true\n"
        cfgs = [
            write_config(tmp_path, mirror.template(), f"{n}.cfg", core, services="yellow", lock_file=tmp_path / n)
            for n in ("a", "b")
        ]
        first = cron_run(cfgs[0])
        deadline = time.monotonic() + 60
        while not mirror.requests and time.monotonic() < deadline:  # its first download is under way
            time.sleep(0.05)
        second = finish(cron_run(cfgs[1]))
        open_loads = [t for s in ("PENDING", "RUNNING") for t in luigid.tasks(s).values() if t["name"] == "Load"]
        runs = [second, finish(first)]

    endings = ("cron-run: done", "cron-run: skipped: Luigi says these tasks are being run elsewhere")
    for rc, out, err in runs:
        assert rc == 0, err
        assert out.rstrip().splitlines()[-1].startswith(endings), out
    assert "cron-run: done" not in second[1] or not open_loads  # "done" only when no worker has any left
    logs = [log.read_text() for log in (tmp_path / "data" / "logs").glob("cron-run-*.log")]
    assert any("checking that they are complete" in log for log in logs)
    assert sorted(mirror.requests.values()) == [1] * 4
    assert loaded(tmp_path) == {("yellow", f"2023-{t.month:02d}"): t.clean for t in truths}
