"""The deployment as a resource: blob stores, warehouse and capture database for this run."""

from __future__ import annotations

from functools import cached_property, partial

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from identity_data.settings import LocalSettings, ProdSettings, resolve_settings
from identity_data.stores.blobs import BlobStore, LocalBlobStore
from identity_data.stores.warehouse import DuckDBWarehouse, WarehouseBackend

# Emulator endpoints, under the names the Google client libraries themselves read.
STORAGE_EMULATOR_HOST = "STORAGE_EMULATOR_HOST"
BIGQUERY_EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"


def blob_store(url: str) -> BlobStore:
    """A local folder, or `gs://bucket/prefix`."""
    if url.startswith("gs://"):
        from identity_data.stores.gcs import GcsBlobStore, gcs_client

        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        # The endpoint is read here, at launch, and travels with the store into worker processes.
        emulator = dg.EnvVar(STORAGE_EMULATOR_HOST).get_value()
        return GcsBlobStore(bucket, prefix, client_factory=partial(gcs_client, emulator))
    return LocalBlobStore(url)


def warehouse_backend(settings: LocalSettings | ProdSettings) -> WarehouseBackend:
    if isinstance(settings, ProdSettings):
        from identity_data.stores.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(
            project=settings.gcp_project,
            dataset=settings.bq_dataset,
            location=settings.bq_location,
            # An emulator takes no credentials (the client library alone would still ask for them).
            emulator_host=dg.EnvVar(BIGQUERY_EMULATOR_HOST).get_value(),
        )
    return DuckDBWarehouse(settings.duckdb_path)


class Deployment(dg.ConfigurableResource):
    """Where the lake, warehouse and capture database live, resolved from the environment."""

    _settings: LocalSettings | ProdSettings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = resolve_settings()

    @property
    def settings(self) -> LocalSettings | ProdSettings:
        if self._settings is None:
            self._settings = resolve_settings()
        return self._settings

    @cached_property
    def lake(self) -> BlobStore:
        return blob_store(self.settings.lake_url)

    @cached_property
    def capture_bucket(self) -> BlobStore:
        return blob_store(self.settings.capture_bucket_url)

    @cached_property
    def capture_db(self) -> sa.Engine:
        return sa.create_engine(self.settings.capture_db_url)

    @cached_property
    def warehouse(self) -> WarehouseBackend:
        return warehouse_backend(self.settings)
