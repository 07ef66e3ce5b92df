"""The TLC's own files, every era of every service, through the card's task (TaxiYear): each month exact.

The files are ../shared/real-samples (see its SOURCES.md), read where they lie and never copied into the
repository: the first 1,024 bytes of the TLC's monthly CSVs as served in 2020 (the copier cut the last
line, which is dropped here), longer heads of some months, and complete TLC parquet months. The expected
figures come from a reader of this file's own, Python's csv module and pyarrow, with its own table of
spellings and codes taken from the TLC's data dictionaries: never from DuckDB or taxi_luigi.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import REAL
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import services
from taxi_luigi.tasks import TaxiYear

HEADS = "nju-wcj__tlc__head1024"
pytestmark = pytest.mark.usefixtures("real_samples")


# The test's own spellings (lower case, stripped), from the TLC's data dictionaries and the files' headers.
PICKUP = ("tpep_pickup_datetime", "lpep_pickup_datetime", "trip_pickup_datetime", "pickup_datetime", "pickup_date")
DROPOFF = ("tpep_dropoff_datetime", "lpep_dropoff_datetime", "trip_dropoff_datetime", "dropoff_datetime")
TOTAL = ("total_amount", "total_amt")
VENDOR = ("vendorid", "vendor_id", "vendor_name")
BASE = ("dispatching_base_number", "dispatching_base_num")  # fhv 2018 has both: the first filled one
PU_ZONE = ("pulocationid", "locationid")
VENDORS = {"CMT": 1, "VTS": 2, "DDS": 3}  # Creative Mobile, VeriFone, Digital Dispatch Systems
PAYMENTS = {  # 1 credit card, 2 cash, 3 no charge, 4 dispute, 5 unknown
    **dict.fromkeys(("CREDIT", "CRE", "CRD"), 1),
    **dict.fromkeys(("CASH", "CAS", "CSH"), 2),
    **dict.fromkeys(("NO CHARGE", "NOC"), 3),
    **dict.fromkeys(("DISPUTE", "DIS"), 4),
    **dict.fromkeys(("UNKNOWN", "UNK", "NA"), 5),
}


@dataclass
class Month:
    """What a month's file holds, by this file's reader."""

    rows_in: int = 0
    reasons: Counter = field(default_factory=Counter)
    total: float = 0.0
    vendors: Counter = field(default_factory=Counter)
    payments: Counter = field(default_factory=Counter)
    bases: Counter = field(default_factory=Counter)
    pickup_zones: Counter = field(default_factory=Counter)
    no_dropoff: int = 0
    empty_extra: int = 0  # empty fields past the header (the TLC's trailing ",,")

    @property
    def clean(self) -> int:
        return self.rows_in - sum(self.reasons.values())


def _time(text: str | None) -> dt.datetime | None:
    text = (text or "").strip()
    if text.endswith("Z"):  # the DataTalksClub fhvhv csv: Spark's UTC rendering of the TLC's wall-clock times
        text = text[:-1]
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _code(text: str | None, codes: dict[str, int]) -> int | None:
    text = (text or "").strip().strip("\"'").upper()
    if (number := _number(text)) is not None:
        return int(number)
    return codes.get(text)


def _first(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((row[n] for n in names if row.get(n)), None)


def _rule(month: dt.date, row: dict, passengers: bool) -> str | None:
    """The first quarantine rule the row breaks, as the TLC's data dictionary makes them plain."""
    pickup, dropoff = _time(_first(row, PICKUP)), _time(_first(row, DROPOFF))
    if passengers and _number(row.get("passenger_count")) == 0:
        return "passenger_count_zero"
    if pickup is None:
        return "missing_pickup"
    if dropoff is not None and dropoff < pickup:
        return "dropoff_before_pickup"
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    if not dt.datetime.combine(month, dt.time()) <= pickup < dt.datetime.combine(following, dt.time()):
        return "pickup_outside_month"
    return None


def _count_clean(expected: Month, row: dict) -> None:
    expected.total += _number(_first(row, TOTAL)) or 0.0
    expected.vendors[_code(_first(row, VENDOR), VENDORS)] += 1
    expected.payments[_code(row.get("payment_type"), PAYMENTS)] += 1
    expected.bases[(_first(row, BASE) or "").strip().upper() or None] += 1
    zone = _number(_first(row, PU_ZONE))
    expected.pickup_zones[None if zone is None else int(zone)] += 1
    expected.no_dropoff += _time(_first(row, DROPOFF)) is None


