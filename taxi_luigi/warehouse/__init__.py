"""The warehouse: one small interface, one module per backend, chosen by URL in ``warehouse_for``."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from taxi_luigi.lake import Lake
from taxi_luigi.progress import Say
from taxi_luigi.services import Service
from taxi_luigi.tables import LOAD_LOG

#: load_log's columns in order, as ``load_history`` selects them (and answers them, source_month as ``month``).
HISTORY_COLUMNS = ", ".join(c.name for c in LOAD_LOG.columns)

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


_HISTORY_KEYS = tuple("month" if c.name == "source_month" else c.name for c in LOAD_LOG.columns)


def history_rows(rows: Iterable[Sequence]) -> list[dict]:
    """``load_history``'s dicts from rows of ``HISTORY_COLUMNS``, whatever the backend's row type."""
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


@dataclass(frozen=True)
class WarehouseSettings:
    """What the backends need besides their URL: plain values, handed over from ``[warehouse]``, ``[gcp]``
    and ``[bigquery]``."""

    lock_wait_seconds: float = 120.0  # DuckDB: how long to wait for another process writing the file
    memory_limit: str = "300MB"  # DuckDB, while loading a month
    location: str = "US"  # BigQuery: the dataset's and every job's location
    bigquery_endpoint: str = ""  # set: an emulator, used anonymously
    bigquery_timeout_seconds: float = 600.0


URL_FORMS = "duckdb:///path, postgresql://user@host:port/db[?schema=name] or bigquery://project/dataset"


def warehouse_for(url: str, settings: WarehouseSettings | None = None) -> Warehouse:
    """The backend for a URL: ``duckdb:///relative/path``, ``duckdb:////absolute/path``,
    ``postgresql://user@host:port/db[?schema=name]`` or ``bigquery://project/dataset``."""
    settings = settings or WarehouseSettings()
    if url.startswith("duckdb:///"):
        from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(Path(url.removeprefix("duckdb:///")), settings.lock_wait_seconds, settings.memory_limit)
    if url.startswith("bigquery://"):
        from taxi_luigi.warehouse.bigquery import BigQueryWarehouse

        project, _, dataset = url.removeprefix("bigquery://").partition("/")
        if not project or not dataset or "/" in dataset:
            raise ValueError(f"warehouse url {url!r}: use bigquery://project/dataset")
        return BigQueryWarehouse(
            checked_identifier("BigQuery project", project),
            checked_identifier("BigQuery dataset", dataset),
            settings.location,
            settings.bigquery_endpoint,
            settings.bigquery_timeout_seconds,
        )
    if url.startswith(("postgresql://", "postgresql+psycopg2://")):
        from taxi_luigi.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(f"warehouse url scheme {scheme!r} is not supported; use {URL_FORMS}")
