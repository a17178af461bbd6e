"""The definitions as a code server loads them: a fresh process with a deployment's environment
(the settings read when definitions load, identity_data/fanout.py, differ per deployment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from identity_data.fanout import FANOUT
from identity_data.settings import ENV
from identity_data_tests.services import REPO

_PROBE = """
import json
from identity_data.definitions import defs
from identity_data.defs.automation import AUTOMATION_SENSORS
repo = defs().get_repository_def()
graph = repo.asset_graph
policies = {
    key.to_user_string(): str(graph.get(key).backfill_policy)
    for key in graph.get_all_asset_keys()
    if graph.get(key).partitions_def is not None
}
jobs = {
    name: [repo.get_job(name).executor_def.name, dict(repo.get_job(name).tags)]
    for name in repo.job_names
    if name.endswith("_annotation")
}
automation = {name: dict(repo.get_sensor_def(name).run_tags) for name in AUTOMATION_SENSORS}
print(json.dumps({"policies": policies, "jobs": jobs, "automation": automation}))
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The probe in a process with `env` over this one's, less the fan-out settings."""
    clean = {k: v for k, v in os.environ.items() if k not in (ENV, FANOUT)}
    return subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def load(env: dict[str, str]) -> dict:
    """Backfill policies of the partitioned assets, the annotation jobs' executors and tags,
    and the automation sensors' run tags."""
    result = run(env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])
