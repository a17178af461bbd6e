"""Model-inferred annotations for captures: decode, detect faces, measure quality, hash.

`annotate_blobs` runs inline for one worker and otherwise on this process's warm pool (one
detector per worker, loaded once per process lifetime); every input yields exactly one row.
`annotate_captures`, which the assets call, runs it once per distinct content not yet cached.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import polars as pl

from identity_data import imaging
from identity_data.defs.annotations.detector import FaceDetector
from identity_data.defs.annotations.schemas import AnnotationRows
from identity_data.defs.annotations.worker import (
    METRICS_VERSION,
    Reader,
    Row,
    default_detector,
    init_worker,
    run_chunk,
    run_pooled,
)
from identity_data.stores.blobs import BlobStore
from identity_data.stores.content_cache import ContentCache
from identity_data.validation import polars_schema


@functools.cache
def annotation_schema() -> pl.Schema:
    """The columns of an annotation row, as the table's pandera model declares them. Workers
    build rows as dicts of the columns they know; absent ones become nulls in the frame."""
    return polars_schema(AnnotationRows)


def code_version(detector: FaceDetector) -> str:
    """Changes whenever the model, its weights, its parameters or the metric code change."""
    ident = json.dumps(
        [
            detector.name,
            detector.version,
            detector.weights_sha256,
            dict(detector.params),
            METRICS_VERSION,
        ],
        sort_keys=True,
    )
    return f"{detector.name}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


ANNOTATOR_CODE_VERSION = code_version(default_detector())


# The warm pool of this process: (workers, detector factory) -> pool. Kept across calls, so a
# run (or a long-lived code server) pays the fork server's and workers' start-up (~0.35 s)
# once, not once per partition; replaced only when the worker count or the detector changes.
_POOL: dict[tuple[int, Callable[[], FaceDetector]], ProcessPoolExecutor] = {}


def warm_pool(workers: int, factory: Callable[[], FaceDetector]) -> ProcessPoolExecutor:
    """This process's pool of `workers` annotation workers, each with a loaded detector."""
    key = (workers, factory)
    if key not in _POOL:
        close_pools()
        # forkserver: workers never inherit the caller's threads (Dagster runs some) or locks.
        ctx = multiprocessing.get_context("forkserver")
        # Import the model code once in the fork server instead of once per worker; only the
        # worker's module, so the server does not load polars or the cache code.
        ctx.set_forkserver_preload([run_chunk.__module__])
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(factory,)
        )
        # The pool starts a worker per submit until it has `workers`: start them all here,
        # where the caller's main module is hidden from them.
        with _main_module_hidden():
            for _ in range(workers):
                pool.submit(os.getpid)
        _POOL[key] = pool
    return _POOL[key]


def close_pools() -> None:
    """Shut this process's pools down: the next pooled call starts cold (tests, benchmarks)."""
    for pool in list(_POOL.values()):
        _drop_pool(pool)


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    for key in [k for k, v in _POOL.items() if v is pool]:
        del _POOL[key]
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Processes started in here do not re-run the caller's main script.

    multiprocessing re-imports the parent's `__main__` in every fork-server or spawned child,
    so that pickles naming it resolve. In a Dagster run that script is the dagster CLI, and
    importing it cost each worker about 0.5 CPU-s before its first image (a cold pool's first
    result came after 0.92 s instead of 0.41 s). Pool tasks name only this package's functions.
    Other threads see the stand-in for the few milliseconds the workers take to start.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _chunks(items: Sequence[tuple[str, object]], size: int) -> Iterable[Sequence]:
    return (items[i : i + size] for i in range(0, len(items), size))


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


