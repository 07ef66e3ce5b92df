"""Download against a real HTTP server on 127.0.0.1: retries, verification, clear errors, nothing partial."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from taxi_luigi import services, source
from taxi_luigi.demo import sample
from taxi_luigi.source import NotPublished, SourceError

YELLOW = services.YELLOW


def _fetch(mirror, name: str, dest: Path, svc: services.Service = YELLOW) -> source.Fetched:
    return source.fetch(f"{mirror.url}/{name}", dest, svc, "yellow 2021-03", retries=2, backoff=0.01, timeout=5)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("fmt", sample.FORMATS)
def test_download_verifies_and_records_the_source(mirror, tmp_path, fmt):
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, fmt, 500)
    dest = tmp_path / "raw" / truth.path.name
    fetched = _fetch(mirror, f"yellow/{truth.path.name}", dest)
    assert dest.read_bytes() == truth.path.read_bytes()
    assert fetched.bytes == truth.path.stat().st_size
    assert fetched.format == (".parquet" if fmt == "tlc" else ".csv.gz")
    assert "tpep_pickup_datetime" in fetched.columns
    assert _leftovers(dest.parent) == [dest.name]


def test_404_names_the_month_and_url_and_what_to_do(mirror, tmp_path):
    dest = tmp_path / "raw" / "x.parquet"
    with pytest.raises(NotPublished) as err:
        _fetch(mirror, "yellow/yellow_tripdata_2021-03.parquet", dest)
    message = str(err.value)
    assert message.startswith("yellow 2021-03:")
    assert "yellow_tripdata_2021-03.parquet" in message and "HTTP 404" in message
    assert "url_template" in message
    assert _leftovers(dest.parent) == []
    assert mirror.requests["/yellow/yellow_tripdata_2021-03.parquet"] == 1  # a 404 is not retried


def test_5xx_is_retried_then_succeeds(mirror, tmp_path):
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, "tlc", 300)
    path = f"/yellow/{truth.path.name}"
    mirror.faults[path] = [(503, b"busy"), (500, b"oops")]
    dest = tmp_path / truth.path.name
    _fetch(mirror, path[1:], dest)
    assert mirror.requests[path] == 3
    assert dest.read_bytes() == truth.path.read_bytes()


def test_a_body_cut_short_is_fetched_again_and_ends_byte_identical(mirror, tmp_path):
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, "tlc", 3000)
    data = truth.path.read_bytes()
    path = f"/yellow/{truth.path.name}"
    mirror.faults[path] = [(200, data[:10_000], len(data))]  # the connection drops after 10 kB
    dest = tmp_path / truth.path.name
    _fetch(mirror, path[1:], dest)
    assert mirror.requests[path] == 2
    assert dest.read_bytes() == data


def test_5xx_forever_gives_up_with_a_clear_error(mirror, tmp_path):
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, "tlc", 300)
    path = f"/yellow/{truth.path.name}"
    mirror.faults[path] = [(503, b"busy")] * 5
    with pytest.raises(SourceError, match=r"yellow 2021-03: download of .* failed after 3 attempts \(HTTP 503"):
        _fetch(mirror, path[1:], tmp_path / "d" / truth.path.name)
    assert mirror.requests[path] == 3
    assert _leftovers(tmp_path / "d") == []


def test_html_page_instead_of_data_is_refused(mirror, tmp_path):
    page = mirror.root / "yellow" / "yellow_tripdata_2021-03.csv.gz"
    page.parent.mkdir(parents=True)
    page.write_bytes(b"<!DOCTYPE html>\n<html><body>Release page</body></html>\n")
    with pytest.raises(SourceError, match="returned an HTML page"):
        _fetch(mirror, "yellow/yellow_tripdata_2021-03.csv.gz", tmp_path / "d" / page.name)
    assert _leftovers(tmp_path / "d") == []


def test_parquet_without_footer_is_refused(mirror, tmp_path):
    truth = sample.write_month(mirror.root, "yellow", 2021, 3, "tlc", 2000)
    data = truth.path.read_bytes()
    truth.path.write_bytes(data[:-100])
    with pytest.raises(SourceError, match="not a whole parquet file"):
        _fetch(mirror, f"yellow/{truth.path.name}", tmp_path / "d" / truth.path.name)


def test_file_of_another_service_is_refused(mirror, tmp_path):
    truth = sample.write_month(mirror.root, "green", 2021, 3, "tlc", 100)
    with pytest.raises(SourceError, match=r"not a yellow file .*looks like a green file"):
        _fetch(mirror, f"green/{truth.path.name}", tmp_path / "d" / "y.parquet")
    fhvhv = sample.write_month(mirror.root, "fhvhv", 2021, 3, "tlc", 100)
    with pytest.raises(SourceError, match="not a fhv file: it looks like a fhvhv file"):
        _fetch(mirror, f"fhvhv/{fhvhv.path.name}", tmp_path / "d" / "f.parquet", services.FHV)


def test_empty_file_is_refused(mirror, tmp_path):
    empty = mirror.root / "yellow" / "yellow_tripdata_2021-03.parquet"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="is empty"):
        _fetch(mirror, "yellow/yellow_tripdata_2021-03.parquet", tmp_path / "d" / empty.name)


def test_local_paths_and_file_urls_work(tmp_path):
    truth = sample.write_month(tmp_path / "m", "fhv", 2020, 1, "dtc", 200)
    for url in (str(truth.path), truth.path.as_uri()):
        dest = tmp_path / "raw" / truth.path.name
        fetched = source.fetch(url, dest, services.FHV, "fhv 2020-01")
        assert fetched.bytes == truth.path.stat().st_size
        with gzip.open(dest, "rt") as f:
            assert f.readline().startswith("dispatching_base_num,pickup_datetime,dropoff_datetime")


def test_format_follows_the_file_name():
    assert source.file_format("https://x/y_2021-01.csv.gz") == ".csv.gz"
    assert source.file_format("/m/y_2021-01.CSV") == ".csv"
    assert source.file_format("file:///m/y.parquet") == ".parquet"
    with pytest.raises(SourceError, match="cannot tell the format"):
        source.file_format("https://x/y_2021-01.json")
