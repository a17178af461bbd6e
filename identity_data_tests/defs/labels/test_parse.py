import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.defs.labels.parse import (
    LabelExportError,
    parse_flat_csv,
    parse_label_studio,
    pool_latest,
)
from identity_data.defs.labels.schemas import LabelQuarantine, ParsedAnnotations
from identity_data.sample.crowd import write_label_studio_export
from identity_data.validation import polars_schema


def _result(task: str, *choices: str, kind: str = "choices") -> dict:
    return {
        "from_name": task,
        "to_name": "image",
        "type": kind,
        "value": {"choices": list(choices)},
    }


def _annotation(ann_id: int, annotator: int, *result: dict, at: str = "2026-11-28T10:00:00Z"):
    return {"id": ann_id, "completed_by": annotator, "created_at": at, "result": list(result)}


def _task(capture_id: str | None, *annotations: dict) -> dict:
    data = {"image": "raw/captures/ab/ab12.jpg"}
    if capture_id is not None:
        data["capture_id"] = capture_id
    return {"id": 1, "data": data, "annotations": list(annotations)}


def _parse(tasks: list, prefix: bytes = b"") -> tuple[pl.DataFrame, pl.DataFrame]:
    payload = prefix + json.dumps(tasks).encode()
    return parse_label_studio(io.BytesIO(payload), "exp-1", "batch.json")


def _rows_in(tasks: list) -> int:
    """Independent count of accounting rows: annotation x result item (empty result = 1)."""
    return sum(max(1, len(a["result"])) for t in tasks for a in t["annotations"])


MESSY = [
    _task(
        "cap-1",
        _annotation(1, 3, _result("attack_type", "print"), _result("capture_quality", "ok")),
        _annotation(2, 4, _result("attack_type", "genuine"), _result("liveness", "yes")),
    ),
    _task(None, _annotation(3, 3, _result("attack_type", "mask"))),
    _task(
        "cap-2",
        _annotation(4, 3, _result("attack_type", "selfie")),
        _annotation(5, 4, _result("attack_type")),
        _annotation(1, 3, _result("attack_type", "replay"), _result("document_type", "none")),
        _annotation(6, 5, _result("document_type", "td1_card", "none")),
        _annotation(7, 5, _result("document_type", "none"), at="2026-11-28T10:00:00"),
        _annotation(8, 6, _result("document_type", "none"), _result("document_type", "td1_card")),
        _annotation(9, 6),
    ),
]


def test_quarantine_reasons_and_row_accounting() -> None:
    annotations, quarantine = _parse(MESSY)
    ParsedAnnotations.validate(annotations)
    LabelQuarantine.validate(quarantine)
    # The models' columns in the models' order: the lake files are laid out as the tables are.
    assert annotations.schema == polars_schema(ParsedAnnotations)
    assert quarantine.schema == polars_schema(LabelQuarantine)
    assert annotations.height + quarantine.height == _rows_in(MESSY) == 14
    kept = annotations.select("capture_id", "annotation_id", "task", "label").rows()
    assert kept == [
        ("cap-1", "1", "attack_type", "print"),
        ("cap-1", "1", "capture_quality", "ok"),
        ("cap-1", "2", "attack_type", "genuine"),
        ("cap-2", "8", "document_type", "none"),
    ]
    reasons = quarantine.select("task_position", "annotation_id", "reason").rows()
    assert reasons == [
        (0, "2", "unknown_task"),
        (1, "3", "missing_field:capture_id"),
        (2, "4", "unknown_label"),
        (2, "5", "empty_choices"),
        # The first annotation with id 1 (task 0) wins; both rows of the later copy go.
        (2, "1", "duplicate_annotation_id"),
        (2, "1", "duplicate_annotation_id"),
        (2, "6", "multiple_choices"),
        (2, "7", "invalid_created_at"),
        (2, "8", "duplicate_task_in_annotation"),
        (2, "9", "empty_result"),
    ]
    assert (
        quarantine.filter(pl.col("reason") == "missing_field:capture_id")["capture_id"]
        .is_null()
        .all()
    )


def test_annotation_fields_are_typed_and_utc() -> None:
    tasks = [
        _task(
            "cap-9",
            _annotation(
                77, 12, _result("attack_type", "mask"), at="2026-11-28T12:30:00.250000+02:00"
            ),
        )
    ]
    annotations, quarantine = _parse(tasks)
    expected = pl.DataFrame(
        {
            "export_id": ["exp-1"],
            "source_file": ["batch.json"],
            "task_position": [0],
            "capture_id": ["cap-9"],
            "annotation_id": ["77"],
            "annotator": ["12"],
            "task": ["attack_type"],
            "label": ["mask"],
            "created_at": [datetime(2026, 11, 28, 10, 30, 0, 250000, tzinfo=UTC)],
        },
        schema_overrides={"created_at": pl.Datetime("us", "UTC")},
    )
    assert_frame_equal(annotations, expected)
    assert quarantine.is_empty()


