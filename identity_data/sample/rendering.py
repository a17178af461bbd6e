"""Draw every planned blob, in a process pool, and keep distinct captures perceptually distinct.

Each blob is a pure function of its job's seed, so pool scheduling never changes a byte. After
drawing, any two captures that are not injected near-duplicates but land within
DISTINCT_PHASH bits of each other by chance get the later one redrawn from a derived seed: an
accidental near-duplicate would be missing from ground_truth/near_duplicates.csv.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from identity_data.sample import documents, render
from identity_data.sample.canvas import encode_png
from identity_data.sample.faces import lfw_image
from identity_data.sample.plan import Job
from identity_data.sample.transforms import broken_blob, near_duplicate
from identity_data.stores.blobs import content_key

LFW_SIZE = 100
INLINE_JOBS = 48
# Distinct captures must be further apart than this many pHash bits.
DISTINCT_PHASH = 10
MAX_REDRAW_ROUNDS = 12
# The O(n^2) distinctness check is skipped above this many blobs (load-test sizes).
MAX_DISTINCT_CHECK = 30_000
REDRAWABLE = frozenset({"face", "id_front", "id_back"})
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Drawn:
    key: str  # raw-zone content key, as the pipeline will store the blob
    phash: int | None  # None when the blob does not decode


def render_job(job: Job, root: str) -> bytes:
    """The bytes of one blob; near-duplicates read their original from `root`."""
    rng = np.random.default_rng(job.seed)
    if job.kind == "face":
        return render.render_face_capture(rng, job.face_id, job.attack_type, job.quality)
    if job.kind == "broken":
        valid = render.render_face_capture(rng, job.face_id, job.attack_type, job.quality)
        return broken_blob(job.broken_kind, valid)
    if job.kind in ("id_front", "id_back"):
        if job.holder is None:
            raise ValueError(f"{job.kind} job without a card holder")
        if job.kind == "id_front":
            return documents.id_front(rng, job.holder, job.face_id, job.quality)
        return documents.id_back(rng, job.holder, job.quality)
    if job.kind == "lfw":
        return encode_png(lfw_image(job.lfw_index, LFW_SIZE))
    if job.kind == "near_dup":
        return near_duplicate(rng, (Path(root) / job.source_file).read_bytes(), job.transform)
    raise ValueError(f"unknown render job kind {job.kind!r}")


def _write(task: tuple[str, Job, str]) -> tuple[str, Drawn]:
    file, job, root = task
    data = render_job(job, root)
    target = Path(root) / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    phash = None
    if job.kind != "broken":
        with Image.open(io.BytesIO(data)) as img:
            phash = int(str(imagehash.phash(img)), 16)
    return file, Drawn(content_key(data, target.suffix)[0], phash)


def _run(
    tasks: Sequence[tuple[str, Job, str]], pool: ProcessPoolExecutor | None, progress: Progress
) -> dict[str, Drawn]:
    drawn: dict[str, Drawn] = {}
    step = max(1, len(tasks) // 10)
    results: Iterable[tuple[str, Drawn]]
    if pool is None or len(tasks) <= INLINE_JOBS:
        results = map(_write, tasks)
    else:
        results = pool.map(_write, tasks, chunksize=8)
    for i, (file, result) in enumerate(results, 1):
        drawn[file] = result
        if i % step == 0 or i == len(tasks):
            progress(f"rendered {i}/{len(tasks)} blobs")
    return drawn


def too_close(hashes: Sequence[int], fixed: Sequence[bool]) -> list[int]:
    """Indexes to redraw so no two blobs are within DISTINCT_PHASH bits: of each close pair, the
    member close to more others (a template-like hub), the later one on ties; a fixed member is
    never chosen and pairs of two fixed blobs are left alone."""
    values = np.asarray(hashes, dtype=np.uint64)
    pinned = np.asarray(fixed, dtype=bool)
    pairs = []
    for i in range(len(values) - 1):
        close = np.nonzero(np.bitwise_count(values[i + 1 :] ^ values[i]) <= DISTINCT_PHASH)[0]
        pairs.extend((i, int(j)) for j in close + i + 1 if not (pinned[i] and pinned[j]))
    degree = np.zeros(len(values), dtype=np.int64)
    for i, j in pairs:
        degree[i] += 1
        degree[j] += 1
    victims: set[int] = set()
    for i, j in pairs:
        if i in victims or j in victims:
            continue
        if pinned[i] or pinned[j]:
            victims.add(j if pinned[i] else i)
        else:
            victims.add(i if degree[i] > degree[j] else j)
    return sorted(victims)


def _redraw_seed(job: Job, attempt: int) -> int:
    return int.from_bytes(
        hashlib.sha256(f"{job.seed}:redraw:{attempt}".encode()).digest()[:8], "big"
    )


def render_all(
    tasks: Sequence[tuple[str, Job, str]], workers: int, progress: Progress
) -> tuple[dict[str, Drawn], int]:
    """Draw originals, make them distinct, then derive near-duplicates; (results, redraws)."""
    pool = None
    if workers > 1 and len(tasks) > INLINE_JOBS:
        # spawn: forking a parent that runs polars/duckdb threads can deadlock the child.
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        originals = [t for t in tasks if t[1].kind != "near_dup"]
        drawn = _run(originals, pool, progress)
        redraws = _make_distinct(originals, drawn, pool, progress)
        drawn |= _run([t for t in tasks if t[1].kind == "near_dup"], pool, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    return drawn, redraws


def _make_distinct(
    originals: Sequence[tuple[str, Job, str]],
    drawn: dict[str, Drawn],
    pool: ProcessPoolExecutor | None,
    progress: Progress,
) -> int:
    """Redraw chance near-duplicates among `originals` in place; returns how many were redrawn."""
    checkable = [t for t in originals if t[1].kind != "broken"]
    if len(checkable) > MAX_DISTINCT_CHECK:
        progress(f"skipped the distinctness check: {len(checkable)} blobs")
        return 0
    current = {t[0]: t for t in checkable}
    redraws = 0
    for attempt in range(1, MAX_REDRAW_ROUNDS + 1):
        files = list(current)
        victims = too_close(
            [drawn[f].phash or 0 for f in files],
            [current[f][1].kind not in REDRAWABLE for f in files],
        )
        progress(f"distinctness round {attempt}: {len(victims)} blobs to redraw")
        if not victims:
            return redraws
        again = []
        for index in victims:
            file, job, root = current[files[index]]
            current[file] = (file, replace(job, seed=_redraw_seed(job, attempt)), root)
            again.append(current[file])
        drawn |= _run(again, pool, progress)
        redraws += len(again)
    raise RuntimeError(
        f"captures still within {DISTINCT_PHASH} pHash bits after {MAX_REDRAW_ROUNDS} rounds"
    )
