"""One month into PostgreSQL four ways: taxi-luigi's Load (binary COPY), ``psql \\copy`` of a CSV, the CSV COPY
taxi-luigi loaded with before, and the course's pandas ``to_sql``.

Part of ``./scripts/bench`` (benchmarks/run.py). The server is a throwaway PostgreSQL 16 from
the pgserver package's binaries, started the way the tests start theirs, so the run needs no
installed PostgreSQL; ``psql`` comes from the same binaries. The first three take turns, the
best of ``--repeats`` counting, each reloading the same clean rows into a table of its own;
the course's, far slower, runs once.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import duckdb
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres_server import PASSWORD, ROLE, PostgresServer, bin_dir

from taxi_luigi.demo import sample
from taxi_luigi.warehouse.postgres import PostgresWarehouse

PG_TYPES = {
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
}

# The course's ingest script: read the csv.gz in chunks of 100,000 rows, fix the two timestamp
# columns, replace the table with the first chunk and append the rest, with to_sql's defaults.
COURSE = """
import sys, pandas as pd, sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[2])
for i, df in enumerate(pd.read_csv(sys.argv[1], iterator=True, chunksize=100000)):
    df["tpep_pickup_datetime"] = pd.to_datetime(df["tpep_pickup_datetime"], errors="coerce")
    df["tpep_dropoff_datetime"] = pd.to_datetime(df["tpep_dropoff_datetime"], errors="coerce")
    df.to_sql("yellow_taxi_data", engine, if_exists="replace" if i == 0 else "append", index=False)
"""


# taxi-luigi's loader before binary COPY, kept as the baseline it was measured as: 50,000-row CSV chunks written from
# the parquet by a thread while the server parses the last ones, COPY ... FORMAT csv, FREEZE, in one transaction.
CSV_LOADER = """
import io, queue, sys, threading, psycopg2, pyarrow.csv as pacsv, pyarrow.parquet as pq
chunks = queue.Queue(maxsize=4)
def produce():
    for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=50_000):
        sink = io.BytesIO()
        pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
        chunks.put(sink.getvalue())
    chunks.put(b"")
class Stream(io.RawIOBase):
    current = memoryview(b"")
    def readable(self):
        return True
    def read(self, size=-1):
        while not self.current:
            self.current = memoryview(chunks.get())
            if not self.current:
                return b""
        chunk, self.current = self.current[:size], self.current[size:]
        return chunk.tobytes()
threading.Thread(target=produce, daemon=True).start()
with psycopg2.connect(sys.argv[2]) as conn, conn.cursor() as cur:
    cur.execute(sys.argv[3])
    cur.copy_expert(sys.argv[4], Stream(), 1 << 20)
"""


def _scalar(server: PostgresServer, database: str, sql: str) -> object:
    """The first value the last statement of ``sql`` returns, run as the role taxi in ``database``."""
    engine = sqlalchemy.create_engine(server.url(database=database), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def postgres_rows(bench, truth: sample.MonthTruth, month: str, course: bool, repeats: int) -> list:
    """Load, ``psql \\copy``, the CSV loader and (optionally) the course's to_sql of one month, on a server of
    their own."""
    # the benchmark's own helpers; imported here, as run.py imports this module
    from run import Measured, Row, in_turns, measure

    label = f"{truth.service} {month}"
    work = bench.work / "postgres"
    passfile = bench.work / "pgpass"
    passfile.write_text(f"*:*:*:{ROLE}:{PASSWORD}\n")
    passfile.chmod(0o600)
    os.environ["PGPASSFILE"] = str(passfile)  # the subprocesses' libpq reads the password here, as a user's would
    with PostgresServer() as server:
        for name in ("taxi_luigi", "copy", "course"):
            server.create_database(f"bench_{name}")
        ours_url = server.url(database="bench_taxi_luigi")
        cfg = bench.config("postgres", ".csv.gz", warehouse={"url": ours_url})
        task = ["--service", truth.service, "--month", month]
        bench.luigi(cfg, "Publish", *task)
        warehouse = PostgresWarehouse(ours_url)

        def reload() -> Measured:
            """The card's command loading the month again: its load_log rows forgotten, as invalidate does."""
            warehouse.forget_month(truth.service, dt.date.fromisoformat(f"{month}-01"))
            return bench.luigi(cfg, "Load", *task)

        lake_data = next((cfg.parent / "lake").rglob(f"*{month}.parquet"))
        csv = work / "month.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        duckdb.execute(f"COPY (SELECT * FROM read_parquet('{lake_data}')) TO '{csv}' (FORMAT csv, HEADER)")
        columns = duckdb.execute(f"DESCRIBE SELECT * FROM read_parquet('{lake_data}')").fetchall()
        ddl = ", ".join(f'"{name}" {PG_TYPES[kind]}' for name, kind, *_ in columns)
        copy_url = server.url(database="bench_copy").replace("+psycopg2", "")

        def fresh(table: str) -> str:
            _scalar(server, "bench_copy", f"DROP TABLE IF EXISTS {table}; SELECT 0")
            return f"CREATE TABLE {table} ({ddl})"

        def psql_copy() -> Measured:
            _scalar(server, "bench_copy", f"{fresh('month_copy')}; SELECT 0")
            copy = f"\\copy month_copy FROM '{csv}' WITH (FORMAT csv, HEADER)"
            return measure([str(bin_dir() / "psql"), copy_url, "-c", copy])

        def csv_loader() -> Measured:
            copy = "COPY month_csv FROM STDIN WITH (FORMAT csv, FREEZE)"
            return bench.python_code(CSV_LOADER, str(lake_data), copy_url, fresh("month_csv"), copy)

        contenders = {  # each with the database and table it fills
            "taxi-luigi Load": (reload, "bench_taxi_luigi", f"{truth.service}_tripdata"),
            "psql \\copy of a CSV": (psql_copy, "bench_copy", "month_copy"),
            "CSV COPY (the loader before)": (csv_loader, "bench_copy", "month_csv"),
        }
        out = in_turns(label, "postgres", repeats, {how: run for how, (run, *_) in contenders.items()})
        for row in out:
            _, database, table = contenders[row.how]
            row.rows = _scalar(server, database, f"SELECT count(*) FROM {table}")

        if course:
            course_url = server.url(database="bench_course")
            run = measure([bench.python, "-c", COURSE, str(truth.path), course_url])
            rows = _scalar(server, "bench_course", "SELECT count(*) FROM yellow_taxi_data")
            out.append(Row("postgres", label, "course: pandas to_sql", run, rows))
    return out
