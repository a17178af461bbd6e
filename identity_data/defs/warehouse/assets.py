"""Warehouse tables, one write per table per partition, shaped from the lake."""

from collections.abc import Mapping

import dagster as dg
import pandera.polars as pa
import polars as pl

from identity_data.conditions import every_partition, refreshed_on_change
from identity_data.contracts import WAREHOUSE_SOURCE, WAREHOUSE_TABLE
from identity_data.defs.labels.assets import CONSENSUS, QUALITY
from identity_data.defs.labels.schemas import AnnotatorQuality, WarehouseLabel
from identity_data.defs.warehouse import transforms
from identity_data.defs.warehouse.schemas import (
    TrainingExample,
    WarehouseAnnotation,
    WarehouseCapture,
)
from identity_data.fanout import backfill_policy
from identity_data.sources import SOURCES, CaptureSource
from identity_data.validation import conform, schema_check, schema_check_spec

NEAR_DUPLICATES = dg.AssetKey(["annotations", "near_duplicates"])


def warehouse_pool(table: str) -> str:
    return f"warehouse-{table}"


def _warehouse_asset(
    key: dg.AssetKey,
    table: str,
    description: str,
    model: type[pa.DataFrameModel],
    ins: Mapping[str, dg.AssetIn],
    source: CaptureSource | None = None,
    automation_condition: dg.AutomationCondition | None = None,
):
    """The decorator of a warehouse asset writing `table`; with `source`, the asset owns that
    source's rows of the table, per source partition."""
    return dg.asset(
        key=key,
        description=description,
        group_name="warehouse",
        kinds={"polars", "duckdb", "bigquery"},
        io_manager_key="warehouse_io_manager",
        metadata={WAREHOUSE_TABLE: table, **({WAREHOUSE_SOURCE: source.name} if source else {})},
        automation_condition=automation_condition or every_partition(),
        # Runs writing one table queue on this pool (limit 1 in dagster.yaml) instead of racing.
        pool=warehouse_pool(table),
        ins=ins,
        check_specs=[schema_check_spec(key, model)],
        partitions_def=source.partitions_def if source else None,
        backfill_policy=backfill_policy() if source else None,
    )


def _checked(
    context: dg.AssetExecutionContext,
    df: pl.DataFrame,
    model: type[pa.DataFrameModel],
    counts: dict[str, int] | None = None,
):
    yield dg.Output(df, metadata={"dagster/row_count": df.height, **(counts or {})})
    yield schema_check(df, model, context.asset_key)


def build_source_tables(source: CaptureSource) -> list[dg.AssetsDefinition]:
    """captures, annotations and training_examples rows of one source, per source partition."""
    raw, annotated = source.key("raw", "captures"), source.key("annotations", "annotations")
    captures_key = source.key("warehouse", "captures")
    annotations_key = source.key("warehouse", "annotations")
    examples_key = source.key("warehouse", "examples")

    @_warehouse_asset(
        captures_key,
        "captures",
        f"Warehouse captures rows from {source.name}.",
        WarehouseCapture,
        {"manifest": dg.AssetIn(raw)},
        source,
    )
    def captures(context: dg.AssetExecutionContext, manifest: pl.DataFrame):
        """Write the partition's captures to the warehouse."""
        yield from _checked(context, transforms.warehouse_captures(manifest), WarehouseCapture)

    @_warehouse_asset(
        annotations_key,
        "annotations",
        f"Warehouse annotations rows from {source.name}.",
        WarehouseAnnotation,
        {"annotations": dg.AssetIn(annotated), "manifest": dg.AssetIn(raw)},
        source,
        # Annotations run from their own sensor (defs/automation.py): a re-extracted partition
        # waits for them instead of loading the old ones, then loading again.
        automation_condition=every_partition(awaiting=[annotated]),
    )
    def annotations(
        context: dg.AssetExecutionContext, annotations: pl.DataFrame, manifest: pl.DataFrame
    ):
        """Write the partition's inferred annotations to the warehouse."""
        rows = transforms.warehouse_annotations(annotations, manifest)
        yield from _checked(context, rows, WarehouseAnnotation)

    @_warehouse_asset(
        examples_key,
        "training_examples",
        f"Usable {source.name} captures with labels and annotations.",
        TrainingExample,
        {
            "manifest": dg.AssetIn(raw),
            "annotations": dg.AssetIn(annotated),
            "labels": dg.AssetIn(CONSENSUS),
            "duplicates": dg.AssetIn(NEAR_DUPLICATES),
        },
        source,
        automation_condition=refreshed_on_change(
            [CONSENSUS, NEAR_DUPLICATES], source.name, awaiting=[annotated]
        ),
    )
    def training_examples(
        context: dg.AssetExecutionContext,
        manifest: pl.DataFrame,
        annotations: pl.DataFrame,
        labels: pl.DataFrame,
        duplicates: pl.DataFrame,
    ):
        """Join captures, consensus labels and annotations into training rows."""
        rows, counts = transforms.training_examples(manifest, annotations, labels, duplicates)
        yield from _checked(context, rows, TrainingExample, counts)

    return [captures, annotations, training_examples]


def build_label_table(
    upstream: dg.AssetKey, table: str, model: type[pa.DataFrameModel], description: str
) -> dg.AssetsDefinition:
    key = dg.AssetKey(["warehouse", table])

    @_warehouse_asset(key, table, description, model, {"frame": dg.AssetIn(upstream)})
    def _table(context: dg.AssetExecutionContext, frame: pl.DataFrame):
        """Replace the whole table in one atomic write."""
        yield from _checked(context, conform(frame, model), model)

    return _table


warehouse_assets = [
    *(asset for source in SOURCES for asset in build_source_tables(source)),
    build_label_table(CONSENSUS, "labels", WarehouseLabel, "Consensus labels for ML users."),
    build_label_table(
        QUALITY,
        "annotator_quality",
        AnnotatorQuality,
        "Estimated accuracy and confusion per annotator and task.",
    ),
]
