"""Pandera models of the warehouse tables; BigQuery and DuckDB schemas derive from these."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from identity_data.defs.annotations.schemas import AnnotationRows
from identity_data.defs.raw.schemas import Capture, SourcePartitioned
from identity_data.sources import CAPTURE_TYPES, SOURCE_NAMES

SPLITS = ("train", "validation", "test")


class WarehouseCapture(Capture):
    """A capture as ML users query it: the manifest's row without its raw-zone bookkeeping."""

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class TrainingExample(SourcePartitioned):
    """One usable capture with its trusted labels and inferred annotations."""

    capture_id: str = pa.Field(unique=True)
    subject_pseudonym: str
    capture_type: str = pa.Field(isin=CAPTURE_TYPES)
    blob_uri: str
    split: str = pa.Field(isin=SPLITS)
    attack_type: str = pa.Field(nullable=True)
    attack_type_posterior: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    document_type: str = pa.Field(nullable=True)
    document_type_posterior: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    capture_quality: str = pa.Field(nullable=True)
    capture_quality_posterior: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    face_count: pl.Int64 = pa.Field(ge=0)
    face_score: pl.Float64 = pa.Field(nullable=True)
    face_area_share: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    sharpness: pl.Float64 = pa.Field(nullable=True, ge=0)
    brightness: pl.Float64 = pa.Field(nullable=True, ge=0)
    near_duplicate_cluster: str = pa.Field(nullable=True)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class WarehouseAnnotation(AnnotationRows):
    """Inferred annotations of one capture, with the model that produced them."""

    source: str = pa.Field(isin=SOURCE_NAMES)
    source_partition: str
    capture_date: pl.Date

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
