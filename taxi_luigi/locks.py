"""A month's lock: one step of a month runs in one process at a time, whatever command started it.

Luigi's local scheduler knows only its own process, and its pid lock stops only a second
identical command line: ``TaxiYear --months 1-2`` and ``Load --month 2023-01`` started together
would both download, clean, publish and load January, and two publishers of one month could
mix one's objects with the other's manifest. A step takes its month's lock first and then looks
again at whether its output exists, so the second process waits and then finds the work done.

flock: the kernel releases the lock when its holder dies, even by kill -9, so no lock is stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from taxi_luigi import staging

log = logging.getLogger("luigi-interface.taxi_luigi")


class LockTimeout(Exception):
    """Another process held a month's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def hold(path: Path, what: str, wait: float, poll: float = 0.2) -> Iterator[None]:
    """Hold ``path``'s lock for the block, waiting up to ``wait`` seconds for its holder.

    ``what`` (e.g. "Load yellow 2023-01") is written into the file for whoever waits, and names
    the lock in messages. The holder removes the file before it lets go, so lock files exist only
    while held (or after a kill -9, until the month's next step); a waiter that then gets the lock
    of a removed file opens the path again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        with open(path, "a+b", buffering=0) as f:  # unbuffered: a failed write leaves nothing to flush
            _wait_for(f, path, what, wait, deadline, poll)
            if not _is_current(f, path):
                continue
            _sign(f, what)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)
            return


def _wait_for(f: IO[bytes], path: Path, what: str, wait: float, deadline: float, poll: float) -> None:
    """Take ``f``'s lock, polling until ``deadline``; say once whom we wait for."""
    told = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"{what}: {_holder(f)} has held {path} for longer than {wait:g} s ([locks] wait_seconds). "
                "If that process is stuck, stop it; otherwise rerun when it has finished."
            )
        if not told:
            log.info("%s: waiting for %s to finish (lock %s)", what, _holder(f), path)
            told = True
        time.sleep(poll)


def _sign(f: IO[bytes], what: str) -> None:
    """Write who holds the lock, for whoever waits. Only a courtesy: on a full disk the step goes on, and
    fails, if it must, naming its month."""
    since = dt.datetime.now().astimezone()
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{what} by pid {os.getpid()} on {staging.HOST} since {since:%Y-%m-%d %H:%M:%S %Z}\n".encode())
    except OSError:
        pass


def _is_current(f: IO[bytes], path: Path) -> bool:
    """Whether the file locked is still the one at ``path`` (its holder did not remove it meanwhile)."""
    try:
        here = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(f.fileno())
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _holder(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace").strip() or "another process"
