"""Every era of the TLC parquet files, from each service's first file, through the real pipeline into one table.

The files are the sample generator's, in each era's real layout (docs/schema.md, "Eras"), served over
HTTP on 127.0.0.1. Counts are compared with the generator's truths; the 2009-2010 values are compared,
row for row, with an oracle written here in plain Python from the research notes, not from services.py.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import services
from taxi_luigi.demo import sample
from taxi_luigi.tasks import TaxiYear

ROWS = 1500

# The research's code tables (tlc-data.md §4), spelled out again so the test does not read services.py.
VENDORS = {"CMT": 1, "VTS": 2, "DDS": 3}
PAYMENTS = {"CREDIT": 1, "CRE": 1, "CRD": 1, "CASH": 2, "CAS": 2, "CSH": 2}
PAYMENTS |= {"NO CHARGE": 3, "NOC": 3, "NO": 3, "DISPUTE": 4, "DIS": 4}
FLAGS = {1.0: "Y", 0.0: "N", "1": "Y", "0": "N"}


def test_the_sample_writes_every_documented_era():
    """The generator's layouts are the eras services.py documents, column for column."""
    for era in services.ERAS:
        year, month = map(int, era.first.split("-"))
        table, _ = sample.month_table(era.service, year, month, "tlc", 10)
        written = [(f.name, str(f.type)) for f in table.schema if f.name != "__index_level_0__"]
        assert [name for name, _ in written] == [name for name, _ in era.source_columns], era
        for (name, type_), (_, documented) in zip(written, era.source_columns, strict=True):
            assert type_ in (*documented.split("|"), "null"), (era.service, era.first, name, type_)


def test_every_service_starts_at_its_first_file_and_every_month_is_accepted():
    first = {name: f"{svc.first_month:%Y-%m}" for name, svc in services.SERVICES.items()}
    assert first == {"yellow": "2009-01", "green": "2013-08", "fhv": "2015-01", "fhvhv": "2019-02"}
    for name, svc in services.SERVICES.items():
        services.check_month(svc, svc.first_month)
        assert svc.first_loadable == svc.first_month
        sample.month_table(name, svc.first_month.year, svc.first_month.month, "tlc", 1)  # the generator agrees
        with pytest.raises(ValueError, match="no tlc source file"):
            prev = svc.first_month - dt.timedelta(days=1)
            sample.month_table(name, prev.year, prev.month, "tlc", 1)


def _when(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _code(table: dict, value: str | None) -> int | None:
    return None if value is None else table.get(value.replace('"', "").replace("'", "").strip().upper())


def _coordinate(value: float | None) -> float | None:
    return None if value in (None, 0.0) else value


def oracle(year: int, month: int) -> tuple[Counter, Counter]:
    """The clean rows of a 2009/2010 sample month as the canonical table must hold them, and the reasons."""
    table, _ = sample.month_table("yellow", year, month, "tlc", ROWS)
    names = table.column_names
    start = dt.datetime(year, month, 1)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1)
    clean, reasons = Counter(), Counter()
    for values in table.to_pylist():
        v = [values[n] for n in names]  # by position: 2009 and 2010 share the column order
        pickup, dropoff, passengers = _when(v[1]), _when(v[2]), v[3]
        if passengers == 0:
            reasons["passenger_count_zero"] += 1
        elif pickup is None:
            reasons["missing_pickup"] += 1
        elif dropoff is not None and dropoff < pickup:
            reasons["dropoff_before_pickup"] += 1
        elif not start <= pickup < end:
            reasons["pickup_outside_month"] += 1
        else:
            flag = FLAGS.get(v[8])
            coords = tuple(_coordinate(v[i]) for i in (5, 6, 9, 10))
            clean[(pickup, _code(VENDORS, v[0]), _code(PAYMENTS, v[11]), flag, *coords, v[17])] += 1
    return clean, reasons


