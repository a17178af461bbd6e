"""Deployment settings are resolved at launch and fail naming what is missing."""

import pytest

from identity_data.privacy import MissingPseudonymKeyError
from identity_data.settings import PROD_REQUIRED, SettingsError, resolve_settings

PROD = {
    "IDENTITY_DATA_ENV": "prod",
    "IDENTITY_DATA_GCS_BUCKET": "lake-bucket",
    "IDENTITY_DATA_GCP_PROJECT": "proj",
    "IDENTITY_DATA_BQ_DATASET": "identity",
    "IDENTITY_DATA_CAPTURE_DB_URL": "postgresql+psycopg://reader@db/captures",
    "IDENTITY_DATA_CAPTURE_BUCKET": "gs://capture-bucket",
    # 32 random bytes, as hex.
    "IDENTITY_DATA_PSEUDONYM_KEY": "5f0c7e2a9b41d83e6a17c4f2b09e58d3"
    "a6c1f47e2b8d90a35e6f1c2d7b4a8e09",
}


@pytest.fixture
def prod_env(monkeypatch):
    for name, value in PROD.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_prod_settings(prod_env):
    settings = resolve_settings()
    assert settings.is_prod
    assert settings.lake_url == "gs://lake-bucket/identity-data"
    assert (settings.gcp_project, settings.bq_dataset, settings.bq_location) == (
        "proj",
        "identity",
        "EU",
    )


@pytest.mark.parametrize("missing", PROD_REQUIRED)
def test_each_missing_prod_setting_is_named(prod_env, missing):
    prod_env.delenv(missing)
    with pytest.raises(SettingsError, match=missing):
        resolve_settings()


def test_short_prod_key_is_refused(prod_env):
    prod_env.setenv("IDENTITY_DATA_PSEUDONYM_KEY", "short")
    with pytest.raises(MissingPseudonymKeyError, match="IDENTITY_DATA_PSEUDONYM_KEY"):
        resolve_settings()


def test_local_default_without_key_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("IDENTITY_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("IDENTITY_DATA_ENV", raising=False)
    monkeypatch.delenv("IDENTITY_DATA_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MissingPseudonymKeyError, match=r"pseudonym\.key"):
        resolve_settings()


def test_local_default(data_home):
    settings = resolve_settings()
    assert settings.lake_url == str(data_home / "lake")
    assert settings.capture_db_url == f"sqlite:///{data_home}/capture_db.sqlite"
    assert len(settings.pseudonym_key) == 32


def test_unknown_env_is_refused(monkeypatch):
    monkeypatch.setenv("IDENTITY_DATA_ENV", "staging")
    with pytest.raises(SettingsError, match=r"'local' or 'prod'"):
        resolve_settings()
