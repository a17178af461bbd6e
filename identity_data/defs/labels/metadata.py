"""Aggregate-only materialization metadata for label tables (no capture or subject ids)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from identity_data.metadata import markdown_table

LOW_CONFIDENCE = 0.8


def class_balance(df: pl.DataFrame, label: str = "label") -> dict[str, dg.MetadataValue]:
    """Share of each label per task."""
    if df.is_empty():
        return {}
    balance = (
        df.group_by("task", label)
        .len()
        .with_columns(share=pl.col("len") / pl.col("len").sum().over("task"))
        .sort("task", label)
    )
    return {"class_balance": markdown_table(balance)}


def label_metadata(labels: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    """Class balance, agreement and low-confidence rates per task."""
    if labels.is_empty():
        return {}
    rates = (
        labels.group_by("task")
        .agg(
            captures=pl.len(),
            mean_agreement=pl.col("agreement").mean(),
            low_confidence_share=(pl.col("posterior") < LOW_CONFIDENCE).mean(),
            mv_disagrees_with_ds=(pl.col("label") != pl.col("mv_label")).mean(),
        )
        .sort("task")
    )
    return {**class_balance(labels), "agreement": markdown_table(rates)}
