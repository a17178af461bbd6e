"""The batch cadence of production captures: one run per capture day."""

import dagster as dg

from identity_data.sources import BY_NAME, daily

PRODUCTION = BY_NAME["production"]

production_daily_job = dg.define_asset_job(
    "production_daily",
    selection=dg.AssetSelection.assets(
        PRODUCTION.key("raw", "captures"), PRODUCTION.key("raw", "quarantine")
    ),
    partitions_def=daily,
    description="Extract yesterday's production captures into the raw zone.",
)

# 02:00 UTC leaves the capture service's late writes of the previous day time to land.
production_daily_schedule = dg.build_schedule_from_partitioned_job(
    production_daily_job,
    description=(
        "At 02:00 UTC, extracts the previous day's production captures into the raw zone; "
        "annotation_automation then runs that day's annotations, downstream_automation its "
        "warehouse tables."
    ),
    hour_of_day=2,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
