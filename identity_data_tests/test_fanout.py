"""Fan-out per deployment: the definitions as a code server loads them (a fresh process with the
deployment's environment), and a 30-day backfill through a real instance's backfill daemon."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from identity_data.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    CodeLocation,
    run_backfill,
)
from identity_data.defs.automation import ANNOTATION_SENSOR, AUTOMATION_SENSOR
from identity_data.fanout import FANOUT, PARTITIONS_PER_RUN
from identity_data.settings import ENV
from identity_data.sources import SOURCES
from identity_data_tests import probe
from identity_data_tests.services import REPO

RAW = [dg.AssetKey(["raw", "prod_captures"]), dg.AssetKey(["raw", "prod_quarantine"])]
CHUNKED = f"BackfillPolicy.multi_run(max_partitions_per_run={PARTITIONS_PER_RUN})"


@pytest.mark.parametrize(
    ("env", "policy", "executor"),
    [
        ({ENV: "local"}, "BackfillPolicy.single_run()", "in_process"),
        ({ENV: "prod"}, CHUNKED, "k8s"),
        ({ENV: "local", FANOUT: "kubernetes"}, CHUNKED, "k8s"),
    ],
)
def test_definitions_fan_out_by_deployment(env: dict[str, str], policy: str, executor: str):
    loaded = probe.load(env)
    # Every partitioned asset of a source's chain, so a backfill's chunks line up from raw to
    # warehouse.
    chain = {key.to_user_string() for source in SOURCES for key in source.chain()}
    assert {loaded["policies"][key] for key in chain} == {policy}
    assert set(loaded["jobs"]) == {f"{source.name}_annotation" for source in SOURCES}
    for job_executor, tags in loaded["jobs"].values():
        assert job_executor == executor
        # A step-pod job's run pod only orchestrates, so it asks for a small pod.
        assert ("dagster-k8s/config" in tags) == (executor == "k8s")
    # The daemon's annotation runs ask for the detector's pod; its other runs for runK8sConfig's.
    pods = {name: "dagster-k8s/config" in tags for name, tags in loaded["automation"].items()}
    assert pods == {ANNOTATION_SENSOR: executor == "k8s", AUTOMATION_SENSOR: False}


def test_unknown_fanout_fails_naming_the_variable():
    result = probe.run({FANOUT: "pods"})
    assert result.returncode != 0
    assert "IDENTITY_DATA_FANOUT must be 'single' or 'kubernetes'" in result.stderr


# Runs stay queued; the code server is told to stop at the end but not waited for (on a loaded
# machine its shutdown outlasts Dagster's 30 s wait).
INSTANCE = {
    "run_coordinator": {
        "module": "dagster.core.run_coordinator",
        "class": "QueuedRunCoordinator",
    },
    "code_servers": {"wait_for_local_processes_on_shutdown": False},
}


def _chunks(days: list[str], size: int) -> list[tuple[str, str]]:
    return [(days[i], days[min(i + size, len(days)) - 1]) for i in range(0, len(days), size)]


@pytest.mark.parametrize(("env", "per_run"), [("local", 30), ("prod", PARTITIONS_PER_RUN)])
def test_thirty_day_backfill_runs_per_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, per_run: int
):
    """The backfill daemon's own iteration over the code server's definitions: one run per
    chunk of days in prod (queued: the QueuedRunCoordinator holds them), one run locally."""
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=INSTANCE) as instance:
        _backfill(instance, monkeypatch, env, per_run)


def _backfill(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, env: str, per_run: int
) -> None:
    monkeypatch.setenv(ENV, env)
    monkeypatch.delenv(FANOUT, raising=False)
    end = date(2026, 11, 28)
    days = [(end - timedelta(days=i)).isoformat() for i in reversed(range(30))]
    location = CodeLocation(
        module_name="identity_data.definitions",
        attribute="defs",
        working_directory=str(REPO),
        location_name="identity_data",
        repository_name="__repository__",
    )
    run_backfill(instance, location, "thirtydays", RAW, days, iterations=3)
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: "thirtydays"}))
    ranges = sorted(
        (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG])
        for run in runs
    )
    assert ranges == _chunks(days, per_run)
    assert len(runs) == (5 if env == "prod" else 1)
    assert {run.status for run in runs} == {dg.DagsterRunStatus.QUEUED}
