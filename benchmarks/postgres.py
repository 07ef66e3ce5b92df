"""One month into PostgreSQL three ways: the course's pandas ``to_sql``, ``psql \\copy`` of a CSV, taxi-luigi's Load.

Part of ``./scripts/bench`` (benchmarks/run.py). The server is a throwaway PostgreSQL 16 from
the pgserver package's binaries, started the way the tests start theirs, so the run needs no
installed PostgreSQL; ``psql`` comes from the same binaries.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres_server import PASSWORD, ROLE, PostgresServer, bin_dir

from taxi_luigi.demo import sample

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


def _scalar(server: PostgresServer, database: str, sql: str) -> object:
    """The first value the last statement of ``sql`` returns, run as the role taxi in ``database``."""
    engine = sqlalchemy.create_engine(server.url(database=database), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def postgres_rows(bench, truth: sample.MonthTruth, month: str, course: bool) -> list:
    """Load, ``psql \\copy`` and (optionally) the course's to_sql of one month, on a server of their own."""
    from run import Row, measure  # the benchmark's own helpers; imported here, as run.py imports this module

    label = f"{truth.service} {month}"
    work = bench.work / "postgres"
    passfile = bench.work / "pgpass"
    passfile.write_text(f"*:*:*:{ROLE}:{PASSWORD}\n")
    passfile.chmod(0o600)
    os.environ["PGPASSFILE"] = str(passfile)  # the subprocesses' libpq reads the password here, as a user's would
    out = []
    with PostgresServer() as server:
        for name in ("taxi_luigi", "copy", "course"):
            server.create_database(f"bench_{name}")
        cfg = bench.config("postgres", ".csv.gz", warehouse={"url": server.url(database="bench_taxi_luigi")})
        task = ["--service", truth.service, "--month", month]
        bench.luigi(cfg, "Publish", *task)
        load = bench.luigi(cfg, "Load", *task)
        loaded = _scalar(server, "bench_taxi_luigi", f"SELECT count(*) FROM {truth.service}_tripdata")
        out.append(Row("postgres", label, "taxi-luigi Load", load, loaded))

        lake_data = next((cfg.parent / "lake").rglob(f"*{month}.parquet"))
        csv = work / "month.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        duckdb.execute(f"COPY (SELECT * FROM read_parquet('{lake_data}')) TO '{csv}' (FORMAT csv, HEADER)")
        columns = duckdb.execute(f"DESCRIBE SELECT * FROM read_parquet('{lake_data}')").fetchall()
        ddl = ", ".join(f'"{name}" {PG_TYPES[kind]}' for name, kind, *_ in columns)
        _scalar(server, "bench_copy", f"CREATE TABLE month_copy ({ddl}); SELECT 0")
        psql = [str(bin_dir() / "psql"), server.url(database="bench_copy").replace("+psycopg2", "")]
        copy = measure([*psql, "-c", f"\\copy month_copy FROM '{csv}' WITH (FORMAT csv, HEADER)"])
        copied = _scalar(server, "bench_copy", "SELECT count(*) FROM month_copy")
        out.append(Row("postgres", label, "psql \\copy of a CSV", copy, copied))

        if course:
            course_url = server.url(database="bench_course")
            run = measure([bench.python, "-c", COURSE, str(truth.path), course_url])
            rows = _scalar(server, "bench_course", "SELECT count(*) FROM yellow_taxi_data")
            out.append(Row("postgres", label, "course: pandas to_sql", run, rows))
    return out
