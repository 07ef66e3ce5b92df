"""Session fixtures: a GCS emulator and a BigQuery emulator that reads gs:// from it, for the official clients.

A pytest plugin, registered with ``pytest_plugins = ["conftest_gcp"]`` in conftest.py or a test module: tests/ is
not a package but is on sys.path, so "tests.conftest_gcp" would work only under ``python -m pytest`` from the repo.
Without .venv-emulators the fixtures skip, so a developer without it still runs the suite; CI runs scripts/emulators
first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulators import PYTHON, BigQueryEmulator, FakeGcs


def _require_emulators() -> None:
    if not PYTHON.exists():
        pytest.skip("no .venv-emulators: run scripts/emulators to test against the GCS and BigQuery emulators")


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    _require_emulators()
    here = tmp_path_factory.mktemp("gcs")
    with FakeGcs(root=here / "root", log=here / "fake-gcs-server.log") as server:
        yield server


@pytest.fixture(scope="session")
def gcs_europe_west1(gcs: FakeGcs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """A second fake-gcs-server whose buckets are in EUROPE-WEST1 (one server has one location for all its buckets),
    on the first one's root, so the bigquery fixture's emulator reads its objects too."""
    here = tmp_path_factory.mktemp("gcs-europe-west1")
    with FakeGcs(root=gcs.root, log=here / "fake-gcs-server.log", location="EUROPE-WEST1") as server:
        yield server


@pytest.fixture(scope="session")
def bigquery(gcs: FakeGcs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    here = tmp_path_factory.mktemp("bigquery")
    with BigQueryEmulator(log=here / "bqemulator.log", gcs_root=gcs.root) as server:
        yield server
