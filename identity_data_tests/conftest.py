"""Shared fixtures: every test runs on its own temporary data home and Dagster instance."""

import secrets
from pathlib import Path

import dagster as dg
import pytest

from identity_data.settings import ensure_local_key

pytest_plugins = ["identity_data_tests.services"]


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded-default deployment under tmp_path, with its own key."""
    home = tmp_path / "data"
    monkeypatch.setenv("IDENTITY_DATA_ENV", "local")
    monkeypatch.setenv("IDENTITY_DATA_HOME", str(home))
    monkeypatch.delenv("IDENTITY_DATA_PSEUDONYM_KEY", raising=False)
    ensure_local_key(home)
    return home


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        (Path(__file__).parents[1] / "dagster.yaml").read_text()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


@pytest.fixture
def prod_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = secrets.token_hex(32)
    monkeypatch.setenv("IDENTITY_DATA_PSEUDONYM_KEY", key)
    return key
