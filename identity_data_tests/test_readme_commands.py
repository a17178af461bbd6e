"""Every shell command README.md shows, verbatim, on a `make demo` data root of the sample's days.

The commands run from a copy of the checkout's top level (the .venv linked, not copied), so they
see the same relative paths (`data/`, `.dagster_home`, `.venv/bin/...`) a user's clone has, and
nothing they write lands in this checkout. Only the two set-up commands and the full benchmark
are not run; `make dev` is started, checked to serve the project, and stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from identity_data_tests.services import Service, http_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
# The sample's three days (README's ranges name them), small.
DEMO = ["--days", "3", "--captures-per-day", "12", "--campaigns", "1", "--seed", "5"]
SETUP = {"make demo", "make test"}
SERVERS = {"make dev"}
NOT_RUN = {
    "make bench": "the full benchmark (1M rows, a 30-day backfill); its modules run here alone",
    ".venv/bin/uv pip install dlib-bin": "an optional extra; installing it would change the venv",
}
COMMAND_START = (".venv/bin/", "DAGSTER_HOME=", "make ")
# Left out of the copy: the checkout's own data and instance, and what git keeps to itself.
NOT_COPIED = {".git", ".venv", "data", ".dagster_home", ".services", ".pytest_cache", ".ruff_cache"}
DEV_URL = "http://127.0.0.1:3000"


def readme_commands() -> list[str]:
    """Shell commands in README order: lines of ```sh blocks (comments cut), then every inline
    code span that starts like a command (a span broken over lines is joined)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", re.sub(r"\n\s*", " ", prose)):
        if span.startswith(COMMAND_START):
            commands.append(span)
    return commands


def runnable() -> list[str]:
    skipped = SETUP | SERVERS | set(NOT_RUN)
    return [c for c in dict.fromkeys(readme_commands()) if c not in skipped]


def test_the_readme_shows_every_step():
    commands = readme_commands()
    assert set(commands) >= SETUP | SERVERS
    # The exclusions name commands README still shows.
    assert set(NOT_RUN) <= set(commands)
    for shown in ("dg launch", "snapshots create ", "snapshots read ", "s.open(", "erasure audit"):
        assert any(shown in c for c in commands), shown
    # No placeholders, and days inside the sample (2026-11-26..28) wherever a day is named.
    for command in commands:
        assert "..." not in command.replace("...2026", ""), command
        assert "<" not in command.replace("<(", ""), command
        for day in re.findall(r"\d{4}-\d{2}-\d{2}", command):
            assert "2026-11-26" <= day <= "2026-11-28", command


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's clone after `make demo`: the top level copied, the demo run on small sizes."""
    root = tmp_path_factory.mktemp("readme")
    for entry in REPO.iterdir():
        if entry.name in NOT_COPIED or (entry.name.startswith(("tmp", ".")) and entry.is_dir()):
            continue
        copy = shutil.copytree if entry.is_dir() else shutil.copy2
        copy(entry, root / entry.name)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / ".dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", root / ".dagster_home" / "dagster.yaml")
    run(
        root,
        f"DAGSTER_HOME=$PWD/.dagster_home .venv/bin/python -m identity_data.demo {' '.join(DEMO)}",
    )
    return root


def env(root: Path) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_DATA_", "DAGSTER_"))
    }
    return {**clean, "PWD": str(root)}


def run(root: Path, command: str, timeout: float = 1800) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=root,
        env=env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


# What each command must print, beyond exiting 0: the commands succeed on real rows.
EXPECT = {
    "--partition 2026-11-28": ["RUN_SUCCESS"],
    "--partition-range": ["RUN_SUCCESS"],
    "snapshots create": ["manifest sha256"],
    "snapshots read": ["verified"],
    "erasure subject": ["erased in"],
    "erasure audit": ["snapshots_redacted"],
}


@pytest.mark.parametrize("command", runnable())
def test_readme_command_works_on_the_demo_data(checkout: Path, command: str):
    out = run(checkout, command)
    for fragment, wanted in EXPECT.items():
        if fragment in command:
            for text in wanted:
                assert text in out, f"{command}\n{out[-4000:]}"


def port_is_free(port: int, timeout: float = 120) -> None:
    """Wait for the port: answering on another server's port would test that server."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                assert time.monotonic() < deadline, f"127.0.0.1:{port} stays in use"
        time.sleep(2)


def test_make_dev_starts_and_serves_the_project(checkout: Path):
    """`make dev` verbatim: the UI on 127.0.0.1:3000 lists the project's code location."""
    dev = Service(
        "make dev",
        ["make", "dev"],
        3000,
        http_ready(f"{DEV_URL}/server_info"),
        checkout / "make-dev.log",
        env=env(checkout),
        cwd=checkout,
        new_session=True,
    )
    port_is_free(3000)
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    try:
        dev.start(timeout=300)
        deadline = time.monotonic() + 240
        while True:
            request = urllib.request.Request(
                f"{DEV_URL}/graphql",
                data=json.dumps({"query": query}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
            if [(e["name"], e["loadStatus"]) for e in entries] == [("identity_data", "LOADED")]:
                break
            assert time.monotonic() < deadline, entries
            time.sleep(2)
    finally:
        dev.stop()
