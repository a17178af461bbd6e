"""Freezing training examples into a snapshot manifest: plain polars functions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

from identity_data.defs.snapshots.schemas import SnapshotManifest
from identity_data.validation import conform

# Where a blob sits relative to the lake root; the URI's scheme and bucket differ by deployment.
BLOB_KEY = r"(raw/captures/.+)$"


@dataclass(frozen=True)
class SnapshotFilters:
    """Which usable training examples a snapshot keeps (near-duplicate copies never enter:
    training_examples keeps one representative per cluster)."""

    min_posterior: float = 0.0
    exclude_sources: tuple[str, ...] = field(default_factory=tuple)
    exclude_capture_types: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {**asdict(self), "near_duplicates": "one representative per cluster"}


def select_examples(
    examples: pl.DataFrame,
    captures: pl.DataFrame,
    filters: SnapshotFilters,
    snapshot_id: str,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The snapshot manifest, and how many usable examples each filter left out."""
    joined = examples.join(
        captures.select("capture_id", blob_sha256="sha256"), on="capture_id", how="left"
    )
    reasons = {
        "excluded_source": pl.col("source").is_in(list(filters.exclude_sources)),
        "excluded_capture_type": pl.col("capture_type").is_in(list(filters.exclude_capture_types)),
        "below_min_posterior": pl.col("attack_type_posterior").fill_null(0.0)
        < filters.min_posterior,
        "blob_digest_missing": pl.col("blob_sha256").is_null(),
    }
    first_reason = pl.lit(None, pl.String)
    for name, cond in reversed(reasons.items()):
        first_reason = pl.when(cond).then(pl.lit(name)).otherwise(first_reason)
    joined = joined.with_columns(excluded=first_reason)
    counts = {name: joined.filter(pl.col("excluded") == name).height for name in reasons}
    kept = joined.filter(pl.col("excluded").is_null()).with_columns(
        snapshot_id=pl.lit(snapshot_id),
        blob_key=pl.col("blob_uri").str.extract(BLOB_KEY),
    )
    return conform(kept, SnapshotManifest).sort("capture_id"), counts


def balance_table(manifest: pl.DataFrame, label: str = "attack_type") -> pl.DataFrame:
    """Per split and class: count, share of the split, overall share and the gap in points.

    Every (split, class) pair is listed, so a class missing from a split shows as share 0.
    """
    overall = manifest.group_by(label).agg(overall_share=pl.len() / manifest.height)
    pairs = manifest.select(pl.col("split").unique()).join(overall, how="cross")
    counts = manifest.group_by("split", label).agg(count=pl.len())
    return (
        pairs.join(counts, on=["split", label], how="left")
        .with_columns(pl.col("count").fill_null(0))
        .with_columns(share=pl.col("count") / pl.col("count").sum().over("split"))
        .with_columns(gap_points=(pl.col("share") - pl.col("overall_share")).abs() * 100)
        .select("split", label, "count", "share", "overall_share", "gap_points")
        .sort("split", label)
    )


def counts_by_split(manifest: pl.DataFrame) -> dict[str, int]:
    return dict(manifest.group_by("split").len().sort("split").iter_rows())
