"""Redaction rules on plain frames: erased rows go, cluster names never point at them."""

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.erasure.erase import Erased, cluster_remap, quarantined_records, redact
from identity_data.privacy import pseudonymise

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


def test_quarantined_records_are_tied_to_subjects_by_the_re_extraction_rule():
    key = b"k" * 32
    (pseudonym,) = pseudonymise(key, pl.Series(["alice@example.org"]))
    records = pl.DataFrame(
        {
            "record": ["captures:a", "captures:b", "captures:c", "captures:d"],
            "capture_id": ["a", "b", "c", "d"],
            "subject_ref": ["alice@example.org", "bob@example.org", None, "carol@example.org"],
        }
    )
    erased = Erased(frozenset([pseudonym]), frozenset({"d"}), frozenset(), frozenset())
    quarantined = {"captures:a", "captures:b", "captures:c", "captures:d"}
    assert quarantined_records(records, quarantined, key, erased) == {"captures:a", "captures:d"}
    # Only quarantined records count: a's manifest row is found through its pseudonym instead.
    assert quarantined_records(records, {"captures:b"}, key, erased) == set()
    kept, dropped = redact(
        pl.DataFrame({"record": ["captures:a", "captures:b"]}),
        Erased(frozenset(), frozenset(), frozenset(), frozenset(), frozenset({"captures:a"})),
        {},
    )
    assert kept["record"].to_list() == ["captures:b"] and dropped == 1
