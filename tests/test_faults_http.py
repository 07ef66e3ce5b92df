"""HTTP faults from a real server on 127.0.0.1, through source.fetch and through the card's command.

test_source.py has the simple ones at the fetch level (5xx, 404, a body cut short, HTML, empty,
wrong service, truncated gzip, parquet without footer); here are the faults that need a real
socket (a TCP reset, a stall) and, end to end, what the user sees and what a rerun gives.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from test_cli import luigi_cli, months_loaded

from taxi_luigi import services, source
from taxi_luigi.demo import sample
from taxi_luigi.demo.server import MirrorServer, Reset, Stall
from taxi_luigi.source import SourceError

LABEL = "yellow 2021-03"


def _fetch(mirror, path: str, dest: Path, *, timeout: float = 5) -> source.Fetched:
    return source.fetch(mirror.url + path, dest, services.YELLOW, LABEL, retries=2, backoff=0.01, timeout=timeout)


#: Past the first 1 MiB read: fetch reads 1 MiB at a time and keeps whole reads only.
CUT = 1_500_000


@pytest.fixture
def month(mirror) -> tuple[str, bytes]:
    """yellow 2021-03 as a 2 MB parquet on the mirror: its URL path and bytes."""
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, "tlc", 60_000)
    return f"/yellow/{truth.path.name}", truth.path.read_bytes()


def _resumed_from(mirror, path: str) -> int:
    """The first byte the one Range request asked for."""
    (header,) = mirror.ranges[path]
    return int(header.removeprefix("bytes=").removesuffix("-"))


def test_a_connection_reset_mid_body_is_resumed_with_a_range_request(mirror, month, tmp_path):
    path, data = month
    mirror.faults[path] = [Reset(after=CUT)]
    dest = tmp_path / "d" / "raw.parquet"

    _fetch(mirror, path, dest)

    assert dest.read_bytes() == data
    assert mirror.requests[path] == 2
    assert 0 < _resumed_from(mirror, path) <= CUT
    assert [p.name for p in dest.parent.iterdir()] == ["raw.parquet"]


def test_a_file_replaced_between_the_reset_and_the_resume_is_fetched_whole(mirror, month, tmp_path):
    """If-Range: the resumed part must come from the version whose first part we have, or not at all."""
    path, _ = month
    reissued = sample.write_month(tmp_path / "new", "yellow", 2021, 3, "tlc", 59_000).path.read_bytes()
    target = mirror.root / path.lstrip("/")
    mirror.faults[path] = [Reset(after=CUT, then=lambda: target.write_bytes(reissued))]
    dest = tmp_path / "raw.parquet"

    fetched = _fetch(mirror, path, dest)

    assert dest.read_bytes() == reissued
    assert fetched.bytes == len(reissued)
    assert mirror.requests[path] == 2


def test_a_stalled_body_times_out_and_is_resumed(mirror, month, tmp_path):
    path, data = month
    mirror.faults[path] = [Stall(after=CUT)]
    dest = tmp_path / "raw.parquet"

    _fetch(mirror, path, dest, timeout=0.5)

    assert dest.read_bytes() == data
    assert 0 < _resumed_from(mirror, path) <= CUT


@pytest.mark.parametrize("after", [None, 0, 5_000], ids=["no-headers", "headers-only", "part-of-body"])
def test_a_server_that_stalls_every_time_fails_after_the_retries_with_a_clear_error(mirror, month, tmp_path, after):
    path, _ = month
    mirror.faults[path] = [Stall(after)] * 3
    started = time.monotonic()

    with pytest.raises(SourceError) as err:
        _fetch(mirror, path, tmp_path / "d" / "raw.parquet", timeout=0.3)

    assert time.monotonic() - started < 3
    assert str(err.value) == (
        f"{LABEL}: download of {mirror.url}{path} failed after 3 attempts (TimeoutError: timed out). "
        "Nothing is marked complete; rerun when the source is reachable."
    )
    assert mirror.requests[path] == 3
    assert not any((tmp_path / "d").iterdir())


def test_a_connection_reset_every_time_fails_after_the_retries_with_a_clear_error(mirror, month, tmp_path):
    path, _ = month
    mirror.faults[path] = [Reset(after=10_000)] * 3

    with pytest.raises(SourceError, match=r"failed after 3 attempts \(ConnectionResetError: .*reset by peer\)"):
        _fetch(mirror, path, tmp_path / "d" / "raw.parquet")

    assert not any((tmp_path / "d").iterdir())


def test_a_server_that_is_down_fails_at_once_naming_the_host_and_port(tmp_path):
    """Connection refused: a port of 127.0.0.1 that nothing listens on any more. Nothing listening is a wrong
    port or a server that is not running, not a blip: no backoff (5 s here, were it retried)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/yellow/yellow_tripdata_2021-03.parquet"
    dest = tmp_path / "d" / "raw.parquet"
    started = time.monotonic()

    with pytest.raises(source.Unreachable) as err:
        source.fetch(url, dest, services.YELLOW, LABEL, retries=2, backoff=5, timeout=1)

    assert time.monotonic() - started < 1
    assert str(err.value) == (
        f"{LABEL}: cannot reach the source ({url}): 127.0.0.1:{port} refused the connection (Connection refused): "
        "nothing listens there. Check the host and port in [source] url_template, and that the server is running; "
        "nothing is marked complete."
    )
    assert not any(dest.parent.iterdir())


