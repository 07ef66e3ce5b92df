"""Reading a raw CSV apart from DuckDB: the counts Clean checks DuckDB's reading against, and the lines
DuckDB set aside, placed by Python's csv module."""

from __future__ import annotations

import gzip
import itertools

import pytest

from taxi_luigi import rawcsv
from taxi_luigi.demo import sample

# A header ended by LF, a blank CRLF line, CRLF rows, LF-only blank lines and a last line with no line break.
TEXT = b"a,b\n\r\n1,2\r\n\n3,4\r\n5,6"


@pytest.mark.parametrize("members", [1, 3])
def test_the_tally_counts_lines_blank_lines_and_separators_of_every_gzip_member(tmp_path, members):
    path = tmp_path / "m.csv.gz"
    cut = [0, *sorted({len(TEXT) * i // members for i in range(1, members)}), len(TEXT)]
    path.write_bytes(b"".join(gzip.compress(TEXT[a:b]) for a, b in itertools.pairwise(cut)))
    plain = tmp_path / "m.csv"
    plain.write_bytes(TEXT)
    for p, fmt in ((path, ".csv.gz"), (plain, ".csv")):
        tally = rawcsv.tally(p, fmt)
        assert (tally.lines, tally.blank, tally.rows, tally.commas, tally.quotes) == (5, 2, 3, 3, 0)
        assert rawcsv.exact_rows(p, fmt) == 3
    copy = tmp_path / "copy.csv"
    assert rawcsv.tally(path, ".csv.gz", text_to=copy) == rawcsv.tally(plain, ".csv")
    assert copy.read_bytes() == TEXT


def test_the_text_copy_of_a_month_is_the_gzip_module_s_and_counted_alike(tmp_path):
    """Many chunks, counted on a thread while the next is unpacked: the copy is byte for byte what
    Python's gzip module unpacks, and the counts are those of the plain file."""
    truth = sample.write_month(tmp_path, "yellow", 2021, 3, "dtc", 60_000)
    text = gzip.decompress(truth.path.read_bytes())
    assert len(text) > 4 * rawcsv.CHUNK
    copy = tmp_path / "copy.csv"
    tally = rawcsv.tally(truth.path, ".csv.gz", text_to=copy)
    assert copy.read_bytes() == text
    assert tally.lines == text.count(b"\n") - 1 and tally.commas == text.count(b",") - text.split(b"\n")[0].count(b",")
    assert tally == rawcsv.tally(copy, ".csv")


def test_the_tally_sees_blank_lines_in_a_row_and_exact_rows_the_one_across_chunks(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"a,b\n\n\n\r\n1,2\n")  # three blank lines in a row
    assert rawcsv.tally(path, ".csv").rows == rawcsv.exact_rows(path, ".csv") == 1

    rows = rawcsv.CHUNK // 4 - 1  # the first chunk ends with a line break, the second starts with a blank line
    path.write_bytes(b"a,b\n" + b"1,2\n" * rows + b"\n1,2\n")
    assert rawcsv.tally(path, ".csv").rows == rows + 2  # what the tally can miss
    assert rawcsv.exact_rows(path, ".csv") == rows + 1


def test_the_tally_counts_quotes_past_the_header_in_every_chunk_that_holds_them(tmp_path):
    path = tmp_path / "m.csv"
    plain = b"1,2\n" * (rawcsv.CHUNK // 4)  # a first chunk with no quote at all
    quoted = b'"3","x,y"\n' * 1000
    path.write_bytes(b"a,b\n" + plain + quoted)
    tally = rawcsv.tally(path, ".csv")
    assert (tally.quotes, tally.commas) == (4 * 1000, len(plain) // 4 + 2 * 1000)
    assert tally.rows == len(plain) // 4 + 1000


def test_a_truncated_gzip_is_a_damaged_source(tmp_path):
    truth = sample.write_month(tmp_path, "yellow", 2021, 3, "dtc", 2000)
    data = truth.path.read_bytes()
    truth.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(rawcsv.DamagedSource, match=r"yellow_tripdata_2021-03\.csv\.gz is a damaged or truncated gzip"):
        rawcsv.tally(truth.path, ".csv.gz")


def test_one_line_ending_and_line_numbers_of_offsets(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(TEXT)
    copy = tmp_path / "lf.csv"
    rawcsv.write_lf(path, ".csv", copy)
    assert copy.read_bytes() == TEXT.replace(b"\r\n", b"\n")
    starts = {TEXT.index(b"3,4"): 5, TEXT.index(b"1,2"): 3, 0: 1}
    assert rawcsv.line_numbers(path, ".csv", list(starts)) == starts
    for before in (TEXT.index(b"5,6") - 2, TEXT.index(b"5,6") - 1):  # DuckDB may give the CR LF before the line
        assert rawcsv.line_numbers(path, ".csv", [before]) == {before: 6}
    assert rawcsv.line_numbers(path, ".csv", [len(TEXT)]) == {len(TEXT): 6}  # the end of an unterminated last line


def test_the_dialect_sees_the_empty_fields_past_the_header(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"VendorID,Trip_type \n\r\n2,1,,\r\n2,,,\r\n2,1,x,\r\n")
    found = rawcsv.dialect(path, ".csv")
    assert found.columns == ["VendorID", "Trip_type"]  # the trailing space of 2013-2016 green
    assert found.extra == 2  # the row with "x" past the header is malformed, not a layout
    assert found.numeric == {"VendorID", "Trip_type"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('1,"2', "unbalanced quote"),
        ("1", "1 fields where the header has 2"),
        ("1,2,3", "3 fields where the header has 2, and those past it are not empty"),
    ],
)
def test_a_line_the_grammar_cannot_place_says_why(line, problem):
    with pytest.raises(rawcsv.Malformed, match=problem):
        rawcsv.fields(line, 2)


def test_empty_fields_past_the_header_are_dropped():
    assert rawcsv.fields("1,2,,", 2) == (["1", "2"], 2)
    assert rawcsv.fields('"1","2"', 2) == (["1", "2"], 0)
