"""Zone ids from 2009-2010 coordinates by point-in-polygon, on small synthetic shapes written as real files."""

from __future__ import annotations

import datetime as dt
import json
import sys
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode

from taxi_luigi import clean, geo, services
from taxi_luigi.demo import sample
from taxi_luigi.tasks import TaxiYear

shapely = pytest.importorskip("shapely", reason="the zones extra is not installed: pip install taxi-luigi[zones]")
pyproj = pytest.importorskip("pyproj", reason="the zones extra is not installed: pip install taxi-luigi[zones]")
raw = pytest.importorskip("pyogrio.raw", reason="the zones extra is not installed: pip install taxi-luigi[zones]")

# Two squares sharing a border and a triangle, in lon/lat.
SHAPES = {
    10: shapely.box(0, 0, 1, 1),
    20: shapely.box(1, 0, 2, 1),
    7: shapely.Polygon([(0, 2), (2, 2), (1, 3)]),
}
# Four squares over the sample's coordinates (centred on -73.98, 40.75), and a hole in the middle of none.
NYC = {
    101: shapely.box(-74.05, 40.70, -73.98, 40.75),
    102: shapely.box(-73.98, 40.70, -73.90, 40.75),
    103: shapely.box(-74.05, 40.75, -73.98, 40.80),
    104: shapely.box(-73.98, 40.75, -73.90, 40.80),
}


def write_shapes(path: Path, shapes: dict[int, object], crs: str = "EPSG:4326") -> Path:
    ids = np.array(list(shapes), dtype=np.int32)
    geoms = np.array(list(shapes.values()), dtype=object)
    if crs != "EPSG:4326":
        geoms = shapely.segmentize(geoms, 0.001)  # so the sides stay where they were once reprojected back
        to_crs = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))
    driver = "GPKG" if path.suffix == ".gpkg" else "ESRI Shapefile"
    raw.write(str(path), shapely.to_wkb(geoms), [ids], ["LocationID"], geometry_type="Polygon", crs=crs, driver=driver)
    return path


def ids(zones: geo.Zones, points: list[tuple[float, float]]) -> list[int | None]:
    lon, lat = np.array(points, dtype=float).reshape(-1, 2).T
    return zones.assign(lon, lat).to_pylist()


@pytest.mark.parametrize("name", ["zones.shp", "zones.gpkg"])
def test_points_get_the_zone_they_are_in_and_null_otherwise(tmp_path, name):
    zones = geo.load(str(write_shapes(tmp_path / name, SHAPES)))
    points = [(0.5, 0.5), (1.5, 0.5), (1.0, 0.5), (1.0, 2.5), (5.0, 5.0), (1.0, 1.5), (np.nan, 0.5), (0.5, np.nan)]
    # (1.0, 0.5) lies on the border of 10 and 20: the smaller id.
    assert ids(zones, points) == [10, 20, 10, 7, None, None, None, None]
    assert ids(zones, []) == []
    assert ids(zones, [(np.nan, np.nan)]) == [None]


def test_projected_shapes_in_a_zip_are_reprojected_to_lon_lat(tmp_path):
    """Like the TLC's taxi_zones.zip: a shapefile in NY State Plane feet, zipped."""
    write_shapes(tmp_path / "taxi_zones.shp", NYC, crs="EPSG:2263")
    archive = tmp_path / "taxi_zones.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("taxi_zones.*"):
            if part != archive:
                z.write(part, f"taxi_zones/{part.name}")
    for shapes in (str(archive), archive.as_uri()):
        zones = geo.load(shapes)
        points = [(-74.0, 40.72), (-73.95, 40.72), (-74.0, 40.78), (-73.93, 40.79), (-73.5, 40.7), (-74.2, 40.75)]
        assert ids(zones, points) == [101, 102, 103, 104, None, None]


def test_bad_shapes_and_a_missing_extra_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(geo.ZonesError, match="cannot read the zone shapes"):
        geo.load(str(tmp_path / "nothing.shp"))
    path = tmp_path / "noid.gpkg"
    raw.write(
        str(path), shapely.to_wkb([SHAPES[10]]), [np.array([1])], ["zone"], geometry_type="Polygon", crs="EPSG:4326"
    )
    with pytest.raises(geo.ZonesError, match="no LocationID field"):
        geo.load(str(path))
    monkeypatch.setitem(sys.modules, "shapely", None)
    with pytest.raises(geo.ZonesError, match=r"pip install taxi-luigi\[zones\]"):
        geo.load(str(tmp_path / "other.shp"))


