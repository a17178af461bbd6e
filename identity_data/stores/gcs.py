"""Google Cloud Storage: the production BlobStore."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import BinaryIO

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import (
    DEFAULT_RETRY,
    ConditionalRetryPolicy,
    is_generation_specified,
)

from identity_data.safety import check_key
from identity_data.stores.blobs import ObjectInfo, fingerprint_digest


def storage_retry(deadline: float = 120.0, initial: float = 1.0, maximum: float = 30.0) -> Retry:
    """The storage client's own transient-error policy (408/429/5xx, timeouts, dropped
    connections) with exponential backoff, bounded by `deadline` seconds overall."""
    return DEFAULT_RETRY.with_timeout(deadline).with_delay(
        initial=initial, maximum=maximum, multiplier=2.0
    )


def gcs_client(emulator_host: str | None = None) -> storage.Client:
    """The production client (application default credentials), or one for an emulator at
    `emulator_host` with no credentials. Taking the endpoint as an argument, not from the
    environment, lets a pickled store's factory rebuild the same client in a worker process
    whose environment may differ (a forkserver keeps the environment it started with)."""
    if not emulator_host:
        return storage.Client()
    return storage.Client(
        project="emulator",
        client_options={"api_endpoint": emulator_host},
        credentials=AnonymousCredentials(),
    )


class GcsBlobStore:
    """A bucket prefix with create-only writes: GCS preconditions make them race-free.

    Picklable, so its bound `read` can run in a process pool: the storage client (which refuses
    to pickle) stays behind, and each process builds its own from `client_factory` on first use.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: storage.Client | None = None,
        retry: Retry | None = None,
        timeout: float = 60.0,
        page_size: int = 1000,
        client_factory: Callable[[], storage.Client] = storage.Client,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.client_factory = client_factory
        self._client = client
        # A client handed in cannot be rebuilt elsewhere (its endpoint and credentials are its
        # own); swapping it for the default one after pickling would talk to another service.
        self._rebuildable = client is None or client_factory is not storage.Client
        self.retry = retry or storage_retry()
        # Writes carry ifGenerationMatch=0, which makes them idempotent and so safe to retry;
        # the conditional policy states that dependency instead of retrying blindly.
        self.put_retry = ConditionalRetryPolicy(
            self.retry, is_generation_specified, ["query_params"]
        )
        self.timeout = timeout
        self.page_size = page_size

    def __getstate__(self) -> dict[str, object]:
        if not self._rebuildable:
            raise TypeError(
                "GcsBlobStore with an explicit client cannot be pickled: pass "
                "client_factory=<picklable callable> instead, so each process builds its own"
            )
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> storage.Client:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    @property
    def bucket(self) -> storage.Bucket:
        return self.client.bucket(self.bucket_name)

    def _name(self, key: str) -> str:
        # GCS names have no `..`, but the same key grammar holds in every deployment.
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def put_if_absent(self, key: str, data: bytes) -> bool:
        blob = self.bucket.blob(self._name(key))
        try:
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=0,
                # google-cloud-storage is unannotated, so pyright types each parameter by its
                # default; both take a float timeout and a conditional policy by their docs.
                retry=self.put_retry,  # pyright: ignore[reportArgumentType]
                timeout=self.timeout,  # pyright: ignore[reportArgumentType]
                checksum="crc32c",
            )
        except gexc.PreconditionFailed:
            # Someone else's object is there (or our own, when a retried attempt follows one whose
            # response was lost): it is never overwritten, and this call reports no write.
            return False
        return True

    def read(self, key: str) -> bytes:
        try:
            return self.bucket.blob(self._name(key)).download_as_bytes(
                retry=self.retry,
                # Unannotated library: timeout is typed by its int default (see put_if_absent).
                timeout=self.timeout,  # pyright: ignore[reportArgumentType]
                checksum="crc32c",
            )
        except gexc.NotFound as err:
            raise FileNotFoundError(self.uri(key)) from err

    def open(self, key: str) -> BinaryIO:
        # Chunked ranged reads: a 200 MB label export streams instead of landing in memory.
        # "rb" opens a BlobReader (binary); the unannotated open() is typed as every mode's union.
        blob = self.bucket.blob(self._name(key))
        return blob.open("rb", retry=self.retry)  # pyright: ignore[reportReturnType]

    def exists(self, key: str) -> bool:
        blob = self.bucket.blob(self._name(key))
        # Unannotated library: timeout is typed by its int default (see put_if_absent).
        return blob.exists(retry=self.retry, timeout=self.timeout)  # pyright: ignore[reportArgumentType]

    def fingerprint(self, key: str) -> str | None:
        name = self._name(key)
        # One metadata request instead of a download. Every write of an object gives it a new
        # generation, so (name, generation, size) changes whenever its content can have.
        blob = self.bucket.get_blob(
            name,
            retry=self.retry,
            # Unannotated library: timeout is typed by its int default (see put_if_absent).
            timeout=self.timeout,  # pyright: ignore[reportArgumentType]
        )
        if blob is None:
            raise FileNotFoundError(self.uri(key))
        return fingerprint_digest("gcs", self.bucket_name, name, blob.generation, blob.size)

    def delete(self, key: str) -> bool:
        try:
            blob = self.bucket.blob(self._name(key))
            # Unannotated library: timeout is typed by its int default (see put_if_absent).
            blob.delete(retry=self.retry, timeout=self.timeout)  # pyright: ignore[reportArgumentType]
        except gexc.NotFound:
            return False
        return True

    def list(self, prefix: str, suffixes: tuple[str, ...] = ()) -> Iterator[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        if prefix.strip("/"):
            check_key(prefix.rstrip("/"))
        blobs = self.client.list_blobs(
            self.bucket,
            prefix=root + prefix,
            page_size=self.page_size,
            retry=self.retry,
            # Unannotated library: timeout is typed by its int default (see put_if_absent).
            timeout=self.timeout,  # pyright: ignore[reportArgumentType]
        )
        for page in blobs.pages:
            for blob in page:
                if suffixes and not blob.name.endswith(suffixes):
                    continue
                yield ObjectInfo(key=blob.name[len(root) :], size=blob.size, version=_version(blob))


def _version(blob: storage.Blob) -> str:
    """md5 of the content, like LocalBlobStore: a re-upload of equal bytes is no change, while
    the generation would change on every write. Composite objects carry no md5; crc32c is still
    a content hash, and the generation is the last resort that never misses a change."""
    if blob.md5_hash:
        # Hex, as LocalBlobStore reports it, so partition keys look alike in both deployments.
        return base64.b64decode(blob.md5_hash).hex()
    if blob.crc32c:
        return f"crc32c:{blob.crc32c}"
    return f"generation:{blob.generation}"
