"""Schema validation shared by every domain: pandera polars models as blocking asset checks."""

from __future__ import annotations

import dagster as dg
import pandera.errors
import pandera.polars as pa
import polars as pl

from identity_data.metadata import markdown_table


def polars_schema(model: type[pa.DataFrameModel]) -> pl.Schema:
    """The model's columns and polars dtypes, in the model's order: the one place a frame's
    schema is written is its pandera model; empty frames and warehouse DDL derive from this."""
    return pl.Schema({c: s.dtype.type for c, s in model.to_schema().columns.items()})


def empty_frame(model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A zero-row frame with exactly the model's columns and dtypes."""
    return pl.DataFrame(schema=polars_schema(model))


def conform(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """Order and cast columns to the model; a missing column raises naming it."""
    schema = polars_schema(model)
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{model.__name__}: frame lacks columns {missing}")
    return df.select(pl.col(c).cast(dtype) for c, dtype in schema.items())


# Every schema check's name ends so: `<model>_schema`.
SCHEMA_CHECK_SUFFIX = "_schema"


def schema_check_name(model: type[pa.DataFrameModel]) -> str:
    return f"{model.__name__}{SCHEMA_CHECK_SUFFIX}"


def schema_check_spec(
    asset: dg.AssetKey | str, model: type[pa.DataFrameModel]
) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=schema_check_name(model),
        asset=asset,
        blocking=True,
        description=f"Rows match the pandera model {model.__name__} (types, nulls, values).",
    )


def schema_failures(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """(column, check, len): how many rows fail each check of the model; empty if none does.
    Counts only, never row values (they may be PII), so batches of one output add up."""
    try:
        model.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        if isinstance(cases, pl.DataFrame):
            return cases.group_by(
                pl.col("column").cast(pl.String), pl.col("check").cast(pl.String)
            ).agg(len=pl.len().cast(pl.UInt32))
        return pl.DataFrame(
            {"column": ["-"], "check": ["-"], "len": [len(cases)]}, schema=FAILURE_SCHEMA
        )
    return pl.DataFrame(schema=FAILURE_SCHEMA)


FAILURE_SCHEMA = {"column": pl.String, "check": pl.String, "len": pl.UInt32}


def schema_result(
    model: type[pa.DataFrameModel],
    asset: dg.AssetKey | str,
    rows: int,
    failures: pl.DataFrame,
) -> dg.AssetCheckResult:
    """The schema check's result from `schema_failures` of every batch of the output."""
    name = schema_check_name(model)
    if failures.height:
        summary = (
            failures.group_by("column", "check")
            .agg(pl.col("len").sum())
            .sort("len", "column", "check", descending=[True, False, False])
            .head(10)
        )
        return dg.AssetCheckResult(
            check_name=name,
            asset_key=asset,
            passed=False,
            metadata={
                "failure_cases": int(failures["len"].sum()),
                "failures_by_column": markdown_table(summary),
            },
        )
    return dg.AssetCheckResult(
        check_name=name, asset_key=asset, passed=True, metadata={"rows": rows}
    )


def schema_check(
    df: pl.DataFrame, model: type[pa.DataFrameModel], asset: dg.AssetKey | str
) -> dg.AssetCheckResult:
    """Validate every row lazily and report failure counts, never row values (they may be PII)."""
    return schema_result(model, asset, df.height, schema_failures(df, model))
