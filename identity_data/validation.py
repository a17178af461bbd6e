"""Schema validation shared by every domain: pandera polars models as blocking asset checks."""

from __future__ import annotations

import dagster as dg
import pandera.errors
import pandera.polars as pa
import polars as pl

from identity_data.metadata import markdown_table


def empty_frame(model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A zero-row frame with exactly the model's columns and dtypes."""
    return pl.DataFrame(schema={c: s.dtype.type for c, s in model.to_schema().columns.items()})


def conform(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """Order and cast columns to the model; a missing column raises naming it."""
    columns = model.to_schema().columns
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{model.__name__}: frame lacks columns {missing}")
    return df.select(pl.col(c).cast(s.dtype.type) for c, s in columns.items())


def schema_check_spec(
    asset: dg.AssetKey | str, model: type[pa.DataFrameModel]
) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=f"{model.__name__}_schema",
        asset=asset,
        blocking=True,
        description=f"Rows match the pandera model {model.__name__} (types, nulls, values).",
    )


def schema_check(
    df: pl.DataFrame, model: type[pa.DataFrameModel], asset: dg.AssetKey | str
) -> dg.AssetCheckResult:
    """Validate every row lazily and report failure counts, never row values (they may be PII)."""
    try:
        model.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        summary = (
            cases.group_by("column", "check").len().sort("len", descending=True).head(10)
            if isinstance(cases, pl.DataFrame)
            else None
        )
        return dg.AssetCheckResult(
            check_name=f"{model.__name__}_schema",
            asset_key=asset,
            passed=False,
            metadata={
                "failure_cases": len(cases),
                "failures_by_column": markdown_table(summary) if summary is not None else "-",
            },
        )
    return dg.AssetCheckResult(
        check_name=f"{model.__name__}_schema",
        asset_key=asset,
        passed=True,
        metadata={"rows": df.height},
    )
