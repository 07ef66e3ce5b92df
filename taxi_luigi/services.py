"""The four TLC services as data: canonical columns, their types and the source spellings.

Everything that depends on a service's shape (the cleaner's SQL, the warehouse DDL,
docs/schema.md) reads these tables, so adding a source spelling or a column is a
one-line change here and never a new code path elsewhere.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

#: Bumped whenever a canonical schema changes; recorded in every manifest. 2: green's coordinates, and the
#: quarantine's line_number and raw_line.
SCHEMA_VERSION = 2

#: Logical type -> (arrow type, DuckDB type). One place decides what each type is.
TYPES: dict[str, tuple[pa.DataType, str]] = {
    "int32": (pa.int32(), "INTEGER"),
    "int64": (pa.int64(), "BIGINT"),
    "double": (pa.float64(), "DOUBLE"),
    "string": (pa.string(), "VARCHAR"),
    "timestamp": (pa.timestamp("us"), "TIMESTAMP"),  # a wall-clock time, as the TLC's are
    "date": (pa.date32(), "DATE"),
    "instant": (pa.timestamp("us", tz="UTC"), "TIMESTAMP"),  # a moment (load times); DuckDB's hold UTC
}

#: Quarantine reasons, in the order the rules are applied (the first rule broken wins). A malformed row is one
#: the CSV grammar cannot place (an unbalanced quote, fewer fields than the header, extra fields that are not
#: empty): its values cannot be told apart, so it is kept whole, as its raw line.
MALFORMED = "malformed_row"
REASONS = (MALFORMED, "passenger_count_zero", "missing_pickup", "dropoff_before_pickup", "pickup_outside_month")

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
    #: Coded text of older files -> the modern value (matched upper-cased, trimmed, quotes stripped).
    #: A number is read as itself first; a text that is neither a number nor a known code is null.
    codes: tuple[tuple[str, str], ...] = ()
    #: A 0 is "not recorded", not a value (coordinates: 0, 0 is in the Atlantic).
    zero_is_null: bool = False
    #: Several of the spellings may come in one file (fhv 2018 has two base-number columns, one of them
    #: mostly empty): the value is the first filled one, in the order of ``sources``.
    coalesce: bool = False
    #: The warehouse refuses a row without it (NOT NULL / REQUIRED): wrong data cannot load quietly.
    not_null: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type][0]

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type][1]


def _col(
    name: str,
    type_: str,
    *sources: str,
    doc: str = "",
    normalize: str = "",
    codes: Mapping[str, object] | None = None,
    zero_is_null: bool = False,
    coalesce: bool = False,
    not_null: bool = False,
) -> Column:
    coded = tuple((k, str(v)) for k, v in (codes or {}).items())
    return Column(name, type_, sources or (name,), doc, normalize, coded, zero_is_null, coalesce, not_null)


#: Columns every service ends with: unmapped source columns as JSON, and the file's month.
OTHER_COLUMNS = Column(
    "other_columns",
    "string",
    (),
    "Source columns this schema does not know yet, as a JSON object (null when there are none). "
    "A new TLC column is kept here until it gets a canonical column.",
)
SOURCE_MONTH = Column("source_month", "date", (), "First day of the month of the source file.", not_null=True)
REASON = Column(
    "reason", "string", (), "The first quarantine rule the row broke, in the order of REASONS.", not_null=True
)
#: The quarantine's last columns: where a malformed row was, and what it said (null for other reasons).
QUARANTINE_LINE = (
    Column("line_number", "int64", (), "Line of a malformed row in the source file (the header is line 1)."),
    Column("raw_line", "string", (), "A malformed row's whole line, as the source file has it."),
)

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

    @property
    def first_loadable(self) -> dt.date:
        """The first month this version can load: every layout since the first file is mapped."""
        return self.first_month

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

    @property
    def quarantine_columns(self) -> tuple[Column, ...]:
        """Quarantined rows keep their source values as text, so nothing unparseable is lost; a malformed
        row keeps its whole line instead, with its number in the file (the header is line 1)."""
        text = tuple(Column(c.name, "string", c.sources, c.doc) for c in (*self.columns, OTHER_COLUMNS))
        return (*text, REASON, SOURCE_MONTH, *QUARANTINE_LINE)

    def quarantine_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.quarantine_columns])


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


# The 2009-2014 yellow files spell vendors and payment types as text (research tlc-data.md §4,
# TS-2d0d; the TLC's own csv heads in ../shared/real-samples): mixed case, sometimes quoted or padded
# ("NA "); they map onto the modern integer codes.
VENDOR_CODES = {"CMT": 1, "VTS": 2, "DDS": 3}
PAYMENT_CODES = {
    **dict.fromkeys(("CREDIT", "CRE", "CRD"), 1),
    **dict.fromkeys(("CASH", "CAS", "CSH"), 2),
    **dict.fromkeys(("NO CHARGE", "NOC", "NO"), 3),
    **dict.fromkeys(("DISPUTE", "DIS"), 4),
    **dict.fromkeys(("UNKNOWN", "UNK", "NA"), 5),  # the data dictionary's 5 is "Unknown"
}
#: store_and_forward is a double (1.0/0.0) in 2009, and 1/0 or Y/N in 2010.
FLAG_CODES = {"Y": "Y", "N": "N", "1": "Y", "1.0": "Y", "0": "N", "0.0": "N"}


def _coordinate(name: str, *sources: str) -> Column:
    return _col(
        name,
        "double",
        name,
        *sources,
        doc="Degrees; only in the coordinate era (yellow 2009-2016-06 csv, 2009-2010 parquet; green 2013-08 to "
        "2016-06 csv), null afterwards; 0 is not recorded (null)",
        zero_is_null=True,
    )


_USD_OLD = "USD; spelled {} in 2009"

YELLOW = Service(
    "yellow",
    dt.date(2009, 1, 1),
    (
        _col(
            "vendor_id",
            "int32",
            "VendorID",
            "vendor_name",
            "vendor_id",
            doc="1 = Creative Mobile (CMT), 2 = VeriFone (VTS), 3 = Digital Dispatch (DDS, 2009-2010), ...",
            codes=VENDOR_CODES,
        ),
        _col(
            "pickup_datetime",
            "timestamp",
            "tpep_pickup_datetime",
            "pickup_datetime",
            "Trip_Pickup_DateTime",
            not_null=True,
        ),
        _col("dropoff_datetime", "timestamp", "tpep_dropoff_datetime", "dropoff_datetime", "Trip_Dropoff_DateTime"),
        _PASSENGERS,
        _DISTANCE,
        _RATE,
        _col(
            "store_and_fwd_flag",
            "string",
            "store_and_fwd_flag",
            "store_and_forward",
            doc="Y/N: trip record held in the vehicle before sending (1/1.0 -> Y, 0/0.0 -> N in 2009-2010)",
            codes=FLAG_CODES,
        ),
        _PU,
        _DO,
        _col(
            "payment_type",
            "int32",
            doc="1 credit card, 2 cash, 3 no charge, 4 dispute, ...; 2009-2010 text codes "
            "(Credit/CRE/CRD, Cash/CAS/CSH, No Charge/NOC/NO, Dispute/DIS) mapped, any other text null",
            codes=PAYMENT_CODES,
        ),
        _col("fare_amount", "double", "fare_amount", "Fare_Amt", doc=_USD_OLD.format("Fare_Amt")),
        _col("extra", "double", "extra", "surcharge", doc="USD; spelled surcharge in 2009-2010"),
        *_money("mta_tax"),
        _col("tip_amount", "double", "tip_amount", "Tip_Amt", doc=_USD_OLD.format("Tip_Amt")),
        _col("tolls_amount", "double", "tolls_amount", "Tolls_Amt", doc=_USD_OLD.format("Tolls_Amt")),
        *_money("improvement_surcharge"),
        _col("total_amount", "double", "total_amount", "Total_Amt", doc=_USD_OLD.format("Total_Amt")),
        *_money("congestion_surcharge"),
        _col("airport_fee", "double", doc="USD; spelled Airport_fee from 2023-02"),
        _CBD,
        _coordinate("pickup_longitude", "Start_Lon"),
        _coordinate("pickup_latitude", "Start_Lat"),
        _coordinate("dropoff_longitude", "End_Lon"),
        _coordinate("dropoff_latitude", "End_Lat"),
    ),
    "Yellow medallion taxis (tpep_ columns; 2009-2010: coordinates and coded strings).",
    ("pickup_datetime", "dropoff_datetime", "total_amount"),
)

GREEN = Service(
    "green",
    dt.date(2013, 8, 1),
    (
        _VENDOR,
        _col("pickup_datetime", "timestamp", "lpep_pickup_datetime", not_null=True),
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
        _col("trip_type", "int32", doc="1 street-hail, 2 dispatch; `Trip_type ` (trailing space) in 2013-2016"),
        *_money("congestion_surcharge"),
        _CBD,
        *(_coordinate(n) for n in ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")),
    ),
    "Green boro taxis (lpep_ columns; 2013-08 to 2016-06: coordinates instead of zone ids).",
    ("pickup_datetime", "dropoff_datetime", "total_amount"),
)

_BASE = _col("dispatching_base_num", "string", doc="TLC base license number", normalize="upper")
_FHV_BASE = _col(
    "dispatching_base_num",
    "string",
    "Dispatching_base_number",
    "dispatching_base_num",
    doc="TLC base license number; 2018 files carry `Dispatching_base_number` (filled) and `Dispatching_base_num` "
    "(mostly empty): the first filled of the two",
    normalize="upper",
    coalesce=True,
)

FHV = Service(
    "fhv",
    dt.date(2015, 1, 1),
    (
        _FHV_BASE,
        _col(
            "pickup_datetime",
            "timestamp",
            "pickup_datetime",
            "Pickup_date",
            doc="Spelled Pickup_date in 2015-2016",
            not_null=True,
        ),
        _col(
            "dropoff_datetime",
            "timestamp",
            doc="Spelled dropOff_datetime in the parquet and 2019 csv; absent in 2015-2016",
        ),
        _col(
            "pu_location_id",
            "int32",
            "PULocationID",
            "locationID",
            doc="Spelled PUlocationID in the parquet and 2019 csv, locationID (where the trip began) in 2015-2016",
        ),
        _col("do_location_id", "int32", "DOLocationID", doc="Spelled DOlocationID in the parquet and 2019 csv"),
        _col("sr_flag", "int32", "SR_Flag", doc="1 = shared ride; a column of no type from 2019-03"),
        _col("affiliated_base_number", "string", "Affiliated_base_number", normalize="upper"),
    ),
    "For-hire vehicles (livery, black car, small bases).",
    ("dispatching_base_num", "pickup_datetime"),  # the 2015-2016 files have no dropoff
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
        _col("pickup_datetime", "timestamp", not_null=True),
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
    """Refuse a month the service has no file for; every layout since the first file is mapped."""
    if month < svc.first_month:
        raise ValueError(f"{svc.name} {month:%Y-%m}: the TLC's {svc.name} files start at {svc.first_month:%Y-%m}")


@dataclass(frozen=True)
class ColumnMap:
    """How one source file's columns map onto a service's canonical columns."""

    mapped: dict[str, str]  # canonical name -> source name (the first, for a coalescing column)
    other: tuple[str, ...]  # source columns kept as JSON in other_columns
    ignored: tuple[str, ...]  # source columns that carry no data
    coalesced: dict[str, tuple[str, ...]] = field(default_factory=dict)  # canonical -> every spelling present

    def sources(self, canonical: str) -> tuple[str, ...]:
        """The source columns a canonical column takes its value from, first filled first: none, one, or more."""
        if canonical in self.coalesced:
            return self.coalesced[canonical]
        return (self.mapped[canonical],) if canonical in self.mapped else ()


def map_columns(svc: Service, source_names: list[str]) -> ColumnMap:
    """Map source names onto canonical columns by name, never by position, ignoring case.

    Raises ValueError when two source columns claim one canonical column (e.g. both
    airport_fee and Airport_fee), since picking one would silently drop the other; only a
    column declared ``coalesce`` takes the first filled of its spellings.
    """
    spelling = {s.lower(): c for c in svc.columns for s in c.sources}
    found: dict[str, list[str]] = {}
    other, ignored = [], []
    for name in source_names:
        if name in IGNORED_SOURCE_COLUMNS:
            ignored.append(name)
        elif (col := spelling.get(name.lower())) is None:
            other.append(name)
        elif col.name in found and not col.coalesce:
            raise ValueError(f"columns {found[col.name][0]!r} and {name!r} both map onto {col.name!r}")
        else:
            found.setdefault(col.name, []).append(name)
    order = {c.name: [s.lower() for s in c.sources] for c in svc.columns}
    for canonical, names in found.items():
        if len(names) > 1 and len({n.lower() for n in names}) < len(names):
            raise ValueError(f"columns {names[0]!r} and {names[1]!r} both map onto {canonical!r}")
        names.sort(key=lambda n: order[canonical].index(n.lower()))
    coalesced = {canonical: tuple(names) for canonical, names in found.items() if len(names) > 1}
    mapped = {canonical: names[0] for canonical, names in found.items()}
    return ColumnMap(mapped, tuple(other), tuple(ignored), coalesced)


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


@dataclass(frozen=True)
class Era:
    """One layout of a service's TLC parquet files: its months and its columns as the files spell them."""

    service: str
    first: str  # YYYY-MM
    last: str  # YYYY-MM, or "" for "to date"
    columns: str  # "name:arrow_type ..." in file order
    note: str = ""

    @property
    def source_columns(self) -> list[tuple[str, str]]:
        return [(name, type_) for name, _, type_ in (c.partition(":") for c in self.columns.split())]


