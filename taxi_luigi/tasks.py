"""The Luigi tasks: which step needs which, and where each step's output lives.

The work itself is in source, clean, lake and warehouse; a task only wires them and
reports progress to the scheduler.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import luigi

from taxi_luigi import (
    clean,
    config,
    lake,
    layout,
    locks,
    months,
    rawcsv,
    report,
    services,
    source,
    staging,
    tables,
    zone_lookup,
)
from taxi_luigi.parameters import MonthsParameter, OptionalMonthParameter
from taxi_luigi.targets import LoadedTarget, ManifestTarget, SiteTarget, TripsViewTarget, ZonesTarget
from taxi_luigi.warehouse import Warehouse

log = logging.getLogger("luigi-interface.taxi_luigi")

#: The Luigi event TaxiHistory fires, as (task, message), for the months after the newest one the source has
#: published: ``luigi.Task.event_handler(NOT_YET_AVAILABLE)`` learns them (cron reports them) without reading the log.
NOT_YET_AVAILABLE = "event.taxi_luigi.not_yet_available"

_Task = TypeVar("_Task", bound=luigi.Task)


def reports_errors(complete: Callable[[_Task], bool]) -> Callable[[_Task], bool]:
    """``complete`` that fires Luigi's BROKEN_TASK event, (task, exception), when it raises, then raises on.

    Luigi fires BROKEN_TASK when a task's deps() raise, but when complete() raises it keeps only the traceback's
    text, for its log (spotify/luigi#3010). Ours ask the source, the lake and the warehouse, and a source that
    cannot be reached fails scheduling there by design; this way an event handler (cron) gets those errors too.
    """

    @functools.wraps(complete)
    def checked(task: _Task) -> bool:
        try:
            return complete(task)
        except Exception as e:
            task.trigger_event(luigi.Event.BROKEN_TASK, task, e)
            raise

    return checked


class MonthTask(luigi.Task):
    """One service's month: the unit of work, of idempotency and of the visualizer's rows."""

    service = luigi.ChoiceParameter(choices=list(services.SERVICES), description="yellow, green, fhv or fhvhv")
    month = luigi.MonthParameter(description="YYYY-MM")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        services.check_month(self.svc, self.month)
        if self.month > months.last_ended(dt.date.today()):
            raise ValueError(f"{self.label}: the month has not ended yet, so the TLC has no file for it")

    @reports_errors
    def complete(self) -> bool:
        return super().complete()

    @property
    def svc(self) -> services.Service:
        return services.service(self.service)

    @property
    def label(self) -> str:
        return months.label(self.service, self.month)

    @property
    def files(self) -> layout.MonthFiles:
        return layout.MonthFiles(config.paths().root(), self.service, self.month)

    def report(self, pct: int, message: str) -> None:
        """Progress for the visualizer: the worker hands a running task its callbacks (None outside a worker)."""
        if self.set_progress_percentage is not None:
            self.set_progress_percentage(pct)
        if self.set_status_message is not None:
            self.set_status_message(message)

    def run(self) -> None:
        """The step, under the month's lock: another process running the same month (the local scheduler
        knows only its own) is waited for, and if it did this step meanwhile, the step is not redone.
        Temporary files of writers killed earlier are swept first."""
        step = f"{type(self).__name__} {self.label}"
        with locks.hold(self.files.lock, step, config.locks().wait_seconds):
            if self.complete():
                log.info("%s: done by another process meanwhile", step)
                return
            if swept := staging.sweep(*self.staging_dirs()):
                log.info("%s: removed what killed runs left: %s", step, ", ".join(p.name for p in swept))
            try:
                self.work()
            except Exception as e:
                if full := staging.disk_full(self.label, type(self).__name__, e, self.files.work_dir("raw")):
                    raise full from None
                raise

    def work(self) -> None:
        """The step itself; ``run`` calls it under the month's lock."""
        raise NotImplementedError

    def staging_dirs(self) -> list[Path]:
        """Where the month's steps write temporary files (and DuckDB spills while cleaning)."""
        files, the_lake = self.files, config.configured_lake()
        local = [files.work_dir("raw"), files.work_dir("clean"), files.scratch]
        return [*local, *the_lake.staging_dirs(self.service, self.month)]


