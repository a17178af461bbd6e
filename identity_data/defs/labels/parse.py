"""Parse label exports (Label Studio JSON, flat CSV) into annotations plus a quarantine.

Accounting unit ("row"): one (annotation x result item) of a Label Studio export, where an
annotation with an empty `result` counts as one row; one physical data line of a flat CSV export
(read by `csv_lines`: a quote left open spoils its own line, not the lines after it). Every row
ends up in exactly one of the two returned frames, so rows in = annotations + quarantine.

Structural damage (malformed JSON, a top level that is not a list, a CSV without the required
header, zero bytes, a limit of `bounds` broken) raises `LabelExportError`, naming file and position
but never quoting content; anything wrong inside one task or annotation, a wrong type included,
goes to the quarantine with a reason code and the rest of the file is kept. Quarantine rows copy
only values that passed their grammar (ids, known tasks and labels), never free text.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import ijson
import polars as pl

from identity_data.csv_lines import FAULT_TEXT, Line, read_lines
from identity_data.defs.labels import bounds
from identity_data.defs.labels.bounds import ExportLimitError, JsonGuard, line_limited
from identity_data.defs.labels.taxonomy import TAXONOMY, taxonomy_frame
from identity_data.safety import ID_PATTERN

Source = BinaryIO | str | os.PathLike[str]

# Rows are turned into a polars frame every _CHUNK_ROWS so Python objects never pile up for a
# whole export; only the compact columnar frame grows with the file.
_CHUNK_ROWS = 50_000
_PEEK_BYTES = 1 << 16
_BOM = b"\xef\xbb\xbf"
_CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"  # ISO 8601 with `Z` or `+hh:mm`; naive is invalid
CSV_COLUMNS = ("capture_id", "annotator", "task", "label", "labeled_at")

# What one row of a file gives, named as the tables of labels/schemas.py name it. The outputs
# are these columns after the export's export_id and source_file, with the parsed `created_at`
# (annotations) or the `reason` (quarantine); their pandera models check them. This module
# imports no pandera model to derive them: pandera and pandas alone would add ~130 MiB to the
# process that streams a 200 MB export in ~300 MiB.
_ROW_COLUMNS = ("task_position", "capture_id", "annotation_id", "annotator", "task", "label")
# One row per accounting row, before validation: the row's columns, `created_at` as the file
# wrote it, and `ann_issue` / `item_issue` / `late_issue`, problems found while streaming;
# `late_issue` ranks after every vectorised rule.
_RAW_SCHEMA: dict[str, pl.DataType] = {
    "task_position": pl.Int64(),
    **{c: pl.String() for c in _ROW_COLUMNS[1:]},
    "created_at": pl.String(),
    "ann_issue": pl.String(),
    "item_issue": pl.String(),
    "late_issue": pl.String(),
}


class LabelExportError(ValueError):
    """A label export that cannot be read at all; the message names the file and position."""


@contextmanager
def _binary(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            yield fh
    else:
        yield source


class _Replay:
    """`head` (already peeked) followed by the rest of `rest`; counts bytes handed out, and
    checks each chunk against the limits before the parser sees it."""

    def __init__(self, head: bytes, rest: BinaryIO, guard: JsonGuard) -> None:
        self._head = head
        self._rest = rest
        self._guard = guard
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        # ijson probes with read(0) for bytes-vs-str; a short read is fine, b"" means EOF.
        if size == 0:
            return b""
        if self._head:
            out, self._head = self._head, b""
        else:
            out = self._rest.read(size)
        self._guard.check(out)
        self.consumed += len(out)
        return out


def _scalar_id(value: object) -> str | None:
    """Ids arrive as int or str; anything else (or blank) counts as missing."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _annotator(completed_by: object) -> str | None:
    # Older Label Studio versions export the user object; keep only its numeric id, never e-mail.
    if isinstance(completed_by, dict):
        return _scalar_id(completed_by.get("id"))
    return _scalar_id(completed_by)


def _result_rows(result: list[object]) -> Iterator[tuple[str | None, ...]]:
    """(task, label, item_issue) per result item."""
    for item in result:
        if not isinstance(item, dict):
            yield None, None, "result_item_not_object"
            continue
        task = item.get("from_name") if isinstance(item.get("from_name"), str) else None
        value = item.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if item.get("type") != "choices":
            yield task, None, "unsupported_result_type"
        elif not isinstance(choices, list) or not choices:
            yield task, None, "empty_choices"
        elif len(choices) > 1:
            yield task, None, "multiple_choices"
        else:
            yield task, choices[0] if isinstance(choices[0], str) else None, None


def _type_error(head: tuple, issue: str) -> tuple:
    """One quarantine row for a task or annotation whose structure has the wrong type."""
    return (*head, None, None, None, issue, None, None)


