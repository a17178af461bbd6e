"""The whole daily graph with IDENTITY_DATA_ENV=prod on fake-gcs-server, bqemulator and a real
PostgreSQL (nothing mocked at the client layer), checked row for row against the embedded default
run on the same sample."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal

from identity_data.settings import ENV, HOME, PROD_REQUIRED
from identity_data.stores.warehouse import DuckDBWarehouse
from identity_data_tests.prod.world import (
    DAY,
    TABLE_KEYS,
    ProdWorld,
    deployment_env,
    generate_sample,
    read_tables,
    relative_uris,
    run_graph,
    seed_postgres,
)
from identity_data_tests.services import FaultProxy, Service, storage_client

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAW_ASSETS = ("raw/prod_captures", "raw/prod_quarantine")


@dataclass
class Outcome:
    tables: dict[str, pl.DataFrame]
    raw: dict[str, dict[str, pl.DataFrame]]
    failed_runs: list[str]
    failed_checks: list[str]
    seconds: float


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("prod-sample") / "data")


@pytest.fixture(scope="module")
def key() -> str:
    # One pseudonym key for both deployments, so subject pseudonyms compare equal.
    return secrets.token_hex(32)


def run_and_collect(
    read: Callable[[], tuple[dict, dict]],
    tmp: Path,
    before_run: Callable[[str], None] | None = None,
) -> Outcome:
    started = time.monotonic()
    with dg.instance_for_test(temp_dir=str(tmp)) as instance:
        tally = run_graph(instance, before_run)
    tables, raw = read()
    return Outcome(tables, raw, tally.failed_runs, tally.checks_failed, time.monotonic() - started)


@pytest.fixture(scope="module")
def local(sample: Path, key: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The embedded default (SQLite, folder lake, DuckDB) on a copy of the sample."""
    home = tmp_path_factory.mktemp("local") / "data"
    shutil.copytree(sample, home)

    def read() -> tuple[dict, dict]:
        root = f"{(home / 'lake').resolve().as_uri()}/"
        tables = read_tables(DuckDBWarehouse(home / "warehouse.duckdb"), root)
        raw = {
            asset: {
                p.stem: relative_uris(pl.read_parquet(p), root)
                for p in (home / "lake/tables" / asset).glob("*.parquet")
            }
            for asset in RAW_ASSETS
        }
        return tables, raw

    with deployment_env({ENV: "local", HOME: str(home), "IDENTITY_DATA_PSEUDONYM_KEY": key}):
        return run_and_collect(read, tmp_path_factory.mktemp("local-instance"))


@pytest.fixture(scope="module")
def world(
    sample: Path, key: str, fake_gcs: Service, bqemulator: Service, postgres_url: str
) -> ProdWorld:
    return ProdWorld.build(
        sample,
        storage_client(fake_gcs.url),
        seed_postgres(postgres_url),
        key,
        fake_gcs.url,
        bqemulator.url,
    )


def collect_prod(world: ProdWorld) -> tuple[dict, dict]:
    return read_tables(world.warehouse(), world.lake_root), {
        a: world.lake_parquet(a) for a in RAW_ASSETS
    }