def annotate_blobs(
    items: Sequence[tuple[str, bytes]] | Sequence[tuple[str, str]],
    workers: int | None = None,
    *,
    reader: Reader | None = None,
    detector_factory: Callable[[], FaceDetector] = default_detector,
    chunk_size: int = 16,
) -> pl.DataFrame:
    """One row per capture_id, sorted by capture_id.

    `items` is (capture_id, bytes), or (capture_id, blob key) together with `reader(key)`; a
    reader runs inside the workers, so blob I/O is parallel too, and must be picklable for a
    pool (a bound LocalBlobStore.read is). `workers=None` uses every available core.
    """
    ids = [cid for cid, _ in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({c for c in ids if ids.count(c) > 1})[:5]
        raise ValueError(f"capture_id must be unique in annotate_blobs input; repeated: {dupes}")
    workers = default_workers() if workers is None else workers
    ordered = sorted(items, key=lambda item: item[0])

    if workers <= 1 or len(ordered) <= chunk_size:
        init_worker(detector_factory)
        rows = [row for chunk in _chunks(ordered, chunk_size) for row in run_chunk(chunk, reader)]
    else:
        pool = warm_pool(workers, detector_factory)
        run = functools.partial(run_pooled, reader=None if reader is None else pickle.dumps(reader))
        try:
            rows = _pooled(pool, run, list(_chunks(ordered, chunk_size)), reader, detector_factory)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this call fails, the next gets a new pool.
            _drop_pool(pool)
            raise
    return pl.DataFrame(rows, schema=annotation_schema())


def _pooled(
    pool: ProcessPoolExecutor,
    run: Callable[[Sequence[tuple[str, bytes | str]]], list[Row]],
    chunks: list[Sequence[tuple[str, bytes | str]]],
    reader: Reader | None,
    factory: Callable[[], FaceDetector],
) -> list[Row]:
    """The chunks' rows in order, from the pool; this process works too until the pool does.

    A cold pool spends ~0.4 s starting its workers (importing the model code) before the first
    image, a tenth of a small partition's time on 2 cores. Meanwhile this process takes chunks
    from the back that no worker has picked up yet, and stops once a worker has returned one.
    """
    futures = [pool.submit(run, chunk) for chunk in chunks]
    done: dict[int, list[Row]] = {}
    for i in reversed(range(1, len(chunks))):
        if futures[0].done() or not futures[i].cancel():
            break
        init_worker(factory)
        done[i] = run_chunk(chunks[i], reader)
    return [row for i, f in enumerate(futures) for row in (done[i] if i in done else f.result())]


ANNOTATION_CACHE = "annotations"


def annotate_captures(
    manifest: pl.DataFrame,
    reader: Reader,
    cache_store: BlobStore | None,
    workers: int | None = None,
    *,
    detector_factory: Callable[[], FaceDetector] = default_detector,
) -> pl.DataFrame:
    """One row per manifest capture (`capture_id`, `sha256`, `blob_key`), sorted by capture_id.

    The detector runs once per distinct content, not per capture; with `cache_store`, once per
    (sha256, code version) across the whole lake: known contents come from the cache and only
    new ones are annotated (and then stored). `cache_store=None` computes everything.
    """
    contents = manifest.group_by("sha256").agg(pl.col("blob_key").min()).sort("sha256")
    # A cached row is keyed by its content, not by a capture.
    content_schema = {c: t for c, t in annotation_schema().items() if c != "capture_id"}
    cache = None
    if cache_store is not None:
        cache = ContentCache(cache_store, ANNOTATION_CACHE, code_version(detector_factory()))
        known = cache.get(contents["sha256"], content_schema)
    else:
        known = pl.DataFrame(schema={"sha256": pl.String, **content_schema})
    todo = contents.join(known.select("sha256"), on="sha256", how="anti")
    if todo.is_empty():
        # Everything cached: the detector is never loaded, nor the pool started (a re-run of an
        # unchanged partition pays for the lookup only).
        fresh = pl.DataFrame(schema=annotation_schema()).rename({"capture_id": "sha256"})
    else:
        fresh = annotate_blobs(
            list(zip(todo["sha256"], todo["blob_key"], strict=True)),
            workers,
            reader=reader,
            detector_factory=detector_factory,
        ).rename({"capture_id": "sha256"})
    if cache is not None:
        # A storage failure says nothing about the content: it is retried, never remembered.
        cache.put(fresh.filter(pl.col("decode_status") != imaging.DecodeStatus.UNREADABLE.value))
    by_content = pl.concat([known, fresh], how="vertical_relaxed")
    return (
        manifest.select("capture_id", "sha256")
        .join(by_content, on="sha256", how="left")
        .select(list(annotation_schema()))
        .sort("capture_id")
    )
