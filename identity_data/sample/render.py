"""Selfies and presentation attacks (print, screen replay, paper mask) rendered from real faces.

An attack always shows a freshly rendered photo of the victim, never a stored capture, so attacks
are not near-duplicates of genuine captures unless the plan injects one on purpose.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from identity_data.sample.canvas import (
    Box,
    add_noise,
    background,
    camera,
    degrade,
    encode_jpeg,
    face_patch,
    place_quad,
    portrait,
    random_colour,
)

SELFIE_SIZE = (640, 480)
ATTACK_TYPES = ("genuine", "print", "replay", "mask")
_SKIN = ((224, 188, 160), (198, 150, 120), (150, 105, 80), (105, 72, 55))


def selfie_scene(rng: np.random.Generator, face_id: int) -> tuple[Image.Image, Box]:
    width, height = SELFIE_SIZE
    img = background(rng, width, height)
    size = int(rng.integers(150, 300))
    cx = int(rng.integers(size // 2 + 10, width - size // 2 - 10))
    cy = int(rng.integers(size // 2 + 5, max(size // 2 + 6, int(height * 0.62))))
    return img, portrait(rng, face_id, img, size, (cx, cy))


def _grid(shape: tuple[int, int], angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by `angle`, as (u, v) float32 arrays."""
    xx = np.arange(shape[1], dtype=np.float32)[None, :]
    yy = np.arange(shape[0], dtype=np.float32)[:, None]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return xx * c + yy * s, -xx * s + yy * c


def print_attack(rng: np.random.Generator, face_id: int) -> Image.Image:
    """A printed photo held up to the camera: halftone dots, paper tint, perspective."""
    photo, _ = selfie_scene(rng, face_id)
    arr = np.asarray(photo, dtype=np.float32) / 255.0
    u, v = _grid(arr.shape[:2], rng.uniform(0.2, 0.9))
    period = rng.uniform(3.0, 5.0)
    k = np.float32(2 * np.pi / period)
    screen = 0.5 + 0.5 * np.sin(k * u) * np.sin(k * v)
    dots = (arr > screen[..., None]).astype(np.float32)
    paper = np.asarray([1.0, rng.uniform(0.93, 0.99), rng.uniform(0.82, 0.93)], dtype=np.float32)
    printed = (0.5 * dots + 0.5 * arr) * 0.8 + 0.15
    printed = printed * paper
    sheet = Image.fromarray(np.clip(printed * 255, 0, 255).astype(np.uint8))
    sheet = sheet.filter(ImageFilter.GaussianBlur(0.6))
    scene = background(rng, *SELFIE_SIZE)
    return place_quad(rng, scene, sheet, scale=rng.uniform(0.8, 0.95), jitter=0.04)


def replay_attack(rng: np.random.Generator, face_id: int) -> Image.Image:
    """A photo replayed on a phone or monitor: bezel, moiré bands and screen glare."""
    photo, _ = selfie_scene(rng, face_id)
    arr = np.asarray(photo, dtype=np.float32)
    h, w = arr.shape[:2]
    u, _ = _grid((h, w), rng.uniform(-0.6, 0.6))
    # Beat between the display's pixel grid and the sensor's: slow bands over a fine grating.
    p1 = rng.uniform(2.5, 3.5)
    p2 = p1 * rng.uniform(1.03, 1.08)
    moire = np.cos(np.float32(2 * np.pi / p1) * u) * np.cos(np.float32(2 * np.pi / p2) * u)
    arr = arr + rng.uniform(14, 26) * moire[..., None]
    gy, gx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    radius = rng.uniform(60, 160)
    # The Gaussian glare spot is separable: one outer product instead of a full-frame exp.
    gx_profile = np.exp(-((np.arange(w, dtype=np.float32) - gx) ** 2) / (2 * radius**2))
    gy_profile = np.exp(-((np.arange(h, dtype=np.float32) - gy) ** 2) / (2 * radius**2))
    glare = np.outer(gy_profile, gx_profile).astype(np.float32)
    arr = arr * rng.uniform(0.85, 1.0) + rng.uniform(90, 170) * glare[..., None]
    shown = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    margin = int(rng.integers(18, 40))
    device = Image.new("RGB", (w + 2 * margin, h + 2 * margin), (0, 0, 0))
    ImageDraw.Draw(device).rounded_rectangle(
        (0, 0, device.width - 1, device.height - 1),
        radius=margin,
        fill=random_colour(rng, 5, 60),
    )
    device.paste(shown, (margin, margin))
    scene = background(rng, *SELFIE_SIZE)
    return place_quad(rng, scene, device, scale=rng.uniform(0.8, 0.95), jitter=0.03)


