"""Training snapshots: usable examples frozen once per snapshot partition, with lineage."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from identity_data.defs.snapshots import store
from identity_data.defs.snapshots.build import (
    SnapshotFilters,
    balance_table,
    counts_by_split,
    select_examples,
)
from identity_data.defs.snapshots.checks import BALANCE_TABLE, balance_check, balance_check_spec
from identity_data.defs.snapshots.partitions import snapshots
from identity_data.defs.snapshots.schemas import SNAPSHOT_TABLE, SnapshotManifest
from identity_data.defs.snapshots.views import WAREHOUSE_VIEW, name_taken_by, publish_view
from identity_data.defs.warehouse.tables import TABLES
from identity_data.metadata import markdown_table
from identity_data.sources import SOURCES
from identity_data.stores.deployment import Deployment
from identity_data.validation import schema_check, schema_check_spec

SNAPSHOT = dg.AssetKey(["snapshots", "training_snapshot"])
INPUTS = [source.key("warehouse", kind) for source in SOURCES for kind in ("examples", "captures")]
DATA_VERSION_TAG = "dagster/data_version"
# The most event records Dagster returns per call.
PAGE = 10_000


class SnapshotConfig(dg.Config):
    """Filters of one snapshot; every value is recorded in its snapshot.json."""

    min_posterior: float = 0.0
    exclude_sources: list[str] = Field(default_factory=list)
    exclude_capture_types: list[str] = Field(default_factory=list)
    max_balance_gap_points: float = 10.0


def input_data_versions(instance: dg.DagsterInstance) -> dict[str, dict[str, str]]:
    """Asset -> partition -> the data version of its latest materialization."""
    lineage: dict[str, dict[str, str]] = {}
    for asset in INPUTS:
        versions: dict[str, str] = {}
        cursor = None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset), limit=PAGE, cursor=cursor, ascending=False
            )
            for record in page.records:
                event = record.asset_materialization
                if event is not None:
                    tags = event.tags or {}
                    versions.setdefault(event.partition or "", tags.get(DATA_VERSION_TAG, ""))
            if not page.has_more:
                break
            cursor = page.cursor
        lineage[asset.to_user_string()] = dict(sorted(versions.items()))
    return lineage


@dg.asset(
    key=SNAPSHOT,
    description="Usable training examples frozen at one moment, written once per snapshot.",
    group_name="snapshots",
    kinds={"polars", "parquet", "duckdb", "bigquery"},
    partitions_def=snapshots,
    deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in INPUTS],
    check_specs=[schema_check_spec(SNAPSHOT, SnapshotManifest), balance_check_spec(SNAPSHOT)],
)
def training_snapshot(
    context: dg.AssetExecutionContext, config: SnapshotConfig, deployment: Deployment
) -> dg.MaterializeResult:
    """Freeze the warehouse's training examples into a create-only manifest, its rows and view."""
    snapshot_id = store.check_id(context.partition_key)
    lake, warehouse = deployment.lake, deployment.warehouse
    if store.versions(lake, snapshot_id):
        raise dg.Failure(f"snapshot {snapshot_id} exists already; snapshots are written once")
    if other := name_taken_by(snapshot_id, store.snapshot_ids(lake)):
        raise dg.Failure(
            f"snapshot {snapshot_id} would share its warehouse view with snapshot {other}; "
            "choose an id that differs by more than case, '.', '-' and '_'"
        )
    filters = SnapshotFilters(
        config.min_posterior, tuple(config.exclude_sources), tuple(config.exclude_capture_types)
    )
    manifest, excluded = select_examples(
        warehouse.read(TABLES["training_examples"], {}),
        warehouse.read(TABLES["captures"], {}),
        filters,
        snapshot_id,
    )
    schema = schema_check(manifest, SnapshotManifest, SNAPSHOT)
    if not schema.passed:
        raise dg.Failure("the snapshot manifest fails its schema", metadata=schema.metadata)
    balance = balance_table(manifest)
    info = {
        "created_at": datetime.now(UTC).isoformat(),
        "rows": manifest.height,
        "filters": filters.as_dict(),
        "excluded": excluded,
        "counts_by_split": counts_by_split(manifest),
        "class_balance": balance.to_dicts(),
        "input_data_versions": input_data_versions(context.instance),
        "history": [],
    }
    digest = store.write_version(lake, snapshot_id, 1, manifest, info)
    warehouse.replace_slice(SNAPSHOT_TABLE, manifest, {"snapshot_id": [snapshot_id]})
    view = publish_view(warehouse, snapshot_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": manifest.height,
            "manifest_sha256": digest,
            "manifest_uri": lake.uri(store.key(snapshot_id, 1, store.MANIFEST)),
            WAREHOUSE_VIEW: view,
            "filters": dg.MetadataValue.json(filters.as_dict()),
            "excluded": dg.MetadataValue.json(excluded),
            "counts_by_split": dg.MetadataValue.json(info["counts_by_split"]),
            BALANCE_TABLE: markdown_table(balance),
        },
        data_version=dg.DataVersion(digest),
        check_results=[schema, balance_check(balance, config.max_balance_gap_points, SNAPSHOT)],
    )
