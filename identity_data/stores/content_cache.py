"""Results of work on blob content, kept in the lake and keyed by (sha256, code version).

A blob's decode outcome and its inferred annotations depend only on its bytes and on the code
that computed them, so they are computed once across the whole lake: every partition, source
and re-run that meets the same content under the same version reads the stored row instead.
A new code version is a new namespace, so a model or metric change recomputes everything.

Layout: `cache/<name>/<version>/<shard>/<digest>.parquet`, sharded by the first hex digit of
the content's sha256. Files are create-only and named by the digest of their own bytes, so
concurrent writers never clash and a retried write is a no-op; a lookup reads only the shards
its keys fall in. Each run adds a file to each shard it writes, so a put that leaves a shard
with more than COMPACT_AT files merges them into one: a lookup reads a bounded number of files
however many runs came before. A file merged away while a lookup is under way is that lookup's
miss (its rows are computed again), never an error.

`SourceDigests` uses the same layout for a source blob's fingerprint -> sha256, sharded by the
fingerprint, so a re-run finds an unchanged source blob's content without reading it.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable

import polars as pl

from identity_data.stores.blobs import BlobStore

KEY = "sha256"
_SAFE = re.compile(r"^[A-Za-z0-9._=-]+$")
# Files per shard above which a put merges the shard: lookups read at most this many plus one.
COMPACT_AT = 8


class ContentCache:
    """Rows keyed by `key` (a hex digest, `sha256` unless named) under one (name, version)
    namespace of a lake BlobStore."""

    def __init__(self, store: BlobStore, name: str, version: str, key: str = KEY) -> None:
        for part in (name, version):
            if not _SAFE.match(part):
                raise ValueError(f"cache name and version must be [A-Za-z0-9._=-]+: {part!r}")
        self.store = store
        self.prefix = f"cache/{name}/{version}"
        self.key = key

    def get(self, keys: Iterable[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The stored rows among `keys` (one per key), with columns `key` + `schema`."""
        key = self.key
        wanted = pl.Series(key, sorted(set(keys)), pl.String)
        columns = {key: pl.String(), **schema}
        empty = pl.DataFrame(schema=columns)
        if wanted.is_empty():
            return empty
        shards = set(wanted.str.slice(0, 1))
        frames = [
            frame.filter(pl.col(key).is_in(wanted.implode()))
            for shard in sorted(shards)
            for frame in _read(self.store, _listed(self.store, f"{self.prefix}/{shard}"), columns)[
                1
            ]
        ]
        found = pl.concat([empty, *frames], how="vertical_relaxed")
        return found.unique(key, keep="first").sort(key)

    def put(self, rows: pl.DataFrame) -> int:
        """Store `rows` (a `key` column plus values); returns how many files were written."""
        written = 0
        shard = pl.col(self.key).str.slice(0, 1)
        for (part_shard,), part in rows.sort(self.key).group_by(shard, maintain_order=True):
            folder = f"{self.prefix}/{part_shard}"
            written += _put_file(self.store, folder, part)
            self.compact(folder)
        return written

    def compact(self, folder: str) -> bool:
        """Merge the files of one shard folder into one if it holds more than COMPACT_AT.

        The merged file is written before any part is deleted, so a lookup always finds every
        row in the parts, the merged file or both; parts written meanwhile are left alone.
        """
        listed = _listed(self.store, folder)
        if len(listed) <= COMPACT_AT:
            return False
        keys, frames = _read(self.store, listed, None)
        merged = pl.concat(frames, how="diagonal_relaxed").unique(self.key, keep="first")
        data = _parquet(merged.sort(self.key))
        kept = _file_key(folder, data)
        self.store.put_if_absent(kept, data)
        for key in keys:
            if key != kept:
                self.store.delete(key)
        return True


SOURCE_DIGESTS = "source_digests"
FINGERPRINT = "fingerprint"
SOURCE_DIGEST_SCHEMA: dict[str, pl.DataType] = {KEY: pl.String(), "bytes": pl.Int64()}


class SourceDigests(ContentCache):
    """Source blob fingerprint (`BlobStore.fingerprint`) -> the sha256 and size of its content.

    A fingerprint stands for one version of one object in one store, so its content never
    changes: the namespace's version is only the layout's. Erasure drops the rows of erased
    contents by their `sha256` column, like every other cache's."""

    def __init__(self, store: BlobStore) -> None:
        super().__init__(store, SOURCE_DIGESTS, "1", key=FINGERPRINT)

    def lookup(self, fingerprints: Iterable[str]) -> pl.DataFrame:
        return self.get(fingerprints, SOURCE_DIGEST_SCHEMA)


def _parquet(rows: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    rows.write_parquet(buf, statistics=False)
    return buf.getvalue()


def _file_key(folder: str, data: bytes) -> str:
    return f"{folder}/{hashlib.sha256(data).hexdigest()}.parquet"


def _put_file(store: BlobStore, folder: str, rows: pl.DataFrame) -> bool:
    data = _parquet(rows)
    return store.put_if_absent(_file_key(folder, data), data)


def _listed(store: BlobStore, folder: str) -> list[str]:
    return [info.key for info in store.list(f"{folder}/", (".parquet",))]


def _frame(store: BlobStore, key: str, columns: Iterable[str] | None) -> pl.DataFrame | None:
    """One cache file's rows, or None if a concurrent compaction merged it away meanwhile."""
    try:
        data = store.read(key)
    except FileNotFoundError:
        return None
    return pl.read_parquet(io.BytesIO(data), columns=None if columns is None else list(columns))


def _read(
    store: BlobStore, keys: list[str], columns: Iterable[str] | None
) -> tuple[list[str], list[pl.DataFrame]]:
    """The files among `keys` that still exist when read, and their frames."""
    read = [(key, frame) for key in keys if (frame := _frame(store, key, columns)) is not None]
    return [key for key, _ in read], [frame for _, frame in read]


def erase_contents(store: BlobStore, sha256s: Iterable[str]) -> int:
    """Erasure: drop every cached row of these contents, in every cache and code version. Each
    file holding one is replaced by a file without it; returns the rows removed."""
    wanted = pl.Series(KEY, sorted(set(sha256s)), pl.String)
    shards = set(wanted.str.slice(0, 1))
    removed = 0
    for info in list(store.list("cache/", (".parquet",))):
        folder = info.key.rsplit("/", 1)[0]
        # Source digests are sharded by fingerprint, so any of their shards may hold a content.
        by_content = not folder.startswith(f"cache/{SOURCE_DIGESTS}/")
        if by_content and folder.rsplit("/", 1)[-1] not in shards:
            continue
        frame = _frame(store, info.key, None)
        if frame is None:  # merged into a file this scan lists or a re-scrub after the run finds
            continue
        hit = frame[KEY].is_in(wanted.implode())
        if not hit.any():
            continue
        if not hit.all():
            _put_file(store, folder, frame.filter(~hit))
        store.delete(info.key)
        removed += int(hit.sum())
    return removed
