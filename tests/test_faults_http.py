"""HTTP faults from a real server on 127.0.0.1, through source.fetch and through the card's command.

test_source.py has the simple ones at the fetch level (5xx, 404, a body cut short, HTML, empty,
wrong service, truncated gzip, parquet without footer); here are the faults that need a real
socket (a TCP reset, a stall) and, end to end, what the user sees and what a rerun gives.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mirror import Reset, Stall

from taxi_luigi import sample, services, source
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
