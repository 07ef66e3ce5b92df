"""Progress of a long DuckDB statement, for the visualizer: percent done and rows done."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import duckdb

Say = Callable[[int, str], None]


def track(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Make DuckDB track progress for ``query_progress()`` without drawing a bar on the worker's terminal."""
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false; SET progress_bar_time = 0")
    return con


@contextlib.contextmanager
def watch(
    con: duckdb.DuckDBPyConnection,
    say: Say,
    low: int,
    high: int,
    rows: int | Callable[[], int | None],
    done: str,
    every: float = 1.0,
) -> Iterator[None]:
    """Every ``every`` seconds while the block runs, report ``con``'s progress scaled to ``low..high`` percent.

    ``rows`` is the statement's total rows, or gives it (None while it is not known yet).
    """
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            pct = con.query_progress()
            if pct < 0:
                continue
            total = rows() if callable(rows) else rows
            of = f"{int(total * pct / 100):,} of {total:,} rows" if total is not None else f"{pct:.0f}% of the rows"
            say(low + int((high - low) * pct / 100), f"{of} {done}")

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
