"""The Luigi Targets of the steps that live outside the local disk: a month's manifest in the lake, what the
warehouse's logs say was loaded, and whether the quality site shows it. Each asks its backend one question; the
backends know no Luigi."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi

from taxi_luigi import report
from taxi_luigi.lake import Lake
from taxi_luigi.warehouse import Warehouse


class ManifestTarget(luigi.Target):
    """Complete when the month's manifest is in the lake."""

    def __init__(self, lake: Lake, service: str, month: dt.date) -> None:
        self.lake, self.service, self.month = lake, service, month
        self.key = lake.key(service, month, "manifest")

    def exists(self) -> bool:
        return self.lake.exists(self.key)

    def __str__(self) -> str:
        return self.lake.uri(self.key)


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


class SiteTarget(luigi.Target):
    """Complete when the quality site in ``out`` was built from the warehouse's load_log as it is now."""

    def __init__(self, warehouse: Warehouse, out: Path) -> None:
        self.warehouse, self.out = warehouse, out

    def exists(self) -> bool:
        return report.is_current(self.warehouse, self.out)
