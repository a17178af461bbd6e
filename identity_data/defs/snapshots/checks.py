"""The class-balance check of a snapshot: each split against the overall balance."""

from __future__ import annotations

import dagster as dg
import polars as pl

from identity_data.metadata import markdown_table, number

BALANCE_CHECK = "split_class_balance"
BALANCE_TABLE = "class_balance_by_split"


def balance_check_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        BALANCE_CHECK,
        asset=asset,
        description="Warns when a split's attack_type share is off the overall share by more "
        "than the configured number of points.",
    )


def balance_check(table: pl.DataFrame, max_gap_points: float, asset: dg.AssetKey):
    worst = number(table["gap_points"].max(), 0.0)
    return dg.AssetCheckResult(
        check_name=BALANCE_CHECK,
        asset_key=asset,
        passed=worst <= max_gap_points,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_gap_points": dg.MetadataValue.float(worst),
            "allowed_gap_points": dg.MetadataValue.float(max_gap_points),
            BALANCE_TABLE: markdown_table(table),
        },
    )
