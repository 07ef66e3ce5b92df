"""The whole chain with the real tasks: HTTP mirror -> raw -> clean -> lake -> DuckDB, exact and idempotent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import services
from taxi_luigi.demo import sample
from taxi_luigi.months import of_year
from taxi_luigi.tasks import Clean, Download, Load, TaxiYear
from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

ROWS = 1500


@pytest.mark.parametrize("fmt", sample.FORMATS)
@pytest.mark.parametrize("service", list(services.SERVICES))
def test_every_service_and_format_loads_exact_counts(mirror, pipeline, service, fmt):
    year = 2021 if fmt == "dtc" else 2023  # the dtc mirror holds 2019-2021; 2023 has the tlc type change
    truths = sample.write_mirror(mirror.root, [service], year, [1, 2], fmt, ROWS)
    pipeline.configure(mirror.template(".csv.gz" if fmt == "dtc" else ".parquet"))

    result = pipeline.run(TaxiYear(service=service, year=year, months="1,2"))

    assert result.status == LuigiStatusCode.SUCCESS
    table = services.service(service).table
    assert pipeline.counts(table) == {f"{year}-{t.month:02d}": t.clean for t in truths}
    quarantined = {f"{year}-{t.month:02d}": sum(t.reasons.values()) for t in truths if sum(t.reasons.values())}
    assert pipeline.counts(f"{table}_quarantine") == quarantined
    log = {f"{r['month']:%Y-%m}": (r["rows"], r["quarantined"]) for r in pipeline.warehouse.load_log(service)}
    assert log == {f"{year}-{t.month:02d}": (t.clean, sum(t.reasons.values())) for t in truths}


def test_rerun_of_a_finished_year_downloads_nothing_and_changes_nothing(mirror, pipeline, monkeypatch):
    sample.write_mirror(mirror.root, ["yellow"], 2022, range(1, 13), "tlc", 300)
    pipeline.configure(mirror.template())
    assert pipeline.run(TaxiYear(service="yellow", year=2022)).status == LuigiStatusCode.SUCCESS
    assert mirror.downloads() == 12
    before_log = pipeline.warehouse.load_log()
    outputs = sorted(p for p in pipeline.data.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in outputs}
    opened = []  # a spy: the real connection is made, and counted
    real_connect = DuckDBWarehouse._connect
    monkeypatch.setattr(DuckDBWarehouse, "_connect", lambda wh, **kw: opened.append(kw) or real_connect(wh, **kw))

    result = pipeline.run(TaxiYear(service="yellow", year=2022))

    assert result.status == LuigiStatusCode.SUCCESS
    assert opened == [{"read_only": True}] * 2  # one look at the warehouse for the whole year, one for its site
    assert "ran successfully" not in result.summary_text
    assert mirror.downloads() == 12
    assert pipeline.warehouse.load_log() == before_log
    assert sorted(p for p in pipeline.data.rglob("*") if p.is_file()) == outputs
    assert {p: p.stat().st_mtime_ns for p in outputs} == mtimes


def test_a_changed_source_month_reloads_exactly_and_only_that_month(mirror, pipeline):
    sample.write_mirror(mirror.root, ["green"], 2022, [1, 2, 3], "tlc", 400)
    pipeline.configure(mirror.template())
    pipeline.run(TaxiYear(service="green", year=2022, months="1-3"))
    first = {r["month"]: r for r in pipeline.warehouse.load_log("green")}

    # The TLC re-issues February with more rows; the month's targets from Download on are removed
    # (what an invalidation does) and the year is run again.
    new = sample.write_month(mirror.root, "green", 2022, 2, "tlc", 650)
    feb = dt.date(2022, 2, 1)
    for task in (Download(service="green", month=feb), Clean(service="green", month=feb)):
        Path(task.output().path).unlink()
    (pipeline.lake / "green" / "2022" / "green_tripdata_2022-02.manifest.json").unlink()
    result = pipeline.run(TaxiYear(service="green", year=2022, months="1-3"))

    assert result.status == LuigiStatusCode.SUCCESS
    assert mirror.requests["/green/green_tripdata_2022-02.parquet"] == 2
    assert mirror.downloads() == 4
    counts = pipeline.counts("green_tripdata")
    assert counts["2022-02"] == new.clean
    assert counts["2022-01"] == first[dt.date(2022, 1, 1)]["rows"]
    second = {r["month"]: r for r in pipeline.warehouse.load_log("green")}
    assert second[feb]["checksum"] != first[feb]["checksum"]
    assert second[dt.date(2022, 1, 1)] == first[dt.date(2022, 1, 1)]


def test_a_missing_month_fails_alone_and_the_others_load(mirror, pipeline):
    sample.write_mirror(mirror.root, ["yellow"], 2021, [6, 8], "dtc", 300)  # no 2021-07
    pipeline.configure(mirror.template(".csv.gz"))
    result = pipeline.run(TaxiYear(service="yellow", year=2021, months="6-8"))
    assert result.status == LuigiStatusCode.FAILED
    assert set(pipeline.counts("yellow_tripdata")) == {"2021-06", "2021-08"}
    assert not Load(service="yellow", month=dt.date(2021, 7, 1)).complete()
    assert not any("2021-07" in p.name for p in pipeline.data.rglob("*"))


def test_a_truncated_download_is_not_marked_complete_and_a_rerun_recovers(mirror, pipeline):
    truth = sample.write_month(mirror.root, "yellow", 2020, 3, "dtc", 2000)
    good = truth.path.read_bytes()
    truth.path.write_bytes(good[: len(good) // 3])
    pipeline.configure(mirror.template(".csv.gz"))
    assert pipeline.run(TaxiYear(service="yellow", year=2020, months="3")).status == LuigiStatusCode.FAILED
    assert not any(p.is_file() for p in (pipeline.data / "raw").rglob("*"))

    truth.path.write_bytes(good)
    assert pipeline.run(TaxiYear(service="yellow", year=2020, months="3")).status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2020-03": truth.clean}


def test_the_lake_holds_objects_and_a_manifest_that_vouches_for_them(mirror, pipeline):
    truth = sample.write_month(mirror.root, "fhv", 2020, 5, "tlc", 500)
    pipeline.configure(mirror.template())
    pipeline.run(TaxiYear(service="fhv", year=2020, months="5"))
    folder = pipeline.lake / "fhv" / "2020"
    assert sorted(p.name for p in folder.iterdir()) == [
        "fhv_tripdata_2020-05.manifest.json",
        "fhv_tripdata_2020-05.parquet",
        "fhv_tripdata_2020-05.quality.json",
        "fhv_tripdata_2020-05.quarantine.parquet",
    ]
    manifest = json.loads((folder / "fhv_tripdata_2020-05.manifest.json").read_text())
    assert manifest["rows"] == truth.clean and manifest["quarantined"] == sum(truth.reasons.values())
    assert manifest["source"]["url"].endswith("/fhv/fhv_tripdata_2020-05.parquet")
    assert manifest["schema_version"] == services.SCHEMA_VERSION
    report = json.loads((folder / "fhv_tripdata_2020-05.quality.json").read_text())
    assert report["quarantine_by_reason"] == truth.reasons


def test_year_lists_its_own_months():
    today = dt.date(2026, 11, 27)
    assert len(of_year(services.YELLOW, 2019, (), today)) == 12  # no 13-month look-back
    assert of_year(services.FHVHV, 2019, (), today)[0] == dt.date(2019, 2, 1)
    assert of_year(services.YELLOW, 2026, (), today)[-1] == dt.date(2026, 10, 1)
    with pytest.raises(ValueError, match="fhvhv 2019-01: the TLC's fhvhv files start at 2019-02"):
        of_year(services.FHVHV, 2019, (1,), today)


def test_every_month_since_the_first_file_is_accepted():
    Load(service="yellow", month=dt.date(2009, 1, 1))
    assert len(of_year(services.YELLOW, 2010, (), dt.date(2026, 11, 27))) == 12
    assert all(svc.first_loadable == svc.first_month for svc in services.SERVICES.values())
    with pytest.raises(ValueError, match="yellow 2008-12: the TLC's yellow files start at 2009-01"):
        Load(service="yellow", month=dt.date(2008, 12, 1))
