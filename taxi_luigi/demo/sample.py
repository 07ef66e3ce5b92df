"""Deterministic synthetic mirror of the NYC TLC trip files, in their real source layouts.

The demo and the tests must run offline and still meet every drift the real files show: column
spellings, physical types per era, null-typed columns, the DataTalksClub csv.gz text conventions.
Rows are synthetic but plausible. A known number of rows break each cleaning rule, and the
generator returns those numbers, so a test can compare the cleaner's quarantine counts exactly.
The layouts follow the research notes on the TLC files (tlc-data.md, sections 1, 2 and 4), from
each service's first file: yellow 2009 (text datetimes, coded strings, coordinates, a double
store_and_forward), yellow 2010 (text datetimes and a pandas index in odd months, timestamps in
even ones), green from 2013-08, fhv from 2015-01, fhvhv from 2019-02.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from taxi_luigi.services import SERVICES as _CANONICAL

SERVICES = tuple(_CANONICAL)
FORMATS = ("tlc", "dtc")  # tlc = TLC's own parquet files; dtc = DataTalksClub csv.gz mirror
QUIRKS = ("ns_timestamps", "index_column", "text_passenger_count", "no_vendor_rows")

_TAXIS = ("yellow", "green")
# Which services and formats each quirk can touch; any other combination ignores it.
_QUIRK_SCOPE = {
    "ns_timestamps": (SERVICES, ("tlc",)),
    "index_column": (SERVICES, ("tlc",)),
    "text_passenger_count": (_TAXIS, FORMATS),
    "no_vendor_rows": (_TAXIS, ("tlc",)),
}
# First month each source publishes. The DTC mirror starts in 2019.
_FIRST_MONTH = {
    ("tlc", "yellow"): (2009, 1),
    ("tlc", "green"): (2013, 8),
    ("tlc", "fhv"): (2015, 1),
    ("tlc", "fhvhv"): (2019, 2),
    ("dtc", "yellow"): (2019, 1),
    ("dtc", "green"): (2019, 1),
    ("dtc", "fhv"): (2019, 1),
    ("dtc", "fhvhv"): (2019, 2),
}
_NEW_TYPES = (2023, 2)  # TLC switched to int32 / large_string from this month on
_CBD_FEE = (2025, 1)  # cbd_congestion_fee appears from this month on

# Chunks bound memory and also fix the random streams, so month_table and write_month agree.
_CHUNK_ROWS = 200_000  # a multiple of the row group size, so row groups stay uniform
_ROW_GROUP_ROWS = 100_000

# Row categories. A row gets exactly one category: it breaks that rule and none checked before it.
_CLEAN, _ZERO, _MISSING, _BEFORE, _OUTSIDE, _BAD_TEXT = range(6)
_PERIOD = 3000  # least common multiple of the strides in _pattern
_BAD_PICKUP = "not a date"
_DAY = 86_400
_FAR_PAST = int(np.datetime64("2008-12-31T00:00:00", "s").astype(np.int64))

_I32, _I64, _F64, _NULL = pa.int32(), pa.int64(), pa.float64(), pa.null()
_TIME_FIELDS = frozenset({"pickup", "dropoff", "request", "on_scene"})
# Integer codes that the 2020+ DTC csv files write as floats ("1.0"), because blanks made them float.
_FLOAT_CODES = frozenset({"vendor", "passenger_count", "ratecode", "payment_type", "trip_type"})

# Source column name -> generated field, in the real order.
_YELLOW = (
    ("VendorID", "vendor"),
    ("tpep_pickup_datetime", "pickup"),
    ("tpep_dropoff_datetime", "dropoff"),
    ("passenger_count", "passenger_count"),
    ("trip_distance", "distance"),
    ("RatecodeID", "ratecode"),
    ("store_and_fwd_flag", "store_flag"),
    ("PULocationID", "pu"),
    ("DOLocationID", "do"),
    ("payment_type", "payment_type"),
    ("fare_amount", "fare"),
    ("extra", "extra"),
    ("mta_tax", "mta_tax"),
    ("tip_amount", "tip"),
    ("tolls_amount", "tolls"),
    ("improvement_surcharge", "improvement"),
    ("total_amount", "total"),
    ("congestion_surcharge", "congestion"),
    ("airport_fee", "airport_fee"),
)
_GREEN = (
    ("VendorID", "vendor"),
    ("lpep_pickup_datetime", "pickup"),
    ("lpep_dropoff_datetime", "dropoff"),
    ("store_and_fwd_flag", "store_flag"),
    ("RatecodeID", "ratecode"),
    ("PULocationID", "pu"),
    ("DOLocationID", "do"),
    ("passenger_count", "passenger_count"),
    ("trip_distance", "distance"),
    ("fare_amount", "fare"),
    ("extra", "extra"),
    ("mta_tax", "mta_tax"),
    ("tip_amount", "tip"),
    ("tolls_amount", "tolls"),
    ("ehail_fee", "ehail_fee"),
    ("improvement_surcharge", "improvement"),
    ("total_amount", "total"),
    ("payment_type", "payment_type"),
    ("trip_type", "trip_type"),
    ("congestion_surcharge", "congestion"),
)
_FHV = (
    ("dispatching_base_num", "base"),
    ("pickup_datetime", "pickup"),
    ("dropOff_datetime", "dropoff"),
    ("PUlocationID", "pu"),
    ("DOlocationID", "do"),
    ("SR_Flag", "sr_flag"),
    ("Affiliated_base_number", "affiliated"),
)
_FHVHV = (
    ("hvfhs_license_num", "license"),
    ("dispatching_base_num", "base"),
    ("originating_base_num", "originating"),
    ("request_datetime", "request"),
    ("on_scene_datetime", "on_scene"),
    ("pickup_datetime", "pickup"),
    ("dropoff_datetime", "dropoff"),
    ("PULocationID", "pu"),
    ("DOLocationID", "do"),
    ("trip_miles", "distance"),
    ("trip_time", "trip_time"),
    ("base_passenger_fare", "fare"),
    ("tolls", "tolls"),
    ("bcf", "bcf"),
    ("sales_tax", "sales_tax"),
    ("congestion_surcharge", "congestion"),
    ("airport_fee", "airport_fee"),
    ("tips", "tip"),
    ("driver_pay", "driver_pay"),
    ("shared_request_flag", "shared_request"),
    ("shared_match_flag", "shared_match"),
    ("access_a_ride_flag", "access_a_ride"),
    ("wav_request_flag", "wav_request"),
    ("wav_match_flag", "wav_match"),
)
_CBD = ("cbd_congestion_fee", "cbd_fee")
_ZONES_FROM = (2011, 1)  # yellow before this: coordinates and coded strings, no zone ids
_S = pa.string()
# Yellow 2009 and 2010: (source column, field, arrow type); None is the timestamp type of the month.
_YELLOW_2009 = (
    ("vendor_name", "vendor_code", _S),
    ("Trip_Pickup_DateTime", "pickup", _S),
    ("Trip_Dropoff_DateTime", "dropoff", _S),
    ("Passenger_Count", "passenger_count", _I64),
    ("Trip_Distance", "distance", _F64),
    ("Start_Lon", "pu_lon", _F64),
    ("Start_Lat", "pu_lat", _F64),
    ("Rate_Code", "ratecode", _F64),
    ("store_and_forward", "store_code", _F64),
    ("End_Lon", "do_lon", _F64),
    ("End_Lat", "do_lat", _F64),
    ("Payment_Type", "payment_code", _S),
    ("Fare_Amt", "fare", _F64),
    ("surcharge", "extra", _F64),
    ("mta_tax", "mta_tax", _F64),
    ("Tip_Amt", "tip", _F64),
    ("Tolls_Amt", "tolls", _F64),
    ("Total_Amt", "total", _F64),
)
_YELLOW_2010 = (
    ("vendor_id", "vendor_code", _S),
    ("pickup_datetime", "pickup", None),
    ("dropoff_datetime", "dropoff", None),
    ("passenger_count", "passenger_count", _I64),
    ("trip_distance", "distance", _F64),
    ("pickup_longitude", "pu_lon", _F64),
    ("pickup_latitude", "pu_lat", _F64),
    ("rate_code", "ratecode", _F64),
    ("store_and_fwd_flag", "store_code", _S),
    ("dropoff_longitude", "do_lon", _F64),
    ("dropoff_latitude", "do_lat", _F64),
    ("payment_type", "payment_code", _S),
    ("fare_amount", "fare", _F64),
    ("surcharge", "extra", _F64),
    ("mta_tax", "mta_tax", _F64),
    ("tip_amount", "tip", _F64),
    ("tolls_amount", "tolls", _F64),
    ("total_amount", "total", _F64),
)
# Coded text of 2009 and 2010 per modern code, as spelled in the files; decorated per row below.
_VENDOR_SPELLINGS: dict[int, tuple[str, ...]] = {1: ("CMT",), 2: ("VTS",), 3: ("DDS",)}
_PAYMENT_SPELLINGS = {
    2009: {1: ("Credit", "CREDIT"), 2: ("Cash", "CASH"), 3: ("No Charge",), 4: ("Dispute",)},
    2010: {1: ("CRE", "CRD", "Cre"), 2: ("CAS", "CSH"), 3: ("NOC", "NO"), 4: ("DIS",)},
}
_UNKNOWN_CODE = "XYZ"  # a payment code nobody documents (UNK is 5, unknown): loaded as null
_DTC_FHVHV = (
    ("hvfhs_license_num", "license"),
    ("dispatching_base_num", "base"),
    ("pickup_datetime", "pickup"),
    ("dropoff_datetime", "dropoff"),
    ("PULocationID", "pu"),
    ("DOLocationID", "do"),
    ("SR_Flag", "sr_flag"),
)
# The DTC fhv files spell these differently from 2020 on.
_DTC_FHV_2020 = {
    "dropOff_datetime": "dropoff_datetime",
    "PUlocationID": "PULocationID",
    "DOlocationID": "DOLocationID",
}

_FHV_BASES = tuple(f"B{n:05d}" for n in (13, 14, 37, 53, 87, 111, 149, 225, 254, 310, 381, 856, 1145, 1239, 1454, 2133))
_HV_LICENSES = ("HV0002", "HV0003", "HV0004", "HV0005")
_HV_BASES = tuple(f"B0{n}" for n in (3136, 2764, 2765, 2869, 2872, 2875, 2682, 2800, 2510, 2844))
_HV_FIRST_BASE = np.array([0, 1, 7, 8])  # license i dispatches from _HV_BASES[first[i]:first[i] + count[i]]
_HV_BASE_COUNT = np.array([1, 6, 1, 2])
_FLAGS = ("N", "Y", " ")


@dataclass(frozen=True)
class MonthTruth:
    """One written month and the bad rows planted in it, for exact comparison with the cleaner."""

    service: str
    year: int
    month: int
    fmt: str
    rows: int
    reasons: dict[str, int]
    path: Path

    @property
    def clean(self) -> int:
        """Rows the cleaner must keep."""
        return self.rows - sum(self.reasons.values())


@dataclass(frozen=True)
class _Col:
    name: str
    field: str
    type: pa.DataType
    float_text: bool = False  # an integer code written as text like "1.0"


@dataclass(frozen=True)
class _Block:
    """One chunk of rows: global positions, planted categories and its own random stream."""

    service: str
    year: int
    month: int
    fmt: str
    quirks: frozenset[str]
    idx: np.ndarray
    cat: np.ndarray
    rng: np.random.Generator

    @property
    def n(self) -> int:
        return len(self.idx)

    @property
    def ym(self) -> tuple[int, int]:
        return self.year, self.month


@dataclass(frozen=True)
class _Trips:
    """Trip timing shared by every service; seconds since the epoch."""

    pickup: np.ndarray
    dropoff: np.ndarray
    pickup_null: np.ndarray
    dropoff_null: np.ndarray
    distance: np.ndarray
    duration: np.ndarray


def file_name(service: str, year: int, month: int, fmt: str) -> str:
    """The source's own file name, so the mirror can stand in for the real URL."""
    suffix = {"tlc": "parquet", "dtc": "csv.gz"}[fmt]
    return f"{service}_tripdata_{year}-{month:02d}.{suffix}"


