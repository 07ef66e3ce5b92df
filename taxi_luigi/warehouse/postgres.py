"""The warehouse on PostgreSQL, through SQLAlchemy (the URL, the connection) and psycopg2 (COPY).

Each month is a partition of ``{service}_tripdata`` (LIST on ``source_month``). A month is
replaced in one transaction: a new table is filled by binary COPY (pgbinary.py), streamed
from the clean parquet in batches (never a month in memory, never an INSERT per row),
counted against the manifest, then swapped in for the old partition (DETACH, DROP, ATTACH) together with the
load_log row. Until COMMIT readers see the old month; the swap's lock makes them wait the
moment it takes, then they see the new month whole. Anything failing before COMMIT,
including the server going away, leaves the month and the log as they were.

Why partitions rather than one table with an index on source_month: replacing a month is
then a DROP of the old partition, not a DELETE of millions of rows that leaves them for
VACUUM, and a query for one month reads only that month's table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import sqlalchemy
from psycopg2.extensions import connection, cursor
from sqlalchemy.engine import make_url

from taxi_luigi import services, tables
from taxi_luigi.lake import Lake
from taxi_luigi.progress import Say
from taxi_luigi.services import Column, Service
from taxi_luigi.sql import ident
from taxi_luigi.tables import LOAD_LOG, TRIPS_VIEW, ZONES, ZONES_LOG, Table
from taxi_luigi.warehouse import HISTORY_COLUMNS, Warehouse, WarehouseError, checked_identifier, history_rows, pgbinary

PG_TYPES = {
    "int32": "integer",
    "int64": "bigint",
    "double": "double precision",
    "string": "text",
    "timestamp": "timestamp",  # without time zone: the TLC's wall-clock times
    "date": "date",
    "instant": "timestamptz",
}
BATCH_ROWS = 50_000  # rows a COPY batch holds: 25,000 saved 45 MB of peak RSS and cost 1.3 s on the yellow month
_FORMAT_TYPES = {"timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz"}
COPY_BYTES = 1 << 16  # what psycopg2 hands libpq at a time: 1 MB made the 7.3M-row month 13.2 s, not 10.9


def column_ddl(column: Column) -> str:
    """A column's definition; a moment is the server's now() unless given (the load's commit time)."""
    default = " DEFAULT now()" if column.type == "instant" else ""
    return f"{ident(column.name)} {PG_TYPES[column.type]}{' NOT NULL' * column.not_null}{default}"


class _CopyStream(io.RawIOBase):
    """A parquet file as binary COPY data for COPY ... FROM STDIN, encoded a batch at a time by a thread of its own.

    The thread encodes the next batches while the server stores the last ones; the queue bounds
    what is held to a few batches, whatever the month's size.
    """

    def __init__(self, path: Path, progress: Say, total: int, low: int, high: int) -> None:
        self._chunks: queue.Queue[tuple[memoryview, int] | None] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._current = memoryview(pgbinary.HEADER)
        self._say, self._total, self._low, self._high = progress, total, low, high
        self.rows = 0
        # pre_buffer off: a batch is read as it is encoded, not a whole row group ahead (140 MB less peak RSS).
        self._file = pq.ParquetFile(path, pre_buffer=False)
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for batch in self._file.iter_batches(batch_size=BATCH_ROWS):
                if not self._put((pgbinary.encode(batch), batch.num_rows)):
                    return
            self._put((memoryview(pgbinary.TRAILER), 0))
        except BaseException as e:  # handed to the reader, which raises it in COPY's thread
            self._error = e
        self._put(None)

    def _put(self, item: tuple[memoryview, int] | None) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._chunks.put(item, timeout=0.1)
                return True
        return False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            item = self._chunks.get()
            if item is None:
                if self._error is not None:
                    raise self._error
                return b""
            self._current, rows = item
            self.rows += rows
            if self._total and rows:
                pct = self._low + (self._high - self._low) * self.rows // self._total
                self._say(pct, f"{self.rows:,} of {self._total:,} rows copied")
        chunk = self._current if size < 0 else self._current[:size]
        self._current = self._current[len(chunk) :]
        return chunk.tobytes()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


class PostgresWarehouse(Warehouse):
    """``postgresql://user@host:port/db[?schema=name]``; the password comes from ~/.pgpass or PGPASSWORD."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        schema = parsed.query.get("schema", "public")
        if not isinstance(schema, str):
            raise ValueError(f"warehouse url: name one schema, not {len(schema)} (?schema=name)")
        self.schema = checked_identifier("PostgreSQL schema", schema)
        # psycopg2, the card's driver, whatever SQLAlchemy's default for postgresql:// (2.1: psycopg 3).
        parsed = parsed.difference_update_query(["schema"]).set(drivername="postgresql+psycopg2")
        self.safe_url = parsed.render_as_string(hide_password=True)
        self.engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool)

    def __repr__(self) -> str:
        return self.safe_url

    def _name(self, table: str) -> str:
        return f"{ident(self.schema)}.{ident(table)}"

    def _create(self, cur: cursor, table: Table) -> None:
        key = f", PRIMARY KEY ({ident(table.key)})" if table.key else ""
        columns = ", ".join(map(column_ddl, table.columns))
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self._name(table.name)} ({columns}{key})")

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[cursor]:
        """A cursor whose work is committed if the block ends well, else rolled back: a WarehouseError as it is,
        anything else (the server gone, a statement refused) as one that says ``what`` (e.g. "yellow 2021-03:
        loading into") failed and nothing was committed."""
        with self._connect() as conn:
            raw: connection = conn.connection.driver_connection  # psycopg2's own connection, for COPY
            try:
                with raw.cursor() as cur:
                    yield cur
                raw.commit()
            except WarehouseError:
                raw.rollback()
                raise
            except Exception as e:
                _rollback_quietly(raw)
                raise WarehouseError(
                    f"{what} {self.safe_url} failed and nothing was committed: {_first_line(e)}. "
                    "Rerun when the server is reachable."
                ) from None

    def _connect(self) -> sqlalchemy.engine.Connection:
        try:
            return self.engine.connect()
        except sqlalchemy.exc.OperationalError as e:
            raise WarehouseError(
                f"cannot connect to the PostgreSQL warehouse {self.safe_url}: {_first_line(e)}. Check the host, port "
                "and user in [warehouse] url, and the password in ~/.pgpass or PGPASSWORD (never in the url)."
            ) from None

    def _ensure(self, cur: cursor, svc: Service) -> None:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        self._create(cur, LOAD_LOG)
        for table, columns in ((svc.table, svc.all_columns), (svc.quarantine_table, svc.quarantine_columns)):
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._name(table)} ({', '.join(map(column_ddl, columns))}, "
                "CHECK (source_month = date_trunc('month', source_month::timestamp)::date)) "
                "PARTITION BY LIST (source_month)"
            )
            for c in columns:  # a newer schema version adds columns; older months read null
                cur.execute(
                    f"ALTER TABLE {self._name(table)} ADD COLUMN IF NOT EXISTS {ident(c.name)} {PG_TYPES[c.type]}"
                )

    def replace_month(
        self, svc: Service, month: dt.date, lake: Lake, manifest: dict, label: str, progress: Say | None = None
    ) -> int:
        say = progress or (lambda pct, msg: None)
        with lake.verified_copies(manifest, label) as (data, quarantine):
            with self._transaction(f"{label}: creating the tables in") as cur:
                self._ensure(cur, svc)
            with self._transaction(f"{label}: loading into") as cur:
                parts = (
                    (svc.table, data, manifest["rows"], 30, 85),
                    (svc.quarantine_table, quarantine, manifest["quarantined"], 85, 90),
                )
                staged = [self._fill(cur, t, month, path, rows, label, say, lo, hi) for t, path, rows, lo, hi in parts]
                say(92, f"swapping in {svc.table} {month:%Y-%m}")
                for (table, *_), new in zip(parts, staged, strict=True):
                    self._swap(cur, table, month, new)
                cur.execute(
                    f"INSERT INTO {self._name(LOAD_LOG.name)} (service, source_month, checksum, rows, quarantined, "
                    "lake_object) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        svc.name,
                        month,
                        manifest["checksum"],
                        manifest["rows"],
                        manifest["quarantined"],
                        manifest["objects"]["data"]["key"],
                    ),
                )
        return manifest["rows"]

    def _fill(
        self, cur: cursor, table: str, month: dt.date, path: Path, rows: int, label: str, say: Say, low: int, high: int
    ) -> str:
        """A new table shaped like ``table``, holding the month from ``path``; returns its name."""
        new = f"{table}_new_{uuid.uuid4().hex[:8]}"
        cur.execute(
            f"CREATE TABLE {self._name(new)} (LIKE {self._name(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # The partition's own constraint, declared up front, spares ATTACH a scan of the month.
        cur.execute(f"ALTER TABLE {self._name(new)} ADD CHECK (source_month = %s)", (month,))
        cols = ", ".join(map(ident, _copy_columns(cur, self._name(table), table, path, label)))
        # FREEZE: the table is new in this transaction, so its rows can be written frozen (no later VACUUM pass).
        copy = f"COPY {self._name(new)} ({cols}) FROM STDIN WITH (FORMAT binary, FREEZE)"
        with _CopyStream(path, say, rows, low, high) as stream:
            cur.copy_expert(copy, stream, COPY_BYTES)
        cur.execute(f"SELECT count(*) FROM {self._name(new)}")
        found = cur.fetchone()[0]
        if found != rows:
            raise WarehouseError(
                f"{label}: COPY put {found} rows into {table} but the manifest says {rows}; rolled back. "
                "This is a bug: please report it with the lake object."
            )
        return new

    def _swap(self, cur: cursor, table: str, month: dt.date, new: str) -> None:
        part = f"{table}_{month:%Y%m}"
        cur.execute("SELECT to_regclass(%s)", (f"{self._name(part)}",))
        if cur.fetchone()[0] is not None:
            cur.execute(f"ALTER TABLE {self._name(table)} DETACH PARTITION {self._name(part)}")
            cur.execute(f"DROP TABLE {self._name(part)}")
        cur.execute(f"ALTER TABLE {self._name(new)} RENAME TO {ident(part)}")
        cur.execute(f"ALTER TABLE {self._name(table)} ATTACH PARTITION {self._name(part)} FOR VALUES IN (%s)", (month,))

    def _latest(self, service: str | None) -> list[dict]:
        rows = self._log_rows(
            "SELECT DISTINCT ON (service, source_month) service, source_month, checksum, rows, quarantined, "
            "loaded_at FROM {log} WHERE CAST(:s AS text) IS NULL OR service = :s "
            "ORDER BY service, source_month, loaded_at DESC",
            service,
        )
        return [dict(r._mapping) for r in rows]

    def _log_rows(self, sql: str, service: str | None) -> list[sqlalchemy.Row]:
        """The rows of a query on load_log (``{log}`` in ``sql``) for ``:s``, a service or None (none: nothing was
        ever loaded)."""
        log = self._name(LOAD_LOG.name)
        with self._connect() as conn:
            if conn.execute(sqlalchemy.text("SELECT to_regclass(:t)"), {"t": log}).scalar() is None:
                return []
            return list(conn.execute(sqlalchemy.text(sql.format(log=log)), {"s": service}))

    def loaded_checksums(self, service: str) -> dict[dt.date, str]:
        return {r["source_month"]: r["checksum"] for r in self._latest(service)}

    def load_log(self, service: str | None = None) -> list[dict]:
        return [{"month": r.pop("source_month"), **r} for r in self._latest(service)]

    def load_history(self, service: str | None = None) -> list[dict]:
        sql = (
            f"SELECT {HISTORY_COLUMNS} FROM {{log}} WHERE CAST(:s AS text) IS NULL OR service = :s "
            "ORDER BY service, source_month, loaded_at"
        )
        return history_rows(self._log_rows(sql, service))

    def forget_month(self, service: str, month: dt.date) -> int:
        log = self._name(LOAD_LOG.name)
        with self._connect() as conn:
            try:
                if conn.execute(sqlalchemy.text("SELECT to_regclass(:t)"), {"t": log}).scalar() is None:
                    return 0  # nothing was ever loaded
                deleted = conn.execute(
                    sqlalchemy.text(f"DELETE FROM {log} WHERE service = :s AND source_month = :m"),
                    {"s": service, "m": month},
                ).rowcount
                conn.commit()
            except sqlalchemy.exc.DBAPIError as e:
                raise WarehouseError(
                    f"{service} {month:%Y-%m}: deleting its load_log rows in {self.safe_url} failed: {_first_line(e)}. "
                    "Rerun when the server is reachable."
                ) from None
        return deleted

    def replace_zones(self, rows: list[tuple], lookup: dict) -> int:
        table, log = self._name(ZONES.name), self._name(ZONES_LOG.name)
        with self._transaction("zones: creating the tables in") as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
            self._create(cur, ZONES)
            self._create(cur, ZONES_LOG)
        with self._transaction("zones: loading into") as cur:
            cur.execute(f"DELETE FROM {table}")
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", rows)
            cur.execute(f"SELECT count(*) FROM {table}")
            if (found := cur.fetchone()[0]) != len(rows):
                raise WarehouseError(f"zones: loaded {found} rows of {len(rows)}; rolled back.")
            cur.execute(
                f"INSERT INTO {log} (url, bytes, sha256, rows) VALUES (%s, %s, %s, %s)",
                (lookup["url"], lookup["bytes"], lookup["sha256"], len(rows)),
            )
        return len(rows)

    def zones_checksum(self) -> str | None:
        log = self._name(ZONES_LOG.name)
        with self._connect() as conn:
            if conn.execute(sqlalchemy.text("SELECT to_regclass(:t)"), {"t": log}).scalar() is None:
                return None
            return conn.execute(sqlalchemy.text(f"SELECT sha256 FROM {log} ORDER BY loaded_at DESC LIMIT 1")).scalar()

    def create_trips_view(self, columns: list[str]) -> None:
        """Drop and create in one transaction: CREATE OR REPLACE VIEW cannot drop or reorder columns."""
        with self._transaction(f"{TRIPS_VIEW}: creating the view in") as cur:
            for name in tables.VIEW_SERVICES:
                self._ensure(cur, services.service(name))
            cur.execute(f"DROP VIEW IF EXISTS {self._name(TRIPS_VIEW)}")
            cur.execute(f"CREATE VIEW {self._name(TRIPS_VIEW)} AS {tables.trips_view_sql(self._name, columns, ident)}")

    def trips_view_columns(self) -> list[str] | None:
        with self._connect() as conn:
            names = conn.execute(
                sqlalchemy.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                    "ORDER BY ordinal_position"
                ),
                {"s": self.schema, "t": TRIPS_VIEW},
            ).scalars()
            return list(names) or None


def _copy_columns(cur: cursor, qualified: str, table: str, path: Path, label: str) -> list[str]:
    """The parquet's columns in binary COPY's order, once each is known to have the table's type: binary COPY
    reads a value's bytes as the column's type, so a mismatch must stop the load here, by name."""
    parquet = pq.read_schema(path)
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (qualified,),
    )
    types = {name: _FORMAT_TYPES.get(kind, kind) for name, kind in cur.fetchall()}
    for field in parquet:
        try:
            given = pgbinary.pg_type(field.type)
        except TypeError:
            given = str(field.type)
        if given != (wanted := types.get(field.name)):
            raise WarehouseError(
                f"{label}: column {field.name} is {field.type} in {path.name}, which loads as {given}, but "
                f"{table}.{field.name} is {wanted or 'missing'}; rolled back. A parquet cleaned by another version "
                f"is made again by `taxi-luigi invalidate {label} --from clean` and a rerun."
            )
    return pgbinary.column_order(parquet)


def _first_line(error: Exception) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


def _rollback_quietly(raw: connection) -> None:
    """After a lost connection there is nothing to roll back, and trying raises again: the original error counts."""
    with contextlib.suppress(Exception):
        raw.rollback()
