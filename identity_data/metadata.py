"""Aggregate-only Dagster metadata shared by every domain: counts and small tables, no rows."""

from __future__ import annotations

import dagster as dg
import polars as pl


def markdown_table(df: pl.DataFrame) -> dg.MetadataValue:
    header = "| " + " | ".join(df.columns) + " |\n|" + "---|" * df.width + "\n"
    rows = "".join(
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
        for row in df.iter_rows()
    )
    return dg.MetadataValue.md(header + rows)


def value_counts(values: pl.Series) -> dg.MetadataValue:
    """How many rows hold each value of a low-cardinality column (a type, a status, a reason)."""
    return dg.MetadataValue.json(dict(values.value_counts().iter_rows()))
