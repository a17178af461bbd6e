"""Where snapshots live in the lake: `snapshots/<id>/v<N>/manifest.parquet` + `snapshot.json`.

Every object is written create-only (a GCS generation precondition, a local hard link), so a
version, once written, is never overwritten. Erasure is the one exception to immutability: it
writes version N+1 without the erased rows and deletes version N (ARCHITECTURE.md says why).
The JSON is written after the parquet, so a version is complete once its snapshot.json exists.
"""

from __future__ import annotations

import hashlib
import io
import json
import re

import polars as pl

from identity_data.stores.blobs import BlobStore

PREFIX = "snapshots"
MANIFEST, INFO = "manifest.parquet", "snapshot.json"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION = re.compile(r"v([0-9]+)")


class SnapshotError(ValueError):
    """A snapshot is missing, exists already, or fails verification; the message says which."""


def check_id(snapshot_id: str) -> str:
    """Ids become object names: letters, digits, `.`, `_`, `-` only, so no path can escape."""
    if not _ID.fullmatch(snapshot_id):
        raise SnapshotError(
            "a snapshot id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit"
        )
    return snapshot_id


def key(snapshot_id: str, version: int, name: str) -> str:
    return f"{PREFIX}/{check_id(snapshot_id)}/v{version}/{name}"


def manifest_hash(manifest: pl.DataFrame) -> str:
    """sha256 of the rows in capture order as CSV: independent of parquet encoder details."""
    canonical = manifest.sort("capture_id").write_csv()
    return hashlib.sha256(canonical.encode()).hexdigest()


def versions(lake: BlobStore, snapshot_id: str) -> list[int]:
    """Complete versions (those with a snapshot.json), oldest first."""
    found = set()
    for obj in lake.list(f"{PREFIX}/{check_id(snapshot_id)}/", (INFO,)):
        match = _VERSION.fullmatch(obj.key.split("/")[-2])
        if match:
            found.add(int(match.group(1)))
    return sorted(found)


def snapshot_ids(lake: BlobStore) -> list[str]:
    return sorted({o.key.split("/")[1] for o in lake.list(f"{PREFIX}/", (INFO,))})


def write_version(
    lake: BlobStore, snapshot_id: str, version: int, manifest: pl.DataFrame, info: dict
) -> str:
    """Write one version create-only; returns the manifest hash recorded in its info."""
    digest = manifest_hash(manifest)
    buf = io.BytesIO()
    manifest.sort("capture_id").write_parquet(buf)
    info = {**info, "snapshot_id": snapshot_id, "version": version, "manifest_sha256": digest}
    for name, data in (
        (MANIFEST, buf.getvalue()),
        (INFO, json.dumps(info, indent=2, sort_keys=True).encode()),
    ):
        if not lake.put_if_absent(key(snapshot_id, version, name), data):
            raise SnapshotError(
                f"snapshot {snapshot_id} version {version} exists already; snapshots are written "
                "once: make a new snapshot id"
            )
    return digest


def read_info(lake: BlobStore, snapshot_id: str, version: int) -> dict:
    return json.loads(lake.read(key(snapshot_id, version, INFO)))


def read_manifest(lake: BlobStore, snapshot_id: str, version: int) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(lake.read(key(snapshot_id, version, MANIFEST))))


def delete_version(lake: BlobStore, snapshot_id: str, version: int) -> None:
    """The info first: a half-deleted version is then incomplete, never read as current."""
    for name in (INFO, MANIFEST):
        lake.delete(key(snapshot_id, version, name))
