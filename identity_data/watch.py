"""Sensors that turn files landing under a lake prefix into dynamic partitions and runs."""

import hashlib
import json
from collections.abc import Callable

import dagster as dg

from identity_data.safety import UnsafePathError, describe, key_fault
from identity_data.stores.blobs import BlobStore, ObjectInfo
from identity_data.stores.deployment import Deployment

MAX_RUNS_PER_TICK = 25
# Tag on every sensor-launched run: the runs list shows which file a run is for.
FILE_TAG = "identity_data/file"


def cursor_key(key: str) -> str:
    """How the cursor (stored in the instance) remembers an object: by its key, or, for a key
    outside the object-key grammar (a name with `@`, a space or non-ASCII may be personal data),
    by a digest of it, which no key in the grammar can equal (it admits no `:`)."""
    if key_fault(key) is None:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def build_drop_sensor(
    name: str,
    prefix: str,
    partitions_def: dg.DynamicPartitionsDefinition,
    target: dg.AssetSelection,
    partition_for: Callable[[ObjectInfo, BlobStore], str | None],
    description: str,
    suffixes: tuple[str, ...],
    job_name: str,
    max_runs: int = MAX_RUNS_PER_TICK,
) -> dg.SensorDefinition:
    """Watch `prefix`; each new or changed object (by content version) requests one run.

    The cursor maps object key -> last seen version, so a restart neither repeats nor misses a
    file; run keys carry the version, so a re-evaluated tick cannot launch a run twice. At most
    `max_runs` objects are taken per tick: a dump of thousands of files drains over several ticks
    instead of flooding the instance. Runs belong to the named job `job_name`, so the runs list
    says what they do.
    """
    partitions_name = partitions_def.name
    if partitions_name is None:
        raise ValueError(f"{name}: its dynamic partitions definition needs a name")
    job = dg.define_asset_job(job_name, selection=target, description=description)

    @dg.sensor(
        name=name,
        description=description,
        target=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, deployment: Deployment) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        new_keys: list[str] = []
        runs: list[dg.RunRequest] = []
        skipped: list[tuple[int, str, UnsafePathError]] = []
        listed = 0
        for listed, obj in enumerate(deployment.lake.list(prefix, suffixes), start=1):
            if len(runs) >= max_runs:
                listed -= 1
                break
            remembered = cursor_key(obj.key)
            if seen.get(remembered) == obj.version:
                continue
            seen[remembered] = obj.version
            try:
                partition = partition_for(obj, deployment.lake)
            except UnsafePathError as err:
                # Named by position and digest: the key may be personal data. Logged once per
                # content version (the cursor holds it); no partition, no run.
                skipped.append((listed, obj.key, err))
                continue
            if partition is None:
                continue
            if not context.instance.has_dynamic_partition(partitions_name, partition):
                new_keys.append(partition)
            runs.append(
                dg.RunRequest(
                    run_key=f"{obj.key}@{obj.version}",
                    partition_key=partition,
                    tags={FILE_TAG: obj.key},
                )
            )
        for position, key, err in skipped:
            context.log.warning(
                f"skipped object {position} of {listed} under {prefix}/ "
                f"(key {describe(key)}): {err}"
            )
        if skipped:
            context.log.warning(
                f"{len(skipped)} of {listed} objects under {prefix}/ skipped: their names break "
                "the partition-key grammar; each is logged once per content version"
            )
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[partitions_def.build_add_request(new_keys)]
            if new_keys
            else [],
            cursor=json.dumps(seen, sort_keys=True),
        )

    return _sensor
