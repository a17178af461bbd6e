"""Label assets: each export parsed in its own partition, then pooled into consensus labels."""

import dagster as dg
import polars as pl

from identity_data.conditions import change_metadata, partition_digests, pooled, previous_digests
from identity_data.contracts import lake_input
from identity_data.defs.labels.captures import split_by_capture, unknown_by_export
from identity_data.defs.labels.checks import consensus_check_specs, consensus_checks
from identity_data.defs.labels.metadata import class_balance, label_metadata
from identity_data.defs.labels.parse import (
    LabelExportError,
    parse_flat_csv,
    parse_label_studio,
)
from identity_data.defs.labels.partitions import LABEL_EXPORTS, label_exports
from identity_data.defs.labels.pooling import CAPTURE_COLUMNS, assemble_consensus, known_captures
from identity_data.defs.labels.schemas import (
    AnnotatorQuality,
    LabelQuarantine,
    ParsedAnnotations,
    UnmatchedAnnotations,
    WarehouseLabel,
)
from identity_data.defs.labels.sensors import (
    EXPORT_QUARANTINE,
    EXPORT_VOTES,
    export_file,
    version_tag,
)
from identity_data.metadata import value_counts
from identity_data.sources import SOURCES
from identity_data.stores.deployment import Deployment
from identity_data.tombstones import drop_tombstoned_captures, load_tombstones
from identity_data.validation import schema_check, schema_check_spec

CONSENSUS = dg.AssetKey(["labels", "consensus_labels"])
QUALITY = dg.AssetKey(["labels", "annotator_quality"])
UNMATCHED = dg.AssetKey(["labels", "unmatched_votes"])
# What a day's training examples read from consensus: a change here re-runs exactly that day.
LABEL_DIGEST_COLUMNS = ["capture_id", "task", "label"]


@dg.multi_asset(
    outs={
        "annotations": dg.AssetOut(
            key=EXPORT_VOTES,
            description="One row per (capture, annotator, task, label) of one export file.",
            group_name="labels",
            kinds={"polars", "parquet"},
        ),
        "quarantine": dg.AssetOut(
            key=EXPORT_QUARANTINE,
            description="Export rows that cannot be used, with the reason.",
            group_name="labels",
            kinds={"polars", "parquet"},
        ),
    },
    # Every partition of every manifest: an export partition counts the ids none of them holds.
    ins={
        s.name: lake_input(
            s.key("raw", "captures"),
            CAPTURE_COLUMNS,
            allow_missing=True,
            partition_mapping=dg.AllPartitionMapping(),
        )
        for s in SOURCES
    },
    partitions_def=label_exports,
    check_specs=[
        schema_check_spec(EXPORT_VOTES, ParsedAnnotations),
        schema_check_spec(EXPORT_QUARANTINE, LabelQuarantine),
    ],
    can_subset=False,
)
def label_export(
    context: dg.AssetExecutionContext, deployment: Deployment, **manifests: pl.DataFrame
):
    """Parse one Label Studio JSON or flat CSV export, streaming."""
    key, version = export_file(context.partition_key)
    current = next((o for o in deployment.lake.list(key) if o.key == key), None)
    if current is None or version_tag(current.version) != version:
        raise dg.Failure(
            f"{key}: its content changed or it was removed since partition "
            f"{context.partition_key} was created; the new content has its own partition."
        )
    parse = parse_label_studio if key.endswith(".json") else parse_flat_csv
    try:
        with deployment.lake.open(key) as fh:
            annotations, quarantine = parse(fh, context.partition_key, key)
    except LabelExportError as err:
        # The whole file is unreadable: fail this partition only, naming file and position.
        raise dg.Failure(str(err)) from err
    tombstones, secret = load_tombstones(deployment.lake), deployment.settings.pseudonym_key
    annotations, erased = drop_tombstoned_captures(annotations, tombstones, secret)
    quarantine, erased_quarantine = drop_tombstoned_captures(quarantine, tombstones, secret)
    _, unknown = split_by_capture(annotations, known_captures(manifests.values())["capture_id"])
    yield dg.Output(
        annotations,
        output_name="annotations",
        metadata={
            "dagster/row_count": annotations.height,
            "tombstoned_rows": erased + erased_quarantine,
            # Kept: consensus quarantines them unless their captures are extracted by then.
            "unknown_capture_rows": unknown.height,
            **class_balance(annotations),
        },
    )
    yield dg.Output(
        quarantine,
        output_name="quarantine",
        metadata={
            "dagster/row_count": quarantine.height,
            "by_reason": value_counts(quarantine["reason"]),
        },
    )
    yield schema_check(annotations, ParsedAnnotations, EXPORT_VOTES)
    yield schema_check(quarantine, LabelQuarantine, EXPORT_QUARANTINE)


def _out(key: dg.AssetKey, description: str) -> dg.AssetOut:
    return dg.AssetOut(
        key=key,
        description=description,
        group_name="labels",
        kinds={"polars", "parquet"},
        automation_condition=pooled(),
    )


@dg.multi_asset(
    outs={
        "labels": _out(
            CONSENSUS, "One trusted label per capture and task (Dawid-Skene, MV baseline)."
        ),
        "quality": _out(QUALITY, "Estimated accuracy and confusion matrix per annotator and task."),
        "unmatched": _out(UNMATCHED, "Annotations for captures that no raw manifest holds."),
    },
    ins={
        "annotations": lake_input(EXPORT_VOTES, allow_missing=True),
        **{
            s.name: lake_input(s.key("raw", "captures"), CAPTURE_COLUMNS, allow_missing=True)
            for s in SOURCES
        },
    },
    check_specs=[
        schema_check_spec(CONSENSUS, WarehouseLabel),
        schema_check_spec(QUALITY, AnnotatorQuality),
        schema_check_spec(UNMATCHED, UnmatchedAnnotations),
        *consensus_check_specs(CONSENSUS, QUALITY),
    ],
    can_subset=False,
)
def consensus(
    context: dg.AssetExecutionContext, annotations: pl.DataFrame, **manifests: pl.DataFrame
):
    """Pool every export (latest wins) and aggregate annotators into one label per task."""
    captures = known_captures(manifests.values())
    result = assemble_consensus(
        annotations, context.instance.get_dynamic_partitions(LABEL_EXPORTS), captures
    )
    labels, quality, matched, unmatched = (
        result.labels,
        result.quality,
        result.matched,
        result.unmatched,
    )
    digests = partition_digests(
        labels.join(captures.select("capture_id", "source_partition"), on="capture_id"),
        LABEL_DIGEST_COLUMNS,
    )
    yield dg.Output(
        labels,
        output_name="labels",
        metadata={
            "dagster/row_count": labels.height,
            "superseded_rows": result.superseded_rows,
            **change_metadata(previous_digests(context.instance, CONSENSUS), digests),
            **label_metadata(labels),
        },
    )
    yield dg.Output(
        quality,
        output_name="quality",
        metadata={"dagster/row_count": quality.height},
    )
    yield dg.Output(
        unmatched,
        output_name="unmatched",
        metadata={"dagster/row_count": unmatched.height, "by_export": unknown_by_export(unmatched)},
    )
    yield schema_check(labels, WarehouseLabel, CONSENSUS)
    yield schema_check(quality, AnnotatorQuality, QUALITY)
    yield schema_check(unmatched, UnmatchedAnnotations, UNMATCHED)
    yield from consensus_checks(
        matched, unmatched, labels, captures, CONSENSUS, QUALITY, result.pooled_rows
    )
