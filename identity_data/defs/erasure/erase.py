"""Erasure of subjects or captures from every store: plain functions over the deployment.

One path serves a subject's request and the retention sweep: resolve the captures to erase from
the raw manifests, then drop their rows from every lake table, the blobs no remaining capture
references, their warehouse rows and their rows in every snapshot (as a new redacted version).
Each pass is idempotent, so it can be repeated until no concurrent run could have written
behind it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

import polars as pl
from upath import UPath

from identity_data.defs.snapshots import store as snapshot_store
from identity_data.defs.snapshots.build import BLOB_KEY, balance_table, counts_by_split
from identity_data.defs.snapshots.schemas import SNAPSHOT_TABLE
from identity_data.defs.warehouse.tables import TABLES
from identity_data.stores.blobs import BlobStore
from identity_data.stores.content_cache import erase_contents
from identity_data.stores.warehouse import TableSpec, WarehouseBackend
from identity_data.tombstones import digest, drop_tombstoned

# A capture source's records of one partition, as raw extraction reads them.
RecordReader = Callable[[str, str], Iterable[pl.DataFrame]]
QUARANTINE_SUFFIX = "_quarantine"

# Tables under tables/erasure/ are the audit itself: they hold counts and hashes only.
AUDIT_FOLDER = "erasure"
CLUSTER_COLUMNS = ("cluster_id", "near_duplicate_cluster")
# The rows a warehouse table's writer replaces together; erasure rewrites exactly those slices.
WAREHOUSE_SLICES: dict[str, tuple[str, ...]] = {
    "captures": ("source", "source_partition"),
    "annotations": ("source", "source_partition"),
    "training_examples": ("source", "source_partition"),
    "labels": (),
    SNAPSHOT_TABLE.name: ("snapshot_id",),
}


@dataclass(frozen=True)
class Erased:
    """What to remove: subjects' pseudonyms, their captures, and those captures' blobs; and
    their quarantined source records (by `record`, which carries no pseudonym)."""

    pseudonyms: frozenset[str]
    capture_ids: frozenset[str]
    sha256s: frozenset[str]
    blob_keys: frozenset[str]
    records: frozenset[str] = frozenset()

    def tombstones(self, key: bytes) -> frozenset[str]:
        return frozenset(
            {digest(key, "subject_pseudonym", p) for p in self.pseudonyms}
            | {digest(key, "capture_id", c) for c in self.capture_ids}
        )


def erased_mask(df: pl.DataFrame, erased: Erased) -> pl.Expr:
    """True on rows that belong to an erased subject or capture."""
    mask = pl.lit(False)
    if "capture_id" in df.columns:
        mask = mask | pl.col("capture_id").is_in(list(erased.capture_ids))
    if "subject_pseudonym" in df.columns:
        mask = mask | pl.col("subject_pseudonym").is_in(list(erased.pseudonyms))
    for column in ("sha256", "blob_sha256"):
        if column in df.columns:
            mask = mask | pl.col(column).is_in(list(erased.sha256s))
    if "record" in df.columns:
        mask = mask | pl.col("record").is_in(list(erased.records))
    return mask.fill_null(False)


def cluster_remap(near_duplicates: pl.DataFrame, erased: Erased) -> dict[str, str]:
    """A cluster named after an erased capture is renamed after its smallest remaining member,
    the rule near-duplicate detection itself uses, so no remaining row names an erased id."""
    if near_duplicates.is_empty():
        return {}
    remaining = near_duplicates.filter(~pl.col("capture_id").is_in(list(erased.capture_ids)))
    renamed = (
        remaining.filter(pl.col("cluster_id").is_in(list(erased.capture_ids)))
        .group_by("cluster_id")
        .agg(new=pl.col("capture_id").min())
    )
    return dict(renamed.iter_rows())


def redact(df: pl.DataFrame, erased: Erased, remap: dict[str, str]) -> tuple[pl.DataFrame, int]:
    """The frame without erased rows, cluster names remapped; and how many rows were dropped."""
    kept = df.filter(~erased_mask(df, erased))
    if remap:
        for column in CLUSTER_COLUMNS:
            if column in kept.columns:
                kept = kept.with_columns(pl.col(column).replace(remap))
        if "is_representative" in kept.columns:
            kept = kept.with_columns(is_representative=pl.col("capture_id") == pl.col("cluster_id"))
    return kept, df.height - kept.height


def _changed(df: pl.DataFrame, erased: Erased, remap: dict[str, str]) -> pl.Expr:
    changed = erased_mask(df, erased)
    for column in CLUSTER_COLUMNS:
        if remap and column in df.columns:
            changed = changed | pl.col(column).is_in(list(remap)).fill_null(False)
    return changed


# --- the lake's parquet tables --------------------------------------------------------------


def parquet_files(tables: UPath) -> list[UPath]:
    if not tables.exists():
        return []
    return sorted(
        p
        for p in tables.rglob("*.parquet")
        if not p.name.startswith(".tmp-") and p.relative_to(tables).parts[0] != AUDIT_FOLDER
    )


def read_parquet(path: UPath) -> pl.DataFrame:
    with path.open("rb") as fh:
        return pl.read_parquet(fh)


def _write(path: UPath, df: pl.DataFrame) -> None:
    """Local: a temporary name renamed over the file (atomic). GCS: one atomic object write."""
    if getattr(path, "protocol", "") in ("", "file", "local"):
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            with tmp.open("wb") as fh:
                df.write_parquet(fh)
            tmp.rename(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return
    with path.open("wb") as fh:
        df.write_parquet(fh)


def resolve(tables: UPath, pseudonyms: frozenset[str], capture_ids: frozenset[str]) -> Erased:
    """Every capture of the pseudonyms (plus the named captures), with their blobs, from the raw
    manifests: the one place that ties a subject to captures and blobs."""
    found = []
    for path in parquet_files(tables / "raw"):
        frame = read_parquet(path)
        if "subject_pseudonym" not in frame.columns:
            continue
        found.append(
            frame.filter(
                pl.col("subject_pseudonym").is_in(list(pseudonyms))
                | pl.col("capture_id").is_in(list(capture_ids))
            ).select("capture_id", "sha256", "blob_key")
        )
    hits = (
        pl.concat(found)
        if found
        else pl.DataFrame(schema=dict.fromkeys(["capture_id", "sha256", "blob_key"], pl.String))
    )
    return Erased(
        pseudonyms,
        capture_ids | frozenset(hits["capture_id"]),
        frozenset(hits["sha256"]),
        frozenset(hits["blob_key"]),
    )


def quarantined_records(
    records: pl.DataFrame, quarantined: set[str], key: bytes, erased: Erased
) -> set[str]:
    """Which of the `quarantined` source records belong to an erased subject or capture: the
    rule re-extraction applies (drop_tombstoned), so erasure now equals what it would drop."""
    candidates = records.filter(pl.col("record").is_in(list(quarantined)))
    kept, _ = drop_tombstoned(candidates, erased.tombstones(key), key)
    return set(candidates["record"]) - set(kept["record"])


def resolve_quarantine(
    tables: UPath, read_records: RecordReader, key: bytes, erased: Erased
) -> tuple[Erased, list[str]]:
    """`erased` plus the subjects' quarantined records, their capture ids (unless a remaining
    capture has the same id) and the raw-zone blobs they point at; and the partitions whose
    source could not be read.

    A quarantine row has no pseudonym (the record failed before it was pseudonymised), so each
    partition holding quarantine rows is read again from its source to tie records to subjects.
    """
    records, blob_keys = set(erased.records), set(erased.blob_keys)
    hits, taken, unreadable = [], set(), []
    for path in parquet_files(tables / "raw"):
        frame = read_parquet(path)
        if not path.parent.name.endswith(QUARANTINE_SUFFIX):
            if "subject_pseudonym" in frame.columns:
                others = ~pl.col("subject_pseudonym").is_in(list(erased.pseudonyms))
                taken |= set(frame.filter(others)["capture_id"])
            continue
        if frame.is_empty():
            continue
        source, partition = frame["source"][0], frame["source_partition"][0]
        wanted = set(frame["record"]) - records
        found: set[str] = set()
        try:
            for batch in read_records(source, partition):
                found |= quarantined_records(batch, wanted, key, erased)
        except FileNotFoundError:
            # The owner removed the drop folder: nothing can re-ingest it, nothing ties the
            # rows to a subject; they stay until the partition is extracted again.
            unreadable.append(f"{source}/{partition}")
            continue
        records |= found
        hits.append(frame.filter(pl.col("record").is_in(list(found))))
    hit = pl.concat(hits) if hits else pl.DataFrame(schema={"capture_id": pl.String})
    if "blob_uri" in hit.columns:
        blob_keys |= set(hit["blob_uri"].str.extract(BLOB_KEY).drop_nulls())
    found_ids = set(hit["capture_id"].drop_nulls()) - taken
    expanded = Erased(
        erased.pseudonyms,
        erased.capture_ids | found_ids,
        erased.sha256s,
        frozenset(blob_keys),
        frozenset(records),
    )
    return expanded, unreadable


def near_duplicates_remap(tables: UPath, erased: Erased) -> dict[str, str]:
    path = tables / "annotations" / "near_duplicates.parquet"
    return cluster_remap(read_parquet(path), erased) if path.exists() else {}


def scrub_lake(tables: UPath, erased: Erased, remap: dict[str, str]) -> Counter[str]:
    """Rows removed per lake table; only files holding an erased row are rewritten."""
    removed: Counter[str] = Counter()
    for path in parquet_files(tables):
        frame = read_parquet(path)
        if frame.is_empty() or not frame.select(_changed(frame, erased, remap).any()).item():
            continue
        kept, dropped = redact(frame, erased, remap)
        _write(path, kept)
        table = "/".join(path.relative_to(tables).parts[:2]).removesuffix(".parquet")
        removed[table] += dropped
    return removed


def delete_blobs(lake: BlobStore, tables: UPath, erased: Erased) -> tuple[int, int]:
    """(deleted, kept because another capture references the same content)."""
    referenced: set[str] = set()
    for path in parquet_files(tables / "raw"):
        frame = read_parquet(path)
        if "blob_key" in frame.columns:
            referenced |= set(frame["blob_key"].drop_nulls())
        if "blob_uri" in frame.columns:
            referenced |= set(frame["blob_uri"].str.extract(BLOB_KEY).drop_nulls())
    shared = erased.blob_keys & referenced
    gone = sorted(erased.blob_keys - shared)
    deleted = sum(lake.delete(key) for key in gone)
    # Decode and annotation results of that content are keyed by its sha256, the key's stem.
    erase_contents(lake, {PurePosixPath(key).stem for key in gone})
    return deleted, len(shared)


# --- the warehouse --------------------------------------------------------------------------


def _warehouse_specs() -> list[TableSpec]:
    return [TABLES[name] for name in WAREHOUSE_SLICES if name in TABLES] + [SNAPSHOT_TABLE]


def scrub_warehouse(
    backend: WarehouseBackend, erased: Erased, remap: dict[str, str]
) -> Counter[str]:
    """Rows removed per warehouse table; each affected slice is replaced in one atomic write,
    the same operation the table's own writer uses."""
    removed: Counter[str] = Counter()
    for spec in _warehouse_specs():
        frame = backend.read(spec, {})
        if frame.is_empty():
            continue
        slice_columns = list(WAREHOUSE_SLICES[spec.name])
        affected = frame.filter(_changed(frame, erased, remap))
        if affected.is_empty():
            continue
        kept, dropped = redact(frame, erased, remap)
        if not slice_columns:
            backend.replace_slice(spec, kept, {})
        else:
            for values in affected.select(slice_columns).unique().iter_rows():
                slice_ = {c: [str(v)] for c, v in zip(slice_columns, values, strict=True)}
                rows = kept.filter(
                    pl.all_horizontal(
                        pl.col(c) == v for c, v in zip(slice_columns, values, strict=True)
                    )
                )
                backend.replace_slice(spec, rows, slice_)
        removed[spec.name] += dropped
    return removed


