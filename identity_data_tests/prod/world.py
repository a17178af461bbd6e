"""A prod deployment built from real services: fake-gcs-server, bqemulator and PostgreSQL.

`ProdWorld` uploads a generated sample where production keeps it (capture bucket, lake landing/
and label-exports/ under the lake prefix, capture DB rows in PostgreSQL) and yields the exact
IDENTITY_DATA_* settings a launch reads. `run_graph` materializes the same flow as `make demo`
for one day through the real Definitions.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import polars.selectors as cs
import pytest
import sqlalchemy as sa
from google.cloud import storage
from google.cloud.bigquery import client as bq_client

from identity_data.defs.warehouse.tables import TABLES
from identity_data.demo import Demo, Tally
from identity_data.sample import generate, write_capture_db
from identity_data.sample.plan import make_plan
from identity_data.settings import ENV, HOME, PROD_REQUIRED
from identity_data.stores.bigquery import BigQueryWarehouse
from identity_data.stores.deployment import BIGQUERY_EMULATOR_HOST
from identity_data.stores.warehouse import WarehouseBackend

PROJECT = "test-project"
SEED, DAYS, CAPTURES_PER_DAY, CAMPAIGNS = 3, 1, 20, 1
END = date(2026, 11, 28)
DAY = END.isoformat()
# The sources the daily flow covers; open_dataset (200 LFW images) adds time, not coverage.
# Every variable a launch or a client reads: each deployment sets exactly its own.
MANAGED = (
    ENV,
    HOME,
    *PROD_REQUIRED,
    "IDENTITY_DATA_GCS_PREFIX",
    "IDENTITY_DATA_BQ_LOCATION",
    "STORAGE_EMULATOR_HOST",
    BIGQUERY_EMULATOR_HOST,
    "GOOGLE_CLOUD_PROJECT",
)
# Unique key columns per warehouse table: equal frames with unique keys mean no duplicate rows.
TABLE_KEYS = {
    "captures": ("capture_id",),
    "annotations": ("capture_id",),
    "labels": ("capture_id", "task"),
    "annotator_quality": ("annotator", "task"),
    "training_examples": ("capture_id",),
}


@contextlib.contextmanager
def deployment_env(values: dict[str, str]) -> Iterator[None]:
    """Exactly these settings for the block, with the BigQuery emulator's upload quirk."""
    with pytest.MonkeyPatch.context() as mp:
        for name in MANAGED:
            mp.delenv(name, raising=False)
        for name, value in values.items():
            mp.setenv(name, value)
        # bqemulator rejects multipart uploads; a threshold of 0 makes every load resumable.
        mp.setattr(bq_client, "_MAX_MULTIPART_SIZE", 0)
        yield


def generate_sample(out: Path) -> Path:
    generate(
        out,
        seed=SEED,
        days=DAYS,
        captures_per_day=CAPTURES_PER_DAY,
        end_date=END,
        campaigns=CAMPAIGNS,
    )
    return out


# The least-privilege reader of docs/DEPLOYING.md: read-only, the extract's columns only.
READER_GRANTS = (
    'ALTER ROLE "{role}" SET default_transaction_read_only = on',
    'GRANT CONNECT ON DATABASE "{db}" TO "{role}"',
    'GRANT USAGE ON SCHEMA public TO "{role}"',
    "GRANT SELECT (capture_id, subject_ref, capture_type, device, captured_at, blob_path) "
    'ON captures TO "{role}"',
)


def seed_postgres(server_url: str) -> str:
    """A fresh database on the PostgreSQL server holding the sample's capture-service rows;
    returns the URL of a role with only READER_GRANTS on it."""
    name = f"capture_{uuid.uuid4().hex[:12]}"
    role = f"reader_{name}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
        con.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    admin.dispose()
    owner_url = sa.make_url(server_url).set(database=name)
    plan = make_plan(SEED, DAYS, CAPTURES_PER_DAY, END, CAMPAIGNS, None)
    write_capture_db(
        owner_url.render_as_string(hide_password=False),
        plan.subjects,
        plan.sessions,
        plan.production,
    )
    owner = sa.create_engine(owner_url)
    with owner.begin() as con:
        for grant in READER_GRANTS:
            con.execute(sa.text(grant.format(role=role, db=name)))
    owner.dispose()
    return owner_url.set(username=role).render_as_string(hide_password=False)


def upload_tree(bucket: storage.Bucket, root: Path, prefix: str) -> int:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        bucket.blob(f"{prefix}/{path.relative_to(root).as_posix()}").upload_from_filename(path)
    return len(files)


