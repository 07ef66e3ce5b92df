"""``taxi-luigi status`` and ``taxi-luigi invalidate`` as a user runs them: subprocesses on a real pipeline's files."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path

import duckdb
import pytest
from emulators import free_port
from luigi.execution_summary import LuigiStatusCode
from runs import taxi_luigi

from taxi_luigi import invalidate, services
from taxi_luigi.demo import sample
from taxi_luigi.layout import STEPS
from taxi_luigi.months import of_year
from taxi_luigi.tasks import Clean, Download, Publish, TaxiYear

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FEB = dt.date(2023, 2, 1)
ROWS = {1: 900, 2: 1200, 3: 1500}  # a size per month, so that no month's counts can pass for another's
FILES = {"download": 2, "clean": 3, "publish": 4, "load": 1}  # what each step leaves of a month
TOP = {"raw": "download", "clean": "clean", "lake": "publish"}  # where each step's files are under data_dir

pytestmark = pytest.mark.slow


def status_json(pipeline, *args: str) -> dict[str, dict]:
    run = taxi_luigi("status", *args, "--json", cfg=pipeline.cfg)
    assert run.returncode == 0, run.stderr
    return {f"{row['service']} {row['month']}": row for row in json.loads(run.stdout)}


def year_status(pipeline) -> dict[str, dict]:
    """``status --year 2023 --service yellow --json``, by month."""
    rows = status_json(pipeline, "--year", "2023", "--service", "yellow")
    return {key.removeprefix("yellow "): row for key, row in rows.items()}


def loaded_at(pipeline) -> dict[str, str]:
    """The latest load of each yellow month, as status prints it."""
    return {
        f"{r['month']:%Y-%m}": r["loaded_at"].replace(tzinfo=dt.timezone.utc).isoformat()
        for r in pipeline.warehouse.load_log("yellow")
    }


def log_rows(pipeline) -> dict[str, int]:
    """Every load_log row, not only the latest: how many each month has."""
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        rows = con.execute("SELECT source_month, count(*) FROM load_log GROUP BY 1 ORDER BY 1").fetchall()
    return {f"{m:%Y-%m}": n for m, n in rows}


def files(pipeline) -> dict[Path, int]:
    """Every raw, clean and lake file, with its modification time."""
    return {p: p.stat().st_mtime_ns for top in TOP for p in (pipeline.data / top).rglob("*") if p.is_file()}


def without(mapping: dict, keys: set) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def ran(result) -> set[str]:
    """The tasks a run ran, from Luigi's own summary (every one: ``loaded`` lifts its limit of five lines)."""
    section = result.summary_text.split("ran successfully:\n", 1)[1]
    return set(re.findall(r"^ {4}- 1 (\S.*)$", section.split("\n\n", 1)[0], re.MULTILINE))


@pytest.fixture
def loaded(mirror, pipeline) -> dict[str, sample.MonthTruth]:
    """yellow 2023-01..03 through the whole pipeline; the sample's truths by month."""
    truths = {f"2023-{m:02d}": sample.write_month(mirror.root, "yellow", 2023, m, "tlc", n) for m, n in ROWS.items()}
    pipeline.configure(mirror.template(), execution_summary={"summary_length": 0})
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS
    return truths


def quarantined(truth: sample.MonthTruth) -> int:
    return sum(truth.reasons.values())


def test_status_shows_every_step_and_the_exact_counts(loaded, pipeline):
    year = [f"{m:%Y-%m}" for m in of_year(services.YELLOW, 2023, (), dt.date.today())]
    when = loaded_at(pipeline)

    rows = year_status(pipeline)

    assert list(rows) == year  # every month of the year up to last month, traces or not
    for month, row in rows.items():
        truth = loaded.get(month)
        assert row == {
            "service": "yellow",
            "month": month,
            **{step: "done" if truth else "missing" for step in STEPS},
            "rows": truth and truth.clean,
            "quarantined": truth and quarantined(truth),
            "loaded_at": truth and when[month],
        }
    # Without --year: the months with any trace, of every service.
    assert status_json(pipeline) == {f"yellow {month}": rows[month] for month in loaded}

    table = taxi_luigi("status", "--year", "2023", "--service", "yellow", cfg=pipeline.cfg)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    columns = {m.group(): m.span() for m in re.finditer(r"\S+", header)}
    assert list(columns) == ["service", "month", *STEPS, "rows", "quarantined", "loaded_at", "(UTC)"]
    assert len(lines) == len(year)
    for line, month in zip(lines, year, strict=True):
        truth = loaded.get(month)

        def cell(name: str, line: str = line) -> str:  # a left-aligned column starts where its header does
            return line[columns[name][0] :].split("  ")[0]

        def number(name: str, line: str = line) -> str:  # a right-aligned one ends where its header does
            end = columns[name][1]
            assert line[end : end + 1] in ("", " ")
            return line[:end].rsplit(" ", 1)[1]

        assert (cell("service"), cell("month")) == ("yellow", month)
        assert [cell(step) for step in STEPS] == ["done" if truth else "missing"] * 4
        assert number("rows") == (f"{truth.clean:,}" if truth else "-")
        assert number("quarantined") == (f"{quarantined(truth):,}" if truth else "-")
        stamp = dt.datetime.fromisoformat(when[month]).strftime("%Y-%m-%d %H:%M:%S") if truth else "-"
        assert line[columns["loaded_at"][0] :] == stamp


