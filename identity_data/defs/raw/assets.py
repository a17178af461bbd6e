"""Raw-zone assets: one factory, applied to the three capture sources."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import polars as pl

from identity_data.defs.raw import partitions
from identity_data.defs.raw.checks import undecodable_result, undecodable_spec
from identity_data.defs.raw.extract import ingest, manifest_records, production_records
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.fanout import backfill_policy
from identity_data.metadata import value_counts
from identity_data.safety import check_partition_key
from identity_data.stores.blobs import BlobStore
from identity_data.stores.deployment import Deployment
from identity_data.tombstones import drop_tombstoned, load_tombstones
from identity_data.validation import empty_frame, schema_check, schema_check_spec

Reader = Callable[[Deployment, str], Iterator[tuple[pl.DataFrame, BlobStore]]]


@dataclass(frozen=True)
class CaptureSource:
    """A capture source: how it is partitioned and how one partition's records are read."""

    name: str
    partitions_def: dg.PartitionsDefinition
    read: Reader
    description: str
    # Least share of selfies with a detected face; attack-heavy sources legitimately score lower.
    selfie_face_floor: float
    freshness_policy: dg.FreshnessPolicy | None = None

    def key(self, layer: str, table: str) -> dg.AssetKey:
        return dg.AssetKey([layer, f"{self.name}_{table}"])


def _read_production(deployment: Deployment, partition: str) -> Iterator[tuple]:
    for batch in production_records(deployment.capture_db, date.fromisoformat(partition)):
        yield batch, deployment.capture_bucket


def _drop_folder(zone: str) -> Reader:
    def read(deployment: Deployment, partition: str) -> Iterator[tuple]:
        yield manifest_records(deployment.lake, f"landing/{zone}/{partition}"), deployment.lake

    return read


SOURCES = (
    CaptureSource(
        "production",
        partitions.daily,
        _read_production,
        "Captures from the capture service's database, extracted per capture day.",
        0.8,
        dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
    ),
    CaptureSource(
        "campaign",
        partitions.campaigns,
        _drop_folder("campaigns"),
        "Captures from the team's capture campaigns, one drop folder per campaign.",
        # Campaigns mostly collect print and replay attacks, which hide faces from a detector.
        0.4,
    ),
    CaptureSource(
        "open_dataset",
        partitions.open_datasets,
        _drop_folder("open-datasets"),
        "Captures from open datasets imported in bulk.",
        0.85,
    ),
)


def accounting_spec(source: CaptureSource) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "row_accounting",
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
        manifests, quarantines, rows_in, tombstoned = [], [], 0, 0
        tombstones = load_tombstones(deployment.lake)
        for partition in context.partition_keys:
            # The UI accepts any key; a campaign's key becomes a folder path.
            check_partition_key(partition, f"{source.name} partition")
            for records, store in source.read(deployment, partition):
                rows_in += records.height
                records, dropped = drop_tombstoned(records, tombstones, key)
                tombstoned += dropped
                manifest, bad = ingest(
                    records, store.read, deployment.lake, key, source.name, partition
                )
                manifests.append(manifest)
                quarantines.append(bad)
        manifest = pl.concat([empty_frame(CaptureManifest), *manifests])
        bad = pl.concat([empty_frame(RawQuarantine), *quarantines])
        yield dg.Output(
            manifest,
            output_name="captures",
            metadata={
                "dagster/row_count": manifest.height,
                "by_capture_type": value_counts(manifest["capture_type"]),
                "tombstoned_rows": tombstoned,
            },
        )
        yield dg.Output(
            bad,
            output_name="quarantine",
            metadata={
                "dagster/row_count": bad.height,
                "by_field": value_counts(bad["field"]),
            },
        )
        yield schema_check(manifest, CaptureManifest, captures)
        yield schema_check(bad, RawQuarantine, quarantine)
        yield dg.AssetCheckResult(
            check_name="row_accounting",
            asset_key=captures,
            passed=rows_in == manifest.height + bad.height + tombstoned,
            metadata={
                "rows_in": rows_in,
                "manifest": manifest.height,
                "quarantined": bad.height,
                "tombstoned": tombstoned,
            },
        )
        yield undecodable_result(manifest, bad, captures)

    return _asset


raw_assets = [build_raw_asset(source) for source in SOURCES]
