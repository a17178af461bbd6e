"""The real `dagster-daemon` on a temporary instance, and what the tests read back from it.

The daemon runs as `make dev` runs it (workspace.yaml, the instance's dagster.yaml), as a
`Service`: SIGTERM/SIGINT reset to their defaults in the child, its own session, ended by PID
together with every process it started.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from identity_data import demo
from identity_data.dagster_private import sensor_ids
from identity_data.defs.automation import AUTOMATION_SENSORS
from identity_data.settings import ENV, HOME
from identity_data_tests.services import Service

REPO = Path(__file__).resolve().parents[1]
DAEMON = REPO / ".venv" / "bin" / "dagster-daemon"
PROC = Path("/proc")
# Columns that record when something ran, not what it produced.
VOLATILE_COLUMNS = ("loaded_at", "materialized_at", "parsed_at", "extracted_at", "inferred_at")
WAREHOUSE_TABLES = ("captures", "annotations", "labels", "annotator_quality", "training_examples")
# Each table's key: frames are compared sorted by it.
TABLE_KEYS = {
    "labels": ["capture_id", "task"],
    "annotator_quality": ["annotator", "task"],
}
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
SENSORS = ("campaign_drop_sensor", "label_export_sensor", *AUTOMATION_SENSORS)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Linux /proc)."""
    found, queue = [], [pid]
    while queue:
        for task in (PROC / str(queue.pop()) / "task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(p) for p in task.read_text().split()]
                found += kids
                queue += kids
    return found


def listening_addresses(pids: list[int]) -> set[str]:
    """The local addresses of the TCP sockets in LISTEN state that `pids` hold open."""
    inodes = set()
    for pid in pids:
        for fd in (PROC / str(pid) / "fd").glob("*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(fields[1])
    return addresses


LOOPBACK = ("0100007F:", "00000000000000000000000001000000:")


def daemon_service(
    dagster_home: Path, data_home: Path, log: Path, **yaml: Mapping[str, object]
) -> Service:
    """`dagster-daemon run` as `make dev` starts it, in its own session: stop() ends the code
    servers and run workers it started too, even after the daemon itself was SIGKILLed.

    Writes the project's dagster.yaml (with `yaml` overrides) first: `dg.instance_for_test`
    replaces the file with its own when a test opens the instance."""
    instance_yaml(dagster_home, **yaml)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_DATA_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(dagster_home), ENV: "local", HOME: str(data_home)}
    # On a loaded 2-core CI machine the code server can take longer than Dagster's 60 s to
    # answer a launch; these tests check what runs, not how fast the code server answers.
    env["DAGSTER_GRPC_TIMEOUT_SECONDS"] = "300"
    return Service(
        "dagster-daemon",
        [str(DAEMON), "run", "-w", str(REPO / "workspace.yaml")],
        0,
        lambda: True,
        log,
        env=env,
        cwd=REPO,
        new_session=True,
    )


@contextlib.contextmanager
def running(daemon: Service) -> Iterator[Service]:
    try:
        yield daemon.start()
    finally:
        daemon.stop()


def tail(daemon: Service, lines: int = 60) -> str:
    return "\n".join(daemon.log.read_text(errors="replace").splitlines()[-lines:])


def instance_yaml(dagster_home: Path, **overrides: Mapping[str, object]) -> None:
    """The project's dagster.yaml, with sections replaced by `overrides` (a test's intervals)."""
    import yaml

    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    for section, value in overrides.items():
        config[section] = {**config.get(section, {}), **value}
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


def wait_for(what: str, predicate: Callable[[], object], timeout: float, daemon: Service):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert daemon.proc is not None and daemon.proc.poll() is None, tail(daemon)
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail(daemon)}")


def ticks(instance: dg.DagsterInstance, sensor: str, after: float) -> list:
    """The sensor's ticks that started after `after` (epoch seconds), oldest first."""
    found = instance.get_ticks(*sensor_ids(demo.location(), sensor), limit=200)
    return sorted((t for t in found if t.timestamp > after), key=lambda t: t.timestamp)


def active_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(statuses=ACTIVE)))


def settled(instance: dg.DagsterInstance, since: float) -> bool:
    """No run is queued or running, and every sensor completed a tick that started after the
    last run ended (and after `since`) without requesting anything."""
    if active_runs(instance):
        return False
    ends = [r.end_time for r in instance.get_run_records() if r.end_time]
    quiet_from = max([since, *ends])
    for sensor in SENSORS:
        done = [t for t in ticks(instance, sensor, quiet_from) if t.status.value != "STARTED"]
        if not any(t.status.value == "SKIPPED" for t in done):
            return False
    return not active_runs(instance)


def materialized(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, str | None]]:
    """(asset, partition) of every materialization of the runs, one entry per event."""
    out = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            event = entry.asset_materialization
            out.append((event.asset_key.to_user_string(), event.partition))
    return out


def warehouse_frames(home: Path) -> dict[str, pl.DataFrame]:
    """Every warehouse table, sorted by its key, so two builds compare frame by frame: without
    the columns that say when a row was written, and with the data home (in local blob URIs)
    replaced by a placeholder, since two builds live in two folders."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frames = {}
        for table in WAREHOUSE_TABLES:
            frame = con.execute(f'SELECT * FROM "{table}"').pl()
            frame = frame.drop(VOLATILE_COLUMNS, strict=False).with_columns(
                pl.col(pl.String).str.replace_all(str(home), "$IDENTITY_DATA_HOME", literal=True)
            )
            frames[table] = frame.sort(TABLE_KEYS.get(table, ["capture_id"]))
        return frames
