"""Which Cloud Storage buckets BigQuery loads from into a dataset: its location rule, in one pure function.

BigQuery's "Location considerations" for loading from Cloud Storage
(https://cloud.google.com/bigquery/docs/loading-data-cloud-storage): a dataset in the US multi-region
loads from a bucket in any location; a dataset in another multi-region (BigQuery has one more: EU)
from a bucket in that multi-region or in a region inside it; a dataset in a region only from a bucket
in that same region. Applying it before a month's first upload stops Publish with the rule, where
Load would fail after every upload with "Cannot read and write in different locations"; refusing
nothing more keeps the default, a US dataset, open to a bucket in any region.
"""

from __future__ import annotations

#: The europe-* regions outside the EU multi-region: London and Zurich, outside the European Union. Cloud
#: Storage describes its EU multi-region the same way: "not stored in the EUROPE-WEST2 or EUROPE-WEST6 data
#: center" (https://cloud.google.com/storage/docs/locations). Every other europe-* region is in an EU member
#: state. A prefix with these exceptions rather than a list: a region added later is then let through to
#: BigQuery, where a list would refuse it, and refusing what BigQuery accepts would turn a user away.
OUTSIDE_EU = frozenset({"EUROPE-WEST2", "EUROPE-WEST6"})


def _in_eu(region: str) -> bool:
    """Whether a region (any case) is inside the EU multi-region. Only EU's members are needed: a US
    dataset loads from anywhere, and BigQuery has no other multi-region."""
    name = region.upper()
    return name.startswith("EUROPE-") and name not in OUTSIDE_EU


def load_refusal(dataset_location: str, bucket_location: str, bucket_location_type: str) -> str | None:
    """The rule by which BigQuery refuses to load a dataset in ``dataset_location`` from a bucket in
    ``bucket_location``, or None when it loads.

    Case-insensitive: Cloud Storage reports ``US-CENTRAL1``, BigQuery ``us-central1``, a config says
    ``US``. ``bucket_location_type`` is Cloud Storage's ``region``, ``dual-region`` or ``multi-region``:
    the documented rule speaks of regions and multi-regions only, so a dual-region bucket is left to
    BigQuery's load job rather than refused on a guess.
    """
    dataset, bucket = dataset_location.upper(), bucket_location.upper()
    if dataset == "US" or bucket == dataset or bucket_location_type.lower() == "dual-region":
        return None
    if dataset == "EU":
        if _in_eu(bucket):
            return None
        return (
            "a dataset in the EU multi-region loads only from a bucket in EU or in a region inside it "
            "(europe-west1, europe-west4, ...: not europe-west2 or europe-west6, which are outside the EU)"
        )
    return (
        f"a dataset in the region {dataset_location} loads only from a bucket in that same region, "
        "not from one elsewhere nor from a multi-region that contains it"
    )