# End to end: the card's command on February (fine) and March (the fault), then again once the fault is gone.

FEB, MAR = "/yellow/yellow_tripdata_2021-02", "/yellow/yellow_tripdata_2021-03"


def _year(pipeline) -> subprocess.CompletedProcess:
    """The card's command, with Luigi's one-run-at-a-time lock of its own: other test runs on this
    machine run the same command line."""
    year = ["TaxiYear", "--service", "yellow", "--year", "2021", "--months", "2,3"]
    return luigi_cli(*year, "--lock-pid-dir", str(pipeline.cfg.parent / "luigi-locks"), override=pipeline.cfg)


def _setup(mirror: MirrorServer, pipeline, fmt: str, march_rows: int = 500) -> dict[str, sample.MonthTruth]:
    """February and March on the mirror, and an override file with [source] retries = 2 and a 1 s timeout."""
    truths = {
        "2021-02": sample.write_month(mirror.root, "yellow", 2021, 2, fmt, 500),
        "2021-03": sample.write_month(mirror.root, "yellow", 2021, 3, fmt, march_rows),
    }
    pipeline.configure(mirror.template(source.file_format(truths["2021-03"].path.name)), source={"timeout_seconds": 1})
    return truths


def _load_log_rows(db: Path) -> dict[str, int]:
    """load_log rows per month, duplicates included (Warehouse.load_log shows the latest only)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT source_month, count(*) FROM load_log GROUP BY 1").fetchall()
    return {f"{m:%Y-%m}": n for m, n in rows}


def _files_of_march(pipeline) -> list[str]:
    """March's files in the steps' folders (raw, clean, lake): outputs, staged or temporary."""
    steps = [pipeline.data / "raw", pipeline.data / "clean", pipeline.lake]
    return [p.name for step in steps for p in step.rglob("*") if "2021-03" in p.name]


def _raw(pipeline, truth: sample.MonthTruth) -> Path:
    return pipeline.data / "raw" / "yellow" / "2021" / truth.path.name


@dataclass(frozen=True)
class Fault:
    """A fault of March's download; ``apply(mirror, file)`` makes it, ``message`` is what the user reads."""

    name: str
    fmt: str  # the sample's format: "tlc" parquet or "dtc" csv.gz
    apply: Callable[[MirrorServer, Path], object]
    message: str  # a regex; {url} is March's URL
    attempts: int  # requests for March's file before the run gives up


def _replace(data: bytes) -> Callable[[MirrorServer, Path], object]:
    return lambda mirror, file: file.write_bytes(data)


def _answer(*answers: tuple | Reset | Stall) -> Callable[[MirrorServer, Path], object]:
    """The same answer to every request, for longer than the retries last."""
    return lambda mirror, file: mirror.faults.update({f"/yellow/{file.name}": list(answers) * 5})


