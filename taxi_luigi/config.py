"""luigi.Config sections: luigi.cfg, LUIGI_CONFIG_PATH overrides and --section-key flags all reach these.

Class names are the section names, as in Luigi's own ``core`` and ``worker`` sections. The lake and the
warehouse are built here from their sections (``configured_lake``, ``configured_warehouse``), so the
backends take plain arguments and only this module reads their settings.
"""

from __future__ import annotations

from pathlib import Path

import luigi

from taxi_luigi.lake import GCSSettings, Lake, lake_for
from taxi_luigi.parameters import OptionalMonthParameter
from taxi_luigi.warehouse import URL_FORMS, Warehouse, WarehouseSettings, warehouse_for

PRESETS = {
    "tlc": "https://d37ci6vzurychx.cloudfront.net/trip-data/{service}_tripdata_{year}-{month:02d}.parquet",
    "dtc": (
        "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/"
        "{service}/{service}_tripdata_{year}-{month:02d}.csv.gz"
    ),
}
#: The zone lookup (LocationID, Borough, Zone, service_zone) of each preset.
ZONE_PRESETS = {
    "tlc": "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv",
    "dtc": "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/misc/taxi_zone_lookup.csv",
}


class source(luigi.Config):
    """Where a month's file comes from."""

    preset = luigi.ChoiceParameter(
        choices=sorted(PRESETS),
        default="tlc",
        description="tlc: the TLC's parquet; dtc: DataTalksClub csv.gz",
    )
    url_template = luigi.Parameter(
        default="",
        description="Format string with {service}, {year}, {month}; http(s)://, file:// or a path. "
        "Empty: the preset's template.",
    )
    zones_url = luigi.Parameter(
        default="", description="taxi_zone_lookup.csv: http(s)://, file:// or a path. Empty: the preset's."
    )
    retries = luigi.IntParameter(
        default=4,
        description="Retries after a 5xx, a dropped connection or a timeout; a host that does not resolve, refuses "
        "or has no route is not retried",
    )
    backoff_seconds = luigi.FloatParameter(default=2.0, description="First retry delay; doubles each time")
    timeout_seconds = luigi.FloatParameter(default=60.0, description="Socket timeout per read")

    def template(self) -> str:
        return self.url_template or PRESETS[self.preset]

    def url(self, service: str, year: int, month: int) -> str:
        return self.template().format(service=service, year=year, month=month)

    def zones(self) -> str:
        return self.zones_url or ZONE_PRESETS[self.preset]


class paths(luigi.Config):
    """Local working files: raw downloads, clean staging, quality reports."""

    data_dir = luigi.Parameter(default="data")

    def root(self) -> Path:
        return Path(self.data_dir)


class locks(luigi.Config):
    """Months' locks (data_dir/locks): a step waits for another process running the same month."""

    wait_seconds = luigi.FloatParameter(
        default=3600.0, description="How long a step waits for another process to finish a step of the same month"
    )


class lake(luigi.Config):
    root = luigi.Parameter(default="data/lake", description="gs://bucket/prefix, or a local directory")


class gcp(luigi.Config):
    """One project, and one location: the BigQuery dataset's and every job's. A GCS lake's bucket need not be
    there, only where BigQuery loads from into it (taxi_luigi.gcp_locations): a US dataset, from anywhere."""

    project = luigi.Parameter(default="", description="Empty: the project of the Application Default Credentials")
    location = luigi.Parameter(
        default="US", description="The BigQuery dataset's and every job's location, e.g. US, EU, europe-west1"
    )


class bigquery(luigi.Config):
    """The BigQuery client: credentials are Application Default Credentials, never parameters."""

    api_endpoint = luigi.Parameter(default="", description="Empty: Google's. Set: an emulator, used anonymously")
    timeout_seconds = luigi.FloatParameter(default=600.0, description="How long to wait for one job")


class gcs(luigi.Config):
    """The Cloud Storage client: credentials are Application Default Credentials, never parameters."""

    api_endpoint = luigi.Parameter(default="", description="Empty: Google's. Set: an emulator, used anonymously")
    chunk_mb = luigi.IntParameter(default=16, description="Resumable upload chunk, MB; each chunk has its own timeout")
    timeout_seconds = luigi.FloatParameter(default=120.0, description="Timeout of one request (one chunk)")
    retry_seconds = luigi.FloatParameter(default=600.0, description="How long to retry transient errors")


class warehouse(luigi.Config):
    url = luigi.Parameter(default="duckdb:///data/warehouse.duckdb", description=URL_FORMS)
    lock_wait_seconds = luigi.FloatParameter(
        default=120.0, description="How long to wait for a DuckDB file another process is writing"
    )
    memory_limit = luigi.Parameter(default="300MB", description="DuckDB memory limit while loading a month")


class clean(luigi.Config):
    memory_limit = luigi.Parameter(default="400MB", description="DuckDB memory limit while cleaning a month")
    threads = luigi.IntParameter(default=0, description="DuckDB threads; 0 = one per core")


class zones(luigi.Config):
    """Zone shapes for the 2009-2010 trips, which have coordinates and no zone ids (the ``zones`` extra)."""

    shapes = luigi.Parameter(
        default="",
        description="taxi_zones.zip (the TLC's shapefile) or any file pyogrio reads with a LocationID field: "
        "a path, file:// or http(s):// URL. Empty: the 2009-2010 zone ids stay null",
    )


class cron(luigi.Config):
    """What ``scripts/cron-run`` loads: each service's months from ``start`` through its newest file."""

    services = luigi.Parameter(default="yellow,green,fhv,fhvhv", description="Comma-separated services")
    start = OptionalMonthParameter(description="YYYY-MM; default: twelve months before this one")
    lock_file = luigi.Parameter(default="", description="Empty: cron-run.lock in [paths] data_dir")


def configured_lake() -> Lake:
    """The lake ``[lake] root`` names, with the GCS settings of ``[gcp]`` and ``[gcs]``."""
    where, settings = gcp(), gcs()
    return lake_for(
        lake().root,
        GCSSettings(
            project=where.project,
            location=where.location,
            api_endpoint=settings.api_endpoint,
            chunk_mb=settings.chunk_mb,
            timeout_seconds=settings.timeout_seconds,
            retry_seconds=settings.retry_seconds,
            loads_into_bigquery=warehouse().url.startswith("bigquery://"),
            cache_dir=paths().root() / "lake-cache",
        ),
    )


def configured_warehouse(url: str | None = None) -> Warehouse:
    """The warehouse ``[warehouse] url`` (or ``url``) names, with the settings of its backend."""
    cfg, bq = warehouse(), bigquery()
    return warehouse_for(
        url or cfg.url,
        WarehouseSettings(
            lock_wait_seconds=cfg.lock_wait_seconds,
            memory_limit=cfg.memory_limit,
            location=gcp().location,
            bigquery_endpoint=bq.api_endpoint,
            bigquery_timeout_seconds=bq.timeout_seconds,
        ),
    )


class report(luigi.Config):
    """The quality site: ``taxi-luigi report`` and the QualitySite task write it; the wrappers refresh it."""

    refresh = luigi.BoolParameter(
        default=True,
        description="The year wrappers, TaxiHistory and scripts/cron-run rebuild the site after loading (false: "
        "only `taxi-luigi report` or `luigi --module taxi_luigi QualitySite` do)",
    )
    out_dir = luigi.Parameter(default="", description="Where the site goes; empty: report/ in [paths] data_dir")

    def root(self) -> Path:
        return Path(self.out_dir) if self.out_dir else paths().root() / "report"