def _task_rows(task_obj: object, position: int, seen_ids: set[str]) -> Iterator[tuple]:
    """Raw rows of one task. `seen_ids` carries annotation ids across the file: first one wins.

    A value of the wrong type quarantines the smallest unit holding it: the task, when the task
    or its `annotations` is not what Label Studio writes; else the annotation or result item.
    """
    if not isinstance(task_obj, dict):
        yield _type_error((position, None, None, None), "task_not_object")
        return
    data = task_obj.get("data")
    capture_id = _scalar_id(data.get("capture_id")) if isinstance(data, dict) else None
    annotations = task_obj.get("annotations") or []
    if not isinstance(annotations, list):
        yield _type_error((position, capture_id, None, None), "annotations_not_list")
        return
    for ann in annotations:
        if not isinstance(ann, dict):
            yield _type_error((position, capture_id, None, None), "annotation_not_object")
            continue
        result = ann.get("result") or []
        annotation_id = _scalar_id(ann.get("id"))
        head = (position, capture_id, annotation_id, _annotator(ann.get("completed_by")))
        if not isinstance(result, list):
            yield _type_error(head, "result_not_list")
            continue
        created_at = ann.get("created_at") if isinstance(ann.get("created_at"), str) else None
        ann_issue = "cancelled_annotation" if ann.get("was_cancelled") else None
        if annotation_id in seen_ids:
            ann_issue = "duplicate_annotation_id"
        elif annotation_id is not None:
            seen_ids.add(annotation_id)
        if not result:
            yield (*head, None, None, created_at, ann_issue or "empty_result", None, None)
        # Two usable results for one task inside one annotation contradict; the first is kept.
        answered: set[str | None] = set()
        for task, label, item_issue in _result_rows(result):
            if item_issue == "result_item_not_object":
                yield _type_error(head, item_issue)
                continue
            usable = item_issue is None and task is not None and label in TAXONOMY.get(task, ())
            late_issue = "duplicate_task_in_annotation" if usable and task in answered else None
            if usable:
                answered.add(task)
            yield (*head, task, label, created_at, ann_issue, item_issue, late_issue)


class _ChunkedFrame:
    """Collects raw rows column-wise and converts them to polars every _CHUNK_ROWS."""

    def __init__(self) -> None:
        self._columns: list[list[object]] = [[] for _ in _RAW_SCHEMA]
        self._frames: list[pl.DataFrame] = []

    def add(self, row: tuple) -> None:
        for column, value in zip(self._columns, row, strict=True):
            column.append(value)
        if len(self._columns[0]) >= _CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._columns[0]:
            data = dict(zip(_RAW_SCHEMA, self._columns, strict=True))
            self._frames.append(pl.DataFrame(data, schema=_RAW_SCHEMA))
            self._columns = [[] for _ in _RAW_SCHEMA]

    def frame(self) -> pl.DataFrame:
        self._flush()
        if not self._frames:
            return pl.DataFrame(schema=_RAW_SCHEMA)
        # No rechunk: the lazy validation reads chunked columns fine and a copy doubles peak RSS.
        return pl.concat(self._frames, rechunk=False)


