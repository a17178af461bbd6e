"""Shared fixtures: every test runs on its own temporary data home and Dagster instance."""

import secrets
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from identity_data.dagster_private import reset_defs_state_storage
from identity_data.definitions import defs as load_defs
from identity_data.sample import generate
from identity_data.settings import ensure_local_key

pytest_plugins = ["identity_data_tests.services"]


@pytest.fixture(autouse=True)
def _no_stale_defs_state_storage():
    """Entering an instance sets Dagster's current defs-state storage (a context variable); code
    under test that enters one and disposes it elsewhere leaves that storage pointing at a dead
    instance, and every later definitions load in this process fails. Each test starts clean."""
    yield
    reset_defs_state_storage()


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


SAMPLE_END = date(2026, 11, 28)
SAMPLE_DAYS = ["2026-11-27", "2026-11-28"]
# The (asset, partition) pairs a label change refreshes over all days: the automation tests' oracle.
POOLED = {
    ("labels/consensus_labels", None),
    ("labels/annotator_quality", None),
    ("labels/unmatched_votes", None),
    ("warehouse/labels", None),
    ("warehouse/annotator_quality", None),
}


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small generated sample per session; tests copy it, so they may change their copy."""
    out = tmp_path_factory.mktemp("sample") / "data"
    generate(
        out, seed=3, days=len(SAMPLE_DAYS), captures_per_day=20, end_date=SAMPLE_END, campaigns=1
    )
    return out


@pytest.fixture
def sample_home(sample_source: Path, data_home: Path) -> Path:
    shutil.copytree(sample_source, data_home, dirs_exist_ok=True)
    return data_home


@pytest.fixture
def pipeline():
    """The real Definitions, and a helper that materializes a selection of them."""
    defs = load_defs()
    assets, resources = list(defs.assets or []), dict(defs.resources or {})

    def run(instance: dg.DagsterInstance, *keys: str, raise_on_error: bool = True, **kwargs):
        selection = dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in keys))
        return dg.materialize(
            assets,
            selection=selection,
            instance=instance,
            resources=resources,
            raise_on_error=raise_on_error,
            **kwargs,
        )

    return run
