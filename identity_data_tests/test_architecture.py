"""The import order of pyproject.toml's [tool.importlinter] contracts holds (import-linter).

Stages import downstream only (raw <- annotations <- labels <- warehouse <- snapshots <- erasure),
and the shared modules beneath them import no stage, entry point or sample code.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path):
    """The contract is live: a raw module importing the warehouse is reported."""
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    package = tmp_path / "identity_data"
    subprocess.run(["cp", "-r", str(ROOT / "identity_data"), str(package)], check=True)
    (package / "defs" / "raw" / "upward.py").write_text(
        "from identity_data.defs.warehouse import schemas  # noqa: F401\n"
    )
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "identity_data.defs.raw.upward -> identity_data.defs.warehouse.schemas" in result.stdout
