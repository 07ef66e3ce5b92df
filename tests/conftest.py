"""Fixtures: a real HTTP mirror on loopback and the real pipeline, configured by an override file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from luigi.configuration.cfg_parser import LuigiConfigParser
from luigi.task_register import Register

from taxi_luigi.demo.server import MirrorServer
from taxi_luigi.warehouse.duckdb import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "real-samples"  # the TLC's own files (its SOURCES.md); never copied here
pytest_plugins = ["conftest_gcp", "conftest_postgres"]


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """../shared/real-samples, which sits beside a CI clone: its absence fails CI and skips a user's run."""
    if not REAL.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{REAL} is missing: CI must have ../shared beside its clone")
        pytest.skip(f"{REAL} is not here (it sits beside a CI clone); these tests read the TLC's own files")
    return REAL


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

    def configure(self, url_template: str = "", **sections: dict[str, object]) -> None:
        """Write the override file and make Luigi read luigi.cfg + it afresh; ``sections`` add or override keys."""
        settings: dict[str, dict[str, object]] = {
            "paths": {"data_dir": self.data},
            "lake": {"root": self.lake},
            "warehouse": {"url": f"duckdb:///{self.db}", "lock_wait_seconds": 10},
            "source": {"url_template": url_template, "retries": 2, "backoff_seconds": 0.05, "timeout_seconds": 5},
        }
        for section, keys in sections.items():
            settings.setdefault(section, {}).update(keys)
        lines = [
            line for name, keys in settings.items() for line in (f"[{name}]", *(f"{k} = {v}" for k, v in keys.items()))
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

    def tables(self) -> set[str]:
        """The warehouse's tables."""
        import duckdb

        with duckdb.connect(str(self.db), read_only=True) as con:
            return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}

    def counts(self, table: str) -> dict[str, int]:
        """Rows per source_month in a warehouse table, read straight from the DuckDB file."""
        import duckdb

        with duckdb.connect(str(self.db), read_only=True) as con:
            rows = con.execute(f"SELECT source_month, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
        return {f"{m:%Y-%m}": n for m, n in rows}


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return Pipeline(tmp_path, monkeypatch)
