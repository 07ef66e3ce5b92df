"""The four TLC services as data: canonical columns, their types and the source spellings.

Everything that depends on a service's shape (the cleaner's SQL, the warehouse DDL,
docs/schema.md) reads these tables, so adding a source spelling or a column is a
one-line change here and never a new code path elsewhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

#: Bumped whenever a canonical schema changes; recorded in every manifest.
SCHEMA_VERSION = 1

#: Logical type -> (arrow type, DuckDB type). One place decides what each type is.
TYPES: dict[str, tuple[pa.DataType, str]] = {
    "int32": (pa.int32(), "INTEGER"),
    "int64": (pa.int64(), "BIGINT"),
    "double": (pa.float64(), "DOUBLE"),
    "string": (pa.string(), "VARCHAR"),
    "timestamp": (pa.timestamp("us"), "TIMESTAMP"),
    "date": (pa.date32(), "DATE"),
}

#: Quarantine reasons, in the order the rules are applied (the first rule broken wins).
REASONS = ("passenger_count_zero", "missing_pickup", "dropoff_before_pickup", "pickup_outside_month")

#: Source columns that carry no data (a pandas index written by accident); dropped and reported.
IGNORED_SOURCE_COLUMNS = frozenset({"__index_level_0__"})


@dataclass(frozen=True)
class Column:
    """A canonical column and the source spellings that map onto it (matched case-insensitively)."""

    name: str
    type: str
    sources: tuple[str, ...] = ()
    doc: str = ""
    #: "upper" for base numbers, which arrive in mixed case with stray spaces.
    normalize: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type][0]

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type][1]


def _col(name: str, type_: str, *sources: str, doc: str = "", normalize: str = "") -> Column:
    return Column(name, type_, sources or (name,), doc, normalize)


#: Columns every service ends with: unmapped source columns as JSON, and the file's month.
OTHER_COLUMNS = Column(
    "other_columns",
    "string",
    (),
    "Source columns this schema does not know yet, as a JSON object (null when there are none). "
    "A new TLC column is kept here until it gets a canonical column.",
)
SOURCE_MONTH = Column("source_month", "date", (), "First day of the month of the source file.")

_MONEY_DOC = "USD"


@dataclass(frozen=True)
class Service:
    """One TLC service: its file name, first month and canonical schema."""

    name: str
    first_month: dt.date
    columns: tuple[Column, ...]
    description: str
    #: Canonical columns a file must have to be this service's file (checked before cleaning).
    required: tuple[str, ...] = ("pickup_datetime", "dropoff_datetime")
    #: The first month whose layout services.py maps (None: every month since first_month).
    mapped_from: dt.date | None = None

    @property
    def first_loadable(self) -> dt.date:
        """The first month this version can load."""
        return self.mapped_from or self.first_month

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Every column of the clean table, in order."""
        return (*self.columns, OTHER_COLUMNS, SOURCE_MONTH)

    @property
    def table(self) -> str:
        return f"{self.name}_tripdata"

    @property
    def quarantine_table(self) -> str:
        return f"{self.name}_tripdata_quarantine"

    @property
    def has_passenger_count(self) -> bool:
        return any(c.name == "passenger_count" for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def arrow_schema(self) -> pa.Schema:
        """The clean parquet schema: identical for every month and both source formats.

        Every field is optional in parquet (nullability must not depend on a month's data);
        the warehouse tables carry the NOT NULL constraints.
        """
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.all_columns])

    def quarantine_schema(self) -> pa.Schema:
        """Quarantined rows keep their source values as text, so nothing unparseable is lost."""
        fields = [pa.field(c.name, pa.string()) for c in (*self.columns, OTHER_COLUMNS)]
        fields += [pa.field("reason", pa.string()), pa.field(SOURCE_MONTH.name, pa.date32())]
        return pa.schema(fields)


