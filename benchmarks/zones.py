"""Point-in-polygon for the 2009-2010 coordinates: which library, measured.

    .venv/bin/python benchmarks/zones.py [--points 2000000] [--candidates shapely-strtree,duckdb-spatial]

263 synthetic zones (a grid of squares over New York's bounding box, each edge cut into
segments so a zone has ~250 vertices, about the size of the TLC's taxi_zones.shp), and
points drawn like the trips: most inside, some outside every zone, 2% null. Each candidate
runs in a process of its own, so its peak RSS (ru_maxrss) is its own; rows/s counts the
assignment only (building the index is reported apart).

Candidates:
  shapely-strtree  shapely 2 STRtree.query(points, predicate="intersects"), 256k points a batch
                   (what taxi_luigi/geo.py does)
  duckdb-spatial   the pip package duckdb-extension-spatial, LOADed from its file: ST_Intersects
                   join of a points parquet with the zones (needs the duckdb it was built for)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BBOX = (-74.26, 40.49, -73.70, 40.92)  # lon/lat of the five boroughs
COLS, ROWS, ZONES = 19, 14, 263
BATCH = 262_144


def zones_wkt() -> list[tuple[int, object]]:
    import shapely

    x0, y0, x1, y1 = BBOX
    w, h = (x1 - x0) / COLS, (y1 - y0) / ROWS
    out = []
    for i in range(ZONES):
        c, r = i % COLS, i // COLS
        box = shapely.box(x0 + c * w, y0 + r * h, x0 + (c + 1) * w, y0 + (r + 1) * h)
        out.append((i + 1, shapely.segmentize(box, w / 62)))  # ~250 vertices, like a real zone
    return out


def points(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BBOX
    lon = rng.uniform(x0 - 0.02, x1 + 0.02, n)
    lat = rng.uniform(y0 - 0.02, y1 + 0.02, n)
    lon[rng.random(n) < 0.02] = np.nan
    return lon, lat


def run_shapely(n: int) -> dict:
    import shapely

    started = time.perf_counter()
    ids = np.array([i for i, _ in zones_wkt()], dtype=np.int32)
    tree = shapely.STRtree([g for _, g in zones_wkt()])
    built = time.perf_counter() - started
    lon, lat = points(n)
    started = time.perf_counter()
    zoned = 0
    for s in range(0, n, BATCH):
        x, y = lon[s : s + BATCH], lat[s : s + BATCH]
        ok = ~(np.isnan(x) | np.isnan(y))
        which = np.flatnonzero(ok)
        pt, zone = tree.query(shapely.points(x[ok], y[ok]), predicate="intersects")
        best = np.full(len(x), np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(best, which[pt], ids[zone])
        zoned += int((best != np.iinfo(np.int32).max).sum())
    return {"index_s": round(built, 3), "seconds": time.perf_counter() - started, "zoned": zoned}


def run_duckdb(n: int) -> dict:
    import duckdb
    import duckdb_extension_spatial
    import pyarrow as pa
    import pyarrow.parquet as pq

    ext = next(Path(duckdb_extension_spatial.__file__).parent.rglob("*.duckdb_extension"))
    con = duckdb.connect(config={"memory_limit": "400MB", "allow_unsigned_extensions": True})
    con.load_extension(str(ext))
    with tempfile.TemporaryDirectory() as tmp:
        lon, lat = points(n)
        path = Path(tmp) / "p.parquet"
        pq.write_table(pa.table({"i": np.arange(n), "lon": pa.array(lon, from_pandas=True), "lat": lat}), path)
        started = time.perf_counter()
        con.execute("CREATE TABLE z (id INT, geom GEOMETRY)")
        con.executemany("INSERT INTO z VALUES (?, ST_GeomFromText(?::VARCHAR))", [(i, g.wkt) for i, g in zones_wkt()])
        built = time.perf_counter() - started
        started = time.perf_counter()
        zoned = con.execute(
            f"SELECT count(id) FROM (SELECT p.i, min(z.id) AS id FROM read_parquet('{path}') p "
            "LEFT JOIN z ON ST_Intersects(z.geom, ST_Point(p.lon, p.lat)) GROUP BY p.i)"
        ).fetchone()[0]
    return {"index_s": round(built, 3), "seconds": time.perf_counter() - started, "zoned": zoned}


CANDIDATES = {"shapely-strtree": run_shapely, "duckdb-spatial": run_duckdb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        result = CANDIDATES[args.one](args.points)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return 0
    for name in args.candidates.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name, "--points", str(args.points)], capture_output=True, text=True
        )
        if proc.returncode:
            print(f"{name}: cannot run: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout)
        print(
            f"{name}: {args.points:,} points in {r['seconds']:.2f} s = {args.points / r['seconds']:,.0f} rows/s, "
            f"peak RSS {r['peak_rss_mb']} MB, index {r['index_s']} s, {r['zoned']:,} zoned"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
