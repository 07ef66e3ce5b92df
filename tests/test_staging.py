"""Temporary names and the sweep: a dead writer's leftovers go, a live writer's and another host's stay."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

from taxi_luigi import lake, staging
from taxi_luigi.lake.local import LocalLake
from taxi_luigi.targets import ManifestTarget


def killed_writer(final: Path, directory: bool = False) -> Path:
    """A real process that starts writing ``final``'s temporary file (or directory) and is killed with -9."""
    code = """if True:
        import sys
        from pathlib import Path
        from taxi_luigi import staging
        path = staging.temp_path(Path(sys.argv[1]))
        if sys.argv[2] == "dir":
            path.mkdir()
            (path / "duckdb_temp_storage-0.tmp").write_bytes(b"x")
        else:
            path.write_bytes(b"x")
        print(path, flush=True)
        sys.stdin.read()  # until killed
    """
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(final), "dir" if directory else "file"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    path = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    writer.stdin.close()
    assert path.exists()
    return path


def test_a_temporary_name_is_hidden_names_its_writer_and_never_looks_like_a_target(tmp_path):
    final = tmp_path / "yellow_tripdata_2023-01.manifest.json"
    temp = staging.temp_path(final)
    assert temp.parent == tmp_path and temp.name.startswith(".") and temp.name.endswith(".tmp")
    assert staging.writer(temp) == (staging.HOST, os.getpid())
    assert staging.temp_path(final) != temp
    assert not temp.name.endswith((".json", ".parquet", ".csv.gz"))
    assert lake.month_of_file("yellow", temp.name) is None
    for name in (final.name, "yellow_tripdata_2023-01.parquet.source.json", ".hidden", "a.tmp", ".x.host-12.zz.tmp"):
        assert staging.writer(Path(name)) is None


def test_sweep_removes_a_dead_writers_file_and_directory_only(tmp_path):
    final = tmp_path / "yellow_tripdata_2023-01.parquet"
    dead_file = killed_writer(final)
    dead_dir = killed_writer(tmp_path / "duckdb", directory=True)  # DuckDB's spill directory while cleaning
    mine = staging.temp_path(final)  # this process is alive: a writer at work
    mine.write_bytes(b"x")
    _, dead_pid = staging.writer(dead_file)
    elsewhere = tmp_path / f".{final.name}.otherhost-{dead_pid}.0123abcd.tmp"  # a pid here says nothing of there
    elsewhere.write_bytes(b"x")
    final.write_bytes(b"x")

    removed = staging.sweep(tmp_path, tmp_path / "missing")

    assert sorted(removed) == sorted([dead_file, dead_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, elsewhere.name, final.name])


def test_staged_removes_what_was_not_renamed_into_place(tmp_path):
    final = tmp_path / "sub" / "out.parquet"
    try:
        with staging.staged(final) as temp:
            temp.write_bytes(b"half")
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    with staging.staged(final) as temp:
        temp.write_bytes(b"whole")
        temp.replace(final)
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_a_leftover_staged_manifest_in_the_lake_is_not_a_published_month(tmp_path):
    the_lake = LocalLake(str(tmp_path))
    manifest = tmp_path / the_lake.key("yellow", dt.date(2023, 1, 1), "manifest")
    manifest.parent.mkdir(parents=True)
    killed_writer(manifest)
    assert the_lake.published_months("yellow") == {}
    assert not ManifestTarget(the_lake, "yellow", dt.date(2023, 1, 1)).exists()
