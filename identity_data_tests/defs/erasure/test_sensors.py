"""The erasure request sensor, evaluated as the daemon would: only filed requests with no
partition yet become runs; other files in the folder are named in a warning, never run."""

import dagster as dg

from identity_data.defs.erasure.partitions import erasure_requests
from identity_data.defs.erasure.requests import (
    REQUEST_PREFIX,
    file_request,
    new_request_id,
    subject_request,
)
from identity_data.defs.erasure.sensors import erasure_request_sensor
from identity_data.stores.blobs import LocalBlobStore
from identity_data.stores.deployment import Deployment


def tick(instance: dg.DagsterInstance):
    context = dg.build_sensor_context(instance=instance, resources={"deployment": Deployment()})
    return erasure_request_sensor(context)


def test_new_requests_get_a_partition_and_a_run_once(data_home, instance):
    lake = LocalBlobStore(data_home / "lake")
    assert isinstance(tick(instance), dg.SkipReason)
    ui_request = file_request(lake, new_request_id(), subject_request("a" * 64, "pseudonym"))
    cli_request = new_request_id()
    instance.add_dynamic_partitions(erasure_requests.name, [cli_request])
    file_request(lake, cli_request, subject_request("b" * 64, "subject_ref"))
    lake.put_if_absent(f"{REQUEST_PREFIX}/notes.json", b"{}")

    result = tick(instance)
    assert [r.partition_key for r in result.run_requests] == [ui_request]
    assert [r.run_key for r in result.run_requests] == [ui_request]
    (added,) = result.dynamic_partitions_requests
    assert list(added.partition_keys) == [ui_request]

    instance.add_dynamic_partitions(erasure_requests.name, [ui_request])
    assert isinstance(tick(instance), dg.SkipReason)
