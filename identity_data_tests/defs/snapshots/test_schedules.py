"""The weekly snapshot and retention schedules, evaluated as the daemon would."""

from datetime import UTC, datetime

import dagster as dg

from identity_data.defs.erasure.requests import read_request
from identity_data.defs.erasure.schedules import retention_sweep
from identity_data.defs.snapshots.schedules import weekly_snapshot
from identity_data.stores.blobs import LocalBlobStore
from identity_data.stores.deployment import Deployment

MONDAY = datetime(2026, 11, 30, 4, tzinfo=UTC)


def test_weekly_snapshot_adds_and_requests_its_partition(instance):
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY)
    request = weekly_snapshot(context)
    assert request.partition_key == request.run_key == "weekly-2026-11-30"
    assert instance.has_dynamic_partition("snapshots", "weekly-2026-11-30")


def test_retention_sweep_files_a_policy_request_for_the_erasure_path(data_home, instance):
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=MONDAY, resources={"deployment": Deployment()}
    )
    request = retention_sweep(context)
    assert instance.has_dynamic_partition("erasure_requests", request.partition_key)
    filed = read_request(LocalBlobStore(data_home / "lake"), request.partition_key)
    assert filed["scope"] == "retention" and filed["requested_by"] == "retention_policy"
    assert filed["max_age_days"] == 365
