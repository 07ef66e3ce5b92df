"""The embedded default warehouse: one DuckDB file, one writer at a time."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from taxi_luigi import progress as progress_of
from taxi_luigi import services, tables
from taxi_luigi.lake import Lake
from taxi_luigi.progress import Say
from taxi_luigi.services import Column, Service
from taxi_luigi.sql import ident, one
from taxi_luigi.tables import LOAD_LOG, TRIPS_VIEW, ZONES, ZONES_LOG, Table
from taxi_luigi.warehouse import HISTORY_COLUMNS, Warehouse, WarehouseError, history_rows

_MONTH_CHECK = "CHECK (source_month = date_trunc('month', source_month))"


def column_ddl(column: Column) -> str:
    return f"{ident(column.name)} {column.duckdb_type}{' NOT NULL' * column.not_null}"


def table_ddl(table: Table) -> str:
    key = f", PRIMARY KEY ({ident(table.key)})" if table.key else ""
    return f"CREATE TABLE IF NOT EXISTS {ident(table.name)} ({', '.join(map(column_ddl, table.columns))}{key})"


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block in one transaction: committed if it ends well, else rolled back and its error raised."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (a full disk: the WAL cannot be written) has ended the transaction
        # already; its error, not the ROLLBACK's "no transaction is active", is the one to report.
        with contextlib.suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        raise


class DuckDBWarehouse(Warehouse):
    """DuckDB allows one writing process per file: connections wait for it, up to ``lock_wait``."""

    def __init__(self, path: Path, lock_wait: float = 120.0, memory_limit: str = "300MB") -> None:
        self.path = path
        self.lock_wait = lock_wait
        # Rows of a month have no order worth keeping, and without it DuckDB writes row groups in
        # parallel as they come instead of holding the month in memory: 2.8 s instead of 7.5 s for
        # 7.3M rows under a memory limit (benchmarks/analysis.md).
        self._config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit,
            "preserve_insertion_order": False,
        }

    def __repr__(self) -> str:
        return f"duckdb:///{self.path}"

    @contextlib.contextmanager
    def _connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_wait
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=self._config)
                break
            except duckdb.IOException as e:
                reason = str(e).splitlines()[0]
                if "lock" not in reason.lower():
                    raise WarehouseError(f"cannot open the DuckDB warehouse {self.path}: {reason}") from None
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"the DuckDB warehouse {self.path} is held by another process ({reason}); waited "
                        f"{self.lock_wait:.0f} s ([warehouse] lock_wait_seconds). Rerun when it has finished."
                    ) from None
                time.sleep(0.2)
        try:
            yield con
        finally:
            con.close()

    def _ensure_tables(self, con: duckdb.DuckDBPyConnection, svc: Service) -> None:
        con.execute(table_ddl(LOAD_LOG))
        for table, columns in ((svc.table, svc.all_columns), (svc.quarantine_table, svc.quarantine_columns)):
            cols = ", ".join(map(column_ddl, columns))
            con.execute(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({cols}, {_MONTH_CHECK})")
            for c in columns:  # a newer schema version adds columns; older months read null
                con.execute(f"ALTER TABLE {ident(table)} ADD COLUMN IF NOT EXISTS {ident(c.name)} {c.duckdb_type}")

    def replace_month(
        self, svc: Service, month: dt.date, lake: Lake, manifest: dict, label: str, progress: Say | None = None
    ) -> int:
        with lake.verified_copies(manifest, label) as (data, quarantine):
            return self._replace(svc, month, data, quarantine, manifest, progress or (lambda pct, msg: None))

    def _replace(self, svc: Service, month: dt.date, data: Path, quarantine: Path, manifest: dict, say: Say) -> int:
        with self._connect(read_only=False) as con:
            self._ensure_tables(con, svc)
            progress_of.track(con)
            with _transaction(con):
                for table, path, rows in (
                    (svc.table, data, manifest["rows"]),
                    (svc.quarantine_table, quarantine, manifest["quarantined"]),
                ):
                    con.execute(f"DELETE FROM {ident(table)} WHERE source_month = ?", [month])
                    with progress_of.watch(con, say, 30, 90, rows, f"loaded into {table}"):
                        con.execute(f"INSERT INTO {ident(table)} BY NAME SELECT * FROM read_parquet(?)", [str(path)])
                rows, quarantined = (
                    one(con.execute(f"SELECT count(*) FROM {ident(t)} WHERE source_month = ?", [month]).fetchone())[0]
                    for t in (svc.table, svc.quarantine_table)
                )
                if (rows, quarantined) != (manifest["rows"], manifest["quarantined"]):
                    raise WarehouseError(
                        f"{svc.name} {month:%Y-%m}: loaded {rows} rows and {quarantined} quarantined but the "
                        f"manifest says {manifest['rows']} and {manifest['quarantined']}; rolled back."
                    )
                con.execute(
                    f"INSERT INTO {LOAD_LOG.name} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        svc.name,
                        month,
                        manifest["checksum"],
                        rows,
                        quarantined,
                        manifest["objects"]["data"]["key"],
                        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                    ],
                )
        return rows

    def loaded_checksums(self, service: str) -> dict[dt.date, str]:
        rows = self._query(
            f"SELECT source_month, arg_max(checksum, loaded_at) FROM {LOAD_LOG.name} WHERE service = ? GROUP BY 1",
            [service],
        )
        return dict(rows)

    def load_log(self, service: str | None = None) -> list[dict]:
        rows = self._query(
            f"SELECT service, source_month, arg_max(checksum, loaded_at), arg_max(rows, loaded_at), "
            f"arg_max(quarantined, loaded_at), max(loaded_at) FROM {LOAD_LOG.name} "
            "WHERE ? IS NULL OR service = ? GROUP BY 1, 2 ORDER BY 1, 2",
            [service, service],
        )
        keys = ("service", "month", "checksum", "rows", "quarantined", "loaded_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def load_history(self, service: str | None = None) -> list[dict]:
        rows = self._query(
            f"SELECT {HISTORY_COLUMNS} FROM {LOAD_LOG.name} WHERE ? IS NULL OR service = ? "
            "ORDER BY service, source_month, loaded_at",
            [service, service],
        )
        return history_rows(rows)

    def forget_month(self, service: str, month: dt.date) -> int:
        if not self.path.exists():  # nothing was ever loaded; do not create the file
            return 0
        with self._connect(read_only=False) as con:
            con.execute(table_ddl(LOAD_LOG))
            sql = f"DELETE FROM {LOAD_LOG.name} WHERE service = ? AND source_month = ?"
            return one(con.execute(sql, [service, month]).fetchone())[0]

    def replace_zones(self, rows: list[tuple], lookup: dict) -> int:
        with self._connect(read_only=False) as con:
            con.execute(table_ddl(ZONES))
            con.execute(table_ddl(ZONES_LOG))
            with _transaction(con):
                con.execute(f"DELETE FROM {ZONES.name}")
                con.executemany(f"INSERT INTO {ZONES.name} VALUES (?, ?, ?, ?)", rows)
                found = one(con.execute(f"SELECT count(*) FROM {ZONES.name}").fetchone())[0]
                if found != len(rows):
                    raise WarehouseError(f"zones: loaded {found} rows of {len(rows)}; rolled back.")
                con.execute(
                    f"INSERT INTO {ZONES_LOG.name} VALUES (?, ?, ?, ?, ?)",
                    [
                        lookup["url"],
                        lookup["bytes"],
                        lookup["sha256"],
                        len(rows),
                        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                    ],
                )
        return len(rows)

    def zones_checksum(self) -> str | None:
        rows = self._query(f"SELECT arg_max(sha256, loaded_at) FROM {ZONES_LOG.name}", [], table=ZONES_LOG.name)
        return rows[0][0] if rows else None

    def create_trips_view(self, columns: list[str]) -> None:
        with self._connect(read_only=False) as con:
            for name in tables.VIEW_SERVICES:
                self._ensure_tables(con, services.service(name))
            con.execute(f"CREATE OR REPLACE VIEW {TRIPS_VIEW} AS {tables.trips_view_sql(ident, columns, ident)}")

    def trips_view_columns(self) -> list[str] | None:
        rows = self._query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [TRIPS_VIEW],
            table=TRIPS_VIEW,
        )
        return [r[0] for r in rows] or None

    def _query(self, sql: str, params: list, table: str = LOAD_LOG.name) -> list[tuple]:
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            tables_named = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
            if not one(tables_named.fetchone())[0]:
                return []
            return con.execute(sql, params).fetchall()
