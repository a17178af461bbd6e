from datetime import UTC, datetime

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.labels.captures import UNKNOWN_CAPTURE, split_by_capture, unknown_by_export


def _annotations(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "export_id": [e for e, _ in rows],
            "capture_id": [c for _, c in rows],
            "created_at": [datetime(2026, 11, 28, tzinfo=UTC)] * len(rows),
        }
    )


def test_unknown_captures_are_split_off_with_a_reason_and_counted_per_export():
    annotations = _annotations(
        [("b@1", "cap-1"), ("a@1", "cap-9"), ("b@1", "cap-9"), ("b@1", "cap-2"), ("b@1", "cap-8")]
    )
    matched, unmatched = split_by_capture(annotations, pl.Series(["cap-1", "cap-2", "cap-1"]))
    assert_frame_equal(matched, annotations[[0, 3]])
    assert_frame_equal(
        unmatched, annotations[[1, 2, 4]].with_columns(reason=pl.lit(UNKNOWN_CAPTURE))
    )
    assert matched.height + unmatched.height == annotations.height
    assert unknown_by_export(unmatched) == {"a@1": 1, "b@1": 2}


def test_nothing_known_leaves_everything_unmatched():
    annotations = _annotations([("a@1", "cap-1")])
    matched, unmatched = split_by_capture(annotations, pl.Series([], dtype=pl.String))
    assert matched.height == 0 and unmatched["reason"].to_list() == [UNKNOWN_CAPTURE]
    assert unknown_by_export(matched.with_columns(reason=pl.lit("x"))) == {}
