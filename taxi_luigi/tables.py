"""The warehouse's own tables and the ``trips`` view, declared once as data that every backend renders.

Like the trip tables (services.py), a table here is Columns with logical types and a NOT NULL flag:
DuckDB, PostgreSQL and BigQuery each turn them into their own DDL, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taxi_luigi import services
from taxi_luigi.services import Column


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str = ""  # the primary key's column, if any


def _columns(**types: str) -> tuple[Column, ...]:
    """Columns by name and logical type, NOT NULL unless the type ends in ``?``."""
    return tuple(Column(name, type_.rstrip("?"), (), not_null=not type_.endswith("?")) for name, type_ in types.items())


#: One row per load of a month: a month loaded again has several, the latest counts.
LOAD_LOG = Table(
    "load_log",
    _columns(
        service="string",
        source_month="date",
        checksum="string",  # the manifest's: a load of other content has another
        rows="int64",
        quarantined="int64",
        lake_object="string",  # the lake key of the month's data
        loaded_at="instant",
    ),
)
ZONES = Table(
    "taxi_zones",
    _columns(location_id="int32", borough="string?", zone="string?", service_zone="string?"),
    key="location_id",
)
#: One row per load of the lookup, with the file's sha256: a re-issued lookup has another.
ZONES_LOG = Table(
    "zones_log", _columns(url="string", bytes="int64", sha256="string", rows="int64", loaded_at="instant")
)

#: The view over yellow and green, and the services it unites.
TRIPS_VIEW = "trips"
VIEW_SERVICES = ("yellow", "green")


def trips_columns() -> list[str]:
    """The canonical columns yellow and green share, in yellow's order: the ``trips`` view's, after ``service``.

    Computed, not listed: a column added to one service only stays out, one added to both comes in.
    """
    tables = [services.service(name) for name in VIEW_SERVICES]
    shared = set.intersection(*({c.name for c in svc.all_columns} for svc in tables))
    return [c.name for c in tables[0].all_columns if c.name in shared]


def trips_view_sql(table_name: Callable[[str], str], columns: list[str], quote: Callable[[str], str]) -> str:
    """SELECT ... UNION ALL ... over the services; ``table_name`` gives a table's full quoted name."""
    cols = ", ".join(quote(c) for c in columns)
    return "\nUNION ALL\n".join(
        f"SELECT '{name}' AS service, {cols} FROM {table_name(services.service(name).table)}" for name in VIEW_SERVICES
    )
