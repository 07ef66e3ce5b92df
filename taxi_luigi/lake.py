"""The lake: published month objects plus a manifest whose existence means "complete".

Objects go first, the manifest last, so a reader that finds a manifest finds every
object it names, with the checksum to prove it. ``lake_for`` picks the backend from
the root alone; callers never branch on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

import luigi

from taxi_luigi import services

#: Object kinds of a month and their file-name suffixes.
KINDS = {
    "data": ".parquet",
    "quarantine": ".quarantine.parquet",
    "report": ".quality.json",
    "manifest": ".manifest.json",
}


class LakeError(Exception):
    """A lake object is missing or differs from its manifest."""


def month_name(service: str, month: dt.date) -> str:
    return f"{service}_tripdata_{month:%Y-%m}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Lake(ABC):
    """Where published months live: ``{service}/{year}/{service}_tripdata_{YYYY-MM}{suffix}``.

    Plain ``{service}/{year}`` directories, never ``key=value`` ones: BigQuery and
    DuckDB read hive-style segments as extra columns.
    """

    root: str

    def key(self, service: str, month: dt.date, kind: str) -> str:
        return f"{service}/{month.year}/{month_name(service, month)}{KINDS[kind]}"

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def read_text(self, key: str) -> str: ...

    @abstractmethod
    def put(self, key: str, path: Path) -> None:
        """Store a local file under ``key`` atomically: the key is either absent or whole."""

    @abstractmethod
    def local_copy(self, key: str) -> Path:
        """A local path with the object's bytes (the object itself when the lake is local)."""

    @abstractmethod
    def uri(self, key: str) -> str: ...

    def manifest(self, service: str, month: dt.date) -> dict | None:
        key = self.key(service, month, "manifest")
        return json.loads(self.read_text(key)) if self.exists(key) else None

    def publish_month(self, service: str, month: dt.date, files: dict[str, Path], source: dict) -> dict:
        """Upload data, quarantine and report, then the manifest that vouches for them."""
        report = json.loads(files["report"].read_text())
        objects = {}
        for kind, path in files.items():
            objects[kind] = {
                "key": self.key(service, month, kind),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        objects["data"]["rows"] = report["rows_clean"]
        objects["quarantine"]["rows"] = report["rows_quarantined"]
        for kind, path in files.items():
            self.put(objects[kind]["key"], path)
        manifest = {
            "service": service,
            "month": f"{month:%Y-%m}",
            "schema_version": services.SCHEMA_VERSION,
            "checksum": hashlib.sha256(
                (objects["data"]["sha256"] + objects["quarantine"]["sha256"]).encode()
            ).hexdigest(),
            "rows": report["rows_clean"],
            "quarantined": report["rows_quarantined"],
            "objects": objects,
            "source": source,
            "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        staged = files["data"].with_name(f".{month_name(service, month)}.{uuid.uuid4().hex[:8]}.manifest")
        try:
            staged.write_text(json.dumps(manifest, indent=2))
            self.put(self.key(service, month, "manifest"), staged)
        finally:
            staged.unlink(missing_ok=True)
        return manifest

    def verified_copy(self, manifest: dict, kind: str, label: str) -> Path:
        """The object's local bytes, refused if they no longer match the manifest's checksum."""
        entry = manifest["objects"][kind]
        if not self.exists(entry["key"]):
            raise LakeError(f"{label}: {self.uri(entry['key'])} is missing although its manifest exists.")
        path = self.local_copy(entry["key"])
        if sha256_file(path) != entry["sha256"]:
            raise LakeError(
                f"{label}: {self.uri(entry['key'])} changed after it was published (its sha256 differs "
                "from the manifest). Invalidate the month from 'publish' on and rerun to publish it again."
            )
        return path


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

    def put(self, key: str, path: Path) -> None:
        dest = self._file(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            try:
                os.link(path, staged)  # same filesystem: no second copy of a month on disk
            except OSError:
                shutil.copyfile(path, staged)
            os.replace(staged, dest)
        finally:
            staged.unlink(missing_ok=True)

    def local_copy(self, key: str) -> Path:
        return self._file(key)

    def uri(self, key: str) -> str:
        return str(self._file(key))


def lake_for(root: str) -> Lake:
    """The lake backend for a root."""
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"lake root {root!r}: only local directories are supported in this version")
    return LocalLake(root.removeprefix("file://"))


class ManifestTarget(luigi.Target):
    """Complete when the month's manifest is in the lake."""

    def __init__(self, lake: Lake, service: str, month: dt.date) -> None:
        self.lake, self.service, self.month = lake, service, month
        self.key = lake.key(service, month, "manifest")

    def exists(self) -> bool:
        return self.lake.exists(self.key)

    def __str__(self) -> str:
        return self.lake.uri(self.key)
