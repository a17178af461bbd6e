"""The bare script the pipeline is measured against: one day of production captures, no Dagster.

    .venv/bin/python -m benchmarks.bare_extract DATA_HOME YYYY-MM-DD OUT_DIR

The minimum the raw extraction must do: one SQL query; HMAC of the subject references; each
distinct blob read once (hashed, copied content-addressed, decoded); one parquet file; one
DuckDB load. No checks, no quarantine bookkeeping, no orchestration.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
from PIL import Image

COLUMNS = ["capture_id", "subject_ref", "capture_type", "device", "captured_at", "blob_path"]


def _blob(bucket: Path, raw: Path, path: str) -> tuple[str, str, int, int, int]:
    data = (bucket / path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    target = raw / digest[:2] / f"{digest}.jpg"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
    except Exception:
        width = height = 0
    return path, digest, len(data), width, height


def extract(home: Path, day: date, out: Path) -> int:
    start, end = f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"
    with sqlite3.connect(home / "capture_db.sqlite") as con:
        rows = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM captures WHERE captured_at >= ? AND captured_at < ?",
            (start, end),
        ).fetchall()
    frame = pl.DataFrame(rows, schema=COLUMNS, orient="row")
    # The key file holds 64 hex digits, decoded as the project decodes it.
    key = bytes.fromhex((home / "pseudonym.key").read_text().strip())
    refs = frame["subject_ref"].unique()
    hashed = [hmac.new(key, r.encode(), hashlib.sha256).hexdigest() for r in refs]
    raw = out / "raw"
    with ThreadPoolExecutor(8) as pool:
        blobs = list(
            pool.map(lambda p: _blob(home / "capture-bucket", raw, p), frame["blob_path"].unique())
        )
    blob_frame = pl.DataFrame(
        blobs, schema=["blob_path", "sha256", "bytes", "width", "height"], orient="row"
    )
    frame = (
        frame.with_columns(subject_pseudonym=frame["subject_ref"].replace_strict(refs, hashed))
        .drop("subject_ref")
        .join(blob_frame, on="blob_path")
    )
    out.mkdir(parents=True, exist_ok=True)
    parquet = out / f"{day}.parquet"
    frame.write_parquet(parquet)
    with duckdb.connect(str(out / "bare.duckdb")) as db:
        db.execute(f"CREATE OR REPLACE TABLE captures AS SELECT * FROM read_parquet('{parquet}')")
    return frame.height


if __name__ == "__main__":
    n = extract(Path(sys.argv[1]), date.fromisoformat(sys.argv[2]), Path(sys.argv[3]))
    print(f"{n} rows")