# --- snapshots ------------------------------------------------------------------------------


def redact_snapshots(
    lake: BlobStore, erased: Erased, remap: dict[str, str], request_id: str
) -> list[dict]:
    """Each snapshot holding an erased row gets version N+1 without it; version N is deleted."""
    redactions = []
    for snapshot_id in snapshot_store.snapshot_ids(lake):
        version = snapshot_store.versions(lake, snapshot_id)[-1]
        manifest = snapshot_store.read_manifest(lake, snapshot_id, version)
        if not manifest.select(_changed(manifest, erased, remap).any()).item():
            continue
        info = snapshot_store.read_info(lake, snapshot_id, version)
        kept, dropped = redact(manifest, erased, remap)
        history = [
            *info.get("history", []),
            {
                "version": version,
                "manifest_sha256": info["manifest_sha256"],
                "erasure_request": request_id,
                "rows_removed": dropped,
                "redacted_at": datetime.now(UTC).isoformat(),
            },
        ]
        new_info = {
            **info,
            "rows": kept.height,
            "counts_by_split": counts_by_split(kept),
            "class_balance": balance_table(kept).to_dicts() if kept.height else [],
            "history": history,
        }
        digest = snapshot_store.write_version(lake, snapshot_id, version + 1, kept, new_info)
        snapshot_store.delete_version(lake, snapshot_id, version)
        redactions.append(
            {
                "request_id": request_id,
                "snapshot_id": snapshot_id,
                "old_version": version,
                "new_version": version + 1,
                "old_manifest_sha256": info["manifest_sha256"],
                "new_manifest_sha256": digest,
                "rows_removed": dropped,
            }
        )
    return redactions
