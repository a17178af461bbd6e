"""Per-snapshot warehouse views on real DuckDB and bqemulator: queryable by name, redacted with
their table, and named only through the strict grammar (no SQL from a partition key)."""

from __future__ import annotations

import uuid

import duckdb
import polars as pl
import pytest
from google.cloud import bigquery
from polars.testing import assert_frame_equal

from identity_data.defs.snapshots.build import SnapshotFilters, select_examples
from identity_data.defs.snapshots.schemas import SNAPSHOT_TABLE
from identity_data.defs.snapshots.store import SnapshotError
from identity_data.defs.snapshots.views import name_taken_by, publish_view, view_name
from identity_data.safety import UnsafePathError, check_sql_name, sql_literal
from identity_data.stores.bigquery import BigQueryWarehouse
from identity_data.stores.warehouse import DuckDBWarehouse, WarehouseBackend, view_predicate
from identity_data_tests.defs.snapshots.test_build import examples
from identity_data_tests.services import Service, bigquery_client


def manifest(snapshot_id: str, n: int) -> pl.DataFrame:
    frame, captures = examples(n)
    return select_examples(frame, captures, SnapshotFilters(), snapshot_id)[0]


def test_view_names_fold_ids_into_the_sql_grammar_and_refuse_everything_else():
    assert view_name("weekly-2026-11-30") == "snapshot_weekly_2026_11_30"
    assert view_name("Demo.1") == "snapshot_demo_1"
    assert name_taken_by("demo-1", ["demo_1", "other"]) == "demo_1"
    assert name_taken_by("demo-1", ["demo-1", "demo-2"]) is None
    for hostile in ("x'; DROP TABLE labels; --", 'a"b', "a b", "../x", "", "é"):
        with pytest.raises(SnapshotError):
            view_name(hostile)
    for hostile in ("Snapshot_x", "x;y", "x-y", "1x", "x" * 129, 'x"'):
        with pytest.raises(UnsafePathError):
            check_sql_name(hostile)
    for hostile in ("it's", "a\\b", "a\nb"):
        with pytest.raises(UnsafePathError):
            sql_literal(hostile)
    with pytest.raises(UnsafePathError):
        view_predicate({"snapshot_id = 'x' OR TRUE --": ["x"]})
    # `@` only as a label export's version suffix: the partition-key grammar.
    keys = ["s1", "labels.json@0123456789ab"]
    expected = "snapshot_id IN ('s1', 'labels.json@0123456789ab')"
    assert view_predicate({"snapshot_id": keys}) == expected
    with pytest.raises(UnsafePathError):
        view_predicate({"snapshot_id": ["s@2"]})


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request: pytest.FixtureRequest, tmp_path) -> WarehouseBackend:
    if request.param == "duckdb":
        return DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    emulator: Service = request.getfixturevalue("bqemulator")
    return BigQueryWarehouse(
        "test-project",
        f"views_{uuid.uuid4().hex[:8]}",
        "US",
        client=bigquery_client(emulator.url),
        retry_deadline=30.0,
        retry_initial_delay=0.05,
    )


def query(warehouse: WarehouseBackend, sql: str) -> pl.DataFrame:
    """What an analyst types: the view by its bare name, in the warehouse's own SQL client."""
    if isinstance(warehouse, DuckDBWarehouse):
        with duckdb.connect(warehouse.path, read_only=True) as con:
            return con.execute(sql).pl()
    job = warehouse.client.query(
        sql,
        job_config=bigquery.QueryJobConfig(
            default_dataset=f"{warehouse.project}.{warehouse.dataset}"
        ),
    )
    return pl.DataFrame(job.result().to_arrow(create_bqstorage_client=False))


def test_each_snapshot_has_a_view_that_follows_erasure(warehouse: WarehouseBackend) -> None:
    first, second = manifest("demo-1", 6), manifest("weekly-2026-11-30", 12)
    for frame in (first, second):
        snapshot_id = frame["snapshot_id"][0]
        warehouse.replace_slice(SNAPSHOT_TABLE, frame, {"snapshot_id": [snapshot_id]})
        assert publish_view(warehouse, snapshot_id) == view_name(snapshot_id)
    # Publishing again (a retried step) redefines the view in place.
    publish_view(warehouse, "demo-1")

    rows = query(warehouse, "SELECT * FROM snapshot_demo_1 ORDER BY capture_id")
    assert_frame_equal(rows, first, check_dtypes=False)
    assert query(warehouse, "SELECT count(*) AS n FROM snapshot_weekly_2026_11_30")["n"][0] == 12

    # Erasure replaces the snapshot's slice of the table; its view shows the redacted rows.
    warehouse.replace_slice(SNAPSHOT_TABLE, first.slice(1), {"snapshot_id": ["demo-1"]})
    rows = query(warehouse, "SELECT capture_id FROM snapshot_demo_1 ORDER BY capture_id")
    assert rows["capture_id"].to_list() == ["c1", "c2", "c3", "c4", "c5"]
    assert query(warehouse, "SELECT count(*) AS n FROM snapshot_weekly_2026_11_30")["n"][0] == 12
