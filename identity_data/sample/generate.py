"""Write the whole sample under a data root: capture DB and bucket, landing zone, label exports,
ground truth. Same arguments, same bytes in every file."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.sample.capture_db_writer import write_capture_db
from identity_data.sample.labels import ANNOTATORS, ERROR_COLUMNS, accuracy, simulate
from identity_data.sample.plan import LFW_DATASET, Capture, Plan, make_plan
from identity_data.sample.rendering import Progress, render_all

DB_FILE = "capture_db.sqlite"
# Everything the sample owns under the data root; cleared first so stale files never linger.
OWNED = (
    "capture-bucket",
    "lake/landing/campaigns",
    f"lake/landing/open-datasets/{LFW_DATASET}",
    "lake/label-exports",
    "ground_truth",
)


@dataclass(frozen=True)
class SampleSummary:
    """Counts only. `annotations` counts simulated (capture, annotator, task) answers; the
    injected bad rows in ground_truth/injected_label_errors.csv come on top."""

    subjects: int
    sessions: int
    production_captures: int
    campaign_captures: int
    open_dataset_captures: int
    blobs_rendered: int
    blobs_redrawn: int
    broken_blobs: int
    near_duplicates: int
    label_exports: int
    annotations: int
    injected_label_errors: int


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _utc(capture: Capture) -> str:
    return capture.captured_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _manifests(root: Path, plan: Plan) -> None:
    columns = ("capture_id", "subject_ref", "capture_type", "device", "captured_at", "file")
    for campaign_id, rows in plan.campaigns.items():
        _write_csv(
            root / f"lake/landing/campaigns/{campaign_id}/manifest.csv",
            columns,
            (
                (c.capture_id, c.subject_ref, c.capture_type, c.device, _utc(c), Path(c.file).name)
                for c in rows
            ),
        )
    _write_csv(
        root / f"lake/landing/open-datasets/{LFW_DATASET}/manifest.csv",
        (*columns, "source_label"),
        (
            (
                c.capture_id,
                c.subject_ref,
                c.capture_type,
                c.device,
                _utc(c),
                Path(c.file).name,
                c.source_label,
            )
            for c in plan.open_dataset
        ),
    )


def _ground_truth(root: Path, plan: Plan, errors: Sequence[Sequence[object]]) -> None:
    gt = root / "ground_truth"
    truthful = [c for c in plan.all_captures() if c.truth is not None]
    _write_csv(
        gt / "labels.csv",
        ("capture_id", "task", "label"),
        ((c.capture_id, task, getattr(c.truth, task)) for c in truthful for task in TAXONOMY),
    )
    _write_csv(
        gt / "faces.csv",
        ("capture_id", "has_face"),
        ((c.capture_id, "true" if c.truth and c.truth.has_face else "false") for c in truthful),
    )
    _write_csv(
        gt / "annotators.csv",
        ("annotator", "task", "accuracy"),
        ((a, task, accuracy(a, task)) for a in ANNOTATORS for task in TAXONOMY),
    )
    _write_csv(
        gt / "near_duplicates.csv",
        ("capture_id", "duplicate_of", "transform"),
        plan.near_duplicates,
    )
    _write_csv(gt / "broken_blobs.csv", ("capture_id", "kind"), plan.broken)
    _write_csv(gt / "injected_label_errors.csv", ERROR_COLUMNS, errors)


def generate(
    out: Path,
    seed: int,
    days: int,
    captures_per_day: int,
    end_date: date,
    campaigns: int = 2,
    images: bool = True,
    images_sample: int | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> SampleSummary:
    """Generate the sample under `out` and return counts only.

    `images=False` writes metadata (DB, manifests, ground truth) without blobs or label exports,
    which need the blobs' content keys. `images_sample=N` draws only the first N production blobs;
    later production rows reuse them (see plan.reuse_blobs).
    """
    say = progress or (lambda _msg: None)
    out = Path(out)
    plan = make_plan(seed, days, captures_per_day, end_date, campaigns, images_sample)
    say(
        f"planned {len(plan.production)} production, "
        f"{sum(len(v) for v in plan.campaigns.values())} campaign, "
        f"{len(plan.open_dataset)} open-dataset captures"
    )
    for owned in OWNED:
        shutil.rmtree(out / owned, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    db = out / DB_FILE
    db.unlink(missing_ok=True)
    # A fresh file and a fixed insertion order keep the SQLite bytes reproducible.
    write_capture_db(f"sqlite:///{db.resolve()}", plan.subjects, plan.sessions, plan.production)
    say(f"wrote {db}")
    _manifests(out, plan)
    keys: dict[str, str] = {}
    redraws = 0
    label_set = None
    if images:
        root = str(out.resolve())
        jobs = [(c.file, c.job, root) for c in plan.all_captures() if c.job is not None]
        drawn, redraws = render_all(jobs, workers, say)
        say(f"redrew {redraws} blobs that came too close to another by chance")
        keys = {file: d.key for file, d in drawn.items()}
        labelable = [
            (c, keys[c.file])
            for c in plan.all_captures()
            if c.job is not None and c.truth is not None
        ]
        label_set = simulate(random.Random(f"labels:{seed}"), labelable, seed)
        exports = out / "lake/label-exports"
        exports.mkdir(parents=True, exist_ok=True)
        for name, tasks in sorted(label_set.json_exports.items()):
            (exports / name).write_text(json.dumps(tasks, indent=1) + "\n", encoding="utf-8")
        for name, rows in sorted(label_set.csv_exports.items()):
            _write_csv(
                exports / name, ("capture_id", "annotator", "task", "label", "labeled_at"), rows
            )
    _ground_truth(out, plan, label_set.errors if label_set else [])
    say("wrote ground truth")
    return SampleSummary(
        subjects=len(plan.subjects),
        sessions=len(plan.sessions),
        production_captures=len(plan.production),
        campaign_captures=sum(len(v) for v in plan.campaigns.values()),
        open_dataset_captures=len(plan.open_dataset),
        blobs_rendered=len(keys),
        blobs_redrawn=redraws,
        broken_blobs=len(plan.broken),
        near_duplicates=len(plan.near_duplicates),
        label_exports=len(label_set.json_exports) + len(label_set.csv_exports) if label_set else 0,
        annotations=label_set.annotations if label_set else 0,
        injected_label_errors=len(label_set.errors) if label_set else 0,
    )


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)
