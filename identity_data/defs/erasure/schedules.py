"""The retention sweep: weekly, through the same request partition and deletion path."""

import dagster as dg

from identity_data.defs.erasure.assets import AUDIT, ERASURE_JOB, REDACTIONS
from identity_data.defs.erasure.partitions import ERASURE_REQUESTS, erasure_requests
from identity_data.defs.erasure.requests import file_request, new_request_id, retention_request
from identity_data.defs.erasure.retention import DEFAULT_MAX_AGE_DAYS, DEFAULT_SNAPSHOT_IN_USE_DAYS
from identity_data.stores.deployment import Deployment

erasure_job = dg.define_asset_job(
    ERASURE_JOB,
    selection=dg.AssetSelection.assets(AUDIT, REDACTIONS),
    partitions_def=erasure_requests,
    description="Execute one filed erasure request (the partition is the request id).",
)


# Sunday 05:00 UTC: away from the daily extraction and the Monday snapshot.
@dg.schedule(
    job=erasure_job,
    cron_schedule="0 5 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def retention_sweep(context: dg.ScheduleEvaluationContext, deployment: Deployment):
    """Files a retention request and runs it: old production captures leave every store."""
    request_id = new_request_id("retention")
    # The partition first: erasure_request_sensor runs only requests that have none yet.
    context.instance.add_dynamic_partitions(ERASURE_REQUESTS, [request_id])
    file_request(
        deployment.lake,
        request_id,
        retention_request(DEFAULT_MAX_AGE_DAYS, DEFAULT_SNAPSHOT_IN_USE_DAYS),
    )
    return dg.RunRequest(run_key=request_id, partition_key=request_id)
