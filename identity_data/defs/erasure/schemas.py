"""Pandera models of the erasure audit tables: counts and hashes, never a reference or id."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

SCOPES = ("subject", "retention")
REQUESTED_BY = ("subject_ref", "pseudonym", "retention_policy")


class ErasureAudit(pa.DataFrameModel):
    """One executed request: when, what kind, and how many rows each store lost."""

    request_id: str = pa.Field(unique=True)
    requested_at: pl.Datetime(time_zone="UTC")  # pyright: ignore[reportInvalidTypeForm] (pandera dtype)
    executed_at: pl.Datetime(time_zone="UTC")  # pyright: ignore[reportInvalidTypeForm] (pandera dtype)
    scope: str = pa.Field(isin=SCOPES)
    requested_by: str = pa.Field(isin=REQUESTED_BY)
    subjects: pl.Int64 = pa.Field(ge=0)
    captures: pl.Int64 = pa.Field(ge=0)
    tombstones_added: pl.Int64 = pa.Field(ge=0)
    lake_rows: pl.Int64 = pa.Field(ge=0)
    blobs_deleted: pl.Int64 = pa.Field(ge=0)
    blobs_kept_shared: pl.Int64 = pa.Field(ge=0)
    warehouse_rows: pl.Int64 = pa.Field(ge=0)
    snapshot_rows: pl.Int64 = pa.Field(ge=0)
    snapshots_redacted: pl.Int64 = pa.Field(ge=0)
    passes: pl.Int64 = pa.Field(ge=1)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class SnapshotRedaction(pa.DataFrameModel):
    """A snapshot version replaced by its redacted successor, with both manifest hashes."""

    request_id: str
    snapshot_id: str
    old_version: pl.Int64 = pa.Field(ge=1)
    new_version: pl.Int64 = pa.Field(ge=2)
    old_manifest_sha256: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    new_manifest_sha256: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    rows_removed: pl.Int64 = pa.Field(ge=1)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
