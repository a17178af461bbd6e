import numpy as np
import polars as pl
import pytest

from identity_data import imaging
from identity_data.defs.annotations import dedup
from identity_data.defs.annotations.schemas import NearDuplicates
from identity_data.sample import images

TRANSFORMS = ("recompress", "resize", "recrop")


def _hashes(capture_id: str, data: bytes) -> dict[str, str]:
    image = imaging.decode(data).image
    return {
        "capture_id": capture_id,
        "phash": imaging.phash(image),
        "phash_crop3": imaging.phash(image, 0.03),
        "phash_crop6": imaging.phash(image, 0.06),
    }


@pytest.fixture(scope="module")
def synthetic_lake() -> tuple[pl.DataFrame, pl.DataFrame]:
    """150 distinct scenes plus one near-duplicate each (50 per transform), and the truth."""
    rng = np.random.default_rng(11)
    scenes = images.scenes(150, seed=5)
    rows, truth = [], []
    for i, scene in enumerate(scenes):
        original = f"cap-{i:03d}"
        rows.append(_hashes(original, images.jpeg(scene)))
        transform = TRANSFORMS[i % 3]
        copy = f"cap-{i:03d}-{transform}"
        rows.append(_hashes(copy, images.near_duplicate(scene, transform, rng)))
        truth.append((copy, original, transform))
    lake = pl.DataFrame(rows)
    return lake, pl.DataFrame(
        truth, schema=["capture_id", "duplicate_of", "transform"], orient="row"
    )


def _brute_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs oracle: XOR + popcount of every pair."""
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= threshold, k=1))
    return i, j


@pytest.mark.parametrize("threshold", [0, 3, 4, 7, 8, 9, 12])
def test_index_search_equals_brute_force(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    base = rng.integers(0, np.iinfo(np.uint64).max, size=3000, dtype=np.uint64, endpoint=True)
    flips = [
        sum(1 << int(b) for b in rng.choice(64, k, replace=False)) for k in rng.integers(0, 14, 600)
    ]
    hashes = np.unique(np.concatenate([base, base[:600] ^ np.array(flips, dtype=np.uint64)]))
    i, j, d = dedup.hash_pairs(hashes, threshold)
    bi, bj = _brute_pairs(hashes, threshold)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(
        zip(bi.tolist(), bj.tolist(), strict=True)
    )
    assert (d <= threshold).all() and (i < j).all()
    assert len(i) >= (threshold > 0) * 10


def test_clusters_recall_and_precision_on_synthetic_near_duplicates(synthetic_lake) -> None:
    """Re-crops of up to 8% per side need threshold 8 (the default, 5, is tuned on the sample)."""
    lake, truth = synthetic_lake
    pairs = dedup.near_duplicate_pairs(lake, 8)
    precision, recall = dedup.evaluate(pairs, truth)
    assert precision >= 0.95
    # Recompress and resize are always found directly, not only through closure.
    found = set(zip(pairs["capture_id_a"], pairs["capture_id_b"], strict=True))
    for transform in ("recompress", "resize"):
        sub = truth.filter(pl.col("transform") == transform)
        assert all(
            (o, c) in found for c, o in zip(sub["capture_id"], sub["duplicate_of"], strict=True)
        )
    assert recall >= 0.95


def test_near_duplicate_table_contract(synthetic_lake) -> None:
    lake, truth = synthetic_lake
    undecodable = pl.DataFrame(
        {c: ["cap-broken" if c == "capture_id" else None] for c in lake.columns}, schema=lake.schema
    )
    exact = lake.head(1).with_columns(capture_id=pl.lit("cap-000-copy"))
    table = dedup.near_duplicates(pl.concat([lake, undecodable, exact]))
    NearDuplicates.validate(table)
    assert table.height == lake.height + 2
    by_id = {r["capture_id"]: r for r in table.iter_rows(named=True)}
    assert by_id["cap-broken"]["cluster_id"] == "cap-broken"
    assert by_id["cap-broken"]["nearest_distance"] is None
    assert by_id["cap-000-copy"]["cluster_id"] == "cap-000"
    assert by_id["cap-000-copy"]["nearest_distance"] == 0
    assert not by_id["cap-000-copy"]["is_representative"] and by_id["cap-000"]["is_representative"]
    recompressed = truth.filter(pl.col("transform") == "recompress")["capture_id"][0]
    assert by_id[recompressed]["cluster_id"] == recompressed[:7]
    # Deterministic: input order does not matter.
    shuffled = dedup.near_duplicates(pl.concat([exact, undecodable, lake.reverse()]))
    assert shuffled.equals(table, null_equal=True)
    # Whole-image hashes alone are accepted too (fewer recrops found).
    NearDuplicates.validate(dedup.near_duplicates(lake.select("capture_id", "phash")))


def test_evaluate_closes_transitively() -> None:
    truth = pl.DataFrame({"capture_id": ["b", "c"], "duplicate_of": ["a", "a"]})
    found = pl.DataFrame({"capture_id_a": ["a", "b"], "capture_id_b": ["b", "c"]})
    assert dedup.evaluate(found, truth) == (1.0, 1.0)
    wrong = pl.DataFrame({"capture_id_a": ["a", "x"], "capture_id_b": ["b", "y"]})
    assert dedup.evaluate(wrong, truth) == (0.5, 1 / 3)
