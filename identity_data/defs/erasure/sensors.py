"""Filed erasure requests run by themselves: from the UI's filing job, or a file dropped in."""

from __future__ import annotations

import dagster as dg

from identity_data.defs.erasure.partitions import ERASURE_REQUESTS, erasure_requests
from identity_data.defs.erasure.requests import REQUEST_PREFIX, filed_requests
from identity_data.defs.erasure.schedules import erasure_job
from identity_data.stores.deployment import Deployment

MAX_RUNS_PER_TICK = 25


@dg.sensor(
    job=erasure_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def erasure_request_sensor(context: dg.SensorEvaluationContext, deployment: Deployment):
    """Adds a partition for, and runs, each request under erasure/requests/ that has none yet."""
    # No cursor: a request is pending while its file exists and it has no partition. The CLI and
    # the retention schedule add the partition before filing, and run the request themselves.
    filed, strays = filed_requests(deployment.lake)
    if strays:
        context.log.warning(
            f"{strays} objects under {REQUEST_PREFIX}/ are not named <request id>.json; skipped"
        )
    new = [r for r in filed if not context.instance.has_dynamic_partition(ERASURE_REQUESTS, r)][
        :MAX_RUNS_PER_TICK
    ]
    if not new:
        return dg.SkipReason(f"{len(filed)} requests filed, none new")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=r, partition_key=r) for r in new],
        dynamic_partitions_requests=[erasure_requests.build_add_request(new)],
    )
