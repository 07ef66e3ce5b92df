"""Binary COPY data from Arrow, read back by a real PostgreSQL server: the values at the edges of every type."""

from __future__ import annotations

import datetime as dt
import io
import math

import psycopg2
import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from taxi_luigi.warehouse import pgbinary

# Values where an encoding goes wrong: the ends of each range, either side of both epochs (1970 and 2000), the
# microsecond, negative zero, the IEEE specials, text that CSV would need to quote or escape, and NULL beside ''.
EDGES = pa.table(
    {
        "id": pa.array(range(6), pa.int64()),
        "i32": pa.array([-(2**31), 2**31 - 1, 0, None, -1, 7], pa.int32()),
        "i64": pa.array([-(2**63), 2**63 - 1, 0, None, -1, 1], pa.int64()),
        "f64": pa.array([-0.0, math.inf, -math.inf, None, 5e-324, 1 / 3], pa.float64()),
        "nan": pa.array([math.nan, None, None, None, None, 1.5], pa.float64()),
        "ts": pa.array(
            [
                dt.datetime(1, 1, 1),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999_999),
                dt.datetime(1999, 12, 31, 23, 59, 59, 999_999),
                None,
                dt.datetime(2000, 1, 1, 0, 0, 0, 1),
                dt.datetime(9999, 12, 31, 23, 59, 59, 999_999),
            ],
            pa.timestamp("us"),
        ),
        "ns": pa.array([0, None, 1_000, 2_000_000, None, -1_000], pa.timestamp("ns")),
        "day": pa.array(
            [dt.date(1, 1, 1), dt.date(1969, 12, 31), dt.date(1999, 12, 31), None, dt.date(2000, 1, 2), None],
            pa.date32(),
        ),
        "txt": pa.array(['a,"b"\n\\N\r\tc', "ünïcødé 🚕", "", None, "x" * 70_000, "\\."], pa.string()),
        "big": pa.array(["one", None, "", "three", None, "five"], pa.large_string()),
        "empty": pa.array([None] * 6, pa.int32()),
    }
)
PG = {
    "id": "bigint",
    "i32": "integer",
    "i64": "bigint",
    "f64": "double precision",
    "nan": "double precision",
    "ts": "timestamp",
    "ns": "timestamp",
    "day": "date",
    "txt": "text",
    "big": "text",
    "empty": "integer",
}


def copied(url: str, table: pa.Table, batch_rows: int) -> list[tuple]:
    """``table`` sent through binary COPY in batches of ``batch_rows``, then read back by id."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    data = io.BytesIO()
    data.write(pgbinary.HEADER)
    for batch in table.to_batches(max_chunksize=batch_rows):
        data.write(pgbinary.encode(batch))
    data.write(pgbinary.TRAILER)
    data.seek(0)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE edges ({', '.join(f'{name} {kind}' for name, kind in PG.items())})")
        order = pgbinary.column_order(table.schema)
        cur.copy_expert(f"COPY edges ({', '.join(order)}) FROM STDIN WITH (FORMAT binary)", data)
        cur.execute(f"SELECT {', '.join(table.column_names)} FROM edges ORDER BY id")
        return cur.fetchall()


@pytest.mark.parametrize("batch_rows", [6, 4, 1])
def test_every_edge_value_arrives_exactly(pg_database, batch_rows):
    rows = copied(pg_database, EDGES, batch_rows)

    names = EDGES.column_names
    nan, f64, ns = names.index("nan"), names.index("f64"), names.index("ns")
    expected = [tuple(r.values()) for r in EDGES.to_pylist()]
    assert math.isnan(rows[0][nan])  # NaN equals nothing, so it is checked apart from the rest
    assert [r[:nan] + r[nan + 1 :] for r in rows] == [r[:nan] + r[nan + 1 :] for r in expected]
    assert [r[nan] for r in rows[1:]] == [r[nan] for r in expected[1:]]
    assert math.copysign(1, rows[0][f64]) == -1  # negative zero stays negative
    assert rows[5][ns] == dt.datetime(1969, 12, 31, 23, 59, 59, 999_999)  # nanoseconds become microseconds


def test_fixed_width_columns_come_first_and_an_empty_batch_is_no_data():
    assert pgbinary.column_order(EDGES.schema) == [
        "id", "i32", "i64", "f64", "nan", "ts", "ns", "day", "empty", "txt", "big"
    ]  # fmt: skip
    assert len(pgbinary.encode(pa.RecordBatch.from_pylist([], schema=EDGES.schema))) == 0


def test_a_type_with_no_encoding_is_refused_by_name():
    with pytest.raises(TypeError, match="no binary COPY encoding for Arrow type bool"):
        pgbinary.encode(pa.RecordBatch.from_pydict({"flag": pa.array([True])}))
