"""Pure warehouse shaping functions."""

import polars as pl
from polars.testing import assert_series_equal

from identity_data.defs.warehouse.transforms import subject_split, wide_labels


def test_wide_labels_pivots_tasks():
    labels = pl.DataFrame(
        {
            "capture_id": ["a", "a", "b"],
            "task": ["attack_type", "capture_quality", "attack_type"],
            "label": ["print", "ok", "genuine"],
            "posterior": [0.9, 0.8, 0.99],
        }
    )
    wide = wide_labels(labels).sort("capture_id")
    assert wide.row(0, named=True) == {
        "capture_id": "a",
        "attack_type": "print",
        "document_type": None,
        "capture_quality": "ok",
        "attack_type_posterior": 0.9,
        "document_type_posterior": None,
        "capture_quality_posterior": 0.8,
    }
    assert wide["attack_type"].to_list() == ["print", "genuine"]


def test_subject_split_is_stable_and_subject_disjoint():
    pseudonyms = pl.Series("p", [f"{n:08x}" + "0" * 56 for n in range(0, 2000, 7)])
    splits = pl.select(subject_split(pl.lit(pseudonyms))).to_series()
    again = pl.select(subject_split(pl.lit(pseudonyms))).to_series()
    assert_series_equal(splits, again)
    shares = splits.value_counts(normalize=True).sort("p")
    assert set(shares["p"]) == {"train", "validation", "test"}
    assert 0.7 < shares.filter(pl.col("p") == "train")["proportion"][0] < 0.9
