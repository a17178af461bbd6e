"""CLI for erasure: `python -m identity_data.erasure subject|retention|audit` (see --help).

`subject --subject-ref -` reads the raw reference from stdin (so it stays out of shell history
and the process list), pseudonymises it at once and files the request; only the pseudonym is
ever written, and only until the request has run. The request then runs as its own partition of
`erasure/erasure_audit` on this Dagster instance, exactly as launching it from the UI would.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg
import polars as pl

from identity_data.defs.erasure.assets import AUDIT, BY_TABLE
from identity_data.defs.erasure.partitions import ERASURE_REQUESTS
from identity_data.defs.erasure.requests import (
    ErasureRequestError,
    check_pseudonym,
    file_request,
    new_request_id,
    retention_request,
    subject_request,
)
from identity_data.defs.erasure.retention import DEFAULT_MAX_AGE_DAYS, DEFAULT_SNAPSHOT_IN_USE_DAYS
from identity_data.privacy import pseudonymise
from identity_data.settings import resolve_settings
from identity_data.stores.deployment import blob_store


def run_request(request_id: str, instance: dg.DagsterInstance) -> bool:
    from identity_data.definitions import defs as load_defs
    from identity_data.definitions import materializable

    defs = load_defs()
    result = dg.materialize(
        materializable(defs),
        selection=dg.AssetSelection.assets(AUDIT).required_multi_asset_neighbors(),
        partition_key=request_id,
        instance=instance,
        resources=dict(defs.resources or {}),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    return result.success


def removed_by_table(instance: dg.DagsterInstance, request_id: str) -> dict[str, dict]:
    """Rows removed per lake and warehouse table, from the request's materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=AUDIT, asset_partitions=[request_id]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {
        k: value for k in BY_TABLE if k in metadata and isinstance(value := metadata[k].value, dict)
    }


def audit_frame() -> pl.DataFrame:
    from upath import UPath

    folder = UPath(f"{resolve_settings().lake_url}/tables/erasure/erasure_audit")
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    frames = []
    for path in files:
        with path.open("rb") as fh:
            frames.append(pl.read_parquet(fh))
    return pl.concat(frames).sort("executed_at") if frames else pl.DataFrame()


def print_fields(fields: dict[str, object]) -> None:
    for name, value in fields.items():
        print(f"  {name:<20} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m identity_data.erasure")
    sub = parser.add_subparsers(dest="command", required=True)
    subject = sub.add_parser("subject", help="erase one subject from every store")
    who = subject.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject-ref", help="the raw subject reference; '-' reads it from stdin")
    who.add_argument("--pseudonym", help="the subject's pseudonym (64 hex digits)")
    keep = sub.add_parser("retention", help="erase production captures past the retention age")
    keep.add_argument("--max-age-days", type=int, default=DEFAULT_MAX_AGE_DAYS)
    keep.add_argument("--snapshot-in-use-days", type=int, default=DEFAULT_SNAPSHOT_IN_USE_DAYS)
    sub.add_parser("audit", help="print the audit table")
    args = parser.parse_args(argv)

    if args.command == "audit":
        audit = audit_frame()
        if audit.is_empty():
            print("no erasure has run yet")
        # One block per request, a field a line: the table has more columns than a terminal.
        for request in audit.iter_rows(named=True):
            print(request.pop("request_id"))
            print_fields(request)
        return 0
    settings = resolve_settings()
    if args.command == "subject":
        if args.pseudonym is not None:
            try:
                pseudonym, by = check_pseudonym(args.pseudonym), "pseudonym"
            except ErasureRequestError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
        else:
            ref = sys.stdin.readline().strip() if args.subject_ref == "-" else args.subject_ref
            pseudonym = pseudonymise(settings.pseudonym_key, pl.Series([ref]))[0]
            by = "subject_ref"
        body, request_id = subject_request(pseudonym, by), new_request_id("erasure")
    else:
        body = retention_request(args.max_age_days, args.snapshot_in_use_days)
        request_id = new_request_id("retention")
    started, instance = time.perf_counter(), dg.DagsterInstance.get()
    # The partition first: erasure_request_sensor runs only requests that have none yet, so the
    # daemon never runs this one a second time.
    instance.add_dynamic_partitions(ERASURE_REQUESTS, [request_id])
    file_request(blob_store(settings.lake_url), request_id, body)
    print(f"filed request {request_id}")
    ok = run_request(request_id, instance)
    if not ok:
        print(f"request {request_id} failed; it stays filed: run its partition again from the UI")
        return 1
    print(f"erased in {time.perf_counter() - started:.1f}s")
    row = audit_frame().filter(pl.col("request_id") == request_id)
    print_fields(row.drop("request_id").row(0, named=True))
    for name, counts in removed_by_table(instance, request_id).items():
        print(f"  {name.removesuffix('_by_table').replace('_', ' ')} by table:")
        for table, rows in counts.items():
            print(f"    {table:<40} {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
