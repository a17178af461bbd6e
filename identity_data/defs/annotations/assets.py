"""Inferred annotations per raw partition (same factory, same partitions), and lake-wide dedup."""

import dagster as dg
import polars as pl

from identity_data.conditions import (
    PARTITION_COLUMNS,
    change_metadata,
    every_partition,
    partition_digests,
    pooled,
    previous_digests,
)
from identity_data.contracts import PARTITION_COLUMN, lake_input
from identity_data.defs.annotations import dedup
from identity_data.defs.annotations.checks import (
    annotation_check_results,
    annotation_check_specs,
    duplicate_check_result,
    duplicate_check_spec,
)
from identity_data.defs.annotations.infer import ANNOTATOR_CODE_VERSION, annotate_captures
from identity_data.defs.annotations.metadata import annotation_metadata
from identity_data.defs.annotations.schemas import NearDuplicates
from identity_data.fanout import DETECTOR_RESOURCES, backfill_policy, pod_resources_tags
from identity_data.sources import SOURCES, CaptureSource
from identity_data.stores.deployment import Deployment
from identity_data.validation import schema_check, schema_check_spec

NEAR_DUPLICATES = dg.AssetKey(["annotations", "near_duplicates"])
MANIFEST_COLUMNS = [
    "capture_id",
    "blob_key",
    "sha256",
    "capture_type",
    "source_label",
    "source_partition",
]
# What near-duplicate detection reads of each source's annotations.
HASH_INPUT = ["capture_id", PARTITION_COLUMN, *dedup.HASH_COLUMNS]
# Face detection is the one heavy step: in a k8s_job_executor run (defs/annotations/jobs.py) it
# gets its own pod with these resources; the daemon's annotation runs give them to their run pod
# instead (defs/automation.py; ARCHITECTURE.md, "Running on Kubernetes").
HEAVY_STEP_TAGS = pod_resources_tags(DETECTOR_RESOURCES)
# What a partition's training examples read from the clusters.
CLUSTER_DIGEST_COLUMNS = ["capture_id", "cluster_id", "is_representative"]


def build_annotation_asset(source: CaptureSource) -> dg.AssetsDefinition:
    key = source.key("annotations", "annotations")

    @dg.asset(
        key=key,
        description=f"Face, sharpness, exposure and pHash of every {source.name} capture.",
        group_name="annotations",
        kinds={"onnx", "polars", "parquet"},
        partitions_def=source.partitions_def,
        backfill_policy=backfill_policy(),
        # Changes with the model, its weights and its parameters, so the UI marks old rows stale.
        code_version=ANNOTATOR_CODE_VERSION,
        automation_condition=every_partition(),
        ins={"manifest": lake_input(source.key("raw", "captures"), MANIFEST_COLUMNS)},
        check_specs=annotation_check_specs(key, source.selfie_face_floor),
        op_tags=HEAVY_STEP_TAGS,
    )
    def _asset(context: dg.AssetExecutionContext, deployment: Deployment, manifest: pl.DataFrame):
        """Annotate each distinct blob content once, reusing the lake's cache, on every core."""
        lake = deployment.lake
        rows = annotate_captures(manifest, lake.read, lake).join(
            manifest.select("capture_id", "source_partition"), on="capture_id"
        )
        yield dg.Output(
            rows, metadata={"dagster/row_count": rows.height, **annotation_metadata(rows)}
        )
        yield from annotation_check_results(rows, manifest, key, source.selfie_face_floor)

    return _asset


annotation_assets = [build_annotation_asset(source) for source in SOURCES]


@dg.asset(
    key=NEAR_DUPLICATES,
    description="Near-duplicate clusters across the whole lake, by pHash Hamming distance.",
    group_name="annotations",
    kinds={"polars", "parquet"},
    code_version=dedup.DEDUP_CODE_VERSION,
    automation_condition=pooled(),
    ins={
        s.name: lake_input(s.key("annotations", "annotations"), HASH_INPUT, allow_missing=True)
        for s in SOURCES
    },
    check_specs=[
        schema_check_spec(NEAR_DUPLICATES, NearDuplicates),
        duplicate_check_spec(NEAR_DUPLICATES),
    ],
)
def near_duplicates(context: dg.AssetExecutionContext, **annotations: pl.DataFrame):
    """Cluster every capture's pHash with every other one, across sources and partitions."""
    empty = pl.DataFrame(schema=dict.fromkeys(HASH_INPUT, pl.String))
    hashes = pl.concat(
        [empty.with_columns(source=pl.lit("", pl.String))]
        + [
            f.select(HASH_INPUT).with_columns(source=pl.lit(name))
            for name, f in annotations.items()
            if f.width
        ]
    )
    clusters = dedup.near_duplicates(hashes.drop("source", "source_partition"))
    placed = clusters.join(hashes.select("capture_id", *PARTITION_COLUMNS), on="capture_id")
    digests = partition_digests(placed, CLUSTER_DIGEST_COLUMNS)
    yield dg.Output(
        clusters,
        metadata={
            "dagster/row_count": clusters.height,
            **change_metadata(previous_digests(context.instance, NEAR_DUPLICATES), digests),
        },
    )
    yield schema_check(clusters, NearDuplicates, NEAR_DUPLICATES)
    yield duplicate_check_result(clusters, NEAR_DUPLICATES)
