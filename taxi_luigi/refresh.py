"""What ``taxi-luigi refresh`` does: find the months the source has re-issued since they were loaded,
and invalidate just those, from ``download`` on, so the next ordinary run reloads them exactly.

The TLC rewrites old files (all of them in 2022, some again later), so a finished month's counts can
change upstream while every target still says "complete". The source is asked what it has now (a
one-byte request per month, see ``source.probe``) and the answer is compared with what the month's
manifest recorded when it was downloaded (``source.Fetched``): both come from the same headers, or for
a local file from the same stat, so an unchanged file always compares equal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from taxi_luigi import config, invalidate, services, source
from taxi_luigi.months import label, of_year

CHANGED, UNCHANGED, GONE = "changed", "unchanged", "gone"


@dataclass(frozen=True)
class Checked:
    """One published month: what was downloaded, what the source has now, and the verdict."""

    service: str
    month: dt.date
    #: changed (re-issued: invalidated unless a dry run), unchanged, or gone (no file at the source now).
    state: str
    #: What decided: "etag", "last-modified", or "size" alone when the recorded download had neither
    #: validator (a download made before they were recorded, or a server that sends none); "presence"
    #: for a month gone from the source.
    compared: str
    recorded: source.Remote
    current: source.Remote | None
    invalidated: bool = False

    def to_dict(self) -> dict:
        """The JSON object of ``refresh --json``: stable keys, month as YYYY-MM."""

        def remote(r: source.Remote | None) -> dict | None:
            return (
                None
                if r is None
                else {"url": r.url, "bytes": r.bytes, "etag": r.etag, "last_modified": r.last_modified}
            )

        return {
            "service": self.service,
            "month": f"{self.month:%Y-%m}",
            "state": self.state,
            "compared": self.compared,
            "recorded": remote(self.recorded),
            "current": remote(self.current),
            "invalidated": self.invalidated,
        }


def compare(recorded: source.Remote, current: source.Remote) -> tuple[str, str]:
    """(state, what decided) for a file still at the source.

    A different size is a change whatever the validators say. Otherwise the ETag decides when both
    sides have one (S3 and CloudFront derive it from the content), else Last-Modified when both have
    it, else the size alone: a month recorded without either validator says so instead of passing
    for verified.
    """
    for name, old, new in (
        ("etag", recorded.etag, current.etag),
        ("last-modified", recorded.last_modified, current.last_modified),
    ):
        if old and new:
            return (UNCHANGED if old == new and recorded.bytes == current.bytes else CHANGED), name
    return (UNCHANGED if recorded.bytes == current.bytes else CHANGED), "size"


def check(service: str, year: int, months: tuple[int, ...], today: dt.date) -> list[Checked]:
    """Compare every published month of ``year`` (or of ``months``) with the source; change nothing.

    Months without a manifest are not finished: the next run completes them from whatever it
    downloads, so there is nothing to compare. The configured URL is asked, the one the next run
    would download.
    """
    svc = services.service(service)
    wanted = of_year(svc, year, months, today)  # refuses what a run would refuse
    the_lake = config.configured_lake()
    cfg = config.source()
    rows = []
    for month in wanted:
        manifest = the_lake.manifest(service, month)
        if manifest is None:
            continue
        got = manifest["source"]
        recorded = source.Remote(got["url"], got["bytes"], got.get("etag"), got.get("last_modified"))
        url = cfg.url(service, month.year, month.month)
        current = source.probe(
            url, label(service, month), retries=cfg.retries, backoff=cfg.backoff_seconds, timeout=cfg.timeout_seconds
        )
        if current is None:
            rows.append(Checked(service, month, GONE, "presence", recorded, None))
        else:
            rows.append(Checked(service, month, *compare(recorded, current), recorded, current))
    return rows


def refresh(service: str, year: int, months: tuple[int, ...], today: dt.date, dry_run: bool = False) -> list[Checked]:
    """``check``, then invalidate each changed month from ``download`` on (unless ``dry_run``).

    Every month is asked before any is invalidated, so a source that stops answering part-way
    leaves everything as it was. A month gone from the source is only reported: invalidating it
    would turn a loaded month into a failing download.
    """
    rows = check(service, year, months, today)
    if dry_run:
        return rows
    done = []
    for row in rows:
        if row.state == CHANGED:
            # A generator: run it to the end. The load history stays, so the re-issue shows in load_log.
            list(invalidate.invalidate(service, row.month, "download", keep_load_log=True))
            row = dataclasses.replace(row, invalidated=True)
        done.append(row)
    return done