def read_csv_month(data: bytes, service: str, month: dt.date) -> Month:
    """The month by Python's csv module, line by line: blank lines are no rows, a line that does not fit
    the header (fields past it that are not empty, too few fields, an unbalanced quote) is malformed."""
    lines = [line.rstrip("\r") for line in data.decode("utf-8").split("\n")]
    names = [name.strip().lower() for name in next(csv.reader([lines[0]]))]
    expected = Month()
    for line in lines[1:]:
        if not line:
            continue
        expected.rows_in += 1
        try:
            values = next(csv.reader([line], strict=True))
        except csv.Error:
            values = []
        if len(values) < len(names) or any(values[len(names) :]):
            expected.reasons["malformed_row"] += 1
            continue
        expected.empty_extra += len(values) - len(names)
        row = dict(zip(names, values, strict=False))
        if reason := _rule(month, row, service in ("yellow", "green")):
            expected.reasons[reason] += 1
        else:
            _count_clean(expected, row)
    return expected


def read_parquet_month(path: Path, month: dt.date) -> Month:
    """A TLC parquet month by pyarrow: the rules as array comparisons."""
    table = pq.read_table(path)
    names = {n.lower(): n for n in table.column_names}
    column = {
        key: table[names[next(n for n in spellings if n in names)]]
        for key, spellings in (("pickup", PICKUP), ("dropoff", DROPOFF), ("total", TOTAL), ("vendor", VENDOR))
    }
    passengers = table[names["passenger_count"]]
    start = dt.datetime.combine(month, dt.time())
    end = dt.datetime.combine((month.replace(day=28) + dt.timedelta(days=4)).replace(day=1), dt.time())
    expected = Month(rows_in=table.num_rows)
    for i in range(table.num_rows):
        pickup, dropoff = column["pickup"][i].as_py(), column["dropoff"][i].as_py()
        if passengers[i].as_py() == 0:
            expected.reasons["passenger_count_zero"] += 1
        elif pickup is None:
            expected.reasons["missing_pickup"] += 1
        elif dropoff is not None and dropoff < pickup:
            expected.reasons["dropoff_before_pickup"] += 1
        elif not start <= pickup < end:
            expected.reasons["pickup_outside_month"] += 1
        else:
            expected.total += column["total"][i].as_py() or 0.0
            vendor, payment = column["vendor"][i].as_py(), table[names["payment_type"]][i].as_py()
            expected.vendors[None if vendor is None else int(vendor)] += 1
            expected.payments[None if payment is None else int(payment)] += 1
    return expected


@dataclass(frozen=True)
class Sample:
    path: Path
    service: str
    month: dt.date

    def data(self) -> bytes:
        """The file as the TLC served it: without the copier's cut last line, for the 1,024-byte heads."""
        data = self.path.read_bytes()
        if HEADS in str(self.path) and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
        return data

    def expected(self) -> Month:
        if self.path.suffix == ".parquet":
            return read_parquet_month(self.path, self.month)
        return read_csv_month(self.data(), self.service, self.month)


def samples(service: str, source: str, first: str, last: str) -> list[Sample]:
    found = []
    for path in sorted((REAL / service / source).glob("*")):
        if (m := re.search(r"_(\d{4})-(\d{2})\.(csv|parquet)$", path.name)) and first <= f"{m[1]}-{m[2]}" <= last:
            found.append(Sample(path, service, dt.date(int(m[1]), int(m[2]), 1)))
    return found


#: Samples whose file name does not say their month: (service, folder/name, month).
NAMED = [
    ("green", "prakashy003__Data-Pipeline-Project/green_head.csv", "2019-01"),
    ("green", "OluwasinaRofiyat__DEcamp25/green_head.csv.DECOMPRESSED_PREFIX.csv", "2019-10"),
    ("fhvhv", "nickGCP2__de_zoomcamp/head.csv", "2021-01"),
]


def named(service: str, name: str, month: str) -> Sample:
    year, number = map(int, month.split("-"))
    return Sample(REAL / service / name, service, dt.date(year, number, 1))


