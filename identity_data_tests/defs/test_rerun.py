"""Re-running the production chain (raw -> annotations -> warehouse) does work only for what
changed: no source blob is read again, and the tables equal those built without any cache."""

import io
import shutil
import time
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import dagster as dg
import duckdb
import polars as pl
from PIL import Image
from polars.testing import assert_frame_equal

from identity_data.definitions import defs as load_defs
from identity_data.defs.warehouse.io_manager import WarehouseIOManager
from identity_data.demo import range_tags
from identity_data.sources import BY_NAME
from identity_data.stores.blobs import BlobStore, LocalBlobStore
from identity_data.stores.deployment import Deployment
from identity_data.stores.lake_io import LakeIOManager
from identity_data_tests.conftest import SAMPLE_DAYS
from identity_data_tests.stores.test_blobs import SETTLE_S

PROD = BY_NAME["production"]
# The chain up to the warehouse's captures and annotations: training examples also need the
# labels stage, which blobs do not feed.
CHAIN = [key for key in PROD.chain() if key != PROD.key("warehouse", "examples")]
RANGE = range_tags(SAMPLE_DAYS[0], SAMPLE_DAYS[-1])


class CountingBucket(LocalBlobStore):
    """The real local capture bucket, counting the blobs read from it."""

    reads: ClassVar[list[str]] = []

    def read(self, key: str) -> bytes:
        CountingBucket.reads.append(key)
        return super().read(key)


class CountingDeployment(Deployment):
    """The local deployment, its capture bucket counting reads."""

    @cached_property
    def capture_bucket(self) -> BlobStore:
        return CountingBucket(self.settings.capture_bucket_url)


def run_chain(instance: dg.DagsterInstance) -> list[str]:
    """Materialize the chain over the sample's days in one run; the source blobs it read."""
    defs = load_defs()
    deployment = CountingDeployment()
    resources = {
        **dict(defs.resources or {}),
        "deployment": deployment,
        "io_manager": LakeIOManager(deployment=deployment),
        "warehouse_io_manager": WarehouseIOManager(deployment=deployment),
    }
    CountingBucket.reads.clear()
    result = dg.materialize(
        list(defs.assets or []),
        selection=dg.AssetSelection.assets(*CHAIN),
        instance=instance,
        resources=resources,
        tags=RANGE,
    )
    assert result.success
    return sorted(CountingBucket.reads)


def tables(home: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {
            name: con.sql(f"SELECT * FROM {name} ORDER BY capture_id").pl()
            for name in ("captures", "annotations")
        }


def jpeg(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (color, 120, 40)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_rerun_reads_only_what_changed_and_equals_a_run_without_caches(sample_home, instance):
    # The copied sample was just written: let its stat settle so fingerprints are trusted.
    time.sleep(SETTLE_S)
    first_reads = run_chain(instance)
    assert first_reads
    first = tables(sample_home)
    assert first["captures"].height and first["annotations"].height

    # Nothing changed: no source blob is read, and the tables stay as they were.
    assert run_chain(instance) == []
    for name, frame in tables(sample_home).items():
        assert_frame_equal(frame, first[name])

    # One blob rewritten in place with other bytes: only it is read, and its captures get the
    # new content's sha256 and annotations.
    bucket = sample_home / "capture-bucket"
    changed = first_reads[0]
    (bucket / changed).write_bytes(jpeg(200))
    time.sleep(SETTLE_S)
    assert run_chain(instance) == [changed]
    after = tables(sample_home)
    capture_id = Path(changed).stem
    old, new = (t["annotations"].filter(pl.col("capture_id") == capture_id) for t in (first, after))
    assert new.height == 1 and not new.equals(old)
    others = pl.col("capture_id") != capture_id
    assert_frame_equal(after["annotations"].filter(others), first["annotations"].filter(others))

    # Without any cache every blob is read, decoded and annotated again: the same tables.
    shutil.rmtree(sample_home / "lake" / "cache")
    assert run_chain(instance) == first_reads
    for name, frame in tables(sample_home).items():
        assert_frame_equal(frame, after[name])
