"""Face detector comparison on the same packaged images, pinned to one core.

    .venv/bin/python -m benchmarks.detectors

Candidates: OpenCV Haar cascade (opencv-python-headless), dlib HOG (dlib-bin, optional: only
installed to run this), MTCNN on onnxruntime (the project's detector). Measures ms per 640x480
image, recall on the 100 LFW faces of skimage.data.lfw_subset (upscaled crop, and composited on
a 640x480 background), detection on astronaut / grace_hopper, and the false-positive rate on the
100 LFW non-face patches.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data

from identity_data.defs.annotations.detector import Face, FaceDetector, MtcnnDetector

CANVAS = (480, 640)
PATCH = 128


def lfw_patches() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(faces, non_faces) as PATCH x PATCH uint8 gray; lfw_subset's docstring: 100 faces first."""
    images = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)
    up = [cv2.resize(im, (PATCH, PATCH), interpolation=cv2.INTER_CUBIC) for im in images]
    return up[:100], up[100:]


def background(seed: int = 0) -> np.ndarray:
    """A 640x480 textured, face-free scene (skimage's coffee cup) as BGR."""
    coffee = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    bg = cv2.resize(coffee, (CANVAS[1], CANVAS[0]), interpolation=cv2.INTER_AREA)
    return np.roll(bg, shift=seed * 37, axis=1)


def framed(patch: np.ndarray) -> np.ndarray:
    """The upscaled crop with a grey margin: detectors need context around a tight crop."""
    return cv2.copyMakeBorder(patch, 48, 48, 48, 48, cv2.BORDER_CONSTANT, value=128)


def composite(patch: np.ndarray, seed: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`patch` pasted at a seeded position on the background; returns (BGR image, box)."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(100, 161))
    x = int(rng.integers(0, CANVAS[1] - side))
    y = int(rng.integers(0, CANVAS[0] - side))
    img = background(seed % 7).copy()
    img[y : y + side, x : x + side] = cv2.cvtColor(
        cv2.resize(patch, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR
    )
    return img, (x, y, side, side)


def portraits() -> dict[str, np.ndarray]:
    """Real photographs shipped with scikit-image and matplotlib, as BGR."""
    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return {
        "astronaut": cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR),
        "grace_hopper": cv2.imread(str(hopper)),
    }


def hits(faces: list[Face], box: tuple[int, int, int, int]) -> bool:
    """True if any detection's centre falls inside `box` (x, y, w, h)."""
    x, y, w, h = box
    return any(x <= f.x + f.w / 2 <= x + w and y <= f.y + f.h / 2 <= y + h for f in faces)


def _sha256(paths: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()


@dataclass
class HaarDetector:
    """OpenCV's frontal-face Haar cascade; score = the last stage's level weight."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 40
    name: str = "opencv_haar_frontalface_default"

    def __post_init__(self) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.version = f"opencv=={cv2.__version__}"
        self.weights_sha256 = _sha256([path])
        self.params = {"scale_factor": self.scale_factor, "min_neighbors": self.min_neighbors}
        self._cascade = cv2.CascadeClassifier(str(path))

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        return [
            Face(int(x), int(y), int(w), int(h), float(s), None)
            for (x, y, w, h), s in zip(rects, np.ravel(weights), strict=True)
        ]


@dataclass
class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector (weights compiled into the library)."""

    upsample: int = 1
    name: str = "dlib_hog_frontal"

    def __post_init__(self) -> None:
        # Optional: only installed to run this comparison.
        import _dlib_pybind11
        import dlib

        self.version = f"dlib=={dlib.__version__}"
        # The model is compiled into the shared library, so hash that.
        self.weights_sha256 = _sha256([Path(_dlib_pybind11.__file__)])
        self.params = {"upsample": self.upsample}
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rects, scores, _ = self._detector.run(gray, self.upsample, 0.0)
        return [
            Face(r.left(), r.top(), r.width(), r.height(), float(s), None)
            for r, s in zip(rects, scores, strict=True)
        ]


def _candidates() -> Iterator[tuple[str, Callable[[], FaceDetector]]]:
    yield "haar", HaarDetector
    yield "dlib_hog(up=1)", DlibHogDetector
    yield "mtcnn(min=40)", MtcnnDetector
    yield "mtcnn(min=20)", lambda: MtcnnDetector(min_face_size=20.0)


def measure(detector: FaceDetector) -> dict[str, float]:
    faces, non_faces = lfw_patches()
    crop_tp = sum(hits(detector.detect(framed(p)), (48, 48, PATCH, PATCH)) for p in faces)
    comp = [composite(p, i) for i, p in enumerate(faces)]
    comp_tp = sum(hits(detector.detect(img), box) for img, box in comp)
    crop_fp = sum(bool(detector.detect(framed(p))) for p in non_faces)
    comp_nf = [composite(p, 1000 + i) for i, p in enumerate(non_faces)]
    comp_fp = sum(hits(detector.detect(img), box) for img, box in comp_nf)
    bg_fp = sum(len(detector.detect(background(s))) for s in range(7))
    found = {k: len(detector.detect(v)) for k, v in portraits().items()}

    timings = []
    for img, _ in comp[:40]:
        t0 = time.perf_counter()
        detector.detect(img)
        timings.append((time.perf_counter() - t0) * 1000)
    return {
        "ms_640x480": statistics.median(timings),
        "recall_crop": crop_tp / len(faces),
        "recall_composite": comp_tp / len(faces),
        "fp_crop": crop_fp / len(non_faces),
        "fp_composite": comp_fp / len(non_faces),
        "bg_detections": bg_fp,
        "astronaut": found["astronaut"],
        "grace_hopper": found["grace_hopper"],
    }


def main() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    header = (
        f"{'detector':<16}{'ms/img':>8}{'rec_crop':>10}{'rec_comp':>10}{'fp_crop':>9}"
        f"{'fp_comp':>9}{'bg_det':>8}{'astro':>7}{'hopper':>8}  landmarks"
    )
    print("one core; 640x480 timing = median over 40 composites; recall over 100 LFW faces;")
    print("fp over 100 LFW non-face patches; bg_det = detections on 7 face-free 640x480 scenes")
    print(header)
    for label, factory in _candidates():
        try:
            detector = factory()
        except ImportError as exc:
            print(f"{label:<16}not installed ({exc.name})")
            continue
        r = measure(detector)
        landmarks = "5 points" if detector.name == "mtcnn" else "none"
        print(
            f"{label:<16}{r['ms_640x480']:>8.1f}{r['recall_crop']:>10.2f}"
            f"{r['recall_composite']:>10.2f}{r['fp_crop']:>9.2f}{r['fp_composite']:>9.2f}"
            f"{r['bg_detections']:>8d}{r['astronaut']:>7d}{r['grace_hopper']:>8d}  {landmarks}"
        )


if __name__ == "__main__":
    main()