def test_a_month_republished_with_new_content_is_stale_until_loaded(loaded, mirror, pipeline):
    before = year_status(pipeline)["2023-02"]
    new = sample.write_month(mirror.root, "yellow", 2023, 2, "tlc", 700)  # the TLC re-issues February
    for task in (Download(service="yellow", month=FEB), Clean(service="yellow", month=FEB)):
        Path(task.output().path).unlink()
    (pipeline.lake / "yellow" / "2023" / "yellow_tripdata_2023-02.manifest.json").unlink()
    assert pipeline.run(Publish(service="yellow", month=FEB)).status == LuigiStatusCode.SUCCESS

    stale = year_status(pipeline)["2023-02"]
    assert stale == {**before, "load": "stale"}  # counts and time of the load the warehouse still has

    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS
    after = year_status(pipeline)["2023-02"]
    assert (after["load"], after["rows"], after["quarantined"]) == ("done", new.clean, quarantined(new))
    assert after["loaded_at"] > before["loaded_at"]


@pytest.mark.parametrize("first", STEPS)
def test_invalidate_from_a_step_makes_the_next_run_redo_exactly_those_steps_of_that_month(
    loaded, mirror, pipeline, first
):
    redo = STEPS[STEPS.index(first) :]
    truth = loaded["2023-02"]
    before_files, before_loads = files(pipeline), loaded_at(pipeline)

    run = taxi_luigi("invalidate", "yellow", "2023-02", "--from", first, cfg=pipeline.cfg)

    assert run.returncode == 0, run.stderr
    *removed, last = run.stdout.splitlines()
    assert last == f"yellow 2023-02: the next run redoes {', '.join(redo)}"
    # The last step first; within a step its target first.
    assert [line.split()[0] for line in removed] == [step for step in reversed(redo) for _ in range(FILES[step])]
    targets = {
        "load": "load_log row",
        "publish": ".manifest.json",
        "clean": ".quality.json",
        "download": ".source.json",
    }
    for step in redo:
        assert targets[step] in next(line for line in removed if line.startswith(step))

    feb = year_status(pipeline)["2023-02"]
    assert [feb[step] for step in STEPS] == ["missing" if step in redo else "done" for step in STEPS]
    # Counts from the manifest when it is still there, else from the clean quality report.
    counts = (truth.clean, quarantined(truth)) if first in ("publish", "load") else (None, None)
    assert (feb["rows"], feb["quarantined"], feb["loaded_at"]) == (*counts, None)
    assert pipeline.counts("yellow_tripdata")["2023-02"] == truth.clean  # the month stays queryable meanwhile
    listed = status_json(pipeline, "--service", "yellow")
    assert ("yellow 2023-02" in listed) == (first != "download")  # a month with no trace left is not listed
    again = taxi_luigi("invalidate", "yellow", "2023-02", "--from", first, cfg=pipeline.cfg)
    assert again.returncode == 0 and again.stdout.startswith("yellow 2023-02: nothing to remove")

    result = pipeline.run(TaxiYear(service="yellow", year=2023, months="1-3"))

    assert result.status == LuigiStatusCode.SUCCESS
    assert ran(result) == {
        "TaxiYear(service=yellow, year=2023, months=1,2,3)",
        *(f"{step.title()}(service=yellow, month=2023-02)" for step in redo),
        "QualitySite()",  # the month's new load_log row: the site is built again
    }
    assert mirror.requests["/yellow/yellow_tripdata_2023-02.parquet"] == 1 + (first == "download")
    assert mirror.downloads() == 3 + (first == "download")
    redone = {p for p in before_files if "2023-02" in p.name and TOP[p.relative_to(pipeline.data).parts[0]] in redo}
    after_files = files(pipeline)
    assert set(after_files) == set(before_files)
    assert without(after_files, redone) == without(before_files, redone)
    after_loads = loaded_at(pipeline)
    assert after_loads["2023-02"] > before_loads["2023-02"]
    assert without(after_loads, {"2023-02"}) == without(before_loads, {"2023-02"})
    assert log_rows(pipeline) == {month: 1 for month in loaded}  # the old row was forgotten, not shadowed
    assert pipeline.counts("yellow_tripdata") == {month: t.clean for month, t in loaded.items()}
    assert pipeline.counts("yellow_tripdata_quarantine") == {month: quarantined(t) for month, t in loaded.items()}
    after = year_status(pipeline)
    assert [[after[month][step] for step in STEPS] for month in loaded] == [["done"] * 4] * 3


