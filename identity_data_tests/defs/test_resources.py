"""The resources of the definitions: one deployment, resolved once per run, in both IO managers."""

import dagster as dg
import polars as pl
import pytest

from identity_data.contracts import WAREHOUSE_TABLE
from identity_data.defs.labels.schemas import AnnotatorQuality
from identity_data.defs.resources import resources
from identity_data.stores import deployment as deployment_module
from identity_data.stores.deployment import Deployment
from identity_data.validation import empty_frame


def test_one_deployment_resolved_once_per_run(data_home, monkeypatch: pytest.MonkeyPatch):
    resolved = []
    real = deployment_module.resolve_settings

    def counting():
        resolved.append(real())
        return resolved[-1]

    monkeypatch.setattr(deployment_module, "resolve_settings", counting)

    @dg.asset
    def upstream() -> pl.DataFrame:
        return pl.DataFrame({"n": [1, 2]})

    @dg.asset(
        io_manager_key="warehouse_io_manager", metadata={WAREHOUSE_TABLE: "annotator_quality"}
    )
    def quality(upstream: pl.DataFrame, deployment: Deployment) -> pl.DataFrame:
        assert upstream.height == 2
        assert deployment.settings is resolved[0]
        return empty_frame(AnnotatorQuality)

    result = dg.materialize([upstream, quality], resources=resources().resources)
    assert result.success
    assert len(resolved) == 1
    # Both IO managers used the one deployment: the lake under its home, DuckDB beside it.
    assert (data_home / "lake" / "tables" / "upstream.parquet").exists()
    assert (data_home / "warehouse.duckdb").exists()
