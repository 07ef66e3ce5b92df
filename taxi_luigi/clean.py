"""Raw month file -> clean parquet + quarantine parquet + quality report. Pure: no Luigi here.

DuckDB reads and maps the source in bounded memory: every source spelling and physical type is mapped
by services.py onto one canonical schema, so every month of a service writes byte-for-byte the same
parquet schema. A parquet source, cheap to scan, is read once for each output by a DuckDB COPY. A CSV,
whose parse is most of the work, is parsed once: its mapped rows stream out of the scan as Arrow batches
and are split here, clean rows to the clean parquet as they come, quarantined ones (a few) to a staged
parquet with their source values, turned into text afterwards.

A csv.gz is unpacked once, by rawcsv, into a plain copy beside the outputs while its lines and field
separators are counted; DuckDB parses the copy on every core. It reads leniently (the TLC's own files
mix line endings) and what it read is checked against the count; where they disagree, a copy with one
line ending is read strictly instead. The rows DuckDB set aside are placed by Python's csv module: a row
whose value did not parse is read again as text and cleaned like any other, a row the CSV grammar
cannot place is quarantined whole, as ``malformed_row``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_luigi import cleanfile, geo, months, rawcsv, services, staging
from taxi_luigi import progress as progress_of
from taxi_luigi.services import (
    MALFORMED,
    OTHER_COLUMNS,
    QUARANTINE_LINE,
    REASONS,
    SOURCE_MONTH,
    Column,
    ColumnMap,
    Service,
)
from taxi_luigi.sql import ident, literal

#: A column whose values DuckDB's reader refuses in more than this share of the rows is read as text
#: and cast in SQL instead: setting thousands of rows aside, one at a time, would cost more.
REREAD_AS_TEXT = 0.01
REJECT_BATCH = 65_536
#: Rows of a batch streamed out of DuckDB: the yellow month peaks at 430 MB with these, 520 MB with 65,536,
#: and takes as long.
SPLIT_BATCH = 32_768
#: Rows of a quarantine's row group: all of its values are text, which DuckDB's writer holds a row group
#: of per thread; at 122,880 the yellow month's quarantine took 100 MB more than its scan had.
QUARANTINE_ROW_GROUP = 16_384
#: The batches' copies are made and freed thousands of times a month: pyarrow's default pool (mimalloc)
#: hands the pages back to the system and faults them in again, 1.5 s more than malloc's on a yellow month.
POOL = pa.system_memory_pool()


class CleanError(Exception):
    """A month could not be cleaned; nothing was written under a final name."""


@dataclass(frozen=True)
class Outputs:
    """Where a month's clean data and quarantine go."""

    data: Path
    quarantine: Path


def typed_expr(col: Column, sources: tuple[str, ...], types: dict[str, str]) -> str:
    """The SQL that turns a canonical column's source columns into its type: the first filled one wins.

    ``types`` gives each source column's DuckDB type. TRY_CAST handles every drift seen in real files
    at once: int64/int32/double ids, "1.0" text, empty strings, timestamps in ns or as text, and
    columns of no type. A number is never the code of a number: codes of a numeric column are looked up
    only in text (the flags of 2009, numbers coded as text, are looked up in any type).
    """
    if not sources:
        return f"NULL::{col.duckdb_type}"
    exprs = [_typed_one(col, ident(source), types.get(source) == "VARCHAR") for source in sources]
    return exprs[0] if len(exprs) == 1 else f"COALESCE({', '.join(exprs)})"


def _typed_one(col: Column, ref: str, text: bool) -> str:
    if col.type == "string":
        expr = f"NULLIF(TRIM(CAST({ref} AS VARCHAR)), '')"
        expr = f"UPPER({expr})" if col.normalize == "upper" else expr
        if not col.codes:
            return expr
        expr = f"COALESCE({code_expr(col, ref)}, {expr})"  # 2009's flag 1.0 is a code
        # A value spelled as its own code ('Y') is itself: the lookup's string work, 0.8 s of CPU on a
        # yellow month's flags, is for the others.
        kept = [code for code, value in col.codes if code == value == code.strip().upper() and '"' not in code]
        if kept:
            spelled = ", ".join(map(literal, kept))
            expr = f"CASE WHEN CAST({ref} AS VARCHAR) IN ({spelled}) THEN CAST({ref} AS VARCHAR) ELSE {expr} END"
        return expr
    expr = f"TRY_CAST({ref} AS {col.duckdb_type})"
    if col.codes and text:  # a number is itself; a known code is its number; any other text is null
        expr = f"COALESCE({expr}, {code_expr(col, ref)})"
    return f"NULLIF({expr}, 0)" if col.zero_is_null else expr


