"""Safe decoding of untrusted image bytes and the image-quality metrics."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 50 MP is 4x a 12 MP phone photo; beyond that a blob is a bomb or not a capture.
MAX_PIXELS = 50_000_000
# Only decoders a capture can legitimately need; Pillow would otherwise try e.g. EPS or PSD.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Leading bytes of the allowed formats: an unparsable blob that starts like an image is corrupt,
# anything else is not an image at all.
_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"RIFF": "WEBP",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"GIF8": "GIF",
}
HIGHLIGHT_LEVEL = 250
SHADOW_LEVEL = 5


class DecodeStatus(StrEnum):
    OK = "ok"
    EMPTY = "empty"
    NOT_IMAGE = "not_image"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Decoded:
    """Outcome of decoding one blob; `image` is set only when status is OK."""

    status: DecodeStatus
    reason: str | None = None
    image: Image.Image | None = None
    width: int | None = None
    height: int | None = None


def _failure(exc: Exception) -> Decoded:
    message = f"{type(exc).__name__}: {exc}"[:200]
    truncated = isinstance(exc, EOFError) or "truncat" in str(exc).lower()
    return Decoded(DecodeStatus.TRUNCATED if truncated else DecodeStatus.CORRUPT, message)


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode `data` to an RGB image, or say precisely why not. Never raises on bad bytes."""
    if not data:
        return Decoded(DecodeStatus.EMPTY, "zero bytes")
    with warnings.catch_warnings():
        # Pillow's own bomb check warns below 2x its limit; treat the warning as the error it is.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # Open reads only the header: the size check happens before any pixel is allocated.
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    return Decoded(
                        DecodeStatus.TOO_LARGE,
                        f"{width}x{height} exceeds {max_pixels} pixels",
                        width=width,
                        height=height,
                    )
                probe.verify()
            # verify() leaves the file unusable and misses truncated JPEG scans: reopen and load.
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
                img.load()
                rgb = ImageOps.exif_transpose(img).convert("RGB")
        except UnidentifiedImageError:
            claimed = next((f for sig, f in _SIGNATURES.items() if data.startswith(sig)), None)
            if claimed:
                return Decoded(DecodeStatus.CORRUPT, f"{claimed} signature but unparsable header")
            return Decoded(DecodeStatus.NOT_IMAGE, f"not one of {', '.join(ALLOWED_FORMATS)}")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return Decoded(DecodeStatus.TOO_LARGE, f"{type(exc).__name__}: {exc}"[:200])
        # Pillow's decoders signal damage with any of these; all mean "this blob is broken".
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
            return _failure(exc)
    return Decoded(DecodeStatus.OK, None, rgb, rgb.width, rgb.height)


def to_gray(image: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)


def to_bgr(image: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurred or out-of-focus images."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclass(frozen=True)
class Exposure:
    brightness: float
    highlight_clip: float
    shadow_clip: float


def exposure(gray: np.ndarray) -> Exposure:
    """Mean brightness (0-255) and the shares of clipped highlights and crushed shadows."""
    n = gray.size
    return Exposure(
        brightness=float(gray.mean()),
        highlight_clip=float(np.count_nonzero(gray >= HIGHLIGHT_LEVEL)) / n,
        shadow_clip=float(np.count_nonzero(gray <= SHADOW_LEVEL)) / n,
    )


def phash(image: Image.Image, inset: float = 0.0) -> str:
    """64-bit DCT perceptual hash as 16 hex characters, of the image with `inset` of its width
    and height cut from every side (pHash is not crop-invariant; see dedup.HASH_COLUMNS)."""
    if inset:
        w, h = image.size
        dx, dy = round(w * inset), round(h * inset)
        image = image.crop((dx, dy, w - dx, h - dy))
    return str(imagehash.phash(image, hash_size=8))
