"""Snapshot manifests, hashes and class balance from plain frames."""

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.defs.snapshots import store
from identity_data.defs.snapshots.build import SnapshotFilters, balance_table, select_examples
from identity_data.defs.warehouse.transforms import subject_split
from identity_data.stores.blobs import LocalBlobStore


def examples(n: int = 6) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"c{i}" for i in range(n)]
    frame = pl.DataFrame(
        {
            "capture_id": ids,
            "source": ["production", "campaign"] * (n // 2),
            "source_partition": ["2026-11-28"] * n,
            "capture_date": [date(2026, 11, 28)] * n,
            "subject_pseudonym": [f"{i:064x}" for i in range(n)],
            "capture_type": ["selfie", "id_back", "selfie"] * (n // 3),
            "blob_uri": [f"file:///lake/raw/captures/ab/{i:064x}.jpg" for i in range(n)],
            "split": ["train"] * n,
            "attack_type": ["genuine", "print"] * (n // 2),
            "attack_type_posterior": [0.5 + i / 20 for i in range(n)],
            "document_type": [None] * n,
            "document_type_posterior": [None] * n,
            "capture_quality": ["ok"] * n,
            "capture_quality_posterior": [0.9] * n,
            "face_count": [1] * n,
            "face_score": [0.9] * n,
            "face_area_share": [0.2] * n,
            "sharpness": [10.0] * n,
            "brightness": [100.0] * n,
            "near_duplicate_cluster": [None] * n,
        },
        schema_overrides={"document_type": pl.String, "document_type_posterior": pl.Float64},
    )
    captures = frame.select("capture_id", sha256=pl.col("subject_pseudonym"))
    return frame, captures


def test_filters_leave_out_and_count_each_example_once():
    frame, captures = examples()
    filters = SnapshotFilters(0.6, ("campaign",), ("id_back",))
    manifest, excluded = select_examples(frame, captures, filters, "s")
    assert manifest["capture_id"].to_list() == ["c2"]
    assert excluded == {
        "excluded_source": 3,
        "excluded_capture_type": 1,
        "below_min_posterior": 1,
        "blob_digest_missing": 0,
    }
    assert manifest["blob_key"][0] == f"raw/captures/ab/{2:064x}.jpg"


def test_balance_lists_a_class_missing_from_a_split_with_share_zero():
    manifest = pl.DataFrame(
        {"split": ["train", "train", "test"], "attack_type": ["genuine", "print", "genuine"]}
    )
    table = balance_table(manifest)
    row = table.filter(pl.col("split") == "test", pl.col("attack_type") == "print")
    assert row["count"].item() == 0 and row["gap_points"].item() == pytest.approx(100 / 3)


def test_the_hash_ignores_row_order_and_a_version_is_written_once(tmp_path):
    frame, captures = examples()
    manifest, _ = select_examples(frame, captures, SnapshotFilters(), "s")
    assert store.manifest_hash(manifest) == store.manifest_hash(manifest.reverse())
    lake = LocalBlobStore(tmp_path)
    digest = store.write_version(lake, "s", 1, manifest, {})
    with pytest.raises(store.SnapshotError, match="exists already"):
        store.write_version(lake, "s", 1, manifest.head(1), {})
    assert store.read_info(lake, "s", 1)["manifest_sha256"] == digest
    assert_frame_equal(store.read_manifest(lake, "s", 1), manifest)
    with pytest.raises(store.SnapshotError, match="snapshot id"):
        store.check_id("../escape")


def test_splits_depend_on_the_subject_alone():
    subjects = pl.Series([f"{i:064x}" for i in range(0, 10_000, 7)])
    before = pl.select(subject_split(pl.lit(subjects))).to_series()
    grown = pl.concat([subjects, pl.Series([f"{i:064x}" for i in range(1, 2_000, 7)])])
    after = pl.select(subject_split(pl.lit(grown))).to_series().head(subjects.len())
    assert (before == after).all()
