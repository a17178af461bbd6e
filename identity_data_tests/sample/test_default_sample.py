"""The default-size sample (3 days x 200 captures): perceptual distinctness at full size.

About a minute on 2 cores, so it runs only with IDENTITY_DATA_SLOW_TESTS=1.
"""

from __future__ import annotations

import itertools
import os
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from identity_data.sample import generate
from identity_data_tests.sample.test_generate import _blob_files, _phash

pytestmark = pytest.mark.skipif(
    os.environ.get("IDENTITY_DATA_SLOW_TESTS") != "1", reason="set IDENTITY_DATA_SLOW_TESTS=1"
)


def test_default_sample_phash_distances(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, seed=7, days=3, captures_per_day=200, end_date=date(2026, 11, 29))
    files = _blob_files(root)
    truth = pl.read_csv(root / "ground_truth/labels.csv")
    dups = pl.read_csv(root / "ground_truth/near_duplicates.csv")
    lfw = set(
        pl.read_csv(root / "lake/landing/open-datasets/lfw_subset/manifest.csv")["capture_id"]
    )
    selfies = [
        c
        for c in truth.filter(pl.col("task") == "document_type", pl.col("label") == "none")[
            "capture_id"
        ]
        if c not in set(dups["capture_id"]) and c not in lfw
    ]
    hashes = [_phash(files[c]) for c in selfies]
    distinct = np.asarray([a - b for a, b in itertools.combinations(hashes, 2)])
    dup_dist = np.asarray([_phash(files[c]) - _phash(files[o]) for c, o, _ in dups.rows()])
    print(
        f"\n{len(selfies)} selfies, {distinct.size} pairs: min {distinct.min()} "
        f"p1 {np.percentile(distinct, 1):.0f} median {np.median(distinct):.0f} "
        f"max {distinct.max()}; near-dups ({dup_dist.size}): max {dup_dist.max()} "
        f"mean {dup_dist.mean():.1f}"
    )
    assert distinct.min() > 10
    assert dup_dist.max() <= 8
