"""Pandera contracts of the annotation tables.

Plain dtypes only (String, Int64, Float64, Boolean), so they map 1:1 to warehouse columns.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from identity_data.imaging import DecodeStatus

_STATUSES = [s.value for s in DecodeStatus]
_SHARE = {"ge": 0.0, "le": 1.0, "nullable": True}


class AnnotationRows(pa.DataFrameModel):
    """One row per capture: decode outcome, largest face, quality metrics, pHash, model."""

    capture_id: str = pa.Field(unique=True)
    decode_status: str = pa.Field(isin=_STATUSES)
    decode_reason: str = pa.Field(nullable=True)
    width: pl.Int64 = pa.Field(gt=0, nullable=True)
    height: pl.Int64 = pa.Field(gt=0, nullable=True)
    face_count: pl.Int64 = pa.Field(ge=0, nullable=True)
    face_x: pl.Int64 = pa.Field(ge=0, nullable=True)
    face_y: pl.Int64 = pa.Field(ge=0, nullable=True)
    face_w: pl.Int64 = pa.Field(gt=0, nullable=True)
    face_h: pl.Int64 = pa.Field(gt=0, nullable=True)
    face_score: pl.Float64 = pa.Field(**_SHARE)
    face_area_share: pl.Float64 = pa.Field(**_SHARE)
    landmark_count: pl.Int64 = pa.Field(ge=0, nullable=True)
    landmark_left_eye_x: pl.Float64 = pa.Field(nullable=True)
    landmark_left_eye_y: pl.Float64 = pa.Field(nullable=True)
    landmark_right_eye_x: pl.Float64 = pa.Field(nullable=True)
    landmark_right_eye_y: pl.Float64 = pa.Field(nullable=True)
    landmark_nose_x: pl.Float64 = pa.Field(nullable=True)
    landmark_nose_y: pl.Float64 = pa.Field(nullable=True)
    landmark_mouth_left_x: pl.Float64 = pa.Field(nullable=True)
    landmark_mouth_left_y: pl.Float64 = pa.Field(nullable=True)
    landmark_mouth_right_x: pl.Float64 = pa.Field(nullable=True)
    landmark_mouth_right_y: pl.Float64 = pa.Field(nullable=True)
    sharpness: pl.Float64 = pa.Field(ge=0.0, nullable=True)
    face_sharpness: pl.Float64 = pa.Field(ge=0.0, nullable=True)
    brightness: pl.Float64 = pa.Field(ge=0.0, le=255.0, nullable=True)
    highlight_clip: pl.Float64 = pa.Field(**_SHARE)
    shadow_clip: pl.Float64 = pa.Field(**_SHARE)
    phash: str = pa.Field(str_matches=r"^[0-9a-f]{16}$", nullable=True)
    phash_crop3: str = pa.Field(str_matches=r"^[0-9a-f]{16}$", nullable=True)
    phash_crop6: str = pa.Field(str_matches=r"^[0-9a-f]{16}$", nullable=True)
    model_name: str
    model_version: str
    model_weights_sha256: str = pa.Field(str_matches=r"^[0-9a-f]{64}$")

    @pa.dataframe_check
    def ok_rows_are_measured(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A decoded image always has a size, a pHash and a face count; a failure has a reason."""
        ok = pl.col("decode_status") == "ok"
        return data.lazyframe.select(
            pl.when(ok)
            .then(
                pl.all_horizontal(
                    pl.col("phash", "phash_crop6", "width", "face_count").is_not_null()
                )
            )
            .otherwise(pl.col("decode_reason").is_not_null())
        )

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class NearDuplicates(pa.DataFrameModel):
    """One row per capture with a pHash: its near-duplicate cluster across the whole lake."""

    capture_id: str = pa.Field(unique=True)
    cluster_id: str
    is_representative: bool
    nearest_distance: pl.Int64 = pa.Field(ge=0, le=64, nullable=True)

    @pa.dataframe_check
    def one_representative_per_cluster(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("is_representative").sum().over("cluster_id") == 1)
            & (pl.col("is_representative") == (pl.col("capture_id") == pl.col("cluster_id")))
        )

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class PartitionedAnnotations(AnnotationRows):
    """Annotation rows as the lake stores them, tagged with the raw partition they annotate."""

    source_partition: str

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
