"""Synthetic TD1 identity cards (ICAO 9303 ID-1 size, 856x540 px) with a valid MRZ on the back.

All personal data on the cards is synthetic; the country is ICAO's fictional "UTO" (Utopia).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
from mrz.generator.td1 import TD1CodeGenerator
from PIL import Image, ImageDraw, ImageFont

from identity_data.sample.canvas import (
    Box,
    background,
    camera,
    degrade,
    encode_jpeg,
    place_quad,
    portrait,
    random_colour,
)

CARD_SIZE = (856, 540)
# The capture is a phone photo of the card lying on a surface, not a flatbed scan: cards share a
# template, so without the scene around them their pHashes would nearly coincide.
PHOTO_SIZE = (800, 600)
COUNTRY = "UTO"


@dataclass(frozen=True)
class CardHolder:
    surname: str
    given_names: str
    document_number: str
    birth_date: date
    sex: str
    expiry_date: date


def mrz_lines(holder: CardHolder) -> str:
    """The three 30-character TD1 MRZ lines, newline-separated, with valid check digits."""
    code = TD1CodeGenerator(
        "ID",
        COUNTRY,
        holder.document_number,
        holder.birth_date.strftime("%y%m%d"),
        holder.sex,
        holder.expiry_date.strftime("%y%m%d"),
        COUNTRY,
        holder.surname,
        holder.given_names,
    )
    return str(code)


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _card_base(rng: np.random.Generator) -> Image.Image:
    """Pastel gradient with guilloche curves; hue and curves vary per card."""
    w, h = CARD_SIZE
    c0 = np.asarray(random_colour(rng, 100, 250), dtype=np.float32)
    c1 = np.asarray(random_colour(rng, 100, 250), dtype=np.float32)
    # A smooth gradient: computed at 1/8 scale and upscaled.
    t = np.linspace(0, 1, w // 8, dtype=np.float32)[None, :, None]
    tv = np.linspace(0, 1, h // 8, dtype=np.float32)[:, None, None]
    mix = rng.uniform(0.2, 0.8)
    arr = c0 + (mix * t + (1 - mix) * tv) * (c1 - c0)
    card = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize(
        CARD_SIZE, Image.Resampling.BILINEAR
    )
    draw = ImageDraw.Draw(card)
    xs = np.arange(0, w, 4, dtype=np.float32)
    line = random_colour(rng, 120, 220)
    for _ in range(int(rng.integers(12, 30))):
        amp, freq, phase = rng.uniform(10, 80), rng.uniform(0.004, 0.03), rng.uniform(0, 6.3)
        base = rng.uniform(0, h)
        ys = base + amp * np.sin(freq * xs + phase)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=line, width=1)
    return card


def _header(draw: ImageDraw.ImageDraw, rng: np.random.Generator, title: str) -> None:
    draw.rectangle((0, 0, CARD_SIZE[0], 78), fill=random_colour(rng, 20, 140))
    draw.text((30, 10), "REPUBLIC OF UTOPIA", font=font(30), fill=(255, 255, 255))
    draw.text((30, 46), title, font=font(22), fill=(235, 235, 235))


def front_card(
    rng: np.random.Generator, holder: CardHolder, face_id: int
) -> tuple[Image.Image, Box]:
    """The TD1 front (CARD_SIZE) with the holder's portrait; returns (card, portrait face box)."""
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    _header(draw, rng, "IDENTITY CARD / CARTE D'IDENTITE")
    photo = Image.new("RGB", (250, 320), random_colour(rng, 190, 250))
    face = portrait(rng, face_id, photo, 180, (125, 140), lighting=False)
    px, py = 36, 110
    card.paste(photo, (px, py))
    face_box = (px + face[0], py + face[1], px + face[2], py + face[3])
    fields = (
        ("Surname", holder.surname.upper()),
        ("Given names", holder.given_names.upper()),
        ("Document no.", holder.document_number),
        ("Nationality", COUNTRY),
        ("Date of birth", holder.birth_date.strftime("%d %m %Y")),
        ("Sex", holder.sex),
        ("Date of expiry", holder.expiry_date.strftime("%d %m %Y")),
    )
    ink = random_colour(rng, 0, 60)
    y = 100
    for label, value in fields:
        draw.text((320, y), label, font=font(15), fill=(70, 70, 90))
        draw.text((320, y + 17), value, font=font(25), fill=ink)
        y += 58
    signature = [(620 + 12 * i, 470 + float(rng.uniform(-14, 14))) for i in range(16)]
    draw.line(signature, fill=(20, 20, 80), width=2)
    return card, face_box


def back_card(rng: np.random.Generator, holder: CardHolder) -> Image.Image:
    """The TD1 back (CARD_SIZE) with a random barcode and the MRZ."""
    card = _card_base(rng)
    draw = ImageDraw.Draw(card)
    _header(draw, rng, "RESIDENCE / DOMICILE")
    draw.text((36, 96), "Place of birth: UTOPIA CITY", font=font(20), fill=(30, 30, 30))
    draw.text(
        (36, 124),
        f"Issued: {holder.expiry_date.replace(year=holder.expiry_date.year - 10):%d %m %Y}",
        font=font(20),
        fill=(30, 30, 30),
    )
    # A 2D barcode stand-in: random cells, unique per card.
    cells = rng.integers(0, 2, size=(14, 44)).astype(np.uint8) * 255
    code = Image.fromarray(255 - cells).resize((440, 140), Image.Resampling.NEAREST)
    card.paste(code, (36 + int(rng.integers(0, 330)), 170 + int(rng.integers(0, 40))))
    mrz_top = 380
    draw.rectangle((0, mrz_top, CARD_SIZE[0], CARD_SIZE[1]), fill=(250, 250, 245))
    # The MRZ font is monospaced: draw one glyph per fixed-pitch cell.
    pitch, size = 26, 30
    for row, text in enumerate(mrz_lines(holder).splitlines()):
        for col, ch in enumerate(text):
            draw.text(
                (38 + col * pitch, mrz_top + 14 + row * 44), ch, font=font(size), fill=(0, 0, 0)
            )
    return card


def id_front(rng: np.random.Generator, holder: CardHolder, face_id: int, quality: str) -> bytes:
    """A phone photo (PHOTO_SIZE JPEG) of the card front."""
    card, face_box = front_card(rng, holder, face_id)
    return _photograph(rng, card, quality, face_box)


def id_back(rng: np.random.Generator, holder: CardHolder, quality: str) -> bytes:
    """A phone photo (PHOTO_SIZE JPEG) of the card back."""
    return _photograph(rng, back_card(rng, holder), quality, (36, 96, 500, 360))


def _photograph(rng: np.random.Generator, card: Image.Image, quality: str, focus: Box) -> bytes:
    """Place the card in a scene; occlusion hides part of the card, other defects the photo."""
    if quality == "occluded":
        card = degrade(rng, card, quality, focus)
    scene = background(rng, *PHOTO_SIZE)
    photo = place_quad(rng, scene, card, scale=rng.uniform(0.6, 0.92), jitter=0.05)
    if quality != "occluded":
        photo = degrade(rng, photo, quality, focus)
    return encode_jpeg(camera(rng, photo), int(rng.integers(75, 96)))
