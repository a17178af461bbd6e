"""Every Dagster private API the project uses, behind one module.

Dagster's underscore modules change between releases without a deprecation. Nothing here has a
public equivalent in Dagster 1.13; identity_data_tests/test_dagster_private.py pins what each
piece does, so an upgrade that moves or changes one fails there, naming it, instead of somewhere
deep in a pipeline or daemon test. Use a public `dg.` name wherever one exists.

The run launcher and the lake IO manager import this module in every process, so what only the
demo's in-process daemon and the tests need is imported when called (the backfill daemon alone
takes about half a second to import).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.execution.build_resources import wrap_resources_for_execution
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.defs_state.base import _current_storage
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARENT_RUN_ID_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)
from dagster._core.storage.upath_io_manager import is_dict_type

if TYPE_CHECKING:
    from dagster._core.remote_origin import RemoteInstigatorOrigin
    from dagster._core.workspace.context import WorkspaceRequestContext

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "BACKFILL_ID_TAG",
    "PARENT_RUN_ID_TAG",
    "RUN_KEY_TAG",
    "SENSOR_NAME_TAG",
    "UPSTREAM_CLAIM",
    "CheckRunHealthResult",
    "CodeLocation",
    "FreshnessState",
    "FreshnessStateChange",
    "WorkerStatus",
    "defs_state_storage_is_set",
    "graphql_workspace",
    "is_dict_type",
    "launch_asset_job_run",
    "reset_defs_state_storage",
    "run_backfill",
    "save_sensor_cursor",
    "sensor_cursor",
    "sensor_ids",
    "wrap_resources_for_execution",
]


UPSTREAM_CLAIM = SqlEventLogStorage.claim_concurrency_slot


@functools.wraps(UPSTREAM_CLAIM)
def _claim_concurrency_slot(
    self: SqlEventLogStorage,
    concurrency_key: str,
    run_id: str,
    step_key: str,
    priority: int | None = None,
):
    """Dagster's pool claim, plus a free slot handed to the queue on every blocked try.

    Upstream, a step checks for a free slot and then joins the queue unassigned; a slot freed
    between the two is handed to the queue as it stood (without this step), and nothing hands
    it out again until another slot is freed. The step then waits forever next to a free slot,
    and so does every run queued behind it: seen in the daemon test, a warehouse step blocked on
    `warehouse-training_examples` with the pool's one slot free. Every SQL storage (SQLite
    here, PostgreSQL in production) inherits the claim from SqlEventLogStorage.
    """
    status = UPSTREAM_CLAIM(self, concurrency_key, run_id, step_key, priority)
    if status.is_claimed or status.is_assigned or not self.has_unassigned_slots(concurrency_key):
        return status
    # The queue's head gets the slot (priority, then age), which need not be this step.
    self.assign_pending_steps([concurrency_key])
    return UPSTREAM_CLAIM(self, concurrency_key, run_id, step_key, priority)


# Every process that runs steps imports this module (through the lake IO manager), before its
# executor claims a slot.
SqlEventLogStorage.claim_concurrency_slot = _claim_concurrency_slot


@dataclass(frozen=True)
class CodeLocation:
    """A code location as workspace.yaml describes it; the daemon keys its sensors' state and
    ticks by the origin this describes."""

    module_name: str
    attribute: str
    working_directory: str
    location_name: str
    repository_name: str


def _sensor_origin(location: CodeLocation, sensor_name: str) -> RemoteInstigatorOrigin:
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=location.module_name,
        attribute=location.attribute,
        working_directory=location.working_directory,
    )
    code_location = ManagedGrpcPythonEnvCodeLocationOrigin(
        target, location_name=location.location_name
    )
    repository = RemoteRepositoryOrigin(code_location, location.repository_name)
    return RemoteInstigatorOrigin(repository, sensor_name)


def sensor_ids(location: CodeLocation, sensor_name: str) -> tuple[str, str]:
    """(origin id, selector id) of a sensor, as `instance.get_ticks` and
    `instance.get_instigator_state` take them."""
    origin = _sensor_origin(location, sensor_name)
    return origin.get_id(), origin.get_selector().get_id()


def sensor_cursor(
    instance: dg.DagsterInstance, location: CodeLocation, sensor_name: str
) -> str | None:
    """The cursor the daemon would pass the sensor's next tick; None before its first tick."""
    from dagster._core.scheduler.instigation import SensorInstigatorData

    state = instance.get_instigator_state(*sensor_ids(location, sensor_name))
    data = state.instigator_data if state else None
    return data.cursor if isinstance(data, SensorInstigatorData) else None


