"""The pipeline left to run by itself: the real `dagster-daemon` on a temporary instance.

The daemon runs as `make dev` runs it (the project's workspace.yaml and dagster.yaml); files land
where their producers drop them; each test waits, with a bounded timeout, for the warehouse to
follow, then checks every run the daemon launched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data import demo
from identity_data.dagster_private import PARENT_RUN_ID_TAG
from identity_data.defs.automation import AUTOMATION_SENSORS, TRIGGER_TAG
from identity_data.launcher import _worker_pid
from identity_data.sample import generate
from identity_data.settings import ensure_local_key
from identity_data.sources import BY_NAME
from identity_data.watch import FILE_TAG
from identity_data_tests.conftest import POOLED
from identity_data_tests.daemon import (
    LOOPBACK,
    WAREHOUSE_TABLES,
    daemon_service,
    descendants,
    listening_addresses,
    materialized,
    running,
    settled,
    wait_for,
    warehouse_frames,
)
from identity_data_tests.defs.snapshots.world import World

pytestmark = pytest.mark.slow

END = date(2026, 11, 28)
DAYS = [(END - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
# Held back from the demo's world: the latest day's export arrives as new data, and an export
# for the first day arrives late, after a later day's.
NEW, LATE = f"labels-{DAYS[2]}.json", f"labels-{DAYS[0]}.json"
EXPORTS = Path("lake") / "label-exports"
SUCCESS, FAILURE = dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE
# The run-monitoring poll is the one interval shortened, in the restart test only: the default
# (30 s) would only add waiting.
FAST_MONITORING = {"run_monitoring": {"poll_interval_seconds": 5}}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Three production days without campaigns (their path has its own tests); the two exports
    that arrive later sit beside the data root, in `held/`."""
    root = tmp_path_factory.mktemp("daemon-sample")
    home = root / "data"
    generate(home, seed=11, days=len(DAYS), captures_per_day=12, end_date=END, campaigns=0)
    ensure_local_key(home)
    (root / "held").mkdir()
    for name in (NEW, LATE):
        shutil.move(home / EXPORTS / name, root / "held" / name)
    (root / "dagster_home").mkdir()
    return World(home, root / "dagster_home")


def held(sample: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((sample.home.parent / "held").iterdir())}


