"""The warehouse on BigQuery, through google-cloud-bigquery.

A month is replaced in two moves. A load job (never rows one by one) puts the month's
clean and quarantined rows into staging tables of their own; their counts are checked
against the manifest. Then one multi-statement transaction deletes the month from both
tables, inserts it from staging and appends the load_log row: readers see the old month
or the new one, and a failure anywhere before COMMIT leaves the month and the log as
they were. (A partition-decorator load with WRITE_TRUNCATE is atomic too, but it could
not write the load_log row in the same commit: a crash between the two would leave a
loaded month that the next run loads again.)
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from taxi_luigi import services, tables
from taxi_luigi.lake import Lake
from taxi_luigi.progress import Say
from taxi_luigi.services import SOURCE_MONTH, Column, Service
from taxi_luigi.tables import LOAD_LOG, TRIPS_VIEW, ZONES, ZONES_LOG, Table
from taxi_luigi.warehouse import HISTORY_COLUMNS, Warehouse, WarehouseError, history_rows

#: Canonical logical types -> BigQuery types. TLC times are wall-clock New York times without a
#: zone: DATETIME says so, where TIMESTAMP would claim they are UTC.
BQ_TYPES = {
    "int32": "INT64",
    "int64": "INT64",
    "double": "FLOAT64",
    "string": "STRING",
    "timestamp": "DATETIME",
    "date": "DATE",
    "instant": "TIMESTAMP",
}


def field(column: Column) -> bigquery.SchemaField:
    mode = "REQUIRED" if column.not_null else "NULLABLE"
    if column.doc:
        return bigquery.SchemaField(column.name, BQ_TYPES[column.type], mode=mode, description=column.doc)
    return bigquery.SchemaField(column.name, BQ_TYPES[column.type], mode=mode)


def table_fields(table: Table) -> list[bigquery.SchemaField]:
    return [field(c) for c in table.columns]


def _fix(error: exceptions.GoogleAPICallError) -> str:
    """What to do about a permanent error; transient ones were already retried by the client."""
    if isinstance(error, exceptions.Forbidden):
        return (
            "The account needs roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on the project "
            "(and roles/storage.objectViewer on the bucket when the lake is on GCS): see docs/gcp.md."
        )
    return (
        "If it names a column or a type, the table's schema no longer matches the canonical one (docs/schema.md): "
        "fix the table, or drop it and rerun to reload every month."
    )


def _literal(value: str) -> str:
    """A BigQuery string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@functools.cache
def client(project: str, location: str, endpoint: str) -> bigquery.Client:
    """One client per process. With an endpoint (an emulator) anonymous, otherwise Application Default Credentials."""
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    return bigquery.Client(project=project, location=location)


def table_schema(svc: Service) -> list[bigquery.SchemaField]:
    """The clean table, explicit: autodetection would follow whichever month came first."""
    return [field(c) for c in svc.all_columns]


def quarantine_schema(svc: Service) -> list[bigquery.SchemaField]:
    return [field(c) for c in svc.quarantine_columns]


def _nullable(value: str | None) -> str:
    return "NULL" if value is None else _literal(value)


