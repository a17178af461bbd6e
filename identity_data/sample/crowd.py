"""Seeded crowd simulation with known truth and known annotator confusions.

Used by the consensus tests and benchmark to measure accuracy against ground truth; nothing in
the pipeline reads it, so it sits with the sample code, not in defs/ (which every definitions
load imports).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from identity_data.defs.labels.taxonomy import labels_for


@dataclass(frozen=True)
class Crowd:
    annotations: pl.DataFrame  # capture_id, annotator, task, label
    truth: pl.DataFrame  # capture_id, task, label
    confusion: np.ndarray  # (annotator, true, given)


def simulate_crowd(
    n_items: int,
    task: str = "attack_type",
    accuracies: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.55),
    per_item: tuple[int, ...] = (3, 3, 4),
    seed: int = 0,
) -> Crowd:
    """Draw true labels (imbalanced prior) and noisy annotators with skewed confusions.

    Annotator j answers correctly with probability `accuracies[j]`; its errors follow a random
    Dirichlet split over the wrong labels, so errors are correlated with the true class and
    Dawid-Skene has something to learn over majority vote. Each item gets a number of distinct
    annotators drawn uniformly from `per_item`.
    """
    rng = np.random.default_rng(seed)
    labels = labels_for(task)
    k, n_ann = len(labels), len(accuracies)
    prior = rng.dirichlet(np.full(k, 2.0))
    truth = rng.choice(k, size=n_items, p=prior)
    confusion = np.empty((n_ann, k, k))
    for j, acc in enumerate(accuracies):
        for t in range(k):
            wrong = rng.dirichlet(np.full(k - 1, 0.5)) * (1.0 - acc)
            confusion[j, t] = np.insert(wrong, t, acc)
    m = rng.choice(np.asarray(per_item), size=n_items)
    # A random permutation of annotators per item; the first m[i] of it label item i.
    order = np.argsort(rng.random((n_items, n_ann)), axis=1)
    take = np.arange(n_ann)[None, :] < m[:, None]
    item = np.repeat(np.arange(n_items), m)
    annotator = order[take]
    cdf = confusion.cumsum(axis=2)[annotator, truth[item]]
    given = (rng.random(len(item))[:, None] > cdf).sum(axis=1).clip(max=k - 1)
    ids = pl.Series("capture_id", np.arange(n_items)).cast(pl.String).str.zfill(8)
    names = np.asarray([f"ann-{j}" for j in range(n_ann)])
    annotations = pl.DataFrame(
        {
            "capture_id": ("cap-" + ids.gather(item)),
            "annotator": names[annotator],
            "task": pl.Series([task] * len(item), dtype=pl.String),
            "label": np.asarray(labels)[given],
        }
    )
    truth_df = pl.DataFrame(
        {
            "capture_id": "cap-" + ids,
            "task": pl.Series([task] * n_items, dtype=pl.String),
            "label": np.asarray(labels)[truth],
        }
    )
    return Crowd(annotations, truth_df, confusion)


def write_label_studio_export(path: Path, target_bytes: int, seed: int = 0) -> int:
    """Write a Label Studio-shaped export of about `target_bytes` (3 annotations per task).

    Returns its accounting row count (every annotation has one result item).
    """
    rng = np.random.default_rng(seed)
    labels = labels_for("attack_type")
    n = 0
    with path.open("w") as fh:
        fh.write("[")
        while fh.tell() < target_bytes:
            annotations = [
                {
                    "id": n * 3 + j,
                    "completed_by": j,
                    "created_at": "2026-11-28T10:00:00.000000Z",
                    "result": [
                        {
                            "from_name": "attack_type",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [labels[rng.integers(len(labels))]]},
                        }
                    ],
                }
                for j in range(3)
            ]
            task = {
                "id": n,
                "data": {
                    "capture_id": f"cap-{n:09d}",
                    "image": f"raw/captures/{n % 256:02x}/{n:064x}.jpg",
                },
                "annotations": annotations,
            }
            fh.write(("," if n else "") + json.dumps(task))
            n += 1
        fh.write("]")
    return n * 3
