"""A sensor on the campaign drop folders."""

from __future__ import annotations

from pathlib import PurePosixPath

import dagster as dg

from identity_data.safety import check_folder_name
from identity_data.sources import BY_NAME, campaigns
from identity_data.stores.blobs import BlobStore, ObjectInfo
from identity_data.watch import build_drop_sensor

CAMPAIGN_PREFIX = "landing/campaigns"


def campaign_of(obj: ObjectInfo, store: BlobStore) -> str | None:
    """A campaign is ready when its manifest lands; the folder name is the partition."""
    path = PurePosixPath(obj.key)
    if path.name != "manifest.csv" or path.parent.parent != PurePosixPath(CAMPAIGN_PREFIX):
        return None
    return check_folder_name(path.parent.name, f"campaign folder of {CAMPAIGN_PREFIX}")


campaign_sensor = build_drop_sensor(
    name="campaign_drop_sensor",
    prefix=CAMPAIGN_PREFIX,
    partitions_def=campaigns,
    target=dg.AssetSelection.assets(
        BY_NAME["campaign"].key("raw", "captures"), BY_NAME["campaign"].key("raw", "quarantine")
    ),
    partition_for=campaign_of,
    description="Adds a campaign partition when its manifest.csv lands, and extracts it.",
    job_name="extract_campaign",
    suffixes=("manifest.csv",),
)