_VENDOR = _col("vendor_id", "int32", "VendorID", doc="1 = Creative Mobile (CMT), 2 = VeriFone (VTS), ...")
_FLAG = _col("store_and_fwd_flag", "string", doc="Y/N: trip record held in the vehicle before sending")
_RATE = _col("ratecode_id", "int32", "RatecodeID", "rate_code", doc="1 standard ... 6 group ride")
_PU = _col("pu_location_id", "int32", "PULocationID", doc="TLC taxi zone of the pickup")
_DO = _col("do_location_id", "int32", "DOLocationID", doc="TLC taxi zone of the dropoff")
_PASSENGERS = _col("passenger_count", "int32", doc="Driver-entered; empty is unknown, not zero")
_DISTANCE = _col("trip_distance", "double", doc="Miles")
_PAYMENT = _col("payment_type", "int32", doc="1 credit card, 2 cash, 3 no charge, 4 dispute, ...")
_CBD = _col("cbd_congestion_fee", "double", doc="USD; the Manhattan congestion relief zone toll, from 2025")


def _money(*names: str) -> tuple[Column, ...]:
    return tuple(_col(n, "double", doc=_MONEY_DOC) for n in names)


YELLOW = Service(
    "yellow",
    dt.date(2009, 1, 1),
    (
        _VENDOR,
        _col("pickup_datetime", "timestamp", "tpep_pickup_datetime", "pickup_datetime"),
        _col("dropoff_datetime", "timestamp", "tpep_dropoff_datetime", "dropoff_datetime"),
        _PASSENGERS,
        _DISTANCE,
        _RATE,
        _FLAG,
        _PU,
        _DO,
        _PAYMENT,
        *_money("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount"),
        *_money("improvement_surcharge", "total_amount", "congestion_surcharge"),
        _col("airport_fee", "double", doc="USD; spelled Airport_fee from 2023-02"),
        _CBD,
        _col("pickup_longitude", "double", doc="Only in the 2009-2010 files; null afterwards"),
        _col("pickup_latitude", "double", doc="Only in the 2009-2010 files; null afterwards"),
        _col("dropoff_longitude", "double", doc="Only in the 2009-2010 files; null afterwards"),
        _col("dropoff_latitude", "double", doc="Only in the 2009-2010 files; null afterwards"),
    ),
    "Yellow medallion taxis (tpep_ columns).",
    ("pickup_datetime", "dropoff_datetime", "total_amount"),
    # 2009-2010 carry coordinates and coded strings ("CMT", "CSH") that need their own mapping.
    mapped_from=dt.date(2011, 1, 1),
)

GREEN = Service(
    "green",
    dt.date(2013, 8, 1),
    (
        _VENDOR,
        _col("pickup_datetime", "timestamp", "lpep_pickup_datetime"),
        _col("dropoff_datetime", "timestamp", "lpep_dropoff_datetime"),
        _FLAG,
        _RATE,
        _PU,
        _DO,
        _PASSENGERS,
        _DISTANCE,
        *_money("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount"),
        _col("ehail_fee", "double", doc="USD; a column of no type in many files"),
        *_money("improvement_surcharge", "total_amount"),
        _PAYMENT,
        _col("trip_type", "int32", doc="1 street-hail, 2 dispatch"),
        *_money("congestion_surcharge"),
        _CBD,
    ),
    "Green boro taxis (lpep_ columns).",
    ("pickup_datetime", "dropoff_datetime", "total_amount"),
)

_BASE = _col("dispatching_base_num", "string", doc="TLC base license number", normalize="upper")

FHV = Service(
    "fhv",
    dt.date(2015, 1, 1),
    (
        _BASE,
        _col("pickup_datetime", "timestamp"),
        _col("dropoff_datetime", "timestamp", doc="Spelled dropOff_datetime in the parquet and 2019 csv"),
        _col("pu_location_id", "int32", "PULocationID", doc="Spelled PUlocationID in the parquet and 2019 csv"),
        _col("do_location_id", "int32", "DOLocationID", doc="Spelled DOlocationID in the parquet and 2019 csv"),
        _col("sr_flag", "int32", "SR_Flag", doc="1 = shared ride; a column of no type from 2019-03"),
        _col("affiliated_base_number", "string", "Affiliated_base_number", normalize="upper"),
    ),
    "For-hire vehicles (livery, black car, small bases).",
    ("dispatching_base_num", "pickup_datetime", "dropoff_datetime"),
)

_YN = "Y/N; a single space in the source is read as unknown (null)"

