import json

import numpy as np
import polars as pl
import pytest
from crowdkit.aggregation import DawidSkene, MajorityVote
from polars.testing import assert_frame_equal

from identity_data.defs.labels.consensus import (
    annotator_drift,
    confusion_long,
    dawid_skene,
    majority_vote,
)
from identity_data.defs.labels.schemas import (
    AnnotatorConfusion,
    AnnotatorDrift,
    AnnotatorQuality,
    ConsensusLabels,
)
from identity_data.sample.crowd import simulate_crowd


def _votes(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["capture_id", "annotator", "task", "label"], orient="row")


def test_majority_vote_ties_go_to_taxonomy_order() -> None:
    votes = _votes(
        [
            ("c1", "a", "attack_type", "mask"),
            ("c1", "b", "attack_type", "print"),
            ("c2", "a", "attack_type", "replay"),
            ("c2", "b", "attack_type", "replay"),
            ("c2", "c", "attack_type", "genuine"),
            ("c3", "a", "document_type", "none"),
            ("c3", "b", "document_type", "td3_passport"),
            ("c4", "c", "document_type", "none"),
        ]
    )
    expected = pl.DataFrame(
        {
            "capture_id": ["c1", "c2", "c3", "c4"],
            "task": ["attack_type", "attack_type", "document_type", "document_type"],
            "mv_label": ["print", "replay", "td3_passport", "none"],
            "n_annotators": [2, 3, 2, 1],
            "agreement": [0.5, 2 / 3, 0.5, 1.0],
        }
    )
    assert_frame_equal(majority_vote(votes), expected)
    # Row order must not matter.
    shuffled = votes.sample(fraction=1.0, shuffle=True, seed=1)
    assert_frame_equal(majority_vote(shuffled), expected)


def test_repeated_annotation_or_unknown_label_is_rejected() -> None:
    dup = _votes([("c1", "a", "attack_type", "mask"), ("c1", "a", "attack_type", "print")])
    with pytest.raises(ValueError, match="pool_latest"):
        dawid_skene(dup)
    with pytest.raises(ValueError, match="not in the taxonomy"):
        majority_vote(_votes([("c1", "a", "attack_type", "selfie")]))


def test_empty_input_gives_empty_typed_frames() -> None:
    empty = _votes([])
    labels, quality = dawid_skene(empty)
    ConsensusLabels.validate(labels)
    AnnotatorQuality.validate(quality)
    assert labels.is_empty() and quality.is_empty() and majority_vote(empty).is_empty()


def _crowdkit_labels(annotations: pl.DataFrame) -> pl.DataFrame:
    data = annotations.select(task="capture_id", worker="annotator", label="label").to_pandas()
    labels = DawidSkene(n_iter=100, tol=1e-5).fit_predict(data)
    return pl.DataFrame({"capture_id": labels.index.astype(str), "ck_label": labels.astype(str)})


def test_dawid_skene_matches_crowdkit_and_beats_majority_vote() -> None:
    crowd = simulate_crowd(20_000, seed=7)
    labels, quality = dawid_skene(crowd.annotations)
    ConsensusLabels.validate(labels)
    AnnotatorQuality.validate(quality)
    joined = labels.join(crowd.truth.rename({"label": "truth"}), on=["capture_id", "task"]).join(
        _crowdkit_labels(crowd.annotations), on="capture_id"
    )
    assert joined.height == labels.height == 20_000
    scores = joined.select(
        ds=(pl.col("label") == pl.col("truth")).mean(),
        mv=(pl.col("mv_label") == pl.col("truth")).mean(),
        agree_ck=(pl.col("label") == pl.col("ck_label")).mean(),
    ).row(0, named=True)
    assert scores["agree_ck"] >= 0.99, scores
    assert scores["ds"] >= scores["mv"] + 0.02, scores
    # The estimated accuracies recover the simulated ones.
    true_acc = np.einsum("jkk->j", crowd.confusion) / crowd.confusion.shape[1]
    np.testing.assert_allclose(quality.sort("annotator")["accuracy"], true_acc, atol=0.03)


def test_majority_vote_matches_crowdkit_without_ties() -> None:
    crowd = simulate_crowd(5_000, per_item=(3,), accuracies=(0.9, 0.8, 0.7), seed=2)
    ours = majority_vote(crowd.annotations)
    unanimous_or_majority = ours.filter(pl.col("agreement") > 0.5)
    data = crowd.annotations.select(task="capture_id", worker="annotator", label="label")
    theirs = MajorityVote().fit_predict(data.to_pandas())
    theirs_df = pl.DataFrame({"capture_id": theirs.index.astype(str), "ck": theirs.astype(str)})
    joined = unanimous_or_majority.join(theirs_df, on="capture_id")
    assert joined.height == unanimous_or_majority.height > 4_000
    assert (joined["mv_label"] == joined["ck"]).all()


