from __future__ import annotations

import io
from datetime import date

import numpy as np
from mrz.checker.td1 import TD1CodeChecker
from PIL import Image

from identity_data.sample import documents
from identity_data.sample.plan import make_plan


def test_every_planned_holder_has_a_valid_td1_mrz() -> None:
    plan = make_plan(5, 2, 40, date(2026, 11, 29))
    for subject in plan.subjects:
        lines = documents.mrz_lines(subject.holder).splitlines()
        assert [len(line) for line in lines] == [30, 30, 30]
        assert bool(TD1CodeChecker("\n".join(lines)))


def test_checker_rejects_a_corrupted_mrz() -> None:
    holder = documents.CardHolder(
        "Moreau", "Ines", "AB1234567", date(1988, 2, 29), "F", date(2030, 1, 31)
    )
    lines = documents.mrz_lines(holder).splitlines()
    assert bool(TD1CodeChecker("\n".join(lines)))
    lines[1] = lines[1].replace("880229", "880228")
    assert not bool(TD1CodeChecker("\n".join(lines)))


def test_cards_are_td1_sized_and_captured_as_photos() -> None:
    holder = documents.CardHolder(
        "Moreau", "Ines", "AB1234567", date(1988, 2, 29), "F", date(2030, 1, 31)
    )
    card, (x0, y0, x1, y1) = documents.front_card(np.random.default_rng(1), holder, 101)
    assert card.size == documents.back_card(np.random.default_rng(2), holder).size == (856, 540)
    assert 0 <= x0 < x1 <= 856 and 0 <= y0 < y1 <= 540
    for data in (
        documents.id_front(np.random.default_rng(1), holder, 101, "ok"),
        documents.id_back(np.random.default_rng(2), holder, "dark"),
    ):
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG" and img.size == documents.PHOTO_SIZE
