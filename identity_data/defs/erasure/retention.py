"""The retention policy: production captures older than N days leave every store, unless a
snapshot made within the last M days (one that models are still compared on) holds them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from upath import UPath

from identity_data.defs.erasure.erase import parquet_files, read_parquet
from identity_data.defs.snapshots import store as snapshot_store
from identity_data.sources import BY_NAME
from identity_data.stores.blobs import BlobStore

DEFAULT_MAX_AGE_DAYS = 365
DEFAULT_SNAPSHOT_IN_USE_DAYS = 180


def snapshots_in_use(lake: BlobStore, today: date, in_use_days: int) -> frozenset[str]:
    """Capture ids held by the current version of every snapshot made within `in_use_days`."""
    held: set[str] = set()
    for snapshot_id in snapshot_store.snapshot_ids(lake):
        version = snapshot_store.versions(lake, snapshot_id)[-1]
        created = datetime.fromisoformat(
            snapshot_store.read_info(lake, snapshot_id, version)["created_at"]
        ).date()
        if (today - created).days <= in_use_days:
            held |= set(snapshot_store.read_manifest(lake, snapshot_id, version)["capture_id"])
    return frozenset(held)


def expired_captures(
    tables: UPath, lake: BlobStore, today: date, max_age_days: int, in_use_days: int
) -> frozenset[str]:
    cutoff = today - timedelta(days=max_age_days)
    old: set[str] = set()
    for path in parquet_files(tables.joinpath(*BY_NAME["production"].key("raw", "captures").path)):
        frame = read_parquet(path).filter(pl.col("capture_date") < cutoff)
        old |= set(frame["capture_id"])
    return frozenset(old) - snapshots_in_use(lake, today, in_use_days)
