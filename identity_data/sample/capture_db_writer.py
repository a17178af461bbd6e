"""Load the planned subjects, sessions and captures into a capture-service database by URL.

The same rows seed the embedded SQLite file and a PostgreSQL database (`postgresql+psycopg://`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import sqlalchemy as sa

from identity_data import capture_db
from identity_data.sample.plan import Capture, Session, Subject

BATCH_ROWS = 10_000


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def write_capture_db(
    url: str,
    subjects: Iterable[Subject],
    sessions: Iterable[Session],
    captures: Iterable[Capture],
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Create the schema and insert all rows in the given order; returns rows per table.

    Refuses to write into tables that already hold rows, so a rerun never mixes two samples.
    """
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    try:
        capture_db.metadata.create_all(engine)
        with engine.begin() as con:
            for table in (capture_db.captures, capture_db.sessions, capture_db.subjects):
                if con.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                    raise ValueError(
                        f"table {table.name} at {engine.url.render_as_string(hide_password=True)}"
                        " already holds rows; write the sample into an empty database"
                    )
            tables = (
                (
                    capture_db.subjects,
                    (
                        {
                            "subject_id": s.subject_id,
                            "customer_ref": s.customer_ref,
                            "full_name": s.full_name,
                            "document_number": s.holder.document_number,
                            "created_at": s.created_at,
                        }
                        for s in subjects
                    ),
                ),
                (
                    capture_db.sessions,
                    (
                        {
                            "session_id": s.session_id,
                            "subject_id": s.subject_id,
                            "device": s.device,
                            "started_at": s.started_at,
                        }
                        for s in sessions
                    ),
                ),
                (
                    capture_db.captures,
                    (
                        {
                            "capture_id": c.capture_id,
                            "session_id": c.session_id,
                            "subject_ref": c.subject_ref,
                            "capture_type": c.capture_type,
                            "device": c.device,
                            "captured_at": c.captured_at,
                            "blob_path": c.file.removeprefix("capture-bucket/"),
                        }
                        for c in captures
                    ),
                ),
            )
            for table, rows in tables:
                counts[table.name] = 0
                for batch in _batches(rows, batch_rows):
                    con.execute(table.insert(), batch)
                    counts[table.name] += len(batch)
    finally:
        engine.dispose()
    return counts
