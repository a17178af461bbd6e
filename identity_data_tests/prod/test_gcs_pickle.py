"""The prod blob store crosses process boundaries: annotate_blobs runs its bound `read` in a
forkserver pool, whose workers keep the environment the fork server started with."""

from __future__ import annotations

import multiprocessing
import pickle
import uuid
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import pytest

from identity_data.stores.deployment import STORAGE_EMULATOR_HOST, blob_store
from identity_data.stores.gcs import GcsBlobStore, gcs_client
from identity_data_tests.services import Service, storage_client


@pytest.fixture
def bucket(fake_gcs: Service) -> str:
    name = f"p-{uuid.uuid4().hex[:12]}"
    storage_client(fake_gcs.url).create_bucket(name)
    return name


def test_deployment_store_reads_in_a_forkserver_pool_without_the_emulator_env(
    fake_gcs: Service, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORAGE_EMULATOR_HOST, fake_gcs.url)
    store = blob_store(f"gs://{bucket}/lake")
    payloads = {f"raw/{i}.bin": f"blob {i}".encode() for i in range(6)}
    for key, data in payloads.items():
        assert store.put_if_absent(key, data)
    # The endpoint was read at launch; the workers must not depend on their own environment.
    monkeypatch.delenv(STORAGE_EMULATOR_HOST)
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        assert list(pool.map(store.read, payloads)) == list(payloads.values())


def test_pickled_store_rebuilds_its_client_from_the_factory(fake_gcs: Service, bucket: str) -> None:
    store = GcsBlobStore(bucket, "lake", client_factory=partial(gcs_client, fake_gcs.url))
    assert store.put_if_absent("a.bin", b"a")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.read("a.bin") == b"a"
    assert copy.client is not store.client
    assert copy.uri("a.bin") == store.uri("a.bin") == f"gs://{bucket}/lake/a.bin"


def test_store_with_a_handed_in_client_refuses_to_pickle(fake_gcs: Service, bucket: str) -> None:
    store = GcsBlobStore(bucket, "lake", client=storage_client(fake_gcs.url))
    with pytest.raises(TypeError, match="client_factory"):
        pickle.dumps(store.read)
