"""Bad parameters, hostile configuration and secrets: refused with a readable error, never leaked, never a path."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg2
import pytest
from luigid_server import Luigid, worker_config
from postgres_server import PASSWORD
from sqlalchemy.engine import make_url

from taxi_luigi.demo import sample
from taxi_luigi.tasks import Download, Load, TaxiYear
from taxi_luigi.warehouse import warehouse_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Load(service="purple", month=dt.date(2021, 1, 1)), "purple is not a valid choice"),
        (lambda: Load(service="fhvhv", month=dt.date(2019, 1, 1)), "fhvhv files start at 2019-02"),
        (lambda: Load(service="yellow", month=dt.date(2099, 1, 1)), "yellow 2099-01: the month has not ended yet"),
        (lambda: list(TaxiYear(service="green", year=2021, months="7,13").requires()), r"\[13\] are not months"),
        (lambda: list(TaxiYear(service="green", year=2021, months="1;2").requires()), "use month numbers like"),
        (lambda: list(TaxiYear(service="fhv", year=1999).requires()), "fhv 1999: no month of it has a file"),
    ],
)
def test_every_task_parameter_is_checked_with_a_readable_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_bad_parameter_on_the_command_line_exits_non_zero_and_ends_with_the_reason(tmp_path):
    run = subprocess.run(
        [str(BIN / "luigi"), "--module", "taxi_luigi", "Load", "--service", "yellow", "--month", "2099-01"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 40  # [retcode] unhandled_exception: nothing was scheduled
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith("yellow 2099-01: the month has not ended yet, so the TLC has no file for it")
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://taxi@localhost/taxi?schema=x%22%3B%20DROP%20TABLE%20load_log%3B--", "PostgreSQL schema"),
        ("postgresql://taxi@localhost/taxi?schema=a.b", "PostgreSQL schema"),
        ("bigquery://my-project/taxi`; DROP", "BigQuery dataset"),
        ("bigquery://my-project/taxi.load_log", "BigQuery dataset"),
        ("bigquery://My_Project/taxi", "BigQuery project"),
    ],
)
def test_identifiers_from_configuration_must_be_plain_names(url, message):
    with pytest.raises(ValueError, match=f"{message} .* is not a plain name"):
        warehouse_for(url)


def test_no_value_is_ever_a_path_outside_the_data_directory(mirror, pipeline, tmp_path):
    """A template full of dot-dots only changes the URL asked for: where files go comes from service and month."""
    sample.write_mirror(mirror.root, ["green"], 2023, [1], "tlc", 100)
    pipeline.configure(mirror.url + "/a/../../{service}/./{service}_tripdata_{year}-{month:02d}.parquet")
    before = {p for p in tmp_path.rglob("*")}

    pipeline.run(TaxiYear(service="green", year=2023, months="1"))

    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert written and all(p.is_relative_to(pipeline.data) for p in written)
    raw = Download(service="green", month=dt.date(2023, 1, 1)).raw_path()
    assert raw == pipeline.data / "raw" / "green" / "2023" / "green_tripdata_2023-01.parquet" and raw.is_file()


def every_text(root: Path) -> str:
    """Every file under ``root``, binary ones too, as text: a secret anywhere in them shows up here."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_the_warehouse_password_appears_nowhere(mirror, tmp_path, pg_database, password_warehouse):
    """A run through a real luigid with the password in the URL (or PGPASSWORD), then a failing one: the password is
    in no task parameter, visualizer answer, task history, log, error, lake or warehouse row."""
    sample.write_mirror(mirror.root, ["green"], 2023, [1], "tlc", 200)
    warehouse = password_warehouse
    server = Luigid(tmp_path / "scheduler")
    with server.running():
        cfg = worker_config(tmp_path, server, mirror.template(), warehouse=warehouse)
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        card = [str(BIN / "luigi"), "--module", "taxi_luigi", "TaxiYear", "--service", "green", "--year", "2023"]
        ok = subprocess.run([*card, "--months", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0, ok.stderr[-3000:]
        shown = [
            server.get(
                "/api/task_list?data=" + urllib.parse.quote(json.dumps({"status": status, "upstream_status": ""}))
            )
            for status in ("DONE", "FAILED", "PENDING")
        ]
        # The same password, a port nobody listens on: the load fails and says why.
        unreachable = make_url(warehouse).set(port=1).render_as_string(hide_password=False)
        failing_cfg = worker_config(tmp_path, server, mirror.template(), warehouse=unreachable)
        failed = subprocess.run(
            [*card, "--months", "1"],
            cwd=REPO,
            env={**env, "LUIGI_CONFIG_PATH": str(failing_cfg)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        status = subprocess.run(
            [str(BIN / "taxi-luigi"), "status", "--year", "2023", "--service", "green"],
            cwd=REPO,
            env={**env, "LUIGI_CONFIG_PATH": str(failing_cfg)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert failed.returncode != 0 and "cannot connect to the PostgreSQL warehouse" in failed.stderr
    assert status.returncode == 1 and "cannot connect to the PostgreSQL warehouse" in status.stderr
    with psycopg2.connect(pg_database.replace("+psycopg2", ""), password=PASSWORD) as con, con.cursor() as cur:
        cur.execute("SELECT * FROM load_log")
        load_log = repr(cur.fetchall())
    assert "green" in load_log
    seen = {
        "worker output": ok.stdout + ok.stderr,
        "visualizer": "".join(body for _, body in shown),
        "failed run": failed.stdout + failed.stderr,
        "status": status.stdout + status.stderr,
        "luigid files (state, log, history)": every_text(server.data_dir),
        "data dir and lake": every_text(tmp_path / "data"),
        "load_log": load_log,
    }
    assert "Load" in seen["visualizer"] and "green" in seen["visualizer"]
    assert {name: PASSWORD in text for name, text in seen.items()} == {name: False for name in seen}
