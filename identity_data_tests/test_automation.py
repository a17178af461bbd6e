"""The daemon's path tick by tick on a real instance: each tick launches exactly the asset
partitions the conditions call for, and nothing when nothing changed."""

import dagster as dg
import pytest

from identity_data import demo
from identity_data.defs.automation import ANNOTATION_SENSOR, AUTOMATION_SENSOR
from identity_data.defs.labels.sensors import label_export_sensor
from identity_data.sources import BY_NAME
from identity_data_tests.conftest import POOLED, SAMPLE_DAYS

LATE = "labels-2026-11-27.json"


def launched(instance: dg.DagsterInstance, seen: set[str]) -> set[tuple[str, str | None]]:
    """(asset, partition) materialized by every run not in `seen`; adds the runs to it."""
    out = set()
    for run in instance.get_runs():
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            event = entry.asset_materialization
            out.add((event.asset_key.to_user_string(), event.partition))
    return out


@pytest.mark.slow
def test_automation_tick_by_tick(sample_home, instance):
    exports = sample_home / "lake/label-exports"
    held = (exports / LATE).read_bytes()
    (exports / LATE).unlink()
    path = demo.Demo(instance, demo.Tally())
    sensors = {s.name: s for s in path.sensors}
    path.start(SAMPLE_DAYS)
    path.settle()
    seen = {r.run_id for r in instance.get_runs()}
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in instance.get_runs())

    # Nothing new: no sensor launches anything.
    assert sum(path.tick(s) for s in path.sensors) == 0

    # A late export for an old day: parsed, then consensus and the label tables, then the
    # training examples of exactly the days whose labels changed.
    (exports / LATE).write_bytes(held)
    assert path.tick(sensors[label_export_sensor.name]) == 1
    (parsed,) = {p for _, p in launched(instance, seen)}
    assert parsed.startswith(f"{LATE}@")
    assert path.tick_automation() == 1
    assert launched(instance, seen) == POOLED
    event = instance.get_latest_materialization_event(dg.AssetKey(["labels", "consensus_labels"]))
    changed = event.asset_materialization.metadata["changed_partitions"].value
    assert "2026-11-27" in changed["production"]
    assert path.tick_automation() >= 1
    expected = {
        (BY_NAME[source].key("warehouse", "examples").to_user_string(), partition)
        for source, partitions in changed.items()
        for partition in partitions
    }
    assert launched(instance, seen) == expected
    assert path.tick_automation() == 0

    # A re-uploaded export (same name, new content) is a new partition and one run.
    (exports / LATE).write_bytes(held.replace(b'"genuine"', b'"print"', 1))
    assert path.tick(sensors[label_export_sensor.name]) == 1
    (reparsed,) = {p for _, p in launched(instance, seen)}
    assert reparsed.startswith(f"{LATE}@") and reparsed != parsed

    # A backfill of an older day, with the two automation sensors ticking in the order the
    # demo does not use (the daemon ticks them in any order). The first tick requests the day's
    # captures table and consensus, but not its annotations table: the day's annotations are
    # due and their sensor has not ticked. Then the annotations; then their table and
    # near-duplicates over them; then the day's training examples and those of every partition
    # whose labels or clusters the pooled runs report changed (never next to a pooled run about
    # to change them); then nothing.
    (daily,) = demo.DAILY_SOURCES
    path.backfill(daily, SAMPLE_DAYS[:1])
    launched(instance, seen)
    day = SAMPLE_DAYS[0]
    downstream, annotation = sensors[AUTOMATION_SENSOR], sensors[ANNOTATION_SENSOR]
    assert path.tick(downstream) >= 1
    assert launched(instance, seen) == {("warehouse/prod_captures", day), *POOLED}
    assert path.tick(annotation) == 1
    assert launched(instance, seen) == {("annotations/prod_annotations", day)}
    assert path.tick(downstream) == 2
    assert launched(instance, seen) == {
        ("warehouse/prod_annotations", day),
        ("annotations/near_duplicates", None),
    }
    reported = {
        (BY_NAME[source].key("warehouse", "examples").to_user_string(), partition)
        for key in (["labels", "consensus_labels"], ["annotations", "near_duplicates"])
        for source, partitions in reported_changes(instance, dg.AssetKey(key)).items()
        for partition in partitions
    }
    assert path.tick(downstream) >= 1
    assert launched(instance, seen) == {("warehouse/prod_examples", day), *reported}
    assert path.tick_automation() == 0
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in instance.get_runs())
    assert sum(path.tick(s) for s in path.sensors) == 0


def reported_changes(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, list[str]]:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization.metadata["changed_partitions"].value
