"""Model-inferred annotations for captures: decode, detect faces, measure quality, hash.

`annotate_blobs` runs inline for one worker and otherwise on this process's warm pool (one
detector per worker, loaded once per process lifetime); every input yields exactly one row.
`annotate_captures`, which the assets call, runs it once per distinct content not yet cached.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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

import cv2
import polars as pl

from identity_data import imaging
from identity_data.defs.annotations.detector import FaceDetector, MtcnnDetector
from identity_data.stores.blobs import BlobStore
from identity_data.stores.content_cache import ContentCache

# Bump when the row-building or metric code changes meaning, so the asset re-materialises.
METRICS_VERSION = "2"
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

Reader = Callable[[str], bytes]
Row = dict[str, object]


@functools.cache
def annotation_schema() -> pl.Schema:
    """The columns of an annotation row, as the table's pandera model declares them."""
    # Imported on first use, not with this module: the pool's fork server preloads this module,
    # and pandera (and Dagster, through validation) would add seconds to its start. Workers
    # build rows as dicts of the columns they know; absent ones become nulls in the frame.
    from identity_data.defs.annotations.schemas import AnnotationRows
    from identity_data.validation import polars_schema

    return polars_schema(AnnotationRows)


def default_detector() -> FaceDetector:
    return MtcnnDetector()


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


def _r(value: float) -> float:
    # Fixed precision keeps rows byte-identical across runs and worker counts.
    return round(value, 6)


def annotate_one(capture_id: str, data: bytes, detector: FaceDetector) -> Row:
    """One annotation row; bad bytes give a row with a decode status and reason."""
    row: Row = dict(
        capture_id=capture_id,
        model_name=detector.name,
        model_version=detector.version,
        model_weights_sha256=detector.weights_sha256,
    )
    decoded = imaging.decode(data)
    row.update(
        decode_status=decoded.status.value,
        decode_reason=decoded.reason,
        width=decoded.width,
        height=decoded.height,
    )
    if decoded.image is None:
        return row

    gray = imaging.to_gray(decoded.image)
    faces = detector.detect(imaging.to_bgr(decoded.image))
    exp = imaging.exposure(gray)
    row.update(
        face_count=len(faces),
        sharpness=_r(imaging.sharpness(gray)),
        brightness=_r(exp.brightness),
        highlight_clip=_r(exp.highlight_clip),
        shadow_clip=_r(exp.shadow_clip),
        phash=imaging.phash(decoded.image),
        phash_crop3=imaging.phash(decoded.image, 0.03),
        phash_crop6=imaging.phash(decoded.image, 0.06),
    )
    if faces:
        face = max(faces, key=lambda f: (f.area, f.score))
        crop = gray[face.y : face.y + face.h, face.x : face.x + face.w]
        row.update(
            face_x=face.x,
            face_y=face.y,
            face_w=face.w,
            face_h=face.h,
            face_score=_r(face.score),
            face_area_share=_r(face.area / gray.size),
            face_sharpness=_r(imaging.sharpness(crop)),
            landmark_count=len(face.landmarks or ()),
        )
        for name, (x, y) in zip(LANDMARK_NAMES, face.landmarks or (), strict=False):
            row[f"landmark_{name}_x"] = _r(x)
            row[f"landmark_{name}_y"] = _r(y)
    return row


def _unreadable(capture_id: str, exc: Exception, detector: FaceDetector) -> Row:
    return dict(
        capture_id=capture_id,
        decode_status=imaging.DecodeStatus.UNREADABLE.value,
        decode_reason=f"{type(exc).__name__}: {exc}"[:200],
        model_name=detector.name,
        model_version=detector.version,
        model_weights_sha256=detector.weights_sha256,
    )


# mallopt(3) parameters. glibc serves each decoded frame and detector buffer (about 1 MB) with
# a fresh mmap and unmaps it on free, so every image paid its page faults again: 2-3 ms of
# system time on top of ~17 ms of work, measured. Keeping such blocks on the heap reuses them.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_BLOCK_BYTES = 32 * 2**20


def _reuse_large_blocks() -> None:
    """Serve blocks below HEAP_BLOCK_BYTES from the heap and keep freed ones for reuse."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not glibc (e.g. musl or macOS): the allocator's defaults stay
        return
    mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES)
    mallopt(_M_TRIM_THRESHOLD, 2 * HEAP_BLOCK_BYTES)


# Per-process state of a pool worker (or of the caller, inline): set once by _init_worker.
_WORKER: dict[str, object] = {}


def _init_worker(factory: Callable[[], FaceDetector]) -> None:
    # Compared pickled: an equal factory (e.g. a functools.partial rebuilt) reuses the detector.
    token = pickle.dumps(factory)
    if _WORKER.get("factory") == token:
        return
    # One OpenCV thread per process: parallelism comes from the pool, and idle OpenCV pool
    # threads spinning next to other workers halve throughput.
    cv2.setNumThreads(1)
    _reuse_large_blocks()
    detector = factory()
    detector.load()
    _WORKER.update(detector=detector, factory=token)


@functools.lru_cache(maxsize=4)
def _reader(pickled: bytes) -> Reader:
    # A pool task carries its reader pickled; unpickling once per worker keeps e.g. a GCS
    # store's client (built on first use) alive across the chunks of a run.
    return pickle.loads(pickled)


def _run_pooled(chunk: Sequence[tuple[str, bytes | str]], reader: bytes | None) -> list[Row]:
    return _run_chunk(chunk, None if reader is None else _reader(reader))


def _run_chunk(chunk: Sequence[tuple[str, bytes | str]], reader: Reader | None) -> list[Row]:
    detector: FaceDetector = _WORKER["detector"]  # type: ignore[assignment]
    rows = []
    for capture_id, payload in chunk:
        if reader is None:
            rows.append(annotate_one(capture_id, payload, detector))  # type: ignore[arg-type]
            continue
        try:
            data = reader(payload)  # type: ignore[arg-type]
        except Exception as exc:  # any storage failure becomes that capture's row, not a crash
            rows.append(_unreadable(capture_id, exc, detector))
            continue
        rows.append(annotate_one(capture_id, data, detector))
    return rows


# The warm pool of this process: (workers, detector factory) -> pool. Kept across calls, so a
# run (or a long-lived code server) pays the ~1 s of worker start-up and model loading once,
# not once per partition; replaced only when the worker count or the detector changes.
_POOL: dict[tuple[int, Callable[[], FaceDetector]], ProcessPoolExecutor] = {}


def warm_pool(workers: int, factory: Callable[[], FaceDetector]) -> ProcessPoolExecutor:
    """This process's pool of `workers` annotation workers, each with a loaded detector."""
    key = (workers, factory)
    if key not in _POOL:
        close_pools()
        # forkserver: workers never inherit the caller's threads (Dagster runs some) or locks.
        ctx = multiprocessing.get_context("forkserver")
        # Import the heavy modules once in the fork server instead of once per worker.
        ctx.set_forkserver_preload([__name__])
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(factory,)
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
        _init_worker(detector_factory)
        rows = [row for chunk in _chunks(ordered, chunk_size) for row in _run_chunk(chunk, reader)]
    else:
        pool = warm_pool(workers, detector_factory)
        run = functools.partial(
            _run_pooled, reader=None if reader is None else pickle.dumps(reader)
        )
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
        _init_worker(factory)
        done[i] = _run_chunk(chunks[i], reader)
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
