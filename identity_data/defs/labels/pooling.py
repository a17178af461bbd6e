"""Consensus assembly as plain functions: supersede, pool, match to captures, aggregate, conform."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from identity_data.defs.labels import consensus as cs
from identity_data.defs.labels.parse import drop_superseded, pool_latest
from identity_data.defs.labels.schemas import ParsedAnnotations, WarehouseLabel
from identity_data.defs.raw.schemas import CaptureManifest
from identity_data.validation import conform, empty_frame

# What consensus reads of each raw manifest: enough to place a label in its source partition.
CAPTURE_COLUMNS = ["capture_id", "capture_date", "source", "source_partition"]


@dataclass(frozen=True)
class ConsensusTables:
    """Consensus labels and annotator quality, and the annotations they were computed from."""

    labels: pl.DataFrame
    quality: pl.DataFrame
    matched: pl.DataFrame
    unmatched: pl.DataFrame
    superseded_rows: int
    pooled_rows: int


def known_captures(manifests: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Every capture id any raw manifest holds; an unmaterialized source loads as no columns."""
    empty = empty_frame(CaptureManifest).select(CAPTURE_COLUMNS)
    return pl.concat([empty, *(m.select(CAPTURE_COLUMNS) for m in manifests if m.width)])


def assemble_consensus(
    annotations: pl.DataFrame, exports: Sequence[str], captures: pl.DataFrame
) -> ConsensusTables:
    """Drop superseded export versions (`exports` in the order they were added), pool the rest
    (latest wins), split by whether a raw manifest holds the capture, aggregate the matched ones
    and tie each label to its capture's day, source and the export that last fed it."""
    current, superseded = drop_superseded(
        annotations if annotations.width else empty_frame(ParsedAnnotations), list(exports)
    )
    pooled = pool_latest(current)
    ids = captures.select("capture_id")
    matched = pooled.join(ids, on="capture_id", how="semi")
    unmatched = pooled.join(ids, on="capture_id", how="anti")
    labels, quality = cs.dawid_skene(matched)
    latest_export = matched.group_by("capture_id", "task").agg(
        export_id=pl.col("export_id").sort_by("created_at").last()
    )
    labels = conform(
        labels.join(captures, on="capture_id", how="left").join(
            latest_export, on=["capture_id", "task"], how="left"
        ),
        WarehouseLabel,
    )
    return ConsensusTables(labels, quality, matched, unmatched, superseded.height, pooled.height)
