"""The zone dimension's source: the TLC's taxi_zone_lookup.csv, fetched, verified and parsed.

The lookup is small (265 rows), so it is read whole and replaced whole in the warehouse (tables.ZONES),
in one transaction with a ``zones_log`` row carrying the file's sha256: the table is complete when the
latest logged checksum equals the downloaded file's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from taxi_luigi import source, staging

#: The lookup's header, exactly, in the TLC's spelling and order.
HEADER = ("LocationID", "Borough", "Zone", "service_zone")

ZoneRow = tuple[int, str | None, str | None, str | None]


class ZonesError(source.SourceError):
    """The lookup could not be fetched or is not the TLC's zone lookup."""


@dataclass(frozen=True)
class Lookup:
    """What a verified download holds: recorded beside it, and in zones_log when loaded."""

    url: str
    bytes: int
    sha256: str
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def parse(data: bytes, where: str) -> list[ZoneRow]:
    """The rows of a lookup file, or ZonesError naming ``where`` and what to do.

    The header must be exactly HEADER; every LocationID an integer, once. Empty values are NULL;
    "N/A" and "Unknown" are the TLC's own labels and stay as they are.
    """
    fix = "Check [source] zones_url (or the preset): it must name the TLC's taxi_zone_lookup.csv."
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ZonesError(f"zones: {where} is not UTF-8 text ({e.reason} at byte {e.start}). {fix}") from None
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != HEADER:
        raise ZonesError(f"zones: {where} has the header {list(header)}, not {list(HEADER)}. {fix}")
    rows: list[ZoneRow] = []
    seen: set[int] = set()
    for line, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(HEADER) or not values[0].strip().isdigit():
            raise ZonesError(f"zones: {where} line {line} is not LocationID,Borough,Zone,service_zone: {values}. {fix}")
        location = int(values[0])
        if location in seen:
            raise ZonesError(f"zones: {where} line {line} repeats LocationID {location}. {fix}")
        seen.add(location)
        borough, zone, service_zone = (value or None for value in values[1:])
        rows.append((location, borough, zone, service_zone))
    if not rows:
        raise ZonesError(f"zones: {where} has a header but no zones. {fix}")
    return rows


def fetch(url: str, dest: Path, *, retries: int = 4, backoff: float = 2.0, timeout: float = 60.0) -> Lookup:
    """Download ``url`` to ``dest`` atomically: under a temporary name, verified, then renamed."""
    label = "zones"
    with staging.staged(dest) as part:
        try:
            source.download(url, part, label, retries=retries, backoff=backoff, timeout=timeout)
        except source.NotPublished:
            raise ZonesError(
                f"zones: the source has no file at {url}. Check [source] zones_url, or [source] preset."
            ) from None
        data = part.read_bytes()
        rows = parse(data, f"{url} (downloaded to {dest})")
        os.replace(part, dest)
    return Lookup(url, len(data), hashlib.sha256(data).hexdigest(), len(rows))


def read(path: Path, recorded: dict) -> list[ZoneRow]:
    """The rows of a downloaded lookup, provided it is still the file its record vouches for."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded["sha256"]:
        raise ZonesError(
            f"zones: {path} no longer has the sha256 recorded when it was downloaded; remove it and "
            f"{path.name}.source.json, then rerun to fetch it again."
        )
    return parse(data, str(path))


def write_record(path: Path, lookup: Lookup) -> None:
    """The download's record, written atomically: it is ZoneLookup's target."""
    with staging.staged(path) as part:
        part.write_text(json.dumps(lookup.to_dict(), indent=2))
        os.replace(part, path)
