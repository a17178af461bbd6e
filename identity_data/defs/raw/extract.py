"""Extraction: source records in, raw-zone manifest and quarantine out.

Every source (capture database, campaign drop folders, open datasets) is reduced to the same
record frame, then `ingest` copies blobs into the raw zone and pseudonymises subjects, so the
three sources share one implementation. Work is per distinct blob, not per record: a day of a
million rows over a few hundred blobs reads, hashes and decodes a few hundred blobs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import PIL
import polars as pl
import sqlalchemy as sa

from identity_data import capture_db
from identity_data.csv_lines import FAULT_TEXT, Line, read_lines
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.imaging import decode
from identity_data.privacy import pseudonymise
from identity_data.safety import ID_PATTERN as CAPTURE_ID
from identity_data.safety import TOKEN_PATTERN, TOKEN_RULE, UnsafePathError, key_fault
from identity_data.sources import CAPTURE_TYPES
from identity_data.stores.blobs import BlobStore, content_key, content_path
from identity_data.stores.content_cache import (
    FINGERPRINT,
    SOURCE_DIGEST_SCHEMA,
    ContentCache,
    SourceDigests,
)
from identity_data.validation import conform, empty_frame

RECORD_SCHEMA = {
    "record": pl.String,
    "capture_id": pl.String,
    "subject_ref": pl.String,
    "capture_type": pl.String,
    "device": pl.String,
    "captured_at": pl.Datetime(time_zone="UTC"),
    "blob_key": pl.String,
    "source_label": pl.String,
}
MANIFEST_COLUMNS = ("capture_id", "subject_ref", "capture_type", "device", "captured_at", "file")
# Columns read from a manifest (`source_label` only open datasets have), and the per-line ones.
MANIFEST_COLUMNS_READ = (*MANIFEST_COLUMNS, "source_label")
_LINE = ("line", "line_field", "line_fault")
# Rows a batch holds: memory is a few times this, whatever the day; per-batch costs (a
# validation, a spill file) are amortised over it.
BATCH_ROWS = 100_000


class ManifestError(ValueError):
    """A manifest that cannot be read at all; names the file, never quotes its content."""


def production_records(engine: sa.Engine, day: date) -> Iterator[pl.DataFrame]:
    """The day's captures, one bound-parameter query, streamed in bounded batches sorted by
    capture id (so a duplicate id is never split from its first occurrence by more than a batch
    boundary, see `_record_faults`)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    c = capture_db.captures.c
    # SQLAlchemy would parse SQLite's timestamp text into datetime objects row by row in Python
    # (a third of a million-row day's CPU); taken as text, polars parses the batch at once.
    # PostgreSQL's driver returns datetimes either way.
    captured_at = sa.type_coerce(c.captured_at, sa.String).label("captured_at")
    query = (
        sa.select(c.capture_id, c.subject_ref, c.capture_type, c.device, captured_at, c.blob_path)
        .where(c.captured_at >= start, c.captured_at < start + timedelta(days=1))
        .order_by(c.capture_id)
    )
    columns = ["capture_id", "subject_ref", "capture_type", "device", "captured_at", "blob_key"]
    seen = 0
    with engine.connect().execution_options(stream_results=True) as con:
        result = con.execute(query)
        while rows := result.fetchmany(BATCH_ROWS):
            frame = pl.DataFrame(rows, schema=columns, orient="row")
            ts = pl.col("captured_at")
            yield (
                frame.with_row_index("row", offset=seen + 1)
                .with_columns(
                    record=_db_record(day, pl.col("capture_id"), pl.col("row")),
                    captured_at=_as_utc(
                        ts.str.to_datetime(time_unit="us")
                        if frame["captured_at"].dtype == pl.String
                        else ts
                    ),
                    source_label=pl.lit(None, pl.String),
                )
                .select(list(RECORD_SCHEMA))
            )
            seen += len(rows)