#: Era groups: a failure names the era. (service, source folder, first month, last month, what is special)
ERAS = [
    ("yellow", HEADS, "2009-01", "2009-12", "vendor_name, Trip_Pickup_DateTime, text payments CASH/Credit"),
    ("yellow", HEADS, "2010-01", "2010-12", "vendor_id, CAS/Cas/Cre payments, LF header then a blank CRLF line"),
    ("yellow", HEADS, "2011-01", "2013-12", "CSH/CRD payments, 17-digit coordinates"),
    ("yellow", HEADS, "2014-01", "2014-12", "a space after every comma of the header"),
    ("yellow", HEADS, "2015-01", "2016-06", "RateCodeID/RatecodeID, coordinates, CRLF throughout"),
    ("yellow", HEADS, "2016-07", "2016-12", "zone ids; rows end in two empty fields past the header"),
    ("yellow", HEADS, "2017-01", "2018-12", "LF header, blank CRLF line, CRLF rows"),
    ("yellow", HEADS, "2019-01", "2020-06", "congestion_surcharge"),
    ("yellow", "bigdata-vandy__spark-taxi", "2013-01", "2015-12", "997 and 999 rows, LF only, a blank line"),
    (
        "yellow",
        "bhuvankumar007__Taxi-Demand-Prediction-using-machine-learning-techniques",
        "2015-01",
        "2016-12",
        "about 2,000 rows each, CRLF, a last line without a line break",
    ),
    ("green", HEADS, "2013-08", "2014-12", "Trip_type with a trailing space, rows with two empty fields past it"),
    ("green", HEADS, "2015-01", "2015-06", "improvement_surcharge, two empty fields past the header"),
    ("green", HEADS, "2015-07", "2016-06", "coordinates, CRLF, then the LF header again in 2016"),
    ("green", HEADS, "2016-07", "2016-12", "zone ids, two empty fields past the header"),
    ("green", HEADS, "2017-01", "2018-12", "LF header, blank CRLF line"),
    ("green", HEADS, "2019-01", "2020-06", "congestion_surcharge, pickups of the month before"),
    ("green", "fenago__datasets", "2023-12", "2024-01", "the TLC's complete parquet months"),
    ("green", "JishnuNair__aiven", "2024-01", "2024-01", "the same month after pandas: codes as double"),
    ("fhv", HEADS, "2015-01", "2016-12", "Pickup_date and locationID only: no dropoff"),
    ("fhv", HEADS, "2017-01", "2017-06", "PUlocationID/DOlocationID, often empty"),
    ("fhv", HEADS, "2017-07", "2017-12", "every field quoted, SR_Flag"),
    ("fhv", HEADS, "2018-01", "2018-12", "quoted, reordered, two base-number columns"),
    ("fhv", HEADS, "2019-01", "2020-06", "lower-case names, zones 264"),
    ("fhvhv", HEADS, "2019-02", "2020-06", "the seven-column csv"),
]


def _run(pipeline, mirror, group: list[Sample]) -> None:
    """Serve the group's files under the TLC's names and run TaxiYear for each of its years."""
    ext = group[0].path.suffix
    for s in group:
        target = mirror.root / s.service / f"{s.service}_tripdata_{s.month:%Y-%m}{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s.data())
    pipeline.configure(mirror.template(ext))
    years: dict[int, list[int]] = {}
    for s in group:
        years.setdefault(s.month.year, []).append(s.month.month)
    tasks = [TaxiYear(service=group[0].service, year=y, months=",".join(map(str, ms))) for y, ms in years.items()]
    result = pipeline.run(*tasks)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text


def _loaded(pipeline, service: str, month: dt.date) -> Month:
    table = f"{service}_tripdata"
    columns = {"yellow": "vendor_id, payment_type", "green": "vendor_id, payment_type"}.get(service)
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        loaded = Month()
        clean, total, no_dropoff = con.execute(
            f"SELECT count(*), coalesce(sum({'total_amount' if columns else '0'}), 0), "
            f"count(*) - count(dropoff_datetime) FROM {table} WHERE source_month = ?",
            [month],
        ).fetchone()
        loaded.reasons = Counter(
            dict(
                con.execute(
                    f"SELECT reason, count(*) FROM {table}_quarantine WHERE source_month = ? GROUP BY 1", [month]
                ).fetchall()
            )
        )
        loaded.rows_in = clean + sum(loaded.reasons.values())
        loaded.total, loaded.no_dropoff = total, no_dropoff
        if columns:
            for vendor, payment, n in con.execute(
                f"SELECT {columns}, count(*) FROM {table} WHERE source_month = ? GROUP BY ALL", [month]
            ).fetchall():
                loaded.vendors[vendor] += n
                loaded.payments[payment] += n
        else:
            for base, zone, n in con.execute(
                f"SELECT dispatching_base_num, pu_location_id, count(*) FROM {table} WHERE source_month = ? "
                "GROUP BY ALL",
                [month],
            ).fetchall():
                loaded.bases[base] += n
                loaded.pickup_zones[zone] += n
    return loaded


