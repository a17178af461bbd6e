"""A real Dagster webserver (and daemon) on a tiny sample, and headless Chromium to drive its UI.

The browser is Debian's /usr/bin/chromium, installed by `.ci/browser.sh`: Playwright's own browser
builds come from a CDN outside the package registries, so `playwright install` is never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from identity_data.defs.raw.sensors import campaign_sensor
from identity_data.demo import Demo, Tally
from identity_data.sample import generate
from identity_data.settings import ensure_local_key
from identity_data.sources import campaigns
from identity_data_tests.services import Service, free_port, http_ready

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    """Skip without Chromium or Playwright, except under CI=true, where that is an error."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM}: run `bash .ci/browser.sh` (as root)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright: install the project's dev extras")
    if missing:
        message = "UI tests need " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium under Playwright with a fresh profile; Playwright takes the profile as
    user_data_dir of a persistent context and refuses a --user-data-dir flag."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


SENSOR_STATES = """{ repositoriesOrError { ... on RepositoryConnection {
    nodes { sensors { name sensorState { id status } } } } } }"""
STOP_SENSOR = """mutation($id: String) { stopSensor(id: $id) {
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message } } }"""


def stop_sensors(url: str) -> None:
    """Stop every sensor, as the UI's toggle does, so that the daemon launches only the runs a
    test asks for (all sensors here default to RUNNING and would start extracting drops)."""
    (repository,) = graphql(url, SENSOR_STATES)["repositoriesOrError"]["nodes"]
    for sensor in repository["sensors"]:
        result = graphql(url, STOP_SENSOR, {"id": sensor["sensorState"]["id"]})["stopSensor"]
        if result.get("instigationState", {}).get("status") != "STOPPED":
            raise RuntimeError(f"could not stop sensor {sensor['name']}: {result}")


@dataclass(frozen=True)
class Stack:
    """A running webserver and daemon; their logs are webserver.log and daemon.log in root."""

    url: str
    root: Path
    # The production day with sample captures, left unmaterialized for a test to launch.
    day: str
    # The campaign partition materialized at setup, with its checks.
    campaign: str


def _materialize_campaign(env: dict[str, str], day: date) -> str:
    """Sample sources for one day and one campaign; the campaign's raw partition materialized."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("IDENTITY_DATA_PSEUDONYM_KEY", raising=False)
        home = Path(env["IDENTITY_DATA_HOME"])
        generate(home, seed=7, days=1, captures_per_day=15, end_date=day, campaigns=1)
        ensure_local_key(home)
        with dg.DagsterInstance.get() as instance:
            tally = Tally()
            demo = Demo(instance, tally)
            # The campaign sensor's tick, as the daemon runs it: partition added, raw extracted.
            demo.tick(demo.repository.get_sensor_def(campaign_sensor.name))
            (campaign,) = instance.get_dynamic_partitions(campaigns.name)
        if tally.failed_runs or tally.checks_failed:
            raise RuntimeError(f"setup materialization failed: {tally}")
        return campaign


def _wait_for_code_location(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not graphql(url, SENSOR_STATES)["repositoriesOrError"].get("nodes"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"code location not loaded in {timeout}s")
        time.sleep(0.5)


@contextlib.contextmanager
def dagster_stack(root: Path) -> Iterator[Stack]:
    """Sample data, a Dagster instance configured by the project's dagster.yaml, its webserver
    and its daemon (the QueuedRunCoordinator only launches runs from the daemon)."""
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if k != "IDENTITY_DATA_PSEUDONYM_KEY"},
        "DAGSTER_HOME": str(dagster_home),
        "IDENTITY_DATA_HOME": str(root / "data"),
        "IDENTITY_DATA_ENV": "local",
    }
    day = datetime.now(UTC).date() - timedelta(days=1)
    campaign = _materialize_campaign(env, day)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workspace = ["-m", "identity_data.definitions"]
    webserver = Service(
        "dagster-webserver",
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *workspace],
        port,
        http_ready(f"{url}/server_info"),
        root / "webserver.log",
        env=env,
        cwd=REPO,
        new_session=True,
    )
    daemon = Service(
        "dagster-daemon",
        [str(BIN / "dagster-daemon"), "run", *workspace],
        port,
        lambda: True,
        root / "daemon.log",
        env=env,
        cwd=REPO,
        new_session=True,
    )
    try:
        webserver.start(timeout=120)
        _wait_for_code_location(url)
        stop_sensors(url)
        daemon.start()
        yield Stack(url=url, root=root, day=day.isoformat(), campaign=campaign)
    finally:
        daemon.stop()
        webserver.stop()
