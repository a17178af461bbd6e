from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from identity_data import capture_db
from identity_data.sample import write_capture_db
from identity_data.sample.plan import make_plan


def test_writes_tz_aware_rows_and_refuses_a_second_load(tmp_path: Path) -> None:
    plan = make_plan(3, 1, 25, date(2026, 11, 29), campaigns=0)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    counts = write_capture_db(url, plan.subjects, plan.sessions, plan.production, batch_rows=7)
    assert counts == {
        "subjects": len(plan.subjects),
        "sessions": len(plan.sessions),
        "captures": len(plan.production),
    }
    engine = sa.create_engine(url)
    with engine.connect() as con:
        first = con.execute(
            sa.select(capture_db.captures).order_by(capture_db.captures.c.captured_at)
        ).first()
    engine.dispose()
    assert first is not None and first.captured_at.date() == date(2026, 11, 29)
    with pytest.raises(ValueError, match="already holds rows"):
        write_capture_db(url, plan.subjects, plan.sessions, plan.production)


def test_images_sample_reuses_blobs_of_the_same_type() -> None:
    plan = make_plan(3, 2, 500, date(2026, 11, 29), campaigns=0, images_sample=60)
    drawn = [c for c in plan.production if c.job is not None]
    reused = [c for c in plan.production if c.job is None]
    assert len(reused) == 1000 - 60
    by_file = {c.file: c for c in drawn}
    for row in reused:
        donor = by_file[row.file]
        assert donor.capture_type == row.capture_type and donor.truth == row.truth
