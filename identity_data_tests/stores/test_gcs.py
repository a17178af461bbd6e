"""GcsBlobStore and the GCS parquet lake against a real fake-gcs-server (no client mocks)."""

import datetime as dt
import threading
import uuid
from collections.abc import Callable

import dagster as dg
import polars as pl
import pytest

from identity_data.stores.blobs import content_key
from identity_data.stores.content_cache import COMPACT_AT, ContentCache
from identity_data.stores.deployment import Deployment
from identity_data.stores.gcs import GcsBlobStore, storage_retry
from identity_data.stores.lake_io import LakeIOManager
from identity_data_tests.services import FaultProxy, Service, storage_client

# Short backoff so fault tests retry within a second or two.
FAST_RETRY = storage_retry(deadline=20.0, initial=0.05, maximum=0.5)


@pytest.fixture
def bucket(fake_gcs: Service) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    storage_client(fake_gcs.url).create_bucket(name)
    return name


def make_store(endpoint: str, bucket: str, **kwargs: object) -> GcsBlobStore:
    return GcsBlobStore(bucket, "lake", client=storage_client(endpoint), retry=FAST_RETRY, **kwargs)


def test_put_if_absent_writes_once_and_never_overwrites(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket)
    assert store.uri("raw/a.jpg") == f"gs://{bucket}/lake/raw/a.jpg"
    assert not store.exists("raw/a.jpg")
    assert store.put_if_absent("raw/a.jpg", b"first") is True
    assert store.put_if_absent("raw/a.jpg", b"second writer, other bytes") is False
    assert store.read("raw/a.jpg") == b"first"
    assert store.exists("raw/a.jpg")
    blob = storage_client(fake_gcs.url).bucket(bucket).get_blob("lake/raw/a.jpg")
    assert blob is not None and blob.generation is not None


def test_concurrent_writers_exactly_one_wins(fake_gcs: Service, bucket: str) -> None:
    stores = [make_store(fake_gcs.url, bucket) for _ in range(8)]
    start = threading.Barrier(len(stores))
    results: dict[int, bool] = {}

    def write(i: int) -> None:
        start.wait()
        results[i] = stores[i].put_if_absent("raw/race.bin", f"writer {i}".encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, wrote in results.items() if wrote]
    assert len(winners) == 1
    assert stores[0].read("raw/race.bin") == f"writer {winners[0]}".encode()


def test_list_pages_in_key_order_relative_to_prefix(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket, page_size=3)
    payloads = {f"raw/captures/{i:02d}.bin": bytes([i]) * (i + 1) for i in range(10)}
    for key, data in payloads.items():
        store.put_if_absent(key, data)
    store.put_if_absent("other/x.bin", b"x")
    # Pages really are small: the same listing through the client yields several pages.
    pages = storage_client(fake_gcs.url).list_blobs(bucket, prefix="lake/raw/", page_size=3).pages
    assert len([list(page) for page in pages]) == 4
    listed = list(store.list("raw/"))
    assert [o.key for o in listed] == sorted(payloads)
    assert [o.size for o in listed] == [len(payloads[o.key]) for o in listed]


def test_version_follows_content(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket)
    client = storage_client(fake_gcs.url)
    store.put_if_absent("raw/v.bin", b"one")
    (before,) = store.list("raw/")
    # Another writer replaces the object (e.g. a manual re-upload): the version must move.
    client.bucket(bucket).blob("lake/raw/v.bin").upload_from_string(b"two")
    (changed,) = store.list("raw/")
    # Re-uploading identical bytes gives a new generation but is no content change.
    client.bucket(bucket).blob("lake/raw/v.bin").upload_from_string(b"two")
    (same,) = store.list("raw/")
    assert before.version != changed.version
    assert changed.version == same.version
    assert len(changed.version) == 32 and int(changed.version, 16) >= 0


def test_content_key_round_trip(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket)
    data = b"\xff\xd8jpeg bytes"
    key, digest = content_key(data, ".jpg")
    assert store.put_if_absent(key, data)
    assert store.read(key) == data
    assert [o.key for o in store.list("raw/captures/")] == [key]
    assert digest in key


@pytest.mark.parametrize("kind", ["reset", "503"])
def test_transient_faults_are_retried(
    fake_gcs: Service, bucket: str, fault_proxy: Callable[[int], FaultProxy], kind: str
) -> None:
    proxy = fault_proxy(fake_gcs.port)
    store = make_store(proxy.url, bucket, page_size=2)
    proxy.inject(kind, times=2, match=b"payload-A")
    assert store.put_if_absent("raw/a.bin", b"payload-A") is True
    proxy.inject(kind, times=2, match=b"GET /download/storage/v1/b/")
    assert store.read("raw/a.bin") == b"payload-A"
    store.put_if_absent("raw/b.bin", b"payload-B")
    store.put_if_absent("raw/c.bin", b"payload-C")
    proxy.inject(kind, times=2, match=b"pageToken")
    assert [o.key for o in store.list("raw/")] == ["raw/a.bin", "raw/b.bin", "raw/c.bin"]
    assert proxy.fired[kind] == 6