@pytest.fixture(scope="module")
def prod(world: ProdWorld, local: Outcome, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    with deployment_env(world.settings()):
        return run_and_collect(lambda: collect_prod(world), tmp_path_factory.mktemp("prod"))


def assert_tables_equal(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert got.keys() == want.keys()
    for name, frame in want.items():
        assert frame.height, f"the local run left table {name} empty: nothing to compare"
        assert got[name].select(TABLE_KEYS[name]).is_duplicated().sum() == 0, name
        assert_frame_equal(got[name], frame, check_exact=True)


def test_prod_graph_runs_clean_like_local(local: Outcome, prod: Outcome) -> None:
    print(f"\nlocal flow {local.seconds:.1f}s, prod flow {prod.seconds:.1f}s")
    assert prod.failed_runs == local.failed_runs == []
    assert prod.failed_checks == local.failed_checks


def test_bigquery_tables_hold_exactly_the_local_rows(local: Outcome, prod: Outcome) -> None:
    assert_tables_equal(prod.tables, local.tables)
    captures = prod.tables["captures"]
    assert set(captures["source"]) == {"production", "campaign"}


def test_raw_partitions_from_postgres_equal_those_from_sqlite(
    local: Outcome, prod: Outcome
) -> None:
    for asset in RAW_ASSETS:
        assert prod.raw[asset].keys() == local.raw[asset].keys() == {DAY}
        assert_frame_equal(prod.raw[asset][DAY], local.raw[asset][DAY])
    assert prod.raw["raw/prod_captures"][DAY].height > 0


def test_the_graph_ran_as_a_reader_that_sees_only_the_extract_columns(world: ProdWorld) -> None:
    engine = sa.create_engine(world.capture_db_url)
    try:
        with engine.connect() as con:
            assert con.execute(sa.text("SELECT count(capture_id) FROM captures")).scalar_one() > 0
        for forbidden in (
            "SELECT full_name FROM subjects",
            "SELECT session_id FROM captures",
            "DELETE FROM captures",
        ):
            with (
                engine.connect() as con,
                pytest.raises(sa.exc.DBAPIError, match=r"permission denied|read-only transaction"),
            ):
                con.execute(sa.text(forbidden))
    finally:
        engine.dispose()


def test_rematerializing_adds_no_rows(
    world: ProdWorld, local: Outcome, prod: Outcome, tmp_path_factory: pytest.TempPathFactory
) -> None:
    blobs = world.object_count("raw/captures/")
    with deployment_env(world.settings()):
        again = run_and_collect(lambda: collect_prod(world), tmp_path_factory.mktemp("again"))
    assert again.failed_runs == []
    assert_tables_equal(again.tables, local.tables)
    assert world.object_count("raw/captures/") == blobs
    tables = {t.table_id for t in world.warehouse().client.list_tables(world.dataset)}
    assert tables == set(TABLE_KEYS), "staging tables were left behind"


# --- faults --------------------------------------------------------------------------------


@pytest.fixture
def faulty_world(
    world: ProdWorld,
    sample: Path,
    fault_proxy: Callable[[int], FaultProxy],
    fake_gcs: Service,
    bqemulator: Service,
) -> Iterator[tuple[ProdWorld, FaultProxy, FaultProxy]]:
    """The same deployment on a fresh lake prefix and dataset, reached through fault proxies."""
    gcs, bq = fault_proxy(fake_gcs.port), fault_proxy(bqemulator.port)
    fresh = ProdWorld(
        world.client,
        world.lake_bucket,
        world.capture_bucket,
        world.capture_db_url,
        world.key,
        gcs.url,
        bq.url,
        prefix="faulty",
        dataset=f"{world.dataset}_faulty",
    )
    fresh.upload_sources(sample)
    yield fresh, gcs, bq


def test_dropped_requests_are_retried_to_exactly_the_expected_rows(
    faulty_world: tuple[ProdWorld, FaultProxy, FaultProxy],
    local: Outcome,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    world, gcs, bq = faulty_world
    labels: list[str] = []

    def break_first_request(label: str) -> None:
        # The first request of each materialization, whatever it is, to storage and to BigQuery:
        # a reset connection in one run, a 503 answer in the next.
        labels.append(label)
        for proxy in (gcs, bq):
            proxy.faults.clear()  # one not fired (a run without BigQuery) must not carry over
            proxy.inject("reset" if len(labels) % 2 else "503", times=1)

    with deployment_env(world.settings()):
        outcome = run_and_collect(
            lambda: collect_prod(world),
            tmp_path_factory.mktemp("faulty"),
            before_run=break_first_request,
        )
    assert outcome.failed_runs == []
    # A run's label names its assets: only those naming a warehouse table reach BigQuery.
    warehouse_runs = [i for i, label in enumerate(labels, 1) if "warehouse/" in label]
    kinds = ["reset" if i % 2 else "503" for i in range(1, len(labels) + 1)]
    assert gcs.fired == {k: kinds.count(k) for k in set(kinds)}
    assert bq.fired == {k: [kinds[i - 1] for i in warehouse_runs].count(k) for k in set(kinds)}
    assert_tables_equal(outcome.tables, local.tables)


# --- launch-time settings -------------------------------------------------------------------


@pytest.mark.parametrize("missing", PROD_REQUIRED)
def test_prod_launch_without_a_setting_fails_naming_it(
    world: ProdWorld, missing: str, tmp_path: Path
) -> None:
    from identity_data.definitions import defs as load_defs

    definitions = load_defs()
    settings = world.settings()
    del settings[missing]
    with deployment_env(settings), dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize(
            list(definitions.assets or []),
            selection=dg.AssetSelection.assets(
                *(dg.AssetKey.from_user_string(a) for a in RAW_ASSETS)
            ),
            partition_key=DAY,
            resources=dict(definitions.resources or {}),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    errors = [
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.is_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)
    ]
    assert any(missing in text for text in errors), errors


@pytest.mark.parametrize("env", ["local", "prod"])
def test_dg_check_defs_passes_without_any_deployment_setting(env: str, tmp_path: Path) -> None:
    """Definitions load without reading a setting: prod needs none of them to be checked."""
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with deployment_env({ENV: env, "DAGSTER_HOME": str(tmp_path)}):
        done = subprocess.run(
            [str(REPO / ".venv/bin/dg"), "check", "defs"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout + done.stderr
