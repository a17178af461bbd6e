"""Checks on the raw zone that need every blob of a partition, the quarantined ones included."""

from __future__ import annotations

import dagster as dg
import polars as pl

from identity_data.metadata import value_counts

UNDECODABLE_RATE = "undecodable_rate"
UNDECODABLE_CEILING = 0.05


def undecodable_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        UNDECODABLE_RATE,
        asset=key,
        description=f"At most {UNDECODABLE_CEILING:.0%} of the partition's blobs (manifest plus "
        "quarantined blobs) are missing or fail to decode.",
    )


def undecodable_result(
    manifest: pl.DataFrame, quarantine: pl.DataFrame, key: dg.AssetKey
) -> dg.AssetCheckResult:
    """Every blob the extraction tried: decodable ones are in the manifest, the others carry
    their decode status in the quarantine (records failing before their blob have none)."""
    failed = quarantine.filter(pl.col("decode_status").is_not_null())
    blobs = manifest.height + failed.height
    rate = failed.height / blobs if blobs else 0.0
    return dg.AssetCheckResult(
        check_name=UNDECODABLE_RATE,
        asset_key=key,
        passed=rate <= UNDECODABLE_CEILING,
        # A source can deliver broken blobs (the sample plants some): flag it, do not fail it.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "blobs": blobs,
            "undecodable": failed.height,
            UNDECODABLE_RATE: rate,
            "ceiling": UNDECODABLE_CEILING,
            "by_status": value_counts(failed["decode_status"]),
        },
    )
