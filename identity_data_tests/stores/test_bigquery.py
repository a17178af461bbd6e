"""BigQueryWarehouse against a real bqemulator (no client mocks), including injected faults."""

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import pandera.polars as pa
import polars as pl
import pytest
from google.cloud import bigquery

from identity_data.stores.bigquery import BigQueryWarehouse, bigquery_schema
from identity_data.stores.warehouse import TableSpec, table_spec
from identity_data_tests.services import FaultProxy, Service, bigquery_client, start_bqemulator

PROJECT = "test-project"


class CaptureRow(pa.DataFrameModel):
    capture_id: str
    capture_date: dt.date
    captured_at: Annotated[pl.Datetime, "us", "UTC"]
    source: str
    faces: int
    score: float
    is_face: bool


SPEC = table_spec("captures", CaptureRow, "capture_date", ("source", "capture_id"))


def rows(day: str, n: int, tag: str = "") -> pl.DataFrame:
    date = dt.date.fromisoformat(day)
    return pl.DataFrame(
        {
            "capture_id": [f"c-{day}-{i}{tag}" for i in range(n)],
            "capture_date": [date] * n,
            "captured_at": [
                dt.datetime(date.year, date.month, date.day, 10, i, tzinfo=dt.UTC) for i in range(n)
            ],
            "source": ["campaign" if i % 2 else "capture_db" for i in range(n)],
            "faces": list(range(n)),
            "score": [i / 10 for i in range(n)],
            "is_face": [i % 3 != 0 for i in range(n)],
        },
        schema=SPEC.columns,
    )


def make_warehouse(endpoint: str, dataset: str, deadline: float = 30.0) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        PROJECT,
        dataset,
        "US",
        client=bigquery_client(endpoint, PROJECT),
        retry_deadline=deadline,
        retry_initial_delay=0.05,
        timeout=10.0,
    )


@pytest.fixture
def dataset() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def warehouse(bqemulator: Service, dataset: str) -> BigQueryWarehouse:
    return make_warehouse(bqemulator.url, dataset)


