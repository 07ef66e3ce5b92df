"""The warehouse: one small interface, one module per backend, chosen by URL in ``warehouse_for``."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import luigi

from taxi_luigi.lake import Lake
from taxi_luigi.progress import Say
from taxi_luigi.services import Service

LOAD_LOG = "load_log"
#: load_log's columns in order: what ``load_history`` selects, answered with source_month as ``month``.
LOAD_LOG_COLUMNS = ("service", "source_month", "checksum", "rows", "quarantined", "lake_object", "loaded_at")

#: What a name from configuration may look like, before it is quoted into SQL anyway.
IDENTIFIERS = {
    "PostgreSQL schema": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}"),
    "BigQuery project": re.compile(r"(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]"),
    "BigQuery dataset": re.compile(r"[A-Za-z0-9_]{1,1024}"),
}


def checked_identifier(kind: str, value: str) -> str:
    """``value`` if it is a plain ``kind`` name: configuration never gets to shape a statement."""
    if not IDENTIFIERS[kind].fullmatch(value):
        raise ValueError(
            f"{kind} {value!r} in [warehouse] url is not a plain name (letters, digits and underscores"
            f"{', hyphens' if kind == 'BigQuery project' else ''}); fix the url."
        )
    return value


_HISTORY_KEYS = tuple("month" if name == "source_month" else name for name in LOAD_LOG_COLUMNS)


def history_rows(rows: Iterable[Sequence]) -> list[dict]:
    """``load_history``'s dicts from rows of ``LOAD_LOG_COLUMNS``, whatever the backend's row type."""
    return [dict(zip(_HISTORY_KEYS, row, strict=True)) for row in rows]


class WarehouseError(Exception):
    """A load failed; the month's previous contents and the load log are unchanged."""


class Warehouse(ABC):
    """Month partitions of ``{service}_tripdata`` tables, replaced atomically with their load_log row."""

    @abstractmethod
    def replace_month(
        self, svc: Service, month: dt.date, lake: Lake, manifest: dict, label: str, progress: Say | None = None
    ) -> int:
        """Replace the month's rows and quarantine from the lake objects ``manifest`` vouches for, and log
        the load, all or nothing; return rows loaded."""

    @abstractmethod
    def loaded_checksums(self, service: str) -> dict[dt.date, str]:
        """The manifest checksum of the latest load of each month of a service."""

    @abstractmethod
    def load_log(self, service: str | None = None) -> list[dict]:
        """The latest load of every month, oldest month first."""

    @abstractmethod
    def load_history(self, service: str | None = None) -> list[dict]:
        """Every load_log row (service, month, checksum, rows, quarantined, lake_object, loaded_at), by service,
        month and load time: a month loaded with several checksums is one the source re-issued."""

    @abstractmethod
    def forget_month(self, service: str, month: dt.date) -> int:
        """Delete the month's load_log rows, in one statement; return how many there were.

        Without a load_log row the month's Load is no longer complete, so the next run loads it
        again. The month's rows stay in its tables until then, when the load replaces them
        atomically: queries never see the month vanish, only the old rows turn into the new.
        """

    @abstractmethod
    def replace_zones(self, rows: list[tuple], lookup: dict) -> int:
        """Replace the whole ``taxi_zones`` table with ``rows`` and append a ``zones_log`` row (the lookup's
        url, bytes, sha256, rows), in one transaction; return the rows loaded."""

    @abstractmethod
    def zones_checksum(self) -> str | None:
        """The sha256 of the lookup file the latest zones load came from (None: never loaded)."""

    @abstractmethod
    def create_trips_view(self, columns: list[str]) -> None:
        """(Re)create the ``trips`` view: ``service`` then ``columns`` of yellow UNION ALL green, creating
        either table (empty) if it does not exist yet, so the view always works."""

    @abstractmethod
    def trips_view_columns(self) -> list[str] | None:
        """The ``trips`` view's columns in order (None: there is no view)."""


class ZonesTarget(luigi.Target):
    """Complete when the latest zones load came from the file with this sha256."""

    def __init__(self, warehouse: Warehouse, checksum: str | None) -> None:
        self.warehouse, self.checksum = warehouse, checksum

    def exists(self) -> bool:
        return self.checksum is not None and self.warehouse.zones_checksum() == self.checksum


class TripsViewTarget(luigi.Target):
    """Complete when the ``trips`` view has exactly these columns (``service`` first)."""

    def __init__(self, warehouse: Warehouse, columns: list[str]) -> None:
        self.warehouse, self.columns = warehouse, columns

    def exists(self) -> bool:
        return self.warehouse.trips_view_columns() == ["service", *self.columns]


def warehouse_for(url: str) -> Warehouse:
    """The backend for a URL, with its settings from the config files.

    ``duckdb:///relative/path``, ``duckdb:////absolute/path``, ``bigquery://project/dataset`` or
    ``postgresql://user@host:port/db[?schema=name]``.
    """
    from taxi_luigi import config

    if url.startswith("duckdb:///"):
        from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

        cfg = config.warehouse()
        return DuckDBWarehouse(Path(url.removeprefix("duckdb:///")), cfg.lock_wait_seconds, cfg.memory_limit)
    if url.startswith("bigquery://"):
        from taxi_luigi.warehouse.bigquery import BigQueryWarehouse

        project, _, dataset = url.removeprefix("bigquery://").partition("/")
        if not project or not dataset or "/" in dataset:
            raise ValueError(f"warehouse url {url!r}: use bigquery://project/dataset")
        settings = config.bigquery()
        return BigQueryWarehouse(
            checked_identifier("BigQuery project", project),
            checked_identifier("BigQuery dataset", dataset),
            config.gcp().location,
            settings.api_endpoint,
            settings.timeout_seconds,
        )
    if url.startswith(("postgresql://", "postgresql+psycopg2://")):
        from taxi_luigi.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(
        f"warehouse url scheme {scheme!r} is not supported; use duckdb:///path or bigquery://project/dataset"
    )


class LoadedTarget(luigi.Target):
    """Complete when the warehouse's latest load of the month carries this manifest checksum.

    A re-cleaned month has a new checksum, so it is loaded again; a loaded one never twice.
    """

    def __init__(self, warehouse: Warehouse, service: str, month: dt.date, checksum: str | None) -> None:
        self.warehouse, self.service, self.month, self.checksum = warehouse, service, month, checksum

    def exists(self) -> bool:
        if self.checksum is None:
            return False
        return self.warehouse.loaded_checksums(self.service).get(self.month) == self.checksum
