import resource

import numpy as np
import pytest

from identity_data import imaging
from identity_data.imaging import DecodeStatus
from identity_data.sample import images


@pytest.fixture(scope="module")
def astronaut_jpeg() -> bytes:
    return images.jpeg(images.astronaut())


def test_valid_jpeg_and_png_decode(astronaut_jpeg: bytes) -> None:
    for data in (astronaut_jpeg, images.png(images.astronaut())):
        out = imaging.decode(data)
        assert out.status is DecodeStatus.OK and out.reason is None
        assert (out.width, out.height) == (512, 512) and out.image is not None


@pytest.mark.parametrize(
    ("make", "status", "reason_part"),
    [
        (lambda j: b"", DecodeStatus.EMPTY, "zero bytes"),
        (lambda j: j[: len(j) * 2 // 5], DecodeStatus.TRUNCATED, "truncated"),
        (lambda j: j[:-300], DecodeStatus.TRUNCATED, "truncated"),
        (lambda j: b"name,date\nalice,2026-01-01\n", DecodeStatus.NOT_IMAGE, "JPEG"),
        (
            lambda j: np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
            DecodeStatus.NOT_IMAGE,
            "PNG",
        ),
        # A JPEG header followed by noise: identified as JPEG, undecodable.
        (lambda j: j[:600] + bytes(range(256)) * 8, DecodeStatus.CORRUPT, "JPEG signature"),
        (lambda j: images.bad_crc_png(images.astronaut()), DecodeStatus.CORRUPT, "checksum"),
        (lambda j: images.png(images.astronaut())[:-4000], DecodeStatus.TRUNCATED, "Truncated"),
    ],
    ids=["zero", "trunc40", "trunc_tail", "text", "garbage", "jpeg_noise", "png_crc", "png_trunc"],
)
def test_broken_bytes_get_a_status_and_reason(astronaut_jpeg, make, status, reason_part) -> None:
    out = imaging.decode(make(astronaut_jpeg))
    assert out.status is status, out.reason
    assert reason_part in (out.reason or "")
    assert out.image is None


@pytest.mark.parametrize("side", [20_000, 8_000])
def test_decompression_bomb_is_rejected_without_allocating(side: int) -> None:
    bomb = images.png_bomb(side)
    assert len(bomb) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = imaging.decode(bomb)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.status is DecodeStatus.TOO_LARGE
    assert str(side * side) in out.reason or f"{side}x{side}" in out.reason
    # 20000^2 RGB would be 1.2 GB; the header check stops long before.
    assert grown_mib < 50


def test_metrics_on_known_images() -> None:
    flat = np.full((100, 100), 128, np.uint8)
    assert imaging.sharpness(flat) == 0.0
    checker = (np.indices((100, 100)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert imaging.sharpness(checker) > 1e4
    half = np.zeros((10, 10), np.uint8)
    half[:, 5:] = 255
    exp = imaging.exposure(half)
    assert (exp.brightness, exp.highlight_clip, exp.shadow_clip) == (127.5, 0.5, 0.5)


def test_phash_is_16_hex_and_stable(astronaut_jpeg: bytes) -> None:
    img = imaging.decode(astronaut_jpeg).image
    h = imaging.phash(img)
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == imaging.phash(imaging.decode(astronaut_jpeg).image)
