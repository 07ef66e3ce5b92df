"""A source that cannot be reached at all, produced for real: a name under .invalid (RFC 6761: it never
resolves), a machine without network (a network namespace of its own, ``unshare -n``: no interface is up),
a proxy whose name does not resolve, and (tests/test_faults_http.py) a port nothing listens on.

Each fails at once, or after the one short second try of EAI_AGAIN, with one line that names the host, and a
whole year fails before a single month is scheduled. The faults that clear by themselves keep their retries:
test_5xx_is_retried_then_succeeds and test_a_body_cut_short_is_fetched_again_and_ends_byte_identical
(test_source.py), the reset and stall tests and the TRANSIENT end-to-end runs of test_faults_http.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import REPO, Luigi, counts, load_log, taxi_luigi
from test_cron import cron_run, finish, write_config

from taxi_luigi import services, source
from taxi_luigi.demo import sample

HOST = "no-such-host.invalid"
TEMPLATE = f"http://{HOST}/{{service}}/{{service}}_tripdata_{{year}}-{{month:02d}}.parquet"
TLC_HOST = "d37ci6vzurychx.cloudfront.net"
#: The card's command, a whole year: twelve months that each used to retry the same DNS failure.
YEAR = ("TaxiYear", "--service", "yellow", "--year", "2023")
#: What the requirement allows for a run that cannot reach its source, start to exit.
FAST = 10.0


@pytest.fixture(scope="module")
def no_such_name() -> str:
    """The resolver's answer for a name under .invalid (e.g. "Name or service not known"), once it is known to come
    at once and to be an answer (not EAI_AGAIN, which is what a machine without DNS gets: see the offline tests)."""
    started = time.monotonic()
    try:
        socket.getaddrinfo(HOST, 80)
    except socket.gaierror as e:
        if e.errno == socket.EAI_AGAIN or time.monotonic() - started > 1:
            pytest.skip(f"this machine's resolver does not answer for {HOST} at once ({e})")
        return e.strerror
    pytest.skip(f"this machine's resolver answers for {HOST} (a DNS server that rewrites NXDOMAIN?)")


@pytest.fixture(scope="module")
def offline() -> tuple[str, ...]:
    """The prefix that runs a command on a machine without network: a new network namespace, loopback down."""
    unshare = shutil.which("unshare")
    if not unshare or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode:
        pytest.skip("no network namespace here (unshare -n needs root or user namespaces)")
    return (unshare, "-n")


def _fetch_fails(url: str, tmp_path: Path) -> tuple[source.SourceError, float]:
    """Download ``url`` with a backoff that would make any retry obvious (5 s, doubling, four times): the error
    and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(source.SourceError) as err:
        source.fetch(url, tmp_path / "d" / "raw.parquet", services.YELLOW, "yellow 2023-01", retries=4, backoff=5)
    return err.value, time.monotonic() - started


#: ``_fetch_fails`` in a process of its own, its outcome as JSON on stdout.
FETCH_FAILS = """
import json, sys, time
from pathlib import Path
from taxi_luigi import services, source
started = time.monotonic()
try:
    source.fetch(sys.argv[1], Path(sys.argv[2]), services.YELLOW, "yellow 2023-01", retries=4, backoff=5)
except source.SourceError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e), "seconds": time.monotonic() - started}))
"""


