"""``taxi-luigi refresh`` as a user runs it: a subprocess against a real pipeline's files and a real HTTP mirror."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import duckdb
import pytest
from emulators import free_port
from luigi.execution_summary import LuigiStatusCode
from runs import taxi_luigi

from taxi_luigi.demo import sample
from taxi_luigi.tasks import TaxiYear

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROWS = {1: 900, 2: 1200, 3: 1500}  # a size per month, so that no month's counts can pass for another's
TOPS = ("raw", "clean", "lake")

pytestmark = pytest.mark.slow


def refresh_json(pipeline, *args: str) -> dict[str, dict]:
    run = taxi_luigi("refresh", "yellow", "--year", "2023", *args, "--json", cfg=pipeline.cfg)
    assert run.returncode == 0, run.stderr
    return {row["month"]: row for row in json.loads(run.stdout)}


def table_months(stdout: str) -> list[str]:
    """The months in the table above the summary line (none when nothing changed)."""
    *table, _summary = stdout.splitlines()
    return [line.split()[1] for line in table[1:]]


def files(pipeline) -> dict[Path, int]:
    """Every raw, clean and lake file, with its modification time."""
    return {p: p.stat().st_mtime_ns for top in TOPS for p in (pipeline.data / top).rglob("*") if p.is_file()}


def load_log(pipeline) -> dict[str, list[tuple]]:
    """Every load_log row of each month, all columns."""
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        rows = con.execute("SELECT * FROM load_log ORDER BY source_month, loaded_at").fetchall()
        names = [c[0] for c in con.description]
    by_month: dict[str, list[tuple]] = {}
    for row in rows:
        by_month.setdefault(f"{dict(zip(names, row, strict=True))['source_month']:%Y-%m}", []).append(row)
    return by_month


def quarantined(truth: sample.MonthTruth) -> int:
    return sum(truth.reasons.values())


def run_year(pipeline) -> None:
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1-3")).status == LuigiStatusCode.SUCCESS


@pytest.fixture
def loaded(mirror, pipeline) -> dict[str, sample.MonthTruth]:
    """yellow 2023-01..03 through the whole pipeline from the HTTP mirror; the sample's truths by month."""
    truths = {f"2023-{m:02d}": sample.write_month(mirror.root, "yellow", 2023, m, "tlc", n) for m, n in ROWS.items()}
    pipeline.configure(mirror.template())
    run_year(pipeline)
    mirror.probes.clear()  # the year's own look, before its downloads, that the source is reachable
    return truths


def test_a_reissued_month_is_found_invalidated_and_reloaded_exactly_and_only_it(loaded, mirror, pipeline):
    before_log, old_size = load_log(pipeline), loaded["2023-02"].path.stat().st_size
    new = sample.write_month(mirror.root, "yellow", 2023, 2, "tlc", 700)  # the TLC re-issues February

    run = taxi_luigi("refresh", "yellow", "--year", "2023", cfg=pipeline.cfg)

    assert run.returncode == 0, run.stderr
    assert table_months(run.stdout) == ["2023-02"]
    header, row, summary = run.stdout.splitlines()
    assert header.split() == ["service", "month", "state", "compared", "bytes", "etag", "last_modified"]
    new_size = new.path.stat().st_size
    assert row.split()[:7] == ["yellow", "2023-02", "changed", "etag", f"{old_size:,}", "->", f"{new_size:,}"]
    assert summary == (
        "yellow 2023: 3 published months checked; "
        "re-issued: 2023-02, invalidated from download on: the next run reloads it"
    )
    assert sum(mirror.probes.values()) == 3  # one look per published month, none at months never loaded
    assert not any("2023-02" in p.name for p in files(pipeline))  # raw, clean and lake of February are gone
    assert load_log(pipeline) == before_log  # the load history stays: the reload adds its row to it

    run_year(pipeline)

    assert dict(mirror.requests) == {
        "/yellow/yellow_tripdata_2023-01.parquet": 1,
        "/yellow/yellow_tripdata_2023-02.parquet": 2,
        "/yellow/yellow_tripdata_2023-03.parquet": 1,
    }
    truths = {**loaded, "2023-02": new}
    assert pipeline.counts("yellow_tripdata") == {month: t.clean for month, t in truths.items()}
    assert pipeline.counts("yellow_tripdata_quarantine") == {month: quarantined(t) for month, t in truths.items()}
    after_log = load_log(pipeline)
    assert {m: rows for m, rows in after_log.items() if m != "2023-02"} == {
        m: rows for m, rows in before_log.items() if m != "2023-02"
    }
    assert after_log["2023-02"][0] == before_log["2023-02"][0]  # the first load, and the re-issue's
    assert len(after_log["2023-02"]) == 2 and len({row[2] for row in after_log["2023-02"]}) == 2

    again = taxi_luigi("refresh", "yellow", "--year", "2023", cfg=pipeline.cfg)
    assert (again.returncode, again.stdout) == (0, "yellow 2023: 3 published months checked; none changed\n")