class Download(MonthTask):
    """Fetch the month's file from ``[source] url_template``; complete when the file is verified."""

    def url(self) -> str:
        return config.source().url(self.service, self.month.year, self.month.month)

    def raw_path(self) -> Path:
        return self.files.raw(source.file_format(self.url()))

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.files.raw_record(source.file_format(self.url()))))

    def discard(self) -> None:
        """Forget a download that Clean found damaged past the header, so the next run fetches it again."""
        Path(self.output().path).unlink(missing_ok=True)
        self.raw_path().unlink(missing_ok=True)

    def work(self) -> None:
        cfg = config.source()
        started, last = time.monotonic(), [0.0]

        def progress(done: int, total: int | None) -> None:
            if time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                of = f" of {total / 1e6:,.1f}" if total else ""
                self.report(int(100 * done / total) if total else 0, f"{done / 1e6:,.1f}{of} MB downloaded")

        fetched = source.fetch(
            self.url(),
            self.raw_path(),
            self.svc,
            self.label,
            retries=cfg.retries,
            backoff=cfg.backoff_seconds,
            timeout=cfg.timeout_seconds,
            progress=progress,
        )
        with self.output().open("w") as f:
            json.dump(fetched.to_dict(), f, indent=2)
        seconds = time.monotonic() - started
        log.info("%s: downloaded %s bytes in %.1f s", self.label, f"{fetched.bytes:,}", seconds)
        self.report(100, f"{fetched.bytes / 1e6:,.1f} MB downloaded")


class Clean(MonthTask):
    """Map the month onto the canonical schema, quarantine bad rows, count everything."""

    def requires(self) -> Download:
        return Download(service=self.service, month=self.month)

    def outputs(self) -> clean.Outputs:
        return clean.Outputs(self.files.clean_data, self.files.clean_quarantine)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.files.quality_report))

    def work(self) -> None:
        fetched = json.loads(Path(self.input().path).read_text())
        cfg = config.clean()
        download = self.requires()
        try:
            report = clean.clean_month(
                download.raw_path(),
                fetched["format"],
                self.svc,
                self.month,
                self.outputs(),
                label=self.label,
                memory_limit=cfg.memory_limit,
                threads=cfg.threads,
                temp_dir=self.files.scratch,
                progress=self.report,
                zones_shapes=config.zones().shapes,
            )
        except rawcsv.DamagedSource as e:
            download.discard()
            raise rawcsv.DamagedSource(f"{e} The download was discarded: rerun to fetch it again.") from None
        report["source"] = fetched
        with self.output().open("w") as f:
            json.dump(report, f, indent=2)
        log.info(
            "%s: cleaned %s rows (%s quarantined) in %.1f s",
            self.label,
            f"{report['rows_in']:,}",
            f"{report['rows_quarantined']:,}",
            report["seconds"],
        )


class Publish(MonthTask):
    """Put the clean month, its quarantine and report in the lake; the manifest goes last."""

    def requires(self) -> Clean:
        return Clean(service=self.service, month=self.month)

    def the_lake(self) -> lake.Lake:
        return config.configured_lake()

    def output(self) -> ManifestTarget:
        return ManifestTarget(self.the_lake(), self.service, self.month)

    def work(self) -> None:
        outputs = self.requires().outputs()
        report_path = Path(self.input().path)
        files = {"data": outputs.data, "quarantine": outputs.quarantine, "report": report_path}
        started = time.monotonic()
        self.report(10, "publishing")
        source_info = json.loads(report_path.read_text())["source"]
        manifest = self.the_lake().publish_month(self.service, self.month, files, source_info)
        seconds = time.monotonic() - started
        log.info("%s: published %s rows to %s in %.1f s", self.label, f"{manifest['rows']:,}", self.output(), seconds)
        self.report(100, f"published {manifest['rows']:,} rows")


