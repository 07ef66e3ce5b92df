"""Raw month file -> clean parquet + quarantine parquet + quality report. Pure: no Luigi here.

DuckDB does the work: it streams the source in bounded memory and writes parquet directly, so a
month never sits in Python memory. Every source spelling and physical type is mapped by services.py
onto one canonical schema, so every month of a service writes byte-for-byte the same parquet schema.

A parquet source is read twice as it is, once for the clean rows and once for the quarantine. A CSV
is parsed once, with typed columns, into a parquet staged beside the outputs, and both outputs are
mapped from that, on every core: parsing is what costs, and a csv.gz is parsed on one thread.
DuckDB reads the CSV leniently (the TLC's own files mix line endings) and what it read is checked
against rawcsv's count of the file's lines and field separators; where they disagree, a copy with one
line ending is read strictly instead. The rows DuckDB set aside are placed by Python's csv module: a
row whose value did not parse is read again as text and cleaned like any other, a row the CSV grammar
cannot place is quarantined whole, as ``malformed_row``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_luigi import geo, months, rawcsv, services, staging
from taxi_luigi import progress as progress_of
from taxi_luigi.services import MALFORMED, QUARANTINE_LINE, REASONS, SOURCE_MONTH, Column, ColumnMap, Service
from taxi_luigi.sql import ident, literal, one

#: A column whose values DuckDB's reader refuses in more than this share of the rows is read as text
#: and cast in SQL instead: setting thousands of rows aside, one at a time, would cost more.
REREAD_AS_TEXT = 0.01
REJECT_BATCH = 65_536


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
        return f"COALESCE({code_expr(col, ref)}, {expr})" if col.codes else expr  # 2009's flag 1.0 is a code
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

    Its columns: the canonical ones, typed; ``__reason`` (null for a clean row); and, for a quarantined
    row only, the source values as text in ``__raw_<column>`` (null otherwise, so clean rows carry
    nothing extra). ``clean_query`` and ``quarantine_query`` cut the two outputs from it.
    """
    typed = [f"{typed_expr(c, cmap.sources(c.name), types)} AS {ident(c.name)}" for c in svc.columns]
    raw = [
        f"CASE WHEN __reason IS NOT NULL THEN {raw_expr(cmap.sources(c.name))} END AS {ident('__raw_' + c.name)}"
        for c in svc.columns
    ]
    return (
        f"SELECT {', '.join(typed)}, {other_expr(cmap.other)} AS other_columns, "
        f"DATE {literal(month.isoformat())} AS source_month, __reason, {', '.join(raw)} "
        f"FROM (SELECT *, {reason_expr(svc, cmap, month, types)} AS __reason FROM {relation})"
    )


def clean_query(svc: Service, mapped: str) -> str:
    """The clean rows of ``month_query``'s output, in the canonical schema."""
    names = ", ".join(ident(c.name) for c in svc.all_columns)
    return f"SELECT {names} FROM {mapped} WHERE __reason IS NULL"


def quarantine_query(svc: Service, mapped: str) -> str:
    """The quarantined rows of ``month_query``'s output, in the quarantine's schema (values as text)."""
    values = ", ".join(f"{ident('__raw_' + c.name)} AS {ident(c.name)}" for c in svc.columns)
    no_line = ", ".join(f"NULL::{c.duckdb_type} AS {ident(c.name)}" for c in QUARANTINE_LINE)
    return (
        f"SELECT {values}, other_columns, __reason AS reason, source_month, {no_line} FROM {mapped} "
        "WHERE __reason IS NOT NULL"
    )


def malformed_query(svc: Service, month: dt.date, relation: str) -> str:
    """Malformed rows in the quarantine's shape: no values, the reason, the line and its number."""
    values = ", ".join(f"NULL::VARCHAR AS {ident(c.name)}" for c in (*svc.columns, services.OTHER_COLUMNS))
    return (
        f"SELECT {values}, {literal(MALFORMED)} AS reason, DATE {literal(month.isoformat())} AS source_month, "
        f"line_number, raw_line FROM {relation}"
    )


