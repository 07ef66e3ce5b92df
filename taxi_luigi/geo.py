"""Taxi zones for the coordinate era: pickup/dropoff zone ids from 2009-2010 longitudes and latitudes.

The TLC's taxi_zones.zip (a shapefile of 263 zones in EPSG:2263, NY State Plane feet) or any file
pyogrio reads, with a LocationID field, is read once per process, reprojected to WGS84 lon/lat and
put in a shapely STRtree; the clean parquet is then rewritten batch by batch (bounded memory) with
the ids of the zones its points fall in. A point in no zone, or with a null coordinate, gets null; a
point on a border shared by two zones gets the smaller id. Chosen by measurement (benchmarks/zones.py):
shapely's STRtree over DuckDB's spatial extension, whose pip package loads only into the DuckDB it was
built for, and which DuckDB cannot download here.

Needs the ``zones`` extra (shapely, pyproj, pyogrio); only months with coordinates and no zone ids use it.
"""

from __future__ import annotations

import functools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_luigi import cleanfile, staging

if TYPE_CHECKING:  # the zones extra: imported where it is used
    import shapely

NOT_CONFIGURED = "not assigned: no [zones] shapes configured"
BATCH_ROWS = 262_144
#: (zone id column, longitude, latitude) of each end of a trip.
ENDS = (
    ("pu_location_id", "pickup_longitude", "pickup_latitude"),
    ("do_location_id", "dropoff_longitude", "dropoff_latitude"),
)
_NONE = np.iinfo(np.int32).max


class ZonesError(Exception):
    """The zone shapes cannot be used: the extra is missing, or the file cannot be read."""


def needs_zones(mapped: dict[str, str]) -> bool:
    """Whether a month's source has coordinates and no zone ids (yellow 2009-2010)."""
    return "pu_location_id" not in mapped and "pickup_longitude" in mapped


@dataclass(frozen=True)
class Zones:
    source: str
    ids: np.ndarray  # int32, one per polygon, in tree order
    tree: shapely.STRtree

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> pa.Array:
        """The zone id of each point (int32), null where it is in no zone or a coordinate is null/NaN."""
        import shapely

        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        ok = np.flatnonzero(~(np.isnan(lon) | np.isnan(lat)))
        best = np.full(len(lon), _NONE, dtype=np.int32)
        if len(ok):
            point, zone = self.tree.query(shapely.points(lon[ok], lat[ok]), predicate="intersects")
            np.minimum.at(best, ok[point], self.ids[zone])
        return pa.array(best, mask=best == _NONE, type=pa.int32())


def _libraries():
    try:
        import pyogrio.raw
        import pyproj
        import shapely
    except ImportError as e:
        raise ZonesError(
            f"[zones] shapes is set but {e.name} is not installed: pip install taxi-luigi[zones] "
            "(or leave [zones] shapes empty to keep the 2009-2010 zone ids null)"
        ) from None
    return pyogrio.raw, pyproj, shapely


def _readable(shapes: str) -> str:
    """What GDAL opens: a path for file://, and the .shp inside a local zip (the TLC's is in a folder)."""
    path = unquote(urlparse(shapes).path) if shapes.startswith("file://") else shapes
    if path.lower().endswith(".zip") and os.path.isfile(path):
        with zipfile.ZipFile(path) as archive:
            inside = sorted(n for n in archive.namelist() if n.lower().endswith(".shp"))
        if inside:
            return f"/vsizip/{path}/{inside[0]}"
    return path


@functools.lru_cache(maxsize=4)
def load(shapes: str) -> Zones:
    """The zones of ``shapes`` (a path, file:// or http(s):// URL; .zip archives too), read once per process."""
    raw, pyproj, shapely = _libraries()
    try:
        meta, _, wkb, fields = raw.read(_readable(shapes))
    except Exception as e:  # pyogrio's DataSourceError and GDAL's many others
        raise ZonesError(f"cannot read the zone shapes {shapes}: {e}") from None
    names = [str(n) for n in meta["fields"]]
    lower = [n.lower() for n in names]
    if "locationid" not in lower:
        raise ZonesError(f"the zone shapes {shapes} have no LocationID field (fields: {', '.join(names)})")
    ids = np.asarray(fields[lower.index("locationid")], dtype=np.int64)
    geoms = shapely.from_wkb(wkb)
    crs = meta.get("crs")
    if not crs:
        raise ZonesError(f"the zone shapes {shapes} name no coordinate reference system")
    source_crs = pyproj.CRS.from_user_input(crs)
    if not source_crs.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True):
        to_lonlat = pyproj.Transformer.from_crs(source_crs, "EPSG:4326", always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    keep = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    geoms, ids = geoms[keep], ids[keep]
    order = np.argsort(ids, kind="stable")
    return Zones(shapes, ids[order].astype(np.int32), shapely.STRtree(geoms[order]))


def assign_file(path: Path, zones: Zones) -> dict[str, int]:
    """Rewrite the clean parquet ``path`` with its zone ids from its coordinates, batch by batch.

    The rows, their order and the schema are unchanged; the new file replaces ``path`` only when whole.
    Returns how many pickups and dropoffs got a zone.
    """
    counts = {"pickups": 0, "dropoffs": 0}
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    with staging.staged(path) as tmp:
        with cleanfile.Writer(tmp, schema) as writer:
            for batch in source.iter_batches(batch_size=BATCH_ROWS):
                columns = dict(zip(batch.schema.names, batch.columns, strict=True))
                for (zone, lon, lat), key in zip(ENDS, counts, strict=True):
                    ids = zones.assign(
                        columns[lon].to_numpy(zero_copy_only=False), columns[lat].to_numpy(zero_copy_only=False)
                    )
                    counts[key] += len(ids) - ids.null_count
                    columns[zone] = ids.cast(schema.field(zone).type)
                writer.write(pa.table([columns[n] for n in schema.names], schema=schema))
        os.replace(tmp, path)
    return counts
