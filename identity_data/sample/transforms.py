"""Near-duplicate transforms and deliberately broken blobs.

pHash is sensitive to re-cropping (2-3% per side already moves some images by 10+ bits), so a
draw whose copy lands further than MAX_PHASH_DISTANCE from its original is redrawn from the same
generator; the ground truth therefore lists copies a pHash detector at threshold 8 can find.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image

from identity_data.sample.canvas import encode_jpeg

NEAR_DUP_TRANSFORMS = ("recompress", "resize", "recrop")
BROKEN_KINDS = ("truncated_jpeg", "zero_bytes", "text_file")
MAX_CROP = 0.03
MAX_PHASH_DISTANCE = 8
MAX_DRAWS = 20


def near_duplicate(rng: np.random.Generator, original: bytes, transform: str) -> bytes:
    """A re-encoded, downscaled or re-cropped copy of `original` within pHash distance 8, JPEG."""
    with Image.open(io.BytesIO(original)) as src:
        img = src.convert("RGB")
    target = imagehash.phash(img)
    for _ in range(MAX_DRAWS):
        data = transformed(rng, img, transform)
        with Image.open(io.BytesIO(data)) as copy:
            if imagehash.phash(copy) - target <= MAX_PHASH_DISTANCE:
                return data
    raise ValueError(
        f"no {transform} copy within pHash distance {MAX_PHASH_DISTANCE} in {MAX_DRAWS} draws"
    )


def transformed(
    rng: np.random.Generator, img: Image.Image, transform: str, max_crop: float = MAX_CROP
) -> bytes:
    """One draw of `transform` on `img`, as JPEG bytes; a re-crop cuts up to `max_crop` a side."""
    w, h = img.size
    if transform == "recompress":
        return encode_jpeg(img, int(rng.integers(30, 61)))
    if transform == "resize":
        scale = rng.uniform(0.5, 0.8)
        small = img.resize(
            (max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS
        )
        return encode_jpeg(small, int(rng.integers(75, 93)))
    if transform == "recrop":
        left, top, right, bottom = rng.uniform(0.01, max_crop, size=4)
        box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
        return encode_jpeg(img.crop(box).resize((w, h), Image.Resampling.LANCZOS), 85)
    raise ValueError(f"unknown near-duplicate transform {transform!r}")


def broken_blob(kind: str, valid_jpeg: bytes) -> bytes:
    if kind == "truncated_jpeg":
        # Cut well before the end so no decoder can finish the scan.
        return valid_jpeg[: len(valid_jpeg) * 2 // 5]
    if kind == "zero_bytes":
        return b""
    if kind == "text_file":
        return b"upload failed: 502 Bad Gateway\nretry-after: 30\n"
    raise ValueError(f"unknown broken blob kind {kind!r}; expected one of {BROKEN_KINDS}")
