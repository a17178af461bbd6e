"""Pandera models of the raw zone: one manifest schema for every capture source."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from identity_data.sources import CAPTURE_TYPES, SOURCE_NAMES


class SourcePartitioned(pa.DataFrameModel):
    """Columns that tie a row to the raw partition it came from."""

    capture_id: str
    source: str = pa.Field(isin=SOURCE_NAMES)
    source_partition: str
    capture_date: pl.Date


class Capture(SourcePartitioned):
    """A capture wherever a table lists one: pseudonymous subject, type, blob location."""

    capture_id: str = pa.Field(unique=True)
    subject_pseudonym: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    capture_type: str = pa.Field(isin=CAPTURE_TYPES)
    device: str = pa.Field(nullable=True)
    captured_at: pl.Datetime(time_zone="UTC")  # pyright: ignore[reportInvalidTypeForm] (pandera dtype)
    blob_uri: str
    sha256: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    bytes: pl.Int64 = pa.Field(gt=0)
    width: pl.Int64 = pa.Field(gt=0)
    height: pl.Int64 = pa.Field(gt=0)
    source_label: str = pa.Field(nullable=True)


class CaptureManifest(Capture):
    """One decodable capture whose blob sits, content-addressed, in the raw zone."""

    blob_key: str
    decode_status: str = pa.Field(isin=["ok"])

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class RawQuarantine(pa.DataFrameModel):
    """A source record that did not enter the manifest, with the field at fault and why."""

    source: str = pa.Field(isin=SOURCE_NAMES)
    source_partition: str
    record: str
    capture_id: str = pa.Field(nullable=True)
    field: str
    reason: str
    blob_uri: str = pa.Field(nullable=True)
    # How the blob decoded (missing, empty, corrupt, ...); null when the record failed first.
    decode_status: str = pa.Field(nullable=True)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
