"""Quoting for the SQL the pipeline writes for DuckDB and PostgreSQL, and the one row of an aggregate.

BigQuery's dialect quotes with backticks and backslashes: warehouse/bigquery.py. Names come from
services.py and configuration that was checked to be plain; quoting them anyway means no name can ever
end a statement."""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted identifier: ``"name"``, with any double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string literal: ``'value'``, with any single quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def one(row: tuple | None) -> tuple:
    """The one row an aggregate returns (COUNT, COPY's count): it always returns one, so None is a bug."""
    if row is None:
        raise RuntimeError("a query that always returns one row returned none")
    return row
