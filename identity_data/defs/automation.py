"""Downstream assets follow their inputs declaratively.

Raw partitions arrive on a schedule or a sensor; everything after them (annotations, consensus,
warehouse) carries AutomationCondition.eager(), so a new raw or label partition pulls exactly the
affected downstream partitions, and a backfill does not need a second, hand-kept job graph.
"""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "downstream_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
