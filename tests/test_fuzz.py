"""Fuzzing what Download and Clean read, with hypothesis: malformed csv, csv.gz and parquet files.

Every file goes through source.verify (Download) and, if accepted, clean.clean_month (Clean), as
in the pipeline. It must end in clean output whose counts add up (rows_in == clean + quarantined,
and exactly the sample's counts when the change keeps the rows' meaning) or in a SourceError or
CleanError (or, for a damaged gzip, a DamagedSource) that starts with the month and names the file,
leaving no output behind. Any other
exception is a bug, and so is a hang (pytest-timeout stops it). The budget is bounded: 300
examples per test, about 30 s in all; CI runs a fixed set (derandomized), a developer's run
explores new ones; TAXI_LUIGI_FUZZ_EXAMPLES=2000 runs a longer hunt.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import clean, cli, rawcsv, services, source
from taxi_luigi.demo import sample
from taxi_luigi.tasks import TaxiYear

LABEL = "yellow 2021-03"
MONTH = dt.date(2021, 3, 1)
ROWS = 60
TABLE, REASONS = sample.month_table("yellow", 2021, 3, "dtc", ROWS)  # every column as text, as in the csv
PARQUET_TABLE, PARQUET_REASONS = sample.month_table("yellow", 2021, 3, "tlc", ROWS)
CLEAN_ROWS = ROWS - sum(REASONS.values())

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("TAXI_LUIGI_FUZZ_EXAMPLES", "300")),  # per test: ~30 s in all
    deadline=dt.timedelta(seconds=10),  # far above the ~0.1 s an example takes: a slower one is a bug
    database=None,  # no .hypothesis folder in the repo
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
)
FUZZ = settings(settings.get_profile("fuzz"))


def run_file(data: bytes, name: str) -> dict | Exception:
    """``data`` as March's raw file through verify and clean_month: the report, or the clear error."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / name
        raw.write_bytes(data)
        out_dir = Path(tmp) / "out"
        out = clean.Outputs(out_dir / "clean.parquet", out_dir / "quarantine.parquet")
        fmt = source.file_format(name)
        try:
            source.verify(raw, fmt, services.YELLOW, LABEL, name)
            report = clean.clean_month(raw, fmt, services.YELLOW, MONTH, out, label=LABEL, threads=2)
        except (source.SourceError, clean.CleanError, rawcsv.DamagedSource) as e:
            assert str(e).startswith(f"{LABEL}: "), e
            assert name in str(e), e
            assert not out_dir.exists() or not any(out_dir.iterdir())
            return e
        assert report["rows_in"] == report["rows_clean"] + report["rows_quarantined"]
        assert pq.read_metadata(out.data).num_rows == report["rows_clean"]
        assert pq.read_metadata(out.quarantine).num_rows == report["rows_quarantined"]
        return report


def assert_exact(report: dict | Exception) -> None:
    """The sample's own counts: the change kept every row's meaning."""
    assert isinstance(report, dict), report
    assert (report["rows_in"], report["rows_clean"], report["quarantine_by_reason"]) == (ROWS, CLEAN_ROWS, REASONS)


# CSV: the sample as a table of texts, changed column-wise, rendered, changed byte-wise, maybe gzipped.

