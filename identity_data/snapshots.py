"""Read a training snapshot back, verified: `open(snapshot_id)` -> frame + verified blob reads.

    snap = identity_data.snapshots.open("2026-12-01")
    snap.frame                       # the manifest (polars), one row per example
    for image, labels in snap:       # image bytes whose sha256 was checked, and the labels
        ...

Works on the local lake and on GCS (the deployment's lake, from the environment). The manifest
hash is checked on open; each blob's sha256 on read. After an erasure the current version is
the redacted one; `history` lists the hashes it replaced.

CLI: `python -m identity_data.snapshots create|read|list` (see --help).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from identity_data.defs.snapshots import store
from identity_data.defs.snapshots.store import SnapshotError
from identity_data.stores.blobs import BlobStore
from identity_data.stores.deployment import blob_store

LABEL_COLUMNS = (
    "attack_type",
    "attack_type_posterior",
    "document_type",
    "document_type_posterior",
    "capture_quality",
    "capture_quality_posterior",
    "split",
    "capture_type",
    "source",
)


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    version: int
    info: dict
    frame: pl.DataFrame
    lake: BlobStore

    @property
    def manifest_sha256(self) -> str:
        return self.info["manifest_sha256"]

    @property
    def history(self) -> list[dict]:
        """Earlier versions this one replaced by erasure: version, hash, rows removed."""
        return list(self.info.get("history", []))

    def read_blob(self, blob_key: str, sha256: str) -> bytes:
        data = self.lake.read(blob_key)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SnapshotError(
                f"snapshot {self.snapshot_id}: blob {blob_key} does not match its sha256"
            )
        return data

    def __iter__(self) -> Iterator[tuple[bytes, dict]]:
        for row in self.frame.iter_rows(named=True):
            labels = {c: row[c] for c in ("capture_id", *LABEL_COLUMNS)}
            yield self.read_blob(row["blob_key"], row["blob_sha256"]), labels


def open(snapshot_id: str, lake: BlobStore | None = None) -> Snapshot:
    """The current version of a snapshot, its manifest hash verified."""
    if lake is None:
        from identity_data.settings import resolve_settings

        lake = blob_store(resolve_settings().lake_url)
    found = store.versions(lake, snapshot_id)
    if not found:
        raise SnapshotError(f"no snapshot {snapshot_id} in {lake.uri(store.PREFIX)}")
    version = found[-1]
    info = store.read_info(lake, snapshot_id, version)
    frame = store.read_manifest(lake, snapshot_id, version)
    if store.manifest_hash(frame) != info["manifest_sha256"]:
        raise SnapshotError(
            f"snapshot {snapshot_id} v{version}: manifest does not match its recorded hash"
        )
    return Snapshot(snapshot_id, version, info, frame, lake)


def create(
    snapshot_id: str,
    min_posterior: float = 0.0,
    exclude_sources: tuple[str, ...] = (),
    exclude_capture_types: tuple[str, ...] = (),
) -> bool:
    """Add the snapshot partition on this instance and materialize it, as the UI would."""
    import dagster as dg

    from identity_data.definitions import defs as load_defs
    from identity_data.definitions import materializable
    from identity_data.defs.snapshots.assets import SNAPSHOT
    from identity_data.defs.snapshots.partitions import SNAPSHOTS

    store.check_id(snapshot_id)
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(SNAPSHOTS, snapshot_id):
        instance.add_dynamic_partitions(SNAPSHOTS, [snapshot_id])
    defs = load_defs()
    config = {
        "min_posterior": min_posterior,
        "exclude_sources": list(exclude_sources),
        "exclude_capture_types": list(exclude_capture_types),
    }
    result = dg.materialize(
        materializable(defs),
        selection=dg.AssetSelection.assets(SNAPSHOT),
        partition_key=snapshot_id,
        instance=instance,
        resources=dict(defs.resources or {}),
        run_config={
            "ops": {"snapshots__training_snapshot": {"config": config}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        raise_on_error=False,
    )
    return result.success


def _print_summary(snap: Snapshot) -> None:
    print(f"snapshot {snap.snapshot_id} v{snap.version}: {snap.frame.height} examples")
    print(f"manifest sha256 {snap.manifest_sha256}")
    print(f"filters {json.dumps(snap.info['filters'], sort_keys=True)}")
    from identity_data.defs.snapshots.build import balance_table

    with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True, float_precision=3):
        print(balance_table(snap.frame))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m identity_data.snapshots")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("create", help="make a snapshot (a new partition) and materialize it")
    make.add_argument("snapshot_id")
    make.add_argument("--min-posterior", type=float, default=0.0)
    make.add_argument("--exclude-source", action="append", default=[])
    make.add_argument("--exclude-capture-type", action="append", default=[])
    read = sub.add_parser("read", help="open a snapshot and verify every blob's sha256")
    read.add_argument("snapshot_id")
    sub.add_parser("list", help="snapshot ids in the lake")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            from identity_data.settings import resolve_settings

            print("\n".join(store.snapshot_ids(blob_store(resolve_settings().lake_url))))
            return 0
        started = time.perf_counter()
        if args.command == "create":
            ok = create(
                args.snapshot_id,
                args.min_posterior,
                tuple(args.exclude_source),
                tuple(args.exclude_capture_type),
            )
            if not ok:
                print(f"snapshot {args.snapshot_id} failed: see the run in the Dagster UI")
                return 1
            snap = open(args.snapshot_id)
            print(f"created in {time.perf_counter() - started:.1f}s")
            _print_summary(snap)
            return 0
        snap = open(args.snapshot_id)
        size = sum(len(image) for image, _ in snap)
        _print_summary(snap)
        print(
            f"verified {snap.frame.height} blobs ({size} bytes) and the manifest hash in "
            f"{time.perf_counter() - started:.1f}s"
        )
        return 0
    except SnapshotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