@dataclass
class _Read:
    """The month's rows as ``month_query`` subqueries (over the source, or over a csv's staged parse),
    ready for the two outputs to be cut from them."""

    mapped: list[str]
    cmap: ColumnMap
    rows_in: int
    malformed: str | None = None  # a relation of (line_number, raw_line)
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
                read = _read_parquet(con, raw, svc, month)
            else:
                read = _CsvRead(con, raw, fmt, svc, month, label, out, scratch, say).read()
            clean_parts = [clean_query(svc, mapped) for mapped in read.mapped]
            quarantine_parts = [quarantine_query(svc, mapped) for mapped in read.mapped]
            if read.malformed:
                quarantine_parts.append(malformed_query(svc, month, read.malformed))
            first = 1 if fmt == ".parquet" else 80  # a CSV's parse took the first 80 %
            say(first, "cleaning")
            with progress_of.watch(con, say, first, 90, read.rows_in, "cleaned"):
                _copy(con, " UNION ALL ".join(clean_parts), data_tmp)
            with progress_of.watch(con, say, 90, 95, read.rows_in, "checked for quarantine"):
                _copy(con, " UNION ALL ".join(quarantine_parts), quarantine_tmp)
            zoned = _zones(data_tmp, read.cmap, zones_shapes, say)
            report = _report(con, svc, data_tmp, quarantine_tmp, read.rows_in) | zoned | read.notes
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


def _read_parquet(con: duckdb.DuckDBPyConnection, raw: Path, svc: Service, month: dt.date) -> _Read:
    """A parquet source is mapped on the fly, once for each output: cheaper than staging it."""
    relation = f"read_parquet({literal(str(raw))})"
    types = dict(row[:2] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall())
    cmap = services.map_columns(svc, list(types))
    mapped = f"({month_query(svc, cmap, month, relation, types)})"
    return _Read([mapped], cmap, pq.ParquetFile(raw).metadata.num_rows)


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

    staged: Path
    types: dict[str, str]  # the staged columns' DuckDB types
    accepted: int
    rejects: str  # the rejects table: one row per error, several per line
    refused: dict[str, int]  # CAST errors per column


