"""Months, in one place: a month is the date of its first day; which months a year or a range has, and
which of them the TLC can have published by now."""

from __future__ import annotations

import datetime as dt

from taxi_luigi import services


def label(service: str, month: dt.date) -> str:
    """What every message about a month starts with: ``yellow 2021-03``."""
    return f"{service} {month:%Y-%m}"


def following(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def through(first: dt.date, last: dt.date) -> list[dt.date]:
    """The months from ``first`` through ``last``."""
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [dt.date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1) for i in range(count)]


def last_ended(today: dt.date) -> dt.date:
    """The newest month that is over: the newest the TLC could have published."""
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def of_year(svc: services.Service, year: int, numbers: tuple[int, ...], today: dt.date) -> list[dt.date]:
    """The months of ``year`` to load: those asked for, else all the service has up to last month.

    Listed here rather than through RangeMonthly, whose 13-month look-back would schedule nothing for
    an older year. A month asked for that the service has not, or that has not ended, is refused with
    the reason.
    """
    last = last_ended(today)
    wanted = [dt.date(year, m, 1) for m in (numbers or range(1, 13))]
    if not numbers:
        wanted = [m for m in wanted if svc.first_month <= m <= last]
        if not wanted:
            raise ValueError(
                f"{svc.name} {year}: no month of it has a file: {svc.name} runs from {svc.first_month:%Y-%m} "
                f"through last month, {last:%Y-%m}"
            )
    for month in wanted:
        services.check_month(svc, month)
        if month > last:
            raise ValueError(f"{svc.name} {month:%Y-%m}: the month has not ended yet")
    return wanted
