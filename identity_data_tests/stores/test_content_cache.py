import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.stores.blobs import LocalBlobStore
from identity_data.stores.content_cache import (
    COMPACT_AT,
    ContentCache,
    SourceDigests,
    erase_contents,
)

SCHEMA = {"value": pl.Int64()}


def sha(n: int) -> str:
    return f"{n:064x}"[::-1]


def test_get_returns_only_stored_keys_across_shards_and_writes(tmp_path):
    cache = ContentCache(LocalBlobStore(tmp_path), "demo", "v1")
    cache.put(pl.DataFrame({"sha256": [sha(1), sha(2)], "value": [1, 2]}))
    cache.put(pl.DataFrame({"sha256": [sha(3)], "value": [3]}))
    found = cache.get([sha(3), sha(1), sha(9)], SCHEMA)
    expected = pl.DataFrame({"sha256": sorted([sha(1), sha(3)])}).join(
        pl.DataFrame({"sha256": [sha(1), sha(3)], "value": [1, 3]}), on="sha256"
    )
    assert_frame_equal(found, expected)
    assert cache.get([], SCHEMA).height == 0


def test_erased_contents_leave_every_cache_and_version(tmp_path):
    store = LocalBlobStore(tmp_path)
    v1, v2 = ContentCache(store, "demo", "v1"), ContentCache(store, "other", "v2")
    v1.put(pl.DataFrame({"sha256": [sha(1), sha(17)], "value": [1, 17]}))
    v2.put(pl.DataFrame({"sha256": [sha(1), sha(2)], "value": [10, 2]}))
    assert erase_contents(store, [sha(1), sha(99)]) == 2
    assert v1.get([sha(1), sha(17)], SCHEMA)["sha256"].to_list() == [sha(17)]
    assert v2.get([sha(1), sha(2)], SCHEMA)["sha256"].to_list() == [sha(2)]
    files = [p for p in tmp_path.rglob("*.parquet")]
    assert len(files) == 2
    assert not any(sha(1).encode() in p.read_bytes() for p in files)
    assert erase_contents(store, []) == 0


def test_versions_are_separate_and_rewrites_are_no_ops(tmp_path):
    store = LocalBlobStore(tmp_path)
    rows = pl.DataFrame({"sha256": [sha(1)], "value": [1]})
    assert ContentCache(store, "demo", "v1").put(rows) == 1
    assert ContentCache(store, "demo", "v1").put(rows) == 0
    assert ContentCache(store, "demo", "v2").get([sha(1)], SCHEMA).height == 0


def test_names_cannot_leave_the_cache_prefix(tmp_path):
    with pytest.raises(ValueError, match="cache name"):
        ContentCache(LocalBlobStore(tmp_path), "../x", "v1")


def test_source_digests_map_fingerprints_and_leave_with_erased_contents(tmp_path):
    store = LocalBlobStore(tmp_path)
    digests = SourceDigests(store)
    # Fingerprints shard differently from their contents: erasure must find them anyway.
    fps = [f"{n:064x}" for n in (1, 2, 3)]
    digests.put(
        pl.DataFrame(
            {"fingerprint": fps, "sha256": [sha(1), sha(1), sha(2)], "bytes": [10, 10, 20]}
        )
    )
    found = digests.lookup([fps[0], fps[2], f"{9:064x}"])
    assert found.rows() == [(fps[0], sha(1), 10), (fps[2], sha(2), 20)]
    assert erase_contents(store, [sha(1)]) == 2
    assert digests.lookup(fps)["sha256"].to_list() == [sha(2)]
    assert not any(sha(1).encode() in p.read_bytes() for p in tmp_path.rglob("*.parquet"))


def _shard_files(root, cache: ContentCache, shard: str) -> list:
    return sorted((root / cache.prefix / shard).glob("*.parquet"))


def test_a_shard_is_merged_once_it_holds_more_than_the_limit_and_keeps_every_row(tmp_path):
    cache = ContentCache(LocalBlobStore(tmp_path), "demo", "v1")
    # Keys all in shard "0": one run each, as daily runs would add them.
    keys = [f"0{n:063x}" for n in range(3 * COMPACT_AT)]
    for n, key in enumerate(keys):
        cache.put(pl.DataFrame({"sha256": [key, key], "value": [n, n]}))
        assert len(_shard_files(tmp_path, cache, "0")) <= COMPACT_AT
    found = cache.get([*keys, sha(5)], SCHEMA)
    assert_frame_equal(found, pl.DataFrame({"sha256": keys, "value": range(len(keys))}))


def test_a_file_merged_away_during_a_lookup_is_a_miss_not_an_error(tmp_path):
    store = LocalBlobStore(tmp_path)
    cache = ContentCache(store, "demo", "v1")
    cache.put(pl.DataFrame({"sha256": [sha(1)], "value": [1]}))
    cache.put(pl.DataFrame({"sha256": [sha(17)], "value": [17]}))
    first, second = _shard_files(tmp_path, cache, sha(1)[0])

    class Racing(LocalBlobStore):
        # Lists both files, then loses the first to another process's compaction.
        def read(self, key: str) -> bytes:
            first.unlink(missing_ok=True)
            return super().read(key)

    found = ContentCache(Racing(tmp_path), "demo", "v1").get([sha(1), sha(17)], SCHEMA)
    assert found.height == 1 and second.exists()


def test_compaction_leaves_parts_written_after_its_listing(tmp_path):
    store = LocalBlobStore(tmp_path)
    cache = ContentCache(store, "demo", "v1")
    keys = [f"0{n:063x}" for n in range(COMPACT_AT + 1)]
    late = pl.DataFrame({"sha256": ["0" + "f" * 63], "value": [-1]})

    class Late(LocalBlobStore):
        # Another run's put lands between this compaction's listing and its deletes.
        def delete(self, key: str) -> bool:
            if not late_written:
                late_written.append(ContentCache(LocalBlobStore(tmp_path), "demo", "v1").put(late))
            return super().delete(key)

    late_written: list[int] = []
    for n, key in enumerate(keys[:-1]):
        cache.put(pl.DataFrame({"sha256": [key], "value": [n]}))
    ContentCache(Late(tmp_path), "demo", "v1").put(
        pl.DataFrame({"sha256": [keys[-1]], "value": [len(keys) - 1]})
    )
    found = cache.get([*keys, late["sha256"][0]], SCHEMA)
    assert found.height == len(keys) + 1


def test_a_put_reads_no_file_while_its_shard_is_under_the_limit(tmp_path):
    reads: list[str] = []

    class Counting(LocalBlobStore):
        def read(self, key: str) -> bytes:
            reads.append(key)
            return super().read(key)

    cache = ContentCache(Counting(tmp_path), "demo", "v1")
    for n in range(COMPACT_AT):
        cache.put(pl.DataFrame({"sha256": [f"0{n:063x}"], "value": [n]}))
    assert reads == []
    cache.put(pl.DataFrame({"sha256": ["0" + "e" * 63], "value": [-1]}))
    assert len(reads) == COMPACT_AT + 1