def test_lost_upload_response_keeps_the_first_object(
    fake_gcs: Service, bucket: str, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    """The server stores the object but the answer is lost; the retry meets the precondition."""
    proxy = fault_proxy(fake_gcs.port)
    store = make_store(proxy.url, bucket)
    proxy.inject("lose_response", match=b"payload-L")
    # Ambiguous by nature: the retry sees an existing object and reports no write of its own.
    assert store.put_if_absent("raw/l.bin", b"payload-L") is False
    assert proxy.fired["lose_response"] == 1
    assert store.read("raw/l.bin") == b"payload-L"
    assert store.put_if_absent("raw/l.bin", b"other") is False
    assert store.read("raw/l.bin") == b"payload-L"


def test_persistent_failure_gives_up_within_deadline(
    fake_gcs: Service, bucket: str, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(fake_gcs.port)
    store = GcsBlobStore(
        bucket,
        "lake",
        client=storage_client(proxy.url),
        retry=storage_retry(deadline=1.0, initial=0.05, maximum=0.2),
    )
    proxy.inject("503", times=1000)
    started = dt.datetime.now()
    with pytest.raises(Exception, match="503"):
        store.read("raw/missing.bin")
    assert (dt.datetime.now() - started).total_seconds() < 10
    assert proxy.fired["503"] > 1


def test_default_client_from_emulator_env(gcs_emulator_env: Service, bucket: str) -> None:
    """The production constructor, GcsBlobStore(bucket, prefix), builds its own client."""
    store = GcsBlobStore(bucket, "deploy/lake")
    assert store.put_if_absent("k.bin", b"v")
    assert [o.key for o in store.list("")] == ["k.bin"]
    assert store.uri("k.bin") == f"gs://{bucket}/deploy/lake/k.bin"


def test_parquet_lake_partitioned_asset_on_gcs(fake_gcs: Service, bucket: str, data_home) -> None:
    # Explicit endpoint and anonymous token: no STORAGE_EMULATOR_HOST needed by gcsfs; the
    # (local) deployment is overridden by `base_dir`.
    io_manager = LakeIOManager(
        deployment=Deployment(),
        base_dir=f"gs://{bucket}/prefix/tables",
        storage_options={"endpoint_url": fake_gcs.url, "token": "anon"},
    )
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-04")
    keys = days.get_partition_keys()

    @dg.asset(partitions_def=days)
    def captures(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = dt.date.fromisoformat(context.partition_key)
        return pl.DataFrame({"capture_id": [f"c-{day}"], "day": [day], "n": [day.day]})

    @dg.asset(partitions_def=days)
    def captures_lazy(context: dg.AssetExecutionContext) -> pl.LazyFrame:
        return pl.LazyFrame({"key": [context.partition_key]})

    @dg.asset(partitions_def=days)
    def doubled(captures: pl.DataFrame, captures_lazy: pl.LazyFrame) -> pl.DataFrame:
        return captures.with_columns(n=pl.col("n") * 2, key=captures_lazy.collect()["key"])

    @dg.asset
    def all_days(doubled: dict[str, pl.DataFrame]) -> pl.DataFrame:
        return pl.concat([doubled[k] for k in sorted(doubled)])

    resources = {"io_manager": io_manager}
    for key in keys:
        result = dg.materialize(
            [captures, captures_lazy, doubled], partition_key=key, resources=resources
        )
        assert result.success
    names = sorted(b.name for b in storage_client(fake_gcs.url).list_blobs(bucket))
    assert names == sorted(
        f"prefix/tables/{asset}/{key}.parquet"
        for asset in ["captures", "captures_lazy", "doubled"]
        for key in keys
    )
    # A fresh run reads every partition back from the bucket.
    result = dg.materialize(
        [captures, captures_lazy, doubled, all_days], selection=[all_days], resources=resources
    )
    assert result.output_for_node("all_days").to_dicts() == [
        {"capture_id": f"c-{k}", "day": dt.date.fromisoformat(k), "n": 2 * int(k[-2:]), "key": k}
        for k in keys
    ]


def test_fingerprint_follows_generation_without_a_download(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket)
    client = storage_client(fake_gcs.url)
    store.put_if_absent("src/f.jpg", b"one")
    first = store.fingerprint("src/f.jpg")
    assert first is not None and len(first) == 64
    assert store.fingerprint("src/f.jpg") == first
    # Every write is a new generation, equal bytes included: the fingerprint moves either way.
    client.bucket(bucket).blob("lake/src/f.jpg").upload_from_string(b"one")
    again = store.fingerprint("src/f.jpg")
    assert again is not None and again != first
    # The same name in another bucket is another object.
    other = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(other)
    make_store(fake_gcs.url, other).put_if_absent("src/f.jpg", b"one")
    assert make_store(fake_gcs.url, other).fingerprint("src/f.jpg") not in (first, again)
    with pytest.raises(FileNotFoundError):
        store.fingerprint("src/missing.jpg")


def test_content_cache_compacts_its_shards_on_gcs(fake_gcs: Service, bucket: str) -> None:
    store = make_store(fake_gcs.url, bucket)
    cache = ContentCache(store, "demo", "v1")
    keys = [f"a{n:063x}" for n in range(2 * COMPACT_AT)]
    for n, key in enumerate(keys):
        cache.put(pl.DataFrame({"sha256": [key], "value": [n]}))
        assert len(list(store.list(f"{cache.prefix}/a/"))) <= COMPACT_AT
    found = cache.get(keys, {"value": pl.Int64()})
    assert found["value"].to_list() == list(range(len(keys)))
