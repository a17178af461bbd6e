"""A sensor on the lake's label-exports/ prefix."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

import dagster as dg

from identity_data.defs.labels.partitions import label_exports
from identity_data.safety import VERSION_CHARS, UnsafePathError, check_partition_key, describe
from identity_data.stores.blobs import BlobStore, ObjectInfo
from identity_data.watch import build_drop_sensor

EXPORT_VOTES = dg.AssetKey(["labels", "export_votes"])
EXPORT_QUARANTINE = dg.AssetKey(["labels", "export_quarantine"])
EXPORT_PREFIX = "label-exports"
EXPORT_SUFFIXES = (".json", ".csv")
EMPTY_MAX_BYTES = 64


def is_empty_export(obj: ObjectInfo, store: BlobStore) -> bool:
    """An empty JSON list (BOM and white space allowed). Zero bytes is not empty but broken: it
    gets a partition whose run fails naming the file, so it is never silently ignored."""
    if obj.size > EMPTY_MAX_BYTES or obj.size == 0:
        return False
    return store.read(obj.key).removeprefix(b"\xef\xbb\xbf").translate(None, b" \t\r\n") in (
        b"",
        b"[]",
    )


def version_tag(version: str) -> str:
    """The content version as 12 hex digits: an md5 prefix, or a digest of a non-hex version
    (GCS crc32c is base64, whose `/` and `+` have no place in a partition key)."""
    if not re.fullmatch(r"[0-9a-f]+", version):
        version = hashlib.sha256(version.encode()).hexdigest()
    return version[:VERSION_CHARS]


def export_partition(obj: ObjectInfo, store: BlobStore) -> str | None:
    """`<file name>@<version tag>`: a file re-uploaded with new content gets a new partition.

    An export holding `[]` carries no labels: it gets no partition and no run. A name that breaks
    the partition-key grammar raises UnsafePathError (the sensor logs and skips it).
    """
    path = PurePosixPath(obj.key)
    if path.parent != PurePosixPath(EXPORT_PREFIX):
        raise UnsafePathError(
            f"label export {describe(obj.key)} is not directly in {EXPORT_PREFIX}/"
        )
    partition = check_partition_key(f"{path.name}@{version_tag(obj.version)}", "label export")
    if is_empty_export(obj, store):
        return None
    return partition


def export_file(partition: str) -> tuple[str, str]:
    """(object key, version tag) of a partition, after checking its grammar: the UI and the API
    accept any key, and this one becomes an object key."""
    name, _, version = check_partition_key(partition, "label export partition").rpartition("@")
    if not name or not re.fullmatch(rf"[0-9a-f]{{{VERSION_CHARS}}}", version):
        raise UnsafePathError(
            f"label export partition {describe(partition)} is not <file name>@<12 hex digits>"
        )
    return f"{EXPORT_PREFIX}/{name}", version


label_export_sensor = build_drop_sensor(
    name="label_export_sensor",
    prefix=EXPORT_PREFIX,
    partitions_def=label_exports,
    target=dg.AssetSelection.assets(EXPORT_VOTES, EXPORT_QUARANTINE),
    partition_for=export_partition,
    description="Adds a partition per new or changed label export and parses it.",
    job_name="parse_label_export",
    suffixes=EXPORT_SUFFIXES,
)