@dataclass
class ProdWorld:
    """One prod deployment on the emulators; `settings()` are its launch variables."""

    client: storage.Client
    lake_bucket: str
    capture_bucket: str
    capture_db_url: str
    key: str
    gcs_url: str
    bq_url: str
    prefix: str = "identity-data"
    dataset: str = ""

    @classmethod
    def build(
        cls,
        sample: Path,
        client: storage.Client,
        capture_db_url: str,
        key: str,
        gcs_url: str,
        bq_url: str,
    ) -> ProdWorld:
        tag = uuid.uuid4().hex[:10]
        world = cls(
            client,
            f"lake-{tag}",
            f"captures-{tag}",
            capture_db_url,
            key,
            gcs_url,
            bq_url,
            dataset=f"identity_{tag}",
        )
        captures = client.create_bucket(world.capture_bucket)
        upload_tree(captures, sample / "capture-bucket", "service")
        client.create_bucket(world.lake_bucket)
        world.upload_sources(sample)
        return world

    def upload_sources(self, sample: Path) -> None:
        """The drop folders and label exports under the lake prefix, as they land in prod."""
        lake = self.client.bucket(self.lake_bucket)
        for folder in ("landing", "label-exports"):
            upload_tree(lake, sample / "lake" / folder, f"{self.prefix}/{folder}")

    def settings(self, **overrides: str) -> dict[str, str]:
        return {
            ENV: "prod",
            "IDENTITY_DATA_GCS_BUCKET": self.lake_bucket,
            "IDENTITY_DATA_GCS_PREFIX": self.prefix,
            "IDENTITY_DATA_GCP_PROJECT": PROJECT,
            "IDENTITY_DATA_BQ_DATASET": self.dataset,
            "IDENTITY_DATA_BQ_LOCATION": "US",
            "IDENTITY_DATA_CAPTURE_DB_URL": self.capture_db_url,
            "IDENTITY_DATA_CAPTURE_BUCKET": f"gs://{self.capture_bucket}/service",
            "IDENTITY_DATA_PSEUDONYM_KEY": self.key,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            BIGQUERY_EMULATOR_HOST: self.bq_url,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            **overrides,
        }

    def warehouse(self) -> BigQueryWarehouse:
        return BigQueryWarehouse(PROJECT, self.dataset, "US", emulator_host=self.bq_url)

    @property
    def lake_root(self) -> str:
        return f"gs://{self.lake_bucket}/{self.prefix}/"

    def lake_parquet(self, asset: str) -> dict[str, pl.DataFrame]:
        """Partition key -> frame of one lake parquet asset, straight from the bucket."""
        folder = f"{self.prefix}/tables/{asset}/"
        return {
            blob.name.removeprefix(folder).removesuffix(".parquet"): relative_uris(
                pl.read_parquet(blob.download_as_bytes()), self.lake_root
            )
            for blob in self.client.list_blobs(self.lake_bucket, prefix=folder)
        }

    def object_count(self, under: str) -> int:
        prefix = f"{self.prefix}/{under}"
        return sum(1 for _ in self.client.list_blobs(self.lake_bucket, prefix=prefix))


class HookedDemo(Demo):
    """Demo that calls `before_run` as each materialization starts (to arm faults)."""

    def __init__(
        self, instance: dg.DagsterInstance, tally: Tally, before_run: Callable[[str], None] | None
    ) -> None:
        super().__init__(instance, tally)
        self.before_run = before_run

    def run(self, label: str, selection: dg.AssetSelection, **kwargs) -> None:
        if self.before_run:
            self.before_run(label)
        super().run(label, selection, **kwargs)


def run_graph(
    instance: dg.DagsterInstance, before_run: Callable[[str], None] | None = None
) -> Tally:
    """`make demo`'s order for one day: sensors, source partitions, label exports, consensus and
    near-duplicates with their warehouse tables, then training examples."""
    tally = Tally()
    demo = HookedDemo(instance, tally, before_run)
    demo.start([DAY], open_datasets=False)
    demo.settle()
    assert tally.runs > 1, "the sensors found nothing to run"
    return tally


def relative_uris(frame: pl.DataFrame, lake_root: str) -> pl.DataFrame:
    """blob_uri relative to the deployment's lake root, the one value that must differ."""
    if "blob_uri" not in frame.columns:
        return frame
    outside = frame.filter(~pl.col("blob_uri").str.starts_with(lake_root))
    assert outside.is_empty(), f"blob_uri outside {lake_root}: {outside['blob_uri'][0]}"
    return frame.with_columns(pl.col("blob_uri").str.strip_prefix(lake_root))


def read_tables(warehouse: WarehouseBackend, lake_root: str) -> dict[str, pl.DataFrame]:
    """Every warehouse table in a canonical row order, with the model's dtypes; instants in the
    zone name "UTC" (DuckDB answers "Etc/UTC" for the same zone)."""
    return {
        name: relative_uris(warehouse.read(spec, {}), lake_root)
        .with_columns(cs.datetime().dt.convert_time_zone("UTC"))
        .sort(TABLE_KEYS[name])
        for name, spec in TABLES.items()
    }
