"""Erasing one sample subject from a deployment with history: lake, blobs, DuckDB, BigQuery,
snapshots and the Dagster instance; every other row unchanged; tombstones stop re-ingest."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from upath import UPath

from identity_data import erasure as erasure_cli
from identity_data import snapshots
from identity_data.dagster_private import graphql_workspace
from identity_data.definitions import defs as load_defs
from identity_data.defs.erasure import assets as erase_assets
from identity_data.defs.erasure import erase
from identity_data.defs.erasure.jobs import FILE_JOB
from identity_data.defs.erasure.requests import filed_requests
from identity_data.defs.erasure.sensors import erasure_request_sensor
from identity_data.defs.snapshots.schemas import SNAPSHOT_TABLE
from identity_data.defs.warehouse.tables import TABLES
from identity_data.demo import Demo, Tally
from identity_data.privacy import check_key, pseudonymise
from identity_data.settings import local_key_file
from identity_data.sources import BY_NAME
from identity_data.stores.bigquery import BigQueryWarehouse
from identity_data.stores.blobs import LocalBlobStore
from identity_data.stores.gcs import GcsBlobStore
from identity_data.stores.warehouse import DuckDBWarehouse
from identity_data.tombstones import TOMBSTONE_PREFIX, digest
from identity_data_tests.defs.snapshots.world import (
    DAYS,
    FIRST_SNAPSHOT,
    World,
    materialize_days,
)
from identity_data_tests.prod.world import deployment_env, upload_tree
from identity_data_tests.services import Service, bigquery_client, storage_client

# The first test also builds the session's shared worlds (defs/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Source drops as delivered (capture DB, landing/, label-exports/) belong to their owners;
# erasure covers everything the pipeline wrote, and tombstones keep the sources from refilling it.
REPO = Path(__file__).resolve().parents[3]
SOURCE_ZONES = ("landing", "label-exports")
WAREHOUSE_TABLES = (*TABLES, SNAPSHOT_TABLE.name)


@pytest.fixture
def grown(grown_world: World) -> World:
    return grown_world


def lake_tables(home: Path) -> dict[str, pl.DataFrame]:
    tables = home / "lake" / "tables"
    return {str(p.relative_to(tables)): pl.read_parquet(p) for p in tables.rglob("*.parquet")}


def duckdb_tables(home: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f'SELECT * FROM "{t}"').pl() for t in WAREHOUSE_TABLES}


def quarantined(home: Path, key: bytes) -> pl.DataFrame:
    """Every quarantine row with the pseudonym of its source record's subject, looked up in
    the sources themselves (capture DB rows, drop-folder manifest lines)."""
    with sqlite3.connect(home / "capture_db.sqlite") as con:
        refs = {
            f"captures:{c}": r
            for c, r in con.execute("SELECT capture_id, subject_ref FROM captures")
        }
    for manifest in (home / "lake" / "landing").rglob("manifest.csv"):
        rel = manifest.relative_to(home / "lake")
        frame = pl.read_csv(manifest, infer_schema=False)
        refs |= {f"{rel}:line {i + 2}": r for i, r in enumerate(frame["subject_ref"])}
    bad = pl.concat(
        f for n, f in lake_tables(home).items() if n.startswith("raw/") and "_quarantine/" in n
    )
    bad = bad.with_columns(subject_ref=pl.col("record").replace_strict(refs, default=None))
    return bad.with_columns(
        subject_pseudonym=pseudonymise(key, bad["subject_ref"]),
        blob_key=pl.col("blob_uri").str.extract(r"(raw/captures/.+)$"),
    )


def pick_subject(home: Path) -> tuple[str, str, erase.Erased]:
    """A subject with production captures on several days, labels and rows in snapshot s1,
    sharing no blob and no near-duplicate cluster with anyone else, and with a quarantined
    record if any such subject has one; (ref, pseudonym, ids)."""
    key = check_key(local_key_file(home).read_text().strip())
    with sqlite3.connect(home / "capture_db.sqlite") as con:
        refs = sorted({r for (r,) in con.execute("SELECT subject_ref FROM captures")})
    by_pseudonym = dict(zip(pseudonymise(key, pl.Series(refs)), refs, strict=True))
    tables = lake_tables(home)
    manifests = pl.concat(
        f for name, f in tables.items() if name.startswith("raw/") and "captures" in name
    )
    clusters = tables["annotations/near_duplicates.parquet"]
    labels = duckdb_tables(home)["labels"]
    s1 = set(snapshots.open(FIRST_SNAPSHOT).frame["subject_pseudonym"])
    shared_blobs = set(manifests.filter(pl.col("sha256").is_duplicated())["sha256"])
    joined = manifests.join(clusters, on="capture_id", how="left")
    mixed = set(
        joined.group_by("cluster_id")
        .agg(pl.col("subject_pseudonym").n_unique())
        .filter(pl.col("subject_pseudonym") > 1)["cluster_id"]
        .drop_nulls()
    )
    bad = quarantined(home, key)
    fits = []
    for pseudonym, captures in manifests.group_by("subject_pseudonym", maintain_order=True):
        pseudonym = pseudonym[0]
        production = captures.filter(pl.col("source") == "production")
        if (
            pseudonym in s1
            and production["capture_date"].n_unique() >= 2
            and labels["capture_id"].is_in(captures["capture_id"]).any()
            and not set(captures["sha256"]) & shared_blobs
            and not set(joined.filter(pl.col("subject_pseudonym") == pseudonym)["cluster_id"])
            & mixed
        ):
            mine = bad.filter(pl.col("subject_pseudonym") == pseudonym)
            ids = erase.Erased(
                frozenset([pseudonym]),
                frozenset(captures["capture_id"]) | frozenset(mine["capture_id"].drop_nulls()),
                frozenset(captures["sha256"]),
                frozenset(captures["blob_key"]) | frozenset(mine["blob_key"].drop_nulls()),
                frozenset(mine["record"]),
            )
            fits.append((by_pseudonym[pseudonym], pseudonym, ids))
    assert fits, "no sample subject fits"
    return max(fits, key=lambda fit: len(fit[2].records) > 0)


def needles(pseudonym: str, ids: erase.Erased) -> list[str]:
    return [pseudonym, *ids.capture_ids, *ids.sha256s]


def occurrences(home: Path, instance: dg.DagsterInstance, found: list[str]) -> dict[str, int]:
    """Where any needle still occurs: lake files (names, bytes, parquet values), DuckDB, and
    the instance's event log and run configs."""
    hits: dict[str, int] = {}
    lake = home / "lake"
    for path in lake.rglob("*"):
        rel = path.relative_to(lake)
        if not path.is_file() or rel.parts[0] in SOURCE_ZONES:
            continue
        text = str(rel) + path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            text += pl.read_parquet(path).write_csv()
        hits[f"lake/{rel}"] = sum(text.count(n) for n in found)
    for table, frame in duckdb_tables(home).items():
        hits[f"duckdb/{table}"] = sum(frame.write_csv().count(n) for n in found)
    log = "".join(
        dg.serialize_value(event) + dg.serialize_value(record.dagster_run.run_config)
        for record in instance.get_run_records()
        for event in instance.all_logs(record.dagster_run.run_id)
    )
    hits["dagster/event_log"] = sum(log.count(n) for n in found)
    return {where: n for where, n in hits.items() if n}


