"""The whole Definitions object: asset keys per group, partitions, checks, sensors, schedule."""

import dagster as dg
import pytest

from identity_data.contracts import ROW_ACCOUNTING
from identity_data.definitions import defs as load_defs
from identity_data.defs.annotations.checks import DUPLICATE_RATE, SELFIE_FACE_RATE
from identity_data.defs.automation import AUTOMATION_SENSORS, TRIGGER_TAG
from identity_data.defs.labels.checks import LABEL_COVERAGE, LABELS_IN_TAXONOMY
from identity_data.sources import KEY_NAME_BUDGET
from identity_data.sources import SOURCE_NAMES as SOURCES
from identity_data.sources import SOURCES as REGISTRY
from identity_data.validation import SCHEMA_CHECK_SUFFIX

EXPECTED_GROUPS = {
    "raw": {
        *("raw/prod_captures", "raw/camp_captures", "raw/open_captures"),
        *("raw/prod_quarantine", "raw/camp_quarantine", "raw/open_quarantine"),
    },
    "annotations": {
        *("annotations/prod_annotations", "annotations/camp_annotations"),
        *("annotations/open_annotations", "annotations/near_duplicates"),
    },
    "labels": {
        "labels/export_votes",
        "labels/export_quarantine",
        "labels/consensus_labels",
        "labels/annotator_quality",
        "labels/unmatched_votes",
    },
    "warehouse": {
        *("warehouse/prod_captures", "warehouse/camp_captures", "warehouse/open_captures"),
        *("warehouse/prod_annotations", "warehouse/camp_annotations"),
        *("warehouse/open_annotations", "warehouse/prod_examples", "warehouse/camp_examples"),
        *("warehouse/open_examples", "warehouse/labels", "warehouse/annotator_quality"),
    },
    "snapshots": {"snapshots/training_snapshot"},
    "erasure": {"erasure/erasure_audit", "erasure/redactions"},
}


@pytest.fixture(scope="module")
def repo():
    return load_defs().get_repository_def()


def test_asset_keys_by_group(repo):
    graph = repo.asset_graph
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert groups == EXPECTED_GROUPS


def test_asset_names_read_whole_in_the_lineage_graph(repo):
    """The graph shows a key's last part only, cut in the middle beyond the budget; within a
    group the names differ, so every node says which asset it is."""
    graph = repo.asset_graph
    names = {k.to_user_string(): k.path[-1] for k in graph.get_all_asset_keys()}
    assert {k: n for k, n in names.items() if len(n) > KEY_NAME_BUDGET} == {}
    for keys in EXPECTED_GROUPS.values():
        assert len({names[k] for k in keys}) == len(keys)


@pytest.mark.parametrize("entry", REGISTRY, ids=SOURCES)
def test_source_assets_share_their_partitions(repo, entry):
    graph = repo.asset_graph
    defs_ = {graph.get(k).partitions_def for k in entry.chain()}
    assert len(defs_) == 1
    assert defs_ == {entry.partitions_def}
    for key in entry.chain():
        policy = graph.get(key).backfill_policy
        assert policy == dg.BackfillPolicy.single_run()


def test_label_exports_are_dynamic_and_consensus_is_global(repo):
    graph = repo.asset_graph
    exports = graph.get(dg.AssetKey(["labels", "export_votes"])).partitions_def
    assert isinstance(exports, dg.DynamicPartitionsDefinition)
    assert exports.name == "label_exports"
    for key in ("labels/consensus_labels", "warehouse/labels", "annotations/near_duplicates"):
        assert graph.get(dg.AssetKey.from_user_string(key)).partitions_def is None


def test_every_table_has_a_blocking_schema_check(repo):
    graph = repo.asset_graph
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    for key in graph.get_all_asset_keys():
        names = [
            n for k, n in checks if k == key.to_user_string() and n.endswith(SCHEMA_CHECK_SUFFIX)
        ]
        assert names, f"{key.to_user_string()} has no schema check"
    blocking = {
        (spec.key.asset_key.to_user_string(), spec.name)
        for ad in repo.assets_defs_by_key.values()
        for spec in ad.check_specs
        if spec.blocking
    }
    assert {
        ("raw/prod_captures", ROW_ACCOUNTING),
        ("labels/consensus_labels", LABELS_IN_TAXONOMY),
    } <= blocking
    assert ("labels/consensus_labels", LABEL_COVERAGE) in checks
    assert ("annotations/near_duplicates", DUPLICATE_RATE) in checks
    assert ("annotations/prod_annotations", SELFIE_FACE_RATE) in checks


def test_sensors_schedule_and_automation(repo):
    assert {s.name for s in repo.sensor_defs} == {
        "campaign_drop_sensor",
        "label_export_sensor",
        "annotation_automation",
        "downstream_automation",
        "run_failure_alert",
        "freshness_alert",
        "erasure_request_sensor",
    }
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == {"production_daily_schedule", "weekly_snapshot", "retention_sweep"}
    schedule = schedules["production_daily_schedule"]
    assert schedule.job_name == "production_daily"
    assert schedule.cron_schedule == "0 2 * * *"
    automation = [repo.get_sensor_def(name) for name in AUTOMATION_SENSORS]
    for definition in (schedule, *automation):
        assert definition.description and len(definition.description) > 40, definition.name
    # Sensor-launched runs name their target: named jobs for the drop sensors, a trigger tag on
    # every run the automation sensors launch.
    assert repo.get_sensor_def("label_export_sensor").job_name == "parse_label_export"
    assert repo.get_sensor_def("campaign_drop_sensor").job_name == "extract_campaign"
    # Locally no pod settings: the annotation runs differ only by their trigger.
    for sensor in automation:
        assert sensor.run_tags == {TRIGGER_TAG: sensor.name}
    # Between them the two automation sensors target every automated asset, each exactly once:
    # the face-detection annotations in runs of their own.
    graph = repo.asset_graph
    targets = [s.asset_selection.resolve(graph) for s in automation]
    annotations = {s.key("annotations", "annotations") for s in REGISTRY}
    assert targets[0] == annotations
    assert not targets[0] & targets[1]
    automated = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert automated <= targets[0] | targets[1]
    assert graph.get(dg.AssetKey(["raw", "prod_captures"])).automation_condition is None
    for key in (
        "annotations/prod_annotations",
        "warehouse/labels",
        "labels/consensus_labels",
    ):
        assert graph.get(dg.AssetKey.from_user_string(key)).automation_condition is not None


def test_freshness_and_code_version(repo):
    graph = repo.asset_graph
    raw = graph.get(dg.AssetKey(["raw", "prod_captures"]))
    assert raw.freshness_policy is not None
    annotations = graph.get(dg.AssetKey(["annotations", "prod_annotations"]))
    assert annotations.code_version and "mtcnn" in annotations.code_version.lower()
