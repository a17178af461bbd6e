"""IO manager for warehouse tables: each output replaces exactly the rows its partitions own."""

# No `from __future__ import annotations`: Dagster reads the nested `deployment` annotation when
# the class is created, and only a real class lets it accept the deployment configured at launch.

from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from identity_data.contracts import (
    PARTITION_COLUMN,
    SOURCE_COLUMN,
    WAREHOUSE_SOURCE,
    WAREHOUSE_TABLE,
)
from identity_data.defs.warehouse.tables import TABLES
from identity_data.metadata import add_partition_metadata, partition_metadata, table_metadata
from identity_data.safety import check_partition_key
from identity_data.stores.deployment import Deployment
from identity_data.stores.warehouse import Slice, WarehouseBackend


def _slice(context: dg.OutputContext | dg.InputContext, metadata: Mapping[str, Any]) -> Slice:
    """A source-partitioned asset owns (source, source_partition); an unpartitioned one, all."""
    if not context.has_asset_partitions:
        return {}
    keys = [check_partition_key(k) for k in context.asset_partition_keys]
    return {SOURCE_COLUMN: [metadata[WAREHOUSE_SOURCE]], PARTITION_COLUMN: keys}


class WarehouseIOManager(dg.ConfigurableIOManager):
    """DuckDB locally, BigQuery in production: one atomic write per table per run."""

    # The run's deployment (see defs/resources.py), whose settings were resolved once at launch;
    # its warehouse client is built on first use and shared by every output of the run.
    deployment: Deployment

    def _backend(self) -> WarehouseBackend:
        return self.deployment.warehouse

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        metadata = context.definition_metadata
        spec = TABLES[metadata[WAREHOUSE_TABLE]]
        self._backend().replace_slice(spec, obj, _slice(context, metadata))
        context.add_output_metadata({"table": spec.name, **table_metadata(obj)})
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            for key in context.asset_partition_keys:
                part = obj.filter(pl.col(PARTITION_COLUMN) == key)
                add_partition_metadata(context, key, partition_metadata(part))

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream else {}
        spec = TABLES[metadata[WAREHOUSE_TABLE]]
        return self._backend().read(spec, _slice(context, metadata))