class Load(MonthTask):
    """Replace the month in the warehouse and log it, atomically; done when the log has this manifest."""

    resources = {"warehouse": 1}  # noqa: RUF012 - Luigi reads this class attribute

    def requires(self) -> Publish:
        return Publish(service=self.service, month=self.month)

    def output(self) -> LoadedTarget:
        manifest = self.requires().the_lake().manifest(self.service, self.month)
        return LoadedTarget(self.warehouse(), self.service, self.month, manifest["checksum"] if manifest else None)

    def warehouse(self) -> Warehouse:
        return config.configured_warehouse()

    def work(self) -> None:
        started = time.monotonic()
        the_lake = self.requires().the_lake()
        manifest = the_lake.manifest(self.service, self.month)
        if manifest is None:  # Publish was complete a moment ago: removed since, by hand or by invalidate
            raise lake.LakeError(f"{self.label}: its manifest is gone from the lake; rerun to publish it again.")
        self.report(10, f"verifying {manifest['rows']:,} rows")
        rows = self.warehouse().replace_month(self.svc, self.month, the_lake, manifest, self.label, self.report)
        log.info("%s: loaded %s rows in %.1f s", self.label, f"{rows:,}", time.monotonic() - started)
        self.report(100, f"loaded {rows:,} rows")


class _MonthsWrapper(luigi.WrapperTask):
    """Loads of some months of one service, whose completeness is asked of them all at once."""

    service = luigi.ChoiceParameter(choices=list(services.SERVICES), description="yellow, green, fhv or fhvhv")

    def month_list(self) -> list[dt.date]:
        raise NotImplementedError

    def loads(self) -> list[Load]:
        return [Load(service=self.service, month=month) for month in self.month_list()]

    def requires(self) -> list[Load]:
        """The months' loads, once the source is known to be reachable if any of them has to download."""
        loads = self.loads()
        self.check_source(loads)
        return loads

    def check_source(self, loads: list[Load]) -> None:
        """Fail the whole run here, before a single month is scheduled, if the source cannot be reached.

        A host that does not resolve, refuses connections or has no route would fail every month alike, each
        with its own traceback; this is one look (``source.check_reachable``) at the first month Luigi would
        download, and one error (Luigi: "failed scheduling", exit 35). Months that are published, cleaned or
        downloaded already need no source, so a run with only those left never looks and works offline.
        """
        downloads = [Download(service=self.service, month=load.month) for load in loads]
        unfetched = [d for d in downloads if not (d.complete() or Clean(service=d.service, month=d.month).complete())]
        if not unfetched:
            return
        published = config.configured_lake().manifest_checksums(self.service, [d.month for d in unfetched])
        if pending := [d for d in unfetched if d.month not in published]:
            source.check_reachable(pending[0].url(), self.span(), config.source().timeout_seconds)

    def span(self) -> str:
        """The first and last months asked for, e.g. "yellow 2023-01..2023-12": the message is about all of them."""
        months = self.month_list()
        return f"{self.service} {months[0]:%Y-%m}" + (f"..{months[-1]:%Y-%m}" if len(months) > 1 else "")

    @reports_errors
    def complete(self) -> bool:
        """Done when every month's latest load carries its manifest's checksum, and the quality site shows them.

        Asked of all the months at once, so a finished year costs one look at the lake (one
        listing on GCS) and one warehouse query in all, instead of some per month; the site's
        check is one more warehouse query (none with ``[report] refresh = false``).
        """
        loads = self.loads()
        if not loads:
            return True
        published = loads[0].requires().the_lake().manifest_checksums(self.service, [load.month for load in loads])
        if len(published) < len(loads):
            return False
        loaded = loads[0].warehouse().loaded_checksums(self.service)
        if not all(loaded.get(month) == checksum for month, checksum in published.items()):
            return False
        return not config.report().refresh or QualitySite().complete()

    def run(self) -> Iterator[QualitySite]:
        """Once the loads are done: the quality site, as a dynamic dependency (luigid shows it under the
        wrapper). One site serves every wrapper; it is rebuilt only when it no longer shows the warehouse."""
        if config.report().refresh:
            yield QualitySite()


