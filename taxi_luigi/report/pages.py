"""The quality site's pages as HTML strings: an index of the services and a page per service.

Every number is printed in a table cell with a class (``rows``, ``quarantined``, ...) and every
month row carries ``data-month``, so a reader, a script or a test finds them; the charts repeat
the tables' numbers as shapes. Nothing is fetched: the CSS is inline and there is no script.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from taxi_luigi.months import following
from taxi_luigi.report import svg
from taxi_luigi.report.gather import DONE, MISSING, STALE, Month, ServiceReport
from taxi_luigi.services import REASONS

#: Null shares in bands (upper bounds), each a colour class: an era without a column is a dark row at a glance.
NULL_BANDS = ((0.0, "n0", "none"), (0.01, "n1", "up to 1%"), (0.1, "n2", "up to 10%"), (0.5, "n3", "up to 50%"))
NULL_ALMOST, NULL_ALL = ("n4", "over 50%"), ("n5", "all (100%)")
NO_REPORT = ("na", "no quality report")
UNKNOWN_RULE = "r-unknown"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;
padding:0 16px;color:#1a202c}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta,.note{color:#4a5568}.empty{padding:12px 16px;background:#fffbea;border:1px solid #f6e05e}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #e2e8f0;text-align:left;vertical-align:top;white-space:nowrap}
th{font-weight:600;background:#f7fafc}td.num,th.num{text-align:right}
.wide{overflow-x:auto}.small{font-size:12px}
svg.chart{width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#4a5568}svg text.y{text-anchor:end}svg text.x{text-anchor:middle}
svg line.grid{stroke:#e2e8f0}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:11px;height:11px;
margin-right:4px;vertical-align:-1px}
.done{fill:#2b6cb0;background:#2b6cb0}.stale{fill:#d69e2e;background:#d69e2e}
.missing{fill:#c53030;background:#c53030}
td.done,td.stale,td.missing{background:none;font-weight:600}td.done{color:#2b6cb0}td.stale{color:#b7791f}
td.missing{color:#c53030}
.r-malformed_row{fill:#e69f00;background:#e69f00}.r-passenger_count_zero{fill:#56b4e9;background:#56b4e9}
.r-missing_pickup{fill:#009e73;background:#009e73}.r-dropoff_before_pickup{fill:#cc79a7;background:#cc79a7}
.r-pickup_outside_month{fill:#0072b2;background:#0072b2}.r-unknown{fill:#a0aec0;background:#a0aec0}
.n0{fill:#f1f3f5;background:#f1f3f5}.n1{fill:#fde4c8;background:#fde4c8}.n2{fill:#fdb57a;background:#fdb57a}
.n3{fill:#f2803a;background:#f2803a}.n4{fill:#c4501b;background:#c4501b}.n5{fill:#6b2a0c;background:#6b2a0c}
.na{fill:#fff;stroke:#cbd5e0;stroke-dasharray:2 2;background:#fff;outline:1px dashed #cbd5e0}
rect.cell{stroke:#fff;stroke-width:.5}
"""


def page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def percent(share: float) -> str:
    return f"{100 * share:.2f}%"


def moment(at: dt.datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S}"


def spans(months: Sequence[dt.date]) -> str:
    """Months as runs: ``2023-01..2023-03, 2023-07`` (none: ``-``)."""
    runs: list[list[dt.date]] = []
    for month in sorted(months):
        if runs and following(runs[-1][-1]) == month:
            runs[-1].append(month)
        else:
            runs.append([month])
    return ", ".join(f"{r[0]:%Y-%m}" + (f"..{r[-1]:%Y-%m}" if len(r) > 1 else "") for r in runs) or "-"


def _meta(built_at: dt.datetime, warehouse: str, lake: str) -> str:
    return (
        f'<p class="meta">Built {moment(built_at)} UTC from the warehouse <code>{escape(warehouse)}</code> '
        f"(load_log) and the lake <code>{escape(lake)}</code> (manifests and quality reports).</p>"
    )


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<p class="legend small">' + "".join(f'<span><i class="{c}"></i>{escape(t)}</span>' for c, t in items) + "</p>"
    )


