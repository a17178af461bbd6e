"""Tombstones: keyed digests that drop an erased subject's or capture's records, counted."""

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.privacy import pseudonymise
from identity_data.stores.blobs import LocalBlobStore
from identity_data.tombstones import add_tombstones, digest, drop_tombstoned, load_tombstones

KEY = b"k" * 32


def records() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "capture_id": ["c1", "c2", "c3", "c4"],
            "subject_ref": ["alice", "bob", "alice", None],
        }
    )


def test_records_of_a_tombstoned_subject_or_capture_are_dropped_and_counted(tmp_path):
    lake = LocalBlobStore(tmp_path)
    alice = pseudonymise(KEY, pl.Series(["alice"]))[0]
    assert add_tombstones(lake, {digest(KEY, "subject_pseudonym", alice)}) == 1
    assert add_tombstones(lake, {digest(KEY, "capture_id", "c2")}) == 1
    assert add_tombstones(lake, {digest(KEY, "capture_id", "c2")}) == 0
    kept, dropped = drop_tombstoned(records(), load_tombstones(lake), KEY)
    assert dropped == 3
    assert_frame_equal(kept, records().filter(pl.col("capture_id") == "c4"))


def test_the_tombstone_list_names_nobody(tmp_path):
    lake = LocalBlobStore(tmp_path)
    alice = pseudonymise(KEY, pl.Series(["alice"]))[0]
    add_tombstones(lake, {digest(KEY, "subject_pseudonym", alice)})
    names = "".join(str(p) for p in tmp_path.rglob("*"))
    assert alice not in names and "alice" not in names


def test_no_tombstones_keeps_every_record():
    kept, dropped = drop_tombstoned(records(), frozenset(), KEY)
    assert dropped == 0
    assert_frame_equal(kept, records())