GAVE_UP = r"yellow 2021-03: download of {url} failed after 3 attempts \({what}\)\. Nothing is marked complete; "
GAVE_UP += r"rerun when the source is reachable\."
PERMANENT = [
    Fault(
        "503-forever",
        "tlc",
        _answer((503, b"busy")),
        GAVE_UP.format(url="{url}", what="HTTP 503 Service Unavailable"),
        3,
    ),
    Fault("stalled-server", "tlc", _answer(Stall()), GAVE_UP.format(url="{url}", what="TimeoutError: timed out"), 3),
    Fault(
        "reset-mid-body-forever",
        "tlc",
        _answer(Reset(after=5_000)),
        GAVE_UP.format(url="{url}", what=r"ConnectionResetError: \[Errno 104\] Connection reset by peer"),
        3,
    ),
    Fault(
        "short-body-forever",
        "tlc",
        lambda mirror, file: _answer((200, file.read_bytes()[:5_000], file.stat().st_size))(mirror, file),
        GAVE_UP.format(url="{url}", what=r"connection closed with \d+ bytes still to come"),
        3,
    ),
    Fault(
        "html-page",
        "tlc",
        _replace(b"<!DOCTYPE html>\n<html><body>Trip Record Data</body></html>\n"),
        r"yellow 2021-03: {url} returned an HTML page, not a \.parquet file \(a web page URL instead of the "
        r"file's download URL\?\)\. Check \[source\] url_template\.",
        1,
    ),
    Fault(
        "404",
        "tlc",
        lambda mirror, file: file.unlink(),
        r"yellow 2021-03: the source has no file at {url} \(HTTP 404\)\. The TLC publishes a month about two "
        r"months after it ends, .* switch \[source\] preset / url_template\.",
        1,
    ),
    Fault("empty-file", "tlc", _replace(b""), r"yellow 2021-03: {url} is empty \(0 bytes\)\. Rerun later", 1),
    Fault(
        "another-service",
        "tlc",
        lambda mirror, file: shutil.copy(
            sample.write_month(file.parent.parent, "green", 2021, 3, "tlc", 100).path, file
        ),
        r"yellow 2021-03: {url} is not a yellow file \(missing tpep_pickup_datetime/pickup_datetime/[^,]*, "
        r"tpep_dropoff_datetime/dropoff_datetime/[^)]*\): it looks like a green file; its header is VendorID, "
        r"lpep_pickup_datetime, .*; check \[source\] url_template\.",
        1,
    ),
    Fault(
        "parquet-without-footer",
        "tlc",
        lambda mirror, file: file.write_bytes(file.read_bytes()[:-100]),
        r"yellow 2021-03: {url} is not a whole parquet file \(the PAR1 marker is missing at the end: cut short\?\)\. "
        r"Rerun to download it again\.",
        1,
    ),
    Fault(
        "gzip-cut-short",
        "dtc",
        lambda mirror, file: file.write_bytes(file.read_bytes()[: file.stat().st_size // 2]),
        r"yellow 2021-03: yellow_tripdata_2021-03\.csv\.gz is a damaged or truncated gzip \(.*\)\. The download "
        r"was discarded: rerun to fetch it again\.",
        1,
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault", PERMANENT, ids=[f.name for f in PERMANENT])
def test_a_fault_fails_its_month_alone_marks_nothing_and_a_rerun_loads_exact_counts(mirror, pipeline, fault):
    truths = _setup(mirror, pipeline, fault.fmt)
    march = truths["2021-03"]
    good = march.path.read_bytes()
    fault.apply(mirror, march.path)

    run = _year(pipeline)

    assert run.returncode == 30, run.stderr[-3000:]  # [retcode] task_failed
    url = re.escape(mirror.url + f"/yellow/{march.path.name}")
    assert re.search(fault.message.format(url=url), run.stderr), run.stderr[-3000:]
    assert mirror.requests[f"/yellow/{march.path.name}"] == fault.attempts
    assert months_loaded(pipeline.db, "yellow_tripdata") == {"2021-02": truths["2021-02"].clean}
    assert _load_log_rows(pipeline.db) == {"2021-02": 1}
    assert _files_of_march(pipeline) == []  # nothing marked complete, nothing left behind

    mirror.faults.clear()
    march.path.write_bytes(good)
    rerun = _year(pipeline)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert months_loaded(pipeline.db, "yellow_tripdata") == {m: t.clean for m, t in truths.items()}
    assert _load_log_rows(pipeline.db) == {"2021-02": 1, "2021-03": 1}
    assert _raw(pipeline, march).read_bytes() == good
    assert mirror.requests[f"/yellow/{truths['2021-02'].path.name}"] == 1  # the finished month is not fetched again


TRANSIENT = [
    ("500-then-success", lambda data: [(500, b"oops")], False),
    ("reset-mid-body", lambda data: [Reset(after=CUT)], True),
    ("short-body-once", lambda data: [(200, data[:CUT], len(data))], False),  # no ETag: fetched again whole
    ("stall-mid-body", lambda data: [Stall(after=CUT)], True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("answers", "resumed"), [t[1:] for t in TRANSIENT], ids=[t[0] for t in TRANSIENT])
def test_a_fault_that_clears_within_the_retries_loads_exact_counts_from_a_byte_identical_file(
    mirror, pipeline, answers, resumed
):
    truths = _setup(mirror, pipeline, "tlc", march_rows=60_000)
    march = truths["2021-03"]
    path = f"/yellow/{march.path.name}"
    mirror.faults[path] = answers(march.path.read_bytes())

    run = _year(pipeline)

    assert run.returncode == 0, run.stderr[-3000:]
    assert months_loaded(pipeline.db, "yellow_tripdata") == {m: t.clean for m, t in truths.items()}
    assert _load_log_rows(pipeline.db) == {"2021-02": 1, "2021-03": 1}
    assert _raw(pipeline, march).read_bytes() == march.path.read_bytes()
    assert mirror.requests[path] == 2
    assert len(mirror.ranges[path]) == resumed