def test_a_dry_run_reports_and_changes_nothing(loaded, mirror, pipeline):
    sample.write_month(mirror.root, "yellow", 2023, 2, "tlc", 700)
    before_files, before_log = files(pipeline), load_log(pipeline)

    rows = refresh_json(pipeline, "--dry-run")

    assert {m: (r["state"], r["compared"], r["invalidated"]) for m, r in rows.items()} == {
        "2023-01": ("unchanged", "etag", False),
        "2023-02": ("changed", "etag", False),
        "2023-03": ("unchanged", "etag", False),
    }
    assert rows["2023-02"]["recorded"]["etag"] != rows["2023-02"]["current"]["etag"]
    assert rows["2023-01"]["recorded"] == rows["2023-01"]["current"]  # fetch records what probe reports
    assert (files(pipeline), load_log(pipeline)) == (before_files, before_log)
    table = taxi_luigi("refresh", "yellow", "--year", "2023", "--dry-run", cfg=pipeline.cfg)
    assert table_months(table.stdout) == ["2023-02"]
    assert table.stdout.splitlines()[-1].endswith("re-issued: 2023-02, not invalidated (dry run)")
    assert (files(pipeline), load_log(pipeline)) == (before_files, before_log)
    run_year(pipeline)
    assert mirror.downloads() == 3  # nothing to redo


def test_a_month_gone_from_the_source_is_reported_not_invalidated(loaded, mirror, pipeline):
    loaded["2023-03"].path.unlink()
    before_files, before_log = files(pipeline), load_log(pipeline)

    run = taxi_luigi("refresh", "yellow", "--year", "2023", "--months", "1-3", cfg=pipeline.cfg)

    assert run.returncode == 0, run.stderr
    assert table_months(run.stdout) == ["2023-03"]
    assert run.stdout.splitlines()[1].split()[2:4] == ["gone", "presence"]
    assert run.stdout.splitlines()[-1] == (
        "yellow 2023: 3 published months checked; no longer at the source: 2023-03, not invalidated"
    )
    assert (files(pipeline), load_log(pipeline)) == (before_files, before_log)


def test_a_local_source_is_compared_by_size_and_mtime(tmp_path, pipeline):
    root = tmp_path / "local-mirror"
    truths = {m: sample.write_month(root, "yellow", 2023, m, "tlc", ROWS[m]) for m in (1, 2)}
    pipeline.configure(root.as_uri() + "/{service}/{service}_tripdata_{year}-{month:02d}.parquet")
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1,2")).status == LuigiStatusCode.SUCCESS
    manifest = pipeline.lake / "yellow" / "2023" / "yellow_tripdata_2023-02.manifest.json"
    recorded = json.loads(manifest.read_text())["source"]
    assert (recorded["bytes"], recorded["etag"]) == (truths[2].path.stat().st_size, None)
    assert recorded["last_modified"] == str(truths[2].path.stat().st_mtime_ns)

    def checked() -> dict[str, tuple]:
        rows = refresh_json(pipeline, "--months", "1,2", "--dry-run")
        return {m: (r["state"], r["compared"]) for m, r in rows.items()}

    assert checked() == {"2023-01": ("unchanged", "last-modified"), "2023-02": ("unchanged", "last-modified")}
    # A download recorded before validators were: compared by size alone, and the answer says so.
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "source": {**recorded, "last_modified": None}}))
    os.utime(truths[2].path, ns=(0, recorded_ns := int(recorded["last_modified"]) + 10**9))
    assert checked() == {"2023-01": ("unchanged", "last-modified"), "2023-02": ("unchanged", "size")}
    # Same size, new mtime: a rewrite the size alone cannot show, the mtime can.
    os.utime(truths[1].path, ns=(0, recorded_ns))
    assert checked() == {"2023-01": ("changed", "last-modified"), "2023-02": ("unchanged", "size")}

    new = sample.write_month(root, "yellow", 2023, 2, "tlc", 500)
    rows = refresh_json(pipeline, "--months", "1,2")
    assert {m: (r["state"], r["compared"], r["invalidated"]) for m, r in rows.items()} == {
        "2023-01": ("changed", "last-modified", True),
        "2023-02": ("changed", "size", True),
    }
    assert pipeline.run(TaxiYear(service="yellow", year=2023, months="1,2")).status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2023-01": truths[1].clean, "2023-02": new.clean}
    assert {m: r["state"] for m, r in refresh_json(pipeline, "--months", "1,2").items()} == {
        "2023-01": "unchanged",
        "2023-02": "unchanged",
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("purple", "--year", "2023"), 2, "unknown service 'purple': choose one of yellow, green, fhv, fhvhv"),
        (("fhvhv", "--year", "2018"), 2, "fhvhv 2018: no month of it has a file"),
        (("yellow", "--year", "2023", "--months", "13"), 2, "--months '13': [13] are not months (1-12)"),
    ],
)
def test_a_refused_argument_is_one_line_naming_it(pipeline, args, code, message):
    run = taxi_luigi("refresh", *args, cfg=pipeline.cfg)
    assert (run.returncode, run.stdout) == (code, "")
    assert run.stderr.startswith(f"taxi-luigi refresh: {message}") and run.stderr.count("\n") == 1


def test_an_unreachable_source_is_one_line_and_invalidates_nothing(loaded, pipeline):
    before_files, before_log = files(pipeline), load_log(pipeline)
    pipeline.configure(f"http://127.0.0.1:{free_port()}" + "/{service}/{service}_tripdata_{year}-{month:02d}.parquet")

    run = taxi_luigi("refresh", "yellow", "--year", "2023", cfg=pipeline.cfg)

    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.startswith("taxi-luigi refresh: yellow 2023-01: cannot reach the source (http://127.0.0.1:")
    assert "refused the connection" in run.stderr and run.stderr.count("\n") == 1  # at once: nothing listens
    assert (files(pipeline), load_log(pipeline)) == (before_files, before_log)