def save_sensor_cursor(
    instance: dg.DagsterInstance,
    location: CodeLocation,
    sensor: dg.SensorDefinition,
    cursor: str | None,
) -> None:
    """Store `cursor` where the daemon reads it (the sensor's instigator state), as after a
    successful tick now."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        SensorInstigatorData,
    )

    origin = _sensor_origin(location, sensor.name)
    now = time.time()
    data = SensorInstigatorData(
        last_tick_timestamp=now,
        min_interval=sensor.minimum_interval_seconds,
        cursor=cursor,
        last_tick_start_timestamp=now,
        sensor_type=sensor.sensor_type,
        last_tick_success_timestamp=now,
    )
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, data)
    if instance.get_instigator_state(*sensor_ids(location, sensor.name)):
        instance.update_instigator_state(state)
    else:
        instance.add_instigator_state(state)


@contextlib.contextmanager
def graphql_workspace(
    instance: dg.DagsterInstance, module_name: str, attribute: str
) -> Iterator[WorkspaceRequestContext]:
    """The request context the webserver's GraphQL runs in, for a code location loaded in this
    process: what `dagster_graphql.test.utils.execute_dagster_graphql` takes, so a test sends
    exactly the UI's requests."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = LoadableTargetOrigin(module_name=module_name, attribute=attribute)
    with in_process_test_workspace(instance, origin) as context:
        yield context


def launch_asset_job_run(
    instance: dg.DagsterInstance,
    module_name: str,
    attribute: str,
    container_image: str,
    tags: dict[str, str],
) -> dg.DagsterRun:
    """Create a run of the code location's implicit asset job, as the image `container_image`
    would serve it, and hand it to the instance's run launcher, as the run queue does; pinned
    by identity_data_tests/deploy/test_chart.py, which records what K8sRunLauncher POSTs."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.test_utils import create_run_for_test

    origin = JobPythonOrigin(
        IMPLICIT_ASSET_JOB_NAME,
        RepositoryPythonOrigin(
            sys.executable,
            ModuleCodePointer(module_name, attribute, working_directory=None),
            container_image=container_image,
        ),
    )
    run = create_run_for_test(
        instance, job_name=IMPLICIT_ASSET_JOB_NAME, tags=tags, job_code_origin=origin
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def defs_state_storage_is_set() -> bool:
    """Whether an entered instance's defs-state storage is current in this context."""
    return _current_storage.get() is not None


def reset_defs_state_storage() -> None:
    """Forget the defs-state storage that entering an instance sets (a context variable), so a
    disposed instance cannot linger as the storage of later definitions loads."""
    _current_storage.set(None)


def run_backfill(
    instance: dg.DagsterInstance,
    location: CodeLocation,
    backfill_id: str,
    assets: Sequence[dg.AssetKey],
    partition_keys: Sequence[str],
    iterations: int,
) -> None:
    """File a backfill of `partition_keys` of `assets` and run `iterations` iterations of the
    daemon's backfill loop on it in this process, against the code location as the daemon
    loads it."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    target = ModuleTarget(
        module_name=location.module_name,
        attribute=location.attribute,
        working_directory=location.working_directory,
        location_name=location.location_name,
    )
    with create_test_daemon_workspace_context(target, instance) as workspace:
        request = workspace.create_request_context()
        (entry,) = request.get_code_location_entries().values()
        if entry.code_location is None:
            raise RuntimeError(
                f"code location {location.location_name} did not load: {entry.load_error}"
            )
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=request.asset_graph,
            partition_names=partition_keys,
            asset_selection=assets,
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        for _ in range(iterations):
            list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
