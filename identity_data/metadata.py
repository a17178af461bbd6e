"""Aggregate-only Dagster metadata shared by every domain: counts and small tables, no rows."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import polars as pl
from dagster_polars.io_managers.utils import get_metadata_schema

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
# Enumerated columns whose counts (`by_<column>`) each partition of a table carries.
TYPE_COLUMNS = ("capture_type", "field", "reason")


def number(value: object, empty: float) -> float:
    """A numeric polars aggregate (`Series.mean()`, `.min()`, `.max()`) as a float, `empty` when
    it is None (no non-null values). Polars types these as any Python literal, so this checks."""
    if value is None:
        return empty
    if not isinstance(value, int | float):
        raise TypeError(f"expected a numeric aggregate, got a {type(value).__name__}")
    return float(value)


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


def table_metadata(frame: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    return {
        ROW_COUNT: dg.MetadataValue.int(frame.height),
        COLUMN_SCHEMA: dg.MetadataValue.table_schema(get_metadata_schema(frame)),
    }


def partition_metadata(frame: pl.DataFrame | pl.LazyFrame) -> dict[str, dg.MetadataValue]:
    """One partition's own row count, column schema and counts by type: in a multi-partition
    run the output's totals would otherwise land on every partition. A lazy frame is read
    column by column, never collected whole."""
    if isinstance(frame, pl.DataFrame):
        counts = {f"by_{c}": value_counts(frame[c]) for c in TYPE_COLUMNS if c in frame.columns}
        return {**table_metadata(frame), **counts}
    schema = frame.collect_schema()
    rows = frame.select(pl.len()).collect().item()
    counts = {
        f"by_{c}": value_counts(frame.select(c).collect()[c])
        for c in TYPE_COLUMNS
        if c in schema.names()
    }
    return {
        ROW_COUNT: dg.MetadataValue.int(rows),
        COLUMN_SCHEMA: dg.MetadataValue.table_schema(get_metadata_schema(frame)),
        **counts,
    }


def add_partition_metadata(
    context: dg.OutputContext, partition: str, metadata: Mapping[str, dg.MetadataValue]
) -> None:
    """Dagster's per-partition asset metadata: it overrides the output's for this partition."""
    context.step_context.add_asset_metadata(
        dict(metadata), asset_key=context.asset_key, partition_key=partition
    )
