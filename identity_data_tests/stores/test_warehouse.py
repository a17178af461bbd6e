"""The embedded DuckDB warehouse: atomic, idempotent slice replacement."""

import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from identity_data.stores.warehouse import DuckDBWarehouse, TableSpec, WarehouseLockedError

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


# Holds the DuckDB file open in another process, as a notebook would, for argv[3] seconds.
HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _hold(path, mode: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode, str(seconds)], stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"held"
    return proc


@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_write_waits_for_a_lock_held_elsewhere(warehouse, mode):
    warehouse.replace_slice(SPEC, rows("p", "d1", 1), {})
    holder = _hold(warehouse.path, mode, 2.0)
    try:
        started = time.monotonic()
        warehouse.replace_slice(SPEC, rows("p", "d1", 3), {})
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait(timeout=30)
    assert warehouse.read(SPEC, {}).height == 3


def test_write_fails_clearly_after_the_bounded_wait(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=1.0)
    warehouse.replace_slice(SPEC, rows("p", "d1", 1), {})
    holder = _hold(warehouse.path, "rw", 10.0)
    try:
        with pytest.raises(WarehouseLockedError, match=r"w\.duckdb stayed locked .* 1 s"):
            warehouse.replace_slice(SPEC, rows("p", "d1", 3), {})
    finally:
        holder.kill()
        holder.wait()


def test_reads_open_read_only_beside_another_reader(warehouse):
    assert warehouse.read(SPEC, {}).is_empty()
    # Reading never creates the file.
    assert not Path(warehouse.path).exists()
    warehouse.replace_slice(SPEC, rows("p", "d1", 2), {})
    holder = _hold(warehouse.path, "ro", 5.0)
    try:
        started = time.monotonic()
        assert warehouse.read(SPEC, {}).height == 2
        # No wait: read-only handles share the file.
        assert time.monotonic() - started < 2.0
    finally:
        holder.kill()
        holder.wait()
