"""What ``taxi-luigi invalidate`` does: remove a month's targets from one step on, so the next ordinary run
redoes exactly those steps.

Targets are removed from the last step backwards (load, publish, clean, download), each removal
atomic on its own. A crash part-way therefore leaves a prefix of complete steps, never a later
step complete after an earlier one was removed, and running the command again finishes the job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from taxi_luigi import config, layout, locks, months, services, source
from taxi_luigi.layout import STEPS


@dataclass(frozen=True)
class Removed:
    """One thing removed: a file, a lake object or load_log rows."""

    step: str
    what: str


def parse_month(service: str, text: str, today: dt.date) -> dt.date:
    """MONTH as YYYY-MM, refused with the reason when the service has no such month (yet)."""
    svc = services.service(service)
    try:
        month = dt.datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {text!r}: use YYYY-MM, e.g. 2023-02") from None
    return months.of_year(svc, month.year, (month.month,), today)[0]  # refuses what a run would refuse


def invalidate(service: str, month: dt.date, first: str = "clean", keep_load_log: bool = False) -> Iterator[Removed]:
    """Remove the month's targets of ``first`` and every later step, the last step first.

    A generator: each removal is reported once done, so a caller that stops part-way (or
    crashes) has shown exactly what is gone. It holds the month's lock, so it never pulls a target
    from under a step of the month that is running. ``keep_load_log`` keeps the month's load history:
    from any step before ``load`` the month's Load is due again all the same (its manifest is gone),
    and the next load adds its row beside the old ones.
    """
    steps = [s for s in STEPS[STEPS.index(first) :] if not (keep_load_log and s == "load")]
    lock = _files(service, month).lock
    with locks.hold(lock, f"invalidate {months.label(service, month)}", config.locks().wait_seconds):
        for step in reversed(steps):
            yield from _REMOVE[step](service, month)


def _forget_load(service: str, month: dt.date) -> Iterator[Removed]:
    """The load_log rows: the month's data stays queryable until the next load replaces it."""
    warehouse = config.configured_warehouse()
    if rows := warehouse.forget_month(service, month):
        yield Removed("load", f"{rows} load_log row{'s' * (rows != 1)} in {warehouse!r}")


def _unpublish(service: str, month: dt.date) -> Iterator[Removed]:
    """The manifest first: once it is gone the objects are vouched for by nothing, so any order is safe."""
    the_lake = config.configured_lake()
    for kind in ("manifest", "data", "quarantine", "report"):
        key = the_lake.key(service, month, kind)
        if the_lake.delete(key):
            yield Removed("publish", the_lake.uri(key))


def _unclean(service: str, month: dt.date) -> Iterator[Removed]:
    """The quality report first (Clean's target), then the parquet files it vouched for."""
    files = _files(service, month)
    for path in (files.quality_report, files.clean_data, files.clean_quarantine):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        yield Removed("clean", str(path))


def _undownload(service: str, month: dt.date) -> Iterator[Removed]:
    """The record (Download's target) first, then the raw file it vouched for."""
    fmt = source.file_format(config.source().url(service, month.year, month.month))
    for path in (_files(service, month).raw_record(fmt), _files(service, month).raw(fmt)):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        yield Removed("download", str(path))


def _files(service: str, month: dt.date) -> layout.MonthFiles:
    return layout.MonthFiles(config.paths().root(), service, month)


_REMOVE: dict[str, Callable[[str, dt.date], Iterator[Removed]]] = {
    "download": _undownload,
    "clean": _unclean,
    "publish": _unpublish,
    "load": _forget_load,
}
