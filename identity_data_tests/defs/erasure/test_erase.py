"""Redaction rules on plain frames: erased rows go, cluster names never point at them."""

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.erasure.erase import Erased, cluster_remap, redact

ERASED = Erased(frozenset({"p1"}), frozenset({"a", "b"}), frozenset({"sha-a"}), frozenset())


def test_rows_of_the_subject_its_captures_or_blobs_are_dropped():
    frame = pl.DataFrame(
        {
            "capture_id": ["a", "c", "d", "e"],
            "subject_pseudonym": ["p1", "p2", "p1", "p3"],
            "sha256": ["sha-a", "sha-c", "sha-d", "sha-a"],
        }
    )
    kept, dropped = redact(frame, ERASED, {})
    assert dropped == 3
    assert kept["capture_id"].to_list() == ["c"]


def test_a_cluster_named_after_an_erased_capture_is_renamed_after_its_next_member():
    clusters = pl.DataFrame(
        {
            "capture_id": ["a", "c", "d", "x"],
            "cluster_id": ["a", "a", "a", "x"],
            "is_representative": [True, False, False, True],
            "nearest_distance": [2, 2, 3, None],
        }
    )
    remap = cluster_remap(clusters, ERASED)
    assert remap == {"a": "c"}
    kept, dropped = redact(clusters, ERASED, remap)
    assert dropped == 1
    assert_frame_equal(
        kept,
        pl.DataFrame(
            {
                "capture_id": ["c", "d", "x"],
                "cluster_id": ["c", "c", "x"],
                "is_representative": [True, False, True],
                "nearest_distance": [2, 3, None],
            }
        ),
    )
