"""BigQuery's rule for which bucket a dataset loads from, case by case (the pure function; the emulator tests in
test_warehouse_bigquery.py and test_lake_gcs.py drive it through Publish)."""

from __future__ import annotations

import pytest

from taxi_luigi.gcp_locations import load_refusal

LOADS = [
    # A US dataset loads from a bucket in any location.
    ("US", "US", "multi-region"),
    ("US", "US-CENTRAL1", "region"),
    ("US", "EU", "multi-region"),
    ("US", "EUROPE-WEST1", "region"),
    ("US", "ASIA-NORTHEAST1", "region"),
    ("US", "NAM4", "dual-region"),
    ("us", "us-central1", "region"),  # any case: BigQuery says us-central1, Cloud Storage US-CENTRAL1
    # An EU dataset: from EU, or from a region inside it.
    ("EU", "EU", "multi-region"),
    ("EU", "EUROPE-WEST1", "region"),
    ("EU", "europe-west4", "region"),
    ("eu", "EUROPE-NORTH1", "region"),
    ("EU", "EUROPE-WEST10", "region"),
    # A regional dataset: from its own region.
    ("europe-west1", "EUROPE-WEST1", "region"),
    ("us-central1", "US-CENTRAL1", "region"),
    ("asia-northeast1", "ASIA-NORTHEAST1", "region"),
    # Dual-regions: the documented rule does not speak of them, so BigQuery's load job decides.
    ("EU", "EUR4", "dual-region"),
    ("europe-west4", "EUR4", "dual-region"),
    ("us-central1", "US", "dual-region"),  # a configurable dual-region reports its multi-region's name
]

REFUSED = [
    # EU: not from a bucket outside the EU.
    ("EU", "US-CENTRAL1", "region", "EU multi-region"),
    ("EU", "US", "multi-region", "EU multi-region"),
    ("EU", "EUROPE-WEST2", "region", "EU multi-region"),  # London
    ("EU", "EUROPE-WEST6", "region", "EU multi-region"),  # Zurich
    ("EU", "NORTHAMERICA-NORTHEAST1", "region", "EU multi-region"),
    ("EU", "ASIA", "multi-region", "EU multi-region"),
    # A regional dataset: not from another region, nor from the multi-region that contains it.
    ("europe-west1", "EU", "multi-region", "region europe-west1"),
    ("europe-west1", "EUROPE-WEST4", "region", "region europe-west1"),
    ("us-central1", "US", "multi-region", "region us-central1"),
    ("us-central1", "US-EAST1", "region", "region us-central1"),
    ("asia-northeast1", "ASIA", "multi-region", "region asia-northeast1"),  # the documentation's own example
    ("northamerica-northeast1", "US", "multi-region", "region northamerica-northeast1"),  # Montreal is not in US
    ("southamerica-east1", "US-CENTRAL1", "region", "region southamerica-east1"),
]


@pytest.mark.parametrize(("dataset", "bucket", "kind"), LOADS)
def test_these_buckets_load(dataset, bucket, kind):
    assert load_refusal(dataset, bucket, kind) is None


@pytest.mark.parametrize(("dataset", "bucket", "kind", "names"), REFUSED)
def test_these_buckets_are_refused_with_the_rule_that_refuses_them(dataset, bucket, kind, names):
    rule = load_refusal(dataset, bucket, kind)
    assert rule is not None and f"a dataset in the {names} loads only from a bucket in " in rule


def test_the_rules_say_what_a_bucket_must_be():
    assert load_refusal("EU", "US-CENTRAL1", "region") == (
        "a dataset in the EU multi-region loads only from a bucket in EU or in a region inside it "
        "(europe-west1, europe-west4, ...: not europe-west2 or europe-west6, which are outside the EU)"
    )
    assert load_refusal("europe-west1", "EU", "multi-region") == (
        "a dataset in the region europe-west1 loads only from a bucket in that same region, "
        "not from one elsewhere nor from a multi-region that contains it"
    )
