"""Object storage for raw blobs: a local folder by default, GCS in production."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from identity_data.safety import contained


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object; `version` changes whenever its content does."""

    key: str
    size: int
    version: str


class BlobStore(Protocol):
    """What the pipeline needs from object storage, keyed relative to the store's root."""

    def uri(self, key: str) -> str: ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` under `key` unless an object exists there; True if this call wrote it."""
        ...

    def read(self, key: str) -> bytes: ...

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object, for files too large to read at once."""
        ...

    def exists(self, key: str) -> bool: ...

    def fingerprint(self, key: str) -> str | None:
        """A digest that changes whenever the object's content may have, got without reading
        the content; None when the store cannot vouch for it yet. Raises FileNotFoundError."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object under `key`; True if it existed (erasure and cache compaction)."""
        ...

    def list(self, prefix: str, suffixes: tuple[str, ...] = ()) -> Iterator[ObjectInfo]:
        """Objects under `prefix` (ending in one of `suffixes`, if given), in key order, fetched
        page by page."""
        ...


def content_key(data: bytes, suffix: str, zone: str = "raw/captures") -> tuple[str, str]:
    """Content-addressed key with a hashed two-character prefix; returns (key, sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    return content_path(digest, suffix, zone), digest


def content_path(digest: str, suffix: str, zone: str = "raw/captures") -> str:
    """The content-addressed key of a content whose sha256 is `digest`."""
    return f"{zone}/{digest[:2]}/{digest}{suffix}"


# How old a local file's ctime must be before its stat is trusted to stand for its content.
FINGERPRINT_SETTLE_NS = 2_000_000_000


def fingerprint_digest(*ident: object) -> str:
    """The fingerprint of an object's identity and version: hashed, so a digest table kept in
    the lake holds no source path (paths are input and may carry names)."""
    return hashlib.sha256(repr(ident).encode()).hexdigest()


class LocalBlobStore:
    """A folder that behaves like a bucket: atomic, create-only writes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        # Keys come from manifests and databases: never a path outside the root, symlinks included.
        return contained(self.root, key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        # The `.tmp` suffix matches no reader's pattern, so a leftover of a killed write is ignored.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            # link() fails if the name exists, so a concurrent writer never gets overwritten.
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def fingerprint(self, key: str) -> str | None:
        path = self._path(key)
        st = path.stat()
        # A rewrite within the file system's timestamp granularity can leave size and times
        # as they were; ctime cannot be set back by a writer, so once it is this old, any later
        # write shows as a new ctime.
        if time.time_ns() - st.st_ctime_ns < FINGERPRINT_SETTLE_NS:
            return None
        ident = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        return fingerprint_digest("file", *ident)

    def delete(self, key: str) -> bool:
        try:
            (self.root / key).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str, suffixes: tuple[str, ...] = ()) -> Iterator[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.exists():
            return
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            if path.name.startswith(".tmp-") or (suffixes and not path.name.endswith(suffixes)):
                continue
            if not path.resolve().is_relative_to(self.root):
                # A symlink out of the lake is not an object of it.
                continue
            with path.open("rb") as fh:
                # md5 of the content, like GCS's md5Hash: a rewrite with equal bytes is no change.
                version = hashlib.file_digest(fh, "md5").hexdigest()
            yield ObjectInfo(
                key=path.relative_to(self.root).as_posix(),
                size=path.stat().st_size,
                version=version,
            )
