"""The quality site in a real headless Chromium (Debian's, driven by its chromedriver through selenium): every page
renders without a console error, the numbers in the rendered DOM are the warehouse's, counted by SQL, and the charts
have a shape for every month.

One real pipeline run makes every case a page can show: months loaded, a gap, a month re-published and reloaded
(re-issued), one re-published and not loaded yet (stale), and a loaded month whose quality report is gone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from conftest import Pipeline
from luigi.execution_summary import LuigiStatusCode
from runs import taxi_luigi

from taxi_luigi import cli, lake, services
from taxi_luigi.demo import sample
from taxi_luigi.demo.server import MirrorServer
from taxi_luigi.tasks import Clean, Download, Publish, QualitySite, TaxiYear

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# As the machine's notes say Chromium needs here: no sandbox as root, and no calls home on a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
YELLOW_MONTHS = (1, 2, 4)  # 2023-03 never loaded: a gap

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Scenario:
    pipeline: Pipeline
    site: Path


def republish(pipeline: Pipeline, service: str, month: dt.date) -> None:
    """What a re-cleaned month goes through: its download, clean files and manifest removed (its load_log rows
    kept), so the next run publishes it again with the source's new content."""
    for task in (Download(service=service, month=month), Clean(service=service, month=month)):
        Path(task.output().path).unlink()
    (pipeline.lake / f"{service}/{month.year}/{lake.month_name(service, month)}.manifest.json").unlink()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("site")
    (tmp / "mirror").mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch, MirrorServer(tmp / "mirror") as mirror:
        pipeline = Pipeline(tmp, monkeypatch)
        pipeline.configure(mirror.template())
        sample.write_mirror(mirror.root, ["yellow"], 2023, YELLOW_MONTHS, "tlc", 600)
        sample.write_mirror(mirror.root, ["green"], 2023, [1, 2], "tlc", 400)
        yellow = TaxiYear(service="yellow", year=2023, months="1,2,4")
        assert (
            pipeline.run(yellow, TaxiYear(service="green", year=2023, months="1-2")).status == LuigiStatusCode.SUCCESS
        )
        feb, apr = dt.date(2023, 2, 1), dt.date(2023, 4, 1)
        sample.write_month(mirror.root, "yellow", 2023, 2, "tlc", 900)  # re-issued, then loaded again
        republish(pipeline, "yellow", feb)
        assert pipeline.run(yellow).status == LuigiStatusCode.SUCCESS
        (pipeline.lake / "green" / "2023" / "green_tripdata_2023-02.quality.json").unlink()
        sample.write_month(mirror.root, "yellow", 2023, 4, "tlc", 1100)  # re-issued and published, not loaded yet
        republish(pipeline, "yellow", apr)
        assert pipeline.run(Publish(service="yellow", month=apr)).status == LuigiStatusCode.SUCCESS
        assert QualitySite().complete()  # current: the load_log has not changed
        assert cli.main(["report"]) == 0  # what a user runs to see the lake's changes now
        yield Scenario(pipeline, pipeline.data / "report")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing = "no /usr/bin/chromium or /usr/bin/chromedriver: scripts/chromium installs Debian's"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}, and under CI scripts/test has run it")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile.name}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # every console message, errors included
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def open_page(browser, path: Path) -> list[dict]:
    """Load a page from its file, as a user opens the site; return what the console said."""
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return browser.get_log("browser")


def cells(browser, selector: str) -> list[str]:
    return [e.text for e in browser.find_elements("css selector", selector)]


def number(text: str) -> int:
    return int(text.replace(",", ""))


def sql(pipeline: Pipeline, query: str) -> list[tuple]:
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        return con.execute(query).fetchall()


def test_every_page_renders_without_a_console_error(scenario, browser):
    pages = sorted(scenario.site.glob("*.html"))
    assert [p.name for p in pages] == ["green.html", "index.html", "yellow.html"]

    said = {page.name: open_page(browser, page) for page in pages}

    assert said == {page.name: [] for page in pages}  # not even a warning
    open_page(browser, scenario.site / "index.html")
    browser.find_element("link text", "yellow").click()  # the index links to each service's page
    assert browser.current_url == (scenario.site / "yellow.html").as_uri()
    assert browser.find_element("css selector", "h1").text == "yellow"


def test_the_index_numbers_are_the_warehouses(scenario, browser):
    open_page(browser, scenario.site / "index.html")
    shown = {
        row.get_attribute("data-service"): {
            key: row.find_element("css selector", f"td.{key}").text
            for key in ("loaded", "rows", "quarantined", "share", "last", "missing-months", "stale-months")
        }
        for row in browser.find_elements("css selector", "#services tbody tr")
    }

    expected = {}
    for name in ("green", "yellow"):
        table = services.service(name).table
        (rows,) = sql(scenario.pipeline, f"SELECT count(*) FROM {table}")[0]
        (quarantined,) = sql(scenario.pipeline, f"SELECT count(*) FROM {table}_quarantine")[0]
        months, last = sql(
            scenario.pipeline,
            f"SELECT count(DISTINCT source_month), max(loaded_at) FROM load_log WHERE service = '{name}'",
        )[0]
        expected[name] = {
            "loaded": str(months),
            "rows": f"{rows:,}",
            "quarantined": f"{quarantined:,}",
            "share": f"{100 * quarantined / (rows + quarantined):.2f}%",
            "last": f"{last:%Y-%m-%d %H:%M:%S}",
            "missing-months": "2023-03" if name == "yellow" else "-",
            "stale-months": "2023-04" if name == "yellow" else "-",
        }
    assert shown == expected
    assert not browser.find_elements("css selector", "#empty")