def without(frame: pl.DataFrame, ids: erase.Erased) -> pl.DataFrame:
    return frame.filter(~erase.erased_mask(frame, ids))


def erase_subject(ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(ref + "\n"))
    assert erasure_cli.main(["subject", "--subject-ref", "-"]) == 0


def test_erasing_a_subject_leaves_no_trace_and_no_other_change(
    grown: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    world = grown.copy(tmp_path)
    with world.open() as instance:
        ref, pseudonym, ids = pick_subject(world.home)
        lake_before, warehouse_before = lake_tables(world.home), duckdb_tables(world.home)
        s1_before = snapshots.open(FIRST_SNAPSHOT)
        assert occurrences(world.home, instance, needles(pseudonym, ids))

        erase_subject(ref, monkeypatch)
        printed = capsys.readouterr().out
        assert ref not in printed and pseudonym not in printed

        assert occurrences(world.home, instance, needles(pseudonym, ids)) == {}
        lake_after = lake_tables(world.home)
        for name, frame in lake_before.items():
            assert_frame_equal(lake_after[name], without(frame, ids), check_exact=True)
        warehouse_after = duckdb_tables(world.home)
        for name, frame in warehouse_before.items():
            key = ["capture_id", "task"] if name == "labels" else ["capture_id"]
            if name == "annotator_quality":
                assert_frame_equal(warehouse_after[name], frame)
                continue
            assert_frame_equal(
                warehouse_after[name].sort(key), without(frame, ids).sort(key), check_exact=True
            )
        s1 = snapshots.open(FIRST_SNAPSHOT)
        assert s1.version == 2
        assert_frame_equal(s1.frame, without(s1_before.frame, ids), check_exact=True)
        assert s1.history[0]["manifest_sha256"] == s1_before.manifest_sha256
        redactions = lake_after[next(n for n in lake_after if "redactions" in n)]
        assert redactions.select("old_manifest_sha256", "new_manifest_sha256").row(0) == (
            s1_before.manifest_sha256,
            s1.manifest_sha256,
        )
        audit = erasure_cli.audit_frame()
        assert audit.height == 1 and audit["captures"][0] == len(ids.capture_ids)
        assert audit["blobs_deleted"][0] == len(ids.blob_keys)

        # Re-running the extraction of every day and the campaign brings nobody back.
        materialize_days(instance, DAYS)
        assert occurrences(world.home, instance, needles(pseudonym, ids)) == {}
        tombstoned = [
            event.asset_materialization.metadata["tombstoned_rows"].value
            for event in instance.get_event_records(
                dg.EventRecordsFilter(
                    dg.DagsterEventType.ASSET_MATERIALIZATION,
                    asset_key=dg.AssetKey(["raw", "prod_captures"]),
                ),
                limit=1,
            )
        ]
        assert (
            tombstoned == [sum(1 for c in ids.capture_ids if c.startswith("cap-"))]
            or tombstoned[0] > 0
        )


# One production day's materialization, raw extraction and its downstream, as one run.
DAY_CHAIN = ",".join(key.to_user_string() for key in BY_NAME["production"].chain())
RAW_STEP = "raw_production"


@contextlib.contextmanager
def capture_db_busy(path: Path) -> Iterator[Callable[[], None]]:
    """The capture service holding a write transaction on its database (journal mode delete,
    so readers wait in SQLite's busy handler); yields the commit that ends it."""
    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    con.execute("BEGIN EXCLUSIVE")
    try:
        yield lambda: con.in_transaction and con.execute("COMMIT")
    finally:
        if con.in_transaction:
            con.execute("COMMIT")
        con.close()


def wait_for(what: str, ready: Callable[[], object], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.1)


def step_started(instance: dg.DagsterInstance, step_key: str) -> str | None:
    """The id of a run whose step `step_key` has started, from the instance's event log."""
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=erase_assets.ACTIVE)):
        run_id = record.dagster_run.run_id
        started = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if any(event.step_key == step_key for event in started):
            return run_id
    return None


