"""Arrow record batches in PostgreSQL's binary COPY format, encoded a batch at a time with numpy and pyarrow.

Why binary: with CSV the server spends the load parsing text (``psql \\copy`` of a month's CSV
takes more than twice as long as COPY of the same rows in binary), and binary carries every value
exactly: timestamps as microseconds, doubles as their IEEE bytes, no text round trip.

The format (PostgreSQL's documentation, "COPY", "Binary Format"): a header, then per row a
16-bit field count and per field a 32-bit length (-1 for NULL) and the value's bytes, all
big-endian; a 16-bit -1 ends the data. Rows are built without a Python loop: fixed-width
columns go first in the COPY's column list, so the rows of a batch that share one pattern of
NULLs share one layout, filled column by column through strided numpy views; the text
columns are appended to each row by pyarrow's ``binary_join_element_wise``. Rows are reordered
within a batch to group the NULL patterns; a table's rows have no order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags (no OIDs), no header extension
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_EPOCH_US = 946_684_800_000_000  # PostgreSQL counts from 2000-01-01, Arrow from 1970-01-01
_EPOCH_DAYS = 10_957


def pg_type(arrow: pa.DataType) -> str:
    """The PostgreSQL type whose binary form this module writes for an Arrow type; TypeError for any other."""
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "text"
    if pa.types.is_timestamp(arrow):
        return "timestamptz" if arrow.tz else "timestamp"
    for kind, name in ((pa.int32(), "integer"), (pa.int64(), "bigint"), (pa.float64(), "double precision")):
        if arrow == kind:
            return name
    if arrow == pa.date32():
        return "date"
    raise TypeError(f"no binary COPY encoding for Arrow type {arrow}")


def column_order(schema: pa.Schema) -> list[str]:
    """The order the COPY's column list must name the columns in: fixed-width ones first, then text."""
    fixed = [f.name for f in schema if pg_type(f.type) != "text"]
    return fixed + [f.name for f in schema if pg_type(f.type) == "text"]


def encode(batch: pa.RecordBatch) -> memoryview:
    """The batch's rows, in column_order, as binary COPY data (no header, no trailer), as bytes."""
    order = column_order(batch.schema)
    fixed = [name for name in order if pg_type(batch.schema.field(name).type) != "text"]
    text = order[len(fixed) :]
    n = batch.num_rows
    nulls = {name: batch.column(name).null_count for name in fixed}
    mixed = [name for name in fixed if 0 < nulls[name] < n]
    if len(mixed) > 63:  # a row's pattern is one bit per such column in an int64; the widest service has 25
        raise TypeError(f"binary COPY encodes at most 63 fixed-width columns holding some NULLs, not {len(mixed)}")
    if mixed:
        pattern = np.zeros(n, np.int64)
        for bit, name in enumerate(mixed):
            pattern |= batch.column(name).is_null().to_numpy(zero_copy_only=False).astype(np.int64) << bit
        rows = np.argsort(pattern, kind="stable")
        pattern = pattern[rows]
        batch = batch.take(rows)
        starts = [0, *(np.flatnonzero(np.diff(pattern)) + 1).tolist()]
        patterns = pattern[starts].tolist()
    else:
        starts, patterns = [0], [0]
    counts = np.diff([*starts, n])
    values = {name: _big_endian(batch.column(name)) for name in fixed if nulls[name] < n}
    layouts = [_layout(fixed, len(order), values, [m for bit, m in enumerate(mixed) if p >> bit & 1]) for p in patterns]
    out = np.empty(sum(len(template) * count for (template, _), count in zip(layouts, counts, strict=True)), np.uint8)
    at = 0
    for (template, places), start, count in zip(layouts, starts, counts, strict=True):
        size = len(template)
        out[at : at + size * count].reshape(count, size)[:] = template
        for name, offset in places:
            value = values[name]
            view = np.ndarray((count,), value.dtype, buffer=out, offset=at + offset, strides=(size,))
            view[...] = value[start : start + count]
        at += size * count
    if not text:
        return out.data
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.repeat([len(template) for template, _ in layouts], counts), out=offsets[1:])
    head = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])
    parts = [part for name in text for part in _text(batch.column(name))]
    joined = pc.binary_join_element_wise(head, *parts, pa.scalar(b"", pa.large_binary()))
    ends = np.frombuffer(joined.buffers()[1], np.int64, n + 1, joined.offset * 8)
    return memoryview(joined.buffers()[2][int(ends[0]) : int(ends[-1])])


def _layout(
    fixed: list[str], fields: int, values: dict[str, np.ndarray], null: list[str]
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """One NULL pattern's row of fixed-width fields: its bytes with every length filled in, and where each value
    goes. A column with no value in the batch is NULL in every row, like the pattern's own ``null`` columns."""
    row = bytearray(fields.to_bytes(2, "big"))
    places = []
    for name in fixed:
        if name in null or name not in values:
            row += _NULL
            continue
        width = values[name].itemsize
        row += width.to_bytes(4, "big")
        places.append((name, len(row)))
        row += bytes(width)
    return np.frombuffer(bytes(row), np.uint8), places


def _big_endian(column: pa.Array) -> np.ndarray:
    """A fixed-width column's values in PostgreSQL's binary form, byte-swapped into a native-order array, so a
    strided copy writes them big-endian. NULLs come out as 0; the row's length field says NULL."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date32(kind):
        epoch = _EPOCH_US if pa.types.is_timestamp(kind) else _EPOCH_DAYS
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            column = column.cast(pa.timestamp("us", kind.tz))
        numbers = column.cast(pa.int64() if pa.types.is_timestamp(kind) else pa.int32()).fill_null(0)
        array = numbers.to_numpy(zero_copy_only=False) - epoch
    else:
        array = column.fill_null(0).to_numpy(zero_copy_only=False)
    return array.byteswap()


def _text(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A text column as the two pieces each row gets: the value's 4-byte length (-1 for NULL), then its bytes."""
    data = column.cast(pa.large_binary())
    lengths = pc.binary_length(data).fill_null(-1).to_numpy(zero_copy_only=False).astype(">i4")
    prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(data), [None, pa.py_buffer(lengths)])
    return prefix.cast(pa.large_binary()), data.fill_null(b"")
