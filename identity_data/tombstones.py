"""Tombstones of erased subjects and captures: keyed digests that stop their re-ingest.

A tombstone is an empty, create-only object `erasure/tombstones/<digest>` in the lake, where the
digest is an HMAC of the pseudonym (or capture id) under the pseudonym key with its own domain
prefix. The list itself names nobody: without the key a digest cannot be tied to any row, and
the pseudonym itself appears nowhere in the lake after erasure.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

from identity_data.privacy import pseudonymise
from identity_data.stores.blobs import BlobStore

TOMBSTONE_PREFIX = "erasure/tombstones"
_DOMAINS = {"subject_pseudonym": b"tombstone:subject:", "capture_id": b"tombstone:capture:"}


def digest(key: bytes, column: str, value: str) -> str:
    return hmac.new(key, _DOMAINS[column] + value.encode(), hashlib.sha256).hexdigest()


def digests(key: bytes, column: str, values: pl.Series) -> pl.Series:
    return values.map_elements(
        lambda v: digest(key, column, v), return_dtype=pl.String, skip_nulls=True
    )


def add_tombstones(lake: BlobStore, found: set[str]) -> int:
    """Create-only: a tombstone, once written, is never rewritten; returns how many were new."""
    return sum(lake.put_if_absent(f"{TOMBSTONE_PREFIX}/{d}", b"") for d in sorted(found))


def load_tombstones(lake: BlobStore) -> frozenset[str]:
    return frozenset(o.key.rsplit("/", 1)[-1] for o in lake.list(f"{TOMBSTONE_PREFIX}/"))


def drop_tombstoned(
    records: pl.DataFrame, tombstones: frozenset[str], key: bytes
) -> tuple[pl.DataFrame, int]:
    """Source records without those of erased subjects or captures, and how many that drops.

    Applied before any blob is copied, so a tombstoned capture never re-enters the raw zone.
    """
    if not tombstones or records.is_empty():
        return records, 0
    pseudonyms = pseudonymise(key, records["subject_ref"].cast(pl.String))
    hit = digests(key, "subject_pseudonym", pseudonyms).is_in(list(tombstones)).fill_null(False)
    captures = digests(key, "capture_id", records["capture_id"].cast(pl.String))
    hit = hit | captures.is_in(list(tombstones)).fill_null(False)
    return records.filter(~hit), int(hit.sum())


def drop_tombstoned_captures(
    frame: pl.DataFrame, tombstones: frozenset[str], key: bytes
) -> tuple[pl.DataFrame, int]:
    """Rows (e.g. parsed label-export rows) without those naming an erased capture, counted."""
    if not tombstones or frame.is_empty():
        return frame, 0
    hit = digests(key, "capture_id", frame["capture_id"].cast(pl.String)).is_in(list(tombstones))
    hit = hit.fill_null(False)
    return frame.filter(~hit), int(hit.sum())