def _query(pipeline, sql: str, *params) -> list[tuple]:
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.mark.slow
def test_yellow_2009_and_2010_load_beside_2023_in_one_table(mirror, pipeline):
    months = [(2009, 1), (2010, 1), (2010, 2), (2023, 1)]
    truths = {(y, m): sample.write_month(mirror.root, "yellow", y, m, "tlc", ROWS) for y, m in months}
    pipeline.configure(mirror.template())

    result = pipeline.run(*(TaxiYear(service="yellow", year=y, months=str(m)) for y, m in months))

    assert result.status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {f"{y}-{m:02d}": t.clean for (y, m), t in truths.items()}
    by_reason = _query(pipeline, "SELECT source_month, reason, count(*) FROM yellow_tripdata_quarantine GROUP BY 1, 2")
    for (y, m), truth in truths.items():
        got = {reason: n for month, reason, n in by_reason if month == dt.date(y, m, 1)}
        assert got == {reason: n for reason, n in truth.reasons.items() if n}, (y, m)
    for y, m in months[:3]:
        expected, reasons = oracle(y, m)
        assert dict(reasons) == {reason: n for reason, n in truths[(y, m)].reasons.items() if n}
        rows = _query(
            pipeline,
            "SELECT pickup_datetime, vendor_id, payment_type, store_and_fwd_flag, pickup_longitude, pickup_latitude, "
            "dropoff_longitude, dropoff_latitude, total_amount FROM yellow_tripdata WHERE source_month = ?",
            dt.date(y, m, 1),
        )
        assert Counter(rows) == expected, (y, m)
        vendors = {r[1] for r in rows}
        payments = {r[2] for r in rows}
        assert vendors == {1, 2, 3} and payments == {1, 2, 3, 4, None}  # 'XYZ' is null
        assert {r[3] for r in rows} == {"Y", "N"}
        assert any(r[4] is None for r in rows) and all(r[4] != 0 for r in rows)  # 0 -> null
    # The zone ids stay null before 2011 (no zones in the files); the coordinates are null after.
    nulls = _query(
        pipeline,
        "SELECT year(source_month) >= 2011, count(pu_location_id), count(do_location_id), count(pickup_longitude), "
        "count(dropoff_latitude), count(*) FROM yellow_tripdata GROUP BY 1 ORDER BY 1",
    )
    old, new = nulls
    assert old[1:3] == (0, 0) and old[3] > 0.9 * old[5] and old[4] > 0.9 * old[5]
    assert new[1] == new[2] == new[5] and new[3:5] == (0, 0)
    # Columns of the modern era are null in the old one, not missing.
    assert _query(
        pipeline,
        "SELECT count(improvement_surcharge), count(congestion_surcharge), count(airport_fee) "
        "FROM yellow_tripdata WHERE year(source_month) < 2011",
    ) == [(0, 0, 0)]
    reports = {f"{r['month']:%Y-%m}": r["rows"] for r in pipeline.warehouse.load_log("yellow")}
    assert reports == {f"{y}-{m:02d}": t.clean for (y, m), t in truths.items()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "months", "null_typed"),
    [
        ("green", [(2013, 8), (2013, 12), (2014, 1)], ("improvement_surcharge", "congestion_surcharge")),
        ("fhv", [(2015, 1)], ()),
        ("fhvhv", [(2019, 2)], ("airport_fee", "wav_match_flag")),
    ],
)
def test_each_service_loads_from_its_first_file(mirror, pipeline, service, months, null_typed):
    truths = {(y, m): sample.write_month(mirror.root, service, y, m, "tlc", ROWS) for y, m in months}
    schema = pq.read_schema(truths[months[0]].path)
    assert all(str(schema.field(services.service(service).column(c).sources[0]).type) == "null" for c in null_typed)
    pipeline.configure(mirror.template())

    result = pipeline.run(*(TaxiYear(service=service, year=y, months=str(m)) for y, m in months))

    assert result.status == LuigiStatusCode.SUCCESS
    table = services.service(service).table
    assert pipeline.counts(table) == {f"{y}-{m:02d}": t.clean for (y, m), t in truths.items()}
    by_reason = _query(pipeline, f"SELECT source_month, reason, count(*) FROM {table}_quarantine GROUP BY 1, 2")
    for (y, m), truth in truths.items():
        got = {reason: n for month, reason, n in by_reason if month == dt.date(y, m, 1)}
        assert got == {reason: n for reason, n in truth.reasons.items() if n}, (y, m)
    for column in null_typed:  # a column of no type loads as null of its canonical type
        assert _query(pipeline, f"SELECT count({column}) FROM {table} WHERE year(source_month) <= 2019") == [(0,)]
