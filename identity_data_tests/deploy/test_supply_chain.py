"""Every install verifies hashes: the uv bootstrap as well as the locks it installs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "deploy" / "uv-bootstrap.lock"


def _install_lines(path: Path) -> list[str]:
    # Join continued lines so a command split over several lines is read as one.
    text = path.read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if re.search(r"\bpip install\b", line)]


def test_the_uv_bootstrap_is_hash_pinned():
    text = BOOTSTRAP.read_text()
    pins = re.findall(r"^(\S+)==(\S+) \\$", text, flags=re.M)
    assert [name for name, _ in pins] == ["uv"]
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 10  # one per platform wheel


def test_every_pip_install_requires_hashes():
    for path in (ROOT / "Makefile", ROOT / "Dockerfile"):
        lines = _install_lines(path)
        assert lines, path
        for line in lines:
            for command in re.split(r"&&", line):
                if "pip install" not in command or command.strip().endswith("-e ."):
                    continue
                assert "--require-hashes" in command, f"{path.name}: {command.strip()}"
                assert re.search(r"-r \S*(uv-bootstrap|requirements(-dev)?)\.lock", command)