def test_annotator_object_keeps_only_its_id() -> None:
    ann = _annotation(5, 0, _result("attack_type", "genuine"))
    ann["completed_by"] = {"id": 42, "email": "someone@example.com"}
    annotations, _ = _parse([_task("cap-1", ann)])
    assert annotations["annotator"].to_list() == ["42"]


def test_bom_and_path_source_give_the_same_frames(tmp_path: Path) -> None:
    plain = _parse(MESSY)
    path = tmp_path / "batch.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(MESSY, indent=2).encode())
    from_path = parse_label_studio(path, "exp-1", "batch.json")
    assert_frame_equal(from_path[0], plain[0])
    assert_frame_equal(from_path[1], plain[1])


@pytest.mark.parametrize("payload", [b"[]", b"  \n[ ]\n", b"\xef\xbb\xbf[]"])
def test_empty_export_gives_empty_frames(payload: bytes) -> None:
    annotations, quarantine = parse_label_studio(io.BytesIO(payload), "e", "empty.json")
    assert annotations.is_empty() and quarantine.is_empty()
    ParsedAnnotations.validate(annotations)
    LabelQuarantine.validate(quarantine)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b'{"id": 1}', "byte offset 0"),
        (b'"tasks"', "byte offset 0"),
        (b'\xef\xbb\xbf \n {"id": 1}', "byte offset 6"),
        (b'[{"data": {}, "annotations": []}, {"data": {', "task 1"),
        (b'[{"data": {}, "annotations": []} {"data": {}}]', "task 1"),
        (b"[{}] trailing", "task 1"),
        (b"", "zero bytes"),
        (b"\xef\xbb\xbf", "white space"),
        (b" \n\t ", "white space"),
    ],
)
def test_malformed_export_names_file_and_position(payload: bytes, where: str) -> None:
    with pytest.raises(LabelExportError, match=rf"^bad\.json: .*{where}"):
        parse_label_studio(io.BytesIO(payload), "e", "bad.json")


CSV_HEADER = "capture_id,annotator,task,label,labeled_at\n"


def test_flat_csv_same_rules_with_line_numbers() -> None:
    body = (
        "cap-1,a1,attack_type,print,2026-11-28T10:00:00Z\n"
        "cap-1,a2,attack_type,genuine,2026-11-28T10:05:00Z\n"
        "cap-2,,attack_type,print,2026-11-28T10:00:00Z\n"
        "cap-3,a1,liveness,yes,2026-11-28T10:00:00Z\n"
        "cap-3,a1,attack_type,bogus,2026-11-28T10:00:00Z\n"
        "cap-1,a1,attack_type,mask,2026-11-28T11:00:00Z\n"
        "cap-4,a1,document_type,none,\n"
        ",a1,document_type,none,2026-11-28T10:00:00Z\n"
    )
    annotations, quarantine = parse_flat_csv(
        io.BytesIO(("\ufeff" + CSV_HEADER + body).encode()), "exp-2", "flat.csv"
    )
    ParsedAnnotations.validate(annotations)
    LabelQuarantine.validate(quarantine)
    assert annotations.height + quarantine.height == body.count("\n")
    assert annotations.select("task_position", "annotator", "label").rows() == [
        (2, "a1", "print"),
        (3, "a2", "genuine"),
    ]
    assert quarantine.select("task_position", "reason").rows() == [
        (4, "missing_field:annotator"),
        (5, "unknown_task"),
        (6, "unknown_label"),
        (7, "duplicate_annotation"),
        (8, "missing_field:labeled_at"),
        (9, "missing_field:capture_id"),
    ]


def test_flat_csv_open_quote_quarantines_only_its_line() -> None:
    """The csv module merged every line up to the next quote into one record, so the lines
    between vanished inside it; each physical line is now one row."""
    probe = "probe.person@example.org"
    body = (
        "cap-1,a1,attack_type,print,2026-11-28T10:00:00Z\n"
        f'cap-2,"{probe},attack_type,print,2026-11-28T10:00:00Z\n'
        "cap-3,a1,attack_type,print,2026-11-28T10:00:00Z\n"
        'cap-4,a1",attack_type,print,2026-11-28T10:00:00Z\n'
        f'cap-5,a1,attack_type,"print"{probe},2026-11-28T10:00:00Z\n'
        "cap-6,a1,attack_type,print,2026-11-28T10:00:00Z\n"
    )
    annotations, quarantine = parse_flat_csv(
        io.BytesIO((CSV_HEADER + body).encode()), "exp-3", "flat.csv"
    )
    assert annotations.height + quarantine.height == body.count("\n")
    assert annotations["capture_id"].to_list() == ["cap-1", "cap-3", "cap-6"]
    assert quarantine.select("task_position", "capture_id", "reason").rows() == [
        (3, None, "unterminated_quote:annotator"),
        (5, "cap-4", "malformed_annotator"),
        (6, None, "malformed_quote:label"),
    ]
    assert probe not in quarantine.write_csv()