def _labels(months: Sequence[dt.date]) -> list[str]:
    """An x label per month when there are few; else the year under each January."""
    if len(months) <= 18:
        return [f"{m:%Y-%m}" for m in months]
    return [str(m.year) if m.month == 1 else "" for m in months]


_STATES = ((DONE, "loaded from the published manifest"), (STALE, "stale: loaded from an older manifest"))


def index(reports: Sequence[ServiceReport], built_at: dt.datetime, warehouse: str, lake: str) -> str:
    """One row per service (months loaded, rows, share quarantined, last load, months missing or stale), and a
    strip per service with a cell per month."""
    body = ["<h1>taxi-luigi: data quality</h1>", _meta(built_at, warehouse, lake)]
    if not any(r.loaded for r in reports):
        body.append(
            '<p class="empty" id="empty">Nothing is loaded yet: the warehouse has no load_log row. '
            "Load some months (<code>luigi --module taxi_luigi YellowYear --year 2023</code>) and this page fills "
            "in.</p>"
        )
    if reports:
        body.append('<div class="wide"><table id="services"><thead><tr><th>service</th>')
        body.append(
            '<th class="num">months loaded</th><th class="num">rows</th><th class="num">quarantined</th>'
            '<th class="num">share quarantined</th><th>last load (UTC)</th><th>missing</th><th>stale</th></tr>'
            "</thead><tbody>"
        )
        for r in reports:
            name = escape(r.service.name)
            body.append(
                f'<tr data-service="{name}"><td class="service"><a href="{name}.html">{name}</a></td>'
                f'<td class="num loaded">{len(r.loaded):,}</td><td class="num rows">{count(r.rows)}</td>'
                f'<td class="num quarantined">{count(r.quarantined)}</td>'
                f'<td class="num share">{percent(r.quarantined_share)}</td>'
                f'<td class="last">{moment(r.last_load)}</td><td class="missing-months">{spans(r.in_state(MISSING))}'
                f'</td><td class="stale-months">{spans(r.in_state(STALE))}</td></tr>'
            )
        body.append("</tbody></table></div><h2>Rows loaded per month</h2>")
        body.append(_legend([*((f"bar {state}", text) for state, text in _STATES), (MISSING, "missing")]))
        for r in reports:
            name, first, last = r.service.name, r.months[0].month, r.months[-1].month
            cells = [svg.Segment(1, m.state, f"{name} {m.month:%Y-%m}: {m.state}") for m in r.months]
            body.append(f'<p><a href="{escape(name)}.html">{escape(name)}</a> ')
            body.append(f'<span class="small meta">{first:%Y-%m} .. {last:%Y-%m}</span></p>')
            labels = _labels([m.month for m in r.months])
            body.append(
                svg.stacked_bars(f"rows-{name}", f"{name}: rows loaded per month", _row_bars(r.months, labels), 110)
            )
            body.append(svg.strip(f"months-{name}", f"{name}: the state of each month", cells, height=8))
    return page("taxi-luigi: data quality", body)


