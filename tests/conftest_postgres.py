"""Fixtures: a PostgreSQL server for the session and a fresh database for each test, owned by the role taxi.

A pytest plugin, registered with ``pytest_plugins`` in conftest.py, like conftest_gcp. The server is started from
pgserver's binaries unless TAXI_LUIGI_TEST_POSTGRES_URL names a running one (see postgres_server.py); a test that
stops or restarts the server must skip when ``postgres.can_restart`` is false.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import ENV_URL, PASSWORD, ROLE, ExternalPostgres, Postgres, PostgresServer
from sqlalchemy.engine import make_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    external = os.environ.get(ENV_URL)
    if external:
        yield ExternalPostgres(external)
        return
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_database(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a new database, with no password in it: libpq reads the role's from a passfile, as a user's would.

    PGPASSWORD is removed since it would win over the file. A test that stopped the server and did not start it again
    finds it started here, so that the next tests have one.
    """
    passfile = tmp_path / "pgpass"
    passfile.touch(mode=0o600)  # libpq ignores a passfile that others can read
    passfile.write_text(f"*:*:*:{ROLE}:{PASSWORD}\n")
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield postgres.url(database=name)
    if isinstance(postgres, PostgresServer) and not postgres.running:
        postgres.start()
    postgres.drop_database(name)


@pytest.fixture(params=["url", "environment"])
def password_warehouse(request: pytest.FixtureRequest, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``pg_database`` as a run that needs the role's password gets it: in the URL, or in PGPASSWORD. The fixture's
    passfile is taken away, since it would make the password unnecessary."""
    monkeypatch.delenv("PGPASSFILE")
    url = make_url(pg_database)
    if request.param == "url":
        return url.set(password=PASSWORD).render_as_string(hide_password=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return url.render_as_string(hide_password=False)
