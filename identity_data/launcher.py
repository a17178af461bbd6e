"""The local run launcher, with the worker health check that run monitoring needs.

Dagster's DefaultRunLauncher starts each run in a subprocess of the code server and cannot tell
whether that process is still alive, so a run whose process was killed while the code server
was down (a restarted daemon starts a new one) stays STARTED forever. The run worker logs its
pid when it starts; this launcher checks that process, so run monitoring marks a dead run failed
and run retries launch it again. Kubernetes deployments use dagster-k8s' launcher instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from identity_data.dagster_private import CheckRunHealthResult, WorkerStatus

PROC = Path("/proc")


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, logged at) from the run worker's "Started process for run" engine event."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        # Dagster logs the pid as text; an int is read the same way.
        if pid is not None and isinstance(pid.value, int | str):
            return int(pid.value), entry.timestamp
    return None


def _started_at(pid: int) -> float | None:
    """When `pid` started (Linux /proc), None where /proc is unavailable; raises if it is gone
    or a zombie."""
    stat = PROC / str(pid) / "stat"
    if not PROC.is_dir():
        os.kill(pid, 0)
        return None
    fields = stat.read_text().rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        raise ProcessLookupError(pid)
    boot = next(
        float(line.split()[1])
        for line in (PROC / "stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_alive(pid: int, logged_at: float) -> bool:
    """The process exists, is not a zombie, and is not a later process that reused the pid."""
    try:
        started = _started_at(pid)
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    # /proc start times have clock-tick resolution, boot time one second.
    return started is None or started <= logged_at + 2


class LocalRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher plus a health check of the run worker's process."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        found = _worker_pid(self._instance, run.run_id)
        if found is None:
            # Between STARTED and the worker's first engine event: not yet known to be dead.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker pid not logged yet")
        pid, logged_at = found
        if worker_alive(pid, logged_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone (checked {time.ctime()})"
        )
