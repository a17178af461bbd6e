"""The capture DB schema on a real PostgreSQL server (the production engine), values bound."""

import datetime as dt

import sqlalchemy as sa

from identity_data import capture_db


def test_capture_schema_on_postgres(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    assert engine.dialect.name == "postgresql"
    with engine.begin() as con:
        capture_db.metadata.drop_all(con)
        capture_db.metadata.create_all(con)
        t0 = dt.datetime(2026, 11, 28, 10, 15, tzinfo=dt.UTC)
        con.execute(
            capture_db.subjects.insert(),
            [
                {
                    "subject_id": "s1",
                    "customer_ref": "cust-1",
                    "full_name": "A",
                    "document_number": "X1",
                    "created_at": t0,
                }
            ],
        )
        con.execute(
            capture_db.sessions.insert(),
            [{"subject_id": "s1", "session_id": "e1", "device": "ios", "started_at": t0}],
        )
        con.execute(
            capture_db.captures.insert(),
            [
                {
                    "capture_id": f"c{i}",
                    "session_id": "e1",
                    "subject_ref": "cust-1",
                    "capture_type": "selfie",
                    "device": "ios",
                    "captured_at": t0 + dt.timedelta(hours=i),
                    "blob_path": f"b/{i}.jpg",
                }
                for i in range(5)
            ],
        )
    since = sa.bindparam("since", type_=sa.DateTime(timezone=True))
    query = (
        sa.select(capture_db.captures.c.capture_id, capture_db.captures.c.captured_at)
        .where(capture_db.captures.c.captured_at >= since)
        .order_by(capture_db.captures.c.captured_at)
    )
    with engine.connect() as con:
        got = con.execute(query, {"since": t0 + dt.timedelta(hours=3)}).all()
        # A timestamptz column: the same instant comes back, whatever the session time zone.
        assert [(r.capture_id, r.captured_at) for r in got] == [
            ("c3", t0 + dt.timedelta(hours=3)),
            ("c4", t0 + dt.timedelta(hours=4)),
        ]
        server = con.execute(sa.text("SELECT inet_server_addr()::text, version()")).one()
    assert server[0].startswith("127.0.0.1")
    assert server[1].startswith("PostgreSQL")
    engine.dispose()
