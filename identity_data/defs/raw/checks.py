"""Checks on the raw zone that need every blob of a partition, the quarantined ones included."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

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
    manifest_rows: int, by_status: Mapping[str, int], key: dg.AssetKey
) -> dg.AssetCheckResult:
    """Every blob the extraction tried: decodable ones are in the manifest (`manifest_rows`),
    the others carry their decode status in the quarantine (`by_status`: quarantined rows per
    decode status; records failing before their blob have none)."""
    undecodable = sum(by_status.values())
    blobs = manifest_rows + undecodable
    rate = undecodable / blobs if blobs else 0.0
    return dg.AssetCheckResult(
        check_name=UNDECODABLE_RATE,
        asset_key=key,
        passed=rate <= UNDECODABLE_CEILING,
        # A source can deliver broken blobs (the sample plants some): flag it, do not fail it.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "blobs": blobs,
            "undecodable": undecodable,
            UNDECODABLE_RATE: rate,
            "ceiling": UNDECODABLE_CEILING,
            "by_status": dg.MetadataValue.json(dict(by_status)),
        },
    )
