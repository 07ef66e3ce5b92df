"""Quoting for the SQL the pipeline writes for DuckDB and PostgreSQL (BigQuery's dialect quotes with
backticks and backslashes: warehouse/bigquery.py). Names come from services.py and configuration that
was checked to be plain; quoting them anyway means no name can ever end a statement."""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted identifier: ``"name"``, with any double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string literal: ``'value'``, with any single quote doubled."""
    return "'" + value.replace("'", "''") + "'"