def test_single_annotator_capture_uses_that_annotators_confusion() -> None:
    crowd = simulate_crowd(20_000, seed=11)
    solo = _votes(
        [
            ("solo-good", "ann-0", "attack_type", "replay"),
            ("solo-bad", "ann-4", "attack_type", "replay"),
        ]
    )
    labels, quality = dawid_skene(pl.concat([crowd.annotations, solo]))
    got = labels.filter(pl.col("capture_id").str.starts_with("solo")).sort("capture_id")
    assert got["n_annotators"].to_list() == [1, 1]
    assert got["agreement"].to_list() == [1.0, 1.0]
    # Bayes with the class prior (the simulated truth frequencies) and the estimated confusion.
    prior = (
        crowd.truth["label"]
        .value_counts(normalize=True)
        .join(
            pl.DataFrame({"label": ["genuine", "print", "replay", "mask"]}), on="label", how="right"
        )
        .fill_null(0.0)["proportion"]
        .to_numpy()
    )
    for capture_id, annotator in [("solo-bad", "ann-4"), ("solo-good", "ann-0")]:
        matrix = json.loads(quality.filter(pl.col("annotator") == annotator)["confusion"][0])
        likelihood = np.array([matrix[t]["replay"] for t in ["genuine", "print", "replay", "mask"]])
        bayes = prior * likelihood / (prior * likelihood).sum()
        row = got.filter(pl.col("capture_id") == capture_id).row(0, named=True)
        assert row["label"] == ["genuine", "print", "replay", "mask"][int(bayes.argmax())]
        assert row["posterior"] == pytest.approx(bayes.max(), abs=0.02)
    good, bad = (
        got.filter(pl.col("capture_id") == c)["posterior"][0] for c in ("solo-good", "solo-bad")
    )
    assert good > bad


def test_tasks_are_fitted_independently_and_order_free() -> None:
    attack = simulate_crowd(3_000, task="attack_type", seed=3)
    quality_task = simulate_crowd(3_000, task="capture_quality", seed=4)
    both = pl.concat([attack.annotations, quality_task.annotations])
    labels, quality = dawid_skene(both.sample(fraction=1.0, shuffle=True, seed=5))
    alone, alone_quality = dawid_skene(attack.annotations)
    assert_frame_equal(
        labels.filter(pl.col("task") == "attack_type").sort("capture_id"),
        alone.sort("capture_id"),
    )
    assert_frame_equal(
        quality.filter(pl.col("task") == "attack_type").sort("annotator"),
        alone_quality.sort("annotator"),
    )
    assert set(labels["task"]) == {"attack_type", "capture_quality"}


def test_confusion_long_rows_sum_to_one() -> None:
    _, quality = dawid_skene(simulate_crowd(2_000, seed=9).annotations)
    long = confusion_long(quality)
    AnnotatorConfusion.validate(long)
    assert long.height == quality.height * 16
    sums = long.group_by("annotator", "true_label").agg(pl.col("probability").sum())
    np.testing.assert_allclose(sums["probability"], 1.0, atol=1e-5)


def test_annotator_drift_flags_drops_over_threshold() -> None:
    current = pl.DataFrame(
        {
            "annotator": ["a", "b", "c", "d"],
            "task": ["attack_type"] * 4,
            "accuracy": [0.70, 0.85, 0.95, 0.60],
            "n_labels": [100, 100, 100, 100],
        }
    )
    history = pl.DataFrame(
        {
            "annotator": ["a", "a", "b", "c"],
            "task": ["attack_type"] * 4,
            "accuracy": [0.90, 0.80, 0.90, 0.90],
            "n_labels": [300, 100, 50, 10],
        }
    )
    drift = annotator_drift(current, history)
    AnnotatorDrift.validate(drift)
    expected = pl.DataFrame(
        {
            "annotator": ["a", "b", "c", "d"],
            "task": ["attack_type"] * 4,
            "accuracy": [0.70, 0.85, 0.95, 0.60],
            "history_accuracy": [0.875, 0.90, 0.90, None],
            "accuracy_drop": [0.175, 0.05, -0.05, None],
            "drifted": [True, False, False, False],
        }
    )
    assert_frame_equal(drift, expected)
    assert annotator_drift(current, history, threshold=0.04)["drifted"].to_list() == [
        True,
        True,
        False,
        False,
    ]
