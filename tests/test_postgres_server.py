"""The PostgreSQL fixtures: passfile authentication, SCRAM for the role taxi, stop and restart, no orphans."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from postgres_server import Postgres, PostgresServer
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as con:
            result = con.execute(sqlalchemy.text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that are not zombies, from /proc: a zombie's parent may be a PID 1 that never
    reaps, and it holds no port or file anyway."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_the_role_connects_with_its_passfile(pg_database: str) -> None:
    url = make_url(pg_database)
    assert url.password is None and url.drivername == "postgresql+psycopg2"
    query(pg_database, "CREATE TABLE trips (id int)")  # the role owns the database
    assert query(pg_database, "SELECT current_user, current_database()") == [("taxi", url.database)]


def test_a_wrong_password_is_refused_without_being_echoed(postgres: Postgres, pg_database: str) -> None:
    wrong = "wr0ng-Passw0rd-42"
    with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
        query(postgres.url(password=wrong, database=make_url(pg_database).database), "SELECT 1")
    assert 'password authentication failed for user "taxi"' in str(refused.value)
    assert wrong not in str(refused.value)


def test_the_role_needs_a_password_over_tcp(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(sqlalchemy.exc.OperationalError, match="no password supplied"):
        query(pg_database, "SELECT 1")


def test_stop_then_start_keeps_committed_rows_and_leaves_no_process(postgres: Postgres, pg_database: str) -> None:
    if not postgres.can_restart:
        pytest.skip("an external server (TAXI_LUIGI_TEST_POSTGRES_URL) cannot be stopped by the tests")
    assert isinstance(postgres, PostgresServer)
    query(pg_database, "CREATE TABLE trips AS SELECT generate_series(1, 1000) AS id")
    pgid = postgres.pid
    assert pgid is not None

    postgres.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="Connection refused"):
        query(pg_database, "SELECT 1")

    postgres.start()
    assert query(pg_database, "SELECT count(*) FROM trips") == [(1000,)]


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_the_server_dies_with_a_killed_parent() -> None:
    """SIGKILL skips atexit: only the parent-death signal takes the server down."""
    script = (
        f"import sys, time; sys.path.insert(0, {str(HERE)!r}); from postgres_server import PostgresServer\n"
        "server = PostgresServer(); server.start(); print(server.pid, server.dir, flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        started = parent.stdout.readline().split()
        assert started, "the server did not start in the subprocess"
        pgid, directory = int(started[0]), started[1]
        try:
            assert live_members(pgid)
            parent.kill()
            parent.wait()
            deadline = time.monotonic() + 10
            while live_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not live_members(pgid)
        finally:
            parent.kill()
            shutil.rmtree(directory, ignore_errors=True)
