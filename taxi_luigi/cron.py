"""The run cron starts (``scripts/cron-run``): one at a time, quiet unless something failed.

It runs ``luigi --module taxi_luigi TaxiLatest [ARGS]`` in this process through Luigi's API, the call behind
the ``luigi`` command (``luigi.run(..., detailed_summary=True)``), with everything the run writes in a log file
under ``[paths] data_dir``/logs. What it reports comes from that API, never from the log's text: the exit code
(``[retcode]`` in luigi.cfg, so cron mails on a real failure) and the execution summary from the run's result;
each failed task's error and the months not yet available from Luigi's events.

Two things are skips, not failures: another cron-run holding the lock, and Luigi answering that the tasks are
being run elsewhere (``already_running``: its pid lock; ``not_run``: other workers of the same luigid, twice).
A month the TLC has not published yet is not a failure either: TaxiHistory leaves it for a later run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import luigi
import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser
from luigi.execution_summary import LuigiStatusCode
from luigi.interface import PidLockAlreadyTakenExit

from taxi_luigi import config, locks, report, tasks

COMMAND = ["--module", "taxi_luigi", "TaxiLatest"]
#: Luigi's events that carry (task, exception), or (task, message) for a task process that died or timed out.
FAILURES = (luigi.Event.FAILURE, luigi.Event.BROKEN_TASK, luigi.Event.PROCESS_FAILURE, luigi.Event.TIMEOUT)


def lock_path() -> Path:
    return Path(config.cron().lock_file or config.paths().root() / "cron-run.lock")


@dataclasses.dataclass
class Outcome:
    """What a run of Luigi ended with: its exit code and what a reader of cron mail needs to know why."""

    code: int
    errors: list[str] = dataclasses.field(default_factory=list)
    unavailable: list[str] = dataclasses.field(default_factory=list)
    summary: str = ""

    def report(self) -> str:
        return "\n".join([*self.errors, *self.unavailable, self.summary]).strip()


def one_line(error: BaseException | str) -> str:
    """An exception as the last line of its traceback would show it (``module.Type: message``), on one line."""
    text = "".join(traceback.format_exception_only(error)) if isinstance(error, BaseException) else error
    return " ".join(text.split())


class Events:
    """Luigi's events during one run: each failed task's error, the months not yet available
    (``tasks.NOT_YET_AVAILABLE``) and whether the root task got done.

    A handler runs where its event fires, and with ``--workers N`` that is a forked task process for a task's
    FAILURE or SUCCESS. So the handlers only put what they learn on a pipe the forks inherit, and a thread here
    reads it as it comes (a full pipe would stall the task process that writes to it).
    """

    def __init__(self) -> None:
        self._found: dict[str, dict[str, str]] = {"errors": {}, "unavailable": {}, "done": {}}
        self._pipe: multiprocessing.SimpleQueue[tuple[str, str, str] | None] = multiprocessing.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._handlers = [
            *((luigi.Task, event, self._failed) for event in FAILURES),
            (luigi.Task, tasks.NOT_YET_AVAILABLE, self._not_yet_available),
            (tasks.TaxiLatest, luigi.Event.DEPENDENCY_PRESENT, self._done),  # complete when scheduled
            (tasks.TaxiLatest, luigi.Event.SUCCESS, self._done),  # ran (here: its requirements all done)
        ]

    def __enter__(self) -> Events:
        for cls, event, handler in self._handlers:
            cls.event_handler(event)(handler)
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for cls, event, handler in self._handlers:
            cls.remove_event_handler(event, handler)
        self._pipe.put(None)
        self._reader.join()
        self._pipe.close()

    @property
    def errors(self) -> list[str]:
        return list(self._found["errors"].values())

    @property
    def unavailable(self) -> list[str]:
        return list(self._found["unavailable"].values())

    @property
    def root_done(self) -> bool:
        return bool(self._found["done"])

    def _failed(self, task: luigi.Task, error: BaseException | str) -> None:
        # One line per error, naming the first task it came from: an exception out of TaxiHistory.complete()
        # passes through TaxiLatest.complete(), and one out of complete() in run() is BROKEN_TASK and FAILURE.
        text = one_line(error)
        self._pipe.put(("errors", text, f"{text} (in {task})"))

    def _not_yet_available(self, task: luigi.Task, message: str) -> None:
        self._pipe.put(("unavailable", message, message))

    def _done(self, task: luigi.Task) -> None:
        self._pipe.put(("done", task.task_id, str(task)))

    def _read(self) -> None:
        while (item := self._pipe.get()) is not None:
            kind, key, line = item
            self._found[kind].setdefault(key, line)


def status_code(status: LuigiStatusCode, codes: luigi.retcodes.retcode) -> int:
    """The ``[retcode]`` code of Luigi's status, as the ``luigi`` command's ``run_with_retcodes`` exits.

    That takes the highest code of every kind of trouble in the run, where the status names the first in
    Luigi's order (failed, failed scheduling, not run, missing data): the same answer with luigi.cfg's codes,
    which fall in that order save for scheduling_error (35, over task_failed's 30), hence the ``max``.
    """
    return {
        LuigiStatusCode.SUCCESS: 0,
        LuigiStatusCode.SUCCESS_WITH_RETRY: 0,
        LuigiStatusCode.FAILED: codes.task_failed,
        LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED: max(codes.task_failed, codes.scheduling_error),
        LuigiStatusCode.SCHEDULING_FAILED: codes.scheduling_error,
        LuigiStatusCode.NOT_RUN: codes.not_run,
        LuigiStatusCode.MISSING_EXT: codes.missing_data,
    }[status]


def luigi_once(argv: list[str], codes: luigi.retcodes.retcode) -> Outcome:
    """``luigi ARGV`` in this process, and its outcome from the run's result and events.

    As with ``luigi``, Luigi's pid lock is taken unless ``--no-lock``, an exception out of Luigi is
    unhandled_exception, and a run that raised nothing but left the root task undone (other workers of luigid
    have its requirements) is not_run. The status has no word for tasks still running at another worker
    (``luigi`` exits already_running for them); they leave the root undone, so not_run: a skip all the same.
    """
    with Events() as events:
        try:
            result = luigi.run(argv, detailed_summary=True)
        except PidLockAlreadyTakenExit:
            return Outcome(codes.already_running)
        except Exception as e:
            logging.getLogger("luigi-interface").exception("Uncaught exception in luigi")
            result = e
    if isinstance(result, Exception):
        return Outcome(codes.unhandled_exception, [*events.errors, one_line(result)], events.unavailable)
    code = status_code(result.status, codes) or (0 if events.root_done else codes.not_run)
    return Outcome(code, events.errors, events.unavailable, result.summary_text.strip())


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """This process's stdout and stderr (the file descriptors, which task processes inherit) into ``log_file``.

    So the log has all of it, as when Luigi ran as a child process writing there: Luigi's logging, however
    ``[logging]`` or ``logging_conf_file`` route it (to stderr by default), what Luigi prints (its pid lock's
    "already running"), task processes and native libraries; and ``--quiet`` stays quiet.
    """
    with open(log_file, "w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in enumerate(saved, start=1):
                os.dup2(original, fd)
                os.close(original)


def rebuild_site() -> None:
    """After a failed task: a failed month stops its wrapper before it refreshes the quality site, and may have
    changed only the lake, so the site is rebuilt here whatever it was built from, and shows the month as missing.
    Into the log, like the run; a site that cannot be built is logged and leaves the outcome the failure's."""
    print("\ncron-run: a task failed; rebuilding the quality site", flush=True)
    try:
        built = report.build(config.configured_lake(), config.configured_warehouse(), config.report().root())
    except Exception:
        logging.getLogger("luigi-interface").exception("cron-run: the quality site could not be rebuilt")
        return
    print(f"cron-run: quality site: {built.out / report.INDEX}", flush=True)


def run_luigi(luigi_args: list[str], codes: luigi.retcodes.retcode) -> tuple[Path, Outcome]:
    """``luigi --module taxi_luigi TaxiLatest`` with its output in a new log file; the file and the outcome."""
    logs = config.paths().root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"cron-run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.log"
    argv = [*COMMAND, *luigi_args]
    with output_to(log_file):
        outcome = luigi_once(argv, codes)
        if outcome.code == codes.not_run and outcome.code:
            # Under luigid, Luigi answers not_run when other workers ran some of the tasks: a second pass tells
            # whether they finished them (nothing left to do) or failed. This process holds the pid lock already.
            print("\ncron-run: other workers ran some of these tasks; checking that they are complete", flush=True)
            again = luigi_once([*argv, "--no-lock"], codes)
            outcome = dataclasses.replace(again, unavailable=[*outcome.unavailable, *again.unavailable])
        if outcome.code == codes.task_failed and config.report().refresh:
            rebuild_site()
    return log_file, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cron-run",
        description="Load every [cron] service through its newest published month, from [cron] start.",
        epilog="Other options (e.g. --workers 2) go to luigi.",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing unless the run failed (for cron mail)")
    args, luigi_args = parser.parse_known_args(argv)
    # As the luigi command does: its options may set [retcode] too, and one it does not know stops here.
    with CmdlineParser.global_instance([*COMMAND, *luigi_args]):
        codes = luigi.retcodes.retcode()

    def say(text: str) -> None:
        if not args.quiet:
            print(text)

    try:
        with locks.hold(lock_path(), "cron-run", wait=0):
            log_file, outcome = run_luigi(luigi_args, codes)
    except locks.LockTimeout as e:
        say(f"cron-run: skipped, another run is still going: {e}")
        return 0
    rc = outcome.code
    if rc == 0:
        say(f"{outcome.report()}\ncron-run: done; log: {log_file}")
        return 0
    if rc in (codes.already_running, codes.not_run):
        say(f"cron-run: skipped: Luigi says these tasks are being run elsewhere; log: {log_file}")
        return 0
    names = ", ".join(name for name, _ in codes.get_params() if getattr(codes, name) == rc) or "see the log"
    print(f"{outcome.report()}\ncron-run: FAILED, exit code {rc} ({names}); log: {log_file}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
