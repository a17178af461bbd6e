"""Write the whole sample under a data root: capture DB and bucket, landing zone, label exports,
ground truth. Same arguments, same bytes in every file."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from identity_data.sample import documents, render
from identity_data.sample.canvas import encode_png
from identity_data.sample.capture_db_writer import write_capture_db
from identity_data.sample.faces import lfw_image
from identity_data.sample.labels import ANNOTATORS, ERROR_COLUMNS, accuracy, simulate
from identity_data.sample.plan import LFW_DATASET, Capture, Job, Plan, make_plan
from identity_data.sample.transforms import broken_blob, near_duplicate
from identity_data.stores.blobs import content_key
from identity_data.defs.labels.taxonomy import TAXONOMY

DB_FILE = "capture_db.sqlite"
# Everything the sample owns under the data root; cleared first so stale files never linger.
OWNED = ("capture-bucket", "lake/landing/campaigns", f"lake/landing/open-datasets/{LFW_DATASET}",
         "lake/label-exports", "ground_truth")
LFW_SIZE = 100
INLINE_JOBS = 48
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SampleSummary:
    subjects: int
    sessions: int
    production_captures: int
    campaign_captures: int
    open_dataset_captures: int
    blobs_rendered: int
    broken_blobs: int
    near_duplicates: int
    label_exports: int
    annotations: int
    injected_label_errors: int


def render_job(job: Job, root: str) -> bytes:
    """The bytes of one blob; near-duplicates read their original from `root`."""
    rng = np.random.default_rng(job.seed)
    if job.kind == "face":
        return render.render_face_capture(rng, job.face_id, job.attack_type, job.quality)
    if job.kind == "broken":
        valid = render.render_face_capture(rng, job.face_id, job.attack_type, job.quality)
        return broken_blob(job.broken_kind, valid)
    if job.kind in ("id_front", "id_back"):
        if job.holder is None:
            raise ValueError(f"{job.kind} job without a card holder")
        if job.kind == "id_front":
            return documents.id_front(rng, job.holder, job.face_id, job.quality)
        return documents.id_back(rng, job.holder, job.quality)
    if job.kind == "lfw":
        return encode_png(lfw_image(job.lfw_index, LFW_SIZE))
    if job.kind == "near_dup":
        return near_duplicate(rng, (Path(root) / job.source_file).read_bytes(), job.transform)
    raise ValueError(f"unknown render job kind {job.kind!r}")


def _write(task: tuple[str, Job, str]) -> tuple[str, str]:
    file, job, root = task
    data = render_job(job, root)
    target = Path(root) / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return file, content_key(data, target.suffix)[0]


def _render_all(
    tasks: Sequence[tuple[str, Job, str]], workers: int, progress: Progress
) -> dict[str, str]:
    keys: dict[str, str] = {}
    step = max(1, len(tasks) // 10)
    if workers <= 1 or len(tasks) <= INLINE_JOBS:
        results: Iterable[tuple[str, str]] = map(_write, tasks)
        pool = None
    else:
        # spawn: forking a parent that runs polars/duckdb threads can deadlock the child.
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        results = pool.map(_write, tasks, chunksize=8)
    try:
        for i, (file, key) in enumerate(results, 1):
            keys[file] = key
            if i % step == 0 or i == len(tasks):
                progress(f"rendered {i}/{len(tasks)} blobs")
    finally:
        if pool is not None:
            pool.shutdown()
    return keys


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
        _write_csv(root / f"lake/landing/campaigns/{campaign_id}/manifest.csv", columns, (
            (c.capture_id, c.subject_ref, c.capture_type, c.device, _utc(c), Path(c.file).name)
            for c in rows))
    _write_csv(root / f"lake/landing/open-datasets/{LFW_DATASET}/manifest.csv",
               (*columns, "source_label"), (
                   (c.capture_id, c.subject_ref, c.capture_type, c.device, _utc(c),
                    Path(c.file).name, c.source_label) for c in plan.open_dataset))


def _ground_truth(root: Path, plan: Plan, errors: Sequence[Sequence[object]]) -> None:
    gt = root / "ground_truth"
    truthful = [c for c in plan.all_captures() if c.truth is not None]
    _write_csv(gt / "labels.csv", ("capture_id", "task", "label"), (
        (c.capture_id, task, getattr(c.truth, task)) for c in truthful for task in TAXONOMY))
    _write_csv(gt / "faces.csv", ("capture_id", "has_face"), (
        (c.capture_id, "true" if c.truth and c.truth.has_face else "false") for c in truthful))
    _write_csv(gt / "annotators.csv", ("annotator", "task", "accuracy"), (
        (a, task, accuracy(a, task)) for a in ANNOTATORS for task in TAXONOMY))
    _write_csv(gt / "near_duplicates.csv", ("capture_id", "duplicate_of", "transform"),
               plan.near_duplicates)
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
    say(f"planned {len(plan.production)} production, "
        f"{sum(len(v) for v in plan.campaigns.values())} campaign, "
        f"{len(plan.open_dataset)} open-dataset captures")
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
    label_set = None
    if images:
        root = str(out.resolve())
        jobs = [(c.file, c.job, root) for c in plan.all_captures() if c.job is not None]
        keys = _render_all([t for t in jobs if t[1].kind != "near_dup"], workers, say)
        keys |= _render_all([t for t in jobs if t[1].kind == "near_dup"], workers, say)
        labelable = [(c, keys[c.file]) for c in plan.all_captures()
                     if c.job is not None and c.truth is not None]
        label_set = simulate(random.Random(f"labels:{seed}"), labelable, seed)
        exports = out / "lake/label-exports"
        exports.mkdir(parents=True, exist_ok=True)
        for name, tasks in sorted(label_set.json_exports.items()):
            (exports / name).write_text(json.dumps(tasks, indent=1) + "\n", encoding="utf-8")
        for name, rows in sorted(label_set.csv_exports.items()):
            _write_csv(exports / name, ("capture_id", "annotator", "task", "label", "labeled_at"),
                       rows)
    _ground_truth(out, plan, label_set.errors if label_set else [])
    say("wrote ground truth")
    return SampleSummary(
        subjects=len(plan.subjects),
        sessions=len(plan.sessions),
        production_captures=len(plan.production),
        campaign_captures=sum(len(v) for v in plan.campaigns.values()),
        open_dataset_captures=len(plan.open_dataset),
        blobs_rendered=len(keys),
        broken_blobs=len(plan.broken),
        near_duplicates=len(plan.near_duplicates),
        label_exports=len(label_set.json_exports) + len(label_set.csv_exports) if label_set else 0,
        annotations=label_set.annotations if label_set else 0,
        injected_label_errors=len(label_set.errors) if label_set else 0,
    )


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)