FHVHV = Service(
    "fhvhv",
    dt.date(2019, 2, 1),
    (
        _col("hvfhs_license_num", "string", doc="HV0002 Juno, HV0003 Uber, HV0004 Via, HV0005 Lyft"),
        _BASE,
        _col("originating_base_num", "string", normalize="upper"),
        _col("request_datetime", "timestamp"),
        _col("on_scene_datetime", "timestamp"),
        _col("pickup_datetime", "timestamp"),
        _col("dropoff_datetime", "timestamp"),
        _PU,
        _DO,
        _col("trip_miles", "double"),
        _col("trip_time", "int64", doc="Seconds"),
        *_money("base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge"),
        *_money("airport_fee", "tips", "driver_pay"),
        *(
            _col(n, "string", doc=_YN)
            for n in (
                "shared_request_flag",
                "shared_match_flag",
                "access_a_ride_flag",
                "wav_request_flag",
                "wav_match_flag",
            )
        ),
        _col("sr_flag", "int32", "SR_Flag", doc="Only in the pre-2022 csv layout (1 = shared ride)"),
        _CBD,
    ),
    "High-volume for-hire services (Uber, Lyft, Via, Juno).",
    ("hvfhs_license_num", "dispatching_base_num", "pickup_datetime", "dropoff_datetime"),
)

SERVICES: dict[str, Service] = {s.name: s for s in (YELLOW, GREEN, FHV, FHVHV)}


def service(name: str) -> Service:
    """Look a service up by name, with an error that lists the valid ones."""
    try:
        return SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}") from None


def check_month(svc: Service, month: dt.date) -> None:
    """Refuse a month the service has no file for, or whose layout is not mapped yet."""
    if month < svc.first_month:
        raise ValueError(f"{svc.name} {month:%Y-%m}: the TLC's {svc.name} files start at {svc.first_month:%Y-%m}")
    if svc.mapped_from and month < svc.mapped_from:
        raise ValueError(
            f"{svc.name} {month:%Y-%m}: months before {svc.mapped_from:%Y-%m} use an older layout "
            "(coordinates instead of zone ids, coded strings) that this version does not map yet"
        )


@dataclass(frozen=True)
class ColumnMap:
    """How one source file's columns map onto a service's canonical columns."""

    mapped: dict[str, str]  # canonical name -> source name
    other: tuple[str, ...]  # source columns kept as JSON in other_columns
    ignored: tuple[str, ...]  # source columns that carry no data


def map_columns(svc: Service, source_names: list[str]) -> ColumnMap:
    """Map source names onto canonical columns by name, never by position, ignoring case.

    Raises ValueError when two source columns claim one canonical column (e.g. both
    airport_fee and Airport_fee), since picking one would silently drop the other.
    """
    spelling = {s.lower(): c.name for c in svc.columns for s in c.sources}
    mapped: dict[str, str] = {}
    other, ignored = [], []
    for name in source_names:
        if name in IGNORED_SOURCE_COLUMNS:
            ignored.append(name)
        elif (canonical := spelling.get(name.lower())) is None:
            other.append(name)
        elif canonical in mapped:
            raise ValueError(f"columns {mapped[canonical]!r} and {name!r} both map onto {canonical!r}")
        else:
            mapped[canonical] = name
    return ColumnMap(mapped, tuple(other), tuple(ignored))


def missing_required(svc: Service, source_names: list[str]) -> list[str]:
    """Required canonical columns the file lacks, as their expected source spellings."""
    names = {n.lower() for n in source_names}
    return [
        "/".join(c.sources) for c in map(svc.column, svc.required) if not any(s.lower() in names for s in c.sources)
    ]


def looks_like(source_names: list[str]) -> list[str]:
    """The services whose required columns a file has, most specific first."""
    fits = [s for s in SERVICES.values() if not missing_required(s, source_names)]
    return [s.name for s in sorted(fits, key=lambda s: -len(s.required))]


def schema_markdown() -> str:
    """docs/schema.md's tables, generated so the docs cannot drift from the code."""
    out = []
    for svc in SERVICES.values():
        out += [
            f"## {svc.table}",
            "",
            f"{svc.description} First file: {svc.first_month:%Y-%m}.",
            "",
            "| column | type | source spellings | notes |",
            "|---|---|---|---|",
        ]
        for c in svc.all_columns:
            sources = ", ".join(f"`{s}`" for s in c.sources) or "(derived)"
            out.append(f"| `{c.name}` | {c.duckdb_type} | {sources} | {c.doc} |")
        out.append("")
    return "\n".join(out)
