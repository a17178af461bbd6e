"""The warehouse tables: name, columns (from pandera), DATE partitioning and clustering."""

from __future__ import annotations

from identity_data.defs.labels.schemas import AnnotatorQuality, WarehouseLabel
from identity_data.defs.warehouse.schemas import (
    TrainingExample,
    WarehouseAnnotation,
    WarehouseCapture,
)
from identity_data.stores.warehouse import TableSpec, table_spec

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        table_spec("captures", WarehouseCapture, "capture_date", ("source", "capture_type")),
        table_spec("annotations", WarehouseAnnotation, "capture_date", ("source", "decode_status")),
        table_spec("labels", WarehouseLabel, "capture_date", ("source", "task", "label")),
        table_spec("annotator_quality", AnnotatorQuality, None, ("task", "annotator")),
        table_spec(
            "training_examples", TrainingExample, "capture_date", ("source", "split", "attack_type")
        ),
    )
}