def sort(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort("capture_id")


def all_rows(wh: BigQueryWarehouse) -> pl.DataFrame:
    return sort(wh.read(SPEC, {}))


def job_ids(client: bigquery.Client) -> set[str]:
    return {job.job_id for job in client.list_jobs(all_users=True)}


def test_bigquery_schema_maps_types() -> None:
    assert [(f.name, f.field_type) for f in bigquery_schema(SPEC)] == [
        ("capture_id", "STRING"),
        ("capture_date", "DATE"),
        ("captured_at", "TIMESTAMP"),
        ("source", "STRING"),
        ("faces", "INT64"),
        ("score", "FLOAT64"),
        ("is_face", "BOOL"),
    ]


@pytest.mark.parametrize("partition", ["capture_date", "captured_at"])
def test_table_is_partitioned_and_clustered_with_types_kept(
    warehouse: BigQueryWarehouse, partition: str
) -> None:
    spec = TableSpec(f"t_{partition}", SPEC.columns, partition, ("source",))
    table_id = warehouse.ensure_table(spec)
    table = warehouse.client.get_table(table_id)
    types = {f.name: f.field_type for f in table.schema}
    assert types["capture_date"] == "DATE"
    assert types["captured_at"] == "TIMESTAMP"
    assert table.time_partitioning.type_ == "DAY"
    assert table.time_partitioning.field == partition
    assert table.clustering_fields == ["source"]


def test_replace_slice_is_idempotent_and_leaves_other_slices(warehouse: BigQueryWarehouse) -> None:
    day1, day2 = rows("2026-11-01", 5), rows("2026-11-02", 4)
    warehouse.replace_slice(SPEC, day1, {"capture_date": ["2026-11-01"]})
    warehouse.replace_slice(SPEC, day2, {"capture_date": ["2026-11-02"]})
    new_day1 = rows("2026-11-01", 3, tag="-v2")
    for _ in range(2):
        warehouse.replace_slice(SPEC, new_day1, {"capture_date": ["2026-11-01"]})
        assert sort(warehouse.read(SPEC, {"capture_date": ["2026-11-01"]})).equals(new_day1)
        assert sort(warehouse.read(SPEC, {"capture_date": ["2026-11-02"]})).equals(day2)
    assert all_rows(warehouse).equals(sort(pl.concat([new_day1, day2])))
    both = warehouse.read(SPEC, {"capture_date": ["2026-11-01", "2026-11-02"]})
    assert sort(both).equals(sort(pl.concat([new_day1, day2])))


def test_one_load_job_and_one_merge_per_replace(warehouse: BigQueryWarehouse, dataset: str) -> None:
    client = warehouse.client
    warehouse.ensure_table(SPEC)
    before = job_ids(client)
    warehouse.replace_slice(SPEC, rows("2026-11-03", 6), {"capture_date": ["2026-11-03"]})
    new = [client.get_job(j) for j in job_ids(client) - before]
    assert sorted(job.job_type for job in new) == ["load", "query"]
    (load,) = [j for j in new if j.job_type == "load"]
    (merge,) = [j for j in new if j.job_type == "query"]
    assert load.destination.table_id.startswith("_staging_captures_")
    assert load.output_rows == 6
    assert merge.query.startswith(f"MERGE `{PROJECT}.{dataset}.captures`")
    assert "2026-11-03" not in merge.query  # the slice value travels as a parameter
    assert "T.`capture_date` IN UNNEST(@slice_0)" in merge.query
    # The staging table is dropped, not left for its expiry.
    assert [t.table_id for t in client.list_tables(f"{PROJECT}.{dataset}")] == ["captures"]


def test_empty_frame_clears_the_slice(warehouse: BigQueryWarehouse) -> None:
    warehouse.replace_slice(SPEC, rows("2026-11-01", 2), {"capture_date": ["2026-11-01"]})
    warehouse.replace_slice(SPEC, rows("2026-11-02", 2), {"capture_date": ["2026-11-02"]})
    warehouse.replace_slice(SPEC, rows("2026-11-01", 0), {"capture_date": ["2026-11-01"]})
    assert all_rows(warehouse).equals(rows("2026-11-02", 2))


def test_multi_column_and_whole_table_slices(warehouse: BigQueryWarehouse) -> None:
    day = rows("2026-11-01", 6)
    warehouse.replace_slice(SPEC, day, {})
    campaign = day.filter(pl.col("source") == "campaign").with_columns(faces=pl.lit(99, pl.Int64))
    warehouse.replace_slice(
        SPEC, campaign, {"capture_date": ["2026-11-01"], "source": ["campaign"]}
    )
    expected = pl.concat([day.filter(pl.col("source") != "campaign"), campaign])
    assert all_rows(warehouse).equals(sort(expected))
    warehouse.replace_slice(SPEC, rows("2026-11-05", 1), {})
    assert all_rows(warehouse).equals(rows("2026-11-05", 1))


def test_values_are_bound_not_spliced(warehouse: BigQueryWarehouse) -> None:
    warehouse.replace_slice(SPEC, rows("2026-11-01", 3), {})
    assert warehouse.read(SPEC, {"source": ["x' OR TRUE OR '1'='1"]}).height == 0
    assert warehouse.read(SPEC, {"source": ["campaign"]}).height == 1


def test_rows_outside_the_slice_are_refused(warehouse: BigQueryWarehouse) -> None:
    with pytest.raises(ValueError, match=r"row 0 has capture_date=.*outside the slice"):
        warehouse.replace_slice(SPEC, rows("2026-11-02", 1), {"capture_date": ["2026-11-01"]})
    with pytest.raises(ValueError, match="not a valid DATE"):
        warehouse.read(SPEC, {"capture_date": ["yesterday"]})


def test_existing_table_with_other_columns_is_an_error(
    bqemulator: Service, warehouse: BigQueryWarehouse, dataset: str
) -> None:
    warehouse.ensure_table(SPEC)
    other = TableSpec("captures", {"capture_id": pl.String, "faces": pl.Int32}, None, ())
    with pytest.raises(ValueError, match="has columns"):
        make_warehouse(bqemulator.url, dataset).ensure_table(other)


def test_read_returns_model_dtypes(warehouse: BigQueryWarehouse) -> None:
    spec = TableSpec("narrow", {"k": pl.String, "n": pl.Int32, "x": pl.Float32}, None, ())
    df = pl.DataFrame({"k": ["a"], "n": [1], "x": [0.5]}, schema=spec.columns)
    warehouse.replace_slice(spec, df, {})
    assert warehouse.read(spec, {}).equals(df)


# --- faults: a proxy between the client and the emulator ----------------------------------


@pytest.fixture
def proxied(
    bqemulator: Service, dataset: str, fault_proxy: Callable[[int], FaultProxy]
) -> tuple[BigQueryWarehouse, FaultProxy]:
    proxy = fault_proxy(bqemulator.port)
    return make_warehouse(proxy.url, dataset), proxy


# Request bodies that identify each step: the MERGE job insert, the parquet upload (PAR1 magic),
# the staging table creation and its deletion, and the read's query.
STEPS = {
    "merge": b"WHEN NOT MATCHED BY SOURCE",
    "read": b"SELECT `capture_id`",
    "upload": b"PAR1",
    "create_staging": b'"tableId": "_staging_',
    "delete_staging": b"DELETE /bigquery/v2/projects/test-project/datasets/",
}


@pytest.mark.parametrize("kind", ["reset", "503", "lose_response"])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_faults_leave_exactly_the_expected_rows(
    proxied: tuple[BigQueryWarehouse, FaultProxy], step: str, kind: str
) -> None:
    warehouse, proxy = proxied
    day1, day2 = rows("2026-11-01", 4), rows("2026-11-02", 3)
    warehouse.replace_slice(SPEC, day1, {"capture_date": ["2026-11-01"]})
    warehouse.replace_slice(SPEC, day2, {"capture_date": ["2026-11-02"]})
    new_day1 = rows("2026-11-01", 2, tag="-v2")
    proxy.inject(kind, times=2 if kind != "lose_response" else 1, match=STEPS[step])
    warehouse.replace_slice(SPEC, new_day1, {"capture_date": ["2026-11-01"]})
    assert all_rows(warehouse).equals(sort(pl.concat([new_day1, day2])))
    assert proxy.fired.get(kind), f"no {kind} fault fired on {step}"


@pytest.fixture
def restartable_bqemulator(tmp_path: Path) -> Iterator[Service]:
    service = start_bqemulator(tmp_path, persistent=True)
    yield service
    service.stop()


def test_emulator_restart_mid_run(restartable_bqemulator: Service, dataset: str) -> None:
    service = restartable_bqemulator
    warehouse = make_warehouse(service.url, dataset, deadline=60.0)
    day1, day2 = rows("2026-11-01", 4), rows("2026-11-02", 3)
    warehouse.replace_slice(SPEC, day1, {"capture_date": ["2026-11-01"]})
    warehouse.replace_slice(SPEC, day2, {"capture_date": ["2026-11-02"]})
    service.stop()
    # The server comes back while the write is already retrying against a closed port.
    restart = threading.Timer(1.5, service.start)
    restart.start()
    new_day1 = rows("2026-11-01", 2, tag="-v2")
    warehouse.replace_slice(SPEC, new_day1, {"capture_date": ["2026-11-01"]})
    restart.join()
    assert all_rows(warehouse).equals(sort(pl.concat([new_day1, day2])))
