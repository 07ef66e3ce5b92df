"""Fixtures: a real HTTP mirror on loopback and the real pipeline, configured by an override file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from luigi.configuration.cfg_parser import LuigiConfigParser
from luigi.task_register import Register

from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).parent))

from mirror import MirrorServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[MirrorServer]:
    root = tmp_path / "mirror"
    root.mkdir()
    with MirrorServer(root) as server:
        yield server


class Pipeline:
    """The real tasks with the local scheduler, configured the way a user would: an override file."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data = tmp_path / "data"
        self.lake = self.data / "lake"
        self.db = self.data / "warehouse.duckdb"
        self.cfg = tmp_path / "override.cfg"
        self.monkeypatch = monkeypatch
        self.configure()

    def configure(self, url_template: str = "") -> None:
        """Write the override file and make Luigi read luigi.cfg + it afresh."""
        lines = [
            "[paths]",
            f"data_dir = {self.data}",
            "[lake]",
            f"root = {self.lake}",
            "[warehouse]",
            f"url = duckdb:///{self.db}",
            "lock_wait_seconds = 10",
            "[source]",
            f"url_template = {url_template}",
            "retries = 2",
            "backoff_seconds = 0.05",
            "timeout_seconds = 5",
        ]
        self.cfg.write_text("\n".join(lines) + "\n")
        self.monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(REPO / "luigi.cfg"), str(self.cfg)])
        self.monkeypatch.setattr(LuigiConfigParser, "_instance", None)
        Register.clear_instance_cache()

    def run(self, *tasks: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
        Register.clear_instance_cache()
        return luigi.build(list(tasks), local_scheduler=True, workers=workers, detailed_summary=True)

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.db)

    def counts(self, table: str) -> dict[str, int]:
        """Rows per source_month in a warehouse table, read straight from the DuckDB file."""
        import duckdb

        with duckdb.connect(str(self.db), read_only=True) as con:
            rows = con.execute(f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
        return {f"{m:%Y-%m}": n for m, n in rows}


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return Pipeline(tmp_path, monkeypatch)