def code_expr(col: Column, ref: str) -> str:
    """The canonical value of a coded text (2009-2014 'CMT', '"Cash"', ' csh', 'NA '), or NULL."""
    key = f"UPPER(TRIM(REPLACE(REPLACE(CAST({ref} AS VARCHAR), '\"', ''), '''', '')))"
    whens = " ".join(f"WHEN {literal(code)} THEN {literal(value)}" for code, value in col.codes)
    return f"CAST(CASE {key} {whens} END AS {col.duckdb_type})"


def raw_expr(sources: tuple[str, ...]) -> str:
    """A quarantined value as the source has it: the first filled spelling's text."""
    if not sources:
        return "NULL::VARCHAR"
    texts = [f"CAST({ident(source)} AS VARCHAR)" for source in sources]
    if len(texts) == 1:
        return texts[0]
    return "COALESCE(" + ", ".join(f"NULLIF({text}, '')" for text in texts) + ")"


def other_expr(names: tuple[str, ...]) -> str:
    if not names:
        return "NULL::VARCHAR"
    fields = ", ".join(f"{ident(n)} := {raw_expr((n,))}" for n in names)
    return f"to_json(struct_pack({fields}))::VARCHAR"


def reason_expr(svc: Service, cmap: ColumnMap, month: dt.date, types: dict[str, str]) -> str:
    """The quarantine rules, in order: the first rule a row breaks is its reason.

    ``malformed_row`` is not among them: such a row has no values to test, and never reaches SQL.
    """

    def typed(name: str) -> str:
        return typed_expr(svc.column(name), cmap.sources(name), types)

    _, zero, missing, before, outside = REASONS
    pickup, dropoff = typed("pickup_datetime"), typed("dropoff_datetime")
    start, end = literal(month.isoformat()), literal(months.following(month).isoformat())
    rules = []
    if svc.has_passenger_count:
        rules.append((f"{typed('passenger_count')} = 0", zero))
    rules += [
        (f"{pickup} IS NULL", missing),
        (f"{dropoff} < {pickup}", before),
        (f"{pickup} < TIMESTAMP {start} OR {pickup} >= TIMESTAMP {end}", outside),
    ]
    whens = " ".join(f"WHEN {cond} THEN {literal(reason)}" for cond, reason in rules)
    return f"CASE {whens} END"


def month_query(svc: Service, cmap: ColumnMap, month: dt.date, relation: str, types: dict[str, str]) -> str:
    """The one SELECT that maps a source relation onto the month's rows, whichever their fate.

    Its columns: the clean table's, typed (``svc.all_columns``, in order); ``__reason`` (null for a clean
    row); then the source columns as read (``types``' keys, in order) that no clean column holds as they
    are, for a quarantined row's text: ``source_columns`` says where each source column's value is.
    """
    typed = [f"{typed_expr(c, cmap.sources(c.name), types)} AS {ident(c.name)}" for c in svc.columns]
    carried = _carried(svc, cmap, types)
    source = [f"{ident(name)} AS {ident(f'__source_{i}')}" for i, name in enumerate(types) if name not in carried]
    return (
        f"SELECT {', '.join(typed)}, {other_expr(cmap.other)} AS other_columns, "
        f"DATE {literal(month.isoformat())} AS source_month, {', '.join(['__reason', *source])} "
        f"FROM (SELECT *, {reason_expr(svc, cmap, month, types)} AS __reason FROM {relation})"
    )


def source_columns(svc: Service, cmap: ColumnMap, types: dict[str, str]) -> list[str]:
    """For each source column, the column of ``month_query`` that holds its value as read."""
    carried = _carried(svc, cmap, types)
    return [carried.get(name, f"__source_{i}") for i, name in enumerate(types)]


