"""The steps of a month, and where each keeps its output and its lock under ``[paths] data_dir``: one map
for the tasks that write them and for ``status`` and ``invalidate``, which read them without Luigi.

The lake's own layout (where a published month's objects go) is the lake's: ``Lake.key``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from taxi_luigi.lake import month_name

#: The steps of a month, in the order they run.
STEPS = ("download", "clean", "publish", "load")


@dataclass(frozen=True)
class MonthFiles:
    """A month's local files: its raw download, its clean outputs and report, its lock."""

    data_dir: Path
    service: str
    month: dt.date

    @property
    def name(self) -> str:
        return month_name(self.service, self.month)

    def work_dir(self, step: str) -> Path:
        """``raw`` or ``clean``: a directory per service and year."""
        return self.data_dir / step / self.service / str(self.month.year)

    def raw(self, fmt: str) -> Path:
        """The downloaded file, named for its format (``.parquet``, ``.csv.gz``, ``.csv``)."""
        return self.work_dir("raw") / f"{self.name}{fmt}"

    def raw_record(self, fmt: str) -> Path:
        """What was downloaded (url, bytes, ETag...), written last: Download's target."""
        return Path(f"{self.raw(fmt)}.source.json")

    @property
    def clean_data(self) -> Path:
        return self.work_dir("clean") / f"{self.name}.parquet"

    @property
    def clean_quarantine(self) -> Path:
        return self.work_dir("clean") / f"{self.name}.quarantine.parquet"

    @property
    def quality_report(self) -> Path:
        """The month's quality report, written last: Clean's target."""
        return self.work_dir("clean") / f"{self.name}.quality.json"

    @property
    def lock(self) -> Path:
        """The month's lock: every step of the month, and ``taxi-luigi invalidate``, take it."""
        return self.data_dir / "locks" / f"{self.service}-{self.month:%Y-%m}.lock"

    @property
    def scratch(self) -> Path:
        """Where DuckDB spills while cleaning (shared by the months)."""
        return self.data_dir / "tmp"
