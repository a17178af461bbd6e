"""Pins what each Dagster private API behind identity_data/dagster_private.py does.

A Dagster upgrade that moves, renames or changes one of them fails here, naming it: an import
error when this module loads, or the test of the piece that changed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import typing
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from identity_data import dagster_private as private
from identity_data.launcher import LocalRunLauncher
from identity_data_tests.services import REPO

ADAPTER = REPO / "identity_data" / "dagster_private.py"
QUEUED = {"run_coordinator": {"module": "dagster", "class": "QueuedRunCoordinator"}}
LOCATION = private.CodeLocation(
    module_name="identity_data_tests.test_dagster_private",
    attribute="PINNED_DEFS",
    working_directory=str(REPO),
    location_name="pinned",
    repository_name="__repository__",
)
DAYS = ["2026-11-26", "2026-11-27", "2026-11-28"]


@dg.asset(
    partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01"),
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def daily() -> None:
    """A daily asset that one run backfills."""


@dg.sensor(asset_selection=[daily])
def pinned_sensor() -> dg.SkipReason:
    return dg.SkipReason("nothing to do")


class Greeting(dg.ConfigurableResource):
    text: str


@dg.sensor(asset_selection=[daily])
def greeting_sensor(greeting: Greeting) -> dg.SkipReason:
    return dg.SkipReason(greeting.text)


PINNED_DEFS = dg.Definitions(assets=[daily], sensors=[pinned_sensor, greeting_sensor])


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        found += [f"{where} {name}" for name in names if name.startswith("dagster._")]
    return found


def test_only_the_adapter_imports_dagster_private_modules():
    files = [
        path
        for folder in ("identity_data", "identity_data_tests", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != ADAPTER
    ]
    assert [hit for path in files for hit in _private_imports(path)] == []


def test_run_tags_are_the_names_dagster_writes():
    # The demo and the tests read these tags off runs that Dagster itself tagged.
    assert private.RUN_KEY_TAG == "dagster/run_key"
    assert private.SENSOR_NAME_TAG == "dagster/sensor_name"
    assert private.BACKFILL_ID_TAG == "dagster/backfill"
    assert private.PARENT_RUN_ID_TAG == "dagster/parent_run_id"
    assert private.ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert private.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"


@pytest.mark.parametrize(
    ("annotation", "is_dict"),
    [
        (dict, True),
        (dict[str, pl.DataFrame], True),
        (Mapping[str, pl.DataFrame], True),
        (pl.DataFrame, False),
        (pl.LazyFrame, False),
        (list[pl.DataFrame], False),
    ],
)
def test_is_dict_type_tells_a_per_partition_input(annotation: object, is_dict: bool):
    # LakeIOManager keeps several loaded partitions apart only for a dict-typed input.
    assert private.is_dict_type(annotation) is is_dict


def test_worker_health_result_is_what_run_monitoring_reads():
    result = private.CheckRunHealthResult(private.WorkerStatus.FAILED, "gone")
    assert (result.status, result.msg) == (private.WorkerStatus.FAILED, "gone")
    assert private.CheckRunHealthResult(private.WorkerStatus.RUNNING).msg is None
    # The type Dagster's run monitoring expects back from a launcher's health check.
    hints = typing.get_type_hints(dg.DefaultRunLauncher.check_run_worker_health)
    assert hints["return"] is private.CheckRunHealthResult
    assert LocalRunLauncher(inst_data=None).supports_check_run_worker_health


def test_sensor_cursor_is_stored_per_sensor_and_read_back():
    with dg.instance_for_test() as instance:
        assert private.sensor_cursor(instance, LOCATION, pinned_sensor.name) is None
        private.save_sensor_cursor(instance, LOCATION, pinned_sensor, "first")
        private.save_sensor_cursor(instance, LOCATION, pinned_sensor, "second")
        assert private.sensor_cursor(instance, LOCATION, pinned_sensor.name) == "second"
        assert private.sensor_cursor(instance, LOCATION, "other_sensor") is None
        ids = private.sensor_ids(LOCATION, pinned_sensor.name)
        assert ids == private.sensor_ids(LOCATION, pinned_sensor.name)
        assert ids != private.sensor_ids(LOCATION, "other_sensor")
        assert instance.get_instigator_state(*ids) is not None
        assert instance.get_ticks(*ids) == []


def test_wrapped_resources_reach_a_sensor_as_the_daemon_passes_them():
    with dg.instance_for_test() as instance:
        context = dg.SensorEvaluationContext(
            instance_ref=None,
            cursor=None,
            repository_name=LOCATION.repository_name,
            repository_def=PINNED_DEFS.get_repository_def(),
            instance=instance,
            sensor_name=greeting_sensor.name,
            resources=private.wrap_resources_for_execution({"greeting": Greeting(text="hi")}),
        )
        with context:
            assert greeting_sensor.evaluate_tick(context).skip_message == "hi"


def test_a_reported_freshness_change_is_the_assets_state():
    key = dg.AssetKey("daily")
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            private.FreshnessStateChange(
                key=key,
                previous_state=private.FreshnessState.PASS,
                new_state=private.FreshnessState.FAIL,
                state_change_timestamp=time.time(),
            )
        )
        record = instance.get_freshness_state_records([key])[key]
    # The freshness alert compares the state's value with the string "FAIL".
    assert record.freshness_state.value == "FAIL"


def test_reset_forgets_an_entered_instances_defs_state_storage():
    with dg.instance_for_test():
        assert private.defs_state_storage_is_set()
        private.reset_defs_state_storage()
        assert not private.defs_state_storage_is_set()


def test_backfill_runs_through_the_daemons_backfill_loop():
    with dg.instance_for_test(overrides=QUEUED) as instance:
        private.run_backfill(instance, LOCATION, "pinned", [daily.key], DAYS, iterations=2)
        runs = instance.get_runs(dg.RunsFilter(tags={private.BACKFILL_ID_TAG: "pinned"}))
    assert [
        (
            run.tags[private.ASSET_PARTITION_RANGE_START_TAG],
            run.tags[private.ASSET_PARTITION_RANGE_END_TAG],
        )
        for run in runs
    ] == [(DAYS[0], DAYS[-1])]


def test_graphql_workspace_serves_the_uis_requests_for_a_code_location():
    from dagster_graphql.test.utils import execute_dagster_graphql

    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
    with (
        dg.instance_for_test() as instance,
        private.graphql_workspace(instance, LOCATION.module_name, LOCATION.attribute) as context,
    ):
        result = execute_dagster_graphql(context, query)
    assert result.data == {"repositoriesOrError": {"nodes": [{"name": "__repository__"}]}}


def _freed_while_queueing(storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run-a frees the pool's one slot after run-b's step looked for a free one and before it
    joins the queue: the interleaving that loses the slot upstream."""
    storage.set_concurrency_slots("warehouse-x", 1)
    assert storage.claim_concurrency_slot("warehouse-x", "run-a", "a").is_claimed
    join = storage.add_pending_step

    def free_then_join(*args, **kwargs):
        storage.free_concurrency_slot_for_step("run-a", "a")
        return join(*args, **kwargs)

    monkeypatch.setattr(storage, "add_pending_step", free_then_join)


