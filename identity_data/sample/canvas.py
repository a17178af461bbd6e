"""Drawing primitives shared by selfies, attacks and ID cards: backgrounds, faces, degradations.

Every function takes an explicit `numpy.random.Generator`, so an image is a pure function of its
seed and renders identically in any worker process.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from identity_data.sample.faces import base_face

Box = tuple[int, int, int, int]
QUALITIES = ("ok", "blurry", "dark", "occluded")
NOISE_TILE = 1024


def random_colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(low, high, size=3))
    return r, g, b


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random scene: low-frequency colour field, gradient, shapes and sensor noise.

    The low-frequency field is what keeps pHashes of distinct captures far apart: pHash only looks
    at the lowest 8x8 DCT coefficients, and they are driven by this random coarse layout.
    """
    # Field and gradient are smooth, so they are mixed at 1/8 scale and upscaled once.
    small_w, small_h = max(2, width // 8), max(2, height // 8)
    shape = (int(rng.integers(2, 5)), int(rng.integers(2, 6)))
    # Per-cell brightness: pHash sees luminance only, and hue alone averages out in grey.
    grid = rng.integers(0, 256, size=(*shape, 3)) * rng.uniform(0.1, 1.0, size=(*shape, 1))
    field = np.asarray(
        Image.fromarray(grid.astype(np.uint8), "RGB").resize(
            (small_w, small_h), Image.Resampling.BICUBIC
        ),
        dtype=np.float32,
    )
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.arange(small_w, dtype=np.float32)[None, :] * np.float32(np.cos(angle)) + np.arange(
        small_h, dtype=np.float32
    )[:, None] * np.float32(np.sin(angle))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0 = np.asarray(random_colour(rng), dtype=np.float32)
    c1 = np.asarray(random_colour(rng), dtype=np.float32)
    gradient = c0 + ramp[..., None] * (c1 - c0)
    mix = rng.uniform(0.5, 0.85)
    small = np.clip(mix * field + (1 - mix) * gradient, 0, 255).astype(np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(int(v) for v in rng.integers(-width // 4, width * 5 // 4, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(-height // 4, height * 5 // 4, size=2))
        fill = (*random_colour(rng), int(rng.integers(60, 200)))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(3, 25)))
    return img


@cache
def _noise_tile() -> np.ndarray:
    """A fixed field of unit Gaussian noise; images take random windows of it."""
    return np.random.default_rng(0).standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32)


def add_noise(rng: np.random.Generator, img: Image.Image, sigma: float) -> Image.Image:
    """Luminance noise shared by the channels, cut from a cached tile at a random offset."""
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape[:2]
    if h > NOISE_TILE or w > NOISE_TILE:
        raise ValueError(f"image {w}x{h} is larger than the {NOISE_TILE}px noise tile")
    y, x = int(rng.integers(0, NOISE_TILE - h + 1)), int(rng.integers(0, NOISE_TILE - w + 1))
    noise = _noise_tile()[y : y + h, x : x + w] * np.float32(sigma)
    arr += noise[..., None] if arr.ndim == 3 else noise
    np.clip(arr, 0, 255, out=arr)
    return Image.fromarray(arr.astype(np.uint8), img.mode)


def ellipse_mask(width: int, height: int, feather: float) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((width * 0.1, height * 0.02, width * 0.9, height * 0.98), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(feather)) if feather > 0 else mask


def face_patch(
    rng: np.random.Generator, face_id: int, size: int, lighting: bool = True
) -> tuple[Image.Image, Image.Image]:
    """The identity's face at `size` px with pose and lighting drawn from `rng`; (RGB, alpha)."""
    face = base_face(face_id)
    if rng.random() < 0.5:
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    face = face.resize((size, size), Image.Resampling.BICUBIC)
    mask = ellipse_mask(size, size, feather=size / 40)
    if lighting:
        arr = np.asarray(face, dtype=np.float32)
        gain = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, size=3)
        # A side light: brightness ramps across the face.
        ramp = np.linspace(1 - rng.uniform(0, 0.25), 1, size, dtype=np.float32)
        if rng.random() < 0.5:
            ramp = ramp[::-1]
        arr = arr * gain[None, None, :] * ramp[None, :, None]
        face = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    angle = float(rng.uniform(-12, 12))
    face = face.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    return face, mask


