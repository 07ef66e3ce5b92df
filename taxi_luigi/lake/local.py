"""The lake's local backend."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from taxi_luigi import staging
from taxi_luigi.lake import KINDS, Lake


class LocalLake(Lake):
    """A lake in a local directory (or any mounted filesystem)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = Path(root)

    def _file(self, key: str) -> Path:
        return self.path / key

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def read_text(self, key: str) -> str:
        return self._file(key).read_text()

    def put(self, key: str, path: Path, expect: int | None = None, metadata: dict | None = None) -> dict:
        """A rename is atomic; one machine's publishers are kept apart by Luigi, so ``expect`` is not checked."""
        dest = self._file(key)
        with staging.staged(dest) as staged:
            try:
                os.link(path, staged)  # same filesystem: no second copy of a month on disk
            except OSError:
                shutil.copyfile(path, staged)
            os.replace(staged, dest)
        return {}

    def staging_dirs(self, service: str, month: dt.date) -> list[Path]:
        return [self.path / service / str(month.year)]

    def delete(self, key: str) -> bool:
        try:
            self._file(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def published_months(self, service: str) -> dict[dt.date, str]:
        found = {}
        for path in (self.path / service).glob(f"*/{service}_tripdata_*{KINDS['manifest']}"):
            month = self.manifest_month(service, path.relative_to(self.path).as_posix())
            if month is not None:
                found[month] = json.loads(path.read_text())["checksum"]
        return dict(sorted(found.items()))

    def local_copy(self, entry: dict) -> Path:
        return self._file(entry["key"])

    def release(self, path: Path) -> None:
        """The copy is the object itself: it stays."""

    def uri(self, key: str) -> str:
        return str(self._file(key))
