"""Pandera model of a snapshot manifest and the warehouse table that holds every snapshot."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from identity_data.defs.warehouse.schemas import SPLITS
from identity_data.sources import CAPTURE_TYPES, SOURCE_NAMES
from identity_data.stores.warehouse import table_spec

_POSTERIOR = {"nullable": True, "ge": 0.0, "le": 1.0}


class SnapshotManifest(pa.DataFrameModel):
    """One frozen training example: where its blob is, its digest, split, labels, annotations."""

    snapshot_id: str
    capture_id: str = pa.Field(unique=True)
    source: str = pa.Field(isin=SOURCE_NAMES)
    source_partition: str
    capture_date: pl.Date
    capture_type: str = pa.Field(isin=CAPTURE_TYPES)
    subject_pseudonym: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    split: str = pa.Field(isin=SPLITS)
    blob_uri: str
    blob_key: str
    blob_sha256: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    attack_type: str
    attack_type_posterior: pl.Float64 = pa.Field(**_POSTERIOR)
    document_type: str = pa.Field(nullable=True)
    document_type_posterior: pl.Float64 = pa.Field(**_POSTERIOR)
    capture_quality: str = pa.Field(nullable=True)
    capture_quality_posterior: pl.Float64 = pa.Field(**_POSTERIOR)
    face_count: pl.Int64 = pa.Field(ge=0)
    face_score: pl.Float64 = pa.Field(nullable=True)
    face_area_share: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    sharpness: pl.Float64 = pa.Field(nullable=True, ge=0)
    brightness: pl.Float64 = pa.Field(nullable=True, ge=0)
    near_duplicate_cluster: str = pa.Field(nullable=True)

    @pa.dataframe_check
    def subjects_stay_in_one_split(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("split").n_unique().over("subject_pseudonym") == 1)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


SNAPSHOT_TABLE = table_spec(
    "snapshot_examples", SnapshotManifest, "capture_date", ("snapshot_id", "split", "attack_type")
)