_Y11 = (
    "VendorID:int64 tpep_pickup_datetime:timestamp[us] tpep_dropoff_datetime:timestamp[us] "
    "passenger_count:double trip_distance:double RatecodeID:double store_and_fwd_flag:string PULocationID:int64 "
    "DOLocationID:int64 payment_type:int64 fare_amount:double extra:double mta_tax:double tip_amount:double "
    "tolls_amount:double improvement_surcharge:double total_amount:double congestion_surcharge:double "
    "airport_fee:double"
)
_Y23 = (
    _Y11.replace("VendorID:int64", "VendorID:int32")
    .replace("passenger_count:double", "passenger_count:int64")
    .replace("RatecodeID:double", "RatecodeID:int64")
    .replace("store_and_fwd_flag:string", "store_and_fwd_flag:large_string")
    .replace("LocationID:int64", "LocationID:int32")
    .replace("airport_fee", "Airport_fee")
)
_G = (
    "VendorID:int64 lpep_pickup_datetime:timestamp[us] lpep_dropoff_datetime:timestamp[us] "
    "store_and_fwd_flag:string RatecodeID:double PULocationID:int64 DOLocationID:int64 passenger_count:double "
    "trip_distance:double fare_amount:double extra:double mta_tax:double tip_amount:double tolls_amount:double "
    "ehail_fee:double improvement_surcharge:double total_amount:double payment_type:double trip_type:double "
    "congestion_surcharge:double"
)
_G23 = (
    _G.replace("VendorID:int64", "VendorID:int32")
    .replace("RatecodeID:double", "RatecodeID:int64")
    .replace("LocationID:int64", "LocationID:int32")
    .replace("store_and_fwd_flag:string", "store_and_fwd_flag:large_string")
    .replace("passenger_count:double", "passenger_count:int64")
    .replace("payment_type:double", "payment_type:int64")
    .replace("trip_type:double", "trip_type:int64")
)
_F = (
    "dispatching_base_num:string pickup_datetime:timestamp[us] dropOff_datetime:timestamp[us] "
    "PUlocationID:double DOlocationID:double SR_Flag:double Affiliated_base_number:string"
)
_HV = (
    "hvfhs_license_num:string dispatching_base_num:string originating_base_num:string "
    "request_datetime:timestamp[us] on_scene_datetime:timestamp[us] pickup_datetime:timestamp[us] "
    "dropoff_datetime:timestamp[us] PULocationID:int64 DOLocationID:int64 trip_miles:double trip_time:int64 "
    "base_passenger_fare:double tolls:double bcf:double sales_tax:double congestion_surcharge:double "
    "airport_fee:double tips:double driver_pay:double shared_request_flag:string shared_match_flag:string "
    "access_a_ride_flag:string wav_request_flag:string wav_match_flag:string"
)
_LARGE = "strings large_string, ids int32"
_NULL_TYPED = "Columns that did not exist yet are of no type (arrow null) in older files: loaded as null."

