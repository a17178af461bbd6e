"""What an annotation pool worker runs: decode, detect faces, measure quality, hash.

Nothing here imports polars, pandera or Dagster: the pool's fork server preloads this module,
and every library it imports is paid again by each new process's first pool (about 0.1 s for
polars alone). Rows are dicts of the columns a worker knows; infer.py makes the frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import pickle
from collections.abc import Callable, Sequence

import cv2

from identity_data import imaging
from identity_data.defs.annotations.detector import FaceDetector, MtcnnDetector

# Bump when the row-building or metric code changes meaning, so the asset re-materialises.
METRICS_VERSION = "2"
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

Reader = Callable[[str], bytes]
Row = dict[str, object]


def default_detector() -> FaceDetector:
    return MtcnnDetector()


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


# Per-process state of a pool worker (or of the caller, inline): set once by init_worker.
_WORKER: dict[str, object] = {}


def init_worker(factory: Callable[[], FaceDetector]) -> None:
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


def run_pooled(chunk: Sequence[tuple[str, bytes | str]], reader: bytes | None) -> list[Row]:
    return run_chunk(chunk, None if reader is None else _reader(reader))


def run_chunk(chunk: Sequence[tuple[str, bytes | str]], reader: Reader | None) -> list[Row]:
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
