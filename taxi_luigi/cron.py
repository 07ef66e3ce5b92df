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
import datetime as dt
import subprocess
import sys
from pathlib import Path

import luigi.retcodes

from taxi_luigi import config, locks

SUMMARY = "===== Luigi Execution Summary ====="


def lock_path() -> Path:
    return Path(config.cron().lock_file or config.paths().root() / "cron-run.lock")


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


def run_luigi(luigi_args: list[str], codes: luigi.retcodes.retcode) -> tuple[Path, int]:
    """``luigi --module taxi_luigi TaxiLatest`` with its output in a new log file; the file and the exit code."""
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
        if rc == codes.task_failed and config.report().refresh:
            # A failed month stops its wrapper before it refreshes the quality site, and may have changed only the
            # lake: `taxi-luigi report` rebuilds it whatever it was built from, so it shows the month as missing.
            # The run's exit code stays the failure's.
            out.write("\ncron-run: a task failed; rebuilding the quality site\n")
            out.flush()
            site = [sys.executable, "-m", "taxi_luigi.cli", "report"]
            subprocess.run(site, stdout=out, stderr=subprocess.STDOUT, check=False)
    return log_file, rc


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

    try:
        with locks.hold(lock_path(), "cron-run", wait=0):
            log_file, rc = run_luigi(luigi_args, codes)
    except locks.LockTimeout as e:
        say(f"cron-run: skipped, another run is still going: {e}")
        return 0
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