def test_each_months_numbers_and_state_are_the_warehouses_and_status(scenario, browser):
    status = taxi_luigi("status", "--json", cfg=scenario.pipeline.cfg)
    assert status.returncode == 0, status.stderr
    states = {(r["service"], r["month"]): r["load"] for r in json.loads(status.stdout)}
    notes = {}
    for name in ("green", "yellow"):
        table = services.service(name).table
        rows = dict(sql(scenario.pipeline, f"SELECT strftime(source_month, '%Y-%m'), count(*) FROM {table} GROUP BY 1"))
        by_reason = sql(
            scenario.pipeline,
            f"SELECT strftime(source_month, '%Y-%m'), reason, count(*) FROM {table}_quarantine GROUP BY ALL",
        )
        open_page(browser, scenario.site / f"{name}.html")

        shown = {
            row.get_attribute("data-month"): row for row in browser.find_elements("css selector", "#months tbody tr")
        }

        assert {m: r.find_element("css selector", "td.state").text for m, r in shown.items()} == {
            month: states.get((name, month), "missing")
            for month in shown  # the gap: status lists no trace of it
        }
        assert {m: r.find_element("css selector", "td.rows").text for m, r in shown.items() if m in rows} == {
            m: f"{n:,}" for m, n in rows.items()
        }
        quarantined = {m: 0 for m in rows}
        for month, reason, n in by_reason:
            quarantined[month] += n
            cell = shown[month].find_element("css selector", f'td[data-reason="{reason}"]').text
            unknown = (name, month) in {("green", "2023-02"), ("yellow", "2023-04")}  # no report of the load
            assert cell == "-" if unknown else number(cell) == n
        assert {m: r.find_element("css selector", "td.quarantined").text for m, r in shown.items() if m in rows} == {
            m: f"{n:,}" for m, n in quarantined.items()
        }
        notes[name] = {m: r.find_element("css selector", "td.note").text for m, r in shown.items()}
    assert notes["green"]["2023-02"].startswith("quality report missing: no ")
    assert notes["yellow"]["2023-03"] == "neither published nor loaded"
    assert notes["yellow"]["2023-04"].startswith("stale: the lake's quality report is of a manifest published since")


def test_a_republished_and_reloaded_month_is_listed_with_each_load(scenario, browser):
    open_page(browser, scenario.site / "yellow.html")
    loads = sql(
        scenario.pipeline,
        "SELECT rows, left(checksum, 12) FROM load_log WHERE service = 'yellow' AND source_month = '2023-02-01' "
        "ORDER BY loaded_at",
    )

    listed = browser.find_elements("css selector", '#reissued tr[data-month="2023-02"]')

    assert [(number(r.find_element("css selector", "td.rows").text), r.find_element("css selector", "code").text)
            for r in listed] == loads  # fmt: skip
    assert len(loads) == 2 and loads[0][1] != loads[1][1]
    assert not browser.find_elements("css selector", "#reissued tr:not([data-month='2023-02']) td.rows")


def test_the_charts_have_a_shape_for_every_month(scenario, browser):
    open_page(browser, scenario.site / "index.html")
    strips = {
        name: [e.get_attribute("class") for e in browser.find_elements("css selector", f"#months-{name} rect")]
        for name in ("yellow", "green")
    }
    assert strips == {
        "yellow": ["cell done", "cell done", "cell missing", "cell stale"],
        "green": ["cell done", "cell done"],
    }
    index_bars = [e.get_attribute("class") for e in browser.find_elements("css selector", "#rows-yellow rect")]
    assert index_bars == ["bar done", "bar done", "bar stale"]  # the gap has no bar, only its red cell

    open_page(browser, scenario.site / "yellow.html")
    columns = [c.name for c in services.YELLOW.all_columns if c.name != "source_month"]
    bars = browser.find_elements("css selector", "#rows-chart rect")
    assert [b.get_attribute("class") for b in bars] == ["bar done", "bar done", "bar stale"]  # the gap has none
    assert [number(b.find_element("css selector", "title").get_attribute("textContent").split()[1]) for b in bars] == [
        n for _, n in sql(scenario.pipeline, "SELECT source_month, count(*) FROM yellow_tripdata GROUP BY 1 ORDER BY 1")
    ]
    segments = [s.get_attribute("class") for s in browser.find_elements("css selector", "#quarantine-chart rect")]
    by_rule = sql(  # the done months' rules with rows, in the page's order; stale April's are not known by rule
        scenario.pipeline,
        "SELECT source_month, reason FROM yellow_tripdata_quarantine WHERE source_month < '2023-04-01' GROUP BY ALL",
    )
    order = {reason: i for i, reason in enumerate(services.REASONS)}
    assert segments == [f"q r-{r}" for _, r in sorted(by_rule, key=lambda mr: (mr[0], order[mr[1]]))] + ["q r-unknown"]
    heat = browser.find_elements("css selector", "#nulls-chart rect.cell")
    assert len(heat) == len(columns) * 4  # every column of every month
    assert sum(c.get_attribute("class") == "cell na" for c in heat) == 2 * len(columns)  # the gap's and April's
    rendered = browser.find_element("css selector", "#nulls-chart").size
    assert rendered["width"] > 800 and rendered["height"] > 300  # laid out, not collapsed
