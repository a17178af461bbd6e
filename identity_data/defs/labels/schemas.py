"""Pandera contracts of the label tables; the warehouse derives its DDL from these models.

Only plain dtypes (String, Int64, Float64, Boolean, Datetime UTC) so every table maps 1:1 to
DuckDB and BigQuery columns. The annotator confusion matrix is a JSON string (DuckDB VARCHAR /
BigQuery STRING, both queryable with JSON functions); `AnnotatorConfusion` is its long form.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine as pe

from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.sources import SOURCE_NAMES

_UTC = {"time_unit": "us", "time_zone": "UTC"}
_TASKS = list(TAXONOMY)
_ALL_LABELS = sorted({label for labels in TAXONOMY.values() for label in labels})


class ParsedAnnotations(pa.DataFrameModel):
    """One row per accepted (annotation x result item) of one export file."""

    export_id: str
    source_file: str
    task_position: pl.Int64 = pa.Field(ge=0)
    capture_id: str
    annotation_id: str
    annotator: str
    task: str = pa.Field(isin=_TASKS)
    label: str = pa.Field(isin=_ALL_LABELS)
    created_at: pe.DateTime = pa.Field(dtype_kwargs=_UTC)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class LabelQuarantine(pa.DataFrameModel):
    """Rows of an export that were not used, each with the reason."""

    export_id: str
    source_file: str
    task_position: pl.Int64 = pa.Field(ge=0)
    capture_id: str = pa.Field(nullable=True)
    annotation_id: str = pa.Field(nullable=True)
    annotator: str = pa.Field(nullable=True)
    task: str = pa.Field(nullable=True)
    label: str = pa.Field(nullable=True)
    reason: str

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True


class ConsensusLabels(pa.DataFrameModel):
    """One label per (capture, task): Dawid-Skene label plus the majority-vote baseline."""

    capture_id: str
    task: str = pa.Field(isin=_TASKS)
    label: str = pa.Field(isin=_ALL_LABELS)
    posterior: pl.Float64 = pa.Field(ge=0.0, le=1.0)
    mv_label: str = pa.Field(isin=_ALL_LABELS)
    n_annotators: pl.Int64 = pa.Field(ge=1)
    agreement: pl.Float64 = pa.Field(gt=0.0, le=1.0)
    taxonomy_version: str

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
        unique = ("capture_id", "task")


class WarehouseLabel(ConsensusLabels):
    """The warehouse's label row: a consensus label tied to its capture's day and source, and
    the export that last fed it."""

    capture_date: pl.Date
    source: str = pa.Field(isin=SOURCE_NAMES)
    export_id: str

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
        unique = ("capture_id", "task")


class AnnotatorQuality(pa.DataFrameModel):
    """Per (annotator, task): estimated accuracy and confusion {true: {given: probability}}."""

    annotator: str
    task: str = pa.Field(isin=_TASKS)
    accuracy: pl.Float64 = pa.Field(ge=0.0, le=1.0)
    n_labels: pl.Int64 = pa.Field(ge=1)
    confusion: str

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
        unique = ("annotator", "task")


class AnnotatorConfusion(pa.DataFrameModel):
    """Long form of the confusion matrix: P(given_label | true_label) per annotator and task."""

    annotator: str
    task: str = pa.Field(isin=_TASKS)
    true_label: str = pa.Field(isin=_ALL_LABELS)
    given_label: str = pa.Field(isin=_ALL_LABELS)
    probability: pl.Float64 = pa.Field(ge=0.0, le=1.0)

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
        unique = ("annotator", "task", "true_label", "given_label")


class AnnotatorDrift(pa.DataFrameModel):
    """Current vs historical estimated accuracy; `drifted` when the drop exceeds the threshold."""

    annotator: str
    task: str = pa.Field(isin=_TASKS)
    accuracy: pl.Float64 = pa.Field(ge=0.0, le=1.0)
    history_accuracy: pl.Float64 = pa.Field(nullable=True, ge=0.0, le=1.0)
    accuracy_drop: pl.Float64 = pa.Field(nullable=True)
    drifted: pl.Boolean

    class Config:  # pyright: ignore[reportIncompatibleVariableOverride] (pandera idiom)
        strict = True
        unique = ("annotator", "task")
