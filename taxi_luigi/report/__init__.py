"""The quality site: a static index and a page per service with inline SVG charts, from a lake and a warehouse.

Plain Python with plain arguments, like the lake and the warehouse themselves: the Luigi task
(``tasks.QualitySite``) and ``taxi-luigi report`` read the configuration and hand them over.
Every page is written under a temporary name and renamed into place; ``site.json`` goes last,
with the fingerprint of the load_log rows the site was built from, so that ``is_current`` can
tell a site that reflects the warehouse as it is now from one that does not.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from taxi_luigi import staging
from taxi_luigi.lake import Lake
from taxi_luigi.report.gather import fingerprint, gather, read_inputs
from taxi_luigi.report.pages import index, service_page
from taxi_luigi.warehouse import Warehouse

SITE_MANIFEST = "site.json"
INDEX = "index.html"


@dataclass(frozen=True)
class Built:
    """What ``build`` wrote: the pages with their sizes in bytes, and the services shown."""

    out: Path
    pages: dict[str, int]
    services: list[str]


def build(lake: Lake, warehouse: Warehouse, out: Path, names: list[str] | None = None) -> Built:
    """Write the site for ``names`` (default: every service with a load or a manifest) into ``out``.

    A service the warehouse and the lake have never seen is a ValueError, before anything is written.
    """
    inputs = read_inputs(lake, warehouse, names)
    reports = gather(inputs, lake)
    built_at = dt.datetime.now(dt.timezone.utc)
    where = repr(warehouse)  # a PostgreSQL URL with its password masked
    pages = {INDEX: index(reports, built_at, where, lake.root)}
    pages |= {f"{r.service.name}.html": service_page(r, built_at, where, lake.root) for r in reports}
    previous = _manifest(out) or {}
    for name, text in pages.items():
        _write(out / name, text)
    for gone in set(previous.get("pages", {})) - set(pages):  # a service no longer shown: no stale page of it
        (out / gone).unlink(missing_ok=True)
    sizes = {name: len(text.encode()) for name, text in pages.items()}
    manifest = {
        "fingerprint": inputs.fingerprint(),
        "services": list(inputs.history),
        "built_at": built_at.isoformat(timespec="seconds"),
        "warehouse": where,
        "lake": lake.root,
        "pages": sizes,
    }
    _write(out / SITE_MANIFEST, json.dumps(manifest, indent=2))
    return Built(out, sizes, list(inputs.history))


def is_current(warehouse: Warehouse, out: Path) -> bool:
    """Whether the whole site in ``out`` was built from the loads there are now: one load_log query, nothing
    read from the lake (``gather.fingerprint`` says why)."""
    manifest = _manifest(out)
    if manifest is None or not all((out / name).is_file() for name in manifest.get("pages", {})):
        return False
    return manifest.get("fingerprint") == fingerprint(warehouse.load_history())


def _manifest(out: Path) -> dict | None:
    path = out / SITE_MANIFEST
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # never built, or damaged by hand: the next build replaces it
        return None


def _write(path: Path, text: str) -> None:
    with staging.staged(path) as staged:
        staged.write_text(text)
        os.replace(staged, path)