def _binarize(value: int) -> int:
    return 255 if value > 128 else 0


def mask_attack(rng: np.random.Generator, face_id: int) -> Image.Image:
    """Someone wearing a paper cut-out of the victim's face: hard edge, eye holes, paper grain."""
    width, height = SELFIE_SIZE
    img = background(rng, width, height)
    size = int(rng.integers(180, 290))
    cx = int(rng.integers(size // 2 + 30, width - size // 2 - 30))
    cy = int(rng.integers(size // 2 + 10, max(size // 2 + 11, int(height * 0.58))))
    draw = ImageDraw.Draw(img)
    draw.ellipse(
        (cx - size * 1.15, cy + size * 0.42, cx + size * 1.15, cy + size * 2.0),
        fill=random_colour(rng, 10, 230),
    )
    skin = _SKIN[int(rng.integers(0, len(_SKIN)))]
    head = size * 0.58
    draw.ellipse((cx - head, cy - head * 1.15, cx + head, cy + head * 1.1), fill=skin)
    face, soft = face_patch(rng, face_id, size, lighting=False)
    arr = np.asarray(face, dtype=np.float32)
    grain = np.asarray(
        Image.fromarray(rng.integers(0, 256, size=(size // 4, size // 4), dtype=np.uint8)).resize(
            (size, size), Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )
    arr = (0.8 * arr + 0.2 * arr.mean()) * (0.92 + 0.16 * grain[..., None] / 255.0)
    face = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    hard = soft.point(_binarize)
    fdraw = ImageDraw.Draw(face)
    eye_w, eye_h = size * 0.13, size * 0.065
    for ex in (0.34, 0.66):
        fdraw.ellipse(
            (
                size * ex - eye_w / 2,
                size * 0.4 - eye_h / 2,
                size * ex + eye_w / 2,
                size * 0.4 + eye_h / 2,
            ),
            fill=(35, 25, 25),
        )
    x0, y0 = cx - size // 2, cy - size // 2
    img.paste(face, (x0, y0), hard)
    edge = Image.new("RGB", (size, size), (242, 238, 228))
    outline = hard.filter(ImageFilter.MaxFilter(5)).point(lambda p: 255 if p else 0)
    ring = Image.fromarray(
        (np.asarray(outline, dtype=np.int16) - np.asarray(hard, dtype=np.int16))
        .clip(0, 255)
        .astype(np.uint8)
    )
    img.paste(edge, (x0, y0), ring)
    # The elastic band that holds the mask on.
    band = (20, 20, 20)
    draw.line((x0 + size * 0.1, cy, cx - head * 1.2, cy - size * 0.05), fill=band, width=3)
    draw.line((x0 + size * 0.9, cy, cx + head * 1.2, cy - size * 0.05), fill=band, width=3)
    return add_noise(rng, img, rng.uniform(1, 3))


def render_face_capture(
    rng: np.random.Generator, face_id: int, attack_type: str, quality: str
) -> bytes:
    """A selfie capture: genuine or one of the attacks, with its quality defect, as JPEG."""
    if attack_type == "genuine":
        img, box = selfie_scene(rng, face_id)
    elif attack_type in ("print", "replay", "mask"):
        img = {"print": print_attack, "replay": replay_attack, "mask": mask_attack}[attack_type](
            rng, face_id
        )
        w, h = SELFIE_SIZE
        # Attack geometry is not tracked; occlusion on attacks covers the frame centre.
        box = (w // 4, h // 6, 3 * w // 4, 5 * h // 6)
    else:
        raise ValueError(f"unknown attack_type {attack_type!r}; expected one of {ATTACK_TYPES}")
    img = camera(rng, degrade(rng, img, quality, box))
    return encode_jpeg(img, int(rng.integers(70, 96)))