class _CsvRead:
    """A month's CSV, parsed once into a typed parquet and checked against rawcsv's counts."""

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
        say: Callable[[int, str], None],
    ) -> None:
        self.con, self.raw, self.fmt, self.svc, self.month, self.label = con, raw, fmt, svc, month, label
        self.say = say
        self.out, self.scratch = out, scratch
        self.dialect = rawcsv.dialect(raw, fmt)
        self.cmap = services.map_columns(svc, self.dialect.columns)
        by_source = {name: svc.column(c) for c in self.cmap.mapped for name in self.cmap.sources(c)}
        self.types = {
            name: scan_type(by_source.get(name), name in self.dialect.numeric) for name in self.dialect.columns
        }
        self.scans = 0

    def read(self) -> _Read:
        with ThreadPoolExecutor(1) as pool:
            counted = pool.submit(rawcsv.tally, self.raw, self.fmt)
            try:
                scan = self._scan(self.raw, self.fmt, strict=False, rows=lambda: _known(counted))
                failed = None
            except duckdb.Error as e:
                scan, failed = None, e
            tally = counted.result()  # a damaged gzip is reported as such, whatever DuckDB made of it
        if scan is not None and (text := self._reread_as_text(scan, tally.rows)):
            scan = self._scan(self.raw, self.fmt, strict=False, rows=tally.rows, text=text)
        if scan is not None and (rows := self._agrees(scan, tally)) is not None:
            return self._placed(scan, self.raw, self.fmt, rows, "lenient")
        # One line ending, read strictly: rows the grammar cannot place are set aside rather than cut short.
        copy = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(".lf.csv")))
        self.say(40, "reading again with one line ending")
        rawcsv.write_lf(self.raw, self.fmt, copy)
        try:
            scan = self._scan(copy, ".csv", strict=True, rows=tally.rows)
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
        return self._placed(scan, copy, ".csv", rows, "strict, one line ending")

    def _scan(
        self,
        path: Path,
        fmt: str,
        *,
        strict: bool,
        rows: int | Callable[[], int | None],
        text: frozenset[str] = frozenset(),
    ) -> _Scan:
        """DuckDB's reader over the file, its rows written as they were parsed (typed) to a staged parquet.

        Only parsing: ``month_query`` maps the staged rows afterwards, on every core, where in the scan of a
        csv.gz it would lengthen the one thread that unpacks and parses it.

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
        query = f"SELECT *{keep} FROM {relation}{where}"
        staged = self.scratch.enter_context(staging.staged(self.out.data.with_suffix(f".scan{self.scans}.parquet")))
        with progress_of.watch(self.con, self.say, 1, 80, rows, "read"):
            copied = self.con.execute(f"COPY ({query}) TO {literal(str(staged))} (FORMAT parquet, COMPRESSION lz4_raw)")
            accepted = one(copied.fetchone())[0]
        refused = dict(
            self.con.execute(
                f"SELECT column_name, count(*) FROM {rejects} WHERE error_type = 'CAST' GROUP BY ALL"
            ).fetchall()
        )
        return _Scan(staged, types, accepted, rejects, refused)

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
        return lines if lines == rawcsv.exact_rows(self.raw, self.fmt) else None

    def _placed(self, scan: _Scan, text: Path, fmt: str, rows_in: int, how: str) -> _Read:
        """The staged rows, the set-aside lines placed by Python's csv module, and the malformed ones.

        Set-aside lines are streamed a batch at a time: a month whose every row was set aside still
        holds one batch in memory, not the month.
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
                "rows_with_empty_fields_dropped": padded + (scan.accepted if self.dialect.extra else 0),
            }
        }
        staged = f"read_parquet({literal(str(scan.staged))})"
        mapped = [f"({month_query(self.svc, self.cmap, self.month, staged, scan.types)})"]
        if written:
            text_rows = f"read_parquet({literal(str(rescued))})"
            as_text = dict.fromkeys(self.dialect.columns, "VARCHAR")
            mapped.append(f"({month_query(self.svc, self.cmap, self.month, text_rows, as_text)})")
        result = _Read(mapped, self.cmap, rows_in, notes=notes)
        if bad:
            numbers = rawcsv.line_numbers(text, fmt, [offset for offset, _, _ in bad])
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


def _known(counted: Future[rawcsv.Tally]) -> int | None:
    return counted.result().rows if counted.done() and not counted.exception() else None


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


def _copy(con: duckdb.DuckDBPyConnection, query: str, dest: Path) -> None:
    con.execute(f"COPY ({query}) TO {literal(str(dest))} (FORMAT parquet, COMPRESSION snappy)")


def _report(con: duckdb.DuckDBPyConnection, svc: Service, data: Path, quarantine: Path, rows_in: int) -> dict:
    names = [c.name for c in svc.all_columns if c is not SOURCE_MONTH]
    nulls = ", ".join(f"count(*) - count({ident(n)})" for n in names)
    row = one(
        con.execute(
            f"SELECT count(*), min(pickup_datetime), max(pickup_datetime), {nulls} "
            f"FROM read_parquet({literal(str(data))})"
        ).fetchone()
    )
    by_reason = dict.fromkeys(REASONS, 0)
    by_reason.update(
        con.execute(f"SELECT reason, count(*) FROM read_parquet({literal(str(quarantine))}) GROUP BY reason").fetchall()
    )
    return {
        "rows_in": rows_in,
        "rows_clean": row[0],
        "rows_quarantined": sum(by_reason.values()),
        "quarantine_by_reason": by_reason,
        "pickup_min": row[1].isoformat() if row[1] else None,
        "pickup_max": row[2].isoformat() if row[2] else None,
        "null_counts": dict(zip(names, row[3:], strict=True)),
    }


def _check_schema(svc: Service, data: Path, label: str) -> None:
    written = pq.read_schema(data).remove_metadata()
    if not written.equals(svc.arrow_schema()):
        raise CleanError(f"{label}: the clean parquet schema drifted from the canonical one: {written}")
