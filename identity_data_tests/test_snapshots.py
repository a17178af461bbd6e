"""The snapshot reader on GCS (fake-gcs-server) and locally: same layout, same verification."""

from __future__ import annotations

import uuid

import polars as pl
import pytest

from identity_data import snapshots
from identity_data.defs.snapshots import store
from identity_data.stores.blobs import BlobStore, LocalBlobStore, content_key
from identity_data.stores.gcs import GcsBlobStore
from identity_data_tests.services import Service, storage_client


def write_snapshot(lake: BlobStore) -> pl.DataFrame:
    rows = []
    for i in range(3):
        data = f"image {i}".encode()
        key, sha = content_key(data, ".jpg")
        lake.put_if_absent(key, data)
        rows.append({"capture_id": f"c{i}", "blob_key": key, "blob_sha256": sha})
    manifest = pl.DataFrame(rows).with_columns(
        attack_type=pl.lit("genuine"),
        split=pl.lit("train"),
        **{c: pl.lit(None) for c in snapshots.LABEL_COLUMNS if c not in ("attack_type", "split")},
    )
    store.write_version(lake, "s1", 1, manifest, {"filters": {}})
    return manifest


@pytest.fixture(params=["local", "gcs"])
def lake(request: pytest.FixtureRequest, tmp_path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    fake_gcs: Service = request.getfixturevalue("fake_gcs")
    client = storage_client(fake_gcs.url)
    bucket = f"snap-{uuid.uuid4().hex[:8]}"
    client.create_bucket(bucket)
    return GcsBlobStore(bucket, "lake", client=client)


def test_open_verifies_and_yields_each_image_with_its_labels(lake: BlobStore) -> None:
    manifest = write_snapshot(lake)
    snap = snapshots.open("s1", lake)
    assert snap.version == 1 and snap.frame.height == 3
    images = [(image, labels["capture_id"]) for image, labels in snap]
    assert images == [(f"image {i}".encode(), f"c{i}") for i in range(3)]
    assert snap.manifest_sha256 == store.manifest_hash(manifest)
    assert store.snapshot_ids(lake) == ["s1"]
    with pytest.raises(store.SnapshotError, match="exists already"):
        store.write_version(lake, "s1", 1, manifest, {})


def test_a_redacted_version_replaces_the_old_one_for_readers(lake: BlobStore) -> None:
    manifest = write_snapshot(lake)
    store.write_version(lake, "s1", 2, manifest.slice(1), {"filters": {}, "history": [{"v": 1}]})
    store.delete_version(lake, "s1", 1)
    snap = snapshots.open("s1", lake)
    assert snap.version == 2 and snap.frame.height == 2 and snap.history == [{"v": 1}]
    assert not lake.exists(store.key("s1", 1, store.MANIFEST))
