"""Results of work on blob content, kept in the lake and keyed by (sha256, code version).

A blob's decode outcome and its inferred annotations depend only on its bytes and on the code
that computed them, so they are computed once across the whole lake: every partition, source
and re-run that meets the same content under the same version reads the stored row instead.
A new code version is a new namespace, so a model or metric change recomputes everything.

Layout: `cache/<name>/<version>/<shard>/<digest>.parquet`, sharded by the first hex digit of
the content's sha256. Files are create-only and named by the digest of their own bytes, so
concurrent writers never clash and a retried write is a no-op; a lookup reads only the shards
its keys fall in.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable

import polars as pl

from identity_data.stores.blobs import BlobStore

KEY = "sha256"
_SHARD = pl.col(KEY).str.slice(0, 1)
_SAFE = re.compile(r"^[A-Za-z0-9._=-]+$")


class ContentCache:
    """Rows keyed by `sha256` under one (name, version) namespace of a lake BlobStore."""

    def __init__(self, store: BlobStore, name: str, version: str) -> None:
        for part in (name, version):
            if not _SAFE.match(part):
                raise ValueError(f"cache name and version must be [A-Za-z0-9._=-]+: {part!r}")
        self.store = store
        self.prefix = f"cache/{name}/{version}"

    def get(self, keys: Iterable[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The stored rows among `keys` (one per key), with columns `sha256` + `schema`."""
        wanted = pl.Series(KEY, sorted(set(keys)), pl.String)
        columns = {KEY: pl.String(), **schema}
        empty = pl.DataFrame(schema=columns)
        if wanted.is_empty():
            return empty
        shards = set(wanted.str.slice(0, 1))
        frames = [
            pl.read_parquet(io.BytesIO(self.store.read(info.key)), columns=list(columns)).filter(
                pl.col(KEY).is_in(wanted.implode())
            )
            for shard in sorted(shards)
            for info in self.store.list(f"{self.prefix}/{shard}/", (".parquet",))
        ]
        found = pl.concat([empty, *frames], how="vertical_relaxed")
        return found.unique(KEY, keep="first").sort(KEY)

    def put(self, rows: pl.DataFrame) -> int:
        """Store `rows` (a `sha256` column plus values); returns how many files were written."""
        written = 0
        for (shard,), part in rows.sort(KEY).group_by(_SHARD, maintain_order=True):
            written += _put_file(self.store, f"{self.prefix}/{shard}", part)
        return written


def _put_file(store: BlobStore, folder: str, rows: pl.DataFrame) -> bool:
    buf = io.BytesIO()
    rows.write_parquet(buf, statistics=False)
    data = buf.getvalue()
    return store.put_if_absent(f"{folder}/{hashlib.sha256(data).hexdigest()}.parquet", data)


def erase_contents(store: BlobStore, sha256s: Iterable[str]) -> int:
    """Erasure: drop every cached row of these contents, in every cache and code version. Each
    file holding one is replaced by a file without it; returns the rows removed."""
    wanted = pl.Series(KEY, sorted(set(sha256s)), pl.String)
    shards = set(wanted.str.slice(0, 1))
    removed = 0
    for info in list(store.list("cache/", (".parquet",))):
        folder = info.key.rsplit("/", 1)[0]
        if folder.rsplit("/", 1)[-1] not in shards:
            continue
        frame = pl.read_parquet(io.BytesIO(store.read(info.key)))
        hit = frame[KEY].is_in(wanted.implode())
        if not hit.any():
            continue
        if not hit.all():
            _put_file(store, folder, frame.filter(~hit))
        store.delete(info.key)
        removed += int(hit.sum())
    return removed
