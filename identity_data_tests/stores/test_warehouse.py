"""The embedded DuckDB warehouse: atomic, idempotent slice replacement."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.stores.warehouse import DuckDBWarehouse, TableSpec

SPEC = TableSpec("t", {"source": pl.String(), "source_partition": pl.String(), "n": pl.Int64()})


def rows(source: str, partition: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": [source] * n, "source_partition": [partition] * n, "n": list(range(n))}
    )


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "w.duckdb")


def test_replace_slice_is_idempotent_and_scoped(warehouse):
    day1, day2, other = rows("p", "d1", 3), rows("p", "d2", 2), rows("c", "d1", 4)
    for frame in (day1, day2, other):
        warehouse.replace_slice(
            SPEC,
            frame,
            {"source": [frame["source"][0]], "source_partition": [frame["source_partition"][0]]},
        )
    new = rows("p", "d1", 5)
    for _ in range(2):
        warehouse.replace_slice(SPEC, new, {"source": ["p"], "source_partition": ["d1"]})
    got = warehouse.read(SPEC, {"source": ["p"], "source_partition": ["d1", "d2"]})
    assert_frame_equal(got.sort("source_partition", "n"), pl.concat([new, day2]))
    assert warehouse.read(SPEC, {"source": ["c"]}).height == 4


def test_a_failed_replacement_leaves_the_old_rows(warehouse):
    warehouse.replace_slice(SPEC, rows("p", "d1", 3), {"source_partition": ["d1"]})
    stray = rows("p", "d9", 1)
    with pytest.raises(ValueError, match="outside the slice"):
        warehouse.replace_slice(
            SPEC, pl.concat([rows("p", "d1", 2), stray]), {"source_partition": ["d1"]}
        )
    bad_type = rows("p", "d1", 2).with_columns(n=pl.lit("x"))
    with pytest.raises(Exception, match=r"Conversion|convert|cast"):
        warehouse.replace_slice(SPEC, bad_type, {"source_partition": ["d1"]})
    assert warehouse.read(SPEC, {}).height == 3