#: Every layout of the TLC parquet files since each service's first file (research tlc-data.md §1).
ERAS: tuple[Era, ...] = (
    Era(
        "yellow",
        "2009-01",
        "2009-12",
        "vendor_name:string Trip_Pickup_DateTime:string Trip_Dropoff_DateTime:string Passenger_Count:int64 "
        "Trip_Distance:double Start_Lon:double Start_Lat:double Rate_Code:double store_and_forward:double "
        "End_Lon:double End_Lat:double Payment_Type:string Fare_Amt:double surcharge:double mta_tax:double "
        "Tip_Amt:double Tolls_Amt:double Total_Amt:double",
        "Datetimes are text, parsed; an unparseable one is `missing_pickup`. No zone ids: "
        "`pu_location_id`/`do_location_id` are null. Some files add `__index_level_0__` (dropped).",
    ),
    Era(
        "yellow",
        "2010-01",
        "2010-12",
        "vendor_id:string pickup_datetime:string|timestamp[us] dropoff_datetime:string|timestamp[us] "
        "passenger_count:int64 trip_distance:double pickup_longitude:double pickup_latitude:double "
        "rate_code:double store_and_fwd_flag:string|double dropoff_longitude:double dropoff_latitude:double "
        "payment_type:string fare_amount:double surcharge:double mta_tax:double tip_amount:double "
        "tolls_amount:double total_amount:double",
        "Physical types are not verified (research: U); every one of them is cast, so text or timestamp "
        "datetimes and text or double flags load the same. No zone ids. Some files add `__index_level_0__` "
        "(dropped).",
    ),
    Era("yellow", "2011-01", "2023-01", _Y11, _NULL_TYPED + " Coordinates are null from here on."),
    Era("yellow", "2023-02", "2024-12", _Y23, f"Types change: {_LARGE}, counts int64; `Airport_fee`."),
    Era("yellow", "2025-01", "", _Y23 + " cbd_congestion_fee:double"),
    Era(
        "green",
        "2013-08",
        "2023-01",
        _G,
        "2013-08 is the first file: the boro taxi program began in August 2013, and the TLC's bucket listed "
        "`green_tripdata_2013-08.csv` (7,623 rows) before the 2022 parquet re-issue, which converted every "
        "file. " + _NULL_TYPED + " `ehail_fee` is of no type from 2019-09.",
    ),
    Era("green", "2023-02", "2024-12", _G23, f"Types change: {_LARGE}, codes int64."),
    Era("green", "2025-01", "", _G23 + " cbd_congestion_fee:double"),
    Era(
        "fhv",
        "2015-01",
        "2023-01",
        _F,
        "`PUlocationID`/`DOlocationID` flip between double and int64 month by month; `SR_Flag` is of no "
        "type from 2019-03. Base numbers are trimmed and upper-cased.",
    ),
    Era(
        "fhv",
        "2023-02",
        "",
        _F.replace("string", "large_string").replace(":double", ":int64"),
        f"Types change: {_LARGE}, ids and SR_Flag int64.",
    ),
    Era("fhvhv", "2019-02", "2023-01", _HV, "`airport_fee` and `wav_match_flag` are of no type in some months."),
    Era(
        "fhvhv",
        "2023-02",
        "2024-12",
        _HV.replace(":string", ":large_string").replace("LocationID:int64", "LocationID:int32"),
        f"Types change: {_LARGE}.",
    ),
    Era(
        "fhvhv",
        "2025-01",
        "",
        _HV.replace(":string", ":large_string").replace("LocationID:int64", "LocationID:int32")
        + " cbd_congestion_fee:double",
    ),
)


