"""Temporary names that say who writes them, and the sweep that removes a dead writer's leftovers.

Every step writes under a temporary name and renames into place, so a final name only ever
holds a whole file. A writer killed with -9 cannot remove its temporary file; naming its host
and pid in the file tells the next run a leftover (that process is gone) from a file another
process is writing right now, here or on another machine sharing the directory.

A temporary name is hidden and ends in ``.tmp``: ``.{final}.{host}-{pid}.{random}.tmp``. No
target (``.source.json``, ``.quality.json``, ``.manifest.json``) can ever look like one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

#: The host part of a temporary name: without dots, so a name splits one way only.
HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "localhost"
_TEMP = re.compile(r"\..+\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


#: strerror(ENOSPC): an OSError's text, and quoted inside DuckDB's IO errors.
NO_SPACE = "No space left on device"
_DUCKDB_WRITING = re.compile(r'Could not write file \\?"(?P<path>[^"\\]+)')


class DiskFull(Exception):
    """A step ran out of disk space; its temporary files are gone and nothing was marked complete."""


def disk_full(label: str, step: str, error: Exception, directory: Path) -> DiskFull | None:
    """A clear error for ``error`` if it is a full disk, else None; ``directory`` is named when the
    error does not say which file it was.

    Only the file that could not be written is kept of the original: a wrapped error's own
    advice (a damaged source, say) would be wrong here.
    """
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename2 or error.filename
    elif NO_SPACE in str(error):
        found = _DUCKDB_WRITING.search(str(error))
        where = found and found["path"]
    else:
        return None
    return DiskFull(
        f"{label}: no space left on device: {step} could not write {where or f'in {directory}'}. Nothing was marked "
        "complete and its temporary files are gone: free space there (or move [paths] data_dir, [lake] root "
        "or the warehouse to a larger disk), then rerun."
    )


def temp_path(final: Path) -> Path:
    """A fresh temporary name beside ``final``, naming this host and process."""
    return final.with_name(f".{final.name}.{HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp")


def writer(path: Path) -> tuple[str, int] | None:
    """The host and pid that wrote a temporary file (None: not a temporary name)."""
    match = _TEMP.fullmatch(path.name)
    return (match["host"], int(match["pid"])) if match else None


@contextlib.contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A temporary name beside ``final`` for the block; whatever is left under it afterwards (the caller
    did not rename it into place: it failed) is removed, a file or a directory."""
    final.parent.mkdir(parents=True, exist_ok=True)
    path = temp_path(final)
    try:
        yield path
    finally:
        _remove(path)


def sweep(*directories: Path) -> list[Path]:
    """Remove the temporary files and directories in ``directories`` whose writer has died; return them.

    Only this host's: whether a pid on another machine is alive cannot be told from here, so its
    files wait for that machine's next run. A live pid's file may be being written: it stays.
    """
    removed = []
    for directory in directories:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            found = writer(Path(name))
            if found and found[0] == HOST and not _alive(found[1]):
                _remove(directory / name)
                removed.append(directory / name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether the process has exited and only waits to be reaped (kill -9'd, say, under a parent that
    does not reap, as in a container whose first process is not an init): it writes nothing more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile, or no /proc: trust kill()
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
