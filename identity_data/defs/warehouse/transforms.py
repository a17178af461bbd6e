"""Shaping lake tables into warehouse rows: plain polars functions."""

from __future__ import annotations

import polars as pl

from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.defs.warehouse.schemas import (
    TrainingExample,
    WarehouseAnnotation,
    WarehouseCapture,
)
from identity_data.validation import conform

# Subject-disjoint splits: every capture of one subject lands in the same split, so a model is
# never evaluated on a face it trained on. The pseudonym is an HMAC, hence uniformly distributed.
ANNOTATION_COLUMNS = [
    "capture_id",
    "face_count",
    "face_score",
    "face_area_share",
    "sharpness",
    "brightness",
]
SPLIT_BUCKETS = pl.Series(["train"] * 8 + ["validation", "test"])


def warehouse_captures(manifest: pl.DataFrame) -> pl.DataFrame:
    return conform(manifest, WarehouseCapture)


def warehouse_annotations(annotations: pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    """Annotations tied to their capture's source and day, for date-partitioned queries."""
    placed = manifest.select("capture_id", "source", "capture_date")
    return conform(annotations.join(placed, on="capture_id", how="left"), WarehouseAnnotation)


def subject_split(pseudonym: pl.Expr) -> pl.Expr:
    bucket = pseudonym.str.slice(0, 8).str.to_integer(base=16) % len(SPLIT_BUCKETS)
    return bucket.replace_strict(list(range(len(SPLIT_BUCKETS))), SPLIT_BUCKETS.to_list())


def wide_labels(labels: pl.DataFrame) -> pl.DataFrame:
    """(capture, task) rows to one row per capture with `<task>` and `<task>_posterior`."""
    return (
        labels.select(
            "capture_id",
            *(pl.when(pl.col("task") == t).then(pl.col("label")).alias(t) for t in TAXONOMY),
            *(
                pl.when(pl.col("task") == t).then(pl.col("posterior")).alias(f"{t}_posterior")
                for t in TAXONOMY
            ),
        )
        .group_by("capture_id")
        .agg(pl.all().drop_nulls().first())
    )


def training_examples(
    manifest: pl.DataFrame,
    annotations: pl.DataFrame,
    labels: pl.DataFrame,
    duplicates: pl.DataFrame,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Usable captures with labels and annotations, and how many were left out and why.

    Usable means: annotated from a decoded image, an attack_type consensus label, and not a
    redundant copy in a near-duplicate cluster (only the cluster's representative is kept, so
    near-copies cannot leak across splits).
    """
    clusters = duplicates.select(
        "capture_id",
        near_duplicate_cluster=pl.when(pl.len().over("cluster_id") > 1).then("cluster_id"),
        redundant=~pl.col("is_representative"),
    )
    joined = (
        manifest.join(
            annotations.select(ANNOTATION_COLUMNS, annotation_status="decode_status"),
            on="capture_id",
            how="left",
        )
        .join(wide_labels(labels), on="capture_id", how="left")
        .join(clusters, on="capture_id", how="left")
        .with_columns(split=subject_split(pl.col("subject_pseudonym")))
    )
    # Each left-out capture is counted once, under the first reason that applies.
    reasons = {
        "not_annotated": pl.col("annotation_status").fill_null("missing") != "ok",
        "unlabelled": pl.col("attack_type").is_null(),
        "near_duplicate_copy": pl.col("redundant").fill_null(False),
    }
    first_reason = pl.lit(None, pl.String)
    for name, cond in reversed(reasons.items()):
        first_reason = pl.when(cond).then(pl.lit(name)).otherwise(first_reason)
    joined = joined.with_columns(excluded=first_reason)
    excluded = {
        f"excluded_{name}": joined.filter(pl.col("excluded") == name).height for name in reasons
    }
    usable = joined.filter(pl.col("excluded").is_null())
    return conform(usable, TrainingExample), {"captures_in": manifest.height, **excluded}