@dataclass(frozen=True)
class CsvEra:
    """One layout of a service's pre-2022 TLC csv files: the header line exactly as the TLC wrote it, and
    the quirks of its bytes, read off the TLC's own files (../shared/real-samples/SOURCES.md)."""

    service: str
    first: str  # YYYY-MM
    last: str  # YYYY-MM
    header: str
    quirks: str

    @property
    def columns(self) -> list[str]:
        """The header's names as Clean reads them: CSV-parsed, spaces around them stripped."""
        return [name.strip() for name in next(csv.reader([self.header]))]


_LF_BLANK = "The header ends with LF, a blank CRLF line follows, then CRLF rows (read leniently, counted exactly)."
_CRLF = "CRLF throughout, no blank line."
_TWO_EMPTY = "Every row carries two empty fields past the header (a trailing `,,`): dropped, counted in the report."
_Y10 = (
    "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,"
    "rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,surcharge,mta_tax,"
    "tip_amount,tolls_amount,total_amount"
)
_Y15 = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
    "pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,"
    "extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"
)
_Y16 = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "improvement_surcharge,total_amount"
)
_G13 = (
    "VendorID,lpep_pickup_datetime,Lpep_dropoff_datetime,Store_and_fwd_flag,RateCodeID,Pickup_longitude,"
    "Pickup_latitude,Dropoff_longitude,Dropoff_latitude,Passenger_count,Trip_distance,Fare_amount,Extra,MTA_tax,"
    "Tip_amount,Tolls_amount,Ehail_fee,Total_amount,Payment_type,Trip_type "
)
_G15 = _G13.replace("Ehail_fee,Total_amount", "Ehail_fee,improvement_surcharge,Total_amount")
_G16 = (
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,"
    "passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,"
    "improvement_surcharge,total_amount,payment_type,trip_type"
)
_F17 = "Dispatching_base_num,Pickup_DateTime,DropOff_datetime,PUlocationID,DOlocationID"
_COORDINATES = "Coordinates and no zone ids: zone ids come from [zones] shapes, else they stay null."

