"""A sensor on the lake's label-exports/ prefix."""

from __future__ import annotations

from pathlib import PurePosixPath

import dagster as dg

from identity_data.defs.labels.partitions import label_exports
from identity_data.stores.blobs import BlobStore, ObjectInfo
from identity_data.watch import build_drop_sensor

EXPORT_PREFIX = "label-exports"
EXPORT_SUFFIXES = (".json", ".csv")
VERSION_CHARS = 12
EMPTY_MAX_BYTES = 64


def is_empty_export(obj: ObjectInfo, store: BlobStore) -> bool:
    """Zero bytes, or an empty JSON list (BOM and white space allowed)."""
    if obj.size > EMPTY_MAX_BYTES:
        return False
    return store.read(obj.key).removeprefix(b"\xef\xbb\xbf").translate(None, b" \t\r\n") in (
        b"",
        b"[]",
    )


def export_partition(obj: ObjectInfo, store: BlobStore) -> str | None:
    """`<file name>@<md5 prefix>`: a file re-uploaded with new content gets a new partition.

    An empty export carries no labels: it gets no partition, no run and no error.
    """
    if is_empty_export(obj, store):
        return None
    return f"{PurePosixPath(obj.key).name}@{obj.version[:VERSION_CHARS]}"


def export_file(partition: str) -> tuple[str, str]:
    """(object key, md5 prefix) of a partition."""
    name, _, version = partition.rpartition("@")
    return f"{EXPORT_PREFIX}/{name}", version


label_export_sensor = build_drop_sensor(
    name="label_export_sensor",
    prefix=EXPORT_PREFIX,
    partitions_def=label_exports,
    target=dg.AssetSelection.assets(
        dg.AssetKey(["labels", "export_annotations"]), dg.AssetKey(["labels", "export_quarantine"])
    ),
    partition_for=export_partition,
    description="Adds a partition per new or changed label export and parses it.",
    job_name="parse_label_export",
    suffixes=EXPORT_SUFFIXES,
)
