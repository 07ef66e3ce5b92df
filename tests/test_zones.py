"""The zone dimension and the trips view, through the real tasks, in DuckDB, PostgreSQL and BigQuery (bqemulator)."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import duckdb
import pytest
import sqlalchemy
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import config, services, tables, zone_lookup
from taxi_luigi.demo import sample
from taxi_luigi.tasks import LoadZones, TaxiYear, TripsView, ZoneLookup

BOROUGHS = ("EWR", "Queens", "Bronx", "Manhattan", "Staten Island", "Brooklyn")


def write_lookup(path: Path, relabelled: bool = False, header: tuple[str, ...] = zone_lookup.HEADER) -> None:
    """265 zones in the TLC's format (quoted text, bare ids); ``relabelled``: 264 and 265 as the TLC renamed them in
    2024."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        out.writerow(header)
        out.writerow([1, "EWR", "Newark Airport", "EWR"])
        for i in range(2, 264):
            out.writerow(
                [i, BOROUGHS[i % 6], f"Zone {i}", "Yellow Zone" if BOROUGHS[i % 6] == "Manhattan" else "Boro Zone"]
            )
        if relabelled:
            out.writerows([[264, "Unknown", "N/A", "N/A"], [265, "N/A", "Outside of NYC", "N/A"]])
        else:
            out.writerows([[264, "Unknown", "NV", "N/A"], [265, "Unknown", "NA", "N/A"]])


class Backend:
    """One warehouse, configured into the pipeline, and a way to query it."""

    def __init__(self, url: str, query, name, **sections) -> None:
        self.url, self.query, self.name, self.sections = url, query, name, sections

    def scalar(self, sql: str) -> object:
        return self.query(sql)[0][0]


@pytest.fixture(params=["duckdb", "postgres", "bigquery"])
def backend(request, pipeline) -> Backend:
    if request.param == "duckdb":

        def query(sql: str) -> list[tuple]:
            with duckdb.connect(str(pipeline.db), read_only=True) as con:
                return con.execute(sql).fetchall()

        return Backend(f"duckdb:///{pipeline.db}", query, lambda t: t)
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))

        def query(sql: str) -> list[tuple]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sqlalchemy.text(sql))]

        return Backend(url, query, lambda t: t)
    bq = request.getfixturevalue("bigquery")
    dataset = f"taxi_{uuid.uuid4().hex[:10]}"
    client = bq.client()

    def query(sql: str) -> list[tuple]:
        return [tuple(r.values()) for r in client.query(sql).result()]

    return Backend(
        f"bigquery://test/{dataset}",
        query,
        lambda t: f"`test.{dataset}.{t}`",
        gcp={"location": "US-CENTRAL1"},
        bigquery={"api_endpoint": bq.url},
    )


@pytest.fixture
def lookup(mirror, pipeline, backend) -> Path:
    """The lookup on the mirror, and the pipeline configured for it and the backend."""
    path = mirror.root / "misc" / "taxi_zone_lookup.csv"
    write_lookup(path)
    pipeline.configure(
        mirror.template(),
        source={"zones_url": f"{mirror.url}/misc/taxi_zone_lookup.csv"},
        warehouse={"url": backend.url},
        **backend.sections,
    )
    return path


def zone_rows(backend: Backend) -> dict[int, tuple]:
    rows = backend.query(f"SELECT location_id, borough, zone, service_zone FROM {backend.name('taxi_zones')}")
    return {r[0]: tuple(r[1:]) for r in rows}


def test_zones_load_exactly_a_rerun_does_nothing_and_a_relabelled_lookup_is_reloaded(mirror, pipeline, backend, lookup):
    assert pipeline.run(LoadZones()).status == LuigiStatusCode.SUCCESS

    loaded = zone_rows(backend)
    assert len(loaded) == 265
    assert loaded[1] == ("EWR", "Newark Airport", "EWR")
    assert loaded[265] == ("Unknown", "NA", "N/A")
    assert backend.scalar(f"SELECT count(*) FROM {backend.name('zones_log')}") == 1
    assert mirror.downloads() == 1

    again = pipeline.run(LoadZones())
    assert again.status == LuigiStatusCode.SUCCESS
    assert "ran successfully" not in again.summary_text
    assert mirror.downloads() == 1
    assert backend.scalar(f"SELECT count(*) FROM {backend.name('zones_log')}") == 1

    # The TLC relabels 264 and 265; the download's record is removed (what refreshing the lookup means).
    write_lookup(lookup, relabelled=True)
    Path(ZoneLookup().output().path).unlink()
    assert pipeline.run(LoadZones()).status == LuigiStatusCode.SUCCESS

    reloaded = zone_rows(backend)
    assert len(reloaded) == 265
    assert reloaded[264] == ("Unknown", "N/A", "N/A")
    assert reloaded[265] == ("N/A", "Outside of NYC", "N/A")
    assert {k: v for k, v in reloaded.items() if k < 264} == {k: v for k, v in loaded.items() if k < 264}
    log = backend.query(f"SELECT sha256, rows FROM {backend.name('zones_log')} ORDER BY loaded_at")
    assert [r[1] for r in log] == [265, 265] and log[0][0] != log[1][0]
    assert log[1][0] == LoadZones().output().warehouse.zones_checksum()


