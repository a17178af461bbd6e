"""Erasure: one request partition removes a subject (or expired captures) from every store."""

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from upath import UPath

from identity_data.defs.erasure import erase, requests
from identity_data.defs.erasure.partitions import erasure_requests
from identity_data.defs.erasure.retention import expired_captures
from identity_data.defs.erasure.schemas import ErasureAudit, SnapshotRedaction
from identity_data.defs.raw.assets import EXTRACTORS
from identity_data.sources import BY_NAME
from identity_data.stores.deployment import Deployment
from identity_data.tombstones import add_tombstones, digest
from identity_data.validation import conform, empty_frame, schema_check, schema_check_spec

AUDIT = dg.AssetKey(["erasure", "erasure_audit"])
REDACTIONS = dg.AssetKey(["erasure", "redactions"])
ERASURE_JOB = "erasure_job"
LAKE_ROWS, WAREHOUSE_ROWS = "lake_rows_by_table", "warehouse_rows_by_table"
BY_TABLE = (LAKE_ROWS, WAREHOUSE_ROWS)
# A run started before the tombstone may still write the subject back; erasure waits it out.
QUIET_TIMEOUT_SECONDS = 1800
ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def is_erasure(run: dg.DagsterRun) -> bool:
    return run.job_name == ERASURE_JOB or AUDIT in (run.asset_selection or ())


def others_active(instance: dg.DagsterInstance, own_run_id: str, since: datetime) -> bool:
    """Whether any other run, not an erasure, was in progress at some moment since `since`.

    Other erasures write no subject back, and they queue on the `erasure` pool, so two of them
    never scrub at once and never wait for each other.
    """
    active = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE))
    changed = instance.get_run_records(filters=dg.RunsFilter(updated_after=since))
    return any(
        r.dagster_run.run_id != own_run_id
        and not is_erasure(r.dagster_run)
        and r.dagster_run.status
        not in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)
        for r in (*active, *changed)
    )


def _out(key: dg.AssetKey, description: str) -> dg.AssetOut:
    return dg.AssetOut(
        key=key, description=description, group_name="erasure", kinds={"polars", "parquet"}
    )


@dg.multi_asset(
    outs={
        "audit": _out(
            AUDIT, "One row per executed erasure request: time, scope, counts per store."
        ),
        "redactions": _out(REDACTIONS, "Snapshot versions replaced by erasure, old and new hash."),
    },
    partitions_def=erasure_requests,
    check_specs=[
        schema_check_spec(AUDIT, ErasureAudit),
        schema_check_spec(REDACTIONS, SnapshotRedaction),
    ],
    can_subset=False,
    pool="erasure",
)
def erasure(context: dg.AssetExecutionContext, deployment: Deployment):
    """Tombstone, then scrub lake, blobs, warehouse and snapshots until no run races it."""
    request_id = context.partition_key
    lake, key = deployment.lake, deployment.settings.pseudonym_key
    tables = UPath(f"{deployment.settings.lake_url}/tables")
    try:
        request = requests.read_request(lake, request_id)
    except requests.ErasureRequestError as err:
        raise dg.Failure(str(err)) from err
    pseudonyms = frozenset(request.get("pseudonyms", []))

    def read_records(source: str, partition: str) -> Iterator[pl.DataFrame]:
        found = BY_NAME[source]
        return (batch for batch, _ in EXTRACTORS[found.extractor](deployment, found, partition))

    capture_ids: frozenset[str] = frozenset()
    if request["scope"] == "retention":
        capture_ids = expired_captures(
            tables,
            lake,
            datetime.now(UTC).date(),
            request["max_age_days"],
            request["snapshot_in_use_days"],
        )
    # Tombstones first: from here on, no extraction lets these subjects or captures in.
    added = add_tombstones(
        lake,
        {digest(key, "subject_pseudonym", p) for p in pseudonyms}
        | {digest(key, "capture_id", c) for c in capture_ids},
    )
    erased = erase.Erased(pseudonyms, capture_ids, frozenset(), frozenset())
    lake_rows, warehouse_rows, redactions = Counter(), Counter(), []
    blobs_deleted = blobs_shared = passes = 0
    deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
    while True:
        started, passes = datetime.now(UTC), passes + 1
        found = erase.resolve(tables, pseudonyms, erased.capture_ids)
        erased, unreadable = erase.resolve_quarantine(
            tables,
            read_records,
            key,
            erase.Erased(
                pseudonyms,
                erased.capture_ids | found.capture_ids,
                erased.sha256s | found.sha256s,
                erased.blob_keys | found.blob_keys,
                erased.records,
            ),
        )
        if unreadable:
            context.log.warning(
                f"{len(unreadable)} quarantine partitions have no readable source; their rows "
                "go when the partition is extracted again"
            )
        # Capture tombstones keep label exports that name these captures from refilling the lake.
        added += add_tombstones(lake, {digest(key, "capture_id", c) for c in erased.capture_ids})
        remap = erase.near_duplicates_remap(tables, erased)
        lake_rows += erase.scrub_lake(tables, erased, remap)
        deleted, blobs_shared = erase.delete_blobs(lake, tables, erased)
        blobs_deleted += deleted
        warehouse_rows += erase.scrub_warehouse(deployment.warehouse, erased, remap)
        redactions += erase.redact_snapshots(lake, erased, remap, request_id)
        if not others_active(context.instance, context.run_id, started):
            break
        if time.monotonic() > deadline:
            raise dg.Failure("other runs kept running; the request stays filed: run it again")
        while others_active(context.instance, context.run_id, datetime.now(UTC)):
            time.sleep(1.0)
    requests.close_request(lake, request_id)
    if filed_by := request.get(requests.FILED_BY_RUN):
        # The UI's filing run keeps the pseudonym in its config; it goes with the request.
        context.instance.delete_run(filed_by)
        context.log.info("deleted the run that filed this request from the UI")
    audit = conform(
        pl.DataFrame(
            {
                "request_id": request_id,
                "requested_at": datetime.fromisoformat(request["requested_at"]),
                "executed_at": datetime.now(UTC),
                "scope": request["scope"],
                "requested_by": request["requested_by"],
                "subjects": len(pseudonyms),
                "captures": len(erased.capture_ids),
                "tombstones_added": added,
                "lake_rows": sum(lake_rows.values()),
                "blobs_deleted": blobs_deleted,
                "blobs_kept_shared": blobs_shared,
                "warehouse_rows": sum(warehouse_rows.values()),
                "snapshot_rows": sum(r["rows_removed"] for r in redactions),
                "snapshots_redacted": len(redactions),
                "passes": passes,
            }
        ).with_columns(pl.col("requested_at", "executed_at").dt.convert_time_zone("UTC")),
        ErasureAudit,
    )
    redacted = (
        conform(pl.DataFrame(redactions), SnapshotRedaction)
        if redactions
        else empty_frame(SnapshotRedaction)
    )
    yield dg.Output(
        audit,
        output_name="audit",
        metadata={
            "dagster/row_count": 1,
            LAKE_ROWS: dg.MetadataValue.json(dict(sorted(lake_rows.items()))),
            WAREHOUSE_ROWS: dg.MetadataValue.json(dict(sorted(warehouse_rows.items()))),
            "blobs_deleted": blobs_deleted,
            "captures": len(erased.capture_ids),
            "quarantined_records": len(erased.records),
            "passes": passes,
        },
    )
    yield dg.Output(
        redacted, output_name="redactions", metadata={"dagster/row_count": redacted.height}
    )
    yield schema_check(audit, ErasureAudit, AUDIT)
    yield schema_check(redacted, SnapshotRedaction, REDACTIONS)
