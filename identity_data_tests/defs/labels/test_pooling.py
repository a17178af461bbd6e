"""Consensus assembly as a pure function: supersede, pool, match, aggregate, place."""

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.labels.pooling import CAPTURE_COLUMNS, assemble_consensus, known_captures
from identity_data.defs.labels.schemas import ParsedAnnotations, WarehouseLabel
from identity_data.validation import conform


def annotation(export_id: str, capture_id: str, annotator: str, label: str, minute: int) -> dict:
    return {
        "export_id": export_id,
        "source_file": "batch.json",
        "task_position": 0,
        "capture_id": capture_id,
        "annotation_id": f"{export_id}-{capture_id}-{annotator}",
        "annotator": annotator,
        "task": "attack_type",
        "label": label,
        "created_at": datetime(2026, 11, 28, 12, minute, tzinfo=UTC),
    }


CAPTURES = pl.DataFrame(
    {
        "capture_id": ["cap-1", "cap-2"],
        "capture_date": [date(2026, 11, 27), date(2026, 11, 28)],
        "source": ["production", "campaign"],
        "source_partition": ["2026-11-27", "c1"],
    }
)


def test_a_reupload_supersedes_its_earlier_version_and_unknown_captures_stay_out():
    rows = [
        # The first upload of batch.json, then its corrected re-upload (a later partition).
        annotation("batch.json@old", "cap-1", "ann-a", "print", 0),
        annotation("batch.json@old", "cap-1", "ann-b", "print", 1),
        annotation("batch.json@new", "cap-1", "ann-a", "genuine", 2),
        annotation("batch.json@new", "cap-1", "ann-b", "genuine", 3),
        annotation("batch.json@new", "cap-2", "ann-a", "replay", 4),
        annotation("batch.json@new", "cap-9", "ann-a", "mask", 5),
    ]
    annotations = conform(pl.DataFrame(rows), ParsedAnnotations)

    result = assemble_consensus(annotations, ["batch.json@old", "batch.json@new"], CAPTURES)

    assert result.superseded_rows == 2
    assert result.pooled_rows == 4
    assert result.unmatched["capture_id"].to_list() == ["cap-9"]
    assert_frame_equal(
        result.labels.select("capture_id", "label", "source", "capture_date", "export_id").sort(
            "capture_id"
        ),
        pl.DataFrame(
            {
                "capture_id": ["cap-1", "cap-2"],
                "label": ["genuine", "replay"],
                "source": ["production", "campaign"],
                "capture_date": [date(2026, 11, 27), date(2026, 11, 28)],
                "export_id": ["batch.json@new", "batch.json@new"],
            }
        ),
    )
    assert result.labels.columns == list(WarehouseLabel.to_schema().columns)
    assert set(result.quality["annotator"]) == {"ann-a", "ann-b"}


def test_no_export_yet_gives_empty_tables_of_the_right_shape():
    result = assemble_consensus(pl.DataFrame(), [], CAPTURES)
    assert result.labels.height == 0 and result.unmatched.height == 0
    assert result.labels.columns == list(WarehouseLabel.to_schema().columns)


def test_known_captures_skips_sources_never_materialized():
    frame = known_captures([CAPTURES.with_columns(extra=pl.lit(1)), pl.DataFrame()])
    assert_frame_equal(frame, CAPTURES.select(CAPTURE_COLUMNS))