NASTY = [b'"', b"\x00", b"\r", b"\n", b"\r\n", b",", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\\", b"'"]
NASTY += [b"x" * 100_000, b"1e400", b"-1", b"NaN", b"2021-03-01 00:00:00", b"\x1f\x8b", "é€".encode(), b" "]
WRONG_TYPES = ["", "abc", "1.5", "-0", "1e400", "2021-02-30 25:61:00", "99999999999999999999", "true", "'1'"]


def columns_of(header: list[str], rows: list[list[str]], order: list[int]) -> tuple[list[str], list[list[str]]]:
    return [header[i] for i in order], [[row[i] for i in order] for row in rows]


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], bool]:
    """Header and rows with columns shuffled, renamed in case, dropped or duplicated and values of the
    wrong type; and whether every row keeps its meaning (then the counts must be the sample's)."""
    header = list(TABLE.column_names)
    rows = [["" if v is None else v for v in row.values()] for row in TABLE.to_pylist()]
    keeps = True
    for op in draw(st.lists(st.sampled_from(["shuffle", "case", "drop", "dup", "wrong", "no_rows"]), max_size=3)):
        n = len(header)
        if op == "shuffle":
            header, rows = columns_of(header, rows, draw(st.permutations(range(n))))
        elif op == "case":
            header = [name.upper() if draw(st.booleans()) else name.lower() for name in header]
        elif op == "drop" and n > 1:
            gone = draw(st.integers(0, n - 1))
            header, rows = columns_of(header, rows, [i for i in range(n) if i != gone])
            keeps = False
        elif op == "dup":
            again = draw(st.integers(0, n - 1))
            header, rows = columns_of(header, rows, [*range(n), again])
            keeps = False
        elif op == "wrong" and rows:
            row, col = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, n - 1))
            rows[row][col] = draw(st.sampled_from(WRONG_TYPES) | st.text(max_size=20))
            keeps = False
        elif op == "no_rows":
            rows, keeps = [], False
    return header, rows, keeps


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, bool]:
    """A .csv or .csv.gz file's bytes, its name, and whether it keeps the sample's counts."""
    header, rows, keeps = draw(csv_tables())
    quote = draw(st.booleans())  # every field quoted: valid CSV all the same
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"mixed", b"\r"]))
    lines = [b",".join(f'"{v}"'.encode() if quote else v.encode() for v in line) for line in [header, *rows]]
    if eol == b"mixed":
        ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines), max_size=len(lines)))
        text, keeps = b"".join(line + end for line, end in zip(lines, ends, strict=True)), False
    else:
        text, keeps = eol.join(lines) + eol, keeps and eol != b"\r"
    if draw(st.booleans()):
        text = b"\xef\xbb\xbf" + text  # a UTF-8 byte order mark, as Excel writes
    for _ in range(draw(st.integers(0, 3))):
        text, keeps = mutate(draw, text), False
    if not draw(st.booleans()):
        return text, "yellow_tripdata_2021-03.csv", keeps
    packed = gzip.compress(text, mtime=0)
    if draw(st.booleans()):
        packed, keeps = mutate(draw, packed), False  # damage to the compressed bytes
    return packed, "yellow_tripdata_2021-03.csv.gz", keeps


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """One byte-level change: cut short, a byte replaced, something nasty inserted, or a stretch deleted."""
    at = draw(st.integers(0, len(data)))
    op = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    if op == "truncate":
        return data[:at]
    if op == "flip":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if op == "insert":
        return data[:at] + draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=16)) + data[at:]
    return data[:at] + data[at + draw(st.integers(1, 200)) :]


@FUZZ
@given(csv_files())
@pytest.mark.timeout(120)
def test_malformed_csv_ends_in_exact_counts_or_a_clear_error(case: tuple[bytes, str, bool]) -> None:
    data, name, keeps = case
    report = run_file(data, name)
    if keeps:
        assert_exact(report)


# Parquet: the sample with columns of other types, odd names, or damaged bytes.