def test_a_bad_header_is_refused_and_nothing_is_loaded(mirror, pipeline):
    path = mirror.root / "misc" / "taxi_zone_lookup.csv"
    write_lookup(path, header=("LocationID", "Borough", "Zone"))
    refused = r"has the header \['LocationID', 'Borough', 'Zone'\], not .*zones_url"
    with pytest.raises(zone_lookup.ZonesError, match=refused):
        zone_lookup.fetch(f"{mirror.url}/misc/taxi_zone_lookup.csv", pipeline.data / "z.csv", retries=0)
    assert not list(pipeline.data.glob("*z.csv*"))

    pipeline.configure(mirror.template(), source={"zones_url": f"{mirror.url}/misc/taxi_zone_lookup.csv"})
    assert pipeline.run(LoadZones()).status != LuigiStatusCode.SUCCESS
    assert not pipeline.db.exists() or "taxi_zones" not in pipeline.tables()
    assert not (pipeline.data / "zones").exists() or not any((pipeline.data / "zones").iterdir())


def test_a_changed_lookup_that_is_broken_leaves_the_loaded_zones(mirror, pipeline, tmp_path):
    """A file:// lookup and a plain path reach the same verification; a bad replacement changes nothing."""
    lookup = tmp_path / "taxi_zone_lookup.csv"
    write_lookup(lookup)
    pipeline.configure(mirror.template(), source={"zones_url": str(lookup)})
    assert pipeline.run(LoadZones()).status == LuigiStatusCode.SUCCESS
    before = zone_rows_duck(pipeline)
    lookup.write_text(lookup.read_text() + '7,"Queens","again","Boro Zone"\n')  # LocationID 7 twice
    Path(ZoneLookup().output().path).unlink()
    pipeline.configure(mirror.template(), source={"zones_url": f"file://{lookup}"})
    assert pipeline.run(LoadZones()).status != LuigiStatusCode.SUCCESS
    assert zone_rows_duck(pipeline) == before
    with pytest.raises(zone_lookup.ZonesError, match="repeats LocationID 7"):
        zone_lookup.fetch(str(lookup), tmp_path / "z.csv")


def zone_rows_duck(pipeline) -> list[tuple]:
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        return con.execute("SELECT * FROM taxi_zones ORDER BY 1").fetchall()


def test_the_zones_url_follows_the_preset(pipeline):
    pipeline.configure(source={"preset": "dtc"})
    assert config.source().zones() == config.ZONE_PRESETS["dtc"]
    assert "nyc-tlc-data/releases/download/misc/taxi_zone_lookup.csv" in config.source().zones()
    pipeline.configure(source={"preset": "tlc"})
    assert config.source().zones() == "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
    pipeline.configure(source={"zones_url": "/srv/zones.csv"})
    assert config.source().zones() == "/srv/zones.csv"


def test_the_view_columns_are_the_shared_ones_in_canonical_order():
    columns = tables.trips_columns()
    yellow, green = ({c.name for c in services.SERVICES[s].all_columns} for s in ("yellow", "green"))
    assert set(columns) == yellow & green
    order = [c.name for c in services.SERVICES["yellow"].all_columns]
    assert columns == sorted(columns, key=order.index)
    assert {"pickup_datetime", "pu_location_id", "source_month"} <= set(columns)


@pytest.mark.slow
def test_the_trips_view_unites_yellow_and_green_with_exact_counts(mirror, pipeline, backend, lookup):
    truths = {s: sample.write_mirror(mirror.root, [s], 2023, [1], "tlc", 600)[0] for s in ("yellow", "green")}
    trips = backend.name("trips")

    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1")).status == LuigiStatusCode.SUCCESS
    assert pipeline.run(TripsView()).status == LuigiStatusCode.SUCCESS  # green is not loaded yet
    assert backend.query(f"SELECT service, count(*) FROM {trips} GROUP BY service") == [
        ("yellow", truths["yellow"].clean)
    ]

    assert pipeline.run(TaxiYear(service="green", year=2023, months="1")).status == LuigiStatusCode.SUCCESS
    again = pipeline.run(TripsView())
    assert "ran successfully" not in again.summary_text  # the view was there, with its columns
    counts = dict(backend.query(f"SELECT service, count(*) FROM {trips} GROUP BY service"))
    assert counts == {"yellow": truths["yellow"].clean, "green": truths["green"].clean}
    assert TripsView().output().warehouse.trips_view_columns() == ["service", *tables.trips_columns()]

    # The view joins the zone dimension.
    assert pipeline.run(LoadZones()).status == LuigiStatusCode.SUCCESS
    joined = backend.scalar(
        f"SELECT count(*) FROM {trips} t JOIN {backend.name('taxi_zones')} z ON z.location_id = t.pu_location_id"
    )
    assert 0 < joined <= sum(counts.values())
