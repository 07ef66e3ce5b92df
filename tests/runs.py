"""The card's command as a real process, for fault tests: its own process group, its log as it comes,
kill -9; and what a finished month must leave in the data directory, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import duckdb

from taxi_luigi import lake, staging

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CARD = ("TaxiYear", "--service", "yellow", "--year", "2023", "--months", "1-2")


def taxi_luigi(*args: str, cfg: Path) -> subprocess.CompletedProcess:
    """The ``taxi-luigi`` console script as a user runs it: from the repo root, with ``cfg`` as the override."""
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    return subprocess.run(
        [str(BIN / "taxi-luigi"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def override(tmp_path: Path, template: str, extra: str = "") -> Path:
    """An override file with everything (raw, clean, lake, warehouse) under tmp_path/data, and Luigi's pid
    files in tmp_path: the same command line in another test session is not "already running"."""
    data = tmp_path / "data"
    cfg = tmp_path / "override.cfg"
    cfg.write_text(
        f"[core]\nlock_pid_dir = {tmp_path / 'pids'}\n"
        f"[source]\nurl_template = {template}\nretries = 1\nbackoff_seconds = 0.05\ntimeout_seconds = 20\n"
        f"[paths]\ndata_dir = {data}\n[lake]\nroot = {data / 'lake'}\n"
        f"[warehouse]\nurl = duckdb:///{data / 'warehouse.duckdb'}\nlock_wait_seconds = 60\n{extra}"
    )
    return cfg


class Luigi:
    """``luigi --module taxi_luigi ARGS`` (after ``prefix``, e.g. strace) in a process group of its own."""

    def __init__(self, cfg: Path, *args: str, prefix: Sequence[str] = ()) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, str(BIN / "luigi"), "--module", "taxi_luigi", *args],
            cwd=REPO,
            env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def until(self, condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
        """Poll ``condition`` until it holds; fail if the run ends first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {self.proc.returncode}) before {what}:\n{self.log[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {what} after {timeout} s:\n{self.log[-3000:]}")
            time.sleep(0.005)

    def kill(self) -> None:
        """SIGKILL to the whole process group, as the OOM killer or a `kill -9 -PGID` would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 120.0) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(timeout)
        self.proc.stdout.close()
        return code


def temporary(*directories: Path) -> list[Path]:
    """The temporary files and directories (staging's names) directly in ``directories``."""
    return [p for d in directories if d.is_dir() for p in d.iterdir() if staging.writer(p)]


def strays(data: Path, service: str, months: Iterable[str]) -> list[Path]:
    """Everything under ``data`` that is not a finished month's output or the quality site: leftovers of any kind."""
    expected = {data / "warehouse.duckdb", *(data / "report" / page for page in ("index.html", "site.json"))}
    expected.add(data / "report" / f"{service}.html")
    for ym in months:
        name, year = f"{service}_tripdata_{ym}", ym[:4]
        raw, clean, lake_dir = (data / step / service / year for step in ("raw", "clean", "lake"))
        expected |= {raw / f"{name}.parquet", raw / f"{name}.parquet.source.json"}
        expected |= {clean / f"{name}{suffix}" for suffix in (".parquet", ".quarantine.parquet", ".quality.json")}
        expected |= {lake_dir / f"{name}{suffix}" for suffix in lake.KINDS.values()}
    return sorted(p for p in data.rglob("*") if (p.is_file() and p not in expected) or staging.writer(p))


def load_log(db: Path, service: str) -> dict[str, list[tuple[int, int, str]]]:
    """Every load_log row of each month, oldest first: (rows, quarantined, checksum)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT source_month, rows, quarantined, checksum FROM load_log WHERE service = ? ORDER BY loaded_at",
            [service],
        ).fetchall()
    found: dict[str, list[tuple[int, int, str]]] = {}
    for month, *row in rows:
        found.setdefault(f"{month:%Y-%m}", []).append(tuple(row))
    return found


def counts(db: Path, table: str) -> dict[str, int]:
    """Rows per month in a warehouse table, and no month twice: distinct rows equal all rows."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
        total, distinct = con.execute(
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM {table})) FROM {table}"
        ).fetchone()
    assert distinct == total, f"{table} has {total - distinct} duplicate rows"
    return {f"{m:%Y-%m}": n for m, n in rows}
