"""``taxi-luigi``: the offline demo, the sample mirror, each month's status, invalidation and refresh, and the
quality site."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from taxi_luigi import config, invalidate, layout, refresh, report, services, source, status
from taxi_luigi.demo import run, sample
from taxi_luigi.lake import LakeError
from taxi_luigi.months import label
from taxi_luigi.parameters import MonthsParameter
from taxi_luigi.warehouse import WarehouseError


def demo(args: argparse.Namespace) -> int:
    """Generate a sample mirror, serve it on loopback and run the real pipeline against it."""
    return run.demo(Path(args.data_dir), args.rows, args.workers)


def write_sample(args: argparse.Namespace) -> int:
    """Write a sample mirror laid out as ``{service}/{service}_tripdata_YYYY-MM.ext``."""
    months = MonthsParameter().parse(args.months) or tuple(range(1, 13))
    for truth in sample.write_mirror(
        Path(args.out), args.services.split(","), args.year, months, args.format, args.rows
    ):
        print(f"{truth.path}  {truth.rows:,} rows, {truth.clean:,} clean")
    return 0


_HEADER = ("service", "month", *layout.STEPS, "rows", "quarantined", "loaded_at (UTC)")
_NUMBERS = frozenset({"rows", "quarantined"})


def show_status(args: argparse.Namespace) -> int:
    """Each month's steps, counts and load time: a table, or JSON for scripts."""
    months = status.status(args.service or list(services.SERVICES), args.year, dt.date.today())
    if args.json:
        print(json.dumps([m.to_dict() for m in months], indent=2))
    elif months:
        print(status_table(months))
    else:
        where = "downloaded, published or loaded yet" if args.year is None else f"in {args.year}"
        print(f"no months {where}")
    return 0


def status_table(months: list[status.MonthStatus]) -> str:
    """Fixed-width columns, each as wide as its widest cell; counts right-aligned with thousands separators."""
    rows = [
        (
            m.service,
            f"{m.month:%Y-%m}",
            *(getattr(m, step) for step in layout.STEPS),
            "-" if m.rows is None else f"{m.rows:,}",
            "-" if m.quarantined is None else f"{m.quarantined:,}",
            "-" if m.loaded_at is None else f"{m.loaded_at:%Y-%m-%d %H:%M:%S}",
        )
        for m in months
    ]
    return aligned(_HEADER, rows, _NUMBERS)


def aligned(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: frozenset[str] = frozenset()) -> str:
    """Columns as wide as their widest cell, two spaces apart; the ``right`` ones right-aligned (numbers)."""
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if name in right else cell.ljust(width)
            for name, cell, width in zip(header, cells, widths, strict=True)
        ).rstrip()

    return "\n".join(map(line, [header, *rows]))


def invalidate_month(args: argparse.Namespace) -> int:
    """Remove a month's targets from ``--from`` on, printing each removal as it is done."""
    month = invalidate.parse_month(args.service, args.month, dt.date.today())
    removed = []
    for item in invalidate.invalidate(args.service, month, args.first):
        removed.append(item)
        if not args.json:
            print(f"{item.step:<8}  removed {item.what}", flush=True)
    if args.json:
        report = {"service": args.service, "month": f"{month:%Y-%m}", "from": args.first}
        print(json.dumps({**report, "removed": [dataclasses.asdict(item) for item in removed]}, indent=2))
        return 0
    redo = ", ".join(layout.STEPS[layout.STEPS.index(args.first) :])
    done = "" if removed else "nothing to remove (already invalidated); "
    print(f"{label(args.service, month)}: {done}the next run redoes {redo}")
    return 0


def write_report(args: argparse.Namespace) -> int:
    """The quality site, built now from the configured lake and warehouse, whether or not it was current."""
    out = Path(args.out) if args.out else config.report().root()
    built = report.build(config.configured_lake(), config.configured_warehouse(), out, args.service)
    shown = ", ".join(built.services) or "nothing loaded yet"
    size = sum(built.pages.values()) / 1e3
    print(f"quality site: {out / report.INDEX} ({shown}; {len(built.pages)} pages, {size:,.0f} kB)")
    return 0


_REFRESH_HEADER = ("service", "month", "state", "compared", "bytes", "etag", "last_modified")


