"""Downstream assets follow their inputs declaratively (conditions: identity_data/conditions.py).

Raw partitions arrive on a schedule or a sensor; everything after them (annotations, consensus,
warehouse) carries an automation condition that this one sensor evaluates, so a new raw or label
partition pulls exactly the affected downstream partitions and a backfill needs no second,
hand-kept job graph.
"""

import dagster as dg

AUTOMATION_SENSOR = "downstream_automation"
# Shown in the runs list next to the sensor's own tags, so a run says why it exists.
RUN_TAGS = {"identity_data/trigger": AUTOMATION_SENSOR}

automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR,
    target=dg.AssetSelection.all(),
    description=(
        "Runs annotations, consensus, near-duplicates and warehouse tables when their inputs "
        "change: every raw partition, and the training examples of exactly the partitions whose "
        "labels or near-duplicate clusters changed."
    ),
    run_tags=RUN_TAGS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Dagster's default: a change travels one asset level per tick, so this bounds latency.
    minimum_interval_seconds=30,
    # ReportedChange reads materialization metadata: a Python condition, evaluated in user code.
    use_user_code_server=True,
    # Runs, not backfills: a single-run backfill policy already makes a day range one run, and
    # a backfill would wait for one more daemon loop before launching it.
    emit_backfills=False,
)