def portrait(
    rng: np.random.Generator,
    face_id: int,
    canvas: Image.Image,
    size: int,
    centre: tuple[int, int],
    lighting: bool = True,
) -> Box:
    """Paste shoulders and the face onto `canvas` in place; returns the face box."""
    cx, cy = centre
    draw = ImageDraw.Draw(canvas)
    # Build, clothing and framing vary a lot: a fixed torso would dominate every pHash.
    half = size * rng.uniform(0.8, 1.5)
    top = cy + size * rng.uniform(0.38, 0.55)
    shift = size * rng.uniform(-0.25, 0.25)
    draw.ellipse(
        (cx + shift - half, top, cx + shift + half, top + size * rng.uniform(1.2, 2.2)),
        fill=random_colour(rng, 10, 230),
    )
    neck = size * rng.uniform(0.12, 0.2)
    draw.rectangle(
        (cx - neck, cy + size * 0.3, cx + neck, top + size * 0.1), fill=random_colour(rng, 90, 230)
    )
    face, mask = face_patch(rng, face_id, size, lighting)
    box = (cx - size // 2, cy - size // 2, cx - size // 2 + size, cy - size // 2 + size)
    canvas.paste(face, box[:2], mask)
    return box


def degrade(rng: np.random.Generator, img: Image.Image, quality: str, face: Box) -> Image.Image:
    """Apply the ground-truth capture-quality defect (`ok` leaves the image alone)."""
    if quality == "ok":
        return img
    if quality == "blurry":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(4.5, 7.5)))
    if quality == "dark":
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr ** rng.uniform(1.8, 2.6) * rng.uniform(0.3, 0.5)
        return Image.fromarray(np.clip(arr * 255.0, 0, 255).astype(np.uint8))
    if quality == "occluded":
        out = img.copy()
        x0, y0, x1, y1 = face
        w, h = x1 - x0, y1 - y0
        # A hand or sticker over 40-65% of the face, from a random side.
        cover = rng.uniform(0.4, 0.65)
        side = int(rng.integers(0, 4))
        patch = {
            0: (x0, y0, x0 + w * cover, y1),
            1: (x1 - w * cover, y0, x1, y1),
            2: (x0, y0, x1, y0 + h * cover),
            3: (x0, y1 - h * cover, x1, y1),
        }[side]
        ImageDraw.Draw(out).rectangle(patch, fill=random_colour(rng, 20, 235))
        return out
    raise ValueError(f"unknown capture quality {quality!r}; expected one of {QUALITIES}")


def camera(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Lens softness and sensor noise of an ordinary phone camera."""
    blur = rng.uniform(0, 0.8)
    if blur > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return add_noise(rng, img, rng.uniform(1, 4))


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    # Fixed encoder options: the same pixels must give the same bytes on every run.
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=int(quality), optimize=False, progressive=False)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> tuple:
    """Coefficients for Image.transform(PERSPECTIVE) mapping output points `dst` to input `src`."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.asarray(rows, dtype=np.float64)
    b = np.asarray(src, dtype=np.float64).reshape(8)
    return tuple(float(v) for v in np.linalg.solve(a, b))


def place_quad(
    rng: np.random.Generator, scene: Image.Image, item: Image.Image, scale: float, jitter: float
) -> Image.Image:
    """Paste `item` onto `scene`, scaled and warped by a slight random perspective."""
    sw, sh = scene.size
    iw, ih = item.size
    fit = min(sw / iw, sh / ih) * scale
    w, h = iw * fit, ih * fit
    x0 = (sw - w) / 2 + rng.uniform(-0.5, 0.5) * (sw - w)
    y0 = (sh - h) / 2 + rng.uniform(-0.5, 0.5) * (sh - h)
    corners = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    dst = [
        (x + rng.uniform(-jitter, jitter) * w, y + rng.uniform(-jitter, jitter) * h)
        for x, y in corners
    ]
    src = [(0.0, 0.0), (float(iw), 0.0), (float(iw), float(ih)), (0.0, float(ih))]
    coeffs = perspective_coeffs(src, dst)
    warped = item.convert("RGB").transform(
        scene.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    mask = Image.new("L", item.size, 255).transform(
        scene.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    out = scene.copy()
    out.paste(warped, (0, 0), mask)
    return out