def _carried(svc: Service, cmap: ColumnMap, types: dict[str, str]) -> dict[str, str]:
    """Source columns a clean column holds unchanged (a DOUBLE fare, a TIMESTAMP pickup), by the clean
    column's name: passing them through the scan a second time would double their share of it."""
    carried = {}
    for c in svc.columns:
        sources = cmap.sources(c.name)
        same = len(sources) == 1 and types.get(sources[0]) == c.duckdb_type
        if same and c.type != "string" and not c.codes and not c.zero_is_null:
            carried[sources[0]] = c.name
    return carried


def quarantine_query(svc: Service, cmap: ColumnMap, staged: str) -> str:
    """Quarantined rows staged by ``_Split`` in the quarantine's schema: each value as the source has it, as text."""
    values = ", ".join(f"{raw_expr(cmap.sources(c.name))} AS {ident(c.name)}" for c in svc.columns)
    no_line = ", ".join(f"NULL::{c.duckdb_type} AS {ident(c.name)}" for c in QUARANTINE_LINE)
    return (
        f"SELECT {values}, __other AS other_columns, __reason AS reason, __month AS source_month, {no_line} "
        f"FROM {staged}"
    )


def malformed_query(svc: Service, month: dt.date, relation: str) -> str:
    """Malformed rows in the quarantine's shape: no values, the reason, the line and its number."""
    values = ", ".join(f"NULL::VARCHAR AS {ident(c.name)}" for c in (*svc.columns, services.OTHER_COLUMNS))
    return (
        f"SELECT {values}, {literal(MALFORMED)} AS reason, DATE {literal(month.isoformat())} AS source_month, "
        f"line_number, raw_line FROM {relation}"
    )


#: A quarantine with no rows to place: ``malformed_query`` over it gives the quarantine's empty shape.
NO_LINES = "(SELECT NULL::BIGINT AS line_number, NULL::VARCHAR AS raw_line WHERE false)"


