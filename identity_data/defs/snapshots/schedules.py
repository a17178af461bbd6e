"""A weekly training snapshot, so model comparisons always have a recent frozen set."""

from __future__ import annotations

import dagster as dg

from identity_data.defs.snapshots.assets import SNAPSHOT
from identity_data.defs.snapshots.partitions import SNAPSHOTS, snapshots

snapshot_job = dg.define_asset_job(
    "training_snapshot_job",
    selection=dg.AssetSelection.assets(SNAPSHOT),
    partitions_def=snapshots,
    description="Make one training snapshot (the partition is the snapshot id).",
)


# Monday 04:00 UTC: after the night's daily extraction (02:00) and its downstream automation.
@dg.schedule(
    job=snapshot_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weekly_snapshot(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Adds the partition `weekly-<date>` and requests it with the default filters."""
    snapshot_id = f"weekly-{context.scheduled_execution_time:%Y-%m-%d}"
    if not context.instance.has_dynamic_partition(SNAPSHOTS, snapshot_id):
        context.instance.add_dynamic_partitions(SNAPSHOTS, [snapshot_id])
    return dg.RunRequest(run_key=snapshot_id, partition_key=snapshot_id)
