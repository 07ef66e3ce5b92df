"""The Parameter types of the tasks and the config sections: a year's months, and a month that may be absent."""

from __future__ import annotations

import datetime as dt

import luigi
from luigi.parameter import OptionalParameterMixin


class MonthsParameter(luigi.Parameter[tuple[int, ...]]):
    """Months of a year as ``1,2,3`` or ``1-6`` (empty: every month the service has)."""

    def parse(self, x: str) -> tuple[int, ...]:
        months: set[int] = set()
        for part in filter(None, (p.strip() for p in str(x).split(","))):
            low, _, high = part.partition("-")
            if not (low.isdigit() and (not high or high.isdigit())):
                raise ValueError(f"--months {x!r}: use month numbers like 1,2,3 or 1-6")
            months.update(range(int(low), int(high or low) + 1))
        if bad := sorted(m for m in months if not 1 <= m <= 12):
            raise ValueError(f"--months {x!r}: {bad} are not months (1-12)")
        return tuple(sorted(months))

    def serialize(self, x: tuple[int, ...]) -> str:
        return ",".join(map(str, x))

    def normalize(self, x: object) -> tuple[int, ...]:
        if isinstance(x, str):
            return self.parse(x)
        assert isinstance(x, tuple | list), x  # Luigi hands over the default or a parsed value
        return tuple(sorted(x))


class OptionalMonthParameter(OptionalParameterMixin[dt.date], luigi.MonthParameter):  # type: ignore[misc]
    """A month (``YYYY-MM``), or none: as Luigi's own Optional*Parameter classes make their types optional."""

    expected_type = dt.date
