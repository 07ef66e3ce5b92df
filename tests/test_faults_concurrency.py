"""Two processes with the local scheduler on the same months at once: each step of a month runs once,
the other process waits for it and finds it done; a lock held too long fails the step with its holder named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from runs import CARD, Luigi, counts, load_log, override, strays

from taxi_luigi import locks
from taxi_luigi.demo import sample

HOLDER = """if True:
    import sys, time
    from pathlib import Path
    from taxi_luigi import locks
    with locks.hold(Path(sys.argv[1]), "Load yellow 2023-01", wait=10):
        print("held", flush=True)
        sys.stdin.readline()
"""


def holder(path) -> subprocess.Popen:
    """Another process that holds ``path``'s lock until told (a line on stdin) or killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()


def test_a_lock_waits_for_its_holder_then_is_taken_and_removed(tmp_path):
    path = tmp_path / "locks" / "yellow-2023-01.lock"
    other = holder(path)
    started = time.monotonic()
    time.sleep(0.5)
    release(other)
    with locks.hold(path, "Download yellow 2023-01", wait=10):
        assert time.monotonic() - started >= 0.5
        assert "Download yellow 2023-01 by pid" in path.read_text()
    other.wait()
    assert not path.exists()


def test_a_lock_held_too_long_names_the_month_the_file_and_the_holder(tmp_path):
    path = tmp_path / "locks" / "yellow-2023-01.lock"
    other = holder(path)
    with pytest.raises(locks.LockTimeout) as error, locks.hold(path, "Publish yellow 2023-01", wait=0.3):
        pass
    assert str(error.value).startswith(f"Publish yellow 2023-01: Load yellow 2023-01 by pid {other.pid} on ")
    assert f"has held {path} for longer than 0.3 s ([locks] wait_seconds)" in str(error.value)

    other.send_signal(signal.SIGKILL)  # the kernel drops a dead holder's lock: nothing stale
    other.wait()
    started = time.monotonic()
    with locks.hold(path, "Publish yellow 2023-01", wait=5):
        assert time.monotonic() - started < 1


def test_a_lock_is_taken_on_a_full_disk(tmp_path):
    """Who holds the lock is a courtesy note: a full disk must not turn a step's own error into the lock's."""
    disk = tmp_path / "full"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        (disk / "locks").mkdir()
        with pytest.raises(OSError), open(disk / "fill", "wb") as fill:
            while True:
                fill.write(b"\0" * 4096)
                fill.flush()
        with locks.hold(disk / "locks" / "yellow-2023-01.lock", "Clean yellow 2023-01", wait=1):
            pass
        assert not (disk / "locks" / "yellow-2023-01.lock").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_two_commands_on_the_same_months_at_once_run_each_step_once(mirror, tmp_path):
    truths = {m: sample.write_month(mirror.root, "yellow", 2023, m, "tlc", 20_000) for m in (1, 2)}
    mirror.delay = 0.5  # each download takes half a second: the processes meet in every step
    cfg = override(tmp_path, mirror.template())
    commands = [
        CARD,
        ("YellowYear", "--year", "2023", "--months", "1-2"),
        ("Load", "--service", "yellow", "--month", "2023-01"),
    ]

    runs = [Luigi(cfg, *command) for command in commands]
    codes = [run.finish() for run in runs]

    assert codes == [0, 0, 0], "\n\n".join(run.log[-2000:] for run in runs)
    assert dict(mirror.requests) == {f"/yellow/{t.path.name}": 1 for t in truths.values()}
    db = tmp_path / "data" / "warehouse.duckdb"
    months = {f"2023-{m:02d}": t for m, t in truths.items()}
    assert counts(db, "yellow_tripdata") == {ym: t.clean for ym, t in months.items()}
    assert {ym: len(rows) for ym, rows in load_log(db, "yellow").items()} == {"2023-01": 1, "2023-02": 1}
    assert strays(tmp_path / "data", "yellow", months) == []
    logs = "".join(run.log for run in runs)
    assert "waiting for" in logs and "done by another process meanwhile" in logs


@pytest.mark.slow
def test_a_step_that_waits_too_long_for_its_month_fails_with_the_holder_named(mirror, tmp_path):
    sample.write_month(mirror.root, "yellow", 2023, 1, "tlc", 2_000)
    cfg = override(tmp_path, mirror.template(), "[locks]\nwait_seconds = 1\n")
    lock = tmp_path / "data" / "locks" / "yellow-2023-01.lock"
    other = holder(lock)
    try:
        run = Luigi(cfg, "Load", "--service", "yellow", "--month", "2023-01")
        assert run.finish() == 30, run.log[-3000:]  # [retcode] task_failed
    finally:
        release(other)
        other.wait()
    message = f"Download yellow 2023-01: Load yellow 2023-01 by pid {other.pid} on "
    assert message in run.log
    assert f"has held {lock} for longer than 1 s ([locks] wait_seconds). If that process is stuck" in run.log
    assert mirror.downloads() == 0