def service_page(report: ServiceReport, built_at: dt.datetime, warehouse: str, lake: str) -> str:
    """The month-by-month page of one service: charts first, then the tables they are drawn from."""
    name = report.service.name
    months = report.months
    labels = _labels([m.month for m in months])
    missing, stale = report.in_state(MISSING), report.in_state(STALE)
    body = [
        '<p class="small"><a href="index.html">all services</a></p>',
        f"<h1>{escape(name)}</h1>",
        _meta(built_at, warehouse, lake),
        f'<p id="summary">{len(months)} months from {months[0].month:%Y-%m} to {months[-1].month:%Y-%m}: '
        f"{len(report.loaded):,} loaded ({len(stale)} stale), {len(missing)} missing; {count(report.rows)} rows, "
        f"{count(report.quarantined)} quarantined ({percent(report.quarantined_share)}).</p>",
        "<h2>Rows loaded</h2>",
        svg.stacked_bars("rows-chart", f"{name}: rows loaded per month", _row_bars(months, labels)),
        _legend((f"bar {state}", text) for state, text in _STATES),
        "<h2>Rows quarantined, by rule</h2>",
        svg.stacked_bars("quarantine-chart", f"{name}: rows quarantined per month", _quarantine_bars(months, labels)),
        _legend([*((f"r-{reason}", reason) for reason in REASONS), (UNKNOWN_RULE, "rule unknown: no quality report")]),
        "<h2>Nulls per column</h2>",
        "<p class=\"note small\">The share of each canonical column's values that are null among the month's "
        "clean rows. A column the source did not have yet is null throughout: eras show as dark rows.</p>",
        svg.heatmap(
            "nulls-chart", f"{name}: share of nulls per column and month", _columns(report), _cells(report, labels)
        ),
        _legend([(css, text) for _, css, text in NULL_BANDS] + [NULL_ALMOST, NULL_ALL, NO_REPORT]),
        "<h2>Source columns not mapped (schema drift)</h2>",
        _drift(months),
        "<h2>Re-issued months</h2>",
        _reissued(months),
        "<h2>Month by month</h2>",
        _month_table(months),
    ]
    return page(f"taxi-luigi: {name}", body)


def _row_bars(months: Sequence[Month], labels: Sequence[str]) -> list[svg.Column]:
    bars = []
    for m, label in zip(months, labels, strict=True):
        latest = m.latest
        segments: tuple[svg.Segment, ...] = ()
        if latest is not None:
            title = f"{m.month:%Y-%m}: {latest.rows:,} rows loaded ({m.state})"
            segments = (svg.Segment(latest.rows, f"bar {m.state}", title),)
        bars.append(svg.Column(segments, label))
    return bars


def _quarantine_bars(months: Sequence[Month], labels: Sequence[str]) -> list[svg.Column]:
    """Each loaded month's quarantined rows by rule (from its quality report; without one: the load's total)."""
    bars = []
    for m, label in zip(months, labels, strict=True):
        segments: tuple[svg.Segment, ...] = ()
        if m.latest is not None and m.quality is not None:
            by_reason = m.quality["quarantine_by_reason"]
            segments = tuple(
                svg.Segment(
                    by_reason.get(reason, 0), f"q r-{reason}", f"{m.month:%Y-%m}: {by_reason[reason]:,} {reason}"
                )
                for reason in REASONS
                if by_reason.get(reason)
            )
        elif m.latest is not None:
            title = f"{m.month:%Y-%m}: {m.latest.quarantined:,} quarantined, rule unknown ({m.problem})"
            segments = (svg.Segment(m.latest.quarantined, f"q {UNKNOWN_RULE}", title),)
        bars.append(svg.Column(segments, label))
    return bars


def _columns(report: ServiceReport) -> list[str]:
    """The canonical columns whose nulls a quality report counts: all but source_month."""
    return [c.name for c in report.service.all_columns if c.name != "source_month"]


def null_band(share: float) -> tuple[str, str]:
    """The colour class and legend text of a null share."""
    for bound, css, text in NULL_BANDS:
        if share <= bound:
            return css, text
    return NULL_ALL if share >= 1 else NULL_ALMOST


def _cells(report: ServiceReport, labels: Sequence[str]) -> list[svg.Column]:
    names = _columns(report)
    columns = []
    for m, label in zip(report.months, labels, strict=True):
        cells = []
        nulls = (m.quality or {}).get("null_counts", {})
        clean = (m.quality or {}).get("rows_clean", 0)
        for name in names:
            if name in nulls and clean:
                share = nulls[name] / clean
                css, _ = null_band(share)
                title = f"{name} {m.month:%Y-%m}: {percent(share)} null ({nulls[name]:,} of {clean:,})"
            else:
                css, title = NO_REPORT[0], f"{name} {m.month:%Y-%m}: {m.problem or 'no rows or no count'}"
            cells.append(svg.Segment(1, css, title))
        columns.append(svg.Column(tuple(cells), label))
    return columns


