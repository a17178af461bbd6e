"""Snapshots made and read on a real instance: frozen under new data, stable splits, create-only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data import snapshots
from identity_data.defs.snapshots import store
from identity_data.defs.snapshots.assets import INPUTS
from identity_data.defs.snapshots.views import view_name
from identity_data.stores.blobs import LocalBlobStore
from identity_data_tests.defs.snapshots.world import (
    DAYS,
    FIRST_SNAPSHOT,
    World,
)

# The first test also builds the session's shared worlds (defs/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture
def world(snapshot_world: World) -> World:
    return snapshot_world


def warehouse_rows(home: Path, snapshot_id: str) -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT * FROM snapshot_examples WHERE snapshot_id = ? ORDER BY capture_id",
            [snapshot_id],
        ).pl()


def view_rows(home: Path, snapshot_id: str) -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT * FROM {view_name(snapshot_id)} ORDER BY capture_id").pl()


def test_a_snapshot_is_verified_complete_and_queryable(world: World, tmp_path: Path) -> None:
    mine = world.copy(tmp_path)
    with mine.open():
        snap = snapshots.open(FIRST_SNAPSHOT)
        assert snap.version == 1 and snap.frame.height > 0
        assert snap.manifest_sha256 == store.manifest_hash(snap.frame)
        pairs = list(snap)
        assert len(pairs) == snap.frame.height
        for (image, labels), sha in zip(pairs, snap.frame["blob_sha256"], strict=True):
            assert hashlib.sha256(image).hexdigest() == sha
            assert labels["attack_type"] in {"genuine", "print", "replay", "mask"}
        info = snap.info
        assert set(info["input_data_versions"]) == {k.to_user_string() for k in INPUTS}
        versions = info["input_data_versions"]["warehouse/prod_examples"]
        assert set(versions) == set(DAYS[:1]) and all(versions.values())
        assert sum(info["counts_by_split"].values()) == snap.frame.height
        table = warehouse_rows(mine.home, FIRST_SNAPSHOT)
        assert table.height == snap.frame.height
        assert set(table["capture_id"]) == set(snap.frame["capture_id"])
        assert_frame_equal(view_rows(mine.home, FIRST_SNAPSHOT), table)


def test_a_snapshot_is_written_once(world: World, tmp_path: Path) -> None:
    mine = world.copy(tmp_path)
    with mine.open():
        before = snapshots.open(FIRST_SNAPSHOT)
        assert not snapshots.create(FIRST_SNAPSHOT)
        assert_frame_equal(snapshots.open(FIRST_SNAPSHOT).frame, before.frame)
        # `S1` would fold onto s1's view name: refused before anything is written.
        assert not snapshots.create(FIRST_SNAPSHOT.upper())
        assert store.snapshot_ids(LocalBlobStore(mine.home / "lake")) == [FIRST_SNAPSHOT]


def test_a_tampered_manifest_or_blob_fails_verification(world: World, tmp_path: Path) -> None:
    mine = world.copy(tmp_path)
    with mine.open():
        snap = snapshots.open(FIRST_SNAPSHOT)
        blob = mine.home / "lake" / snap.frame["blob_key"][0]
        blob.write_bytes(blob.read_bytes() + b"x")
        with pytest.raises(store.SnapshotError, match="does not match its sha256"):
            list(snap)
        path = mine.home / "lake" / store.key(FIRST_SNAPSHOT, 1, store.MANIFEST)
        snap.frame.slice(1).write_parquet(path)
        with pytest.raises(store.SnapshotError, match="does not match its recorded hash"):
            snapshots.open(FIRST_SNAPSHOT)


def test_filters_are_applied_and_recorded(world: World, tmp_path: Path) -> None:
    mine = world.copy(tmp_path)
    with mine.open():
        assert snapshots.create("strict", 0.95, ("campaign",), ("id_back",))
        snap, everything = snapshots.open("strict"), snapshots.open(FIRST_SNAPSHOT)
        frame = snap.frame
        assert 0 < frame.height < everything.frame.height
        assert (frame["attack_type_posterior"] >= 0.95).all()
        assert "campaign" not in set(frame["source"]) and "id_back" not in set(
            frame["capture_type"]
        )
        assert snap.info["filters"]["min_posterior"] == 0.95
        assert sum(snap.info["excluded"].values()) == everything.frame.height - frame.height


def test_new_data_leaves_the_snapshot_identical_and_every_subject_in_its_split(
    world: World, grown_world: World, tmp_path: Path
) -> None:
    """`grown_world` is `world` after every day was materialized (new captures and subjects)."""
    with world.copy(tmp_path / "before").open():
        first = snapshots.open(FIRST_SNAPSHOT)
        rows = warehouse_rows(world.home, FIRST_SNAPSHOT)
    mine = grown_world.copy(tmp_path)
    with mine.open():
        assert snapshots.create("s2")
        again, later = snapshots.open(FIRST_SNAPSHOT), snapshots.open("s2")
    assert again.manifest_sha256 == first.manifest_sha256
    assert_frame_equal(again.frame, first.frame)
    assert_frame_equal(warehouse_rows(mine.home, FIRST_SNAPSHOT), rows)
    assert_frame_equal(view_rows(mine.home, FIRST_SNAPSHOT), rows)

    before = first.frame.select("subject_pseudonym", "split").unique()
    after = later.frame.select("subject_pseudonym", "split").unique()
    new_subjects = after.join(before, on="subject_pseudonym", how="anti").height
    new_captures = later.frame.height - first.frame.height
    kept = before.join(after, on="subject_pseudonym")
    moved = kept.filter(pl.col("split") != pl.col("split_right"))
    print(
        f"\nsplit stability: {before.height} earlier subjects, {new_subjects} new subjects "
        f"(+{new_subjects / before.height:.0%}), {new_captures} new examples "
        f"(+{new_captures / first.frame.height:.0%}); {kept.height} earlier subjects still in "
        f"the snapshot, {moved.height} moved split"
    )
    assert new_subjects / before.height >= 0.2 and new_captures / first.frame.height >= 0.2
    assert moved.is_empty()
    assert kept.height > 0
