"""Checks on inferred annotations: face-detection rate, duplicate rate.

The undecodable rate is a raw check (`defs/raw/checks.py`): only the raw extraction sees the blobs
that never reach the manifest, and so never reach an annotation row."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import polars as pl

from identity_data.defs.annotations.schemas import PartitionedAnnotations
from identity_data.metadata import number
from identity_data.validation import schema_check, schema_check_spec

SELFIE_FACE_RATE = "selfie_face_rate"
DUPLICATE_RATE = "duplicate_rate"
# Below this many selfies a rate is noise (one miss in 4 is 25 points): the check reports, passes.
MIN_SELFIES = 20
DUPLICATE_CEILING = 0.15


def annotation_check_specs(key: dg.AssetKey, face_floor: float) -> list[dg.AssetCheckSpec]:
    return [
        schema_check_spec(key, PartitionedAnnotations),
        dg.AssetCheckSpec(
            SELFIE_FACE_RATE,
            asset=key,
            description=f"At least {face_floor:.0%} of decodable selfies (other than an open "
            f"dataset's known non-faces) have a detected face; judged from {MIN_SELFIES} selfies.",
        ),
    ]


def annotation_check_results(
    rows: pl.DataFrame, manifest: pl.DataFrame, key: dg.AssetKey, face_floor: float
) -> Iterator[dg.AssetCheckResult]:
    yield schema_check(rows, PartitionedAnnotations, key)
    selfies = manifest.filter(
        (pl.col("capture_type") == "selfie") & (pl.col("source_label").fill_null("") != "non_face")
    ).select("capture_id")
    selfies = rows.join(selfies, on="capture_id").filter(pl.col("decode_status") == "ok")
    face_rate = number((selfies["face_count"] > 0).mean(), 0.0) if selfies.height else None
    yield dg.AssetCheckResult(
        check_name=SELFIE_FACE_RATE,
        asset_key=key,
        passed=selfies.height < MIN_SELFIES or (face_rate or 0.0) >= face_floor,
        metadata={"selfies": selfies.height, "face_rate": face_rate or 0.0, "floor": face_floor},
    )


def duplicate_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DUPLICATE_RATE,
        asset=key,
        description="Share of captures that are redundant near-copies of another capture "
        f"(warns above {DUPLICATE_CEILING:.0%}).",
    )


def duplicate_check_result(clusters: pl.DataFrame, key: dg.AssetKey) -> dg.AssetCheckResult:
    redundant = int((~clusters["is_representative"]).sum()) if clusters.height else 0
    rate = redundant / clusters.height if clusters.height else 0.0
    return dg.AssetCheckResult(
        check_name=DUPLICATE_RATE,
        asset_key=key,
        passed=rate <= DUPLICATE_CEILING,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "captures": clusters.height,
            "redundant_copies": redundant,
            DUPLICATE_RATE: rate,
        },
    )