def parse_label_studio(
    source: Source, export_id: str, source_file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stream a Label Studio JSON export into (annotations, quarantine).

    `task_position` is the 0-based index of the task in the file's top-level list. A duplicate
    annotation id keeps its first occurrence; every row of later copies is quarantined, as is a
    second result for the same task inside one annotation.
    """
    rows = _ChunkedFrame()
    with _binary(source) as fh:
        head = fh.read(_PEEK_BYTES)
        if not head:
            raise LabelExportError(f"{source_file}: zero bytes; an export without labels is []")
        offset = len(head)
        start = head.removeprefix(_BOM).lstrip()
        while not start and head:
            head = fh.read(_PEEK_BYTES)
            offset += len(head)
            start = head.lstrip()
            if offset > bounds.MAX_TOKEN_BYTES:
                break
        if not start:
            raise LabelExportError(f"{source_file}: holds only white space, no JSON list")
        if not start.startswith(b"["):
            raise LabelExportError(
                f"{source_file}: top level is not a JSON list of tasks "
                f"(byte offset {offset - len(start)})"
            )
        guard = JsonGuard(source_file)
        guard.offset = guard.last_boundary = offset - len(start)
        _stream_tasks(_Replay(start, fh, guard), source_file, rows)
    return _validate(rows.frame(), export_id, source_file)


def _stream_tasks(reader: _Replay, source_file: str, rows: _ChunkedFrame) -> None:
    n_tasks = 0
    seen_ids: set[str] = set()
    # Every failure below ends the chain (`from None`): parser messages and their causes quote file
    # content (possibly personal data), and Dagster stores chained causes in full.
    try:
        for task_obj in ijson.items(reader, "item", use_float=True):
            for row in _task_rows(task_obj, n_tasks, seen_ids):
                rows.add(row)
            n_tasks += 1
    except ExportLimitError as exc:
        raise LabelExportError(str(exc)) from None
    except ijson.JSONError:
        raise LabelExportError(
            f"{source_file}: malformed JSON or invalid UTF-8 in or after task {n_tasks} "
            f"(within the first {reader.consumed:,} bytes)"
        ) from None
    except (ValueError, OverflowError, MemoryError, RecursionError) as exc:
        # e.g. an integer beyond Python's digit limit; the class names the failure, not the text.
        raise LabelExportError(
            f"{source_file}: unreadable value in or after task {n_tasks} "
            f"(within the first {reader.consumed:,} bytes): {type(exc).__name__}"
        ) from None


def parse_flat_csv(
    source: Source, export_id: str, source_file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse a flat CSV export `capture_id,annotator,task,label,labeled_at` into the same frames.

    `task_position` is the 1-based line number in the file (header = line 1) and `annotation_id`
    is `line-<n>`. A blank field is quarantined as `missing_field:<name>`. A repeated
    (capture_id, annotator, task) keeps its first valid line; later lines are quarantined as
    `duplicate_annotation`.
    """
    rows = _ChunkedFrame()
    number = 0
    with _binary(source) as raw:
        fh = line_limited(raw, source_file)
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        try:
            lines = read_lines(text)
            header = next(lines, None)
            if header is None:
                raise LabelExportError(f"{source_file}: zero bytes; a CSV export needs its header")
            number = header.number
            if header.fault:
                raise LabelExportError(
                    f"{source_file}: line {number}: header column {(header.column or 0) + 1}: "
                    f"{FAULT_TEXT[header.fault]}"
                )
            missing = [c for c in CSV_COLUMNS if c not in header.fields]
            if missing:
                raise LabelExportError(
                    f"{source_file}: line {number}: header lacks column(s) {', '.join(missing)}"
                )
            for line in lines:
                number = line.number
                rows.add(_csv_row(line, header.fields))
        except ExportLimitError as exc:
            raise LabelExportError(str(exc)) from None
        except UnicodeDecodeError:
            # The decoder's message quotes the bytes at fault; the line suffices.
            raise LabelExportError(f"{source_file}: line {number + 1}: not valid UTF-8") from None
        finally:
            # Leave a caller's stream open: closing the wrappers would close it.
            text.detach()
            fh.detach()
    return _validate(
        rows.frame(), export_id, source_file, unique_key=["capture_id", "annotator", "task"]
    )


def _csv_row(line: Line, header: tuple[str, ...]) -> tuple:
    """A line as a raw row; a line with broken quoting keeps no value, only its reason, naming
    its column if it is one of CSV_COLUMNS (other header text is input)."""
    if line.fault:
        at = line.column or 0
        name = header[at] if at < len(header) else None
        values = dict.fromkeys(CSV_COLUMNS)
        issue = f"{line.fault}:{name if name in CSV_COLUMNS else f'column_{at + 1}'}"
    else:
        record = dict(zip(header, line.fields, strict=False))
        values = {c: (record.get(c) or "").strip() or None for c in CSV_COLUMNS}
        absent = next((c for c in CSV_COLUMNS if values[c] is None), None)
        extra = len(line.fields) > len(header)
        issue = f"missing_field:{absent}" if absent else ("extra_fields" if extra else None)
    return (
        line.number,
        values["capture_id"],
        f"line-{line.number}",
        values["annotator"],
        values["task"],
        values["label"],
        values["labeled_at"],
        issue,
        None,
        None,
    )


def _validate(
    raw: pl.DataFrame,
    export_id: str,
    source_file: str,
    unique_key: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give each raw row the first failing rule as its reason (or none), then split.

    With `unique_key`, only the first row per key among rows passing every other rule is kept;
    later ones are quarantined as `duplicate_annotation`.
    """
    allowed = taxonomy_frame().select(pl.concat_str("task", "label", separator="/"))
    parsed_at = pl.col("created_at").str.to_datetime(
        _CREATED_AT_FORMAT, time_unit="us", time_zone="UTC", strict=False
    )
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("ann_issue").is_not_null(), pl.col("ann_issue")),
        (pl.col("capture_id").is_null(), pl.lit("missing_field:capture_id")),
        (~pl.col("capture_id").str.contains(ID_PATTERN), pl.lit("malformed_capture_id")),
        (pl.col("annotation_id").is_null(), pl.lit("missing_field:annotation_id")),
        (~pl.col("annotation_id").str.contains(ID_PATTERN), pl.lit("malformed_annotation_id")),
        (pl.col("annotator").is_null(), pl.lit("missing_field:annotator")),
        # An annotator given by e-mail or name instead of an id is personal data: not copied.
        (~pl.col("annotator").str.contains(ID_PATTERN), pl.lit("malformed_annotator")),
        (
            ~pl.col("task").is_in(pl.Series(list(TAXONOMY)).implode()).fill_null(False),
            pl.lit("unknown_task"),
        ),
        (pl.col("item_issue").is_not_null(), pl.col("item_issue")),
        (
            ~pl.concat_str("task", "label", separator="/")
            .is_in(allowed.to_series().implode())
            .fill_null(False),
            pl.lit("unknown_label"),
        ),
        (pl.col("created_at").is_null(), pl.lit("missing_field:created_at")),
        (pl.col("parsed_at").is_null(), pl.lit("invalid_created_at")),
        (pl.col("late_issue").is_not_null(), pl.col("late_issue")),
    ]
    reason = pl.when(rules[0][0]).then(rules[0][1])
    for cond, value in rules[1:]:
        reason = reason.when(cond).then(value)
    valid = pl.col("reason").is_null()
    checked = raw.lazy().with_columns(parsed_at.alias("parsed_at"))
    checked = checked.with_columns(reason.otherwise(None).alias("reason"))
    if unique_key:
        first_valid = pl.when(valid).then(pl.col("row")).min().over(unique_key)
        checked = checked.with_row_index("row").with_columns(
            pl.when(valid & (pl.col("row") != first_valid))
            .then(pl.lit("duplicate_annotation"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
    source = [pl.lit(export_id).alias("export_id"), pl.lit(source_file).alias("source_file")]
    annotations, quarantine = pl.collect_all(
        [
            checked.filter(valid)
            .with_columns(pl.col("parsed_at").alias("created_at"))
            .select(*source, *_ROW_COLUMNS, "created_at"),
            checked.filter(~valid).select(*source, *_grammar_only(_ROW_COLUMNS), "reason"),
        ]
    )
    return annotations, quarantine


def _grammar_only(columns: tuple[str, ...]) -> list[pl.Expr]:
    """Quarantine columns with every value that failed its grammar nulled: it may be free text."""
    labels = sorted({label for labels in TAXONOMY.values() for label in labels})
    keep = {
        "capture_id": pl.col("capture_id").str.contains(ID_PATTERN),
        "annotation_id": pl.col("annotation_id").str.contains(ID_PATTERN),
        "annotator": pl.col("annotator").str.contains(ID_PATTERN),
        "task": pl.col("task").is_in(list(TAXONOMY)),
        "label": pl.col("label").is_in(labels),
    }
    return [
        pl.when(keep[c]).then(pl.col(c)).otherwise(None).alias(c) if c in keep else pl.col(c)
        for c in columns
    ]


def pool_latest(frames: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Pool parsed annotations of many exports: one row per (capture_id, annotator, task).

    The latest `created_at` wins. Ties go to the later `export_id` (string order), then the
    larger `annotation_id` (numerically when both are integers, otherwise as strings), then the
    later (source_file, task_position), so the result never depends on input order.
    """
    keys = ["capture_id", "annotator", "task"]
    order = [
        "created_at",
        "export_id",
        pl.col("annotation_id").cast(pl.Int64, strict=False),
        "annotation_id",
        "source_file",
        "task_position",
    ]
    return (
        frames.lazy()
        .sort(order, nulls_last=False)
        .unique(subset=keys, keep="last", maintain_order=True)
        .sort(keys)
        .collect()
    )


def drop_superseded(
    annotations: pl.DataFrame, export_order: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(current, superseded): rows of a file's earlier versions give way to its latest one.

    A re-uploaded export (same file, new content) is a new partition; `export_order` lists
    partitions in the order they were added, so the last one of each `source_file` is the
    version in force. Without this, a corrected re-upload could lose `pool_latest`'s tie-break
    to the version it corrects.
    """
    rank = pl.DataFrame(
        {"export_id": export_order, "_rank": list(range(len(export_order)))},
        schema={"export_id": pl.String, "_rank": pl.Int64},
    )
    ranked = annotations.join(rank, on="export_id", how="left").with_columns(
        _current=pl.col("_rank").fill_null(-1)
        == pl.col("_rank").fill_null(-1).max().over("source_file")
    )
    current = ranked.filter("_current").drop("_rank", "_current")
    superseded = ranked.filter(~pl.col("_current")).drop("_rank", "_current")
    return current, superseded