@pytest.fixture(scope="module")
def demo_world(sample: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """`make demo` on the sample: the operator's backfill, then the sensors settled."""
    world = sample.copy(tmp_path_factory.mktemp("daemon-demo"))
    with world.open() as instance:
        tally = demo.Tally()
        path = demo.Demo(instance, tally)
        path.start(DAYS, open_datasets=False)
        path.settle()
        assert tally.failed_runs == []
    return world


def drop(exports: Path, files: dict[str, bytes]) -> None:
    """As an uploader does: write aside, then rename into place."""
    for name, body in files.items():
        part = exports / f".{name}.part"
        part.write_bytes(body)
        os.replace(part, exports / name)


def capture_ids(body: bytes) -> set[str]:
    return {task.get("data", {}).get("capture_id") for task in json.loads(body)} - {None}


def labels_loaded_after(instance: dg.DagsterInstance, after: float) -> float | None:
    """When `warehouse/labels` was last written, if after `after`: read from the event log, so
    the test never holds the DuckDB file a run is about to write."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["warehouse", "labels"]))
    return event.timestamp if event and event.timestamp > after else None


def failures(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> str:
    """Each run that did not succeed, with its failure messages."""
    lines = []
    for run in runs:
        if run.status == SUCCESS:
            continue
        lines.append(f"{run.run_id} {run.status.value} {run.job_name} {dict(run.tags)}")
        for entry in instance.all_logs(run.run_id):
            kind = entry.dagster_event.event_type_value if entry.dagster_event else ""
            if kind in ("RUN_FAILURE", "STEP_FAILURE", "ENGINE_EVENT") and entry.message:
                lines.append(f"  {kind}: {entry.message[:500]}")
    return "\n".join(lines)


def changed_partitions(
    before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]
) -> set[tuple[str, str]]:
    """(source, partition) whose (capture, task, label) rows differ: the oracle for which
    partitions' training examples must be refreshed."""

    def by_partition(frames: dict[str, pl.DataFrame]) -> dict[tuple[str, str], set]:
        placed = frames["captures"].select("capture_id", "source", "source_partition")
        labels = (
            frames["labels"].select("capture_id", "task", "label").join(placed, on="capture_id")
        )
        rows: dict[tuple[str, str], set] = {}
        for row in labels.select(
            "source", "source_partition", "capture_id", "task", "label"
        ).rows():
            rows.setdefault(row[:2], set()).add(row[2:])
        return rows

    old, new = by_partition(before), by_partition(after)
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def daemon_runs(instance: dg.DagsterInstance, before: set[str]) -> list[dg.DagsterRun]:
    return [run for run in instance.get_runs() if run.run_id not in before]


def assert_targets_shown(runs: list[dg.DagsterRun]) -> None:
    """Every run the daemon launched says why: its file and named job, or the automation tag."""
    for run in runs:
        if FILE_TAG in run.tags:
            assert run.job_name in ("parse_label_export", "extract_campaign"), run.job_name
        else:
            assert run.tags.get(TRIGGER_TAG) in AUTOMATION_SENSORS, run.tags


def test_daemon_follows_a_new_and_a_late_export(demo_world, sample, tmp_path):
    world = demo_world.copy(tmp_path)
    files = held(sample)
    before = warehouse_frames(world.home)
    known = set(before["captures"]["capture_id"])
    arriving = {c for body in files.values() for c in capture_ids(body)} & known
    assert arriving and not arriving & set(before["labels"]["capture_id"])

    with world.open() as instance:
        demo_runs = {run.run_id for run in instance.get_runs()}
        daemon = daemon_service(world.dagster_home, world.home, tmp_path / "daemon.log")
        assert "run_monitoring" in (world.dagster_home / "dagster.yaml").read_text()
        with running(daemon):
            started = time.time()
            # The daemon starts where the demo left off: a round of every sensor, no run.
            wait_for("a quiet round", lambda: settled(instance, started), 300, daemon)
            assert daemon_runs(instance, demo_runs) == []

            drop(world.home / EXPORTS, files)
            dropped = time.time()
            shown = wait_for(
                "the new labels in the warehouse",
                lambda: labels_loaded_after(instance, dropped),
                600,
                daemon,
            )
            # Nothing listens beyond loopback (the code server talks over a unix socket).
            tree = [daemon.proc.pid, *descendants(daemon.proc.pid)]
            assert all(a.startswith(LOOPBACK) for a in listening_addresses(tree))
            wait_for("the daemon to settle", lambda: settled(instance, shown), 600, daemon)

        runs = daemon_runs(instance, demo_runs)
        print(f"\nfigure: export dropped -> warehouse shows its labels: {shown - dropped:.0f}s")
        assert all(r.status == SUCCESS for r in runs), failures(instance, runs)
        assert_targets_shown(runs)
        parsed = [r for r in runs if r.job_name == "parse_label_export"]
        assert sorted(r.tags[FILE_TAG] for r in parsed) == sorted(
            f"{EXPORTS.name}/{n}" for n in files
        )
        partitions = {r.tags["dagster/partition"] for r in parsed}

        after = warehouse_frames(world.home)
        assert arriving <= set(after["labels"]["capture_id"])
        changed = changed_partitions(before, after)
        assert {("production", DAYS[0]), ("production", DAYS[2])} <= changed
        events = materialized(instance, [r.run_id for r in runs])
        # Nothing twice, and exactly: the two exports, the pooled label assets, and the training
        # examples of exactly the partitions whose labels changed.
        assert len(events) == len(set(events)), sorted(events)
        assert set(events) == {
            *((f"labels/export_{out}", p) for p in partitions for out in ("votes", "quarantine")),
            *POOLED,
            *(
                (BY_NAME[source].key("warehouse", "examples").to_user_string(), p)
                for source, p in changed
            ),
        }
        # One run per file, one consensus run over both, one per refreshed partition.
        assert len(runs) == len(files) + 1 + len(changed), [r.tags for r in runs]
        print(f"figure: runs for {len(files)} exports: {len(runs)}; refreshed {sorted(changed)}")

        # The late day's captures were unlabelled; now they are training examples.
        day = pl.col("source_partition") == DAYS[0]
        assert (
            after["training_examples"].filter(day).height
            > before["training_examples"].filter(day).height
        )


def first_run_mid_step(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, int] | None:
    """A started run whose worker pid is logged and whose steps have not all finished."""
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        found = _worker_pid(instance, run.run_id)
        done = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        if found and not done:
            return run, found[0]
    return None


def test_restart_after_sigkill_and_the_same_tables_as_the_demo(demo_world, sample, tmp_path):
    """From scratch, the daemon does what `make demo` does after the operator's backfill; the
    daemon and one run worker are SIGKILLed mid-run and the daemon restarted. Every file is
    processed once, the dead run is failed by run monitoring and retried, and the warehouse
    ends equal to the demo's, table by table."""
    world = sample.copy(tmp_path)
    log = tmp_path / "daemon.log"
    with world.open() as instance:
        first, second = (
            daemon_service(world.dagster_home, world.home, log, **FAST_MONITORING) for _ in range(2)
        )
        demo.Demo(instance, demo.Tally()).start(DAYS, open_datasets=False)
        operator_runs = {run.run_id for run in instance.get_runs()}
        try:
            first.start()
            victim, pid = wait_for(
                "a run mid-step", lambda: first_run_mid_step(instance), 600, first
            )
            first.proc.send_signal(signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            first.proc.wait(timeout=30)
            with running(second):
                restarted = time.time()
                wait_for("the daemon to settle", lambda: settled(instance, restarted), 900, second)
        finally:
            first.stop()  # what the killed daemon left: its code server, other run workers

        runs = daemon_runs(instance, operator_runs)
        assert_targets_shown(runs)
        dead = instance.get_run_by_id(victim.run_id)
        assert dead.status == FAILURE
        retries = [r for r in runs if r.tags.get(PARENT_RUN_ID_TAG) == victim.run_id]
        assert [r.status for r in retries] == [SUCCESS], failures(instance, runs)
        # Only killed runs failed, and every one of them has a successful retry.
        failed = [r for r in runs if r.status != SUCCESS]
        assert victim.run_id in {r.run_id for r in failed}
        for run in failed:
            retried = any(r.tags.get(PARENT_RUN_ID_TAG) == run.run_id for r in runs)
            assert retried, failures(instance, runs)
        # Every file: one run requested by the sensor, processed successfully once.
        exports = sorted(f"{EXPORTS.name}/{p.name}" for p in (world.home / EXPORTS).iterdir())
        by_file = {key: [r for r in runs if r.tags.get(FILE_TAG) == key] for key in exports}
        for key, file_runs in by_file.items():
            assert len([r for r in file_runs if PARENT_RUN_ID_TAG not in r.tags]) == 1, key
            assert len([r for r in file_runs if r.status == SUCCESS]) == 1, key

    ours, theirs = warehouse_frames(world.home), warehouse_frames(demo_world.home)
    for table in WAREHOUSE_TABLES:
        assert_frame_equal(ours[table], theirs[table], check_row_order=True)