class QualitySite(luigi.Task):
    """The quality site in ``[report] out_dir``: an index and a page per service, with charts (taxi_luigi.report).

    Its target is the site's own record of the load_log it was built from, so a rerun of finished work does
    nothing and any new load makes it due again.
    """

    def output(self) -> SiteTarget:
        return SiteTarget(config.configured_warehouse(), config.report().root())

    def run(self) -> None:
        target = self.output()
        with locks.hold(config.paths().root() / "locks" / "report.lock", "QualitySite", config.locks().wait_seconds):
            if target.exists():  # another process built it meanwhile
                return
            staging.sweep(target.out)
            built = report.build(config.configured_lake(), target.warehouse, target.out)
        services_shown = ", ".join(built.services) or "no service"
        log.info("quality site: %s pages for %s in %s", len(built.pages), services_shown, built.out)


class TaxiYear(_MonthsWrapper):
    """Every month of a service's year (or ``--months``), loaded into the warehouse."""

    year = luigi.IntParameter(description="e.g. 2021")
    months = MonthsParameter(default=(), description="e.g. 1,2,3 or 1-6; empty: the whole year")

    def month_list(self) -> list[dt.date]:
        return months.of_year(services.service(self.service), self.year, self.months, dt.date.today())


class TaxiHistory(_MonthsWrapper):
    """Every month of a service from ``--start`` (default: its first file) through the newest one the
    source has published, or ``--through``.

    Months after the newest published one are "not yet available": logged, announced as the
    NOT_YET_AVAILABLE event and left for a later run, not failed, so cron can ask for everything up to
    last month. A month missing before the newest one is a hole: its Download fails with the month and
    URL in the message.
    """

    start = OptionalMonthParameter(description="YYYY-MM; default: the service's first month")
    through = OptionalMonthParameter(description="YYYY-MM; default: last month")

    def check_source(self, loads: list[Load]) -> None:
        """Nothing more to check: ``month_list`` has asked the source already, and a source it could not reach
        raised Unreachable there (from ``complete``, so Luigi reports this task as failed scheduling)."""

    def month_list(self) -> list[dt.date]:
        if not hasattr(self, "_months"):  # probed once per instance: requires() is asked often
            self._months = self._published_months()
        return self._months

    def _published_months(self) -> list[dt.date]:
        svc = services.service(self.service)
        first = self.start or svc.first_loadable
        services.check_month(svc, first)
        last_ended = months.last_ended(dt.date.today())
        wanted = months.through(first, min(self.through or last_ended, last_ended))
        cfg = config.source()
        unavailable: list[tuple[dt.date, str]] = []
        while wanted:
            label = months.label(self.service, wanted[-1])
            url = cfg.url(self.service, wanted[-1].year, wanted[-1].month)
            if source.probe(url, label, retries=cfg.retries, backoff=cfg.backoff_seconds, timeout=cfg.timeout_seconds):
                break
            unavailable.append((wanted.pop(), url))
        if unavailable:
            (oldest, url), newest = unavailable[-1], unavailable[0][0]
            span = f"{oldest:%Y-%m}" + (f"..{newest:%Y-%m}" if newest != oldest else "")
            message = f"{self.service} {span}: not yet available (no file at {url}); a later run will load it"
            log.warning("%s", message)
            self.trigger_event(NOT_YET_AVAILABLE, self, message)
        return wanted


