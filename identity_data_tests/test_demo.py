"""`make demo`'s flow end to end on a tiny sample: every blocking check passes, twice, same tables.

These are the asset checks in CI: a failing blocking check fails this test.
"""

from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from identity_data import demo

TABLES = ("captures", "annotations", "labels", "annotator_quality", "training_examples")
ARGS = ["--days", "1", "--captures-per-day", "12", "--campaigns", "1", "--seed", "5"]


def snapshot(home: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f'SELECT * FROM "{t}"').pl() for t in TABLES}


def test_demo_twice_gives_the_same_tables(data_home, instance, capsys):
    assert demo.main(ARGS) == 0
    first = snapshot(data_home)
    out = capsys.readouterr().out
    assert "0 failed" in out and "training_examples" in out
    for table, frame in first.items():
        assert frame.height > 0, table
        keys = ["capture_id", "task"] if table == "labels" else ["capture_id"]
        if table == "annotator_quality":
            keys = ["annotator", "task"]
        assert frame.select(keys).is_duplicated().sum() == 0, table

    assert demo.main(ARGS) == 0
    second = snapshot(data_home)
    for table in TABLES:
        order = first[table].columns[:3]
        assert_frame_equal(first[table].sort(order), second[table].sort(order))

    examples = first["training_examples"]
    assert set(examples["split"]) <= {"train", "validation", "test"}
    # A subject's captures never straddle splits.
    assert (
        examples.group_by("subject_pseudonym").agg(pl.col("split").n_unique())["split"].max() == 1
    )