def test_erasure_while_the_same_day_materializes_ends_with_the_subject_gone(
    grown: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A materialization of one of the subject's days (raw extraction and its downstream, one
    run in its own process, as a run worker) is in progress when the erasure starts: its raw
    step has started (event log) and waits on the capture DB, which the capture service holds
    until the erasure has written its tombstone. The extraction then drops and counts the
    subject's records, the erasure scrubs again after the run ends, and the subject is gone."""
    world = grown.copy(tmp_path)
    # Both processes wait on the busy capture DB rather than fail after SQLite's default 5 s.
    db_url = f"sqlite:///{world.home / 'capture_db.sqlite'}?timeout=600"
    monkeypatch.setenv("IDENTITY_DATA_CAPTURE_DB_URL", db_url)
    with world.open() as instance:
        ref, pseudonym, ids = pick_subject(world.home)
        key = check_key(local_key_file(world.home).read_text().strip())
        tombstone = (
            world.home / "lake" / TOMBSTONE_PREFIX / digest(key, "subject_pseudonym", pseudonym)
        )
        day = max(
            pl.concat(
                f.filter(pl.col("subject_pseudonym") == pseudonym)["capture_date"]
                for n, f in lake_tables(world.home).items()
                if n.startswith("raw/prod_captures/")
            )
        ).isoformat()
        with sqlite3.connect(world.home / "capture_db.sqlite") as con:
            (records_of_day,) = con.execute(
                "SELECT count(*) FROM captures WHERE subject_ref = ? AND captured_at >= ? "
                "AND captured_at < date(?, '+1 day')",
                (ref, day, day),
            ).fetchone()
        assert records_of_day > 0

        started = time.perf_counter()
        with capture_db_busy(world.home / "capture_db.sqlite") as commit:
            materialization = subprocess.Popen(
                [
                    str(REPO / ".venv/bin/dagster"),
                    *("asset", "materialize", "-m", "identity_data.definitions"),
                    *("--select", DAY_CHAIN, "--partition", day),
                ],
                cwd=REPO,
                env={
                    **os.environ,
                    "DAGSTER_HOME": str(world.dagster_home),
                    "IDENTITY_DATA_HOME": str(world.home),
                    "IDENTITY_DATA_ENV": "local",
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for(
                    "the extraction step",
                    lambda: materialization.poll() is not None or step_started(instance, RAW_STEP),
                )
                run_id = step_started(instance, RAW_STEP)
                assert run_id is not None, "the materialization ended before its raw step started"
                with ThreadPoolExecutor(1) as pool:
                    erasure = pool.submit(erasure_cli.main, ["subject", "--pseudonym", pseudonym])
                    # Released whatever happens: the erasure waits for the run, the run for it.
                    try:
                        wait_for("the tombstone", lambda: tombstone.exists() or erasure.done())
                        assert tombstone.exists()
                        # The extraction has not read the source yet, nor the tombstones.
                        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
                    finally:
                        commit()
                    assert erasure.result(timeout=600) == 0
            finally:
                assert materialization.wait(timeout=600) == 0
        elapsed = time.perf_counter() - started

        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        extracted = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["raw", "prod_captures"]), asset_partitions=[day]
            ),
            limit=1,
        ).records[0]
        assert extracted.run_id == run_id
        assert extracted.asset_materialization is not None
        assert extracted.asset_materialization.metadata["tombstoned_rows"].value == records_of_day
        (accounting,) = [
            e.asset_check_evaluation
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            if e.asset_check_evaluation and e.asset_check_evaluation.check_name == "row_accounting"
        ]
        assert accounting.passed
        assert accounting.metadata["tombstoned"].value == records_of_day

        assert occurrences(world.home, instance, needles(pseudonym, ids)) == {}
        audit = erasure_cli.audit_frame().row(0, named=True)
        # The run was in progress during the first pass: the erasure waited it out, scrubbed again.
        assert audit["passes"] >= 2
        assert audit["captures"] == len(ids.capture_ids)
        print(f"erasure alongside the day's materialization: {elapsed:.1f}s, audit {audit}")


