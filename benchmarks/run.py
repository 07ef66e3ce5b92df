"""Measure taxi-luigi's Download, Clean and Load of full-size months against the usual ways.

    ./scripts/bench                       # 7,667,792-row yellow csv.gz + 20,000,000-row fhvhv parquet
    ./scripts/bench --yellow-rows 50000 --fhvhv-rows 50000 --results /tmp/results.md   # a quick look

Every measured step runs as its own process, the way a user runs it (the real ``luigi``
command for taxi-luigi's steps), and its peak RSS is that of the whole process tree,
sampled every 20 ms. The months come from taxi_luigi/demo/sample.py and are served from
127.0.0.1, so the run needs no network. The report goes to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from taxi_luigi import source
from taxi_luigi.demo import sample
from taxi_luigi.demo.server import MirrorServer

REPO = Path(__file__).resolve().parent.parent
MONTH = "2021-01"
YEAR, YEAR_MONTHS = 2022, range(1, 13)  # the no-op rerun
WORKERS_YEAR, WORKERS_MONTHS = 2019, (1, 2, 3, 4)

# The course's transform, plus errors="coerce": as written it raises on the first unparseable
# timestamp, and the sample months plant some (real months have them too).
COURSE = """
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
df["tpep_pickup_datetime"] = pd.to_datetime(df["tpep_pickup_datetime"], errors="coerce")
df["tpep_dropoff_datetime"] = pd.to_datetime(df["tpep_dropoff_datetime"], errors="coerce")
df = df[df["passenger_count"] != 0]
df.to_parquet(sys.argv[2], compression="gzip")
"""
ONE_LINER = """
import sys, duckdb
duckdb.sql(sys.argv[1])
"""


@dataclass
class Measured:
    wall: float
    peak_mb: float


@dataclass
class Row:
    step: str
    month: str
    how: str
    measured: Measured
    rows: int | None = None
    note: str = ""


def measure(cmd: list[str], cfg: Path | None = None) -> Measured:
    """Run ``cmd`` to the end; its wall time and the peak RSS summed over its process tree."""
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg)) if cfg else None
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):  # a child may end between listing and reading it
                peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
            time.sleep(0.02)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(cmd[:6])} failed with exit code {proc.returncode}:\n{tail}")
    return Measured(wall, peak / 2**20)


class Bench:
    def __init__(self, work: Path, url: str) -> None:
        self.work, self.url = work, url
        self.python = sys.executable
        self.luigi_bin = str(Path(sys.executable).with_name("luigi"))

    def config(self, name: str, ext: str, **sections: dict[str, object]) -> Path:
        """An override file with its own data dir, lake and warehouse, read after luigi.cfg; ``sections`` add keys."""
        data = self.work / name
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        settings: dict[str, dict[str, object]] = {
            "paths": {"data_dir": data},
            "lake": {"root": data / "lake"},
            "warehouse": {"url": f"duckdb:///{data / 'warehouse.duckdb'}"},
            "source": {"url_template": f"{self.url}/{{service}}/{{service}}_tripdata_{{year}}-{{month:02d}}{ext}"},
            "core": {"log_level": "WARNING"},
        }
        for section, keys in sections.items():
            settings.setdefault(section, {}).update(keys)
        cfg = data / "override.cfg"
        cfg.write_text(
            "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) for s, kv in settings.items())
        )
        return cfg

    def luigi(self, cfg: Path, *args: str) -> Measured:
        return measure([self.luigi_bin, "--module", "taxi_luigi", *args], cfg)

    def python_code(self, code: str, *args: str) -> Measured:
        return measure([self.python, "-c", code, *args])


def month_file(mirror: Path, service: str, fmt: str, rows: int) -> sample.MonthTruth:
    """The benchmark month, generated once and reused while its row count is unchanged."""
    year, month = map(int, MONTH.split("-"))
    path = mirror / service / sample.file_name(service, year, month, fmt)
    truth_file = path.with_name(path.name + ".truth.json")
    if path.exists() and truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth["rows"] == rows:
            return sample.MonthTruth(service, year, month, fmt, rows, truth["reasons"], path)
    print(f"generating {path.name} with {rows:,} rows ...", flush=True)
    truth = sample.write_month(mirror, service, year, month, fmt, rows)
    truth_file.write_text(json.dumps({"rows": rows, "reasons": truth.reasons}))
    return truth


def in_turns(label: str, step: str, repeats: int, contenders: dict[str, Callable[[], Measured]]) -> list[Row]:
    """Each contender ``repeats`` times, taking turns so that disk and cache state fall on all alike;
    the best run of each is kept, since noise only ever adds time."""
    runs: dict[str, list[Measured]] = {how: [] for how in contenders}
    for _ in range(repeats):
        for how, run in contenders.items():
            runs[how].append(run())
    note = f"best of {repeats}" if repeats > 1 else ""
    return [Row(step, label, how, min(r, key=lambda m: m.wall), note=note) for how, r in runs.items()]


def month_rows(bench: Bench, truth: sample.MonthTruth, course: bool, repeats: int) -> list[Row]:
    """Download, Clean and Load of one month, each beside its baselines."""
    svc, label, ext = truth.service, f"{truth.service} {MONTH}", source.file_format(truth.path.name)
    cfg = bench.config(f"{truth.service}-{truth.fmt}", ext)
    data = cfg.parent
    task = ["--service", svc, "--month", MONTH]

    def again(step: str, *paths: Path) -> Callable[[], Measured]:
        """Run a taxi-luigi step after removing its earlier output, so it does the work each time."""

        def run() -> Measured:
            for path in paths:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            return bench.luigi(cfg, step, *task)

        return run

    url = f"{bench.url}/{svc}/{truth.path.name}"
    downloads = {"taxi-luigi Download": again("Download", data / "raw")}
    if shutil.which("curl"):
        downloads["curl -o"] = lambda: measure(["curl", "--silent", "--fail", "--output", str(data / "curl.out"), url])
    out = in_turns(label, "download", repeats, downloads)
    size = truth.path.stat().st_size / 1e6
    for row in out:
        row.note = ", ".join(filter(None, (f"{size / row.measured.wall:,.0f} MB/s", row.note)))

    baseline = data / "baseline"
    baseline.mkdir()
    if course:  # a couple of minutes and 3.4 GB: once is enough
        course_run = bench.python_code(COURSE, str(truth.path), str(baseline / "course.parquet"))
        out.append(Row("clean", label, "course: pandas", course_run))
    where = " WHERE passenger_count <> 0" if truth.fmt == "dtc" else ""
    reader = "read_csv" if truth.fmt == "dtc" else "read_parquet"
    one_liner = f"COPY (SELECT * FROM {reader}('{truth.path}'){where}) TO '{baseline / 'one.parquet'}' (FORMAT parquet)"
    cleans = {
        "DuckDB one-liner": lambda: bench.python_code(ONE_LINER, one_liner),
        "taxi-luigi Clean": again("Clean", data / "clean"),
    }
    out += in_turns(label, "clean", repeats, cleans)
    report = json.loads(next((data / "clean").rglob("*.quality.json")).read_text())
    if (report["rows_clean"], report["quarantine_by_reason"]) != (truth.clean, truth.reasons):
        raise SystemExit(f"{label}: Clean counted {report['rows_clean']} clean rows, the truth is {truth.clean}")
    out[-1].rows = report["rows_clean"]

    bench.luigi(cfg, "Publish", *task)
    lake_data = next((data / "lake").rglob(f"*{MONTH}.parquet"))
    ctas_db = data / "ctas.duckdb"
    ctas = f"CREATE TABLE t AS SELECT * FROM read_parquet('{lake_data}')"
    code = f"import duckdb; duckdb.connect({str(ctas_db)!r}).execute({ctas!r})"
    warehouse = data / "warehouse.duckdb"

    def ctas_run() -> Measured:
        ctas_db.unlink(missing_ok=True)
        return bench.python_code(code)

    out += in_turns(
        label,
        "load",
        repeats,
        {"CREATE TABLE AS": ctas_run, "taxi-luigi Load": again("Load", warehouse, Path(f"{warehouse}.wal"))},
    )
    out[-1].rows = duckdb_rows(warehouse, f"{svc}_tripdata")
    return out


def duckdb_rows(db: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def year_rows(bench: Bench, mirror: Path, rows: int, workers_rows: int) -> list[Row]:
    """A finished 12-month year run again, and four months with one worker and with two."""
    sample.write_mirror(mirror, ["yellow"], YEAR, YEAR_MONTHS, "tlc", rows)
    cfg = bench.config("year", ".parquet")
    first = bench.luigi(cfg, "YellowYear", "--year", str(YEAR))
    again = bench.luigi(cfg, "YellowYear", "--year", str(YEAR))
    out = [
        Row("year", f"yellow {YEAR}", "first run, 12 months", first, note=f"{rows:,} rows a month"),
        Row("year", f"yellow {YEAR}", "no-op rerun", again),
    ]
    sample.write_mirror(mirror, ["yellow"], WORKERS_YEAR, WORKERS_MONTHS, "dtc", workers_rows)
    months = ",".join(map(str, WORKERS_MONTHS))
    for workers in (1, 2):
        cfg = bench.config(f"workers-{workers}", ".csv.gz")
        run = bench.luigi(
            cfg,
            "TaxiYear",
            "--service",
            "yellow",
            "--year",
            str(WORKERS_YEAR),
            "--months",
            months,
            "--workers",
            str(workers),
        )
        out.append(
            Row(
                "workers",
                f"yellow {WORKERS_YEAR} 1-4",
                f"--workers {workers}",
                run,
                note=f"{workers_rows:,} rows a month",
            )
        )
    return out


def targets(rows: list[Row]) -> list[tuple[str, str, bool]]:
    """Each target of issue 4: what it asks, what was measured, met or not."""
    by = {(r.step, r.month, r.how): r.measured for r in rows}
    found = []
    months = sorted({r.month for r in rows if r.step == "clean"})
    for m in months:
        ours, base = by[("clean", m, "taxi-luigi Clean")], by[("clean", m, "DuckDB one-liner")]
        found.append(
            (f"{m}: Clean wall <= 1.0x the one-liner", f"{ours.wall / base.wall:.2f}x", ours.wall <= base.wall)
        )
        if course := by.get(("clean", m, "course: pandas")):
            found.append(
                (
                    f"{m}: Clean >= 10x faster than the course",
                    f"{course.wall / ours.wall:.1f}x",
                    course.wall >= 10 * ours.wall,
                )
            )
        load, ctas = by[("load", m, "taxi-luigi Load")], by[("load", m, "CREATE TABLE AS")]
        found.append(
            (f"{m}: Load <= 1.2x CREATE TABLE AS", f"{load.wall / ctas.wall:.2f}x", load.wall <= 1.2 * ctas.wall)
        )
        if curl := by.get(("download", m, "curl -o")):
            ours = by[("download", m, "taxi-luigi Download")]
            found.append(
                (
                    f"{m}: Download >= 0.9x curl's throughput",
                    f"{curl.wall / ours.wall:.2f}x",
                    curl.wall >= 0.9 * ours.wall,
                )
            )
        for step in ("Download", "Clean", "Load"):
            peak = by[(step.lower(), m, f"taxi-luigi {step}")].peak_mb
            found.append((f"{m}: {step} peak RSS <= 512 MB", f"{peak:,.0f} MB", peak <= 512))
    cleans = [by[("clean", m, "taxi-luigi Clean")].peak_mb for m in months]
    if len(cleans) > 1:
        ratio = max(cleans) / min(cleans)
        found.append(("Clean RSS flat: largest month within 1.3x of the smallest", f"{ratio:.2f}x", ratio <= 1.3))
    pg = {r.how: r.measured for r in rows if r.step == "postgres"}
    if ours := pg.get("taxi-luigi Load"):
        if course := pg.get("course: pandas to_sql"):
            ratio = course.wall / ours.wall
            found.append(("PostgreSQL: Load >= 10x faster than the course's to_sql", f"{ratio:.1f}x", ratio >= 10))
        ratio = pg["psql \\copy of a CSV"].wall / ours.wall
        found.append(("PostgreSQL: Load >= 1.25x the speed of psql \\copy", f"{ratio:.2f}x", ratio >= 1.25))
        found.append(("PostgreSQL: Load peak RSS <= 512 MB", f"{ours.peak_mb:,.0f} MB", ours.peak_mb <= 512))
    again = next(r.measured for r in rows if r.how == "no-op rerun")
    found.append(("no-op rerun of a finished 12-month year <= 3 s", f"{again.wall:.2f} s", again.wall <= 3))
    one, two = (next(r.measured for r in rows if r.how == f"--workers {n}") for n in (1, 2))
    found.append(
        ("--workers 2 faster than --workers 1 on 4 months", f"{one.wall / two.wall:.2f}x", two.wall < one.wall)
    )
    return found


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {name: _version(name) for name in ("luigi", "duckdb", "pyarrow", "pandas")}
    curl = (
        subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        if shutil.which("curl")
        else "absent"
    )
    return [
        f"- machine: {os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"- {platform.platform()}",
        f"- Python {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- {curl}",
    ]


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def write_results(path: Path, rows: list[Row], command: str) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.datetime.now():%Y-%m-%d %H:%M} with `{command}`; written by benchmarks/run.py.",
        "",
        *machine(),
        "",
        "| step | month | how | rows | wall s | peak RSS MB | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.step} | {r.month} | {r.how} | {'' if r.rows is None else f'{r.rows:,}'} | "
            f"{r.measured.wall:.2f} | {r.measured.peak_mb:,.0f} | {r.note} |"
        )
    lines += ["", "## Targets (issue 4)", "", "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {what} | {value} | {'yes' if ok else '**no**'} |" for what, value, ok in targets(rows)]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yellow-rows", type=int, default=7_667_792, help="rows of the yellow csv.gz month")
    parser.add_argument("--fhvhv-rows", type=int, default=20_000_000, help="rows of the fhvhv parquet month")
    parser.add_argument("--year-rows", type=int, default=20_000, help="rows a month of the no-op year")
    parser.add_argument("--workers-rows", type=int, default=1_000_000, help="rows a month of the --workers runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step and baseline; the best counts")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL loads")
    parser.add_argument("--no-course", action="store_true", help="skip the course's pandas method (slow, ~3 GB)")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench", help="where months and outputs go")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    mirror = args.work / "mirror"
    yellow = month_file(mirror, "yellow", "dtc", args.yellow_rows)
    fhvhv = month_file(mirror, "fhvhv", "tlc", args.fhvhv_rows)
    rows: list[Row] = []
    with MirrorServer(mirror) as server:
        bench = Bench(args.work, server.url)
        rows += month_rows(bench, yellow, course=not args.no_course, repeats=args.repeats)
        rows += month_rows(bench, fhvhv, course=False, repeats=args.repeats)
        if not args.no_postgres:
            from postgres import postgres_rows

            rows += postgres_rows(bench, yellow, MONTH, course=not args.no_course, repeats=args.repeats)
        rows += year_rows(bench, mirror, args.year_rows, args.workers_rows)
    command = "./scripts/bench" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    write_results(args.results, rows, command)
    print(args.results.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
