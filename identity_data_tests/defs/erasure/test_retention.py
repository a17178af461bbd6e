"""Retention picks old production captures, sparing those a snapshot still in use holds."""

from datetime import date

import polars as pl
from upath import UPath

from identity_data.defs.erasure.retention import expired_captures
from identity_data.defs.snapshots import store
from identity_data.stores.blobs import LocalBlobStore

TODAY = date(2026, 12, 1)


def test_old_captures_expire_unless_a_recent_snapshot_holds_them(tmp_path):
    lake = LocalBlobStore(tmp_path)
    folder = tmp_path / "tables" / "raw" / "prod_captures"
    folder.mkdir(parents=True)
    pl.DataFrame(
        {
            "capture_id": ["old-1", "old-2", "old-3", "new-1"],
            "capture_date": [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3), TODAY],
        }
    ).write_parquet(folder / "2025-01-01.parquet")
    recent = pl.DataFrame({"capture_id": ["old-1"]})
    stale = pl.DataFrame({"capture_id": ["old-2"]})
    store.write_version(lake, "recent", 1, recent, {"created_at": "2026-11-01T00:00:00+00:00"})
    store.write_version(lake, "stale", 1, stale, {"created_at": "2025-02-01T00:00:00+00:00"})
    expired = expired_captures(UPath(tmp_path / "tables"), lake, TODAY, 365, 180)
    assert expired == {"old-2", "old-3"}
