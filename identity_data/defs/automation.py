"""Downstream assets follow their inputs declaratively (conditions: identity_data/conditions.py).

Raw partitions arrive on a schedule or a sensor; everything after them (annotations, consensus,
warehouse) carries an automation condition that two sensors evaluate, so a new raw or label
partition pulls exactly the affected downstream partitions and a backfill needs no second,
hand-kept job graph. Two, because a sensor's run tags are the only per-run setting it has: the
face-detection annotations get runs of their own whose tags give their pod the detector's
resources on Kubernetes (identity_data/fanout.py), and every other asset runs in ordinary pods.
"""

import dagster as dg

from identity_data.fanout import detector_run_tags
from identity_data.sources import SOURCES

AUTOMATION_SENSOR = "downstream_automation"
ANNOTATION_SENSOR = "annotation_automation"
# In this order the demo ticks them, so a round annotates before it loads the warehouse.
AUTOMATION_SENSORS = (ANNOTATION_SENSOR, AUTOMATION_SENSOR)
ANNOTATIONS = dg.AssetSelection.assets(*(s.key("annotations", "annotations") for s in SOURCES))
TRIGGER_TAG = "identity_data/trigger"


def _sensor(
    name: str, target: dg.AssetSelection, description: str, tags: dict[str, object]
) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        name,
        target=target,
        description=description,
        # Shown in the runs list next to the sensor's own tags, so a run says why it exists.
        run_tags={TRIGGER_TAG: name, **tags},
        default_status=dg.DefaultSensorStatus.RUNNING,
        # Dagster's default: a change travels one asset level per tick, so this bounds latency.
        minimum_interval_seconds=30,
        # ReportedChange reads materialization metadata: a Python condition, evaluated in user
        # code.
        use_user_code_server=True,
        # Runs, not backfills: a single-run backfill policy already makes a day range one run,
        # and a backfill would wait for one more daemon loop before launching it.
        emit_backfills=False,
    )


annotation_automation = _sensor(
    ANNOTATION_SENSOR,
    ANNOTATIONS,
    "Runs face-detection annotation for every new or re-extracted raw partition, in runs of "
    "annotations only: on Kubernetes their run pod gets the detector's resources.",
    detector_run_tags(),
)
downstream_automation = _sensor(
    AUTOMATION_SENSOR,
    dg.AssetSelection.all() - ANNOTATIONS,
    "Runs consensus, near-duplicates and warehouse tables when their inputs change: every raw "
    "and annotation partition, and the training examples of exactly the partitions whose "
    "labels or near-duplicate clusters changed.",
    {},
)
