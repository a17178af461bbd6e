"""Label assets on a generated sample: per-export failure isolation and consensus accounting."""

import json

import dagster as dg
import polars as pl

from identity_data.contracts import ROW_ACCOUNTING
from identity_data.defs.labels.checks import LABELS_IN_TAXONOMY
from identity_data.defs.labels.sensors import label_export_sensor
from identity_data.stores.deployment import Deployment
from identity_data_tests.conftest import SAMPLE_DAYS

EXPORT = ("labels/export_votes", "labels/export_quarantine")
RAW = ("raw/prod_captures", "raw/prod_quarantine")
RANGE = {
    "dagster/asset_partition_range_start": SAMPLE_DAYS[0],
    "dagster/asset_partition_range_end": SAMPLE_DAYS[-1],
}


def discover(instance: dg.DagsterInstance) -> list[str]:
    context = dg.build_sensor_context(instance=instance, resources={"deployment": Deployment()})
    result = label_export_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [r.partition_key for r in result.run_requests]


def test_malformed_export_fails_alone_naming_the_file(sample_home, instance, pipeline):
    (sample_home / "lake/label-exports/broken.json").write_text('[{"id": 1, "data": {')
    partitions = discover(instance)
    broken = next(p for p in partitions if p.startswith("broken.json@"))
    result = pipeline(instance, *EXPORT, partition_key=broken, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "label-exports/broken.json" in message and "malformed JSON" in message
    for partition in partitions:
        if partition != broken:
            assert pipeline(instance, *EXPORT, partition_key=partition).success


def parse_every_export(instance, pipeline) -> set[str]:
    """Extract the sample's production days, then parse every export the sensor finds."""
    pipeline(instance, *RAW, tags=RANGE)
    partitions = set(discover(instance))
    for partition in partitions:
        pipeline(instance, *EXPORT, partition_key=partition)
    return partitions


def partition_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey.from_user_string(asset), asset_partitions=[partition]),
        limit=1,
    ).records
    return records[0].asset_materialization.metadata


def _task(capture_id: str, ann_id: int) -> dict:
    result = [{"from_name": "attack_type", "type": "choices", "value": {"choices": ["print"]}}]
    annotation = {"id": ann_id, "completed_by": 1, "created_at": "2026-11-28T10:00:00Z"}
    return {"data": {"capture_id": capture_id}, "annotations": [annotation | {"result": result}]}


def test_consensus_quarantines_unknown_captures(sample_home, instance, pipeline):
    # One well-formed id no source holds, one that is not an id at all.
    stray = [_task("cap-never-extracted", 1), _task("Jane Doe <jane@example.org>", 2)]
    (sample_home / "lake/label-exports/stray.json").write_text(json.dumps(stray))
    parse_every_export(instance, pipeline)
    (stray_export,) = [p for p in instance.get_dynamic_partitions("label_exports") if "stray" in p]
    meta = {key: partition_metadata(instance, key, stray_export) for key in EXPORT}
    assert meta["labels/export_votes"]["unknown_capture_rows"].value == 1
    assert meta["labels/export_quarantine"]["by_reason"].value == {"malformed_capture_id": 1}
    result = pipeline(
        instance,
        "labels/consensus_labels",
        "labels/annotator_quality",
        "labels/unmatched_votes",
    )
    assert result.success
    tables = sample_home / "lake/tables/labels"
    pooled = pl.concat(pl.read_parquet(f) for f in (tables / "export_votes").glob("*"))
    unmatched = pl.read_parquet(tables / "unmatched_votes.parquet")
    labels = pl.read_parquet(tables / "consensus_labels.parquet")
    # Only production captures were extracted, so every campaign/open-dataset label is unmatched.
    known = set(
        pl.concat(
            pl.read_parquet(f) for f in (sample_home / "lake/tables/raw/prod_captures").glob("*")
        )["capture_id"]
    )
    assert set(labels["capture_id"]) <= known
    assert not set(unmatched["capture_id"]) & known
    assert set(pooled["capture_id"]) - known <= set(unmatched["capture_id"])
    assert set(unmatched["reason"]) == {"unknown_capture"}
    (materialization,) = [
        m
        for m in result.asset_materializations_for_node("consensus")
        if m.asset_key == dg.AssetKey(["labels", "unmatched_votes"])
    ]
    by_export = materialization.metadata["by_export"].value
    assert by_export[stray_export] == 1
    assert sum(by_export.values()) == unmatched.height
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks[ROW_ACCOUNTING] and checks[LABELS_IN_TAXONOMY]


def test_a_corrected_reupload_supersedes_its_earlier_version(sample_home, instance, pipeline):
    export = sample_home / "lake/label-exports" / f"labels-{SAMPLE_DAYS[-1]}.json"
    before = parse_every_export(instance, pipeline)
    tasks = json.loads(export.read_text())
    # The same annotations, same timestamps, every attack_type answer corrected to "mask".
    for task in tasks:
        for annotation in task["annotations"]:
            for item in annotation["result"]:
                if item.get("from_name") == "attack_type":
                    item["value"]["choices"] = ["mask"]
    export.write_text(json.dumps(tasks))
    (corrected,) = set(discover(instance)) - before
    pipeline(instance, *EXPORT, partition_key=corrected)
    result = pipeline(
        instance,
        "labels/consensus_labels",
        "labels/annotator_quality",
        "labels/unmatched_votes",
    )
    labels = pl.read_parquet(sample_home / "lake/tables/labels/consensus_labels.parquet")
    day = labels.filter(pl.col("export_id") == corrected)
    assert day.height > 0
    assert set(day.filter(pl.col("task") == "attack_type")["label"]) == {"mask"}
    (materialization,) = [
        m
        for m in result.asset_materializations_for_node("consensus")
        if m.asset_key == dg.AssetKey(["labels", "consensus_labels"])
    ]
    assert materialization.metadata["superseded_rows"].value > 0