def test_bigquery_rows_are_erased_like_duckdb_rows(
    grown: World, tmp_path: Path, bqemulator: Service
) -> None:
    world = grown.copy(tmp_path)
    with world.open():
        _, _, ids = pick_subject(world.home)
    local = DuckDBWarehouse(world.home / "warehouse.duckdb")
    specs = [TABLES[n] for n in erase.WAREHOUSE_SLICES if n in TABLES] + [SNAPSHOT_TABLE]
    with deployment_env({}):
        bq = BigQueryWarehouse(
            "test-project",
            f"erasure_{uuid.uuid4().hex[:8]}",
            "US",
            client=bigquery_client(bqemulator.url),
        )
        for spec in specs:
            bq.replace_slice(spec, local.read(spec, {}), {})
        removed_bq = erase.scrub_warehouse(bq, ids, {})
        removed_local = erase.scrub_warehouse(local, ids, {})
        assert removed_bq == removed_local and sum(removed_bq.values()) > 0
        for spec in specs:
            order = [c for c in ("capture_id", "task", "snapshot_id") if c in spec.columns]
            assert_frame_equal(bq.read(spec, {}).sort(order), local.read(spec, {}).sort(order))
            assert without(bq.read(spec, {}), ids).height == bq.read(spec, {}).height


def test_a_request_filed_from_the_ui_runs_by_itself_and_leaves_no_trace(
    grown: World, tmp_path: Path
) -> None:
    """Support staff launch `file_erasure_request` with the pseudonym in the launchpad; the
    daemon's sensor tick runs the erasure; afterwards neither the pseudonym nor the raw
    reference is anywhere in the instance (runs, configs, event logs, files) or the stores."""
    world = grown.copy(tmp_path)
    with world.open() as instance:
        ref, pseudonym, ids = pick_subject(world.home)
        job = load_defs().resolve_job_def(FILE_JOB)
        config = {"pseudonym": pseudonym.upper()}
        filing = job.execute_in_process(run_config=config, instance=instance)
        assert filing.success
        (request_id,), _ = filed_requests(LocalBlobStore(world.home / "lake"))

        demo = Demo(instance, Tally())
        sensor = demo.repository.get_sensor_def(erasure_request_sensor.name)
        assert demo.tick(sensor) == 1 and demo.tally.failed_runs == []
        assert demo.tick(sensor) == 0
        assert instance.has_dynamic_partition("erasure_requests", request_id)
        assert instance.get_run_by_id(filing.run_id) is None
        assert filed_requests(LocalBlobStore(world.home / "lake")) == ([], 0)

        assert occurrences(world.home, instance, [ref, *needles(pseudonym, ids)]) == {}
        on_disk = [
            path
            for path in world.dagster_home.rglob("*")
            if path.is_file()
            and path.suffix not in (".db", ".db-wal", ".db-shm")
            and any(n.encode() in path.read_bytes() for n in (ref, pseudonym))
        ]
        assert on_disk == []
        audit = erasure_cli.audit_frame()
        assert audit.row(0, named=True)["requested_by"] == "pseudonym"
        assert audit["captures"][0] == len(ids.capture_ids)


