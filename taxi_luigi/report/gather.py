"""What the quality site shows, gathered from a lake and a warehouse passed in (no Luigi, no config).

The warehouse's load_log says what was loaded, when and from which manifest; the lake's
manifests say what is published now; its quality reports hold the per-month detail (rules,
nulls, pickup range, unmapped columns). A month's state is Load's own target, as
``taxi-luigi status`` answers it: done when its latest load carries the manifest's checksum,
stale when it carries another, missing when it was never loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from taxi_luigi import months, services
from taxi_luigi.lake import Lake
from taxi_luigi.warehouse import Warehouse

DONE, STALE, MISSING = "done", "stale", "missing"


@dataclass(frozen=True)
class Load:
    """One load_log row."""

    checksum: str
    rows: int
    quarantined: int
    lake_object: str
    loaded_at: dt.datetime  # UTC


@dataclass(frozen=True)
class Month:
    """One month of a service: its loads (oldest first), its manifest's checksum and its quality report."""

    month: dt.date
    loads: tuple[Load, ...]
    published: str | None
    #: The lake's quality report when it is of the loaded manifest (a done month); else None, and ``problem``
    #: says why: every number shown of a month describes what the warehouse holds.
    quality: dict | None
    problem: str | None = None

    @property
    def latest(self) -> Load | None:
        return self.loads[-1] if self.loads else None

    @property
    def state(self) -> str:
        if self.latest is None:
            return MISSING
        return DONE if self.latest.checksum == self.published else STALE

    @property
    def reissued(self) -> bool:
        """Loaded with more than one checksum: the source re-issued the file (or it was re-cleaned)."""
        return len({load.checksum for load in self.loads}) > 1


@dataclass(frozen=True)
class ServiceReport:
    """A service's months, every one from its first trace (a load or a manifest) to its last: a gap is missing."""

    service: services.Service
    months: tuple[Month, ...]

    @property
    def loaded(self) -> list[Month]:
        return [m for m in self.months if m.latest is not None]

    @property
    def latest_loads(self) -> list[Load]:
        """The latest load of each loaded month: what the warehouse's tables hold now."""
        return [m.latest for m in self.months if m.latest is not None]

    @property
    def rows(self) -> int:
        return sum(load.rows for load in self.latest_loads)

    @property
    def quarantined(self) -> int:
        return sum(load.quarantined for load in self.latest_loads)

    @property
    def quarantined_share(self) -> float:
        """Of the rows in, the share set aside: quarantined / (loaded + quarantined)."""
        total = self.rows + self.quarantined
        return self.quarantined / total if total else 0.0

    @property
    def last_load(self) -> dt.datetime | None:
        return max((load.loaded_at for load in self.latest_loads), default=None)

    def in_state(self, state: str) -> list[dt.date]:
        return [m.month for m in self.months if m.state == state]


@dataclass(frozen=True)
class Inputs:
    """What a site is built from: every load_log row and every published checksum of its services."""

    #: load_history's rows of each service shown, oldest first.
    history: dict[str, list[dict]]
    #: Each shown service's published months and their manifest checksums.
    published: dict[str, dict[dt.date, str]]

    def fingerprint(self) -> str:
        return fingerprint([row for rows in self.history.values() for row in rows])


def fingerprint(history: list[dict]) -> str:
    """Of load_log rows: it changes exactly when a month is loaded or forgotten, so a site is current while its
    fingerprint is the warehouse's. The lake is left out: listing it would cost every finished run a walk of the
    whole lake, and a publication that matters is followed by its load."""
    rows = sorted([r["service"], f"{r['month']:%Y-%m}", r["checksum"], f"{utc(r['loaded_at'])}"] for r in history)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def read_inputs(lake: Lake, warehouse: Warehouse, names: list[str] | None = None) -> Inputs:
    """One load_log query and one lake listing per service; ``names`` (default: every service with a load or a
    manifest) must each have one, else ValueError names what the warehouse and the lake do have."""
    chosen = [services.service(name).name for name in dict.fromkeys(names or services.SERVICES)]
    every_load = warehouse.load_history()
    history: dict[str, list[dict]] = {name: [r for r in every_load if r["service"] == name] for name in chosen}
    published = {name: lake.published_months(name) for name in chosen}
    seen = [name for name in chosen if history[name] or published[name]]
    if names and (unseen := [name for name in chosen if name not in seen]):
        loaded = sorted({row["service"] for row in every_load})
        raise ValueError(
            f"{', '.join(unseen)}: the warehouse {warehouse!r} has no load of it and the lake {lake.root} no "
            f"published month (loaded: {', '.join(loaded) or 'nothing yet'}); load a month of it first"
        )
    return Inputs({name: history[name] for name in seen}, {name: published[name] for name in seen})


def gather(inputs: Inputs, lake: Lake) -> list[ServiceReport]:
    """Each service's months, with the quality report of every month that was loaded or published."""
    return [
        _service(services.service(name), rows, inputs.published[name], lake) for name, rows in inputs.history.items()
    ]


def _service(svc: services.Service, rows: list[dict], published: dict[dt.date, str], lake: Lake) -> ServiceReport:
    loads: dict[dt.date, list[Load]] = {}
    for r in rows:
        loads.setdefault(r["month"], []).append(
            Load(r["checksum"], r["rows"], r["quarantined"], r["lake_object"], utc(r["loaded_at"]))
        )
    traced = {*loads, *published}
    shown = []
    for month in months.through(min(traced), max(traced)):
        entry = Month(month, tuple(loads.get(month, ())), published.get(month), None)
        quality, problem = _quality(lake, svc.name, entry)
        shown.append(dataclasses.replace(entry, quality=quality, problem=problem))
    return ServiceReport(svc, tuple(shown))


def _quality(lake: Lake, service: str, month: Month) -> tuple[dict | None, str | None]:
    """The quality report of what the warehouse holds, or why there is none to show: a site says so, it does
    not stop. Only a done month's report is of its load; a stale month's is of the manifest published since."""
    if month.state == STALE:
        later = "the lake's quality report is of a manifest published since" if month.published else "no manifest"
        return None, f"stale: {later}; the next run loads the month again"
    if month.state == MISSING:
        return None, "published, not loaded yet" if month.published else "neither published nor loaded"
    key = lake.key(service, month.month, "report")
    if not lake.exists(key):
        return None, f"quality report missing: no {lake.uri(key)}"
    try:
        return json.loads(lake.read_text(key)), None
    except ValueError as e:
        return None, f"quality report unreadable: {lake.uri(key)}: {e}"


def utc(moment: dt.datetime) -> dt.datetime:
    """DuckDB's load_log holds naive UTC times; PostgreSQL and BigQuery answer aware ones."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