class BigQueryWarehouse(Warehouse):
    """``bigquery://project/dataset``; every job runs in ``[gcp] location``."""

    def __init__(self, project: str, dataset: str, location: str, endpoint: str = "", timeout: float = 600.0) -> None:
        self.client = client(project, location, endpoint)
        self.dataset = bigquery.DatasetReference(project, dataset)
        self.location, self.timeout = location, timeout

    def __repr__(self) -> str:
        return f"bigquery://{self.dataset.project}/{self.dataset.dataset_id}"

    def _table(self, name: str) -> bigquery.TableReference:
        return self.dataset.table(name)

    def _sql_name(self, name: str) -> str:
        return f"`{self.dataset.project}.{self.dataset.dataset_id}.{name}`"

    def _ensure(self, svc: Service) -> None:
        """The dataset in the configured location, and the month-partitioned tables of the service."""
        dataset = bigquery.Dataset(self.dataset)
        dataset.location = self.location
        dataset = self.client.create_dataset(dataset, exists_ok=True, timeout=self.timeout)
        if dataset.location and dataset.location.upper() != self.location.upper():
            raise WarehouseError(
                f"the dataset {self!r} is in {dataset.location} but [gcp] location is {self.location}: set it to "
                "the dataset's location, where every job runs (a GCS lake's bucket must then be one BigQuery loads "
                "from into it: see docs/gcp.md)."
            )
        clustering = [c for c in ("pu_location_id", "do_location_id") if c in {col.name for col in svc.columns}]
        for name, schema in ((svc.table, table_schema(svc)), (svc.quarantine_table, quarantine_schema(svc))):
            table = bigquery.Table(self._table(name), schema=schema)
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.MONTH, field=SOURCE_MONTH.name
            )
            if name == svc.table and clustering:
                table.clustering_fields = clustering
            existing = self.client.create_table(table, exists_ok=True, timeout=self.timeout)
            # A newer schema version adds columns: appended, nullable, so older months read null. DDL rather
            # than a schema patch, which bqemulator records without adding the column to its storage.
            if missing := [f for f in schema if f.name not in {e.name for e in existing.schema}]:
                added = ", ".join(f"ADD COLUMN IF NOT EXISTS `{f.name}` {f.field_type}" for f in missing)
                self.client.query(f"ALTER TABLE {self._sql_name(name)} {added}").result(timeout=self.timeout)
        self.client.create_table(
            bigquery.Table(self._table(LOAD_LOG.name), schema=table_fields(LOAD_LOG)), exists_ok=True
        )

    def replace_month(
        self,
        svc: Service,
        month: dt.date,
        lake: Lake,
        manifest: dict,
        label: str,
        progress: Say | None = None,
    ) -> int:
        say = progress or (lambda pct, msg: None)
        self._ensure(svc)
        parts = (
            (svc.table, table_schema(svc), manifest["rows"]),
            (svc.quarantine_table, quarantine_schema(svc), manifest["quarantined"]),
        )
        with self._staging(parts) as staged:
            say(30, f"loading {manifest['rows']:,} rows into staging")
            self._load(lake, manifest, label, staged)
            for (table, _, rows), stage in zip(parts, staged, strict=True):
                found = self._scalar(f"SELECT count(*) FROM {self._sql_name(stage.table_id)}")
                if found != rows:
                    raise WarehouseError(
                        f"{label}: the load job put {found} rows into staging for {table} but the manifest says "
                        f"{rows}; nothing was changed. Rerun the load."
                    )
            say(70, f"replacing {svc.table} {month:%Y-%m}")
            self._swap(svc, month, manifest, [s.table_id for s in staged], label)
        return manifest["rows"]

    @contextmanager
    def _staging(self, parts: tuple) -> Iterator[list[bigquery.TableReference]]:
        """Staging tables of this load alone, dropped whatever happens."""
        suffix = uuid.uuid4().hex[:10]
        staged = [self._table(f"_staging_{table}_{suffix}") for table, _, _ in parts]
        try:
            for ref, (_, schema, _) in zip(staged, parts, strict=True):
                self.client.create_table(bigquery.Table(ref, schema=schema), timeout=self.timeout)
            yield staged
        finally:
            for ref in staged:
                self.client.delete_table(ref, not_found_ok=True, timeout=self.timeout)

    def _load(self, lake: Lake, manifest: dict, label: str, staged: list[bigquery.TableReference]) -> None:
        """Load jobs from the lake: straight from gs:// when the lake is on GCS, else from the local files."""
        entries = [manifest["objects"][kind] for kind in ("data", "quarantine")]
        uris = [uri for entry in entries if (uri := lake.gs_uri(entry, label))]
        jobs = []
        if len(uris) == len(entries):
            for uri, ref in zip(uris, staged, strict=True):
                jobs.append(self.client.load_table_from_uri(uri, ref, job_config=self._job_config(ref)))
            self._wait(jobs, label)
            for entry in entries:  # BigQuery read the live objects: they must still be the manifest's
                lake.gs_uri(entry, label)
        else:
            with lake.verified_copies(manifest, label) as paths:
                for path, ref in zip(paths, staged, strict=True):
                    with open(path, "rb") as f:
                        jobs.append(self.client.load_table_from_file(f, ref, job_config=self._job_config(ref)))
                self._wait(jobs, label)

    def _job_config(self, ref: bigquery.TableReference) -> bigquery.LoadJobConfig:
        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=self.client.get_table(ref).schema,
        )

    def _wait(self, jobs: list[bigquery.LoadJob], label: str) -> None:
        for job in jobs:
            try:
                job.result(timeout=self.timeout)
            except exceptions.GoogleAPICallError as e:
                raise WarehouseError(
                    f"{label}: the load job into {job.destination.table_id} failed: {e.message}. Nothing was changed. "
                    f"{_fix(e)}"
                ) from None

    def _swap(self, svc: Service, month: dt.date, manifest: dict, staged: list[str], label: str) -> None:
        # Literals rather than query parameters: bqemulator binds none inside a script. Every value is
        # the pipeline's own (a date, counts, a hex checksum, a lake key) and quoted by _literal.
        day = f"DATE {_literal(month.isoformat())}"
        log_row = ", ".join(
            [
                _literal(svc.name),
                day,
                _literal(manifest["checksum"]),
                str(int(manifest["rows"])),
                str(int(manifest["quarantined"])),
                _literal(manifest["objects"]["data"]["key"]),
                "CURRENT_TIMESTAMP()",
            ]
        )
        # By name: a table made by an older schema version has its newer columns at the end.
        columns = [", ".join(f"`{f.name}`" for f in schema) for schema in (table_schema(svc), quarantine_schema(svc))]
        log_columns = ", ".join(c.name for c in LOAD_LOG.columns)
        self._transaction(
            f"{label}: replacing {self!r}.{svc.table} {month:%Y-%m}",
            f"DELETE FROM {self._sql_name(svc.table)} WHERE source_month = {day}",
            f"INSERT INTO {self._sql_name(svc.table)} ({columns[0]}) "
            f"SELECT {columns[0]} FROM {self._sql_name(staged[0])}",
            f"DELETE FROM {self._sql_name(svc.quarantine_table)} WHERE source_month = {day}",
            f"INSERT INTO {self._sql_name(svc.quarantine_table)} ({columns[1]}) "
            f"SELECT {columns[1]} FROM {self._sql_name(staged[1])}",
            f"INSERT INTO {self._sql_name(LOAD_LOG.name)} ({log_columns}) VALUES ({log_row})",
        )

    def _transaction(self, what: str, *statements: str) -> None:
        """The statements as one multi-statement transaction: all of them, or (rolled back) none."""
        script = ";\n".join(("BEGIN TRANSACTION", *statements, "COMMIT TRANSACTION")) + ";"
        try:
            self.client.query(script).result(timeout=self.timeout)
        except exceptions.GoogleAPICallError as e:
            raise WarehouseError(f"{what} failed and was rolled back: {e.message}. {_fix(e)}") from None

    def _scalar(self, sql: str, params: list | None = None) -> object:
        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params or []))
        return next(iter(job.result(timeout=self.timeout)))[0]

    def _latest(self, service: str | None) -> list[bigquery.Row]:
        return self._log_rows(
            f"""
SELECT service, source_month, checksum, rows, quarantined, loaded_at
FROM {self._sql_name(LOAD_LOG.name)}
WHERE @service IS NULL OR service = @service
QUALIFY ROW_NUMBER() OVER (PARTITION BY service, source_month ORDER BY loaded_at DESC) = 1
ORDER BY service, source_month""",
            service,
        )

    def _log_rows(self, sql: str, service: str | None) -> list[bigquery.Row]:
        """The rows of a query on load_log with an ``@service`` parameter (none: nothing was ever loaded)."""
        params = [bigquery.ScalarQueryParameter("service", "STRING", service)]
        try:
            return list(self._log_query(sql, params).result(timeout=self.timeout))
        except (exceptions.NotFound, exceptions.Forbidden) as e:
            if self._no_load_log(e):  # nothing was ever loaded
                return []
            raise

    def _log_query(self, sql: str, params: list[bigquery.ScalarQueryParameter]) -> bigquery.QueryJob:
        """A small, idempotent query job on load_log that gives up after ``[bigquery] timeout_seconds``.

        The client would otherwise retry an unreachable endpoint for 10 minutes at two levels
        (the API call, then the job insert); here only the call is retried, within the timeout.
        """
        config = bigquery.QueryJobConfig(query_parameters=params)
        retry = DEFAULT_RETRY.with_timeout(self.timeout)
        try:
            return self.client.query(sql, job_config=config, retry=retry, job_retry=None)
        except exceptions.RetryError as e:
            raise WarehouseError(
                f"cannot reach BigQuery for {self!r} in {self.timeout:.0f} s ([bigquery] timeout_seconds): "
                f"{e.cause or e}. Check the network (and [bigquery] api_endpoint, if set); rerun when it answers."
            ) from None

    def _no_load_log(self, error: exceptions.GoogleAPICallError) -> bool:
        """Whether a query failed because load_log does not exist (yet).

        bqemulator answers 403 where BigQuery answers 404 for a missing dataset: a 403 is checked,
        so that a real permission error is not taken for "nothing loaded yet".
        """
        if isinstance(error, exceptions.NotFound):
            return True
        try:
            self.client.get_table(self._table(LOAD_LOG.name), timeout=self.timeout)
        except exceptions.NotFound:
            return True
        return False

    def loaded_checksums(self, service: str) -> dict[dt.date, str]:
        return {row["source_month"]: row["checksum"] for row in self._latest(service)}

    def load_log(self, service: str | None = None) -> list[dict]:
        return [
            {
                "service": r["service"],
                "month": r["source_month"],
                "checksum": r["checksum"],
                "rows": r["rows"],
                "quarantined": r["quarantined"],
                "loaded_at": r["loaded_at"],
            }
            for r in self._latest(service)
        ]

    def load_history(self, service: str | None = None) -> list[dict]:
        sql = (
            f"SELECT {HISTORY_COLUMNS} FROM {self._sql_name(LOAD_LOG.name)} "
            "WHERE @service IS NULL OR service = @service ORDER BY service, source_month, loaded_at"
        )
        return history_rows(row.values() for row in self._log_rows(sql, service))

    def forget_month(self, service: str, month: dt.date) -> int:
        """One DML statement, a transaction of its own. A single query binds parameters, even on bqemulator."""
        sql = f"DELETE FROM {self._sql_name(LOAD_LOG.name)} WHERE service = @service AND source_month = @month"
        params = [
            bigquery.ScalarQueryParameter("service", "STRING", service),
            bigquery.ScalarQueryParameter("month", "DATE", month),
        ]
        try:
            job = self._log_query(sql, params)
            job.result(timeout=self.timeout)
        except (exceptions.NotFound, exceptions.Forbidden) as e:
            if self._no_load_log(e):
                return 0
            raise WarehouseError(
                f"{service} {month:%Y-%m}: deleting its load_log rows in {self!r} failed: {e.message}. {_fix(e)}"
            ) from None
        return job.num_dml_affected_rows or 0

    def replace_zones(self, rows: list[tuple], lookup: dict) -> int:
        """One script, one transaction: the whole small table replaced, with its zones_log row.

        Literals rather than parameters (bqemulator binds none inside a script); every value is quoted by _literal.
        """
        dataset = bigquery.Dataset(self.dataset)
        dataset.location = self.location
        self.client.create_dataset(dataset, exists_ok=True, timeout=self.timeout)
        for table in (ZONES, ZONES_LOG):
            self.client.create_table(
                bigquery.Table(self._table(table.name), schema=table_fields(table)), exists_ok=True
            )
        values = ",\n".join(f"({int(r[0])}, {', '.join(_nullable(v) for v in r[1:])})" for r in rows)
        log_row = ", ".join(
            [_literal(lookup["url"]), str(int(lookup["bytes"])), _literal(lookup["sha256"]), str(len(rows))]
        )
        self._transaction(
            f"zones: replacing {self!r}.{ZONES.name}",
            f"DELETE FROM {self._sql_name(ZONES.name)} WHERE TRUE",
            f"INSERT INTO {self._sql_name(ZONES.name)} ({', '.join(c.name for c in ZONES.columns)}) VALUES\n{values}",
            f"INSERT INTO {self._sql_name(ZONES_LOG.name)} ({', '.join(c.name for c in ZONES_LOG.columns)}) "
            f"VALUES ({log_row}, CURRENT_TIMESTAMP())",
        )
        return len(rows)

    def zones_checksum(self) -> str | None:
        try:
            self.client.get_table(self._table(ZONES_LOG.name), timeout=self.timeout)
        except exceptions.NotFound:
            return None
        sql = f"SELECT sha256 FROM {self._sql_name(ZONES_LOG.name)} ORDER BY loaded_at DESC LIMIT 1"
        found = list(self._log_query(sql, []).result(timeout=self.timeout))
        return found[0][0] if found else None

    def create_trips_view(self, columns: list[str]) -> None:
        for name in tables.VIEW_SERVICES:
            self._ensure(services.service(name))
        sql = tables.trips_view_sql(self._sql_name, columns, lambda c: f"`{c}`")
        try:
            self.client.query(f"CREATE OR REPLACE VIEW {self._sql_name(TRIPS_VIEW)} AS {sql}").result(
                timeout=self.timeout
            )
        except exceptions.GoogleAPICallError as e:
            raise WarehouseError(f"{TRIPS_VIEW}: creating the view in {self!r} failed: {e.message}.") from None

    def trips_view_columns(self) -> list[str] | None:
        try:
            view = self.client.get_table(self._table(TRIPS_VIEW), timeout=self.timeout)
        except exceptions.NotFound:
            return None
        return [f.name for f in view.schema] or None
