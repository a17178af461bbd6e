"""The default-size sample (3 days x 200 captures): perceptual distinctness at full size.

About a minute on 2 cores; marked slow (deselect with `-m "not slow"` while iterating).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from identity_data.sample import generate
from identity_data_tests.sample.test_generate import (
    _blob_files,
    _phash,
    distinct_captures,
    pairwise,
)

pytestmark = pytest.mark.slow


def test_default_sample_phash_distances(tmp_path: Path) -> None:
    root = tmp_path / "data"
    summary = generate(root, seed=7, days=3, captures_per_day=200, end_date=date(2026, 11, 29))
    files = _blob_files(root)
    groups = distinct_captures(root)
    hashes = {kind: [_phash(files[c]) for c in ids] for kind, ids in groups.items()}
    selfies = np.asarray(pairwise(hashes["selfie"]))
    everything = np.asarray(pairwise(hashes["selfie"] + hashes["card"]))
    dups = pl.read_csv(root / "ground_truth/near_duplicates.csv")
    dup_dist = np.asarray([_phash(files[c]) - _phash(files[o]) for c, o, _ in dups.rows()])
    for name, d in (("selfie pairs", selfies), ("all distinct pairs", everything)):
        print(
            f"\n{name}: n={d.size} min={d.min()} p1={np.percentile(d, 1):.0f} "
            f"median={np.median(d):.0f} max={d.max()}"
        )
    print(
        f"near-dups n={dup_dist.size} max={dup_dist.max()} mean={dup_dist.mean():.1f}; "
        f"redrawn={summary.blobs_redrawn}"
    )
    assert len(groups["selfie"]) > 300
    assert selfies.min() > 10 and everything.min() > 10
    assert dup_dist.max() <= 8
