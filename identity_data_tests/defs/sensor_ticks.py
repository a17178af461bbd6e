"""One sensor evaluation as the daemon runs it, for the drop-folder sensors' tests."""

import dagster as dg

from identity_data.stores.deployment import Deployment


def tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult:
    """One evaluation of `sensor` with its resources, and the partitions it asks for applied."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"deployment": Deployment()}
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result
