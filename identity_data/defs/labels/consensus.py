"""Label consensus: majority vote baseline and Dawid-Skene EM, per task of the taxonomy.

Input is pooled annotations (see `parse.pool_latest`): one row per (capture_id, annotator, task)
with columns capture_id, annotator, task, label. Exact ties (equal vote counts, equal posteriors)
go to the label listed first in the taxonomy, so results never depend on row order.

The EM is vectorised over annotations: each iteration is a handful of `np.bincount` passes over
the (item, annotator, label) codes, with no Python loop over items or annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from identity_data.defs.labels.schemas import AnnotatorConfusion, AnnotatorQuality, ConsensusLabels
from identity_data.defs.labels.taxonomy import TAXONOMY_VERSION, labels_for
from identity_data.validation import empty_frame, polars_schema

# Floor for probabilities before log/normalise (same as crowd-kit) so a never-seen
# (true, given) pair does not become log(0).
_EPS = 1e-10
_KEYS = ["capture_id", "annotator", "task"]


@dataclass(frozen=True)
class _Encoded:
    """One task's annotations as integer codes; `items`/`annotators` decode them."""

    task: str
    labels: tuple[str, ...]
    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    items: pl.Series
    annotators: pl.Series

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.items), len(self.annotators), len(self.labels)


def _encode_tasks(df: pl.DataFrame | pl.LazyFrame) -> list[_Encoded]:
    frame = df.lazy().select(*_KEYS, "label").collect()
    dup = frame.filter(pl.struct(_KEYS).is_duplicated())
    if dup.height:
        raise ValueError(
            f"{dup.height} annotations repeat a (capture_id, annotator, task); pool them first "
            "with parse.pool_latest"
        )
    encoded = []
    for (task,), part in frame.sort("task").partition_by("task", as_dict=True).items():
        labels = labels_for(str(task))
        bad = part.filter(~pl.col("label").is_in(labels))
        if bad.height:
            raise ValueError(f"{bad.height} labels of task {task!r} are not in the taxonomy")
        codes = part.select(
            (pl.col("capture_id").rank("dense") - 1).alias("item"),
            (pl.col("annotator").rank("dense") - 1).alias("annotator"),
            pl.col("label").replace_strict(labels, range(len(labels)), return_dtype=pl.Int64),
        )
        encoded.append(
            _Encoded(
                task=str(task),
                labels=labels,
                item=codes["item"].to_numpy().astype(np.int64),
                annotator=codes["annotator"].to_numpy().astype(np.int64),
                label=codes["label"].to_numpy(),
                items=part["capture_id"].unique().sort(),
                annotators=part["annotator"].unique().sort(),
            )
        )
    return encoded


def _vote_counts(enc: _Encoded) -> np.ndarray:
    n_items, _, k = enc.shape
    return np.bincount(enc.item * k + enc.label, minlength=n_items * k).reshape(n_items, k)


def _mv_frame(enc: _Encoded, counts: np.ndarray) -> pl.DataFrame:
    # argmax returns the first maximum: the tie-break is taxonomy order.
    n_annotators = counts.sum(axis=1)
    return pl.DataFrame(
        {
            "capture_id": enc.items,
            "task": pl.Series([enc.task] * len(enc.items), dtype=pl.String),
            "mv_label": np.asarray(enc.labels)[counts.argmax(axis=1)],
            "n_annotators": n_annotators.astype(np.int64),
            "agreement": counts.max(axis=1) / n_annotators,
        }
    )


_MV_COLUMNS = ("capture_id", "task", "mv_label", "n_annotators", "agreement")