class _Split:
    """Streams ``month_query``'s rows out of DuckDB and cuts the two outputs from them: clean rows go to
    the clean parquet as they come, quarantined ones, with their source values as read, to a staged
    parquet of their own (one per relation, whose source types differ), for ``quarantine_query``.

    A CSV's parse is most of its cleaning, so it is done once, here, instead of once per output (the
    yellow month: 5.7 s, against 4.9 s and 3.0 s for a COPY of each output from the CSV).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        svc: Service,
        month: dt.date,
        data: Path,
        scratch: ExitStack,
        say: Callable[[int, str], None],
    ) -> None:
        self.con, self.svc, self.month, self.scratch, self.say = con, svc, month, scratch, say
        self.data, self.schema = data, svc.arrow_schema()
        self.writer = cleanfile.Writer(data, self.schema, POOL)
        self.staged: list[str] = []  # read_parquet() of each staged quarantine

    def restart(self) -> None:
        """Start both outputs again, empty: a CSV read again another way replaces what was written."""
        self.writer.close()  # before the path is opened again: a writer left open would end the new file
        self.writer = cleanfile.Writer(self.data, self.schema, POOL)
        self.staged = []

    def write(
        self, relation: str, cmap: ColumnMap, types: dict[str, str], *, expected: int, low: int = 1, high: int = 85
    ) -> int:
        """Map and write the rows of ``relation`` (source columns typed as ``types`` says); return how many.

        ``expected``, the rows the relation should hold, scales the progress from ``low`` to ``high``.
        Columns the source has nothing for (a 2021 month's coordinates) stay out of the query and are
        added as nulls here: DuckDB would make and convert millions of nulls for each.
        """
        filled = [f.name for f in self.schema if _filled(f.name, cmap)]
        sources = source_columns(self.svc, cmap, types)
        passed = [name for name in sources if name.startswith("__source_")]
        mapped = month_query(self.svc, cmap, self.month, relation, types)
        query = f"SELECT {', '.join(map(ident, [*filled, '__reason', *passed]))} FROM ({mapped})"
        at = {name: i for i, name in enumerate([*filled, "__reason", *passed])}
        reason = at["__reason"]
        other = OTHER_COLUMNS.name in at
        held = [
            *([at[OTHER_COLUMNS.name]] if other else []),
            at[SOURCE_MONTH.name],
            reason,
            *(at[name] for name in sources),
        ]
        path = self.scratch.enter_context(
            staging.staged(self.data.with_suffix(f".quarantine{len(self.staged)}.parquet"))
        )
        staged: cleanfile.Writer | None = None  # opened on the first quarantined row
        rows, shown = 0, time.monotonic()
        try:
            for batch in _batches(self.con.sql(query).to_arrow_reader(SPLIT_BATCH)):
                clean = pc.is_null(batch.column(reason))
                if n := clean.true_count:
                    kept = pc.filter(batch.select(range(reason)), clean, memory_pool=POOL)
                    columns = [kept.column(at[f.name]) if f.name in at else pa.nulls(n, f.type) for f in self.schema]
                    self.writer.write(pa.Table.from_arrays(columns, schema=self.schema))
                if m := clean.false_count:  # a few rows: taken by index, where a filter reads every row
                    part = batch.select(held).take(pc.indices_nonzero(pc.invert(clean), memory_pool=POOL))
                    columns = part.columns if other else [pa.nulls(m, pa.string()), *part.columns]
                    quarantined = pa.table(columns, names=["__other", "__month", "__reason", *types])
                    staged = staged or cleanfile.Writer(path, quarantined.schema, POOL)
                    staged.write(quarantined)  # in full row groups: one per batch cost 0.2 s
                rows += len(batch)
                if time.monotonic() - shown >= 1:
                    shown = time.monotonic()
                    self.say(low + (high - low) * rows // max(expected, rows), f"{rows:,} of {expected:,} rows read")
        finally:
            if staged:
                staged.close()
        if staged:
            self.staged.append(f"read_parquet({literal(str(path))})")
        return rows

    def close(self) -> None:
        self.writer.close()


def _filled(name: str, cmap: ColumnMap) -> bool:
    """Whether a clean column gets values from this source: the month always, other_columns if any are."""
    if name == OTHER_COLUMNS.name:
        return bool(cmap.other)
    return name == SOURCE_MONTH.name or bool(cmap.sources(name))


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches; DuckDB's errors, which its Arrow stream reports as OSError, as DuckDB errors."""
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except OSError as e:
            raise duckdb.Error(str(e)) from None


@dataclass
class _Read:
    """What reading the month gave, its clean rows written: the quarantine's parts, to be written."""

    cmap: ColumnMap
    rows_in: int
    quarantined: list[str] = field(default_factory=list)  # relations of quarantined rows, for quarantine_query
    malformed: str = NO_LINES  # a relation of (line_number, raw_line)
    notes: dict = field(default_factory=dict)  # for the quality report


def clean_month(
    raw: Path,
    fmt: str,
    svc: Service,
    month: dt.date,
    out: Outputs,
    *,
    label: str,
    memory_limit: str = "400MB",
    threads: int = 0,
    temp_dir: Path | None = None,
    progress: Callable[[int, str], None] | None = None,
    zones_shapes: str = "",
) -> dict:
    """Clean one month; return its quality report. Outputs appear only when all is written and counted.

    A month with coordinates and no zone ids (yellow 2009-2016, green 2013-2016) gets its ids from
    ``zones_shapes`` (geo.py); without shapes they stay null and the report says so.
    """
    started = time.monotonic()
    say = progress or (lambda pct, msg: None)
    con = _connect(memory_limit, threads, temp_dir)
    try:
        with (
            staging.staged(out.data) as data_tmp,
            staging.staged(out.quarantine) as quarantine_tmp,
            ExitStack() as scratch,
        ):
            if fmt == ".parquet":
                read = _read_parquet(con, raw, svc, month, data_tmp, say)
            else:
                split = scratch.enter_context(closing(_Split(con, svc, month, data_tmp, scratch, say)))
                read = _CsvRead(con, raw, fmt, svc, month, label, out, scratch, split, say).read()
                split.close()
            parts = [quarantine_query(svc, read.cmap, rows) for rows in read.quarantined]
            parts.append(malformed_query(svc, month, read.malformed))
            with progress_of.watch(con, say, 85, 95, read.rows_in, "checked for quarantine"):
                _copy(con, " UNION ALL ".join(parts), quarantine_tmp, row_group=QUARANTINE_ROW_GROUP)
            zoned = _zones(data_tmp, read.cmap, zones_shapes, say)
            report = _report(con, data_tmp, quarantine_tmp, read.rows_in) | zoned | read.notes
            _check_schema(svc, data_tmp, label)
            if report["rows_in"] != report["rows_clean"] + report["rows_quarantined"]:
                raise CleanError(
                    f"{label}: {raw.name} has {report['rows_in']} rows but {report['rows_clean']} were clean and "
                    f"{report['rows_quarantined']} quarantined; nothing was written. Please report this bug with "
                    "the source file."
                )
            os.replace(data_tmp, out.data)
            os.replace(quarantine_tmp, out.quarantine)
    except duckdb.Error as e:
        if fmt != ".parquet":
            raise CleanError(f"{label}: cannot clean {raw.name}: {str(e).splitlines()[0]}") from None
        raise CleanError(
            f"{label}: cannot clean {raw.name}: {str(e).splitlines()[0]}. The parquet file may be damaged: "
            f"`taxi-luigi invalidate {label} --from download` and rerun to download it again."
        ) from None
    except rawcsv.DamagedSource as e:
        raise rawcsv.DamagedSource(f"{label}: {e}") from None
    except ValueError as e:
        raise CleanError(f"{label}: {raw.name}: {e}") from None
    except geo.ZonesError as e:
        raise CleanError(f"{label}: {e}") from None
    finally:
        con.close()
    report.update(
        service=svc.name,
        month=f"{month:%Y-%m}",
        schema_version=services.SCHEMA_VERSION,
        column_map=read.cmap.mapped,
        other_columns=list(read.cmap.other),
        ignored_columns=list(read.cmap.ignored),
        seconds=round(time.monotonic() - started, 3),
    )
    if read.cmap.coalesced:
        report["coalesced_columns"] = {k: list(v) for k, v in read.cmap.coalesced.items()}
    say(100, f"{report['rows_clean']:,} clean, {report['rows_quarantined']:,} quarantined")
    return report


def _read_parquet(
    con: duckdb.DuckDBPyConnection, raw: Path, svc: Service, month: dt.date, data: Path, say: Callable[[int, str], None]
) -> _Read:
    """A parquet source is read twice, once for each output: its scan is cheap and parallel, and DuckDB's
    writer, on every core, is what costs (on the 20M-row fhvhv month, 13.4 s against 15.2 s for one scan
    split by ``_Split``, whose writer has one thread)."""
    relation = f"read_parquet({literal(str(raw))})"
    types = dict(row[:2] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall())
    cmap = services.map_columns(svc, list(types))
    rows = pq.ParquetFile(raw).metadata.num_rows
    mapped = f"({month_query(svc, cmap, month, relation, types)})"
    names = ", ".join(ident(c.name) for c in svc.all_columns)
    with progress_of.watch(con, say, 1, 85, rows, "cleaned"):
        _copy(con, f"SELECT {names} FROM {mapped} WHERE __reason IS NULL", data)
    source = ", ".join(
        f"{ident(column)} AS {ident(name)}"
        for column, name in zip(source_columns(svc, cmap, types), types, strict=True)
    )
    quarantined = (
        f"(SELECT other_columns AS __other, source_month AS __month, __reason, {source} FROM {mapped} "
        "WHERE __reason IS NOT NULL)"
    )
    return _Read(cmap, rows, [quarantined])


def scan_type(col: Column | None, numeric: bool) -> str:
    """The type DuckDB's CSV reader parses a source column as: natively where the value is a number or a
    time (the cheap part of the scan), as text where it must be looked at (names, unknown columns, and
    codes unless the file's first rows hold only numbers there: 2009-2014 spell vendors ``CMT``).
    Integers are read as DOUBLE: the 2020 files write them as ``1.0``."""
    if col is None or col.type == "string" or (col.codes and not numeric):
        return "VARCHAR"
    return {"timestamp": "TIMESTAMP", "double": "DOUBLE"}.get(col.type, "DOUBLE")


@dataclass
class _Scan:
    """What one pass of DuckDB's reader over the CSV gave: rows kept, and the lines it set aside."""

    accepted: int
    rejects: str  # the rejects table: one row per error, several per line
    refused: dict[str, int]  # CAST errors per column


class _CsvRead:
    """A month's CSV, parsed once, its rows written as they are parsed and checked against rawcsv's counts."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        raw: Path,
        fmt: str,
        svc: Service,
        month: dt.date,
        label: str,
        out: Outputs,
        scratch: ExitStack,
        split: _Split,
        say: Callable[[int, str], None],
    ) -> None:
        self.con, self.raw, self.fmt, self.svc, self.month, self.label = con, raw, fmt, svc, month, label
        self.out, self.scratch, self.split, self.say = out, scratch, split, say
        self.scans = 0

    def read(self) -> _Read:
        if self.fmt == ".csv.gz":  # unpacked once: DuckDB parses a plain file on every core, a gzip on one
            self.say(1, "unpacking and counting the lines")
            self.text = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(".csv")))
            self.tally = rawcsv.tally(self.raw, self.fmt, text_to=self.text)
        else:
            self.say(1, "counting the lines")
            self.text, self.tally = self.raw, rawcsv.tally(self.raw, self.fmt)
        self.dialect = rawcsv.dialect(self.text, ".csv")
        self.cmap = services.map_columns(self.svc, self.dialect.columns)
        by_source = {name: self.svc.column(c) for c in self.cmap.mapped for name in self.cmap.sources(c)}
        self.types = {
            name: scan_type(by_source.get(name), name in self.dialect.numeric) for name in self.dialect.columns
        }
        tally = self.tally
        try:
            scan = self._scan(self.text, strict=False)
            failed = None
        except duckdb.Error as e:
            scan, failed = None, e
        if scan is not None and (text := self._reread_as_text(scan, tally.rows)):
            self.split.restart()
            scan = self._scan(self.text, strict=False, text=text)
        if scan is not None and (rows := self._agrees(scan, tally)) is not None:
            return self._placed(scan, self.text, rows, "lenient", unseen_empty=0)
        # One line ending, read strictly: rows the grammar cannot place are set aside rather than cut short.
        copy = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(".lf.csv")))
        self.say(40, "reading again with one line ending")
        rawcsv.write_lf(self.text, ".csv", copy)
        self.split.restart()
        try:
            scan = self._scan(copy, strict=True)
        except duckdb.Error as e:
            raise CleanError(
                f"{self.label}: {self.raw.name} cannot be read as CSV: {str(e).splitlines()[0]} "
                f"(read leniently first: {str(failed).splitlines()[0] if failed else 'the counts did not agree'}). "
                "The download is whole (its size and any gzip CRC check out), so downloading it again will "
                "not help; please report the file."
            ) from None
        lines = scan.accepted + self._reject_lines(scan)
        rows = tally.rows if lines == tally.rows else rawcsv.exact_rows(copy, ".csv")
        if lines != rows:
            line = rawcsv.first_open_quote(copy, ".csv")
            where = (
                f"line {line} opens a quoted value that runs on past its line break"
                if line
                else ("a lone carriage return ends a line")
            )
            raise CleanError(
                f"{self.label}: {self.raw.name} has {rows:,} lines of rows but DuckDB read {lines:,} rows: {where}. "
                "Nothing was written; the download is whole, so downloading it again will not help: fix the file "
                "or report it."
            )
        return self._placed(scan, copy, rows, "strict, one line ending", self._unseen_empty(scan, tally))

    def _scan(self, path: Path, *, strict: bool, text: frozenset[str] = frozenset()) -> _Scan:
        """DuckDB's reader over the plain text, its rows mapped and written by the split as they are parsed.

        Columns past the header (empty on the TLC's rows) are typed UUID: an empty field is null, and any
        other value fails to parse, which sets its line aside with the rest.
        """
        self.scans += 1
        rejects, extra = f"__rejects_{self.scans}", [f"__extra_{i}" for i in range(self.dialect.extra)]
        types = {name: "VARCHAR" if name in text else t for name, t in self.types.items()}
        spec = ", ".join(f"{literal(n)}: {literal(t)}" for n, t in {**types, **dict.fromkeys(extra, "UUID")}.items())
        options = [
            "header = true",
            "auto_detect = false",
            f"columns = {{{spec}}}",
            "delim = ','",
            "quote = '\"'",
            "escape = '\"'",
            f"strict_mode = {str(strict).lower()}",
            "store_rejects = true",
            f"rejects_table = {literal(rejects)}",
            f"rejects_scan = {literal(rejects + '_scan')}",
        ]
        if strict:
            options.append("new_line = '\\n'")
        relation = f"read_csv({literal(str(path))}, {', '.join(options)})"
        # A UUID past the header would parse: stop rather than lose it (not seen in any file).
        guard = " AND ".join(
            f"(CASE WHEN {ident(e)} IS NULL THEN true ELSE error({literal(self._uuid_message())}) END)" for e in extra
        )
        where = f" WHERE {guard}" if guard else ""
        keep = f" EXCLUDE ({', '.join(map(ident, extra))})" if extra else ""
        accepted = self.split.write(
            f"(SELECT *{keep} FROM {relation}{where})", self.cmap, types, expected=self.tally.rows, low=15
        )
        refused = dict(
            self.con.execute(
                f"SELECT column_name, count(*) FROM {rejects} WHERE error_type = 'CAST' GROUP BY ALL"
            ).fetchall()
        )
        return _Scan(accepted, rejects, refused)

    def _uuid_message(self) -> str:
        return (
            f"{self.label}: {self.raw.name} has a UUID in a field past the header's columns, which this reader "
            "cannot set aside; please report the file"
        )

    def _reread_as_text(self, scan: _Scan, rows: int) -> frozenset[str]:
        """Typed columns whose values DuckDB refused on many rows: cheaper read as text and cast in SQL."""
        many = max(1, int(rows * REREAD_AS_TEXT))
        return frozenset(name for name, n in scan.refused.items() if n >= many and name in self.types)

    def _records(self, scan: _Scan) -> Iterator[tuple[int, str]]:
        """The lines DuckDB set aside, once each: (offset of the line in the text, the line)."""
        result = self.con.execute(
            f"SELECT line_byte_position, any_value(csv_line) FROM {scan.rejects} GROUP BY ALL ORDER BY 1"
        )
        while batch := result.fetchmany(REJECT_BATCH):
            yield from batch

    def _reject_lines(self, scan: _Scan) -> int:
        return sum(len(_physical(text)) for _, text in self._records(scan))

    def _agrees(self, scan: _Scan, tally: rawcsv.Tally) -> int | None:
        """The month's row count if the lenient read is vouched for by the bytes' counts, else None.

        Every line is a row or was set aside (none split or merged), and the field separators are those of
        rows of the expected width (none cut short): a row with more fields than declared is cut silently
        by the lenient reader, and only the separators tell.
        """
        width = len(self.dialect.columns) + self.dialect.extra
        lines, commas = scan.accepted, scan.accepted * (width - 1)
        for _, text in self._records(scan):
            lines += len(_physical(text))
            commas += text.count(",")
        if commas != tally.commas:
            return None
        if lines == tally.rows:
            return lines
        return lines if lines == rawcsv.exact_rows(self.text, ".csv") else None

    def _unseen_empty(self, scan: _Scan, tally: rawcsv.Tally) -> int | None:
        """Empty fields past the declared ones that the strict reader dropped without a word (it sets aside
        only non-empty ones): the separators left over, when the file has no quote to hide one in."""
        if tally.quotes:
            return None
        width = len(self.dialect.columns) + self.dialect.extra
        expected = scan.accepted * (width - 1) + sum(text.count(",") for _, text in self._records(scan))
        return tally.commas - expected

    def _placed(self, scan: _Scan, text: Path, rows_in: int, how: str, unseen_empty: int | None) -> _Read:
        """The set-aside lines placed by Python's csv module: rows read again as text, and the malformed ones.

        Set-aside lines are streamed a batch at a time: a month whose every row was set aside still
        holds one batch in memory, not the month. ``unseen_empty``: empty fields past the declared ones
        that the reader dropped itself (None: not known).
        """
        width, schema = len(self.dialect.columns), pa.schema([(n, pa.string()) for n in self.dialect.columns])
        rescued = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(".rescued.parquet")))
        malformed = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(".malformed.parquet")))
        kept: list[list[str | None]] = []
        bad: list[tuple[int, int, str]] = []  # (offset of the record, line within it, the line)
        problems: dict[str, int] = {}
        padded = written = 0
        with pq.ParquetWriter(rescued, schema) as writer:
            for offset, record in self._records(scan):
                for i, line in enumerate(_physical(record)):
                    try:
                        values, dropped = rawcsv.fields(line, width)
                    except rawcsv.Malformed as e:
                        bad.append((offset, i, line))
                        kind = "unbalanced quote" if str(e).startswith("unbalanced") else "field count"
                        problems[kind] = problems.get(kind, 0) + 1
                        continue
                    padded += dropped
                    kept.append([v if v != "" else None for v in values])
                if len(kept) >= REJECT_BATCH:
                    writer.write_table(_text_table(kept, schema))
                    written, kept = written + len(kept), []
            if kept:
                writer.write_table(_text_table(kept, schema))
                written += len(kept)
        notes: dict = {
            "csv": {
                "read": how,
                "rows_read_again_as_text": written,
                "empty_fields_dropped": None
                if unseen_empty is None
                else padded + scan.accepted * self.dialect.extra + unseen_empty,
            }
        }
        if written:
            as_text = dict.fromkeys(self.dialect.columns, "VARCHAR")
            self.split.write(f"read_parquet({literal(str(rescued))})", self.cmap, as_text, expected=written, low=85)
        result = _Read(self.cmap, rows_in, self.split.staged, notes=notes)
        if bad:
            numbers = rawcsv.line_numbers(text, ".csv", [offset for offset, _, _ in bad])
            table = pa.table(
                {
                    "line_number": pa.array([numbers[o] + i for o, i, _ in bad], pa.int64()),
                    "raw_line": pa.array([line for _, _, line in bad], pa.string()),
                }
            )
            pq.write_table(table, malformed)
            result.malformed = f"read_parquet({literal(str(malformed))})"
            notes["csv"]["malformed"] = problems
        return result


def _text_table(rows: list[list[str | None]], schema: pa.Schema) -> pa.Table:
    return pa.table([pa.array(column, pa.string()) for column in zip(*rows, strict=True)], schema=schema)


def _physical(record: str) -> list[str]:
    """The lines of a record DuckDB set aside (one, or more after an unbalanced quote), without line ends."""
    return [line.rstrip("\r") for line in record.strip("\r\n").split("\n")]


def _zones(data: Path, cmap: ColumnMap, shapes: str, say: Callable[[int, str], None]) -> dict:
    """Zone ids from coordinates, for a month whose source has coordinates and no zone ids; its report fields."""
    if not geo.needs_zones(cmap.mapped):
        return {}
    if not shapes:
        return {"zones": geo.NOT_CONFIGURED, "zones_assigned": {"pickups": 0, "dropoffs": 0}}
    say(95, "assigning zones")
    return {"zones": f"assigned from {shapes}", "zones_assigned": geo.assign_file(data, geo.load(shapes))}


def _connect(memory_limit: str, threads: int, temp_dir: Path | None) -> duckdb.DuckDBPyConnection:
    # Without statistics propagation DuckDB writes every parquet field as optional; with it, a
    # column that happens to have no nulls this month would be written as required.
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "preserve_insertion_order": False,
        "disabled_optimizers": "statistics_propagation",
    }
    if threads:
        config["threads"] = threads
    if temp_dir is not None:
        # A directory of this process's own, which DuckDB creates when it spills and removes when closed;
        # if the process is killed, its name lets the next run's sweep remove it.
        temp_dir.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(staging.temp_path(temp_dir / "duckdb"))
    return progress_of.track(duckdb.connect(config=config))


def _copy(con: duckdb.DuckDBPyConnection, query: str, dest: Path, row_group: int = cleanfile.ROW_GROUP) -> None:
    con.execute(
        f"COPY ({query}) TO {literal(str(dest))} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE {row_group})"
    )


def _report(con: duckdb.DuckDBPyConnection, data: Path, quarantine: Path, rows_in: int) -> dict:
    """The month's figures, read back from the written files: the clean one's footer, the quarantine's rows."""
    clean = cleanfile.figures(data)
    by_reason = dict.fromkeys(REASONS, 0)
    by_reason.update(
        con.execute(f"SELECT reason, count(*) FROM read_parquet({literal(str(quarantine))}) GROUP BY reason").fetchall()
    )
    return {
        "rows_in": rows_in,
        "rows_clean": clean.rows,
        "rows_quarantined": sum(by_reason.values()),
        "quarantine_by_reason": by_reason,
        "pickup_min": clean.pickup_min.isoformat() if clean.pickup_min else None,
        "pickup_max": clean.pickup_max.isoformat() if clean.pickup_max else None,
        "null_counts": {name: n for name, n in clean.nulls.items() if name != SOURCE_MONTH.name},
    }


def _check_schema(svc: Service, data: Path, label: str) -> None:
    written = pq.read_schema(data).remove_metadata()
    if not written.equals(svc.arrow_schema()):
        raise CleanError(f"{label}: the clean parquet schema drifted from the canonical one: {written}")
