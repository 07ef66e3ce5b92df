"""A real luigid for tests: scripts/luigid start/stop with its state, log and history under a test directory."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from emulators import free_port

REPO = Path(__file__).resolve().parent.parent


class Luigid:
    """scripts/luigid start/stop, with its state, log and task history under a test directory."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LUIGID_PORT": str(self.port), "TAXI_LUIGI_DATA_DIR": str(data_dir), **env}

    @contextlib.contextmanager
    def running(self) -> Iterator[Luigid]:
        started = self.script("start")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield self
        finally:
            stopped = self.script("stop")
            assert stopped.returncode == 0, stopped.stderr

    def script(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / "luigid"), command], env=self.env, capture_output=True, text=True, timeout=300
        )

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return resp.status, resp.read().decode()

    def tasks(self, status: str) -> dict[str, dict]:
        query = urllib.parse.quote(json.dumps({"status": status, "upstream_status": "", "search": ""}))
        return json.loads(self.get(f"/api/task_list?data={query}")[1])["response"]


def worker_config(tmp_path: Path, luigid: Luigid, template: str, warehouse: str = "") -> Path:
    """The documented switch to the central scheduler, plus Luigi's no_lock so two workers share a machine."""
    data = tmp_path / "data"
    warehouse = warehouse or f"duckdb:///{data / 'wh.duckdb'}"
    cfg = tmp_path / "worker.cfg"
    cfg.write_text(
        f"[core]\nlocal_scheduler = false\nscheduler_url = {luigid.url}\nno_lock = true\n"
        f"[source]\nurl_template = {template}\nretries = 1\nbackoff_seconds = 0.05\n"
        f"[paths]\ndata_dir = {data}\n[lake]\nroot = {data / 'lake'}\n"
        f"[warehouse]\nurl = {warehouse}\n"
    )
    return cfg
