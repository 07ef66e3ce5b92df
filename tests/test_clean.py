"""Clean on real files in every service's real layouts: exact counts, one schema, nothing lost."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_luigi import clean, rawcsv, services
from taxi_luigi.demo import sample
from taxi_luigi.source import file_format


def run_clean(path: Path, service: str, year: int, month: int, out: Path) -> tuple[dict, clean.Outputs]:
    outputs = clean.Outputs(out / f"{path.name}.clean.parquet", out / f"{path.name}.q.parquet")
    report = clean.clean_month(
        path,
        file_format(path.name),
        services.service(service),
        dt.date(year, month, 1),
        outputs,
        label=f"{service} {year}-{month:02d}",
    )
    return report, outputs


# (service, year, month, format, quirks): the drift the real files show, one case each.
CASES = [
    ("yellow", 2020, 7, "tlc", ()),  # airport_fee of no type (arrow null)
    ("yellow", 2020, 8, "tlc", ()),  # airport_fee double
    ("yellow", 2023, 1, "tlc", ()),  # passenger_count/RatecodeID double, int64 ids
    ("yellow", 2023, 2, "tlc", ()),  # Airport_fee, int32 ids, int64 counts, large_string
    ("yellow", 2025, 1, "tlc", ()),  # + cbd_congestion_fee
    ("yellow", 2021, 4, "tlc", ("ns_timestamps", "index_column", "text_passenger_count", "no_vendor_rows")),
    ("yellow", 2019, 1, "dtc", ()),  # integers written as integers
    ("yellow", 2020, 6, "dtc", ()),  # "1.0" floats and rows with no vendor
    ("green", 2019, 9, "tlc", ()),  # ehail_fee of no type
    ("green", 2023, 2, "tlc", ()),
    ("green", 2020, 3, "dtc", ()),
    ("fhv", 2019, 2, "tlc", ()),  # SR_Flag double, PUlocationID double
    ("fhv", 2019, 5, "tlc", ()),  # PUlocationID int64, SR_Flag of no type
    ("fhv", 2023, 2, "tlc", ()),
    ("fhv", 2019, 6, "dtc", ()),  # dropOff_datetime, PUlocationID
    ("fhv", 2020, 6, "dtc", ()),  # dropoff_datetime, PULocationID
    ("fhvhv", 2019, 2, "tlc", ()),  # airport_fee and wav_match_flag of no type
    ("fhvhv", 2023, 2, "tlc", ()),
    ("fhvhv", 2025, 1, "tlc", ()),
    ("fhvhv", 2021, 1, "dtc", ()),  # the old 7-column HVFHV csv
]


@pytest.mark.parametrize(("service", "year", "month", "fmt", "quirks"), CASES)
def test_counts_are_exact_and_the_schema_is_canonical(tmp_path, service, year, month, fmt, quirks):
    truth = sample.write_month(tmp_path / "m", service, year, month, fmt, 3000, frozenset(quirks))
    report, out = run_clean(truth.path, service, year, month, tmp_path / "out")
    svc = services.service(service)

    assert report["rows_in"] == truth.rows == 3000
    assert report["quarantine_by_reason"] == truth.reasons
    assert report["rows_clean"] == truth.clean
    assert report["rows_in"] == report["rows_clean"] + report["rows_quarantined"]
    assert pq.read_schema(out.data).remove_metadata() == svc.arrow_schema()
    assert pq.read_metadata(out.data).num_rows == truth.clean
    quarantine = pq.read_table(out.quarantine)
    assert quarantine.schema.remove_metadata() == svc.quarantine_schema()
    assert quarantine.num_rows == sum(truth.reasons.values())

    with duckdb.connect() as con:
        start, end = dt.datetime(year, month, 1), dt.datetime(year + month // 12, month % 12 + 1, 1)
        bad = con.execute(
            "SELECT count(*) FROM read_parquet(?) WHERE pickup_datetime IS NULL OR pickup_datetime < ? "
            "OR pickup_datetime >= ? OR dropoff_datetime < pickup_datetime OR source_month <> ?",
            [str(out.data), start, end, dt.date(year, month, 1)],
        ).fetchone()[0]
        assert bad == 0
        if svc.has_passenger_count:
            zero = con.execute(
                "SELECT count(*) FROM read_parquet(?) WHERE passenger_count = 0", [str(out.data)]
            ).fetchone()[0]
            assert zero == 0
    assert report["pickup_min"] >= start.isoformat() and report["pickup_max"] < end.isoformat()


def test_every_month_of_a_drifting_year_writes_the_identical_schema(tmp_path):
    schemas = set()
    for month, quirks in [(1, ()), (2, ()), (3, ("ns_timestamps",)), (4, ("text_passenger_count", "index_column"))]:
        truth = sample.write_month(tmp_path / "m", "yellow", 2023, month, "tlc", 200, frozenset(quirks))
        _, out = run_clean(truth.path, "yellow", 2023, month, tmp_path / "out")
        schemas.add(pq.read_schema(out.data).remove_metadata().to_string())
    csv_truth = sample.write_month(tmp_path / "m", "yellow", 2020, 5, "dtc", 200)
    _, out = run_clean(csv_truth.path, "yellow", 2020, 5, tmp_path / "out")
    schemas.add(pq.read_schema(out.data).remove_metadata().to_string())
    assert len(schemas) == 1


def test_values_are_mapped_by_name_and_kept(tmp_path):
    """Hand-written rows: every drift in one file, checked value by value."""
    src = tmp_path / "yellow_tripdata_2023-02.parquet"
    ts = pa.timestamp("ns")
    pq.write_table(
        pa.table(
            {
                "VendorID": pa.array([1, None, 2, 2], pa.int32()),
                "tpep_pickup_datetime": pa.array(
                    [dt.datetime(2023, 2, 1, 8), dt.datetime(2023, 2, 2), None, dt.datetime(2023, 1, 31)], ts
                ),
                "tpep_dropoff_datetime": pa.array([dt.datetime(2023, 2, 1, 9), None, None, None], ts),
                "passenger_count": pa.array(["1.0", "", "0", "2"], pa.large_string()),
                "store_and_fwd_flag": pa.array([" N ", "", None, "Y"], pa.large_string()),
                "total_amount": pa.array([10.5, 3.0, None, 7.0]),
                "Airport_fee": pa.array([1.25, None, None, None]),
                "ehail_fee": pa.array([None] * 4, pa.null()),
                "request_source": pa.array(["app", None, "street", "app"]),
                "__index_level_0__": pa.array([0, 1, 2, 3]),
            }
        ),
        src,
    )
    report, out = run_clean(src, "yellow", 2023, 2, tmp_path / "out")
    rows = pq.read_table(out.data).to_pylist()
    assert [r["vendor_id"] for r in rows] == [1, None]
    assert rows[0]["passenger_count"] == 1 and rows[1]["passenger_count"] is None  # empty is unknown, not 0
    assert rows[0]["store_and_fwd_flag"] == "N" and rows[1]["store_and_fwd_flag"] is None
    assert rows[0]["airport_fee"] == 1.25
    assert rows[0]["pickup_datetime"] == dt.datetime(2023, 2, 1, 8)
    assert json.loads(rows[0]["other_columns"]) == {"ehail_fee": None, "request_source": "app"}
    assert report["other_columns"] == ["ehail_fee", "request_source"]
    assert report["ignored_columns"] == ["__index_level_0__"]
    assert report["column_map"]["airport_fee"] == "Airport_fee"
    quarantined = {r["reason"]: r for r in pq.read_table(out.quarantine).to_pylist()}
    assert set(quarantined) == {"passenger_count_zero", "pickup_outside_month"}
    assert quarantined["passenger_count_zero"]["passenger_count"] == "0"
    assert quarantined["pickup_outside_month"]["pickup_datetime"].startswith("2023-01-31")
    assert report["null_counts"]["vendor_id"] == 1 and report["null_counts"]["dropoff_datetime"] == 1


def test_unparseable_pickup_is_quarantined_with_its_original_text(tmp_path):
    src = tmp_path / "fhv_tripdata_2020-01.csv"
    src.write_text(
        "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag,Affiliated_base_number\n"
        " b00013 ,2020-01-01 00:15:00,2020-01-01 00:30:00,1.0,264,,B00013\n"
        "B00014,31/01/2020 10:00,2020-01-31 10:20:00,,,1,\n"
        "B00015,,2020-01-05 10:00:00,5,6,,\n"
    )
    report, out = run_clean(src, "fhv", 2020, 1, tmp_path / "out")
    assert report["quarantine_by_reason"]["missing_pickup"] == 2
    clean_row = pq.read_table(out.data).to_pylist()[0]
    assert clean_row["dispatching_base_num"] == "B00013" and clean_row["pu_location_id"] == 1
    texts = sorted(r["pickup_datetime"] or "" for r in pq.read_table(out.quarantine).to_pylist())
    assert texts == ["", "31/01/2020 10:00"]


def test_rows_the_csv_grammar_cannot_place_are_quarantined_whole_with_their_line(tmp_path):
    """Extra fields that are not empty, fewer fields than the header, an unbalanced quote: the month loads,
    and each such row is kept as its raw line with its number; empty extra fields are only dropped."""
    src = tmp_path / "fhv_tripdata_2020-01.csv"
    lines = [
        "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag,Affiliated_base_number",
        "B00013,2020-01-01 00:15:00,2020-01-01 00:30:00,1,264,,B00013",
        "B00014,2020-01-01 00:15:00,2020-01-01 00:30:00,1,264,,B00013,extra,fields",
        "B00015,2020-01-01 00:15:00,2020-01-01 00:30:00",
        'B00016,"2020-01-01 00:15:00,2020-01-01 00:30:00,1,264,,B00013',
        "B00017,2020-01-01 00:15:00,2020-01-01 00:30:00,1,264,,B00013,,",
        "B00018,2020-01-02 00:15:00,2020-01-02 00:30:00,2,265,,B00013",
    ]
    src.write_text("\n".join(lines) + "\n")
    report, out = run_clean(src, "fhv", 2020, 1, tmp_path / "out")

    assert (report["rows_in"], report["rows_clean"], report["rows_quarantined"]) == (6, 3, 3)
    assert report["quarantine_by_reason"]["malformed_row"] == 3
    malformed = pq.read_table(out.quarantine, columns=["reason", "line_number", "raw_line"]).to_pylist()
    assert malformed == [{"reason": "malformed_row", "line_number": n, "raw_line": lines[n - 1]} for n in (3, 4, 5)]
    bases = pq.read_table(out.data, columns=["dispatching_base_num"]).column(0).to_pylist()
    assert sorted(bases) == ["B00013", "B00017", "B00018"]
    assert report["csv"]["empty_fields_dropped"] == 2


def test_crlf_line_ends_quotes_and_a_blank_line_after_the_header_are_read(tmp_path):
    """The pre-2022 TLC csvs end lines with CRLF and some have a blank line after the header."""
    src = tmp_path / "yellow_tripdata_2018-01.csv"
    src.write_bytes(
        b"VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,total_amount\r\n\r\n"
        b'1,2018-01-01 00:00:00,2018-01-01 00:10:00,1,5.5\r\n2,"2018-01-02 00:00:00",2018-01-02 00:10:00,,6\r\n'
    )
    report, out = run_clean(src, "yellow", 2018, 1, tmp_path / "out")
    assert report["rows_in"] == report["rows_clean"] == 2
    rows = pq.read_table(out.data, columns=["vendor_id", "pickup_datetime", "passenger_count"]).to_pylist()
    assert rows == [
        {"vendor_id": 1, "pickup_datetime": dt.datetime(2018, 1, 1), "passenger_count": 1},
        {"vendor_id": 2, "pickup_datetime": dt.datetime(2018, 1, 2), "passenger_count": None},
    ]


def test_2009_codes_coordinates_and_flags_map_onto_the_modern_values(tmp_path):
    """Coded text in any case, padded or quoted; numbers as themselves; unknown text, 0 coordinates: null."""
    src = tmp_path / "yellow_tripdata_2009-01.parquet"
    n = 7
    pq.write_table(
        pa.table(
            {
                "vendor_name": ["CMT", ' "vts" ', "dds", "XYZ", None, "2", "Cmt"],
                "Trip_Pickup_DateTime": [f"2009-01-0{i + 1} 10:00:00" for i in range(n)],
                "Trip_Dropoff_DateTime": [f"2009-01-0{i + 1} 10:20:00" for i in range(n)],
                "Passenger_Count": pa.array([1] * n, pa.int64()),
                "Start_Lon": [-73.99, 0.0, None, -73.9, -73.9, -73.9, 0.0],
                "store_and_forward": [1.0, 0.0, None, 0.0, 1.0, 0.0, 0.0],
                "Payment_Type": ["CASH", "Credit", " no charge ", "'Dis'", "UNK", "CRD", "NOPE"],
                "Total_Amt": [1.0] * n,
                "improvement_surcharge": pa.nulls(n),
            }
        ),
        src,
    )
    report, out = run_clean(src, "yellow", 2009, 1, tmp_path / "out")
    assert report["rows_clean"] == n
    columns = ["vendor_id", "payment_type", "store_and_fwd_flag", "pickup_longitude", "improvement_surcharge"]
    table = pq.read_table(out.data, columns=["pickup_datetime", *columns]).sort_by("pickup_datetime")
    rows = [tuple(r.values())[1:] for r in table.to_pylist()]
    assert rows == [
        (1, 2, "Y", -73.99, None),
        (2, 1, "N", None, None),
        (3, 3, None, None, None),
        (None, 4, "N", -73.9, None),
        (None, 5, "Y", -73.9, None),
        (2, 1, "N", -73.9, None),
        (1, None, "N", None, None),
    ]


def test_a_uuid_past_the_header_stops_the_month_rather_than_passing_for_empty(tmp_path):
    """Fields past the header are typed UUID, so that anything but an empty one is set aside; a UUID itself
    would parse there, so the read stops and says so instead of dropping it (no TLC file has one)."""
    src = tmp_path / "fhv_tripdata_2020-01.csv"
    header = "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"
    row = "B00013,2020-01-01 00:15:00,2020-01-01 00:30:00,1,264,"
    src.write_text(f"{header}\n{row},\n{row},123e4567-e89b-12d3-a456-426614174000\n")
    with pytest.raises(clean.CleanError, match="has a UUID in a field past the header's columns"):
        run_clean(src, "fhv", 2020, 1, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_row_the_lenient_read_would_cut_short_sends_the_month_to_the_strict_read(tmp_path):
    """Past the first megabyte (what the dialect is read from), a row with empty fields beyond the header:
    the lenient reader drops them silently, the separators' count disagrees, and the strict read of a copy
    with one line ending sets the row aside, where it is kept with its fields."""
    src = tmp_path / "fhv_tripdata_2020-01.csv"
    header = "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag"
    rows = [f"B{i:05d},2020-01-01 00:15:00,2020-01-01 00:30:00,1,264," for i in range(25_000)]
    rows[-1] += ",,"  # two more, empty: not malformed
    src.write_text("\r\n".join([header, *rows]) + "\r\n")
    assert src.stat().st_size > rawcsv.SNIFF_BYTES

    report, out = run_clean(src, "fhv", 2020, 1, tmp_path / "out")

    assert (report["rows_in"], report["rows_clean"], report["rows_quarantined"]) == (25_000, 25_000, 0)
    assert report["csv"]["read"] == "strict, one line ending"
    assert report["csv"]["empty_fields_dropped"] == 2
    assert pq.read_table(out.data, columns=["dispatching_base_num"]).column(0).to_pylist()[-1] == "B24999"


def test_a_column_refused_on_many_rows_is_read_again_as_text_and_each_row_written_once(tmp_path):
    """One row in twenty spells passenger_count as a word: DuckDB's typed read refuses over 1 % of the
    rows, so the month is read again with that column as text, and the first read's rows are replaced,
    not added to. Expected figures from Python's csv and gzip modules."""
    header = ["VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "passenger_count", "total_amount"]
    lines = [
        [
            str(1 + i % 2),
            f"2021-01-{1 + i % 28:02d} 10:00:00",
            f"2021-01-{1 + i % 28:02d} 10:20:00",
            "two" if i % 20 == 0 else str(i % 4),
            f"{i % 50}.25",
        ]
        for i in range(4_000)
    ]
    src = tmp_path / "yellow_tripdata_2021-01.csv.gz"
    src.write_bytes(gzip.compress("\n".join(",".join(row) for row in [header, *lines]).encode() + b"\n"))

    report, out = run_clean(src, "yellow", 2021, 1, tmp_path / "out")

    rows = list(csv.DictReader(io.StringIO(gzip.decompress(src.read_bytes()).decode())))
    zero = [r for r in rows if r["passenger_count"] == "0"]
    clean_rows = [r for r in rows if r["passenger_count"] != "0"]
    assert (report["rows_in"], report["rows_clean"]) == (len(rows), len(clean_rows))
    assert report["quarantine_by_reason"]["passenger_count_zero"] == len(zero)
    assert report["csv"]["rows_read_again_as_text"] == 0  # the column was read as text, not row by row
    table = pq.read_table(out.data, columns=["passenger_count", "total_amount"])
    words = sum(r["passenger_count"] == "two" for r in clean_rows)
    assert table["passenger_count"].null_count == report["null_counts"]["passenger_count"] == words
    assert pc.sum(table["total_amount"]).as_py() == pytest.approx(sum(float(r["total_amount"]) for r in clean_rows))
    quarantined = pq.read_table(out.quarantine, columns=["passenger_count"]).column(0).to_pylist()
    assert quarantined == ["0"] * len(zero)


def test_a_quarantined_row_keeps_each_value_as_read(tmp_path):
    """Quarantined rows keep every source value as text, whether the scan passed it through or a clean
    column held it unchanged (amounts and times): numbers as DuckDB prints the DOUBLE it read, times as
    timestamps print, text as written. Expected values from Python's csv module."""
    header = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,store_and_fwd_flag,fare_amount"
    lines = [
        "1,2021-01-03 10:00:00,2021-01-03 10:20:00,2,N,12.50",
        "2,2021-01-04 11:00:00,2021-01-04 11:05:00,0,Y,7",  # passenger_count_zero
        "1,2021-01-05 12:00:00,2021-01-05 11:00:00,1,N,.5",  # dropoff_before_pickup
    ]
    src = tmp_path / "yellow_tripdata_2021-01.csv"
    src.write_text("\n".join([header, *lines]) + "\n")

    report, out = run_clean(src, "yellow", 2021, 1, tmp_path / "out")

    rows = list(csv.DictReader(io.StringIO(src.read_text())))
    assert (report["rows_clean"], report["rows_quarantined"]) == (1, 2)
    quarantined = sorted(pq.read_table(out.quarantine).to_pylist(), key=lambda r: r["reason"])
    for row, source, reason in zip(
        quarantined, rows[2:0:-1], ["dropoff_before_pickup", "passenger_count_zero"], strict=True
    ):
        assert row["reason"] == reason
        assert row["vendor_id"] == str(float(source["VendorID"]))
        assert row["pickup_datetime"] == str(dt.datetime.fromisoformat(source["tpep_pickup_datetime"]))
        assert row["dropoff_datetime"] == str(dt.datetime.fromisoformat(source["tpep_dropoff_datetime"]))
        assert row["passenger_count"] == str(float(source["passenger_count"]))
        assert row["store_and_fwd_flag"] == source["store_and_fwd_flag"]
        assert row["fare_amount"] == str(float(source["fare_amount"]))
