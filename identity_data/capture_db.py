"""Schema of the capture service's operational database, shared by the sample and the extractor.

SQLAlchemy Core keeps one definition that runs on SQLite (embedded default) and PostgreSQL
(production), with timestamps bound as parameters on both.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("customer_ref", sa.String(255), nullable=False),
    sa.Column("full_name", sa.String(255), nullable=False),
    sa.Column("document_number", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(64), sa.ForeignKey("subjects.subject_id"), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
)

captures = sa.Table(
    "captures",
    metadata,
    sa.Column("capture_id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.session_id"), nullable=False),
    # The raw subject reference (customer id or e-mail): pseudonymised before leaving the raw zone.
    sa.Column("subject_ref", sa.String(255), nullable=False),
    sa.Column("capture_type", sa.String(16), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("blob_path", sa.String(512), nullable=False),
)
