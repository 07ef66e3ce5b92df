"""Raw month file -> clean parquet + quarantine parquet + quality report. Pure: no Luigi here.

DuckDB does the work: it streams the source (csv, csv.gz or parquet) in bounded memory
and writes parquet directly, so a month never sits in Python memory. Every source
spelling and physical type is mapped by services.py onto one canonical schema, so
every month of a service writes byte-for-byte the same parquet schema.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from taxi_luigi import geo, services, source, staging
from taxi_luigi import progress as progress_of
from taxi_luigi.services import REASONS, SOURCE_MONTH, Column, Service


class CleanError(Exception):
    """A month could not be cleaned; nothing was written under a final name."""


@dataclass(frozen=True)
class Outputs:
    """Where a month's clean data and quarantine go."""

    data: Path
    quarantine: Path


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def source_relation(path: Path, fmt: str, label: str) -> str:
    """A DuckDB table function reading the raw file.

    CSV is read as text with the columns of its own header and no sniffing: the sniffer
    can take a malformed row for a different dialect and return no rows at all, whereas
    a strict read fails on that row and names it.
    """
    if fmt == ".parquet":
        return f"read_parquet({sql_literal(str(path))})"
    header = source.csv_header(path, fmt, label, path.name)
    columns = ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in header)
    return (
        f"read_csv({sql_literal(str(path))}, auto_detect = false, header = true, columns = {{{columns}}}, "
        "delim = ',', quote = '\"', escape = '\"', strict_mode = true)"
    )


def typed_expr(col: Column, source: str | None) -> str:
    """The SQL that turns one source column into its canonical type.

    TRY_CAST handles every drift seen in real files at once: int64/int32/double ids,
    "1.0" text, empty strings, timestamps in ns or as text, and columns of no type.
    """
    if source is None:
        return f"NULL::{col.duckdb_type}"
    ref = sql_ident(source)
    if col.type == "string":
        expr = f"NULLIF(TRIM(CAST({ref} AS VARCHAR)), '')"
        expr = f"UPPER({expr})" if col.normalize == "upper" else expr
        return f"COALESCE({code_expr(col, ref)}, {expr})" if col.codes else expr
    expr = f"TRY_CAST({ref} AS {col.duckdb_type})"
    if col.codes:  # a number is itself; a known code is its number; any other text is null
        expr = f"COALESCE({expr}, {code_expr(col, ref)})"
    return f"NULLIF({expr}, 0)" if col.zero_is_null else expr


def code_expr(col: Column, ref: str) -> str:
    """The canonical value of a coded text (2009-2010 'CMT', '"Cash"', ' csh'), or NULL."""
    key = f"UPPER(TRIM(REPLACE(REPLACE(CAST({ref} AS VARCHAR), '\"', ''), '''', '')))"
    whens = " ".join(f"WHEN {sql_literal(code)} THEN {sql_literal(value)}" for code, value in col.codes)
    return f"CAST(CASE {key} {whens} END AS {col.duckdb_type})"


def raw_expr(source: str | None) -> str:
    return "NULL::VARCHAR" if source is None else f"CAST({sql_ident(source)} AS VARCHAR)"


def other_expr(names: tuple[str, ...]) -> str:
    if not names:
        return "NULL::VARCHAR"
    fields = ", ".join(f"{sql_ident(n)} := {raw_expr(n)}" for n in names)
    return f"to_json(struct_pack({fields}))::VARCHAR"