def test_flat_csv_missing_column_is_an_error() -> None:
    with pytest.raises(LabelExportError, match=r"^flat\.csv: line 1: .*labeled_at"):
        parse_flat_csv(io.BytesIO(b"capture_id,annotator,task,label\n"), "e", "flat.csv")


def test_flat_csv_header_only_gives_empty_frames() -> None:
    annotations, quarantine = parse_flat_csv(io.BytesIO(CSV_HEADER.encode()), "e", "flat.csv")
    assert annotations.is_empty() and quarantine.is_empty()


def test_flat_csv_zero_bytes_is_an_error() -> None:
    with pytest.raises(LabelExportError, match=r"^flat\.csv: zero bytes"):
        parse_flat_csv(io.BytesIO(b""), "e", "flat.csv")


def _pooled_input() -> pl.DataFrame:
    rows = [
        # same instant in two exports: the later export id wins
        ("exp-a", "9", "cap-1", "a1", "attack_type", "print", "2026-11-28T10:00:00Z"),
        ("exp-b", "3", "cap-1", "a1", "attack_type", "mask", "2026-11-28T10:00:00Z"),
        # later created_at wins even from an older export
        ("exp-a", "10", "cap-2", "a1", "attack_type", "replay", "2026-11-29T10:00:00Z"),
        ("exp-b", "11", "cap-2", "a1", "attack_type", "genuine", "2026-11-28T10:00:00Z"),
        # same instant, same export: the numerically larger annotation id wins (10 > 9)
        ("exp-a", "9", "cap-3", "a2", "attack_type", "print", "2026-11-28T10:00:00Z"),
        ("exp-a", "10", "cap-3", "a2", "attack_type", "mask", "2026-11-28T10:00:00Z"),
        # other annotator / task are separate keys
        ("exp-a", "12", "cap-3", "a2", "capture_quality", "ok", "2026-11-28T10:00:00Z"),
    ]
    frame = pl.DataFrame(
        rows,
        schema=["export_id", "annotation_id", "capture_id", "annotator", "task", "label", "at"],
        orient="row",
    )
    return frame.select(
        "export_id",
        pl.lit("f.json").alias("source_file"),
        pl.lit(0, pl.Int64).alias("task_position"),
        "capture_id",
        "annotation_id",
        "annotator",
        "task",
        "label",
        pl.col("at").str.to_datetime(time_unit="us", time_zone="UTC").alias("created_at"),
    )


def test_pool_latest_picks_latest_then_breaks_ties() -> None:
    frame = _pooled_input()
    pooled = pool_latest(frame.lazy())
    ParsedAnnotations.validate(pooled)
    assert pooled.select("capture_id", "annotator", "task", "label").rows() == [
        ("cap-1", "a1", "attack_type", "mask"),
        ("cap-2", "a1", "attack_type", "replay"),
        ("cap-3", "a2", "attack_type", "mask"),
        ("cap-3", "a2", "capture_quality", "ok"),
    ]
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    assert_frame_equal(pool_latest(shuffled), pooled)


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) forking pytest process.
PEAK_RSS_SCRIPT = """
import sys
from pathlib import Path
from identity_data.defs.labels.parse import parse_label_studio
annotations, quarantine = parse_label_studio(sys.argv[1], "big", "big.json")
peak_kib = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
print(annotations.height + quarantine.height, peak_kib)
"""


@pytest.mark.slow
def test_200mb_export_parses_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    rows = write_label_studio_export(path, 200 * 1024 * 1024)
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    parsed_rows, peak_kib = map(int, out.stdout.split())
    assert parsed_rows == rows
    # Measured ~300 MiB for ~840k rows (interpreter + polars + raw and output frames); json.load
    # of the same file peaks at ~1.5 GiB (python -m benchmarks.consensus --parse-mb 200).
    assert peak_kib * 1024 < 2 * path.stat().st_size, peak_kib


def test_cancelled_annotation_and_non_string_label_are_quarantined() -> None:
    cancelled = _annotation(1, 3, _result("attack_type", "print"))
    cancelled["was_cancelled"] = True
    numeric = _annotation(
        2, 4, {"from_name": "attack_type", "type": "choices", "value": {"choices": [1]}}
    )
    annotations, quarantine = _parse([_task("cap-1", cancelled, numeric)])
    assert annotations.is_empty()
    assert quarantine["reason"].to_list() == ["cancelled_annotation", "unknown_label"]
