import dagster as dg
import pandera.polars as pa
import polars as pl
import pytest

from identity_data.validation import conform, schema_check


class Model(pa.DataFrameModel):
    capture_id: str = pa.Field(unique=True)
    score: pl.Float64 = pa.Field(ge=0, le=1)

    class Config:
        strict = True


def test_failing_rows_are_counted_not_shown():
    bad = pl.DataFrame({"capture_id": ["secret-a", "secret-a"], "score": [0.5, 7.0]})
    result = schema_check(bad, Model, dg.AssetKey("t"))
    assert not result.passed
    assert result.metadata["failure_cases"].value == 3
    table = result.metadata["failures_by_column"].value
    assert "score" in table and "capture_id" in table
    assert "secret-a" not in str(result.metadata)


def test_passing_frame():
    ok = pl.DataFrame({"capture_id": ["a"], "score": [0.5]})
    assert schema_check(ok, Model, dg.AssetKey("t")).passed


def test_conform_orders_casts_and_names_missing_columns():
    frame = pl.DataFrame({"score": [1], "capture_id": ["a"], "extra": [0]})
    assert conform(frame, Model).schema == pl.Schema({"capture_id": pl.String, "score": pl.Float64})
    with pytest.raises(ValueError, match=r"lacks columns \['score'\]"):
        conform(frame.drop("score"), Model)