def _fetch_fails_in_a_process(url: str, tmp_path: Path, prefix: tuple[str, ...] = (), **env: str) -> dict:
    """``_fetch_fails`` in a new process (after ``prefix``, with ``env``), which reads its network setup afresh."""
    run = subprocess.run(
        [*prefix, sys.executable, "-c", FETCH_FAILS, url, str(tmp_path / "d" / "raw.parquet")],
        cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and run.stdout, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_an_unresolvable_host_fails_at_once_with_the_host_the_url_and_what_to_check(no_such_name, tmp_path):
    url = TEMPLATE.format(service="yellow", year=2023, month=1)

    error, seconds = _fetch_fails(url, tmp_path)

    assert isinstance(error, source.Unreachable)
    assert seconds < 1  # not retried: the first backoff alone would be 5 s
    assert str(error) == (
        f"yellow 2023-01: cannot reach the source ({url}): {HOST} does not resolve ({no_such_name}). Check the host "
        "in [source] url_template (or preset), and this machine's DNS; nothing is marked complete."
    )
    assert not any((tmp_path / "d").iterdir())


def test_a_look_at_an_unresolvable_host_is_an_error_not_a_month_not_yet_published(no_such_name):
    """TaxiHistory and refresh ask with probe: None there means "not published yet", which a DNS failure is not."""
    url = TEMPLATE.format(service="yellow", year=2023, month=1)
    started = time.monotonic()

    with pytest.raises(source.Unreachable, match=rf"yellow 2023-01: cannot reach the source .* {HOST} does not"):
        source.probe(url, "yellow 2023-01", retries=4, backoff=5)

    assert time.monotonic() - started < 1


def test_a_proxy_that_does_not_resolve_is_named_without_its_credentials(no_such_name, mirror, tmp_path):
    """Through a proxy, the proxy's name is the one resolved: naming the source's host would send the user to check
    the wrong name. urllib takes the proxy from the environment, as curl does, when a process first opens a URL."""
    truth = sample.write_month(mirror.root, "yellow", 2023, 1, "tlc", 100)
    url = f"{mirror.url}/yellow/{truth.path.name}"

    outcome = _fetch_fails_in_a_process(url, tmp_path, http_proxy="http://taxi:s3cret@no-such-proxy.invalid:3128")

    assert outcome["error"] == "Unreachable" and outcome["seconds"] < 1
    assert outcome["message"] == (
        f"yellow 2023-01: cannot reach the source ({url}): the proxy no-such-proxy.invalid:3128 (http_proxy) does not "
        f"resolve ({no_such_name}). Check the host in [source] url_template (or preset), and this machine's DNS; "
        "nothing is marked complete."
    )
    assert mirror.downloads() == 0


def test_offline_a_name_is_asked_once_more_a_second_later_then_fails_naming_it(offline, tmp_path):
    """EAI_AGAIN, "Temporary failure in name resolution", is what a machine without network or DNS server gets; a
    resolver that hiccuped has recovered a second later, an offline machine has not, and backoff helps neither."""
    url = f"https://{TLC_HOST}/trip-data/yellow_tripdata_2023-01.parquet"

    outcome = _fetch_fails_in_a_process(url, tmp_path, offline)

    assert outcome["error"] == "Unreachable"
    assert source.RESOLVE_AGAIN_SECONDS <= outcome["seconds"] < source.RESOLVE_AGAIN_SECONDS + 1
    assert outcome["message"] == (
        f"yellow 2023-01: cannot reach the source ({url}): {TLC_HOST} could not be resolved, twice 1 s apart "
        "(Temporary failure in name resolution): no network, or no DNS server answering? Check this machine's "
        "network and DNS, and the host in [source] url_template (or preset); nothing is marked complete."
    )


def test_offline_an_address_without_a_route_fails_at_once(offline, tmp_path):
    """ENETUNREACH: an IP address (TEST-NET-1, RFC 5737), so there is no name to resolve, and no route to it."""
    url = "http://192.0.2.1/yellow/yellow_tripdata_2023-01.parquet"

    outcome = _fetch_fails_in_a_process(url, tmp_path, offline)

    assert outcome["error"] == "Unreachable" and outcome["seconds"] < 1
    assert outcome["message"] == (
        f"yellow 2023-01: cannot reach the source ({url}): no route to 192.0.2.1 (Network is unreachable): is this "
        "machine offline? Check its network, and the host in [source] url_template (or preset); nothing is marked "
        "complete."
    )


# The card's command as a real process.


def _config(tmp_path: Path, template: str) -> Path:
    """The override a user writes: data under tmp_path and [source] url_template (empty: the preset's). Retries and
    backoff stay luigi.cfg's, 4 and 2 s, with which the year below took 365 s to fail before."""
    data = tmp_path / "data"
    cfg = tmp_path / "override.cfg"
    cfg.write_text(
        f"[core]\nlock_pid_dir = {tmp_path / 'pids'}\n[source]\nurl_template = {template}\n"
        f"[paths]\ndata_dir = {data}\n[lake]\nroot = {data / 'lake'}\n"
        f"[warehouse]\nurl = duckdb:///{data / 'warehouse.duckdb'}\n"
    )
    return cfg


def _run(cfg: Path, *args: str, prefix: tuple[str, ...] = ()) -> tuple[int, str, float]:
    """``luigi --module taxi_luigi ARGS``: its exit code, its output and its wall time."""
    started = time.monotonic()
    run = Luigi(cfg, *args, prefix=prefix)
    code = run.finish()
    return code, run.log, time.monotonic() - started


def _files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "data").rglob("*") if p.is_file())


def _fails_in_seconds_with_one_line(code: int, log: str, seconds: float, host: str) -> str:
    """The run could not reach ``host``: exit 35, fast, one traceback, one line naming the host (returned), no
    month run."""
    assert code == 35, log[-3000:]  # [retcode] scheduling_error: the wrapper could not list its work
    assert seconds < FAST, f"{seconds:.1f} s:\n{log[-3000:]}"
    assert log.count("Traceback (most recent call last)") == 1, log
    (line,) = [line for line in log.splitlines() if host in line]
    assert line.startswith("taxi_luigi.source.Unreachable: "), log[-3000:]
    assert "running   Download" not in log
    assert "not yet available" not in log
    return line


