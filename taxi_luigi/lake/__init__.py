"""The lake: published month objects plus a manifest whose existence means "complete".

Objects go first, the manifest last, so a reader that finds a manifest finds every
object it names, with the checksum to prove it. ``lake_for`` picks the backend from
the root alone; callers never branch on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taxi_luigi import services, staging

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


def month_of_file(service: str, name: str) -> dt.date | None:
    """The month of a file named ``month_name`` plus suffixes (None: not one of the service's months).

    ``month_name`` has no dot, so the first dot starts the suffix; ``fhv_`` never matches ``fhvhv_``.
    """
    stem = name.partition(".")[0]
    prefix = f"{service}_tripdata_"
    if not stem.startswith(prefix):
        return None
    try:
        return dt.datetime.strptime(stem.removeprefix(prefix), "%Y-%m").date()
    except ValueError:
        return None


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
    def put(self, key: str, path: Path, expect: int | None = None, metadata: dict | None = None) -> dict:
        """Store a local file under ``key`` atomically: the key is either absent or whole.

        ``expect`` is the object's version from ``versions`` when the month's publishing
        began (0: absent): a backend that can compare-and-swap refuses to overwrite a newer
        one. Returns what the manifest should record of the stored object (e.g. its generation).
        """

    def staging_dirs(self, service: str, month: dt.date) -> list[Path]:
        """The local directories where this lake stages a month's files: swept of dead writers' leftovers."""
        return []

    def versions(self, service: str, month: dt.date) -> dict[str, int]:
        """The current version of each of the month's objects, for ``put``'s ``expect`` (none: no checks)."""
        return {}

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key`` if it is there (atomically); return whether it was."""

    @abstractmethod
    def published_months(self, service: str) -> dict[dt.date, str]:
        """Every month of the service with a manifest, and its checksum: what ``taxi-luigi status`` lists
        when no year is given. One listing (GCS) or one directory walk (local)."""

    def manifest_month(self, service: str, key: str) -> dt.date | None:
        """The month whose manifest ``key`` is (None: another object, or not this service's)."""
        month = month_of_file(service, key.rpartition("/")[2])
        return month if month is not None and key == self.key(service, month, "manifest") else None

    @abstractmethod
    def local_copy(self, entry: dict) -> Path:
        """A local path with the bytes of a manifest's object entry (the object itself when local)."""

    @abstractmethod
    def uri(self, key: str) -> str: ...

    def manifest(self, service: str, month: dt.date) -> dict | None:
        key = self.key(service, month, "manifest")
        return json.loads(self.read_text(key)) if self.exists(key) else None

    def manifest_checksums(self, service: str, months: list[dt.date]) -> dict[dt.date, str]:
        """The checksum of each published month among ``months``: what a year's completeness needs."""
        found = {month: self.manifest(service, month) for month in months}
        return {month: m["checksum"] for month, m in found.items() if m is not None}

    def publish_month(self, service: str, month: dt.date, files: dict[str, Path], source: dict) -> dict:
        """Upload data, quarantine and report, then the manifest that vouches for them."""
        report = json.loads(files["report"].read_text())
        objects: dict[str, dict] = {}
        for kind, path in files.items():
            objects[kind] = {
                "key": self.key(service, month, kind),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        objects["data"]["rows"] = report["rows_clean"]
        objects["quarantine"]["rows"] = report["rows_quarantined"]
        expected = self.versions(service, month)
        for kind, path in files.items():
            key = objects[kind]["key"]
            objects[kind].update(self.put(key, path, expected.get(key, 0)))
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
        key = self.key(service, month, "manifest")
        with staging.staged(files["data"].with_name(key.rpartition("/")[2])) as staged:
            staged.write_text(json.dumps(manifest, indent=2))
            self.put(key, staged, expected.get(key, 0), metadata={"checksum": manifest["checksum"]})
        return manifest

    @contextlib.contextmanager
    def verified_copies(self, manifest: dict, label: str) -> Iterator[tuple[Path, Path]]:
        """Local paths of the month's data and quarantine, refused if they differ from the manifest."""
        copies: list[Path] = []
        try:
            for kind in ("data", "quarantine"):
                entry = manifest["objects"][kind]
                if not self.exists(entry["key"]):
                    raise LakeError(f"{label}: {self.uri(entry['key'])} is missing although its manifest exists.")
                copies.append(self.local_copy(entry))
                if sha256_file(copies[-1]) != entry["sha256"]:
                    raise LakeError(
                        f"{label}: {self.uri(entry['key'])} changed after it was published (its sha256 differs "
                        "from the manifest). Invalidate the month from 'publish' on and rerun to publish it again."
                    )
            yield copies[0], copies[1]
        finally:
            for path in copies:
                self.release(path)

    def gs_uri(self, entry: dict, label: str) -> str | None:
        """The gs:// URI of a manifest's object, for BigQuery to load directly (None: not on GCS)."""
        return None

    @abstractmethod
    def release(self, path: Path) -> None:
        """A local copy from ``local_copy`` is no longer needed."""


@dataclass(frozen=True)
class GCSSettings:
    """What a lake on GCS needs besides its root: plain values, handed over from ``[gcp]`` and ``[gcs]``."""

    project: str = ""  # empty: the Application Default Credentials' project
    location: str = "US"  # the BigQuery dataset's location, which the bucket must suit
    api_endpoint: str = ""  # set: an emulator, used anonymously
    chunk_mb: int = 16
    timeout_seconds: float = 120.0
    retry_seconds: float = 600.0
    loads_into_bigquery: bool = False  # only BigQuery loads from the bucket itself, so only then its location matters
    cache_dir: Path = Path("data/lake-cache")  # where Load's local copies of objects go


def lake_for(root: str, gcs: GCSSettings | None = None) -> Lake:
    """The lake backend for a root: ``gs://bucket/prefix``, or a local directory (``file://`` optional)."""
    if root.startswith("gs://"):
        from taxi_luigi.lake.gcs import GCSLake

        return GCSLake(root, gcs or GCSSettings())
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"lake root {root!r}: use gs://bucket/prefix or a local directory")
    from taxi_luigi.lake.local import LocalLake

    return LocalLake(root.removeprefix("file://"))
