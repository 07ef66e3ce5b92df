"""What ``taxi-luigi status`` reports: how far each month of each service has come.

Every flag is the answer of the step's own target (the same files, manifests and load_log
rows Luigi asks), so a missing or stale step is one the next run will do. The lake and the
warehouse are asked once per service, never once per month.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass

from taxi_luigi import config, lake, layout, months, services, source
from taxi_luigi.layout import STEPS
from taxi_luigi.warehouse import Warehouse

DONE, MISSING, STALE = "done", "missing", "stale"


@dataclass(frozen=True)
class MonthStatus:
    """One service's month: each step done or missing (load also stale), and its counts."""

    service: str
    month: dt.date
    download: str
    clean: str
    publish: str
    #: stale: loaded, but not from the manifest now in the lake (the next run loads it again).
    load: str
    #: From the latest load, else the manifest, else the clean quality report (None: not cleaned).
    rows: int | None
    quarantined: int | None
    loaded_at: dt.datetime | None  # UTC

    def to_dict(self) -> dict:
        """The JSON object of ``status --json``: stable keys, month as YYYY-MM, loaded_at as ISO 8601."""
        return {
            "service": self.service,
            "month": f"{self.month:%Y-%m}",
            **{step: getattr(self, step) for step in STEPS},
            "rows": self.rows,
            "quarantined": self.quarantined,
            "loaded_at": None if self.loaded_at is None else self.loaded_at.isoformat(),
        }


def status(names: list[str], year: int | None, today: dt.date) -> list[MonthStatus]:
    """The months of ``names`` (all of ``year`` up to last month, else every month with any trace)."""
    chosen = [services.service(name) for name in dict.fromkeys(names)]  # every name checked before any I/O
    the_lake = config.configured_lake()
    warehouse = config.configured_warehouse()
    return [row for svc in chosen for row in service_status(svc, year, the_lake, warehouse, today)]


def service_status(
    svc: services.Service, year: int | None, the_lake: lake.Lake, warehouse: Warehouse, today: dt.date
) -> list[MonthStatus]:
    """One service's months: one load_log query, one lake listing, then local files only."""
    loads = {row["month"]: row for row in warehouse.load_log(svc.name)}
    if year is None:
        published = the_lake.published_months(svc.name)
        traces = {*published, *loads, *_local_months(svc.name)}
        wanted = sorted(m for m in traces if _loadable(svc, m))
    else:
        wanted = _months_of_year(svc, year, today)
        published = the_lake.manifest_checksums(svc.name, wanted)
    return [_month_status(svc.name, m, published.get(m), loads.get(m), the_lake) for m in wanted]


def _month_status(
    service: str, month: dt.date, checksum: str | None, loaded: dict | None, the_lake: lake.Lake
) -> MonthStatus:
    files = layout.MonthFiles(config.paths().root(), service, month)
    raw_record = files.raw_record(source.file_format(config.source().url(service, month.year, month.month)))
    cleaned = files.quality_report.exists()
    counts = None
    if loaded is not None:
        counts = loaded["rows"], loaded["quarantined"]
    elif checksum is not None and (manifest := the_lake.manifest(service, month)) is not None:
        counts = manifest["rows"], manifest["quarantined"]
    elif cleaned:
        report = json.loads(files.quality_report.read_text())
        counts = report["rows_clean"], report["rows_quarantined"]
    rows, quarantined = counts or (None, None)
    return MonthStatus(
        service=service,
        month=month,
        download=DONE if raw_record.exists() else MISSING,
        clean=DONE if cleaned else MISSING,
        publish=MISSING if checksum is None else DONE,
        # Load's own target, answered from the bulk queries: the latest load carries the manifest's checksum.
        load=MISSING if loaded is None else DONE if loaded["checksum"] == checksum else STALE,
        rows=rows,
        quarantined=quarantined,
        loaded_at=None if loaded is None else _utc(loaded["loaded_at"]),
    )


def _months_of_year(svc: services.Service, year: int, today: dt.date) -> list[dt.date]:
    """The months of ``year`` a TaxiYear would load: the service has them, this version maps them, they are over."""
    found = []
    for number in range(1, 13):
        with contextlib.suppress(ValueError):  # months.of_year refuses the month, with the reason
            found += months.of_year(svc, year, (number,), today)
    return found


def _local_months(service: str) -> set[dt.date]:
    """Months with a raw or clean file under ``[paths] data_dir`` (laid out as layout.MonthFiles.work_dir)."""
    root = config.paths().root()
    files = (p for step in ("raw", "clean") for p in (root / step / service).glob(f"*/{service}_tripdata_*"))
    return {month for p in files if (month := lake.month_of_file(service, p.name)) is not None}


def _loadable(svc: services.Service, month: dt.date) -> bool:
    """Whether this version has tasks for the month (a stray file may name one it has not)."""
    try:
        services.check_month(svc, month)
    except ValueError:
        return False
    return True


def _utc(moment: dt.datetime) -> dt.datetime:
    """DuckDB's load_log holds naive UTC times; PostgreSQL and BigQuery answer aware ones."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