#: Every layout of the TLC's own csv files, as served until the 2022 parquet re-issue.
CSV_ERAS: tuple[CsvEra, ...] = (
    CsvEra(
        "yellow",
        "2009-01",
        "2009-12",
        "vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,Start_Lat,"
        "Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,Tip_Amt,Tolls_Amt,"
        "Total_Amt",
        f"{_LF_BLANK} Vendors `VTS`/`CMT`/`DDS`; payments `CASH`/`Credit`/`CREDIT`; numbers printed with 17 "
        f"digits (`2.6299999999999999`); Rate_Code, store_and_forward and mta_tax often empty. {_COORDINATES}",
    ),
    CsvEra(
        "yellow",
        "2010-01",
        "2013-12",
        _Y10,
        f"{_LF_BLANK} Payments `CAS`/`Cas`/`Cre` (2010), then `CSH`/`CRD`, `NOC`, `DIS`, `UNK` and `NA ` (5, "
        f"unknown); 17-digit numbers; store_and_fwd_flag empty for VTS. {_COORDINATES} The TLC's 2010-02 and "
        "2010-03 files have rows with more fields than the header (research): they are `malformed_row`.",
    ),
    CsvEra(
        "yellow",
        "2014-01",
        "2014-12",
        _Y10.replace(",", ", "),
        f"{_LF_BLANK} A space after every comma of the header (not of the rows): names are stripped. {_COORDINATES}",
    ),
    CsvEra(
        "yellow",
        "2015-01",
        "2015-06",
        _Y15,
        f"{_CRLF} Distances written `.50`. {_COORDINATES}",
    ),
    CsvEra("yellow", "2015-07", "2016-06", _Y15.replace("RateCodeID", "RatecodeID"), f"{_CRLF} {_COORDINATES}"),
    CsvEra("yellow", "2016-07", "2016-12", _Y16, f"{_CRLF} Zone ids from here on. {_TWO_EMPTY}"),
    CsvEra("yellow", "2017-01", "2018-12", _Y16, _LF_BLANK),
    CsvEra("yellow", "2019-01", "2020-06", _Y16 + ",congestion_surcharge", _CRLF),
    CsvEra(
        "green",
        "2013-08",
        "2014-12",
        _G13,
        f"{_LF_BLANK} `Trip_type ` ends with a space (names are stripped). {_TWO_EMPTY} The first rows of "
        f"2013-08 have coordinates of 0 (null) and distances `.00`. {_COORDINATES}",
    ),
    CsvEra("green", "2015-01", "2015-06", _G15, f"{_CRLF} {_TWO_EMPTY} {_COORDINATES}"),
    CsvEra("green", "2015-07", "2015-12", _G15, f"{_CRLF} {_COORDINATES}"),
    CsvEra("green", "2016-01", "2016-06", _G15, f"{_LF_BLANK} {_COORDINATES}"),
    CsvEra("green", "2016-07", "2016-12", _G16, f"{_LF_BLANK} Zone ids from here on. {_TWO_EMPTY}"),
    CsvEra("green", "2017-01", "2018-12", _G16, _LF_BLANK),
    CsvEra(
        "green",
        "2019-01",
        "2020-06",
        _G16 + ",congestion_surcharge",
        f"{_CRLF} Files start with pickups of the month before (`pickup_outside_month`).",
    ),
    CsvEra(
        "fhv",
        "2015-01",
        "2016-12",
        "Dispatching_base_num,Pickup_date,locationID",
        f"{_CRLF} No dropoff at all (null); `locationID` is the zone the trip began in, often empty.",
    ),
    CsvEra("fhv", "2017-01", "2017-06", _F17, f"{_CRLF} Zone ids and dropoffs often empty."),
    CsvEra(
        "fhv",
        "2017-07",
        "2017-12",
        ",".join(f'"{name}"' for name in (*_F17.split(","), "SR_Flag")),
        f"{_CRLF} Every field double-quoted.",
    ),
    CsvEra(
        "fhv",
        "2018-01",
        "2018-12",
        '"Pickup_DateTime","DropOff_datetime","PUlocationID","DOlocationID","SR_Flag","Dispatching_base_number",'
        '"Dispatching_base_num"',
        f"{_CRLF} Quoted, columns reordered, two base-number columns: `Dispatching_base_number` is filled, "
        '`Dispatching_base_num` mostly empty (`""`); the base is the first filled of the two.',
    ),
    CsvEra(
        "fhv",
        "2019-01",
        "2020-06",
        "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag",
        f"{_CRLF} Zones often empty or 264 (unknown).",
    ),
    CsvEra(
        "fhvhv",
        "2019-02",
        "2020-06",
        "hvfhs_license_num,dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag",
        f"{_CRLF} `SR_Flag` empty or 1; none of the fare columns (null).",
    ),
)


