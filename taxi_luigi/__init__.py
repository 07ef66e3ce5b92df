"""taxi-luigi: NYC TLC trip data into a lake and a warehouse, one idempotent month at a time.

``luigi --module taxi_luigi YellowYear --year 2021`` imports this package, which
registers every task.
"""

from taxi_luigi.tasks import (
    Clean,
    Download,
    FhvhvYear,
    FhvYear,
    GreenYear,
    Load,
    LoadZones,
    Publish,
    QualitySite,
    TaxiHistory,
    TaxiLatest,
    TaxiYear,
    TripsView,
    YellowYear,
    ZoneLookup,
)

__all__ = [
    "Clean",
    "Download",
    "FhvYear",
    "FhvhvYear",
    "GreenYear",
    "Load",
    "LoadZones",
    "Publish",
    "QualitySite",
    "TaxiHistory",
    "TaxiLatest",
    "TaxiYear",
    "TripsView",
    "YellowYear",
    "ZoneLookup",
]
