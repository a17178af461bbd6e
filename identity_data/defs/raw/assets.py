"""Raw-zone assets: one factory, applied to the three capture sources."""

from collections.abc import Callable, Iterator
from datetime import date

import dagster as dg
import polars as pl

from identity_data.defs.raw.checks import undecodable_result, undecodable_spec
from identity_data.defs.raw.extract import ingest, manifest_records, production_records
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.metadata import value_counts
from identity_data.safety import check_partition_key
from identity_data.sources import SOURCES, CaptureSource
from identity_data.stores.blobs import BlobStore
from identity_data.stores.deployment import Deployment
from identity_data.tombstones import drop_tombstoned, load_tombstones
from identity_data.validation import empty_frame, schema_check, schema_check_spec

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
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _asset(context: dg.AssetExecutionContext, deployment: Deployment):
        """Copy the partition's blobs into the raw zone and write its manifest."""
        key = deployment.settings.pseudonym_key
        manifests, quarantines, rows_in, tombstoned = [], [], 0, 0
        tombstones = load_tombstones(deployment.lake)
        for partition in context.partition_keys:
            # The UI accepts any key; a campaign's key becomes a folder path.
            check_partition_key(partition, f"{source.name} partition")
            for records, store in EXTRACTORS[source.extractor](deployment, source, partition):
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
