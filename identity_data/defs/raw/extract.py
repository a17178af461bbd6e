"""Extraction: source records in, raw-zone manifest and quarantine out.

Every source (capture database, campaign drop folders, open datasets) is reduced to the same
record frame, then `ingest` copies blobs into the raw zone and pseudonymises subjects, so the
three sources share one implementation. Work is per distinct blob, not per record: a day of a
million rows over a few hundred blobs reads, hashes and decodes a few hundred blobs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import PIL
import polars as pl
import sqlalchemy as sa

from identity_data import capture_db
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.imaging import decode
from identity_data.privacy import pseudonymise
from identity_data.safety import ID_PATTERN as CAPTURE_ID
from identity_data.safety import UnsafePathError, key_fault
from identity_data.sources import CAPTURE_TYPES
from identity_data.stores.blobs import BlobStore, content_key
from identity_data.stores.content_cache import ContentCache
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
BATCH_ROWS = 20_000


class ManifestError(ValueError):
    """A manifest that cannot be read at all; names the file, never quotes its content."""


def production_records(engine: sa.Engine, day: date) -> Iterator[pl.DataFrame]:
    """The day's captures, one bound-parameter query, streamed in bounded batches."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    c = capture_db.captures.c
    query = (
        sa.select(c.capture_id, c.subject_ref, c.capture_type, c.device, c.captured_at, c.blob_path)
        .where(c.captured_at >= start, c.captured_at < start + timedelta(days=1))
        .order_by(c.capture_id)
    )
    with engine.connect().execution_options(stream_results=True) as con:
        result = con.execute(query)
        while rows := result.fetchmany(BATCH_ROWS):
            frame = pl.DataFrame(
                [tuple(r) for r in rows],
                schema=[
                    "capture_id",
                    "subject_ref",
                    "capture_type",
                    "device",
                    "captured_at",
                    "blob_key",
                ],
                orient="row",
            )
            yield frame.with_columns(
                record=pl.lit("captures:") + pl.col("capture_id"),
                captured_at=_as_utc(pl.col("captured_at")),
                source_label=pl.lit(None, pl.String),
            ).select(list(RECORD_SCHEMA))


def _as_utc(expr: pl.Expr) -> pl.Expr:
    """SQLite returns naive UTC datetimes and PostgreSQL aware ones; both become UTC."""
    return expr.dt.replace_time_zone(None).dt.replace_time_zone("UTC")


def manifest_records(store: BlobStore, folder: str) -> pl.DataFrame:
    """A drop folder's manifest.csv, every field kept as text so bad values can be named."""
    key = f"{folder}/manifest.csv"
    try:
        raw = pl.read_csv(io.BytesIO(store.read(key)), infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as err:
        # polars' message quotes the offending row (personal data): only its class goes on.
        raise ManifestError(
            f"{key}: not a readable UTF-8 CSV ({type(err).__name__}: e.g. an unterminated "
            "quote, a ragged row or invalid UTF-8)"
        ) from None
    missing = [c for c in MANIFEST_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{key}: manifest lacks columns {missing}")
    if "source_label" not in raw.columns:
        raw = raw.with_columns(source_label=pl.lit(None, pl.String))
    return raw.with_row_index("line", offset=2).select(
        record=pl.lit(f"{key}:line ") + pl.col("line").cast(pl.String),
        capture_id=pl.col("capture_id").str.strip_chars(),
        subject_ref=pl.col("subject_ref"),
        capture_type=pl.col("capture_type"),
        device=pl.col("device"),
        captured_at=pl.col("captured_at").str.to_datetime(time_zone="UTC", strict=False),
        raw_captured_at=pl.col("captured_at"),
        blob_key=pl.lit(f"{folder}/") + pl.col("file"),
        source_label=pl.col("source_label"),
    )


def _record_faults(records: pl.DataFrame) -> pl.DataFrame:
    """One row per record whose fields are unusable: (record, field, reason)."""
    raw_ts = pl.col("raw_captured_at") if "raw_captured_at" in records.columns else pl.lit(None)
    rules = [
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
        ("blob_key", pl.col("blob_key").is_null(), "missing"),
        # Checked before any read: a path that could leave its folder is never opened.
        ("blob_key", pl.col("_path_fault").is_not_null(), pl.col("_path_fault")),
        (
            "capture_id",
            pl.col("capture_id").is_duplicated() & (pl.int_range(pl.len()).over("capture_id") > 0),
            "duplicate capture_id in this partition",
        ),
    ]
    records = records.with_columns(
        _path_fault=pl.col("blob_key").map_elements(key_fault, return_dtype=pl.String)
    )
    faults = [
        records.filter(cond).select(
            "record",
            # A malformed capture id is not copied: it may be free text.
            capture_id=pl.when(pl.col("capture_id").str.contains(CAPTURE_ID))
            .then("capture_id")
            .otherwise(None),
            field=pl.lit(field),
            reason=pl.lit(reason) if isinstance(reason, str) else reason,
        )
        for field, cond, reason in rules
    ]
    # One quarantine row per record: its first fault.
    return pl.concat(faults).unique("record", keep="first", maintain_order=True)


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


def ingest(
    records: pl.DataFrame,
    read_blob: Callable[[str], bytes],
    lake: BlobStore,
    key: bytes,
    source: str,
    partition: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Copy blobs into the raw zone; build (manifest, quarantine), rows in = out + quarantined.

    Each distinct source blob is read, hashed and stored once however many records share it,
    and decoded once per content across the lake (the decode cache)."""
    faults = _record_faults(records)
    valid = records.join(faults.select("record"), on="record", how="anti")
    blobs = store_blobs(valid["blob_key"].unique().sort().to_list(), read_blob, lake)
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
            faults.with_columns(
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
    source_keys: list[str], read_blob: Callable[[str], bytes], lake: BlobStore
) -> pl.DataFrame:
    """One BLOB_SCHEMA row per distinct source key: where its content sits in the raw zone and
    whether it decodes. Read in chunks of BLOB_CHUNK blobs, on threads (the work is I/O, hashing
    and decoding, which release the GIL)."""
    cache = ContentCache(lake, DECODE_CACHE, DECODE_VERSION)
    rows: list[tuple] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(source_keys), BLOB_CHUNK):
            chunk = source_keys[start : start + BLOB_CHUNK]
            fetched = list(pool.map(lambda k: _store_blob(k, read_blob, lake), chunk))
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
            rows += [
                row if data is None else (*row[:5], *_decoded(outcome[row[3]]))
                for row, data in fetched
            ]
    return pl.DataFrame(rows, schema=BLOB_SCHEMA, orient="row")


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
        empty = decode(data)
        return (source_key, None, None, None, 0, None, None, str(empty.status), empty.reason), None
    suffix = PurePosixPath(source_key).suffix.lower() or ".bin"
    key, digest = content_key(data, suffix)
    # Checked by key first: content already in the raw zone is never sent again (on GCS an
    # existence check is a metadata request; a create-only upload would send the bytes).
    # Broken blobs are kept in the raw zone too: the quarantine row points at them.
    if not lake.exists(key):
        lake.put_if_absent(key, data)
    return (source_key, lake.uri(key), key, digest, len(data), None, None, None, None), data
