import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.labels.parse import drop_superseded


def test_latest_version_of_each_file_is_kept():
    rows = pl.DataFrame(
        {
            "export_id": ["a.json@1", "a.json@2", "b.json@1", "a.json@1"],
            "source_file": [
                "label-exports/a.json",
                "label-exports/a.json",
                "label-exports/b.json",
                "label-exports/a.json",
            ],
            "n": [1, 2, 3, 4],
        }
    )
    current, superseded = drop_superseded(rows, ["a.json@1", "b.json@1", "a.json@2"])
    assert_frame_equal(current.sort("n"), rows.filter(pl.col("n").is_in([2, 3])))
    assert sorted(superseded["n"]) == [1, 4]
    assert current.height + superseded.height == rows.height
