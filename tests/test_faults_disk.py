"""A disk that fills up while a step writes: a real, small tmpfs under the data dir, the lake or the warehouse."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi.demo import sample
from taxi_luigi.tasks import Clean, Download, Load, Publish

pytestmark = pytest.mark.slow

MONTH = dt.date(2023, 1, 1)
ROWS = 60_000  # a 1.7 MB parquet month: its clean copy and lake objects take about as much again


class SmallDisk:
    """A tmpfs of a given size; ``grow`` is the user freeing space."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: str) -> subprocess.CompletedProcess:
        self.path.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)], capture_output=True, text=True
        )

    def grow(self) -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(self.path)], check=True)

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "small")
    probe = disk.mount("1m")
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({probe.stderr.strip()}): the disk-full tests need CAP_SYS_ADMIN")
    subprocess.run(["umount", str(disk.path)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], capture_output=True)


# Which directory is on the small disk, how small, the step that must fail, and what the error names.
CASES = {
    "download": ("data", "1m", Download, "Download"),
    "clean": ("data", "2500k", Clean, "Clean"),
    "publish": ("lake", "1m", Publish, "Publish"),
    "load": ("warehouse", "1m", Load, "Load"),
}


@pytest.mark.parametrize("step", list(CASES))
def test_a_full_disk_fails_the_step_clearly_marks_nothing_and_the_rerun_is_exact(
    step, small_disk, mirror, pipeline, tmp_path, caplog
):
    where, size, task, name = CASES[step]
    (truth,) = sample.write_mirror(mirror.root, ["yellow"], 2023, [1], "tlc", ROWS)
    places = {"data": tmp_path / "data", "lake": tmp_path / "lake", "warehouse": tmp_path / "wh"}
    places[where] = small_disk.path
    pipeline.configure(
        mirror.template(),
        paths={"data_dir": places["data"]},
        lake={"root": places["lake"]},
        warehouse={"url": f"duckdb:///{places['warehouse'] / 'warehouse.duckdb'}"},
    )
    pipeline.db = places["warehouse"] / "warehouse.duckdb"
    assert small_disk.mount(size).returncode == 0

    result = pipeline.run(Load(service="yellow", month=MONTH))

    assert result.status == LuigiStatusCode.FAILED
    failed = [line for line in caplog.text.splitlines() if "failed" in line and f"{name}(" in line]
    assert failed, caplog.text[-3000:]
    assert "yellow 2023-01: no space left on device" in caplog.text
    assert "free space" in caplog.text
    assert not task(service="yellow", month=MONTH).complete()
    leftovers = [p for p in small_disk.files() if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left to fill the disk further

    small_disk.grow()
    rerun = pipeline.run(Load(service="yellow", month=MONTH))

    assert rerun.status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2023-01": truth.clean}
    assert sum(mirror.requests.values()) == (2 if step == "download" else 1)
