"""The run cron starts (``scripts/cron-run``): one at a time, quiet unless something failed.

It runs ``luigi --module taxi_luigi TaxiLatest`` as a child process with its whole log in a
file under ``[paths] data_dir``/logs, and exits with Luigi's own exit codes (``[retcode]`` in
luigi.cfg), so cron mails on a real failure. Two things are skips, not failures: another
cron-run holding the lock, and Luigi answering that the tasks are being run elsewhere
(``already_running``: its pid lock; ``not_run``: other workers of the same luigid, twice).
A month the TLC has not published yet is not a failure either: TaxiHistory leaves it for a
later run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import luigi.retcodes

from taxi_luigi import config

SUMMARY = "===== Luigi Execution Summary ====="


def lock_path() -> Path:
    return Path(config.cron().lock_file or config.paths().root() / "cron-run.lock")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[str | None]:
    """Hold ``path``'s lock for the block; yields None, or who holds it when another process does.

    flock: the kernel releases it when its holder dies, even by kill -9, so there is no stale lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            yield f.read().strip() or "another process"
            return
        f.truncate(0)
        f.write(f"pid {os.getpid()}, started {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}\n")
        f.flush()
        yield None


def outcome_lines(log: str) -> list[str]:
    """What a reader of cron mail needs from Luigi's log: the months not yet available, the error of
    every failed task (the last line of each traceback) and the execution summary."""
    lines = log.splitlines()
    found = [line.split(": ", 1)[-1] for line in lines if "not yet available" in line]
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            found.append(line)
            in_traceback = False
    if SUMMARY in log:
        found.extend(log[log.index(SUMMARY) : log.rindex(SUMMARY) + len(SUMMARY)].splitlines())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cron-run",
        description="Load every [cron] service through its newest published month, from [cron] start.",
        epilog="Other options (e.g. --workers 2) go to luigi.",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing unless the run failed (for cron mail)")
    args, luigi_args = parser.parse_known_args(argv)
    codes = luigi.retcodes.retcode()

    def say(text: str) -> None:
        if not args.quiet:
            print(text)

    lock = lock_path()
    with exclusive(lock) as holder:
        if holder:
            say(f"cron-run: skipped: {lock} is held by {holder}; that run is still going.")
            return 0
        logs = config.paths().root() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_file = logs / f"cron-run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.log"
        command = [sys.executable, "-m", "luigi", "--module", "taxi_luigi", "TaxiLatest", *luigi_args]
        with open(log_file, "w") as out:
            rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
            if rc == codes.not_run and rc:
                # Under luigid, Luigi answers not_run when other workers ran some of the tasks: a second
                # pass tells whether they finished them (nothing left to do) or failed.
                out.write("\ncron-run: other workers ran some of these tasks; checking that they are complete\n")
                out.flush()
                rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        report = "\n".join(outcome_lines(log_file.read_text(errors="replace")))
    if rc == 0:
        say(f"{report}\ncron-run: done; log: {log_file}")
        return 0
    if rc in (codes.already_running, codes.not_run):
        say(f"cron-run: skipped: Luigi says these tasks are being run elsewhere; log: {log_file}")
        return 0
    names = ", ".join(name for name, _ in codes.get_params() if getattr(codes, name) == rc) or "see the log"
    print(f"{report}\ncron-run: FAILED, exit code {rc} ({names}); log: {log_file}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
