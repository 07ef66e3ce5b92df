"""The lake on Google Cloud Storage, through google-cloud-storage.

Objects are uploaded with a crc32c the server verifies, in chunks (resumable) when
large, and only over the generation seen when the month's publishing began: of two
publishers of one month, the second to write fails instead of mixing objects. The
manifest carries its checksum as object metadata, so a year's completeness is one
listing. Load reads an object at the generation its manifest names.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import google.cloud.storage as storage
from google.api_core import exceptions
from google.cloud.storage.retry import DEFAULT_RETRY

from taxi_luigi import gcp_locations, staging
from taxi_luigi.lake import GCSSettings, Lake, LakeError, month_name

MULTIPART_LIMIT = 8 * 1024 * 1024  # the client uploads larger files in resumable chunks


@functools.cache
def client(project: str, endpoint: str) -> storage.Client:
    """One client per process. With an endpoint (an emulator) anonymous, otherwise Application Default Credentials."""
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=project or "test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )
    return storage.Client(project=project or None)


class GCSLake(Lake):
    """``gs://bucket/prefix``; credentials from the environment (Application Default Credentials)."""

    def __init__(self, root: str, settings: GCSSettings) -> None:
        bucket, _, prefix = root.removeprefix("gs://").partition("/")
        if not bucket:
            raise ValueError(f"lake root {root!r}: use gs://bucket or gs://bucket/prefix")
        self.root, self.prefix, self.settings = root, prefix.strip("/"), settings
        self.client = client(settings.project, settings.api_endpoint)
        self.bucket = self.client.bucket(bucket)
        self.location = settings.location
        # Only BigQuery cares where the bucket is: it loads from it. DuckDB and PostgreSQL load local copies.
        self.loads_into_bigquery = settings.loads_into_bigquery
        self.chunk = settings.chunk_mb * 1024 * 1024
        self.timeout = settings.timeout_seconds
        self.retry = DEFAULT_RETRY.with_timeout(settings.retry_seconds)
        self.cache = settings.cache_dir
        self._checked = False

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name.removeprefix(f"{self.prefix}/") if self.prefix else name

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{self._name(key)}"

    def exists(self, key: str) -> bool:
        return self.bucket.blob(self._name(key)).exists(timeout=self.timeout, retry=self.retry)

    def read_text(self, key: str) -> str:
        return self.bucket.blob(self._name(key)).download_as_text(timeout=self.timeout, retry=self.retry)

    def _listing(self, prefix: str) -> list[storage.Blob]:
        return list(
            self.client.list_blobs(self.bucket, prefix=self._name(prefix), timeout=self.timeout, retry=self.retry)
        )

    def versions(self, service: str, month: dt.date) -> dict[str, int]:
        blobs = self._listing(f"{service}/{month.year}/{month_name(service, month)}.")
        return {self._key(b.name): b.generation for b in blobs}

    def manifest_checksums(self, service: str, months: list[dt.date]) -> dict[dt.date, str]:
        """One listing per year: the checksums ride on the manifests' metadata."""
        wanted = {self.key(service, m, "manifest"): m for m in months}
        found = {}
        for year in sorted({m.year for m in months}):
            for blob in self._listing(f"{service}/{year}/"):
                month = wanted.get(self._key(blob.name))
                if month is not None and (blob.metadata or {}).get("checksum"):
                    found[month] = blob.metadata["checksum"]
        return found

    def published_months(self, service: str) -> dict[dt.date, str]:
        """One listing of the service's objects: the checksums ride on the manifests' metadata."""
        found = {}
        for blob in self._listing(f"{service}/"):
            key = self._key(blob.name)
            month = self.manifest_month(service, key)
            if month is not None:
                # A manifest put without metadata (not by publish_month) is read instead.
                checksum = (blob.metadata or {}).get("checksum") or json.loads(self.read_text(key))["checksum"]
                found[month] = checksum
        return dict(sorted(found.items()))

    def delete(self, key: str) -> bool:
        try:
            # A retry after a lost answer finds the object gone: NotFound, reported as "was not there".
            self.bucket.blob(self._name(key)).delete(timeout=self.timeout, retry=self.retry)
        except exceptions.NotFound:
            return False
        except exceptions.Forbidden as e:
            raise LakeError(
                f"cannot delete {self.uri(key)}: {e.message}. The account needs roles/storage.objectAdmin "
                "on the bucket (see docs/gcp.md)."
            ) from None
        return True

    def put(self, key: str, path: Path, expect: int | None = None, metadata: dict | None = None) -> dict:
        self._check_bucket()
        size = path.stat().st_size
        blob = self.bucket.blob(self._name(key), chunk_size=self.chunk if size > MULTIPART_LIMIT else None)
        blob.metadata = metadata
        try:
            # Always conditional, so every retry is safe: an upload can only replace what was there at the start.
            blob.upload_from_filename(
                str(path), checksum="crc32c", if_generation_match=expect, timeout=self.timeout, retry=self.retry
            )
        except exceptions.PreconditionFailed:
            raise LakeError(
                f"{self.uri(key)} changed while this month was being published (another publisher of the same "
                "month?). Nothing of this run was vouched for by a manifest; rerun when the other one has finished."
            ) from None
        except exceptions.Forbidden as e:
            raise LakeError(
                f"cannot write {self.uri(key)}: {e.message}. The account needs roles/storage.objectAdmin "
                "on the bucket (see docs/gcp.md)."
            ) from None
        return {"generation": blob.generation, "crc32c": blob.crc32c}

    def _check_bucket(self) -> None:
        """Once, before this lake's first upload: the bucket exists and, when the warehouse is BigQuery, is
        one BigQuery loads from into a dataset in ``[gcp] location``, so a month it would refuse stops here,
        with the rule, rather than at its Load after every upload ("Cannot read and write in different
        locations")."""
        if self._checked:
            return
        try:
            bucket = self.client.get_bucket(self.bucket.name, timeout=self.timeout, retry=self.retry)
        except exceptions.NotFound:
            raise LakeError(
                f"the bucket gs://{self.bucket.name} does not exist: create it in {self.location} "
                f"(gcloud storage buckets create gs://{self.bucket.name} --location={self.location})."
            ) from None
        if self.loads_into_bigquery and (
            rule := gcp_locations.load_refusal(self.location, bucket.location or "", bucket.location_type or "")
        ):
            raise LakeError(
                f"the bucket gs://{self.bucket.name} is in {bucket.location} and the BigQuery dataset's location "
                f"is {self.location} ([gcp] location): BigQuery would refuse to load it, since {rule}. Put the lake "
                f"in a bucket in {self.location}, or set [gcp] location to US, whose datasets load from a bucket in "
                "any location (for a dataset not created yet: an existing one keeps its location). Nothing was "
                "uploaded."
            )
        self._checked = True

    def local_copy(self, entry: dict) -> Path:
        """Download the object at the generation the manifest names into the lake cache."""
        dest = self.cache / entry["key"]
        blob = self.bucket.blob(self._name(entry["key"]), generation=entry.get("generation"))
        with staging.staged(dest) as part:
            try:
                blob.download_to_filename(str(part), checksum="crc32c", timeout=self.timeout, retry=self.retry)
            except exceptions.NotFound:
                raise LakeError(
                    f"{self.uri(entry['key'])} generation {entry.get('generation')} is gone although its manifest "
                    "names it (overwritten?). Invalidate the month from 'publish' on and rerun to publish it again."
                ) from None
            part.replace(dest)
        return dest

    def staging_dirs(self, service: str, month: dt.date) -> list[Path]:
        return [self.cache / service / str(month.year)]

    def gs_uri(self, entry: dict, label: str) -> str:
        """The object's URI, once its live generation is checked to be the one the manifest names.

        A load job reads the live object and cannot ask for a generation, so this is checked
        before and after the job.
        """
        blob = self.bucket.get_blob(self._name(entry["key"]), timeout=self.timeout, retry=self.retry)
        if blob is None or blob.generation != entry.get("generation"):
            raise LakeError(
                f"{label}: {self.uri(entry['key'])} is not the generation its manifest names (changed after it was "
                "published). Invalidate the month from 'publish' on and rerun to publish it again."
            )
        return self.uri(entry["key"])

    def release(self, path: Path) -> None:
        path.unlink(missing_ok=True)