def refresh_months(args: argparse.Namespace) -> int:
    """Re-issued months found and invalidated (or only found, with --dry-run): a table, or JSON for scripts.

    The source not answering is one line and exit 1, like an unreachable warehouse: nothing was invalidated.
    """
    months = MonthsParameter().parse(args.months)
    try:
        rows = refresh.refresh(args.service, args.year, months, dt.date.today(), dry_run=args.dry_run)
    except source.SourceError as e:
        print(f"taxi-luigi {args.command}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    shown = [row for row in rows if row.state != refresh.UNCHANGED]
    if shown:
        print(refresh_table(shown))
    print(refresh_summary(args.service, args.year, rows, args.dry_run))
    return 0


def refresh_table(rows: list[refresh.Checked]) -> str:
    """The changed and gone months, old -> new where a value differs, in columns as wide as their widest cell."""

    def change(old: object, new: object) -> str:
        return "-" if old is None and new is None else str(old) if old == new else f"{old} -> {new}"

    def size(n: int | None) -> str:
        return "?" if n is None else f"{n:,}"

    cells = [
        (
            r.service,
            f"{r.month:%Y-%m}",
            r.state,
            r.compared,
            change(size(r.recorded.bytes), "(no file)" if r.current is None else size(r.current.bytes)),
            change(r.recorded.etag, r.current.etag if r.current else r.recorded.etag),
            change(r.recorded.last_modified, r.current.last_modified if r.current else r.recorded.last_modified),
        )
        for r in rows
    ]
    return aligned(_REFRESH_HEADER, cells)


def refresh_summary(service: str, year: int, rows: list[refresh.Checked], dry_run: bool) -> str:
    """One line: how many months were asked, which changed and what was done about it."""
    if not rows:
        return f"{service} {year}: no published month to compare (the next run loads them from the source as it is)"
    changed = [f"{r.month:%Y-%m}" for r in rows if r.state == refresh.CHANGED]
    gone = [f"{r.month:%Y-%m}" for r in rows if r.state == refresh.GONE]
    parts = [f"{service} {year}: {len(rows)} published month{'s' * (len(rows) != 1)} checked"]
    if changed:
        them = "them" if len(changed) > 1 else "it"
        done = "not invalidated (dry run)" if dry_run else f"invalidated from download on: the next run reloads {them}"
        parts.append(f"re-issued: {', '.join(changed)}, {done}")
    if gone:
        parts.append(f"no longer at the source: {', '.join(gone)}, not invalidated")
    if not changed and not gone:
        parts.append("none changed")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-luigi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="run the whole pipeline offline on a generated sample")
    p.add_argument("--data-dir", default="data/demo", help="where the mirror, lake and warehouse go")
    p.add_argument("--rows", type=int, default=20_000, help="rows per month file")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=demo)
    p = commands.add_parser("sample", help="write a deterministic sample mirror in the real TLC formats")
    p.add_argument("--out", required=True)
    p.add_argument("--services", default=",".join(services.SERVICES))
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--months", default="", help="e.g. 1-3; default: all twelve")
    p.add_argument("--format", choices=sample.FORMATS, default="tlc")
    p.add_argument("--rows", type=int, default=10_000)
    p.set_defaults(func=write_sample)
    p = commands.add_parser("status", help="each month's steps (done, missing, stale), rows and load time")
    p.add_argument("--year", type=int, help="every month of the year up to last month; default: months with a trace")
    p.add_argument("--service", action="append", help="repeatable; default: all four")
    p.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    p.set_defaults(func=show_status)
    p = commands.add_parser("invalidate", help="remove a month's targets from a step on, so the next run redoes them")
    p.add_argument("service", help=", ".join(services.SERVICES))
    p.add_argument("month", help="YYYY-MM")
    p.add_argument("--from", dest="first", choices=layout.STEPS, default="clean", help="first step to redo")
    p.add_argument("--json", action="store_true", help="what was removed, as JSON")
    p.set_defaults(func=invalidate_month)
    p = commands.add_parser("report", help="write the quality site: an index and a page per service, with charts")
    p.add_argument("--service", action="append", help="repeatable; default: every service loaded or published")
    p.add_argument("--out", help="the site's directory; default: [report] out_dir (report/ in [paths] data_dir)")
    p.set_defaults(func=write_report)
    p = commands.add_parser(
        "refresh", help="find months the source re-issued and invalidate them, so the next run reloads them"
    )
    p.add_argument("service", help=", ".join(services.SERVICES))
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--months", default="", help="e.g. 1-3; default: every month of the year up to last month")
    p.add_argument("--dry-run", action="store_true", help="report, invalidate nothing")
    p.add_argument("--json", action="store_true", help="every published month checked, as JSON")
    p.set_defaults(func=refresh_months)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # an argument the pipeline refuses: a service, a month, a config value
        print(f"taxi-luigi {args.command}: {e}", file=sys.stderr)
        return 2
    except (WarehouseError, LakeError, OSError) as e:  # their messages name what failed and what to do
        print(f"taxi-luigi {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