def majority_vote(df: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per (capture_id, task): mv_label, n_annotators and agreement (share voting mv_label)."""
    frames = [_mv_frame(enc, _vote_counts(enc)) for enc in _encode_tasks(df)]
    return pl.concat(frames) if frames else empty_frame(ConsensusLabels).select(_MV_COLUMNS)


def _m_step(enc: _Encoded, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class prior (k,) and confusion (annotator, true, given) from item posteriors."""
    _, n_ann, k = enc.shape
    pair = enc.annotator * k + enc.label
    post_obs = post[enc.item]
    counts = np.stack(
        [np.bincount(pair, weights=post_obs[:, t], minlength=n_ann * k) for t in range(k)],
        axis=1,
    )  # rows (annotator, given), columns true
    confusion = np.clip(counts.reshape(n_ann, k, k).transpose(0, 2, 1), _EPS, None)
    confusion /= confusion.sum(axis=2, keepdims=True)
    return np.clip(post.mean(axis=0), _EPS, None), confusion


def _e_step(enc: _Encoded, prior: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """Item posteriors (items, k) and the mean log-likelihood per annotation."""
    n_items, n_ann, k = enc.shape
    log_conf = np.log(confusion).transpose(0, 2, 1).reshape(n_ann * k, k)
    log_obs = log_conf[enc.annotator * k + enc.label]
    log_lik = np.stack(
        [np.bincount(enc.item, weights=log_obs[:, t], minlength=n_items) for t in range(k)],
        axis=1,
    ) + np.log(prior)
    top = log_lik.max(axis=1, keepdims=True)
    scaled = np.exp(log_lik - top)
    total = scaled.sum(axis=1, keepdims=True)
    mean_ll = float((top + np.log(total)).sum() / len(enc.item))
    return scaled / total, mean_ll


def _fit(enc: _Encoded, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    counts = _vote_counts(enc)
    post = counts / counts.sum(axis=1, keepdims=True)
    prior, confusion = _m_step(enc, post)
    previous = -np.inf
    for _ in range(max_iter):
        post, mean_ll = _e_step(enc, prior, confusion)
        prior, confusion = _m_step(enc, post)
        if mean_ll - previous < tol:
            break
        previous = mean_ll
    return post, confusion


def _quality_frame(enc: _Encoded, post: np.ndarray, confusion: np.ndarray) -> pl.DataFrame:
    _, n_ann, _ = enc.shape
    n_labels = np.bincount(enc.annotator, minlength=n_ann)
    # Expected share of the annotator's own labels that are correct under the posteriors.
    correct = np.bincount(enc.annotator, weights=post[enc.item, enc.label], minlength=n_ann)
    matrices = [
        json.dumps(
            {
                true: {given: round(float(p), 6) for given, p in zip(enc.labels, row, strict=True)}
                for true, row in zip(enc.labels, matrix, strict=True)
            }
        )
        for matrix in confusion
    ]
    return pl.DataFrame(
        {
            "annotator": enc.annotators,
            "task": pl.Series([enc.task] * n_ann, dtype=pl.String),
            "accuracy": np.clip(correct / n_labels, 0.0, 1.0),
            "n_labels": n_labels.astype(np.int64),
            "confusion": pl.Series(matrices, dtype=pl.String),
        }
    )


def dawid_skene(
    df: pl.DataFrame | pl.LazyFrame, max_iter: int = 100, tol: float = 1e-5
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dawid-Skene consensus per task: (consensus labels, annotator quality).

    EM starts from majority-vote posteriors and stops when the mean log-likelihood per
    annotation improves by less than `tol`, or after `max_iter` iterations. A capture seen by a
    single annotator gets the posterior implied by that annotator's estimated confusion and the
    class prior; its agreement is 1.0. `accuracy` is the posterior-expected share of the
    annotator's labels that are correct; `confusion` is JSON {true_label: {given_label: p}}.
    """
    labels, quality = [], []
    for enc in _encode_tasks(df):
        post, confusion = _fit(enc, max_iter, tol)
        best = post.argmax(axis=1)  # first maximum: taxonomy order breaks exact ties
        mv = _mv_frame(enc, _vote_counts(enc))
        labels.append(
            mv.select(
                "capture_id",
                "task",
                pl.Series("label", np.asarray(enc.labels)[best], dtype=pl.String),
                pl.Series("posterior", post[np.arange(len(best)), best]),
                "mv_label",
                "n_annotators",
                "agreement",
                pl.lit(TAXONOMY_VERSION).alias("taxonomy_version"),
            )
        )
        quality.append(_quality_frame(enc, post, confusion))
    if not labels:
        return empty_frame(ConsensusLabels), empty_frame(AnnotatorQuality)
    return pl.concat(labels), pl.concat(quality)


def confusion_long(quality: pl.DataFrame) -> pl.DataFrame:
    """Explode `confusion` JSON into (annotator, task, true_label, given_label, probability)."""
    rows = [
        (row["annotator"], row["task"], true, given, p)
        for row in quality.select("annotator", "task", "confusion").iter_rows(named=True)
        for true, given_p in json.loads(row["confusion"]).items()
        for given, p in given_p.items()
    ]
    return pl.DataFrame(
        rows,
        schema=polars_schema(AnnotatorConfusion),
        orient="row",
    )


def annotator_drift(
    current_quality: pl.DataFrame, history_quality: pl.DataFrame, threshold: float = 0.10
) -> pl.DataFrame:
    """Flag annotators whose accuracy dropped by more than `threshold` (0.10 = 10 points).

    History may hold several rows per (annotator, task), e.g. earlier runs; they are pooled as
    an n_labels-weighted mean. An annotator without history is never flagged.
    """
    history = history_quality.group_by("annotator", "task").agg(
        ((pl.col("accuracy") * pl.col("n_labels")).sum() / pl.col("n_labels").sum()).alias(
            "history_accuracy"
        )
    )
    drop = pl.col("history_accuracy") - pl.col("accuracy")
    return (
        current_quality.select("annotator", "task", "accuracy")
        .join(history, on=["annotator", "task"], how="left")
        .with_columns(drop.alias("accuracy_drop"))
        .with_columns((pl.col("accuracy_drop") > threshold).fill_null(False).alias("drifted"))
        .sort("annotator", "task")
    )
