"""The warehouse on a real PostgreSQL server started by the suite: COPY, partition swap, exact and idempotent."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import clean, services
from taxi_luigi.demo import sample
from taxi_luigi.lake.local import LocalLake
from taxi_luigi.tasks import TaxiYear
from taxi_luigi.warehouse import WarehouseError
from taxi_luigi.warehouse.postgres import PostgresWarehouse


def counts(url: str, table: str) -> dict[str, int]:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1"))
        return {f"{m:%Y-%m}": n for m, n in rows}


def published(tmp_path: Path, service: str, month: dt.date, rows: int, seed_dir: str) -> tuple[LocalLake, dict]:
    """A month cleaned and published to a local lake, as Publish leaves it."""
    work = tmp_path / seed_dir
    truth = sample.write_month(work / "mirror", service, month.year, month.month, "tlc", rows)
    return published_file(tmp_path, service, month, truth.path, seed_dir)


def published_file(tmp_path: Path, service: str, month: dt.date, raw: Path, seed_dir: str) -> tuple[LocalLake, dict]:
    """The month of the source file ``raw`` cleaned and published to a local lake, as Publish leaves it."""
    work = tmp_path / seed_dir
    work.mkdir(parents=True, exist_ok=True)
    out = clean.Outputs(work / "d.parquet", work / "q.parquet")
    report = clean.clean_month(raw, "".join(raw.suffixes), services.service(service), month, out, label="t")
    (work / "r.json").write_text(json.dumps(report))
    the_lake = LocalLake(str(tmp_path / "lake"))
    files = {"data": out.data, "quarantine": out.quarantine, "report": work / "r.json"}
    return the_lake, the_lake.publish_month(service, month, files, {})


@pytest.mark.parametrize("service", list(services.SERVICES))
def test_every_service_loads_exact_counts_into_monthly_partitions(mirror, pipeline, pg_database, service):
    truths = sample.write_mirror(mirror.root, [service], 2023, [1, 2, 3], "tlc", 800)
    pipeline.configure(mirror.template(), warehouse={"url": pg_database})

    assert pipeline.run(TaxiYear(service=service, year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS

    table = services.service(service).table
    assert counts(pg_database, table) == {f"2023-{t.month:02d}": t.clean for t in truths}
    quarantined = {f"2023-{t.month:02d}": sum(t.reasons.values()) for t in truths if sum(t.reasons.values())}
    assert counts(pg_database, f"{table}_quarantine") == quarantined
    engine = sqlalchemy.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        parts = conn.execute(
            sqlalchemy.text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)"),
            {"t": table},
        ).scalars()
        assert sorted(parts) == [f"{table}_2023{m:02d}" for m in (1, 2, 3)]


def test_a_rerun_loads_nothing(mirror, pipeline, pg_database):
    sample.write_mirror(mirror.root, ["green"], 2022, range(1, 7), "tlc", 300)
    pipeline.configure(mirror.template(), warehouse={"url": pg_database})
    assert pipeline.run(TaxiYear(service="green", year=2022, months="1-6")).status == LuigiStatusCode.SUCCESS
    before = PostgresWarehouse(pg_database).load_log()

    result = pipeline.run(TaxiYear(service="green", year=2022, months="1-6"))

    assert result.status == LuigiStatusCode.SUCCESS and "ran successfully" not in result.summary_text
    assert PostgresWarehouse(pg_database).load_log() == before
    assert mirror.downloads() == 6


def test_a_replaced_month_is_never_seen_half_loaded(tmp_path, pg_database):
    month = dt.date(2022, 2, 1)
    wh = PostgresWarehouse(pg_database)
    old_lake, old = published(tmp_path, "yellow", month, 150_000, "old")
    wh.replace_month(services.YELLOW, month, old_lake, old, "yellow 2022-02")
    new_lake, new = published(tmp_path, "yellow", month, 230_000, "new")
    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        engine = sqlalchemy.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.connect() as conn:
            while not done.is_set():
                seen.append(conn.execute(sqlalchemy.text(
                    "SELECT count(*) FROM yellow_tripdata WHERE source_month = '2022-02-01'")).scalar())  # fmt: skip
                conn.commit()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        wh.replace_month(services.YELLOW, month, new_lake, new, "yellow 2022-02")
    finally:
        done.set()
        thread.join()

    assert set(seen) <= {old["rows"], new["rows"]} and seen[0] == old["rows"] and seen[-1] == new["rows"]
    assert len(seen) > 10  # the reader really ran during the load
    assert counts(pg_database, "yellow_tripdata") == {"2022-02": new["rows"]}
    assert [r["checksum"] for r in wh.load_log("yellow")] == [new["checksum"]]


def test_the_server_stopping_mid_load_commits_nothing_and_a_rerun_succeeds(tmp_path, postgres, pg_database):
    if not postgres.can_restart:
        pytest.skip("the server named by TAXI_LUIGI_TEST_POSTGRES_URL is not ours to stop")
    month = dt.date(2021, 9, 1)
    the_lake, manifest = published(tmp_path, "fhvhv", month, 250_000, "m")
    wh = PostgresWarehouse(pg_database)
    stopped = []

    def stop_once(pct: int, message: str) -> None:
        if "rows copied" in message and not stopped:
            stopped.append(message)
            postgres.stop()  # an immediate shutdown while COPY is streaming

    with pytest.raises(WarehouseError, match=r"fhvhv 2021-09: loading into .* failed and nothing was committed"):
        wh.replace_month(services.FHVHV, month, the_lake, manifest, "fhvhv 2021-09", stop_once)
    assert stopped
    postgres.start()

    assert wh.loaded_checksums("fhvhv") == {}
    assert counts(pg_database, "fhvhv_tripdata") == {}
    assert wh.replace_month(services.FHVHV, month, the_lake, manifest, "fhvhv 2021-09") == manifest["rows"]
    assert counts(pg_database, "fhvhv_tripdata") == {"2021-09": manifest["rows"]}


def test_a_wrong_password_is_a_clear_error_that_does_not_print_it(pg_database, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "not-the-pw-6y7u")  # libpq takes it before the passfile
    with pytest.raises(WarehouseError) as caught:
        PostgresWarehouse(pg_database).loaded_checksums("yellow")
    assert "password authentication failed" in str(caught.value)
    assert "not-the-pw-6y7u" not in str(caught.value)

    monkeypatch.delenv("PGPASSWORD")
    inline = pg_database.replace("://taxi@", "://taxi:in-url-pw-3e4r@", 1)
    with pytest.raises(WarehouseError) as caught:
        PostgresWarehouse(inline).loaded_checksums("yellow")
    assert "in-url-pw-3e4r" not in str(caught.value) and "***" in str(caught.value)


def test_forget_month_deletes_its_load_log_rows_and_the_rows_stay_until_the_next_load(tmp_path, pg_database):
    wh = PostgresWarehouse(pg_database)
    jan, feb = dt.date(2022, 1, 1), dt.date(2022, 2, 1)
    assert wh.forget_month("green", feb) == 0  # no load_log yet
    loads = {month: published(tmp_path, "green", month, 400, f"m{month:%m}") for month in (jan, feb)}
    for month in (jan, feb, feb):
        the_lake, manifest = loads[month]
        wh.replace_month(services.GREEN, month, the_lake, manifest, f"green {month:%Y-%m}")
    loaded = {f"{month:%Y-%m}": manifest["rows"] for month, (_, manifest) in loads.items()}

    assert wh.forget_month("green' OR 'x' = 'x", feb) == 0  # bound as a parameter, never spliced into SQL
    assert wh.forget_month("green", feb) == 2  # every load of the month, not only the latest
    assert wh.loaded_checksums("green") == {jan: loads[jan][1]["checksum"]}
    assert counts(pg_database, "green_tripdata") == loaded  # queries still see the month
    assert wh.forget_month("green", feb) == 0

    the_lake, manifest = loads[feb]
    wh.replace_month(services.GREEN, feb, the_lake, manifest, "green 2022-02")
    assert wh.loaded_checksums("green") == {month: m["checksum"] for month, (_, m) in loads.items()}
    assert counts(pg_database, "green_tripdata") == loaded


def test_a_table_of_an_older_schema_version_gets_the_new_columns_and_keeps_its_months(mirror, pipeline, pg_database):
    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2], "tlc", 300)
    pipeline.configure(mirror.template(), warehouse={"url": pg_database})
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1")).status == LuigiStatusCode.SUCCESS
    engine = sqlalchemy.create_engine(pg_database)
    with engine.begin() as con:  # as a warehouse made before the coordinates joined the schema
        con.execute(sqlalchemy.text("ALTER TABLE yellow_tripdata DROP COLUMN pickup_longitude"))

    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1,2")).status == LuigiStatusCode.SUCCESS

    assert counts(pg_database, "yellow_tripdata") == {f"2023-{t.month:02d}": t.clean for t in truths}
    with engine.connect() as con:
        nulls = con.execute(
            sqlalchemy.text("SELECT source_month, count(pickup_longitude) FROM yellow_tripdata GROUP BY 1 ORDER BY 1")
        ).fetchall()
    assert [n for _, n in nulls] == [0, 0]  # the column is back; 2023 months have no coordinates
    engine.dispose()


def test_load_history_lists_every_load_oldest_first_and_the_latest_is_load_log(tmp_path, pg_database):
    wh = PostgresWarehouse(pg_database)
    assert wh.load_history() == []  # no load_log yet
    month = dt.date(2022, 5, 1)
    loads = []
    for rows in (600, 400):  # the source re-issued the month: published and loaded again
        loads.append(published(tmp_path, "green", month, rows, f"m{rows}"))
        wh.replace_month(services.GREEN, month, *loads[-1], "green 2022-05")

    history = wh.load_history("green")

    assert [(r["service"], r["month"], r["checksum"], r["rows"], r["quarantined"]) for r in history] == [
        ("green", month, m["checksum"], m["rows"], m["quarantined"]) for _, m in loads
    ]
    assert {r["lake_object"] for r in history} == {"green/2022/green_tripdata_2022-05.parquet"}
    assert history[0]["loaded_at"] < history[1]["loaded_at"]
    assert wh.load_history() == history and wh.load_history("yellow") == []
    latest = {k: v for k, v in history[-1].items() if k != "lake_object"}
    assert wh.load_log("green") == [latest]


# What each schema type must be in PostgreSQL, from the contract (not from the loader's own table).
EXACT_TYPES = {
    "int32": "integer",
    "int64": "bigint",
    "double": "double precision",
    "string": "text",
    "timestamp": "timestamp without time zone",
    "date": "date",
}


def rows_by_value(rows: list[tuple]) -> list[tuple]:
    """Rows in an order of their own: a table's rows have none, and binary COPY groups a batch's by NULLs."""
    return sorted(rows, key=repr)


def assert_month_arrives_exactly(pg_database: str, svc: services.Service, month: dt.date, manifest: dict, lake) -> None:
    """Every row and every value of the month's clean parquet (read by pyarrow) is in PostgreSQL, typed exactly."""
    parquet = pq.read_table(Path(lake.root) / manifest["objects"]["data"]["key"])
    names = ", ".join(f'"{n}"' for n in parquet.column_names)
    engine = sqlalchemy.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        types = dict(conn.execute(sqlalchemy.text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :t"
        ), {"t": f"{svc.table}_{month:%Y%m}"}).fetchall())  # fmt: skip
        loaded = conn.execute(
            sqlalchemy.text(f"SELECT {names} FROM {svc.table} WHERE source_month = :m"), {"m": month}
        ).fetchall()
    engine.dispose()
    assert types == {c.name: EXACT_TYPES[c.type] for c in svc.all_columns}
    expected = [tuple(r.values()) for r in parquet.to_pylist()]
    assert len(loaded) == len(expected) == manifest["rows"]
    assert rows_by_value([tuple(r) for r in loaded]) == rows_by_value(expected)


