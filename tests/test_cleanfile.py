"""The clean parquet's writer and the figures the quality report takes from its footer, checked against
pyarrow reading the whole file back."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_luigi import cleanfile, services


def piece(start: int, rows: int, schema: pa.Schema) -> pa.Table:
    """Rows numbered from ``start``: pickups a minute apart, every seventh vendor and fare missing."""
    ids = range(start, start + rows)
    columns = {f.name: pa.nulls(rows, f.type) for f in schema}
    columns["vendor_id"] = pa.array([None if i % 7 == 0 else i % 3 for i in ids], pa.int32())
    columns["fare_amount"] = pa.array([None if i % 7 == 0 else i / 10 for i in ids], pa.float64())
    columns["pickup_datetime"] = pa.array([dt.datetime(2021, 1, 1) + dt.timedelta(minutes=i) for i in ids])
    columns["source_month"] = pa.array([dt.date(2021, 1, 1)] * rows)
    return pa.table(columns, schema=schema)


def test_small_tables_make_full_row_groups_and_the_footer_holds_the_report_s_figures(tmp_path):
    schema = services.service("yellow").arrow_schema()
    path = tmp_path / "clean.parquet"
    rows, size = 0, 9_999  # a CSV month's batches, after its quarantined rows are cut out
    with cleanfile.Writer(path, schema) as writer:
        while rows < 2 * cleanfile.ROW_GROUP + 5_000:
            writer.write(piece(rows, size, schema))
            rows += size

    meta = pq.ParquetFile(path).metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups[:-1] == [cleanfile.ROW_GROUP] * (len(groups) - 1) and sum(groups) == rows
    assert 0 < groups[-1] <= cleanfile.ROW_GROUP

    table = pq.read_table(path)
    assert table.schema.remove_metadata() == schema
    figures = cleanfile.figures(path)
    assert figures.rows == table.num_rows == rows
    assert figures.nulls == {name: table[name].null_count for name in schema.names}
    assert figures.nulls["vendor_id"] == len(range(0, rows, 7))
    low, high = pc.min_max(table["pickup_datetime"]).values()
    assert (figures.pickup_min, figures.pickup_max) == (low.as_py(), high.as_py())
    encodings = pq.ParquetFile(path).metadata.row_group(0).to_dict()["columns"]
    dictionary = {c["path_in_schema"]: "RLE_DICTIONARY" in c["encodings"] for c in encodings}
    assert not dictionary["pickup_datetime"] and dictionary["fare_amount"]


def test_an_empty_month_has_no_rows_and_no_pickups(tmp_path):
    schema = services.service("green").arrow_schema()
    path = tmp_path / "clean.parquet"
    with cleanfile.Writer(path, schema):
        pass
    figures = cleanfile.figures(path)
    assert (figures.rows, figures.pickup_min, figures.pickup_max) == (0, None, None)
    assert set(figures.nulls.values()) == {0}


def test_a_file_without_statistics_is_refused_by_name(tmp_path):
    schema = services.service("yellow").arrow_schema()
    path = tmp_path / "foreign.parquet"
    pq.write_table(piece(0, 10, schema), path, write_statistics=False)
    with pytest.raises(ValueError, match=r"foreign\.parquet has no null count for vendor_id in row group 0"):
        cleanfile.figures(path)