def csv_eras_markdown() -> str:
    """One section per csv era: the header as the TLC wrote it, its quirks, and where each column goes."""
    out = ["## Eras of the TLC's csv files (as served until 2022)", ""]
    for era in CSV_ERAS:
        svc = SERVICES[era.service]
        cmap = map_columns(svc, era.columns)
        by_source = {source: canonical for canonical in cmap.mapped for source in cmap.sources(canonical)}
        out += [f"### {svc.name} {era.first} .. {era.last} (csv)", "", f"    {era.header}", "", era.quirks, ""]
        out += ["| source column | canonical column | type |", "|---|---|---|"]
        for name in era.columns:
            canonical = by_source.get(name)
            where = f"`{canonical}` | {svc.column(canonical).duckdb_type}" if canonical else "`other_columns` | VARCHAR"
            out.append(f"| `{name}` | {where} |")
        out.append("")
    return "\n".join(out)


def _mapping_note(c: Column) -> str:
    notes = []
    if c.codes:
        notes.append("codes: " + ", ".join(f"{k} -> {v}" for k, v in c.codes) + "; case-insensitive, trimmed, unquoted")
    if c.zero_is_null:
        notes.append("0 -> null")
    if c.normalize == "upper":
        notes.append("trimmed, upper-cased")
    return "; ".join(notes)