def test_an_invalidation_stopped_part_way_leaves_a_prefix_of_complete_steps_and_a_rerun_finishes(
    loaded, mirror, pipeline
):
    def feb_flags() -> list[str]:
        feb = year_status(pipeline)["2023-02"]
        return [feb[step] for step in STEPS]

    removals = invalidate.invalidate("yellow", FEB, "download")  # in this process: stopped after two removals
    assert next(removals).step == "load"
    assert feb_flags() == ["done", "done", "done", "missing"]
    assert next(removals).what.endswith("yellow_tripdata_2023-02.manifest.json")
    assert feb_flags() == ["done", "done", "missing", "missing"]
    removals.close()

    run = taxi_luigi("invalidate", "yellow", "2023-02", "--from", "download", cfg=pipeline.cfg)

    assert run.returncode == 0, run.stderr
    rest = ["publish"] * 3 + ["clean"] * 3 + ["download"] * 2  # the load_log row and the manifest are gone
    assert [line.split()[0] for line in run.stdout.splitlines()[:-1]] == rest
    assert feb_flags() == ["missing"] * 4
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS
    assert mirror.requests["/yellow/yellow_tripdata_2023-02.parquet"] == 2
    assert pipeline.counts("yellow_tripdata") == {month: t.clean for month, t in loaded.items()}
    assert feb_flags() == ["done"] * 4


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("invalidate", "purple", "2023-02"), 2, "unknown service 'purple': choose one of yellow, green, fhv, fhvhv"),
        (("invalidate", "yellow", "2023-13"), 2, "month '2023-13': use YYYY-MM, e.g. 2023-02"),
        (("invalidate", "fhvhv", "2019-01"), 2, "fhvhv 2019-01: the TLC's fhvhv files start at 2019-02"),
        (("invalidate", "yellow", "2999-01", "--from", "load"), 2, "yellow 2999-01: the month has not ended yet"),
        (("status", "--service", "yellow", "--service", "taxi"), 2, "unknown service 'taxi'"),
    ],
)
def test_a_refused_argument_is_one_line_naming_it(pipeline, args, code, message):
    run = taxi_luigi(*args, cfg=pipeline.cfg)
    assert (run.returncode, run.stdout) == (code, "")
    assert run.stderr.startswith(f"taxi-luigi {args[0]}: {message}") and run.stderr.count("\n") == 1


def test_an_unreachable_warehouse_is_one_line_without_the_password(pipeline):
    pipeline.configure(warehouse={"url": f"postgresql://taxi:pw-in-url-5t6y@127.0.0.1:{free_port()}/taxi"})
    for args in (("status",), ("invalidate", "green", "2022-01", "--from", "load")):
        run = taxi_luigi(*args, cfg=pipeline.cfg)
        assert run.returncode == 1
        assert run.stderr.startswith(f"taxi-luigi {args[0]}: cannot connect to the PostgreSQL warehouse ")
        assert run.stderr.count("\n") == 1 and "pw-in-url-5t6y" not in run.stderr and "taxi:***@" in run.stderr


def test_an_unreachable_bigquery_is_one_line_within_its_timeout(pipeline):
    pytest.importorskip("google.cloud.bigquery")
    pipeline.configure(
        warehouse={"url": "bigquery://test/taxi"},
        bigquery={"api_endpoint": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 2},
    )
    run = taxi_luigi("status", "--service", "green", cfg=pipeline.cfg)
    assert run.returncode == 1
    assert run.stderr.startswith("taxi-luigi status: cannot reach BigQuery for bigquery://test/taxi in 2 s")
    assert run.stderr.count("\n") == 1
