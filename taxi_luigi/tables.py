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


def _col(name: str, type_: str, doc: str, not_null: bool = True) -> Column:
    return Column(name, type_, (), doc, not_null=not_null)


LOAD_LOG = Table(
    "load_log",
    (
        _col("service", "string", "yellow, green, fhv or fhvhv"),
        _col("source_month", "date", "The month loaded"),
        _col("checksum", "string", "The manifest's checksum: a load of other content has another"),
        _col("rows", "int64", "Rows loaded"),
        _col("quarantined", "int64", "Rows quarantined"),
        _col("lake_object", "string", "The lake key of the month's data"),
        _col("loaded_at", "instant", "When the load committed"),
    ),
)
ZONES = Table(
    "taxi_zones",
    (
        _col("location_id", "int32", "The TLC's LocationID"),
        _col("borough", "string", "", not_null=False),
        _col("zone", "string", "", not_null=False),
        _col("service_zone", "string", "", not_null=False),
    ),
    key="location_id",
)
ZONES_LOG = Table(
    "zones_log",
    (
        _col("url", "string", "Where the lookup was downloaded from"),
        _col("bytes", "int64", "Its size"),
        _col("sha256", "string", "Its checksum: a re-issued lookup has another"),
        _col("rows", "int64", "Zones loaded"),
        _col("loaded_at", "instant", "When the load committed"),
    ),
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
