"""The quality site from a real pipeline's lake and DuckDB warehouse: refreshed by the wrappers, current exactly when
it shows the warehouse, and clear about bad input (nothing loaded, a report missing, a service never seen)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import cli, report
from taxi_luigi.demo import sample
from taxi_luigi.lake.local import LocalLake
from taxi_luigi.report import pages, svg
from taxi_luigi.report.gather import MISSING, Inputs, gather
from taxi_luigi.tasks import QualitySite, TaxiYear


def report_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``taxi-luigi report ARGS`` in this process, with the pipeline's override file in force."""
    code = cli.main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def site(pipeline) -> dict:
    return json.loads((pipeline.data / "report" / report.SITE_MANIFEST).read_text())


def test_the_wrappers_refresh_the_site_and_a_rerun_of_finished_work_does_nothing(mirror, pipeline):
    sample.write_mirror(mirror.root, ["green"], 2023, [1, 2], "tlc", 300)
    pipeline.configure(mirror.template())

    first = pipeline.run(TaxiYear(service="green", year=2023, months="1"))

    assert first.status == LuigiStatusCode.SUCCESS
    assert "QualitySite()" in first.summary_text  # a step of its own, after the loads
    index = (pipeline.data / "report" / "index.html").read_text()
    assert 'data-service="green"' in index and (pipeline.data / "report" / "green.html").is_file()
    built = site(pipeline)
    assert QualitySite().complete()

    rerun = pipeline.run(TaxiYear(service="green", year=2023, months="1"))

    assert rerun.status == LuigiStatusCode.SUCCESS and "ran successfully" not in rerun.summary_text
    assert site(pipeline) == built  # not rebuilt

    more = pipeline.run(TaxiYear(service="green", year=2023, months="1-2"))  # a new load makes the site due

    assert more.status == LuigiStatusCode.SUCCESS and "QualitySite()" in more.summary_text
    assert site(pipeline)["fingerprint"] != built["fingerprint"]
    assert 'data-month="2023-02"' in (pipeline.data / "report" / "green.html").read_text()


def test_refresh_off_leaves_the_site_to_the_command(mirror, pipeline, capsys):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1], "tlc", 200)
    pipeline.configure(mirror.template(), report={"refresh": "false"})

    result = pipeline.run(TaxiYear(service="yellow", year=2023, months="1"))

    assert result.status == LuigiStatusCode.SUCCESS and "QualitySite" not in result.summary_text
    assert not (pipeline.data / "report").exists()
    code, out, err = report_cli(capsys, "--out", str(pipeline.data / "elsewhere"))
    assert (code, err) == (0, "")
    assert out.startswith(f"quality site: {pipeline.data / 'elsewhere' / 'index.html'} (yellow; 2 pages, ")
    assert (pipeline.data / "elsewhere" / "yellow.html").is_file()


def test_an_empty_warehouse_gives_a_page_that_says_so(pipeline, capsys):
    code, out, err = report_cli(capsys)

    assert (code, err) == (0, "")
    assert "(nothing loaded yet; 1 pages" in out
    index = (pipeline.data / "report" / "index.html").read_text()
    assert 'id="empty"' in index and "Nothing is loaded yet" in index and 'id="services"' not in index
    assert sorted(p.name for p in (pipeline.data / "report").iterdir()) == ["index.html", "site.json"]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            "fhv",
            r"fhv: the warehouse duckdb:///.* has no load of it and the lake .* no published month \(loaded: green\)",
        ),
        ("purple", "unknown service 'purple': choose one of yellow, green, fhv, fhvhv"),
    ],
)
def test_a_service_the_warehouse_has_never_seen_is_a_one_line_error(mirror, pipeline, capsys, service, message):
    sample.write_mirror(mirror.root, ["green"], 2023, [1], "tlc", 200)
    pipeline.configure(mirror.template(), report={"refresh": "false"})
    assert pipeline.run(TaxiYear(service="green", year=2023, months="1")).status == LuigiStatusCode.SUCCESS

    code, out, err = report_cli(capsys, "--service", service)

    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and re.match(f"taxi-luigi report: .*{message}", err)
    assert not (pipeline.data / "report").exists()  # refused before anything is written


def test_a_loaded_month_whose_quality_report_is_missing_shows_as_missing(mirror, pipeline, capsys):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2], "tlc", 300)
    pipeline.configure(mirror.template(), report={"refresh": "false"})
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1-2")).status == LuigiStatusCode.SUCCESS
    gone = pipeline.lake / "yellow" / "2023" / "yellow_tripdata_2023-02.quality.json"
    gone.unlink()

    code, _, err = report_cli(capsys)

    assert (code, err) == (0, "")
    page = (pipeline.data / "report" / "yellow.html").read_text()
    row = re.search(r'<tr data-month="2023-02">.*?</tr>', page)[0]
    assert f"quality report missing: no {gone}" in row and 'class="state done"' in row
    feb_rows = pipeline.warehouse.load_log("yellow")[1]["rows"]
    assert f'<td class="num rows">{feb_rows:,}</td>' in row  # the load's own numbers are still shown
    assert page.count('class="q r-unknown"') == 1  # its quarantined rows, rule unknown
    assert "2023-02: quality report missing" in page  # the heatmap's cells say why they are blank


def test_a_gap_is_missing_and_a_republished_month_not_yet_loaded_is_stale(tmp_path):
    """gather on its own: months from the first trace to the last, each in Load's own terms."""
    jan, feb, mar = dt.date(2023, 1, 1), dt.date(2023, 2, 1), dt.date(2023, 3, 1)
    at = dt.datetime(2023, 4, 1, 12)
    loads = [
        {"service": "fhv", "month": m, "checksum": c, "rows": 10, "quarantined": 1, "lake_object": "k", "loaded_at": at}
        for m, c in ((jan, "a"), (mar, "old"))
    ]
    inputs = Inputs({"fhv": loads}, {"fhv": {jan: "a", mar: "new"}})

    (only,) = gather(inputs, LocalLake(str(tmp_path / "empty-lake")))

    assert [(m.month, m.state) for m in only.months] == [(jan, "done"), (feb, MISSING), (mar, "stale")]
    assert [m.problem.split(":")[0] for m in only.months] == [
        "quality report missing",  # a done month: its report is read, and this lake has none
        "neither published nor loaded",
        "stale",  # its report would be of the manifest published since: not shown
    ]
    assert (only.rows, only.quarantined, only.in_state(MISSING)) == (20, 2, [feb])
    assert inputs.fingerprint() == Inputs({"fhv": loads}, {"fhv": {jan: "a", mar: "old"}}).fingerprint()
    assert inputs.fingerprint() != Inputs({"fhv": loads[:1]}, inputs.published).fingerprint()  # a load forgotten


def test_month_runs_round_axis_tops_and_null_bands():
    months = [dt.date(2023, m, 1) for m in (1, 2, 3, 7, 12)] + [dt.date(2024, 1, 1)]
    assert pages.spans(months) == "2023-01..2023-03, 2023-07, 2023-12..2024-01"
    assert pages.spans([]) == "-"
    assert [svg.nice_ceiling(v) for v in (0, 1, 7, 11, 1_148, 20_000, 20_001)] == [1, 1, 10, 20, 2_000, 20_000, 50_000]
    assert [pages.null_band(s)[0] for s in (0, 0.004, 0.01, 0.05, 0.3, 0.7, 1.0)] == [
        "n0",
        "n1",
        "n1",
        "n2",
        "n3",
        "n4",
        "n5",
    ]