ODD_ARRAYS = [
    pa.array([1] * ROWS, pa.int8()),
    pa.array([2**64 - 1] * ROWS, pa.uint64()),
    pa.array([float("nan"), float("inf")] * (ROWS // 2)),
    pa.array(["not a date", "", None] * (ROWS // 3)),
    pa.array([b"\x00\xff"] * ROWS, pa.binary()),
    pa.array([True, False] * (ROWS // 2)),
    pa.array([dt.date(2021, 3, 2)] * ROWS),
    pa.array([dt.time(1, 2)] * ROWS),
    pa.array([dt.datetime(2021, 3, 2, 1)] * ROWS, pa.timestamp("ms", tz="America/New_York")),
    pa.array([dt.datetime(9999, 12, 31), dt.datetime(1, 1, 1)] * (ROWS // 2), pa.timestamp("s")),
    pa.array([1] * ROWS, pa.decimal128(38, 10)),
    pa.array([[1, 2]] * ROWS, pa.list_(pa.int64())),
    pa.array([{"a": 1}] * ROWS),
    pa.array(["2021-03-02 01:00:00"] * ROWS).dictionary_encode(),
    pa.nulls(ROWS),
    pa.array([dt.timedelta(seconds=5)] * ROWS),
]
ODD_NAMES = ["", '"', "a,b", "tpep_pickup_datetime ", "é", "x" * 1000, "__index_level_0__", "TOTAL_AMOUNT"]


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    """The sample's parquet with a column replaced by one of another type, or dropped, duplicated or
    added under an odd name."""
    table = PARQUET_TABLE
    for op in draw(st.lists(st.sampled_from(["retype", "drop", "dup", "add", "no_rows"]), min_size=1, max_size=3)):
        i = draw(st.integers(0, table.num_columns - 1))
        odd = draw(st.sampled_from(ODD_ARRAYS))[: table.num_rows]
        if op == "retype":
            table = table.set_column(i, table.column_names[i], odd)
        elif op == "drop" and table.num_columns > 1:
            table = table.remove_column(i)
        elif op == "dup":
            table = table.append_column(table.field(i), table.column(i))
        elif op == "add":
            table = table.append_column(draw(st.sampled_from(ODD_NAMES)), odd)
        elif op == "no_rows":
            table = table.slice(0, 0)
    return table


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as a parquet file of three row groups, so damage can land between them."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=max(table.num_rows // 3, 1))
    return buffer.getvalue()


@FUZZ
@given(parquet_tables())
@pytest.mark.timeout(120)
def test_parquet_with_columns_of_other_types_ends_in_consistent_counts_or_a_clear_error(table: pa.Table) -> None:
    run_file(parquet_bytes(table), "yellow_tripdata_2021-03.parquet")


SAMPLE_PARQUET = parquet_bytes(PARQUET_TABLE)


@st.composite
def damaged_parquet(draw: st.DrawFn) -> bytes:
    """The sample's parquet with bytes changed anywhere, in the footer most often, or cut short."""
    data = bytearray(SAMPLE_PARQUET)
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for _ in range(draw(st.integers(1, 4))):
        low = len(data) - footer if draw(st.booleans()) else 0
        at = draw(st.integers(low, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data[-footer:-8] = draw(st.binary(min_size=footer - 8, max_size=footer - 8))  # a random footer
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


@FUZZ
@given(damaged_parquet())
@pytest.mark.timeout(120)
def test_damaged_parquet_ends_in_consistent_counts_or_a_clear_error(data: bytes) -> None:
    run_file(data, "yellow_tripdata_2021-03.parquet")


@FUZZ
@given(
    st.sampled_from([b"", b"PAR1", b"\x1f\x8b", b"\x1f\x8b\x08\x00"]),
    st.binary(max_size=2048),
    st.sampled_from([b"", b"PAR1"]),
    st.sampled_from(
        ["yellow_tripdata_2021-03.parquet", "yellow_tripdata_2021-03.csv.gz", "yellow_tripdata_2021-03.csv"]
    ),
)
@pytest.mark.timeout(120)
def test_random_bytes_end_in_a_clear_error(start: bytes, middle: bytes, end: bytes, name: str) -> None:
    run_file(start + middle + end, name)


# What the fuzzing found, one regression test each.

CSV_NAME = "yellow_tripdata_2021-03.csv"


def sample_csv() -> bytes:
    return b"\n".join(b",".join(("" if v is None else v).encode() for v in row.values()) for row in TABLE.to_pylist())


def header_csv() -> bytes:
    return ",".join(TABLE.column_names).encode() + b"\n" + sample_csv() + b"\n"


def refused(data: bytes, name: str) -> str:
    """The message of the SourceError or CleanError ``data`` ends in."""
    error = run_file(data, name)
    assert isinstance(error, Exception), error
    return str(error)


def test_a_parquet_file_shorter_than_its_marker_is_refused_clearly():
    """It raised OSError: seeking 4 bytes back from the end of a 1-byte file."""
    assert refused(b"\x00", "yellow_tripdata_2021-03.parquet").startswith(
        f"{LABEL}: yellow_tripdata_2021-03.parquet is not a whole parquet file (the PAR1 marker is missing"
    )


@pytest.mark.parametrize("data", [b"\x1f\x8b", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", b"\x1f\x8b\x08\x04rubbish"])
def test_a_gzip_cut_or_damaged_inside_its_header_is_refused_clearly(data):
    """It raised EOFError or BadGzipFile from reading the header line."""
    message = refused(data, "yellow_tripdata_2021-03.csv.gz")
    assert message.startswith(f"{LABEL}: yellow_tripdata_2021-03.csv.gz: its header line cannot be read (")
    assert message.endswith("Rerun to download it again; if that does not help, the source file is damaged.")


def test_a_csv_with_lone_cr_line_ends_is_refused_clearly_without_reading_it_whole():
    """It raised csv.Error, after reading the whole file as one line (a file with no line feed at all)."""
    message = refused(header_csv().replace(b"\n", b"\r") * 100, CSV_NAME)
    assert message.startswith(f"{LABEL}: {CSV_NAME}: its header line cannot be read (new-line character seen")


def test_a_stray_quote_in_the_header_is_refused_by_download():
    """DuckDB read the whole file as the header and returned no rows; Clean caught it only by the counts."""
    message = refused(b'""' + header_csv(), CSV_NAME)
    assert message.startswith(f"{LABEL}: {CSV_NAME}: its header line cannot be read (',' expected after '\"')")


def test_counts_that_do_not_add_up_name_the_file_and_the_line():
    """A line break inside a quoted value: DuckDB reads one row where the line count sees two."""
    rows = sample_csv().split(b"\n")
    rows[5] = rows[5].replace(b",N,", b',"N\nY",', 1)
    message = refused(",".join(TABLE.column_names).encode() + b"\n" + b"\n".join(rows) + b"\n", CSV_NAME)
    assert message.startswith(f"{LABEL}: {CSV_NAME} has {ROWS + 1} lines of rows but DuckDB read {ROWS} rows: ")
    assert "line 7 opens a quoted value that runs on past its line break" in message
    assert "downloading it again will not help" in message


def test_a_row_of_too_many_fields_is_quarantined_whole_and_the_month_loads(mirror, pipeline):
    """It failed the month, and advised downloading again a file whose new download had the same bytes."""
    served = mirror.root / "yellow" / CSV_NAME
    served.parent.mkdir()
    row = b",".join([b"1"] * 30)
    served.write_bytes(header_csv() + row + b"\n")  # a row of 30 fields under 18 columns
    pipeline.configure(mirror.template(".csv"))

    assert pipeline.run(TaxiYear(service="yellow", year=2021, months="3")).status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2021-03": CLEAN_ROWS}
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        kept = con.execute(
            "SELECT line_number, raw_line FROM yellow_tripdata_quarantine WHERE reason = 'malformed_row'"
        ).fetchall()
    assert kept == [(ROWS + 2, row.decode())]


def test_a_damaged_parquet_names_the_command_that_fetches_it_again(mirror, pipeline, caplog):
    """Only a damaged download advises downloading again; the command it names works."""
    name = "yellow_tripdata_2021-03.parquet"
    served = mirror.root / "yellow" / name
    served.parent.mkdir()
    pq.write_table(PARQUET_TABLE, served, compression="snappy")
    good = served.read_bytes()
    middle = len(good) // 3  # inside the data pages: the footer still reads, the values do not
    served.write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle : middle + 64]) + good[middle + 64 :])
    pipeline.configure(mirror.template())
    year = TaxiYear(service="yellow", year=2021, months="3")

    assert pipeline.run(year).status == LuigiStatusCode.FAILED
    assert f"{LABEL}: cannot clean {name}: " in caplog.text
    assert f"`taxi-luigi invalidate {LABEL} --from download` and rerun to download it again." in caplog.text

    assert cli.main(["invalidate", "yellow", "2021-03", "--from", "download"]) == 0
    served.write_bytes(good)
    assert pipeline.run(year).status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2021-03": ROWS - sum(PARQUET_REASONS.values())}
    assert mirror.requests[f"/yellow/{name}"] == 2


def test_a_lone_quote_after_the_last_line_break_is_one_malformed_row():
    """Found by the fuzzer: DuckDB placed that line at the end of the text, where the line numbers stopped."""
    report = run_file(header_csv() + b'"', CSV_NAME)
    assert isinstance(report, dict), report
    assert report["rows_in"] == ROWS + 1
    assert report["quarantine_by_reason"] == {**REASONS, "malformed_row": 1}
    assert report["csv"]["malformed"] == {"unbalanced quote": 1}
