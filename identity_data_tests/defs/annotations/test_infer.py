import functools
import importlib.resources
import multiprocessing
import os
import pickle
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool

import cv2
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.defs.annotations import infer
from identity_data.defs.annotations.detector import MtcnnDetector, files_sha256
from identity_data.defs.annotations.schemas import AnnotationRows
from identity_data.sample import images
from identity_data.stores.blobs import LocalBlobStore, content_key


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector()


@pytest.fixture(scope="module")
def mixed_items() -> list[tuple[str, bytes]]:
    good = images.jpeg(images.astronaut())
    return [
        ("cap-astronaut", good),
        ("cap-hopper", images.jpeg(images.grace_hopper())),
        ("cap-blank", images.jpeg(np.full((480, 640, 3), 200, np.uint8))),
        ("cap-zero", b""),
        ("cap-trunc", good[: len(good) // 2]),
        ("cap-text", b"this is a csv,not a jpeg\n"),
        ("cap-crc", images.bad_crc_png(images.astronaut())),
        ("cap-bomb", images.png_bomb(20_000)),
        *((f"cap-scene-{i:02d}", images.jpeg(s)) for i, s in enumerate(images.scenes(12))),
    ]


@pytest.mark.parametrize("photo", [images.astronaut, images.grace_hopper])
def test_face_with_landmarks_on_real_portraits(detector: MtcnnDetector, photo) -> None:
    faces = detector.detect(cv2.cvtColor(photo(), cv2.COLOR_RGB2BGR))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.95 and face.w > 60
    assert face.landmarks is not None and len(face.landmarks) == 5
    (lx, ly), (rx, ry) = face.landmarks[:2]
    # Eyes inside the box, left of the right eye, in the upper half.
    assert face.x < lx < rx < face.x + face.w
    assert face.y < ly < face.y + face.h / 2 and face.y < ry < face.y + face.h / 2


@pytest.mark.parametrize("shape", [(480, 640, 3), (480, 640), (10, 10, 3)])
def test_no_face_on_blank_images(detector: MtcnnDetector, shape) -> None:
    assert detector.detect(np.full(shape, 90, np.uint8)) == []


def test_weights_digest_and_code_version(detector: MtcnnDetector) -> None:
    root = importlib.resources.files("mtcnnruntime") / "weights"
    shipped = {p.name: p.read_bytes() for p in root.iterdir() if p.name.endswith(".onnx")}
    assert detector.weights_sha256 == files_sha256(shipped)
    assert files_sha256({"a": b"1", "b": b"2"}) != files_sha256({"a": b"1", "b": b"3"})
    assert infer.code_version(detector) == infer.ANNOTATOR_CODE_VERSION
    assert infer.code_version(MtcnnDetector(min_face_size=20.0)) != infer.ANNOTATOR_CODE_VERSION
    other_weights = MtcnnDetector()
    other_weights.weights_sha256 = "0" * 64
    assert infer.code_version(other_weights) != infer.ANNOTATOR_CODE_VERSION


def test_every_input_gets_one_row_with_status(mixed_items) -> None:
    rows = infer.annotate_blobs(mixed_items, workers=1)
    assert rows.columns == list(infer.annotation_schema())
    assert rows["capture_id"].to_list() == sorted(cid for cid, _ in mixed_items)
    AnnotationRows.validate(rows)
    status = dict(zip(rows["capture_id"], rows["decode_status"], strict=True))
    assert status["cap-zero"] == "empty"
    assert status["cap-trunc"] == "truncated"
    assert status["cap-text"] == "not_image"
    assert status["cap-crc"] == "corrupt"
    assert status["cap-bomb"] == "too_large"
    by_id = {r["capture_id"]: r for r in rows.iter_rows(named=True)}
    assert by_id["cap-astronaut"]["face_count"] == 1
    assert by_id["cap-astronaut"]["landmark_count"] == 5
    assert by_id["cap-hopper"]["face_count"] == 1
    assert by_id["cap-blank"]["face_count"] == 0 and by_id["cap-blank"]["face_x"] is None
    assert by_id["cap-blank"]["highlight_clip"] == 0.0 and by_id["cap-blank"]["sharpness"] < 1
    hopper = by_id["cap-hopper"]
    assert 0 < hopper["face_area_share"] < 1 and hopper["face_sharpness"] > 0
    faces_in_scenes = rows.filter(pl.col("capture_id").str.starts_with("cap-scene"))["face_count"]
    assert (faces_in_scenes > 0).mean() >= 0.9


def test_deterministic_and_pool_equals_inline(mixed_items) -> None:
    inline = infer.annotate_blobs(mixed_items, workers=1)
    again = infer.annotate_blobs(list(reversed(mixed_items)), workers=1)
    pooled = infer.annotate_blobs(mixed_items, workers=2, chunk_size=3)
    assert inline.equals(again, null_equal=True)
    assert inline.equals(pooled, null_equal=True)


def test_reader_runs_in_workers_and_missing_blobs_become_rows(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put_if_absent("raw/a.jpg", images.jpeg(images.astronaut()))
    store.put_if_absent("raw/b.jpg", b"")
    keys = [("c1", "raw/a.jpg"), ("c2", "raw/b.jpg"), ("c3", "raw/missing.jpg")]
    pooled = infer.annotate_blobs(keys, workers=2, reader=store.read, chunk_size=1)
    inline = infer.annotate_blobs(keys, workers=1, reader=store.read)
    assert pooled.equals(inline, null_equal=True)
    assert pooled["decode_status"].to_list() == ["ok", "empty", "unreadable"]
    assert "FileNotFoundError" in pooled["decode_reason"][2]


def _main_script() -> str | None:
    return getattr(sys.modules["__main__"], "__file__", None)


def test_pool_workers_do_not_rerun_the_callers_main_script() -> None:
    # Under pytest, as in a Dagster run, __main__ is a console script whose import is heavy.
    main = sys.modules["__main__"]
    assert _main_script() is not None
    pool = infer.warm_pool(2, infer.default_detector)
    assert {pool.submit(_main_script).result() for _ in range(8)} == {None}
    assert sys.modules["__main__"] is main


# Evaluated in a worker through the builtin eval, so that no function of this module (which
# imports polars) is unpickled there first.
_LOADED = "sorted(m for m in ('polars', 'pandera', 'dagster') if m in __import__('sys').modules)"


def test_pool_workers_load_the_model_code_only() -> None:
    # Every library the fork server preloads is paid by each process's first pool.
    infer.close_pools()
    pool = infer.warm_pool(2, infer.default_detector)
    assert {tuple(pool.submit(eval, _LOADED).result()) for _ in range(8)} == {()}
    rows = infer.annotate_blobs([(f"c{i}", images.jpeg(images.astronaut())) for i in range(40)])
    assert rows.height == 40
    assert {tuple(pool.submit(eval, _LOADED).result()) for _ in range(8)} == {()}


def _die(key: str) -> bytes:
    # Only in a pool worker: the calling process annotates chunks too while the pool starts.
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    raise OSError("not a pool worker")


def test_a_dead_worker_fails_the_call_and_the_next_call_gets_a_new_pool(mixed_items) -> None:
    with pytest.raises(BrokenProcessPool):
        infer.annotate_blobs([("c1", "k1"), ("c2", "k2")], workers=2, reader=_die, chunk_size=1)
    pooled = infer.annotate_blobs(mixed_items, workers=2, chunk_size=3)
    assert pooled.equals(infer.annotate_blobs(mixed_items, workers=1), null_equal=True)


_READ_BY_CALLER: list[str] = []


def _read_noting_the_caller(root: str, key: str) -> bytes:
    if multiprocessing.parent_process() is None:
        _READ_BY_CALLER.append(key)
    return LocalBlobStore(root).read(key)


def test_the_caller_annotates_while_a_cold_pool_starts(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    items = []
    for i, scene in enumerate(images.scenes(24)):
        store.put_if_absent(f"raw/{i:02d}.jpg", images.jpeg(scene))
        items.append((f"c{i:02d}", f"raw/{i:02d}.jpg"))
    reader = functools.partial(_read_noting_the_caller, str(tmp_path))
    infer.close_pools()
    _READ_BY_CALLER.clear()
    pooled = infer.annotate_blobs(items, workers=2, reader=reader, chunk_size=1)
    # The last chunks, taken from the back before any worker had finished its first one.
    assert _READ_BY_CALLER and sorted(_READ_BY_CALLER, reverse=True) == _READ_BY_CALLER
    assert len(_READ_BY_CALLER) < len(items)
    assert pooled.equals(infer.annotate_blobs(items, workers=1, reader=reader), null_equal=True)


_FAULTS_PER_IMAGE = """
import pickle, resource, sys
from identity_data.defs.annotations import infer
with open(sys.argv[1], "rb") as f:
    items = pickle.load(f)
infer.annotate_blobs(items[:5], workers=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
infer.annotate_blobs(items[5:], workers=1)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (len(items) - 5))
"""


def test_images_reuse_heap_blocks_instead_of_faulting_in_fresh_pages(tmp_path) -> None:
    # A fresh process given encoded images, as a pool worker is. glibc's defaults map and unmap
    # each ~1 MB frame buffer there, faulting its pages in again for every image (about
    # 1,300-1,600 minor faults per 640x480 image, measured), against ~160 when freed blocks
    # stay on the heap.
    items = tmp_path / "items.pickle"
    items.write_bytes(
        pickle.dumps([(f"c{i:02d}", images.jpeg(s)) for i, s in enumerate(images.scenes(25))])
    )
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_IMAGE, str(items)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) < 500


def test_repeated_capture_ids_are_an_error() -> None:
    with pytest.raises(ValueError, match="repeated"):
        infer.annotate_blobs([("c1", b""), ("c1", b"x")], workers=1)


def test_empty_input_gives_empty_typed_frame() -> None:
    rows = infer.annotate_blobs([], workers=1)
    assert rows.height == 0 and rows.schema == infer.annotation_schema()


class CountingDetector(MtcnnDetector):
    """The real detector, counting the images it sees (inline runs only: one process)."""

    calls = 0

    def detect(self, image):
        CountingDetector.calls += 1
        return super().detect(image)


def _manifest(store: LocalBlobStore, blobs: dict[str, bytes]) -> pl.DataFrame:
    rows = []
    for capture_id, data in blobs.items():
        key, digest = content_key(data, ".jpg")
        store.put_if_absent(key, data)
        rows.append((capture_id, digest, key))
    return pl.DataFrame(rows, schema=["capture_id", "sha256", "blob_key"], orient="row")


def test_annotations_are_computed_once_per_content_and_version(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    face, hopper = images.jpeg(images.astronaut()), images.jpeg(images.grace_hopper())
    manifest = _manifest(store, {"c1": face, "c2": face, "c3": hopper})

    def run(m: pl.DataFrame, cache, factory=CountingDetector) -> tuple[pl.DataFrame, int]:
        CountingDetector.calls = 0
        rows = infer.annotate_captures(m, store.read, cache, 1, detector_factory=factory)
        return rows, CountingDetector.calls

    uncached, calls = run(manifest, None)
    assert calls == 2  # two contents, three captures
    first, calls = run(manifest, store)
    assert calls == 2
    again, calls = run(manifest, store)
    assert calls == 0
    assert_frame_equal(first, uncached)
    assert_frame_equal(again, uncached)
    AnnotationRows.validate(again)
    assert again["capture_id"].to_list() == ["c1", "c2", "c3"]

    # A changed blob is a new content: only it is annotated.
    changed = _manifest(store, {"c1": face, "c3": images.jpeg(images.grace_hopper(), 60)})
    rows, calls = run(changed, store)
    assert calls == 1
    assert_frame_equal(rows, run(changed, None)[0])

    # A new code version (here: another detector parameter) re-annotates everything.
    other = functools.partial(CountingDetector, min_face_size=30.0)
    _, calls = run(manifest, store, other)
    assert calls == 2
    _, calls = run(manifest, store, other)
    assert calls == 0


def test_storage_failures_are_not_cached(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    manifest = _manifest(store, {"c1": images.jpeg(images.astronaut())})
    key = manifest["blob_key"][0]
    data = store.read(key)
    (tmp_path / key).unlink()
    rows = infer.annotate_captures(manifest, store.read, store, 1)
    assert rows["decode_status"].to_list() == ["unreadable"]
    store.put_if_absent(key, data)
    rows = infer.annotate_captures(manifest, store.read, store, 1)
    assert rows["decode_status"].to_list() == ["ok"]


class RefusingDetector(MtcnnDetector):
    """The real detector's description (so the same code version), failing if ever put to work."""

    def load(self) -> None:
        raise AssertionError("detector loaded although every content is cached")

    def detect(self, image):
        raise AssertionError("detector ran although every content is cached")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fully_cached_partition_never_loads_the_detector(tmp_path, workers) -> None:
    store = LocalBlobStore(tmp_path)
    blobs = {f"c{i}": images.jpeg(images.astronaut(), 50 + i) for i in range(20)}
    manifest = _manifest(store, blobs)
    first = infer.annotate_captures(manifest, store.read, store, workers)
    assert infer.code_version(RefusingDetector()) == infer.code_version(MtcnnDetector())
    again = infer.annotate_captures(
        manifest, store.read, store, workers, detector_factory=RefusingDetector
    )
    assert_frame_equal(again, first)