@pytest.mark.parametrize("service", list(services.SERVICES))
def test_every_value_arrives_as_the_parquet_holds_it_row_by_row(tmp_path, pg_database, service):
    svc, month = services.service(service), dt.date(2023, 3, 1)
    the_lake, manifest = published(tmp_path, service, month, 120_000, "m")  # several batches, NULLs in most columns
    PostgresWarehouse(pg_database).replace_month(svc, month, the_lake, manifest, f"{service} 2023-03")
    assert_month_arrives_exactly(pg_database, svc, month, manifest, the_lake)


def test_a_real_tlc_month_arrives_exactly(tmp_path, pg_database, real_samples):
    raw = real_samples / "green" / "fenago__datasets" / "green_tripdata_2024-01.parquet"
    month = dt.date(2024, 1, 1)
    the_lake, manifest = published_file(tmp_path, "green", month, raw, "m")
    PostgresWarehouse(pg_database).replace_month(services.GREEN, month, the_lake, manifest, "green 2024-01")
    assert manifest["rows"] > 50_000
    assert_month_arrives_exactly(pg_database, services.GREEN, month, manifest, the_lake)


def test_a_parquet_column_of_another_type_stops_the_load_by_name(tmp_path, pg_database):
    month = dt.date(2022, 4, 1)
    work = tmp_path / "m"
    published(tmp_path, "green", month, 500, "m")
    data = pq.read_table(work / "d.parquet")
    at = data.schema.get_field_index("passenger_count")
    pq.write_table(data.set_column(at, "passenger_count", data["passenger_count"].cast("int64")), work / "d.parquet")
    the_lake = LocalLake(str(tmp_path / "lake2"))
    files = {"data": work / "d.parquet", "quarantine": work / "q.parquet", "report": work / "r.json"}
    manifest = the_lake.publish_month("green", month, files, {})
    wh = PostgresWarehouse(pg_database)

    with pytest.raises(WarehouseError) as caught:
        wh.replace_month(services.GREEN, month, the_lake, manifest, "green 2022-04")

    message = str(caught.value)
    assert "green 2022-04: column passenger_count is int64" in message
    assert "green_tripdata.passenger_count is integer" in message
    assert "invalidate green 2022-04 --from clean" in message
    assert wh.loaded_checksums("green") == {} and counts(pg_database, "green_tripdata") == {}