def expected(table, lon: str, lat: str) -> list[int | None]:
    """The zone of each row by plain comparisons with the squares' corners; on a shared side, the smaller id."""
    out = []
    for x, y in zip(table[lon].to_pylist(), table[lat].to_pylist(), strict=True):
        hit = [] if x is None or y is None else [i for i, g in NYC.items() if inside(g.bounds, x, y)]
        out.append(min(hit) if hit else None)
    return out


def inside(bounds: tuple[float, float, float, float], x: float, y: float) -> bool:
    x0, y0, x1, y1 = bounds
    return x0 <= x <= x1 and y0 <= y <= y1


@pytest.mark.parametrize("year", [2009, 2010])
def test_clean_assigns_zones_to_a_coordinate_month_and_counts_them(tmp_path, year):
    truth = sample.write_month(tmp_path / "m", "yellow", year, 1, "tlc", 3000)
    shapes = str(write_shapes(tmp_path / "zones.gpkg", NYC))
    reports = {}
    for case, configured in (("without", ""), ("with", shapes)):
        out = clean.Outputs(tmp_path / case / "c.parquet", tmp_path / case / "q.parquet")
        reports[case] = clean.clean_month(
            truth.path,
            ".parquet",
            services.service("yellow"),
            dt.date(year, 1, 1),
            out,
            label="t",
            zones_shapes=configured,
        )
        reports[case]["table"] = pq.read_table(out.data)
    without, with_ = reports["without"], reports["with"]
    assert without["zones"] == geo.NOT_CONFIGURED and without["zones_assigned"] == {"pickups": 0, "dropoffs": 0}
    assert without["table"]["pu_location_id"].null_count == without["table"].num_rows
    table = with_["table"]
    assert with_["rows_clean"] == without["rows_clean"] == truth.clean == table.num_rows  # nothing dropped
    assert table.schema.remove_metadata().equals(services.service("yellow").arrow_schema())
    assert table.drop(["pu_location_id", "do_location_id"]).equals(
        without["table"].drop(["pu_location_id", "do_location_id"])
    )
    pu = expected(table, "pickup_longitude", "pickup_latitude")
    do = expected(table, "dropoff_longitude", "dropoff_latitude")
    assert table["pu_location_id"].to_pylist() == pu and table["do_location_id"].to_pylist() == do
    assert with_["zones"] == f"assigned from {shapes}"
    assigned = {"pickups": sum(i is not None for i in pu), "dropoffs": sum(i is not None for i in do)}
    assert with_["zones_assigned"] == assigned
    assert 0.3 * truth.clean < assigned["pickups"] < truth.clean  # some in a zone, some in none
    assert with_["null_counts"]["pu_location_id"] == truth.clean - assigned["pickups"]


def test_months_with_zone_ids_pay_nothing(tmp_path):
    truth = sample.write_month(tmp_path / "m", "yellow", 2023, 1, "tlc", 500)
    out = clean.Outputs(tmp_path / "c.parquet", tmp_path / "q.parquet")
    report = clean.clean_month(
        truth.path,
        ".parquet",
        services.service("yellow"),
        dt.date(2023, 1, 1),
        out,
        label="t",
        zones_shapes=str(tmp_path / "never-read.shp"),
    )
    assert "zones" not in report and report["rows_clean"] == truth.clean


@pytest.mark.slow
def test_a_2009_month_through_the_pipeline_gets_zones(mirror, pipeline, tmp_path):
    truth = sample.write_month(mirror.root, "yellow", 2009, 1, "tlc", 1500)
    shapes = str(write_shapes(tmp_path / "zones.gpkg", NYC))
    pipeline.configure(mirror.template(), zones={"shapes": shapes})

    result = pipeline.run(TaxiYear(service="yellow", year=2009, months="1"))

    assert result.status == LuigiStatusCode.SUCCESS
    assert pipeline.counts("yellow_tripdata") == {"2009-01": truth.clean}
    (quality,) = (Path(pipeline.data) / "clean").rglob("*.quality.json")
    report = json.loads(quality.read_text())
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        pu, do, zoned = con.execute(
            "SELECT count(pu_location_id), count(do_location_id), count(*) FILTER (WHERE pu_location_id NOT IN "
            "(101, 102, 103, 104)) FROM yellow_tripdata"
        ).fetchone()
    assert report["zones"] == f"assigned from {shapes}"
    assert report["zones_assigned"] == {"pickups": pu, "dropoffs": do} and pu > 0 and do > 0 and zoned == 0
