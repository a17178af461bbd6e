"""training_examples counts each left-out capture once, under the first reason that applies."""

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.warehouse.transforms import training_examples

IDS = ["usable", "no_row", "corrupt", "unlabelled", "copy"]


def manifest() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "capture_id": IDS,
            "source": ["production"] * 5,
            "source_partition": ["2026-11-28"] * 5,
            "capture_date": [date(2026, 11, 28)] * 5,
            "subject_pseudonym": [f"{n:02x}" * 32 for n in range(5)],
            "capture_type": ["selfie"] * 5,
            "blob_uri": [f"raw/captures/{i}.jpg" for i in IDS],
            "captured_at": [datetime(2026, 11, 28, tzinfo=UTC)] * 5,
        }
    )


def annotations() -> pl.DataFrame:
    # "no_row" has no annotation at all; "corrupt" did not decode (and is unlabelled too).
    ids = ["usable", "corrupt", "unlabelled", "copy"]
    return pl.DataFrame(
        {
            "capture_id": ids,
            "face_count": [1, 0, 1, 1],
            "face_score": [0.99, None, 0.98, 0.97],
            "face_area_share": [0.2, None, 0.2, 0.2],
            "sharpness": [10.0, None, 11.0, 12.0],
            "brightness": [120.0, None, 121.0, 122.0],
            "decode_status": ["ok", "corrupt", "ok", "ok"],
        }
    )


def labels() -> pl.DataFrame:
    ids = ["usable", "no_row", "copy"]
    return pl.DataFrame(
        {
            "capture_id": ids,
            "task": ["attack_type"] * 3,
            "label": ["genuine", "print", "genuine"],
            "posterior": [0.9, 0.8, 0.95],
        }
    )


def duplicates() -> pl.DataFrame:
    # "copy" is a near-copy of "usable", which represents their cluster.
    return pl.DataFrame(
        {
            "capture_id": ["usable", "copy", "corrupt"],
            "cluster_id": ["k1", "k1", "k2"],
            "is_representative": [True, False, True],
        }
    )


def test_each_left_out_capture_is_counted_once_under_its_first_reason():
    rows, counts = training_examples(manifest(), annotations(), labels(), duplicates())
    assert counts == {
        "captures_in": 5,
        "excluded_not_annotated": 2,
        "excluded_unlabelled": 1,
        "excluded_near_duplicate_copy": 1,
    }
    assert counts["captures_in"] == rows.height + sum(
        v for k, v in counts.items() if k.startswith("excluded_")
    )
    assert_frame_equal(
        rows.select("capture_id", "attack_type", "near_duplicate_cluster"),
        pl.DataFrame(
            {"capture_id": ["usable"], "attack_type": ["genuine"], "near_duplicate_cluster": ["k1"]}
        ),
    )


def test_a_singleton_cluster_is_no_near_duplicate():
    rows, counts = training_examples(
        manifest().filter(pl.col("capture_id") == "usable"),
        annotations(),
        labels(),
        duplicates().filter(pl.col("capture_id") == "usable"),
    )
    assert counts["captures_in"] == 1 and rows.height == 1
    assert rows["near_duplicate_cluster"].to_list() == [None]