def eras_markdown() -> str:
    """One section per era: source column -> canonical column, with types and notes."""
    out = ["## Eras of the TLC parquet files", ""]
    for era in ERAS:
        svc = SERVICES[era.service]
        cmap = map_columns(svc, [name for name, _ in era.source_columns])
        by_source = {source: canonical for canonical, source in cmap.mapped.items()}
        months = f"{era.first} .. {era.last}" if era.last else f"{era.first} on"
        out += [f"### {svc.name} {months}", "", *([era.note, ""] if era.note else [])]
        out += ["| source column | source type | canonical column | type | mapping |", "|---|---|---|---|---|"]
        for name, type_ in era.source_columns:
            canonical = by_source.get(name)
            if canonical is None:
                out.append(f"| `{name}` | {type_} | `other_columns` | VARCHAR | kept as JSON |")
                continue
            col = svc.column(canonical)
            type_ = type_.replace("|", " or ")
            out.append(f"| `{name}` | {type_} | `{canonical}` | {col.duckdb_type} | {_mapping_note(col)} |")
        absent = [c.name for c in svc.columns if c.name not in cmap.mapped]
        if absent:
            out += ["", "Null in this era: " + ", ".join(f"`{n}`" for n in absent) + "."]
        out.append("")
    return "\n".join(out)


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
    return "\n".join(out) + "\n" + eras_markdown() + "\n" + csv_eras_markdown()
