"""Strings one module writes and another reads: asset metadata keys and the partition column."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# Input metadata read by stores/lake_io.py: load the partitions that exist, skip the others.
ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"
# Input metadata read by dagster-polars: load only these columns.
COLUMNS = "columns"
# Asset metadata read by defs/warehouse/io_manager.py: the table an asset writes, and the source
# whose rows of it the asset owns.
WAREHOUSE_TABLE = "warehouse/table"
WAREHOUSE_SOURCE = "warehouse/source"
# The column that ties a row to the source partition it came from; with `source`, a row's owner.
PARTITION_COLUMN = "source_partition"
SOURCE_COLUMN = "source"
# The check, on every asset that quarantines, that rows in = rows out + rows quarantined; more
# than one stage defines it, so the name is written once here.
ROW_ACCOUNTING = "row_accounting"


def lake_input(
    key: dg.AssetKey,
    columns: Sequence[str] | None = None,
    *,
    allow_missing: bool = False,
    partition_mapping: dg.PartitionMapping | None = None,
) -> dg.AssetIn:
    """An input read from the lake: only `columns` if given; with `allow_missing`, the
    partitions that were materialized (a pooled input over a daily asset asks for every day)."""
    metadata: dict[str, object] = {}
    if columns is not None:
        metadata[COLUMNS] = list(columns)
    if allow_missing:
        metadata[ALLOW_MISSING_PARTITIONS] = True
    return dg.AssetIn(key, metadata=metadata, partition_mapping=partition_mapping)