# The launchpad's "Launch Run" button sends this mutation with the typed config.
LAUNCH_RUN = """mutation($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message causes { message } }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def test_a_raw_reference_typed_into_the_launchpad_is_refused_before_any_run_exists(
    grown: World, tmp_path: Path
) -> None:
    """The UI's launch, through Dagster's GraphQL on this code location, with a raw reference
    where the pseudonym goes: refused while the plan is built, so no run is created, and the
    value is in no run, config, event log or file of the instance, nor in the error."""
    from dagster_graphql.test.utils import execute_dagster_graphql, infer_job_selector

    world = grown.copy(tmp_path)
    with world.open() as instance:
        ref, _, _ = pick_subject(world.home)
        runs_before = {r.run_id for r in instance.get_runs()}
        with graphql_workspace(instance, "identity_data.definitions", "defs") as context:
            params = {
                "selector": infer_job_selector(context, FILE_JOB),
                "runConfigData": {"pseudonym": ref},
            }
            result = execute_dagster_graphql(context, LAUNCH_RUN, {"executionParams": params})
        launched = result.data["launchRun"]
        assert launched["__typename"] == "PythonError"
        assert "64 hex digits" in str(launched["causes"])
        assert ref not in str(result.data)
        # Straight from Python (a script, a test): refused the same way, before a run exists.
        job = load_defs().resolve_job_def(FILE_JOB)
        with pytest.raises(dg.DagsterConfigMappingFunctionError):
            job.execute_in_process(run_config={"pseudonym": ref}, instance=instance)

        assert {r.run_id for r in instance.get_runs()} == runs_before
        assert filed_requests(LocalBlobStore(world.home / "lake")) == ([], 0)
        stored = [
            path
            for path in world.dagster_home.rglob("*")
            if path.is_file() and ref.encode() in path.read_bytes()
        ]
        assert stored == []


def test_on_gcs_erasure_rewrites_the_same_parquet_objects_blobs_and_snapshots(
    grown: World, tmp_path: Path, gcs_emulator_env: Service
) -> None:
    """The lake on fake-gcs-server through the production path (gcsfs under UPath for parquet
    rewrites, GcsBlobStore for blobs and snapshot versions) ends exactly like the local lake."""
    world = grown.copy(tmp_path)
    with world.open():
        _, _, ids = pick_subject(world.home)
    client = storage_client(gcs_emulator_env.url)
    bucket = client.create_bucket(f"erasure-{uuid.uuid4().hex[:8]}")
    upload_tree(bucket, world.home / "lake", "lake")
    stores = {
        "local": (LocalBlobStore(world.home / "lake"), UPath(world.home / "lake" / "tables")),
        "gcs": (
            GcsBlobStore(bucket.name, "lake", client=client),
            UPath(f"gs://{bucket.name}/lake/tables"),
        ),
    }
    outcome = {}
    for name, (lake, tables) in stores.items():
        remap = erase.near_duplicates_remap(tables, ids)
        outcome[name] = (
            erase.scrub_lake(tables, ids, remap),
            erase.delete_blobs(lake, tables, ids),
            erase.redact_snapshots(lake, ids, remap, "erasure-20261202T000000Z-00000000"),
        )
    assert outcome["gcs"] == outcome["local"]
    removed, (deleted, _), redactions = outcome["gcs"]
    assert sum(removed.values()) > 0 and deleted == len(ids.blob_keys) and len(redactions) == 1

    local_tables = world.home / "lake" / "tables"
    objects = {
        b.name.removeprefix("lake/tables/"): b
        for b in client.list_blobs(bucket, prefix="lake/tables/")
    }
    assert sorted(objects) == sorted(
        str(p.relative_to(local_tables)) for p in local_tables.rglob("*.parquet")
    )
    for rel, blob in objects.items():
        expected = pl.read_parquet(local_tables / rel)
        assert_frame_equal(pl.read_parquet(blob.download_as_bytes()), expected, check_exact=True)
    remaining = {b.name.removeprefix("lake/") for b in client.list_blobs(bucket, prefix="lake/")}
    assert not remaining & ids.blob_keys
    gcs_snapshot = snapshots.open(FIRST_SNAPSHOT, stores["gcs"][0])
    local_snapshot = snapshots.open(FIRST_SNAPSHOT, stores["local"][0])
    assert gcs_snapshot.version == local_snapshot.version == 2
    assert gcs_snapshot.manifest_sha256 == local_snapshot.manifest_sha256
