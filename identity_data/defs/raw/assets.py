"""Raw-zone assets: one factory, applied to the three capture sources."""

import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from identity_data.contracts import ROW_ACCOUNTING
from identity_data.defs.raw.batches import Spill
from identity_data.defs.raw.checks import undecodable_result, undecodable_spec
from identity_data.defs.raw.extract import (
    STORED_BLOBS_LIMIT,
    StoredBlobs,
    ingest,
    manifest_records,
    production_records,
)
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.fanout import backfill_policy
from identity_data.safety import check_folder_name
from identity_data.sources import SOURCES, CaptureSource
from identity_data.stores.blobs import BlobStore
from identity_data.stores.deployment import Deployment
from identity_data.tombstones import drop_tombstoned, load_tombstones
from identity_data.validation import schema_check_spec, schema_result

Reader = Callable[[Deployment, CaptureSource, str], Iterator[tuple[pl.DataFrame, BlobStore]]]


def _read_capture_db(deployment: Deployment, source: CaptureSource, partition: str) -> Iterator:
    for batch in production_records(deployment.capture_db, date.fromisoformat(partition)):
        yield batch, deployment.capture_bucket


def _read_drop_folder(deployment: Deployment, source: CaptureSource, partition: str) -> Iterator:
    folder = f"landing/{source.landing}/{partition}"
    yield manifest_records(deployment.lake, folder), deployment.lake


# How each registry entry's `extractor` reads one partition's records.
EXTRACTORS: dict[str, Reader] = {"capture_db": _read_capture_db, "drop_folder": _read_drop_folder}


def accounting_spec(source: CaptureSource) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ROW_ACCOUNTING,
        asset=source.key("raw", "captures"),
        blocking=True,
        description="Source records in = manifest + quarantined + tombstoned (erased) rows.",
    )


def build_raw_asset(source: CaptureSource) -> dg.AssetsDefinition:
    captures, quarantine = source.key("raw", "captures"), source.key("raw", "quarantine")

    @dg.multi_asset(
        name=f"raw_{source.name}",
        outs={
            "captures": dg.AssetOut(
                key=captures,
                description=source.description,
                group_name="raw",
                kinds={"polars", "parquet"},
                freshness_policy=source.freshness_policy,
            ),
            "quarantine": dg.AssetOut(
                key=quarantine,
                description=f"{source.name} records kept out of the manifest, with the reason.",
                group_name="raw",
                kinds={"polars", "parquet"},
            ),
        },
        partitions_def=source.partitions_def,
        check_specs=[
            schema_check_spec(captures, CaptureManifest),
            schema_check_spec(quarantine, RawQuarantine),
            accounting_spec(source),
            undecodable_spec(captures),
        ],
        can_subset=False,
        backfill_policy=backfill_policy(),
    )
    def _asset(context: dg.AssetExecutionContext, deployment: Deployment):
        """Copy the partition's blobs into the raw zone and write its manifest."""
        key = deployment.settings.pseudonym_key
        rows_in, tombstoned = 0, 0
        tombstones: frozenset[str] | None = None
        # Batches are spilled to local files as they come, so memory holds one batch whatever
        # the day's size; the outputs stream from there into the lake.
        with tempfile.TemporaryDirectory(prefix="raw-") as tmp:
            manifests = Spill(Path(tmp), "captures", CaptureManifest, ("capture_type",))
            quarantines = Spill(Path(tmp), "quarantine", RawQuarantine, ("field", "decode_status"))
            for partition in context.partition_keys:
                # The UI accepts any key; a campaign's key becomes a folder path.
                check_folder_name(partition, f"{source.name} partition")
                stored, preceding = None, None
                for records, store in EXTRACTORS[source.extractor](deployment, source, partition):
                    rows_in += records.height
                    stored = stored or StoredBlobs(
                        store.read, deployment.lake, STORED_BLOBS_LIMIT, store.fingerprint
                    )
                    last = records["capture_id"].drop_nulls().tail(1).to_list()
                    if tombstones is None:
                        # Listed once the source has answered, as late as one listing per run
                        # allows: an erasure filed while the source query waited or ran is
                        # honoured here rather than written and scrubbed again.
                        tombstones = load_tombstones(deployment.lake)
                    records, dropped = drop_tombstoned(records, tombstones, key)
                    tombstoned += dropped
                    manifest, bad = ingest(
                        records,
                        store.read,
                        deployment.lake,
                        key,
                        source.name,
                        partition,
                        stored=stored,
                        preceding_id=preceding,
                    )
                    preceding = last[0] if last else preceding
                    manifests.add(manifest)
                    quarantines.add(bad)
            yield dg.Output(
                manifests.frame(),
                output_name="captures",
                metadata={
                    "dagster/row_count": manifests.rows,
                    "by_capture_type": manifests.value_counts("capture_type"),
                    "tombstoned_rows": tombstoned,
                },
            )
            yield dg.Output(
                quarantines.frame(),
                output_name="quarantine",
                metadata={
                    "dagster/row_count": quarantines.rows,
                    "by_field": quarantines.value_counts("field"),
                },
            )
        yield schema_result(CaptureManifest, captures, manifests.rows, manifests.failures)
        yield schema_result(RawQuarantine, quarantine, quarantines.rows, quarantines.failures)
        yield dg.AssetCheckResult(
            check_name=ROW_ACCOUNTING,
            asset_key=captures,
            passed=rows_in == manifests.rows + quarantines.rows + tombstoned,
            metadata={
                "rows_in": rows_in,
                "manifest": manifests.rows,
                "quarantined": quarantines.rows,
                "tombstoned": tombstoned,
            },
        )
        yield undecodable_result(
            manifests.rows, quarantines.value_counts("decode_status"), captures
        )

    return _asset


raw_assets = [build_raw_asset(source) for source in SOURCES]