@pytest.mark.slow
def test_the_cards_command_against_an_unresolvable_host_fails_in_seconds_with_one_line(no_such_name, mirror, tmp_path):
    cfg = _config(tmp_path, TEMPLATE)

    code, log, seconds = _run(cfg, *YEAR)

    line = _fails_in_seconds_with_one_line(code, log, seconds, HOST)
    url = TEMPLATE.format(service="yellow", year=2023, month=1)
    assert line == (
        f"taxi_luigi.source.Unreachable: yellow 2023-01..2023-12: cannot reach the source ({url}): {HOST} does not "
        f"resolve ({no_such_name}). Check the host in [source] url_template (or preset), and this machine's DNS; "
        "nothing is marked complete."
    )
    assert "* 1 failed scheduling:\n    - 1 TaxiYear(service=yellow, year=2023, months=)" in log
    assert _files(tmp_path) == []  # no raw file, no .source.json, no lake, no warehouse, no load_log

    code, again, seconds = _run(cfg, *YEAR)  # nothing was remembered: the same answer, as fast

    assert _fails_in_seconds_with_one_line(code, again, seconds, HOST) == line
    assert _files(tmp_path) == []

    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, range(1, 13), "tlc", 100)
    code, log, _ = _run(_config(tmp_path, mirror.template()), *YEAR)  # the template fixed

    assert code == 0, log[-3000:]
    db = tmp_path / "data" / "warehouse.duckdb"
    assert counts(db, "yellow_tripdata") == {f"2023-{t.month:02d}": t.clean for t in truths}
    assert {month: len(rows) for month, rows in load_log(db, "yellow").items()} == {
        f"2023-{m:02d}": 1 for m in range(1, 13)
    }
    assert mirror.downloads() == 12


@pytest.mark.slow
def test_offline_the_cards_command_fails_in_seconds_naming_the_tlc_host(offline, tmp_path):
    """The card's command as written, the TLC preset, on a machine without network."""
    code, log, seconds = _run(_config(tmp_path, ""), *YEAR, prefix=offline)

    line = _fails_in_seconds_with_one_line(code, log, seconds, TLC_HOST)
    assert line.startswith("taxi_luigi.source.Unreachable: yellow 2023-01..2023-12: cannot reach the source")
    assert f"{TLC_HOST} could not be resolved, twice 1 s apart (Temporary failure in name resolution)" in line
    assert _files(tmp_path) == []


@pytest.mark.slow
def test_a_history_with_an_unresolvable_host_fails_instead_of_finding_nothing_published(no_such_name, tmp_path):
    """The look at the newest month is where it fails: an unreachable host is never "not yet available" (which
    would exit 0 with nothing loaded). Before, that look took its five attempts and backoff: 35 s."""
    cfg = _config(tmp_path, TEMPLATE)

    code, log, seconds = _run(cfg, "TaxiHistory", "--service", "yellow", "--start", "2023-01")

    line = _fails_in_seconds_with_one_line(code, log, seconds, HOST)
    assert f"{HOST} does not resolve ({no_such_name})" in line
    assert "* 1 failed scheduling:\n    - 1 TaxiHistory(service=yellow, start=2023-01, through=None)" in log
    assert _files(tmp_path) == []


@pytest.mark.slow
def test_cron_with_an_unresolvable_host_fails_with_one_line_and_the_scheduling_error_code(no_such_name, tmp_path):
    started = time.monotonic()

    code, out, err = finish(cron_run(write_config(tmp_path, TEMPLATE), "--quiet"))

    assert time.monotonic() - started < FAST
    assert (code, out) == (35, "")
    named = [line for line in err.splitlines() if HOST in line]
    assert len(named) == 1 and named[0].startswith("taxi_luigi.source.Unreachable: yellow "), err
    assert "cron-run: FAILED, exit code 35 (scheduling_error)" in err
    assert "not yet available" not in err


@pytest.mark.slow
def test_a_year_with_nothing_left_to_download_runs_without_its_source(no_such_name, mirror, tmp_path):
    """The source is looked at only if a month must be downloaded: redoing Clean, Publish and Load works offline."""
    truths = sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2], "tlc", 100)
    months = (*YEAR, "--months", "1-2")
    assert _run(_config(tmp_path, mirror.template()), *months)[0] == 0
    cfg = _config(tmp_path, TEMPLATE)
    db = tmp_path / "data" / "warehouse.duckdb"

    code, log, _ = _run(cfg, *months)  # everything done: complete() never needs the source

    assert code == 0 and "complete ones were encountered" in log, log[-3000:]

    assert taxi_luigi("invalidate", "yellow", "2023-01", "--from", "clean", cfg=cfg).returncode == 0
    code, log, _ = _run(cfg, *months)  # January is cleaned, published and loaded again from its raw file

    assert code == 0, log[-3000:]
    assert counts(db, "yellow_tripdata") == {f"2023-{t.month:02d}": t.clean for t in truths}

    assert taxi_luigi("invalidate", "yellow", "2023-01", "--from", "download", cfg=cfg).returncode == 0
    code, log, seconds = _run(cfg, *months)  # now January needs the source

    line = _fails_in_seconds_with_one_line(code, log, seconds, HOST)
    assert line.startswith("taxi_luigi.source.Unreachable: yellow 2023-01..2023-02: cannot reach the source")
    assert not (tmp_path / "data" / "raw" / "yellow" / "2023" / f"{truths[0].path.name}.source.json").exists()