def _db_record(day: date, capture_id: pl.Expr, row: pl.Expr) -> pl.Expr:
    """`captures:<id>`; an id outside the grammar may be free text (a name, an e-mail), so that
    record is named by its day and position in the day's query (ordered by capture_id)."""
    return (
        pl.when(capture_id.str.contains(CAPTURE_ID))
        .then(pl.lit("captures:") + capture_id)
        .otherwise(pl.lit(f"captures:{day.isoformat()} row ") + row.cast(pl.String))
    )


def _as_utc(expr: pl.Expr) -> pl.Expr:
    """SQLite returns naive UTC datetimes and PostgreSQL aware ones; both become UTC."""
    return expr.dt.replace_time_zone(None).dt.replace_time_zone("UTC")


def manifest_records(store: BlobStore, folder: str) -> pl.DataFrame:
    """A drop folder's manifest.csv, every field kept as text so bad values can be named.

    One record per physical line (`csv_lines`): a line whose quoting is broken or whose field
    count differs from the header's is a record too, carrying only its `line_field` and
    `line_fault`, so the lines after it are neither lost nor merged into it."""
    key = f"{folder}/manifest.csv"
    data = store.read(key)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # The decoder's message quotes the bytes at fault (personal data): the line suffices.
        line = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{key}: line {line}: not valid UTF-8") from None
    lines = read_lines(io.StringIO(text, newline=""))
    header = next(lines, None)
    if header is None:
        raise ManifestError(f"{key}: line 1: empty; a manifest needs its header")
    if header.fault:
        raise ManifestError(
            f"{key}: line {header.number}: header column {(header.column or 0) + 1}: "
            f"{FAULT_TEXT[header.fault]}"
        )
    columns = header.fields
    missing = [c for c in MANIFEST_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{key}: manifest lacks columns {missing}")
    repeated = sorted({c for c in MANIFEST_COLUMNS_READ if columns.count(c) > 1})
    if repeated:
        raise ManifestError(f"{key}: line {header.number}: header repeats columns {repeated}")
    at = {c: columns.index(c) if c in columns else None for c in MANIFEST_COLUMNS_READ}
    values: dict[str, list[str | None]] = {c: [] for c in (*MANIFEST_COLUMNS_READ, *_LINE)}
    for line in lines:
        fault = _line_fault(line, columns)
        for name, i in at.items():
            # An empty field is null, as polars read it; the rules test for null.
            values[name].append(None if fault or i is None else (line.fields[i] or None))
        values["line"].append(str(line.number))
        values["line_field"].append(fault and fault[0])
        values["line_fault"].append(fault and fault[1])
    raw = pl.DataFrame(values, schema=dict.fromkeys(values, pl.String))
    return raw.select(
        record=pl.lit(f"{key}:line ") + pl.col("line"),
        capture_id=pl.col("capture_id").str.strip_chars(),
        subject_ref=pl.col("subject_ref"),
        capture_type=pl.col("capture_type"),
        device=pl.col("device"),
        captured_at=pl.col("captured_at").str.to_datetime(time_zone="UTC", strict=False),
        raw_captured_at=pl.col("captured_at"),
        blob_key=pl.lit(f"{folder}/") + pl.col("file"),
        source_label=pl.col("source_label"),
        line_field=pl.col("line_field"),
        line_fault=pl.col("line_fault"),
    )


def _line_fault(line: Line, columns: tuple[str, ...]) -> tuple[str, str] | None:
    """(field, reason) of a line that cannot be read as a record, or None. A column is named only
    if it is one the manifest defines: any other header text is input, and may be free text."""
    if line.fault:
        at = line.column or 0
        name = columns[at] if at < len(columns) else None
        field = name if name in MANIFEST_COLUMNS_READ else f"column {at + 1}"
        return field, FAULT_TEXT[line.fault]
    if len(line.fields) != len(columns):
        return "row", f"{len(line.fields)} fields where the header has {len(columns)}"
    return None


def _record_faults(records: pl.DataFrame, preceding_id: str | None = None) -> pl.DataFrame:
    """One row per record whose fields are unusable: (_row, record, field, reason).

    `records` carries a `_row` index. A capture id is a duplicate when it occurred earlier in
    the frame or equals `preceding_id`, the last id of the batch before: batches come sorted by
    capture id, so that one id is all the memory a whole day's duplicate detection needs."""
    raw_ts = pl.col("raw_captured_at") if "raw_captured_at" in records.columns else pl.lit(None)
    # A manifest line that could not be read as a record (broken quoting, a ragged row).
    line_fault = pl.col("line_fault") if "line_fault" in records.columns else pl.lit(None)
    line_field = pl.col("line_field") if "line_field" in records.columns else pl.lit(None)
    rules: list[tuple[str | pl.Expr, pl.Expr, str | pl.Expr]] = [
        (line_field, line_fault.is_not_null(), line_fault),
        ("capture_id", pl.col("capture_id").is_null() | (pl.col("capture_id") == ""), "missing"),
        (
            "capture_id",
            ~pl.col("capture_id").str.contains(CAPTURE_ID),
            "not an id of A-Z a-z 0-9 . _ : - (1-128 characters)",
        ),
        ("subject_ref", pl.col("subject_ref").is_null() | (pl.col("subject_ref") == ""), "missing"),
        (
            "capture_type",
            ~pl.col("capture_type").is_in(CAPTURE_TYPES).fill_null(False),
            f"not one of {', '.join(CAPTURE_TYPES)}",
        ),
        (
            "captured_at",
            pl.col("captured_at").is_null(),
            pl.when(raw_ts.is_null())
            .then(pl.lit("missing"))
            .otherwise(pl.lit("not an ISO 8601 timestamp")),
        ),
        # Free text passes to the tables as is: only a token, never a name or an address.
        ("device", ~pl.col("device").str.contains(TOKEN_PATTERN).fill_null(True), TOKEN_RULE),
        (
            "source_label",
            ~pl.col("source_label").str.contains(TOKEN_PATTERN).fill_null(True),
            TOKEN_RULE,
        ),
        ("blob_key", pl.col("blob_key").is_null(), "missing"),
        # Checked before any read: a path that could leave its folder is never opened.
        ("blob_key", pl.col("_path_fault").is_not_null(), pl.col("_path_fault")),
        (
            "capture_id",
            (pl.col("capture_id").is_duplicated() & (pl.int_range(pl.len()).over("capture_id") > 0))
            | (pl.col("capture_id") == pl.lit(preceding_id, pl.String)).fill_null(False),
            "duplicate capture_id in this partition",
        ),
    ]
    # Checked once per distinct key: a day of a million rows names a few hundred blobs.
    keys = records["blob_key"].drop_nulls().unique()
    key_faults = pl.Series([key_fault(k) for k in keys], dtype=pl.String)
    records = records.with_columns(
        _path_fault=pl.col("blob_key").replace_strict(
            keys, key_faults, default=None, return_dtype=pl.String
        )
    )
    # One pass over the batch: each record's first failing rule, then its field and reason.
    first = pl.when(rules[0][1]).then(0)
    for i, (_, cond, _) in enumerate(rules[1:], start=1):
        first = first.when(cond).then(i)
    field, reason = pl.when(False).then(None), pl.when(False).then(None)
    for i, (name, _, why) in enumerate(rules):
        field = field.when(pl.col("_rule") == i).then(
            pl.lit(name) if isinstance(name, str) else name
        )
        reason = reason.when(pl.col("_rule") == i).then(
            pl.lit(why) if isinstance(why, str) else why
        )
    return (
        records.with_columns(_rule=first.otherwise(None))
        .filter(pl.col("_rule").is_not_null())
        # Quarantine rows grouped by rule, then in record order.
        .sort("_rule", "_row")
        .select(
            "_row",
            "record",
            # A malformed capture id is not copied: it may be free text.
            capture_id=pl.when(pl.col("capture_id").str.contains(CAPTURE_ID))
            .then("capture_id")
            .otherwise(None),
            field=field.cast(pl.String),
            reason=reason.cast(pl.String),
        )
    )


BLOB_SCHEMA = {
    "source_key": pl.String,
    "blob_uri": pl.String,
    "stored_key": pl.String,
    "sha256": pl.String,
    "bytes": pl.Int64,
    "width": pl.Int64,
    "height": pl.Int64,
    "decode_status": pl.String,
    "reason": pl.String,
}
DECODE_SCHEMA = {
    "decode_status": pl.String(),
    "reason": pl.String(),
    "width": pl.Int64(),
    "height": pl.Int64(),
}
DECODE_CACHE = "decode"
# A decode outcome depends on the bytes, on imaging.decode's rules and on Pillow's decoders.
DECODE_VERSION = f"decode-1-pillow{PIL.__version__}"
# Distinct blobs held in memory at once: bounds memory whatever the day's size.
BLOB_CHUNK = 64
# The digest an empty source blob is recorded under: it has no raw-zone copy to point at.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A source store's `BlobStore.fingerprint`: a digest of a blob's version without reading it.
Fingerprint = Callable[[str], str | None]


class StoredBlobs:
    """Source key -> its BLOB_SCHEMA row, for the batches of one partition from one store.

    The batches of a day share their blobs: each is read, hashed, stored and decoded once per
    run, not once per batch. Bounded by `limit` keys (the oldest are forgotten: reading one
    again is slower, never different). With the source store's `fingerprint`, a blob already
    seen by an earlier run is not read at all (`store_blobs`)."""

    def __init__(
        self,
        read_blob: Callable[[str], bytes],
        lake: BlobStore,
        limit: int,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self.read_blob, self.lake, self.limit = read_blob, lake, limit
        self.fingerprint = fingerprint
        self._rows: dict[str, tuple] = {}

    def rows(self, source_keys: list[str]) -> pl.DataFrame:
        todo = [k for k in source_keys if k not in self._rows]
        for row in store_blobs(todo, self.read_blob, self.lake, self.fingerprint).iter_rows():
            self._rows[row[0]] = row
        wanted = [self._rows[k] for k in source_keys]
        for old in list(self._rows)[: max(0, len(self._rows) - self.limit)]:
            del self._rows[old]
        return pl.DataFrame(wanted, schema=BLOB_SCHEMA, orient="row")


# Distinct source keys remembered across a partition's batches (~300 bytes each).
STORED_BLOBS_LIMIT = 200_000


def ingest(
    records: pl.DataFrame,
    read_blob: Callable[[str], bytes],
    lake: BlobStore,
    key: bytes,
    source: str,
    partition: str,
    *,
    stored: StoredBlobs | None = None,
    preceding_id: str | None = None,
    fingerprint: Fingerprint | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Copy blobs into the raw zone; build (manifest, quarantine), rows in = out + quarantined.

    Each distinct source blob is read, hashed and stored once however many records share it
    (once per run with a shared `stored`), and decoded once per content across the lake (the
    decode cache). `preceding_id`: see `_record_faults`; `fingerprint`: see `store_blobs` (a
    shared `stored` carries its own)."""
    records = records.with_row_index("_row")
    faults = _record_faults(records, preceding_id)
    valid = records.join(faults.select("_row"), on="_row", how="anti")
    stored = stored or StoredBlobs(read_blob, lake, STORED_BLOBS_LIMIT, fingerprint)
    blobs = stored.rows(valid["blob_key"].unique().sort().to_list())
    valid = valid.join(
        blobs, left_on="blob_key", right_on="source_key", how="left", maintain_order="left"
    )
    blob_faults = valid.filter(pl.col("decode_status") != "ok").select(
        "record",
        "capture_id",
        field=pl.lit("blob"),
        reason=pl.col("reason"),
        blob_uri=pl.col("blob_uri"),
        decode_status=pl.col("decode_status"),
    )
    quarantine = pl.concat(
        [
            faults.drop("_row").with_columns(
                blob_uri=pl.lit(None, pl.String), decode_status=pl.lit(None, pl.String)
            ),
            blob_faults,
        ]
    )
    good = valid.filter(pl.col("decode_status") == "ok")
    manifest = good.with_columns(
        source=pl.lit(source),
        source_partition=pl.lit(partition),
        subject_pseudonym=pseudonymise(key, good["subject_ref"]),
        capture_date=pl.col("captured_at").dt.date(),
        blob_key=pl.col("stored_key"),
    )
    quarantine = quarantine.with_columns(source=pl.lit(source), source_partition=pl.lit(partition))
    return (
        conform(manifest, CaptureManifest) if manifest.height else empty_frame(CaptureManifest),
        conform(quarantine, RawQuarantine) if quarantine.height else empty_frame(RawQuarantine),
    )


def store_blobs(
    source_keys: list[str],
    read_blob: Callable[[str], bytes],
    lake: BlobStore,
    fingerprint: Fingerprint | None = None,
) -> pl.DataFrame:
    """One BLOB_SCHEMA row per distinct source key: where its content sits in the raw zone and
    whether it decodes. Read in chunks of BLOB_CHUNK blobs, on threads (the work is I/O, hashing
    and decoding, which release the GIL).

    With `fingerprint`, a source blob whose fingerprint an earlier run recorded (`SourceDigests`),
    whose content is in the raw zone and whose decode outcome is cached is not read at all: its
    row comes from those three. Any other blob is read, hashed and stored as on a first run."""
    cache = ContentCache(lake, DECODE_CACHE, DECODE_VERSION)
    digests = SourceDigests(lake)
    rows: list[tuple] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        prints: dict[str, str | None] = {}
        if fingerprint is not None:
            prints = dict(
                zip(
                    source_keys,
                    pool.map(lambda k: _fingerprint(k, fingerprint), source_keys),
                    strict=True,
                )
            )
        seen = {
            fp: (sha, size)
            for fp, sha, size in digests.lookup(fp for fp in prints.values() if fp).iter_rows()
        }
        # Once per call, not per chunk: each decode-cache lookup reads its shards' files.
        known_rows = _known_blobs(source_keys, prints, seen, lake, cache, pool)
        fresh_digests: list[tuple[str, str, int]] = []
        for start in range(0, len(source_keys), BLOB_CHUNK):
            chunk = source_keys[start : start + BLOB_CHUNK]
            fetched = list(
                pool.map(
                    lambda k: _store_blob(k, read_blob, lake),
                    [k for k in chunk if k not in known_rows],
                )
            )
            stored = {row[3]: data for row, data in fetched if data}
            known = cache.get(stored, DECODE_SCHEMA)
            todo = sorted(set(stored) - set(known["sha256"]))
            decoded = list(pool.map(decode, [stored[sha] for sha in todo]))
            fresh = pl.DataFrame(
                [
                    (sha, str(d.status), d.reason, d.width, d.height)
                    for sha, d in zip(todo, decoded, strict=True)
                ],
                schema={"sha256": pl.String, **DECODE_SCHEMA},
                orient="row",
            )
            cache.put(fresh)
            outcome = {r[0]: r[1:] for r in pl.concat([known, fresh]).iter_rows()}
            read_rows = {
                row[0]: row if data is None else (*row[:5], *_decoded(outcome[row[3]]))
                for row, data in fetched
            }
            fresh_digests += [
                (fp, row[3] or EMPTY_SHA256, row[4])
                for row, data in fetched
                # Stored contents, and empty blobs (no content to store, one known outcome).
                if (data or row[4] == 0)
                and (fp := prints.get(row[0]))
                and seen.get(fp) != (row[3] or EMPTY_SHA256, row[4])
            ]
            rows += [known_rows.get(k) or read_rows[k] for k in chunk]
    schema = {FINGERPRINT: pl.String(), **SOURCE_DIGEST_SCHEMA}
    digests.put(pl.DataFrame(fresh_digests, schema=schema, orient="row").unique(FINGERPRINT))
    return pl.DataFrame(rows, schema=BLOB_SCHEMA, orient="row")


def _fingerprint(source_key: str, fingerprint: Fingerprint) -> str | None:
    # A blob that is missing or outside its store gets no fingerprint; reading it names why.
    try:
        return fingerprint(source_key)
    except (OSError, UnsafePathError):
        return None


def _known_blobs(
    source_keys: list[str],
    prints: dict[str, str | None],
    seen: dict[str, tuple[str, int]],
    lake: BlobStore,
    cache: ContentCache,
    pool: ThreadPoolExecutor,
) -> dict[str, tuple]:
    """The complete BLOB_SCHEMA rows of the blobs that need no read: fingerprint seen,
    and content either empty or in the raw zone (erasure may have deleted it) with its decode
    outcome cached."""
    candidates, empty = {}, {}
    for source_key in source_keys:
        fp = prints.get(source_key)
        if fp and fp in seen:
            sha, size = seen[fp]
            if size == 0:
                empty[source_key] = _empty_row(source_key)
                continue
            candidates[source_key] = (content_path(sha, _suffix(source_key)), sha, size)
    present = list(pool.map(lake.exists, [key for key, _, _ in candidates.values()]))
    candidates = {k: c for (k, c), there in zip(candidates.items(), present, strict=True) if there}
    known = cache.get((sha for _, sha, _ in candidates.values()), DECODE_SCHEMA)
    outcome = {r[0]: r[1:] for r in known.iter_rows()}
    return empty | {
        source_key: (source_key, lake.uri(key), key, sha, size, *_decoded(outcome[sha]))
        for source_key, (key, sha, size) in candidates.items()
        if sha in outcome
    }


def _empty_row(source_key: str) -> tuple:
    """The BLOB_SCHEMA row of an empty blob: nothing stored, its decode outcome."""
    empty = decode(b"")
    return (source_key, None, None, None, 0, None, None, str(empty.status), empty.reason)


def _suffix(source_key: str) -> str:
    """The suffix of a source blob's raw-zone key."""
    return PurePosixPath(source_key).suffix.lower() or ".bin"


def _decoded(outcome: tuple) -> tuple:
    status, reason, width, height = outcome
    return width, height, status, reason


def _store_blob(
    source_key: str, read_blob: Callable[[str], bytes], lake: BlobStore
) -> tuple[tuple, bytes | None]:
    """(row, data): the row is complete when the blob cannot be stored; else its decode part is
    filled in by the caller from `data`."""
    try:
        data = read_blob(source_key)
    except FileNotFoundError:
        # The record column names the manifest line; the path itself is input, so not repeated.
        return (source_key, None, None, None, None, None, None, "missing", "blob not found"), None
    except UnsafePathError:
        row = (source_key, None, None, None, None, None, None, "unsafe_path")
        return (*row, "path resolves outside its store"), None
    if not data:
        return _empty_row(source_key), None
    key, digest = content_key(data, _suffix(source_key))
    # Checked by key first: content already in the raw zone is never sent again (on GCS an
    # existence check is a metadata request; a create-only upload would send the bytes).
    # Broken blobs are kept in the raw zone too: the quarantine row points at them.
    if not lake.exists(key):
        lake.put_if_absent(key, data)
    return (source_key, lake.uri(key), key, digest, len(data), None, None, None, None), data
