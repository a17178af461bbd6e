"""Checks on consensus labels: coverage, confidence, annotator drift, taxonomy, accounting."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import polars as pl

from identity_data.contracts import ROW_ACCOUNTING
from identity_data.defs.labels import consensus as cs
from identity_data.defs.labels.metadata import LOW_CONFIDENCE
from identity_data.defs.labels.taxonomy import TAXONOMY_VERSION, taxonomy_frame
from identity_data.metadata import markdown_table, number

LABEL_COVERAGE = "label_coverage"
LOW_CONFIDENCE_SHARE = "low_confidence_share"
LABELS_IN_TAXONOMY = "labels_in_taxonomy"
ANNOTATOR_DRIFT = "annotator_drift"
MIN_COVERAGE = 0.8
MAX_LOW_CONFIDENCE_SHARE = 0.2
DRIFT_POINTS = 0.10
# Below this many labels in an export, a 10-point swing is within sampling noise (SE ~ 4 points).
DRIFT_MIN_LABELS = 50


def consensus_check_specs(labels: dg.AssetKey, quality: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            LABEL_COVERAGE,
            asset=labels,
            description=f"Per capture day, at least {MIN_COVERAGE:.0%} of the production captures "
            "have a consensus attack_type label.",
        ),
        dg.AssetCheckSpec(
            LOW_CONFIDENCE_SHARE,
            asset=labels,
            description=f"At most {MAX_LOW_CONFIDENCE_SHARE:.0%} of labels have a posterior "
            f"below {LOW_CONFIDENCE}.",
        ),
        dg.AssetCheckSpec(
            LABELS_IN_TAXONOMY,
            asset=labels,
            blocking=True,
            description=f"Every consensus label is allowed by taxonomy {TAXONOMY_VERSION}.",
        ),
        dg.AssetCheckSpec(
            ROW_ACCOUNTING,
            asset=labels,
            blocking=True,
            description="Pooled annotations = annotations for known captures + unmatched ones.",
        ),
        dg.AssetCheckSpec(
            ANNOTATOR_DRIFT,
            asset=quality,
            description=f"No annotator's accuracy against consensus in their latest export (of "
            f"{DRIFT_MIN_LABELS}+ labels) is more than {DRIFT_POINTS * 100:.0f} points below their "
            "history.",
        ),
    ]


def coverage_by_day(labels: pl.DataFrame, captures: pl.DataFrame) -> pl.DataFrame:
    """Share of each capture day's captures with a consensus attack_type label."""
    labelled = labels.filter(pl.col("task") == "attack_type").select("capture_id")
    return (
        captures.with_columns(labelled=pl.col("capture_id").is_in(labelled["capture_id"].implode()))
        .group_by("capture_date")
        .agg(captures=pl.len(), coverage=pl.col("labelled").mean())
        .sort("capture_date")
    )


def export_accuracy(annotations: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Each annotator's agreement with the consensus label, per export they contributed to."""
    return (
        annotations.join(
            labels.select("capture_id", "task", consensus="label"), on=["capture_id", "task"]
        )
        .group_by("annotator", "task", "export_id")
        .agg(
            accuracy=(pl.col("label") == pl.col("consensus")).mean(),
            n_labels=pl.len(),
            last_at=pl.col("created_at").max(),
        )
    )


def drift(annotations: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Latest export's accuracy against all earlier exports, per annotator and task."""
    per_export = export_accuracy(annotations, labels).with_columns(
        latest=pl.col("last_at") == pl.col("last_at").max().over("annotator", "task")
    )
    current = per_export.filter(pl.col("latest") & (pl.col("n_labels") >= DRIFT_MIN_LABELS))
    current = current.select("annotator", "task", "accuracy", "n_labels")
    history = per_export.filter(~pl.col("latest")).select(
        "annotator", "task", "accuracy", "n_labels"
    )
    return cs.annotator_drift(current, history, threshold=DRIFT_POINTS)


def consensus_checks(
    matched: pl.DataFrame,
    unmatched: pl.DataFrame,
    labels: pl.DataFrame,
    captures: pl.DataFrame,
    labels_key: dg.AssetKey,
    quality_key: dg.AssetKey,
    pooled_rows: int,
) -> Iterator[dg.AssetCheckResult]:
    coverage = coverage_by_day(labels, captures.filter(pl.col("source") == "production"))
    worst = number(coverage["coverage"].min(), 1.0)
    yield dg.AssetCheckResult(
        check_name=LABEL_COVERAGE,
        asset_key=labels_key,
        passed=worst >= MIN_COVERAGE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"min_daily_coverage": worst, "by_day": markdown_table(coverage)},
    )
    low = number((labels["posterior"] < LOW_CONFIDENCE).mean(), 0.0)
    yield dg.AssetCheckResult(
        check_name=LOW_CONFIDENCE_SHARE,
        asset_key=labels_key,
        passed=low <= MAX_LOW_CONFIDENCE_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={LOW_CONFIDENCE_SHARE: low},
    )
    outside = labels.join(taxonomy_frame(), on=["task", "label"], how="anti").height
    yield dg.AssetCheckResult(
        check_name=LABELS_IN_TAXONOMY,
        asset_key=labels_key,
        passed=outside == 0,
        metadata={"labels_outside_taxonomy": outside},
    )
    yield dg.AssetCheckResult(
        check_name=ROW_ACCOUNTING,
        asset_key=labels_key,
        passed=pooled_rows == matched.height + unmatched.height,
        metadata={"pooled": pooled_rows, "matched": matched.height, "unmatched": unmatched.height},
    )
    drifted = drift(matched, labels).filter("drifted")
    yield dg.AssetCheckResult(
        check_name=ANNOTATOR_DRIFT,
        asset_key=quality_key,
        passed=drifted.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"drifted": markdown_table(drifted) if drifted.height else "none"},
    )
