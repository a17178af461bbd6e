"""Images for tests and benchmarks, built from photos shipped with scikit-image and matplotlib
(no downloads): encoded scenes, broken and hostile files, near-duplicates."""

from __future__ import annotations

import io
import struct
import zlib

import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image

from identity_data.sample.transforms import transformed


def jpeg(rgb: np.ndarray | Image.Image, quality: int = 90) -> bytes:
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def grace_hopper() -> np.ndarray:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels that compresses to ~100 KB (50 MB of pixels)."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


def bad_crc_png(rgb: np.ndarray) -> bytes:
    """A PNG whose IDAT payload was altered after its CRC was written."""
    data = bytearray(png(rgb))
    start = data.index(b"IDAT") + 4
    data[start + 20] ^= 0xFF
    return bytes(data)


def near_duplicate(rgb: np.ndarray, transform: str, rng: np.random.Generator) -> bytes:
    """One draw of the sample generator's near-duplicate transforms, as JPEG bytes; re-crops cut
    up to 8% a side, well past the sample's 3%, to test the detector's reach."""
    return transformed(rng, Image.fromarray(rgb), transform, max_crop=0.08)


def _backgrounds() -> list[np.ndarray]:
    """Packaged photos and textures (scikit-image ships these files; nothing is fetched)."""
    loaders = (
        "astronaut",
        "brick",
        "camera",
        "cell",
        "chelsea",
        "clock",
        "coffee",
        "coins",
        "grass",
        "gravel",
        "horse",
        "hubble_deep_field",
        "immunohistochemistry",
        "moon",
        "page",
        "retina",
        "rocket",
        "text",
    )
    out = [np.asarray(getattr(skimage.data, name)()) for name in loaders]
    out.append(grace_hopper())
    rgb = [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3] for im in out]
    return [(im * 255).astype(np.uint8) if im.dtype != np.uint8 else im for im in rgb]


def scenes(n: int, seed: int = 0) -> list[np.ndarray]:
    """n distinct 640x480 RGB scenes: an LFW face pasted on a flipped crop of a packaged photo."""
    import cv2

    rng = np.random.default_rng(seed)
    faces = (skimage.data.lfw_subset()[:100] * 255).round().astype(np.uint8)
    backgrounds = _backgrounds()
    out = []
    for i in range(n):
        bg = backgrounds[i % len(backgrounds)]
        # A different flip each time a photo comes round again keeps scenes unrelated.
        flip = (i // len(backgrounds)) % 4
        bg = bg[:, ::-1] if flip & 1 else bg
        bg = bg[::-1] if flip & 2 else bg
        height, width = bg.shape[:2]
        ch, cw = int(height * 0.6), int(width * 0.6)
        y, x = int(rng.integers(0, height - ch)), int(rng.integers(0, width - cw))
        canvas = cv2.resize(np.ascontiguousarray(bg[y : y + ch, x : x + cw]), (640, 480))
        side = int(rng.integers(140, 260))
        py, px = int(rng.integers(0, 480 - side)), int(rng.integers(0, 640 - side))
        face = cv2.resize(faces[i % 100], (side, side), interpolation=cv2.INTER_CUBIC)
        canvas[py : py + side, px : px + side] = face[..., None]
        out.append(canvas)
    return out
