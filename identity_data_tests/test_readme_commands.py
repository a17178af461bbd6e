"""The README's snapshot and erasure commands, verbatim, on a small `make demo` data root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--days", "2", "--captures-per-day", "12", "--campaigns", "1", "--seed", "5"]


def readme_commands() -> list[str]:
    """Backticked commands of the snapshot and erasure sections, in README order."""
    text = re.sub(r"```.*?```", "", (REPO / "README.md").read_text(), flags=re.S)
    spans = re.findall(r"`([^`]+)`", text.replace("\n  ", " "))
    return [
        span
        for span in spans
        if re.search(
            r"-m identity_data\.(snapshots|erasure) |import identity_data\.snapshots"
            r"|FROM snapshot_",
            span,
        )
        and span.startswith((".venv/", "DAGSTER_HOME="))
    ]


def test_the_readme_shows_every_step():
    commands = readme_commands()
    assert any(".snapshots create " in c for c in commands)
    assert any(".snapshots read " in c for c in commands)
    assert any("s.open(" in c for c in commands)
    assert any("FROM snapshot_demo_1" in c for c in commands)
    assert any("erasure subject --subject-ref -" in c for c in commands)
    assert any("erasure audit" in c for c in commands)


def test_readme_commands_work_on_the_demo_data(tmp_path: Path):
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / ".dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / ".dagster_home" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_DATA_", "DAGSTER_"))}

    def run(command: str) -> str:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env={**env, "PWD": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(f"DAGSTER_HOME=$PWD/.dagster_home .venv/bin/python -m identity_data.demo {' '.join(DEMO)}")
    outputs = [run(command) for command in readme_commands()]
    joined = "\n".join(outputs)
    assert "manifest sha256" in joined and "verified" in joined
    # DuckDB's relation printout (column types as DuckDB names them) from the view query.
    assert "attack_type" in joined and "int64" in joined
    assert "warehouse rows by table" in joined
    assert "erased in" in joined and "snapshots_redacted" in joined
