"""The real faces the sample is built from: only images that installed packages ship.

There are exactly 102 real identities: the 100 faces of scikit-image's `lfw_subset()` (its
docstring: "100 first images are faces and subsequent 100 are non-faces"), the astronaut of
`skimage.data.astronaut()` and Grace Hopper from matplotlib's sample data. Every synthetic subject
is drawn onto one of them, so many subjects share a face; selfies still differ perceptually
because pose, background, lighting and camera are drawn per capture.
"""

from __future__ import annotations

from functools import cache

import matplotlib.cbook
import numpy as np
from PIL import Image
from skimage import data as skdata

FACE_SIZE = 256
LFW_FACES = 100
N_FACES = LFW_FACES + 2
# Face boxes (left, top, right, bottom) picked by eye to match LFW's tight crops.
ASTRONAUT_BOX = (160, 50, 290, 180)
GRACE_HOPPER_BOX = (160, 140, 370, 350)
# Skin tints for the grey LFW faces; indexed by face id so a face keeps its tint.
_TINTS = ((1.0, 0.86, 0.74), (0.95, 0.78, 0.64), (0.82, 0.64, 0.5), (0.62, 0.46, 0.36))


@cache
def lfw_subset() -> np.ndarray:
    """(200, 25, 25) uint8: faces first, then non-faces."""
    images = skdata.lfw_subset()
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    return images


@cache
def base_face(face_id: int) -> Image.Image:
    """Square RGB face crop of FACE_SIZE pixels for identity `face_id` (0..N_FACES-1)."""
    if not 0 <= face_id < N_FACES:
        raise ValueError(f"face_id {face_id} outside 0..{N_FACES - 1}")
    if face_id < LFW_FACES:
        grey = Image.fromarray(lfw_subset()[face_id]).resize(
            (FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC
        )
        tint = np.asarray(_TINTS[face_id % len(_TINTS)], dtype=np.float32)
        rgb = np.asarray(grey, dtype=np.float32)[..., None] * tint
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if face_id == LFW_FACES:
        source = Image.fromarray(skdata.astronaut()).crop(ASTRONAUT_BOX)
    else:
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        with Image.open(path) as image:
            source = image.convert("RGB").crop(GRACE_HOPPER_BOX)
    return source.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)


def lfw_image(index: int, size: int) -> Image.Image:
    """LFW subset image `index` (0..199) upscaled to size x size, greyscale."""
    return Image.fromarray(lfw_subset()[index]).resize((size, size), Image.Resampling.BICUBIC)