def _assert_exact(pipeline, s: Sample) -> None:
    expected, loaded = s.expected(), _loaded(pipeline, s.service, s.month)
    label = f"{s.service} {s.month:%Y-%m} ({s.path.parent.name}/{s.path.name})"
    assert loaded.rows_in == expected.rows_in, label
    if s.path.suffix == ".csv":
        name = f"{s.service}_tripdata_{s.month:%Y-%m}.quality.json"
        report = json.loads((pipeline.lake / s.service / str(s.month.year) / name).read_text())
        assert report["csv"]["empty_fields_dropped"] == expected.empty_extra, label
    assert +loaded.reasons == +expected.reasons, label
    assert loaded.clean == expected.clean > 0 or expected.rows_in == sum(expected.reasons.values()), label
    if s.service in ("yellow", "green"):
        assert math.isclose(loaded.total, expected.total, rel_tol=1e-9, abs_tol=1e-6), label
        assert loaded.vendors == expected.vendors, label
        assert loaded.payments == expected.payments, label
        assert None not in expected.payments or s.path.suffix == ".parquet", f"{label}: an unmapped payment code"
    else:
        assert loaded.bases == expected.bases, label
        assert None not in expected.bases, f"{label}: a row without a base"
        if s.service == "fhv":
            assert loaded.pickup_zones == expected.pickup_zones, label
            assert loaded.no_dropoff == expected.no_dropoff, label


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "source", "first", "last", "era"), ERAS, ids=[f"{e[0]} {e[2]}..{e[3]}" for e in ERAS]
)
def test_every_month_of_the_era_loads_exactly(pipeline, mirror, service, source, first, last, era):
    group = samples(service, source, first, last)
    assert group, f"no sample of {service} {first}..{last} in {source}"
    _run(pipeline, mirror, group)
    for s in group:
        _assert_exact(pipeline, s)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "name", "month"), NAMED, ids=[f"{n[0]} {n[2]} {n[1].split('/')[0]}" for n in NAMED]
)
def test_longer_heads_whose_names_do_not_say_the_month_load_exactly(pipeline, mirror, service, name, month):
    """green 2019-01 (99 rows, LF, a pickup of 2018-12), green 2019-10 (1,308 rows of the DataTalksClub csv),
    fhvhv 2021-01 (the 24-column layout, ISO times ending in Z, empty values written as "")."""
    s = named(service, name, month)
    _run(pipeline, mirror, [s])
    _assert_exact(pipeline, s)


#: Real files that are not what they claim, each refused by Download with what is wrong and what to do.
REFUSED = [
    (
        "green",
        "OluwasinaRofiyat__DEcamp25/green_head.csv",
        "2019-10",
        "is gzip-compressed, although its name ends in .csv",
    ),
    (
        "green",
        "Ivanvkkk__pp-proj2/green_tripdata_2022-01.parquet",
        "2022-01",
        "is not a green file (missing total_amount): it matches no TLC service",
    ),
    (
        "fhvhv",
        "danielyrigney__spark_query/head.csv",
        "2021-06",
        "is not a fhvhv file (missing hvfhs_license_num): it looks like a fhv file",
    ),
]


@pytest.mark.parametrize(("service", "name", "month", "says"), REFUSED, ids=[r[1].split("/")[0] for r in REFUSED])
def test_files_that_are_not_what_they_claim_are_refused_at_download(
    pipeline, mirror, caplog, service, name, month, says
):
    """A gzip stream cut by `head` and saved as .csv; a five-column projection of a green month; the fhv
    layout inside the DataTalksClub fhvhv release."""
    s = named(service, name, month)
    target = mirror.root / service / f"{service}_tripdata_{month}{s.path.suffix}"
    target.parent.mkdir(parents=True)
    target.write_bytes(s.path.read_bytes())
    pipeline.configure(mirror.template(s.path.suffix))

    result = pipeline.run(TaxiYear(service=service, year=s.month.year, months=str(s.month.month)))

    assert result.status == LuigiStatusCode.FAILED
    assert f"{service} {month}: {mirror.url}/{service}/{target.name} {says}" in caplog.text
    assert not list(pipeline.data.rglob("*.source.json")) and not pipeline.db.exists()


def test_the_documented_csv_eras_are_the_headers_of_the_tlc_files():
    """docs/schema.md's csv eras (services.CSV_ERAS) against the first line of every month's real file:
    the same text, byte for byte, and every month of every file in exactly one era."""
    heads = sorted(REAL.glob(f"*/{HEADS}/*.csv"))
    assert len(heads) > 250
    for path in heads:
        service, month = path.parts[-3], re.search(r"(\d{4}-\d{2})", path.name)[1]
        eras = [e for e in services.CSV_ERAS if e.service == service and e.first <= month <= e.last]
        assert len(eras) == 1, (path.name, eras)
        header = path.read_bytes().split(b"\n", 1)[0].rstrip(b"\r").decode()
        assert header == eras[0].header, path.name