def month_table(
    service: str, year: int, month: int, fmt: str, rows: int, quirks: Iterable[str] = frozenset()
) -> tuple[pa.Table, dict[str, int]]:
    """The month's rows exactly as write_month writes them, plus the planted bad-row counts.

    For "dtc" every column is text, as it is in the csv file.
    """
    applied = _check(service, year, month, fmt, rows, quirks)
    table = pa.concat_tables(list(_chunks(service, year, month, fmt, rows, applied)))
    return table, _reason_counts(_pattern(service, fmt, _text_times(service, year, month, fmt)), rows)


def write_month(
    root: Path, service: str, year: int, month: int, fmt: str, rows: int, quirks: Iterable[str] = frozenset()
) -> MonthTruth:
    """Write root/{service}/{file_name} atomically, in bounded memory, and return its truth."""
    applied = _check(service, year, month, fmt, rows, quirks)
    path = Path(root) / service / file_name(service, year, month, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tables = _chunks(service, year, month, fmt, rows, applied)
    try:
        if fmt == "tlc":
            _write_parquet(tmp, tables)
        else:
            _write_csv_gz(tmp, tables)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    reasons = _reason_counts(_pattern(service, fmt, _text_times(service, year, month, fmt)), rows)
    return MonthTruth(service, year, month, fmt, rows, reasons, path)


def write_mirror(
    root: Path,
    services: Iterable[str],
    year: int,
    months: Iterable[int],
    fmt: str,
    rows: int,
    quirks: Iterable[str] = frozenset(),
) -> list[MonthTruth]:
    """Write every service x month; months the source never published (fhvhv before 2019-02, ...)
    are skipped, as the real mirror has no file for them either."""
    months = list(months)
    quirks = frozenset(quirks)
    return [
        write_month(root, service, year, month, fmt, rows, quirks)
        for service in services
        for month in months
        if (year, month) >= _FIRST_MONTH.get((fmt, service), (0, 0))
    ]


def _check(service: str, year: int, month: int, fmt: str, rows: int, quirks: Iterable[str]) -> frozenset[str]:
    """Reject arguments that name no real source file; return the quirks that apply here."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: expected one of {', '.join(SERVICES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    quirks = frozenset(quirks)
    unknown = sorted(quirks - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirks {', '.join(unknown)}: expected some of {', '.join(QUIRKS)}")
    first = _FIRST_MONTH[(fmt, service)]
    if (year, month) < first:
        raise ValueError(
            f"{service} {year}-{month:02d} has no {fmt} source file to mirror: "
            f"the {fmt} {service} files start at {first[0]}-{first[1]:02d}"
        )
    return frozenset(q for q in quirks if service in _QUIRK_SCOPE[q][0] and fmt in _QUIRK_SCOPE[q][1])


def _pattern(service: str, fmt: str, text_times: bool = False) -> np.ndarray:
    """Category of each position in one period. Later rules overwrite earlier ones, so every
    row has one category, and the low offsets put each reason in the first 1000 rows."""
    k = np.arange(_PERIOD)
    cat = np.full(_PERIOD, _CLEAN, dtype=np.int8)
    cat[k % 150 == 7] = _OUTSIDE
    cat[k % 120 == 3] = _BEFORE
    cat[k % 250 == 11] = _MISSING
    if fmt == "dtc" or text_times:
        cat[k % 500 == 29] = _BAD_TEXT
    if service in _TAXIS:
        cat[k % 40 == 1] = _ZERO
    return cat


def _reason_counts(pattern: np.ndarray, rows: int) -> dict[str, int]:
    """Planted rows per reason, counted from the pattern rather than from the data."""
    full, rest = divmod(rows, _PERIOD)
    per = full * np.bincount(pattern, minlength=6) + np.bincount(pattern[:rest], minlength=6)
    return {
        "malformed_row": 0,
        "passenger_count_zero": int(per[_ZERO]),
        "missing_pickup": int(per[_MISSING] + per[_BAD_TEXT]),
        "dropoff_before_pickup": int(per[_BEFORE]),
        "pickup_outside_month": int(per[_OUTSIDE]),
    }


def _seed(service: str, year: int, month: int, fmt: str, rows: int, quirks: frozenset[str]) -> int:
    """A seed stable across runs and Python versions (hash() is salted per process)."""
    key = f"{service}|{year}|{month}|{fmt}|{rows}|{','.join(sorted(quirks))}"
    return zlib.crc32(key.encode())


def _layout(service: str, year: int, month: int, fmt: str, quirks: frozenset[str]) -> list[_Col]:
    """The columns of one source file, in order, with their physical types."""
    if fmt == "dtc":
        return _dtc_layout(service, year, quirks)
    ym = (year, month)
    if service == "yellow" and ym < _ZONES_FROM:
        return _old_yellow_layout(year, month, quirks)
    names = {"yellow": _YELLOW, "green": _GREEN, "fhv": _FHV, "fhvhv": _FHVHV}[service]
    if service == "yellow" and ym >= _NEW_TYPES:
        names = (*names[:-1], ("Airport_fee", "airport_fee"))
    if service != "fhv" and ym >= _CBD_FEE:
        names += (_CBD,)
    types = _tlc_types(service, ym)
    time_type = pa.timestamp("ns" if "ns_timestamps" in quirks else "us")
    cols = [_Col(name, field, time_type if field in _TIME_FIELDS else types.get(field, _F64)) for name, field in names]
    if "text_passenger_count" in quirks:
        cols = [
            dataclasses.replace(c, type=pa.string(), float_text=True) if c.field == "passenger_count" else c
            for c in cols
        ]
    if "index_column" in quirks:
        cols.append(_Col("__index_level_0__", "row_index", _I64))
    return cols


def _old_yellow_layout(year: int, month: int, quirks: frozenset[str]) -> list[_Col]:
    """Yellow 2009 (text datetimes) and 2010 (text datetimes and a pandas index in odd months)."""
    text_times = _text_times("yellow", year, month, "tlc")
    time_type = _S if text_times else pa.timestamp("ns" if "ns_timestamps" in quirks else "us")
    names = _YELLOW_2009 if year == 2009 else _YELLOW_2010
    cols = [_Col(name, field, time_type if type_ is None else type_) for name, field, type_ in names]
    if "index_column" in quirks or (year == 2010 and month % 2):
        cols.append(_Col("__index_level_0__", "row_index", _I64))
    return cols


def _text_times(service: str, year: int, month: int, fmt: str) -> bool:
    """Datetimes stored as text: every csv, yellow 2009, and (in this mirror) yellow 2010's odd months."""
    return fmt == "dtc" or (service == "yellow" and (year == 2009 or (year == 2010 and month % 2 == 1)))


def _tlc_types(service: str, ym: tuple[int, int]) -> dict[str, pa.DataType]:
    """Arrow types of the TLC parquet columns that are not double (timestamps aside) in that month."""
    new = ym >= _NEW_TYPES
    text = pa.large_string() if new else pa.string()
    loc = _I32 if new else _I64
    if service == "yellow":
        airport_typed = new or ym in ((2020, 8), (2020, 9)) or ym >= (2020, 11)
        return {
            "vendor": loc,
            "passenger_count": _I64 if new else _F64,
            "ratecode": _I64 if new else _F64,
            "store_flag": text,
            "pu": loc,
            "do": loc,
            "payment_type": _I64,
            "improvement": _F64 if ym >= (2015, 1) else _NULL,
            "congestion": _F64 if ym >= (2019, 1) else _NULL,
            "airport_fee": _F64 if airport_typed else _NULL,
        }
    if service == "green":
        code = _I64 if new else _F64
        return {
            "vendor": loc,
            "store_flag": text,
            "ratecode": code,
            "pu": loc,
            "do": loc,
            "passenger_count": code,
            "payment_type": code,
            "trip_type": code,
            "ehail_fee": _NULL if (2019, 9) <= ym < _NEW_TYPES else _F64,
            "improvement": _F64 if ym >= (2015, 1) else _NULL,
            "congestion": _F64 if ym >= (2019, 1) else _NULL,
        }
    if service == "fhv":
        fhv_loc = _I64 if new or (2019, 5) <= ym <= (2019, 6) else _F64
        return {
            "base": text,
            "affiliated": text,
            "pu": fhv_loc,
            "do": fhv_loc,
            "sr_flag": _I64 if new else _F64 if ym < (2019, 3) else _NULL,
        }
    flags = ("shared_request", "shared_match", "access_a_ride", "wav_request")
    return {
        **dict.fromkeys(("license", "base", "originating", *flags), text),
        "wav_match": _NULL if ym <= (2019, 3) else text,
        "pu": loc,
        "do": loc,
        "trip_time": _I64,
        "airport_fee": _NULL if ym <= (2019, 6) or ym in ((2020, 4), (2020, 10)) else _F64,
    }


def _dtc_layout(service: str, year: int, quirks: frozenset[str]) -> list[_Col]:
    """The DTC csv columns: all text; integer codes look like floats from 2020 on."""
    names: tuple[tuple[str, str], ...]
    if service == "yellow":
        names = _YELLOW[:-1]
    elif service == "green":
        names = _GREEN
    elif service == "fhv":
        names = _FHV if year == 2019 else tuple((_DTC_FHV_2020.get(name, name), f) for name, f in _FHV)
    else:
        names = _DTC_FHVHV
    float_fields = _FLOAT_CODES if year >= 2020 else frozenset()
    if "text_passenger_count" in quirks:
        float_fields |= {"passenger_count"}
    return [_Col(name, field, pa.string(), field in float_fields) for name, field in names]


def _chunks(service: str, year: int, month: int, fmt: str, rows: int, quirks: frozenset[str]) -> Iterator[pa.Table]:
    """Tables of at most _CHUNK_ROWS rows; always at least one, so an empty month still has a schema."""
    layout = _layout(service, year, month, fmt, quirks)
    schema = pa.schema([pa.field(c.name, c.type) for c in layout])
    pattern = _pattern(service, fmt, _text_times(service, year, month, fmt))
    seed = _seed(service, year, month, fmt, rows, quirks)
    for start in range(0, max(rows, 1), _CHUNK_ROWS):
        idx = np.arange(start, min(start + _CHUNK_ROWS, rows), dtype=np.int64)
        rng = np.random.default_rng([seed, start // _CHUNK_ROWS])
        block = _Block(service, year, month, fmt, quirks, idx, pattern[idx % _PERIOD], rng)
        fields = _fields(block)
        yield pa.Table.from_arrays([_render(fields[c.field], c) for c in layout], schema=schema)


def _render(values: pa.Array, col: _Col) -> pa.Array:
    """Give a generated field the column's physical type (or text, for csv)."""
    if pa.types.is_null(col.type):
        return pa.nulls(len(values))
    if col.float_text:
        values = pc.binary_join_element_wise(values.cast(pa.string()), ".0", "")
    return values.cast(col.type)


def _write_parquet(path: Path, tables: Iterator[pa.Table]) -> None:
    first = next(tables)
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first, row_group_size=_ROW_GROUP_ROWS)
        for table in tables:
            writer.write_table(table, row_group_size=_ROW_GROUP_ROWS)


def _write_csv_gz(path: Path, tables: Iterator[pa.Table]) -> None:
    """Plain header, unquoted fields, empty nulls, "\\n" line ends, like the DTC files.
    mtime=0 and no stored file name keep the bytes identical from run to run."""
    first = next(tables)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
        gz.write((",".join(first.column_names) + "\n").encode())
        pacsv.write_csv(first, gz, options)
        for table in tables:
            pacsv.write_csv(table, gz, options)


def _fields(b: _Block) -> dict[str, pa.Array]:
    """Every field the service's layouts may use, keyed by field name."""
    trips = _trips(b)
    pickup = _seconds(trips.pickup, trips.pickup_null)
    if _text_times(b.service, b.year, b.month, b.fmt):
        pickup = pc.if_else(pa.array(b.cat == _BAD_TEXT), _BAD_PICKUP, pickup.cast(pa.string()))
    fields = {
        "row_index": pa.array(b.idx),
        "pickup": pickup,
        "dropoff": _seconds(trips.dropoff, trips.dropoff_null),
    }
    fields.update(_SERVICE_FIELDS[b.service](b, trips))
    if b.service == "yellow" and b.ym < _ZONES_FROM:
        fields.update(_old_yellow_fields(b, fields))  # drawn last, so later eras' random streams are unchanged
    return fields


def _trips(b: _Block) -> _Trips:
    """Pickup inside the month and dropoff 2..60 minutes later, except in the planted rows."""
    rng, n, cat = b.rng, b.n, b.cat
    first = np.datetime64(f"{b.year:04d}-{b.month:02d}", "M")
    start = int(first.astype("datetime64[s]").astype(np.int64))
    end = int((first + 1).astype("datetime64[s]").astype(np.int64))
    distance = np.round(np.clip(rng.gamma(1.6, 2.0, n) + 0.1, 0.1, 30.0), 2)
    seconds = distance * rng.uniform(150, 330, n) + rng.integers(60, 300, n)  # 11..24 mph plus a wait
    duration = np.clip(seconds, 120, 3600).astype(np.int64)
    pickup = start + rng.integers(0, end - start, n)
    offset = rng.integers(0, _DAY, n)
    # Outside rows rotate through: the previous month's last day, 2008-12-31, the next month's first day.
    where = np.where(cat == _OUTSIDE, (b.idx // 150) % 3, -1)
    outside = [start - 1 - offset, _FAR_PAST + offset, end + offset]
    pickup = np.select([where == 0, where == 1, where == 2], outside, pickup)
    dropoff = np.where(cat == _BEFORE, pickup - 60 - offset % 1740, pickup + duration)
    return _Trips(
        pickup=pickup,
        dropoff=dropoff,
        pickup_null=(cat == _MISSING) | (cat == _BAD_TEXT),
        dropoff_null=(cat == _CLEAN) & (b.idx % 200 == 47) & (b.service == "fhv"),
        distance=distance,
        duration=duration,
    )


def _taxi_fields(b: _Block, trips: _Trips) -> dict[str, pa.Array]:
    rng, n, ym = b.rng, b.n, b.ym
    green = b.service == "green"
    zero = b.cat == _ZERO
    # Rows with no vendor (2020+ DTC csv, or the quirk) lose all their integer codes, like the real files.
    vendorless = (b.fmt == "dtc" and b.year >= 2020) or "no_vendor_rows" in b.quirks
    no_vendor = ~zero & (b.idx % 80 == 13) & vendorless
    # A 2019 DTC file has no blanks in its integer columns (pandas reads them as int64).
    no_passengers = ~zero & (b.idx % 60 == 37) & (b.fmt == "tlc" or b.year >= 2020)
    vendor = rng.choice([1, 2], n, p=[0.15, 0.85] if green else [0.3, 0.7])
    passengers = np.where(zero, 0, rng.choice(np.arange(1, 7), n, p=[0.72, 0.14, 0.05, 0.03, 0.04, 0.02]))
    if green:
        ratecode = rng.choice([1, 5], n, p=[0.96, 0.04])
    else:
        ratecode = rng.choice([1, 2, 3, 4, 5], n, p=[0.955, 0.03, 0.005, 0.005, 0.005])
    payment = rng.choice([1, 2, 3, 4], n, p=[0.68, 0.29, 0.02, 0.01])
    fare = np.clip(np.round(2 * (2.5 + 2.5 * trips.distance + trips.duration / 120)) / 2, 2.5, 80.0)
    extra = rng.choice([0.0, 0.5, 1.0, 2.5], n, p=[0.4, 0.35, 0.15, 0.1])
    mta_tax = np.full(n, 0.5)
    tip = np.where(payment == 1, np.round(fare * rng.uniform(0.1, 0.3, n), 2), 0.0)
    tolls = np.where(rng.random(n) < 0.05, 6.55, 0.0)
    improvement = np.full(n, 1.0 if ym >= (2023, 1) else 0.3 if ym >= (2015, 1) else 0.0)
    congestion = np.where(rng.random(n) < (0.2 if green else 0.85), 2.75 if green else 2.5, 0.0)
    congestion *= ym >= (2019, 1)
    airport = np.where(rng.random(n) < 0.08, 1.75 if ym >= (2023, 1) else 1.25, 0.0)
    airport *= ym >= (2020, 8) and not green
    cbd_fee = np.where(rng.random(n) < 0.7, 0.75, 0.0) * (ym >= _CBD_FEE)
    total = np.round(fare + extra + mta_tax + tip + tolls + improvement + congestion + airport + cbd_fee, 2)
    surcharge_null = no_vendor | (rng.random(n) < 0.01)
    return {
        "vendor": _ints(vendor, no_vendor),
        "passenger_count": _ints(passengers, no_vendor | no_passengers),
        "distance": _floats(trips.distance),
        "ratecode": _ints(ratecode, no_vendor),
        "store_flag": _texts(("N", "Y"), rng.random(n) < 0.01, no_vendor),
        "pu": _ints(_zones(rng, n)),
        "do": _ints(_zones(rng, n)),
        "payment_type": _ints(payment, no_vendor),
        "fare": _floats(fare),
        "extra": _floats(extra),
        "mta_tax": _floats(mta_tax),
        "tip": _floats(tip),
        "tolls": _floats(tolls),
        "ehail_fee": pa.nulls(n, _F64),
        "improvement": _floats(improvement),
        "total": _floats(total),
        "trip_type": _ints(np.where(ratecode == 5, 2, 1), no_vendor),
        "congestion": _floats(congestion, surcharge_null),
        "airport_fee": _floats(airport, surcharge_null),
        "cbd_fee": _floats(cbd_fee),
    }


def _old_yellow_fields(b: _Block, fields: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The 2009-2010 shapes of vendor, payment and store-and-forward, and the coordinates.

    Codes come in mixed case, sometimes quoted or padded; 1 payment in 200 is a code nobody
    documents. About 3% of coordinates are 0 (not recorded), 0.5% empty.
    """
    rng, n = b.rng, b.n
    vendor = pc.fill_null(fields["vendor"], 0).to_numpy()
    vendor = np.where((vendor > 0) & (rng.random(n) < 0.1), 3, vendor)  # Digital Dispatch
    vendor_code = _coded(rng, _VENDOR_SPELLINGS, vendor, vendor == 0)
    payment = pc.fill_null(fields["payment_type"], 0).to_numpy()
    unknown = rng.random(n) < 0.005
    payment_code = _coded(rng, _PAYMENT_SPELLINGS[b.year], payment, payment == 0, unknown)
    yes = pc.equal(fields["store_flag"], "Y")
    store = pc.if_else(yes, 1.0, 0.0) if b.year == 2009 else pc.if_else(yes, "1", "0")
    coords = {}
    zero = rng.random(n) < 0.03
    for name, centre, spread in (("pu_lon", -73.98, 0.04), ("pu_lat", 40.75, 0.04)):
        coords[name] = np.where(zero, 0.0, np.round(centre + rng.normal(0, spread, n), 6))
    zero = rng.random(n) < 0.03
    for name, centre, spread in (("do_lon", -73.97, 0.05), ("do_lat", 40.75, 0.05)):
        coords[name] = np.where(zero, 0.0, np.round(centre + rng.normal(0, spread, n), 6))
    empty = rng.random(n) < 0.005
    return {
        "vendor_code": vendor_code,
        "payment_code": payment_code,
        "store_code": store,
        **{name: _floats(values, empty) for name, values in coords.items()},
    }


def _coded(
    rng: np.random.Generator,
    spellings: dict[int, tuple[str, ...]],
    code: np.ndarray,
    null: np.ndarray,
    unknown: np.ndarray | None = None,
) -> pa.Array:
    """Text codes: a spelling of each row's code, 4% lower-case, 1% quoted, 1% padded with spaces."""
    n = len(code)
    variants = [(s, s.lower(), f'"{s}"', f" {s} ") for c in sorted(spellings) for s in spellings[c]]
    vocab = (*(v for four in variants for v in four), _UNKNOWN_CODE)
    starts = np.zeros(max(spellings) + 1, dtype=np.int64)  # code -> index of its first spelling
    counts = np.ones(max(spellings) + 1, dtype=np.int64)  # code -> how many spellings it has
    offset = 0
    for c in sorted(spellings):
        starts[c], counts[c] = offset, len(spellings[c])
        offset += len(spellings[c])
    safe = np.clip(code, 0, max(spellings))
    spelling = starts[safe] + rng.integers(0, 1 << 30, n) % counts[safe]
    decoration = rng.choice(4, n, p=[0.94, 0.04, 0.01, 0.01])
    index = spelling * 4 + decoration
    if unknown is not None:
        index = np.where(unknown, len(vocab) - 1, index)
        null = null & ~unknown
    return _texts(vocab, index, null)


def _fhv_fields(b: _Block, _: _Trips) -> dict[str, pa.Array]:
    """FHV records carry no fares, so the trip distance and duration go unused."""
    rng, n = b.rng, b.n
    count = len(_FHV_BASES)
    # Base numbers need trim(upper()): about 1 in 100 is lower-case and/or padded with spaces.
    spellings = (
        _FHV_BASES
        + tuple(base.lower() for base in _FHV_BASES)
        + tuple(f" {base.lower()} " for base in _FHV_BASES)
        + tuple(f"{base} " for base in _FHV_BASES)
    )
    base = rng.integers(0, count, n)
    odd = rng.random(n) < 0.01
    affiliated = np.where(rng.random(n) < 0.8, base, rng.integers(0, count, n))
    return {
        "base": _texts(spellings, base + odd * count * rng.integers(1, 4, n)),
        "affiliated": _texts(_FHV_BASES, affiliated, rng.random(n) < 0.1),
        "pu": _ints(_zones(rng, n), rng.random(n) < 0.2),
        "do": _ints(_zones(rng, n), rng.random(n) < 0.1),
        "sr_flag": _ints(np.ones(n), rng.random(n) >= 0.05),
    }


def _fhvhv_fields(b: _Block, trips: _Trips) -> dict[str, pa.Array]:
    rng, n, ym = b.rng, b.n, b.ym
    license_ = rng.choice(len(_HV_LICENSES), n, p=[0.005, 0.72, 0.005, 0.27])
    lyft = license_ == 3
    base = _HV_FIRST_BASE[license_] + (rng.random(n) * _HV_BASE_COUNT[license_]).astype(np.int64)
    request = trips.pickup - rng.integers(60, 900, n)
    on_scene = request + ((trips.pickup - request) * rng.random(n)).astype(np.int64)
    fare = np.round(np.clip(3.0 + 1.75 * trips.distance + 0.45 * trips.duration / 60, 2.5, 80.0), 2)
    blank = rng.random(n) < 0.002
    return {
        "license": _texts(_HV_LICENSES, license_),
        "base": _texts(_HV_BASES, base),
        "originating": _texts(_HV_BASES, base, lyft | (rng.random(n) < 0.02)),
        "request": _seconds(request),
        "on_scene": _seconds(on_scene, lyft),
        "pu": _ints(_zones(rng, n)),
        "do": _ints(_zones(rng, n)),
        "distance": _floats(trips.distance),
        "trip_time": _ints(trips.duration),
        "fare": _floats(fare),
        "tolls": _floats(np.where(rng.random(n) < 0.05, 6.55, 0.0)),
        "bcf": _floats(np.round(fare * 0.0275, 2)),
        "sales_tax": _floats(np.round(fare * 0.08875, 2)),
        "congestion": _floats(np.where(rng.random(n) < 0.4, 2.75, 0.0)),
        "airport_fee": _floats(np.where(rng.random(n) < 0.05, 2.5, 0.0), rng.random(n) < 0.005),
        "tip": _floats(np.where(rng.random(n) < 0.15, np.round(fare * rng.uniform(0.1, 0.25, n), 2), 0.0)),
        "driver_pay": _floats(np.round(fare * rng.uniform(0.6, 0.85, n), 2)),
        "cbd_fee": _floats(np.where(rng.random(n) < 0.6, 1.5, 0.0) * (ym >= _CBD_FEE)),
        "shared_request": _texts(_FLAGS, np.where(blank, 2, rng.random(n) < 0.03)),
        "shared_match": _texts(_FLAGS, np.where(blank, 2, rng.random(n) < 0.01)),
        "access_a_ride": _texts(_FLAGS, np.where(lyft, 2, 0)),
        "wav_request": _texts(_FLAGS, np.where(blank, 2, rng.random(n) < 0.05)),
        "wav_match": _texts(_FLAGS, rng.random(n) < 0.1),
        "sr_flag": _ints(np.ones(n), rng.random(n) >= 0.03),
    }


_SERVICE_FIELDS: dict[str, Callable[[_Block, _Trips], dict[str, pa.Array]]] = {
    "yellow": _taxi_fields,
    "green": _taxi_fields,
    "fhv": _fhv_fields,
    "fhvhv": _fhvhv_fields,
}


def _zones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Zone ids 1..265 skewed like the real data: a few busy zones and a long tail."""
    weights = 1.0 / np.arange(1, 266) ** 0.9
    busiest_first = np.random.default_rng(265).permutation(265) + 1
    return busiest_first[rng.choice(265, n, p=weights / weights.sum())]


def _seconds(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, type=pa.timestamp("s"), mask=null)


def _ints(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), mask=null)


def _floats(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64), mask=null)


def _texts(vocab: tuple[str, ...], index: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(vocab, pa.string()).take(pa.array(np.asarray(index, dtype=np.int64), mask=null))