def test_upstream_loses_a_slot_freed_while_a_step_queues(monkeypatch: pytest.MonkeyPatch):
    """Pins the Dagster bug the patched claim works around: when this fails, upstream assigns
    the freed slot itself, and the patch can go."""
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        _freed_while_queueing(storage, monkeypatch)
        claims = [private.UPSTREAM_CLAIM(storage, "warehouse-x", "run-b", "b") for _ in range(3)]
        assert not any(c.is_claimed for c in claims)
        assert storage.get_concurrency_info("warehouse-x").active_slot_count == 0


def test_a_step_claims_a_slot_freed_while_it_queued(monkeypatch: pytest.MonkeyPatch):
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        _freed_while_queueing(storage, monkeypatch)
        assert storage.claim_concurrency_slot("warehouse-x", "run-b", "b").is_claimed
        assert storage.get_concurrency_info("warehouse-x").active_run_ids == {"run-b"}


def test_a_lost_slot_goes_to_the_head_of_the_queue():
    """The state the race leaves with two steps queued: the slot goes in queue order (priority,
    then age), not to whichever step asks first."""
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse-x", 1)
        storage.add_pending_step("warehouse-x", "run-b", "b", priority=0)
        storage.add_pending_step("warehouse-x", "run-c", "c", priority=5)
        assert not storage.claim_concurrency_slot("warehouse-x", "run-b", "b", 0).is_claimed
        assert storage.claim_concurrency_slot("warehouse-x", "run-c", "c", 5).is_claimed
        assert not storage.claim_concurrency_slot("warehouse-x", "run-b", "b", 0).is_claimed


def test_a_process_that_loads_the_definitions_claims_through_the_patch():
    """A run worker loads the code location and nothing else of ours before its executor
    claims slots: loading the definitions must be enough."""
    probe = (
        "import dagster as dg\n"
        "from identity_data.definitions import defs\n"
        "defs()\n"
        "with dg.instance_for_test() as instance:\n"
        "    print(type(instance.event_log_storage).claim_concurrency_slot.__code__.co_filename)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-1] == str(ADAPTER)
