"""services.py is the one description of every schema: mapping rules and the docs that come from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_luigi import services

REPO = Path(__file__).resolve().parent.parent


def test_docs_schema_is_generated_from_services():
    assert services.schema_markdown() in (REPO / "docs" / "schema.md").read_text()


def test_columns_map_by_name_ignoring_case_and_unknown_ones_are_kept():
    cmap = services.map_columns(
        services.FHV,
        ["dispatching_base_num", "pickup_datetime", "dropOff_datetime", "PUlocationID", "new_col", "__index_level_0__"],
    )
    assert cmap.mapped == {
        "dispatching_base_num": "dispatching_base_num",
        "pickup_datetime": "pickup_datetime",
        "dropoff_datetime": "dropOff_datetime",
        "pu_location_id": "PUlocationID",
    }
    assert cmap.other == ("new_col",)
    assert cmap.ignored == ("__index_level_0__",)


def test_two_spellings_of_one_column_in_one_file_are_an_error():
    with pytest.raises(ValueError, match="'airport_fee' and 'Airport_fee' both map onto 'airport_fee'"):
        services.map_columns(services.YELLOW, ["tpep_pickup_datetime", "airport_fee", "Airport_fee"])


def test_every_table_has_the_columns_the_pipeline_relies_on():
    for svc in services.SERVICES.values():
        names = svc.arrow_schema().names
        assert names[-2:] == ["other_columns", "source_month"]
        assert {"pickup_datetime", "dropoff_datetime"} <= set(names)
        assert len(names) == len(set(names))
        assert all(c.type in services.TYPES for c in svc.all_columns)


def test_a_file_is_recognised_by_its_columns():
    yellow = ["VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "total_amount"]
    fhvhv = ["hvfhs_license_num", "dispatching_base_num", "pickup_datetime", "dropoff_datetime"]
    assert services.looks_like(yellow) == ["yellow"]
    assert services.looks_like(fhvhv) == ["fhvhv", "fhv"]
    assert services.missing_required(services.GREEN, yellow) == ["lpep_pickup_datetime", "lpep_dropoff_datetime"]


def test_the_2009_and_2010_yellow_layouts_are_recognised_as_yellow():
    for era in (e for e in services.ERAS if e.service == "yellow" and e.first < "2011"):
        names = [name for name, _ in era.source_columns]
        assert services.looks_like(names) == ["yellow"]
        assert services.map_columns(services.YELLOW, names).other == ()  # every column has a home
