"""Deployment settings, resolved from the environment when a run launches (never at import)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from identity_data.privacy import check_key

ENV = "IDENTITY_DATA_ENV"
HOME = "IDENTITY_DATA_HOME"
PROD_REQUIRED = (
    "IDENTITY_DATA_GCS_BUCKET",
    "IDENTITY_DATA_GCP_PROJECT",
    "IDENTITY_DATA_BQ_DATASET",
    "IDENTITY_DATA_CAPTURE_DB_URL",
    "IDENTITY_DATA_CAPTURE_BUCKET",
    "IDENTITY_DATA_PSEUDONYM_KEY",
)


class SettingsError(ValueError):
    """A deployment setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    """What every deployment has; `LocalSettings` and `ProdSettings` add their warehouse."""

    env: str
    lake_url: str
    capture_bucket_url: str
    capture_db_url: str
    pseudonym_key: bytes

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"


@dataclass(frozen=True)
class LocalSettings(Settings):
    """The embedded default: a folder and a DuckDB file."""

    duckdb_path: str


@dataclass(frozen=True)
class ProdSettings(Settings):
    """GCS and BigQuery; every field is required at launch."""

    gcp_project: str
    bq_dataset: str
    bq_location: str = "EU"


def _get(name: str, default: str | None = None) -> str | None:
    value = dg.EnvVar(name).get_value(default)
    return value if value else default


def local_key_file(home: Path) -> Path:
    return home / "pseudonym.key"


def ensure_local_key(home: Path) -> Path:
    """Create the embedded default's key file once; it never leaves the laptop."""
    path = local_key_file(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path


def resolve_settings() -> LocalSettings | ProdSettings:
    """Read the deployment from the environment; fails naming every missing prod setting."""
    env = _get(ENV, "local")
    if env == "prod":
        missing = [name for name in PROD_REQUIRED if not _get(name)]
        if missing:
            raise SettingsError(
                f"{ENV}=prod needs these settings, which are unset or empty: {', '.join(missing)}"
            )
        prefix = (_get("IDENTITY_DATA_GCS_PREFIX", "identity-data") or "").strip("/")
        return ProdSettings(
            env=env,
            lake_url=f"gs://{_get('IDENTITY_DATA_GCS_BUCKET')}/{prefix}",
            capture_bucket_url=_get("IDENTITY_DATA_CAPTURE_BUCKET") or "",
            capture_db_url=_get("IDENTITY_DATA_CAPTURE_DB_URL") or "",
            pseudonym_key=check_key(_get("IDENTITY_DATA_PSEUDONYM_KEY")),
            gcp_project=_get("IDENTITY_DATA_GCP_PROJECT") or "",
            bq_dataset=_get("IDENTITY_DATA_BQ_DATASET") or "",
            bq_location=_get("IDENTITY_DATA_BQ_LOCATION", "EU") or "EU",
        )
    if env != "local":
        raise SettingsError(f"{ENV} must be 'local' or 'prod', not {env!r}")
    home = Path(_get(HOME, "data") or "data").resolve()
    key = _get("IDENTITY_DATA_PSEUDONYM_KEY")
    if key is None and local_key_file(home).exists():
        key = local_key_file(home).read_text().strip()
    return LocalSettings(
        env=env,
        lake_url=str(home / "lake"),
        capture_bucket_url=_get("IDENTITY_DATA_CAPTURE_BUCKET", str(home / "capture-bucket")) or "",
        capture_db_url=_get("IDENTITY_DATA_CAPTURE_DB_URL", f"sqlite:///{home}/capture_db.sqlite")
        or "",
        pseudonym_key=check_key(
            key, f"IDENTITY_DATA_PSEUDONYM_KEY (or the key file {local_key_file(home)})"
        ),
        duckdb_path=str(home / "warehouse.duckdb"),
    )