def _drift(months: Sequence[Month]) -> str:
    """Runs of months with the same unmapped source columns: where the set changes, the source's schema did."""
    runs: list[tuple[tuple[str, ...], list[dt.date]]] = []
    for m in months:
        if m.quality is None:
            continue
        other = tuple(m.quality.get("other_columns", ()))
        if runs and runs[-1][0] == other:
            runs[-1][1].append(m.month)
        else:
            runs.append((other, [m.month]))
    if not runs:
        return '<p class="note" id="drift">No quality report to read.</p>'
    rows = "".join(
        f'<tr><td class="months">{spans(ms)}</td><td class="columns">{escape(", ".join(other)) or "none"}</td></tr>'
        for other, ms in runs
    )
    return (
        '<table id="drift"><thead><tr><th>months</th><th>source columns kept in other_columns</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _reissued(months: Sequence[Month]) -> str:
    """Months loaded with more than one checksum, each load listed: the source re-issued them."""
    again = [m for m in months if m.reissued]
    if not again:
        return '<p class="note" id="reissued">None: every month was loaded from one manifest.</p>'
    rows = []
    for m in again:
        for i, load in enumerate(m.loads):
            first = f'<td class="month" rowspan="{len(m.loads)}">{m.month:%Y-%m}</td>' if i == 0 else ""
            rows.append(
                f'<tr data-month="{m.month:%Y-%m}">{first}<td>{moment(load.loaded_at)}</td>'
                f'<td><code>{escape(load.checksum[:12])}</code></td><td class="num rows">{count(load.rows)}</td>'
                f'<td class="num quarantined">{count(load.quarantined)}</td></tr>'
            )
    return (
        '<table id="reissued"><thead><tr><th>month</th><th>loaded at (UTC)</th><th>manifest checksum</th>'
        f'<th class="num">rows</th><th class="num">quarantined</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _pickup(value: str | None) -> str:
    return "-" if not value else escape(value.replace("T", " ")[:16])


def _month_table(months: Sequence[Month]) -> str:
    head = "".join(f'<th class="num small">{escape(reason)}</th>' for reason in REASONS)
    rows = []
    for m in months:
        latest, quality = m.latest, m.quality or {}
        rows_loaded, quarantined, loaded_at = (
            (None, None, None) if latest is None else (latest.rows, latest.quarantined, latest.loaded_at)
        )
        by_reason = quality.get("quarantine_by_reason", {})
        reasons = "".join(
            f'<td class="num reason" data-reason="{r}">{count(by_reason.get(r)) if quality else "-"}</td>'
            for r in REASONS
        )
        note = escape(m.problem or ", ".join(quality.get("other_columns", ())))
        rows.append(
            f'<tr data-month="{m.month:%Y-%m}"><td class="month">{m.month:%Y-%m}</td>'
            f'<td class="state {m.state}">{m.state}</td>'
            f'<td class="num rows">{count(rows_loaded)}</td>'
            f'<td class="num quarantined">{count(quarantined)}</td>{reasons}'
            f'<td class="pickup-min">{_pickup(quality.get("pickup_min"))}</td>'
            f'<td class="pickup-max">{_pickup(quality.get("pickup_max"))}</td>'
            f'<td class="loaded-at">{moment(loaded_at)}</td>'
            f"<td><code>{escape((latest.checksum if latest else m.published or '-')[:12])}</code></td>"
            f'<td class="note small{" problem" if m.problem else ""}">{note}</td></tr>'
        )
    return (
        '<div class="wide"><table id="months"><thead><tr><th>month</th><th>load</th><th class="num">rows</th>'
        f'<th class="num">quarantined</th>{head}<th>pickup from</th><th>pickup to</th><th>loaded at (UTC)</th>'
        f"<th>manifest</th><th>unmapped columns / notes</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