def reason_expr(svc: Service, mapped: dict[str, str], month: dt.date) -> str:
    """The quarantine rules, in order: the first rule a row breaks is its reason."""

    def typed(name: str) -> str:
        return typed_expr(svc.column(name), mapped.get(name))

    pickup, dropoff = typed("pickup_datetime"), typed("dropoff_datetime")
    start, end = sql_literal(month.isoformat()), sql_literal(next_month(month).isoformat())
    rules = []
    if svc.has_passenger_count:
        rules.append((f"{typed('passenger_count')} = 0", REASONS[0]))
    rules += [
        (f"{pickup} IS NULL", REASONS[1]),
        (f"{dropoff} < {pickup}", REASONS[2]),
        (f"{pickup} < TIMESTAMP {start} OR {pickup} >= TIMESTAMP {end}", REASONS[3]),
    ]
    whens = " ".join(f"WHEN {cond} THEN {sql_literal(reason)}" for cond, reason in rules)
    return f"CASE {whens} END"


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

    The source is scanned twice, once for the clean rows and once for the quarantine: DuckDB
    has no statement with two outputs, and a staged or partitioned copy of the whole month
    costs more than a second scan (benchmarks/analysis.md).

    A month with coordinates and no zone ids (yellow 2009-2010) gets its ids from ``zones_shapes``
    (geo.py); without shapes they stay null and the report says so.
    """
    started = time.monotonic()
    say = progress or (lambda pct, msg: None)
    con = _connect(memory_limit, threads, temp_dir)
    try:
        with (
            staging.staged(out.data) as data_tmp,
            staging.staged(out.quarantine) as quarantine_tmp,
            staging.staged(out.data.with_suffix(".csv")) as text_tmp,
            ThreadPoolExecutor(1) as pool,
        ):
            # DuckDB reads gzip on one thread: the other core unpacks the text for the second scan meanwhile.
            unpacked = pool.submit(_readable, raw, fmt, text_tmp, label)
            relation = source_relation(raw, fmt, label)
            columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
            cmap = services.map_columns(svc, columns)
            clean_sql, _ = month_queries(svc, cmap, month, relation)
            say(1, "cleaning")
            try:
                with progress_of.watch(con, say, 1, 80, lambda: _known(unpacked), "cleaned"):
                    _copy(con, clean_sql, data_tmp)
            except duckdb.Error:
                unpacked.result()  # a damaged gzip is reported as such, so the task can fetch it again
                raise
            readable, rows_in = unpacked.result()
            relation = source_relation(readable, ".parquet" if fmt == ".parquet" else ".csv", label)
            _, quarantine_sql = month_queries(svc, cmap, month, relation)
            with progress_of.watch(con, say, 80, 95, lambda: rows_in, "checked for quarantine"):
                _copy(con, quarantine_sql, quarantine_tmp)
            zoned = _zones(data_tmp, cmap, zones_shapes, say)
            report = _report(con, svc, data_tmp, quarantine_tmp, rows_in) | zoned
            if fmt != ".parquet" and rows_in != report["rows_clean"] + report["rows_quarantined"]:
                report["rows_in"] = source.csv_rows(readable)  # DuckDB skips blank lines
            _check_schema(svc, data_tmp, label)
            if report["rows_in"] != report["rows_clean"] + report["rows_quarantined"]:
                raise CleanError(
                    f"{label}: {raw.name} has {report['rows_in']} rows but {report['rows_clean']} were clean and "
                    f"{report['rows_quarantined']} quarantined; nothing was written. A CSV with line breaks "
                    "inside quoted values counts differently; otherwise please report this bug with the source file."
                )
            os.replace(data_tmp, out.data)
            os.replace(quarantine_tmp, out.quarantine)
    except duckdb.Error as e:
        raise CleanError(
            f"{label}: cannot clean {raw.name}: {str(e).splitlines()[0]}. The raw file may be damaged: "
            f"`taxi-luigi invalidate {label} --from download` and rerun to download it again."
        ) from None
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
        column_map=cmap.mapped,
        other_columns=list(cmap.other),
        ignored_columns=list(cmap.ignored),
        seconds=round(time.monotonic() - started, 3),
    )
    say(100, f"{report['rows_clean']:,} clean, {report['rows_quarantined']:,} quarantined")
    return report


def month_queries(svc: Service, cmap: services.ColumnMap, month: dt.date, relation: str) -> tuple[str, str]:
    """The SELECTs of the month's clean rows and of its quarantined rows, raw values as text."""
    month_sql = f"DATE {sql_literal(month.isoformat())}"
    typed = [f"{typed_expr(c, cmap.mapped.get(c.name))} AS {sql_ident(c.name)}" for c in svc.columns]
    raw_cols = [f"{raw_expr(cmap.mapped.get(c.name))} AS {sql_ident(c.name)}" for c in svc.columns]
    other = f"{other_expr(cmap.other)} AS other_columns"
    reason = reason_expr(svc, cmap.mapped, month)
    clean_sql = (
        f"SELECT * EXCLUDE (__reason) FROM (SELECT {', '.join(typed)}, {other}, "
        f"{month_sql} AS source_month, {reason} AS __reason FROM {relation}) WHERE __reason IS NULL"
    )
    quarantine_sql = (
        f"SELECT * FROM (SELECT {', '.join(raw_cols)}, {other}, {reason} AS reason, "
        f"{month_sql} AS source_month FROM {relation}) WHERE reason IS NOT NULL"
    )
    return clean_sql, quarantine_sql


def _zones(data: Path, cmap: services.ColumnMap, shapes: str, say: Callable[[int, str], None]) -> dict:
    """Zone ids from coordinates, for a month whose source has coordinates and no ids; its report fields."""
    if not geo.needs_zones(cmap.mapped):
        return {}
    if not shapes:
        return {"zones": geo.NOT_CONFIGURED, "zones_assigned": {"pickups": 0, "dropoffs": 0}}
    say(95, "assigning zones")
    return {"zones": f"assigned from {shapes}", "zones_assigned": geo.assign_file(data, geo.load(shapes))}


def _readable(raw: Path, fmt: str, text: Path, label: str) -> tuple[Path, int]:
    """The file for the second scan, and the source's row count, taken apart from DuckDB's reading."""
    if fmt == ".parquet":
        return raw, pq.ParquetFile(raw).metadata.num_rows
    return source.csv_text(raw, fmt, text, label)


def _known(unpacked: Future[tuple[Path, int]]) -> int | None:
    return unpacked.result()[1] if unpacked.done() and not unpacked.exception() else None


def _connect(memory_limit: str, threads: int, temp_dir: Path | None) -> duckdb.DuckDBPyConnection:
    # Without statistics propagation DuckDB writes every parquet field as optional; with it, a
    # column that happens to have no nulls this month would be written as required.
    config = {
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
    con.execute(f"COPY ({query}) TO {sql_literal(str(dest))} (FORMAT parquet, COMPRESSION snappy)")


def _report(con: duckdb.DuckDBPyConnection, svc: Service, data: Path, quarantine: Path, rows_in: int) -> dict:
    names = [c.name for c in svc.all_columns if c is not SOURCE_MONTH]
    nulls = ", ".join(f"count(*) - count({sql_ident(n)})" for n in names)
    row = con.execute(
        f"SELECT count(*), min(pickup_datetime), max(pickup_datetime), {nulls} "
        f"FROM read_parquet({sql_literal(str(data))})"
    ).fetchone()
    by_reason = dict.fromkeys(REASONS, 0)
    by_reason.update(
        con.execute(
            f"SELECT reason, count(*) FROM read_parquet({sql_literal(str(quarantine))}) GROUP BY reason"
        ).fetchall()
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
