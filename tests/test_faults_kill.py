"""kill -9 of the card's command inside each step, then a rerun: exact counts, each month's rows once,
and no temporary file left anywhere: the rerun sweeps what the killed run left.

Each step is made slow in a real way so that the kill lands inside it: a download that stalls
mid-body, a month big enough for Clean and Load to take a second, and in Publish a link(2) that
strace holds once it is made, so the kill falls between the month's objects and its manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runs import BIN, CARD, REPO, Luigi, counts, load_log, override, strays, temporary

from taxi_luigi import staging
from taxi_luigi.demo import sample
from taxi_luigi.demo.sample import MonthTruth
from taxi_luigi.demo.server import Stall

pytestmark = pytest.mark.slow

BIG = 1_000_000  # rows: about a second of Clean and of Load
SMALL = 2_000


def write_months(mirror, january_rows: int) -> dict[str, MonthTruth]:
    return {
        f"2023-{m:02d}": sample.write_month(mirror.root, "yellow", 2023, m, "tlc", rows)
        for m, rows in ((1, january_rows), (2, SMALL))
    }


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def running(run: Luigi, task: str) -> bool:
    """Whether Luigi's worker has said it is running ``task``."""
    return any("running" in line and task in line for line in run.lines)


def rerun_is_exact(tmp_path: Path, cfg: Path, truths: dict[str, MonthTruth]) -> str:
    """Run the card's command again: exit 0, every month exact and logged, nothing else left. Returns its log."""
    run = Luigi(cfg, *CARD)
    assert run.finish() == 0, run.log[-3000:]
    data = tmp_path / "data"
    db = data / "warehouse.duckdb"
    assert counts(db, "yellow_tripdata") == {m: t.clean for m, t in truths.items()}
    quarantined = {m: sum(t.reasons.values()) for m, t in truths.items()}
    assert counts(db, "yellow_tripdata_quarantine") == quarantined
    manifests = {
        m: json.loads((data / "lake" / "yellow" / "2023" / f"yellow_tripdata_{m}.manifest.json").read_text())
        for m in truths
    }
    assert load_log(db, "yellow") == {
        m: [(t.clean, quarantined[m], manifests[m]["checksum"])] for m, t in truths.items()
    }
    assert strays(data, "yellow", truths) == []
    return run.log


def test_kill_during_download_leaves_a_partial_file_the_rerun_sweeps_and_fetches_again(mirror, tmp_path):
    truths = write_months(mirror, 200_000)
    january = f"/yellow/{truths['2023-01'].path.name}"
    mirror.faults[january] = [Stall(after=truths["2023-01"].path.stat().st_size // 2)]
    cfg = override(tmp_path, mirror.template())
    raw = tmp_path / "data" / "raw" / "yellow" / "2023"

    run = Luigi(cfg, *CARD)
    run.until(lambda: any(size(p) > 0 for p in temporary(raw) if p.name.startswith(f".{january[8:]}.")), "a part")
    run.kill()

    (part,) = temporary(raw)
    assert staging.writer(part) == (staging.HOST, run.proc.pid)
    assert not (raw / "yellow_tripdata_2023-01.parquet").exists()
    assert not (raw / "yellow_tripdata_2023-01.parquet.source.json").exists()
    log = rerun_is_exact(tmp_path, cfg, truths)
    assert f"removed what killed runs left: {part.name}\n" in log
    assert mirror.requests[january] == 2
    assert mirror.requests[f"/yellow/{truths['2023-02'].path.name}"] == 1


def test_kill_during_clean_leaves_no_clean_month_and_the_rerun_cleans_it_whole(mirror, tmp_path):
    truths = write_months(mirror, BIG)
    cfg = override(tmp_path, mirror.template(), "[clean]\nthreads = 1\n")
    clean = tmp_path / "data" / "clean" / "yellow" / "2023"

    run = Luigi(cfg, *CARD)
    run.until(lambda: any(p.name.startswith(".yellow_tripdata_2023-01.") for p in temporary(clean)), "January cleaning")
    run.kill()

    left = temporary(clean)
    assert left
    assert not (clean / "yellow_tripdata_2023-01.quality.json").exists()
    log = rerun_is_exact(tmp_path, cfg, truths)
    assert all(p.name in log for p in left)


def strace_works() -> bool:
    return bool(shutil.which("strace")) and subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"]).returncode == 0


@pytest.mark.skipif(not strace_works(), reason="strace (with ptrace allowed) holds Publish between two objects")
def test_kill_during_publish_between_the_objects_and_the_manifest(mirror, tmp_path):
    truths = write_months(mirror, SMALL)
    cfg = override(tmp_path, mirror.template())
    data = tmp_path / "data"
    lake, clean = data / "lake" / "yellow" / "2023", data / "clean" / "yellow" / "2023"
    # Publish links each object into the lake under a temporary name and renames it, the manifest last.
    # strace makes every link(2) return half a second late: a slow filesystem, long enough to see the
    # manifest under its temporary name in the lake, and kill.
    hold = "inject=link,linkat:delay_exit=500ms"
    strace = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=link,linkat", "-e", hold]

    run = Luigi(cfg, *CARD, prefix=strace)
    run.until(lambda: any(".manifest.json." in p.name for p in temporary(lake)), "a manifest staged in the lake")
    run.kill()

    (staged,) = temporary(lake)
    month = staged.name[1:].partition(".")[0]  # yellow_tripdata_YYYY-MM
    assert sorted(p.name for p in lake.glob(f"{month}.*")) == [
        f"{month}.parquet",
        f"{month}.quality.json",
        f"{month}.quarantine.parquet",
    ]
    (written,) = temporary(clean)  # the manifest, written before it went into the lake
    log = rerun_is_exact(tmp_path, cfg, truths)
    assert staged.name in log and written.name in log


@pytest.mark.parametrize("before", ["nothing", "the previous load"])
def test_kill_during_load_leaves_the_previous_month_or_nothing_never_half(mirror, tmp_path, before):
    cfg = override(tmp_path, mirror.template())
    db = tmp_path / "data" / "warehouse.duckdb"
    if before == "nothing":
        truths = write_months(mirror, BIG)
    else:
        old = write_months(mirror, SMALL)
        assert Luigi(cfg, *CARD).finish() == 0
        # The TLC re-issues January, bigger; the user invalidates it and runs again.
        truths = {**old, "2023-01": sample.write_month(mirror.root, "yellow", 2023, 1, "tlc", BIG)}
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        invalidate = [str(BIN / "taxi-luigi"), "invalidate", "yellow", "2023-01", "--from", "download"]
        subprocess.run(invalidate, cwd=REPO, env=env, check=True, capture_output=True)
    start = size(db)

    # The first load into a new warehouse, of January alone: its tables are committed into the WAL before
    # the month's transaction starts. Or the reload of January, February staying as it was.
    run = Luigi(cfg, *CARD[:-1], "1") if before == "nothing" else Luigi(cfg, *CARD)
    # DuckDB writes a big insert's blocks into the file before the commit: the load is well under way.
    run.until(lambda: running(run, "Load(service=yellow, month=2023-01)") and size(db) > start + 8e6, "January loading")
    run.kill()

    wal = Path(f"{db}.wal")
    assert wal.exists() == (before == "nothing")
    january = None if before == "nothing" else old["2023-01"].clean
    assert counts(db, "yellow_tripdata").get("2023-01") == january  # opened with the WAL replayed
    assert "2023-01" not in load_log(db, "yellow")  # never loaded, or its row removed by the invalidation
    rerun_is_exact(tmp_path, cfg, truths)
    assert not wal.exists()