class TaxiLatest(luigi.WrapperTask):
    """The monthly run: every ``[cron] services`` service through its newest published month."""

    @reports_errors
    def complete(self) -> bool:
        """Its requirements' completeness; requires() reads ``[cron]``, so an unknown service fails here."""
        return super().complete()

    def requires(self) -> list[TaxiHistory]:
        cfg = config.cron()
        today = dt.date.today()
        start = cfg.start or dt.date(today.year - 1, today.month, 1)
        names = [name.strip() for name in cfg.services.split(",") if name.strip()]
        return [TaxiHistory(service=name, start=max(start, services.service(name).first_loadable)) for name in names]


class YellowYear(TaxiYear):
    service = "yellow"


class GreenYear(TaxiYear):
    service = "green"


class FhvYear(TaxiYear):
    service = "fhv"


class FhvhvYear(TaxiYear):
    service = "fhvhv"


class ZoneLookup(luigi.Task):
    """Fetch ``[source] zones_url`` (default: the preset's taxi_zone_lookup.csv) to data_dir/zones, verified.

    Complete while its record exists: to take a re-issued lookup, remove
    ``data_dir/zones/taxi_zone_lookup.csv.source.json`` and rerun LoadZones.
    """

    def csv_path(self) -> Path:
        return config.paths().root() / "zones" / "taxi_zone_lookup.csv"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.csv_path()) + ".source.json")

    def run(self) -> None:
        cfg = config.source()
        directory = self.csv_path().parent
        with locks.hold(config.paths().root() / "locks" / "zones.lock", "ZoneLookup", config.locks().wait_seconds):
            if self.complete():
                return
            staging.sweep(directory)
            lookup = zone_lookup.fetch(
                cfg.zones(),
                self.csv_path(),
                retries=cfg.retries,
                backoff=cfg.backoff_seconds,
                timeout=cfg.timeout_seconds,
            )
            zone_lookup.write_record(Path(self.output().path), lookup)
        log.info("zones: downloaded %s zones from %s", lookup.rows, lookup.url)


class LoadZones(luigi.Task):
    """Replace ``taxi_zones`` with the downloaded lookup, logged in ``zones_log``; done when the logged
    sha256 is the download's, so a rerun does nothing and a changed lookup is loaded again."""

    resources = {"warehouse": 1}  # noqa: RUF012 - Luigi reads this class attribute

    def requires(self) -> ZoneLookup:
        return ZoneLookup()

    def recorded(self) -> dict | None:
        path = Path(self.input().path)
        return json.loads(path.read_text()) if path.exists() else None

    def output(self) -> ZonesTarget:
        recorded = self.recorded()
        return ZonesTarget(config.configured_warehouse(), recorded["sha256"] if recorded else None)

    def run(self) -> None:
        recorded = self.recorded()
        if recorded is None:  # ZoneLookup was complete a moment ago: removed since
            raise zone_lookup.ZonesError(f"zones: {self.input().path} is gone; rerun to download the lookup again.")
        rows = zone_lookup.read(self.requires().csv_path(), recorded)
        loaded = self.output().warehouse.replace_zones(rows, recorded)
        log.info("zones: loaded %s zones into %s", loaded, tables.ZONES.name)


class TripsView(luigi.Task):
    """The ``trips`` view: yellow and green with a ``service`` column and the canonical columns they share.

    Done when the view has exactly those columns; missing yellow or green tables are created empty.
    """

    resources = {"warehouse": 1}  # noqa: RUF012 - Luigi reads this class attribute

    def output(self) -> TripsViewTarget:
        return TripsViewTarget(config.configured_warehouse(), tables.trips_columns())

    def run(self) -> None:
        target = self.output()
        target.warehouse.create_trips_view(target.columns)
        log.info(
            "%s: view over %s with %s columns",
            tables.TRIPS_VIEW,
            "+".join(tables.VIEW_SERVICES),
            len(target.columns) + 1,
        )
