"""Simulated annotation: five annotators of known accuracy label captures in Label Studio.

Each annotator answers every task of the captures they get, right with a fixed per-task
probability and otherwise with a fixed per-annotator confusion (one wrong label per true label),
so consensus methods have something real to recover. A handful of malformed rows are injected
and recorded in ground_truth/injected_label_errors.csv.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.sample.plan import Capture, stable_id

# Annotator id -> base accuracy; annotator 5 is the careless one.
ANNOTATORS: dict[int, float] = {1: 0.95, 2: 0.9, 3: 0.85, 4: 0.75, 5: 0.6}
# Quality is the hardest call, document type the easiest.
TASK_SHIFT = {"attack_type": 0.0, "document_type": 0.03, "capture_quality": -0.05}
COVERAGE = {"production": 0.9, "campaign": 0.9, "open_dataset": 0.3}
ERROR_COLUMNS = ("kind", "export", "task_id", "annotation_id", "capture_id", "task", "detail")


def accuracy(annotator: int, task: str) -> float:
    return round(min(0.99, ANNOTATORS[annotator] + TASK_SHIFT[task]), 4)


def confused(annotator: int, task: str, truth: str) -> str:
    """The one wrong label `annotator` gives for `truth` on `task`."""
    labels = TAXONOMY[task]
    offset = 1 + (annotator + list(TAXONOMY).index(task)) % (len(labels) - 1)
    return labels[(labels.index(truth) + offset) % len(labels)]


def truth_label(capture: Capture, task: str) -> str:
    truth = capture.truth
    if truth is None:
        raise ValueError(f"capture {capture.capture_id} has no ground truth to label")
    return getattr(truth, task)


def iso_z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export_name(capture: Capture) -> str:
    if capture.source == "production":
        return f"labels-{capture.group}.json"
    if capture.source == "campaign":
        return f"labels-{capture.group}.json"
    return f"labels-{capture.group}.csv"


@dataclass
class LabelSet:
    json_exports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    csv_exports: dict[str, list[tuple[str, int, str, str, str]]] = field(default_factory=dict)
    errors: list[tuple[str, str, int | str, int | str, str, str, str]] = field(default_factory=list)
    annotations: int = 0


def _result(task: str, label: str) -> dict[str, Any]:
    return {"from_name": task, "to_name": "image", "type": "choices", "value": {"choices": [label]}}


def _answer(rng: random.Random, annotator: int, task: str, truth: str) -> str:
    if rng.random() < accuracy(annotator, task):
        return truth
    return confused(annotator, task, truth)


def simulate(rng: random.Random, captures: list[tuple[Capture, str]], seed: int) -> LabelSet:
    """Label ~COVERAGE of `captures` ((capture, raw-zone image key) pairs with own blobs)."""
    out = LabelSet()
    task_id, annotation_id = 0, 1000
    for capture, image_key in captures:
        if rng.random() >= COVERAGE[capture.source]:
            continue
        annotators = sorted(rng.sample(list(ANNOTATORS), 3 if rng.random() < 0.7 else 4))
        name = export_name(capture)
        if name.endswith(".csv"):
            rows = out.csv_exports.setdefault(name, [])
            for annotator in annotators:
                at = capture.captured_at + timedelta(seconds=rng.randrange(1800, 12 * 3600))
                for task in TAXONOMY:
                    label = _answer(rng, annotator, task, truth_label(capture, task))
                    rows.append(
                        (
                            capture.capture_id,
                            annotator,
                            task,
                            label,
                            at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        )
                    )
                    out.annotations += 1
            continue
        task_id += 1
        annotations = []
        for annotator in annotators:
            annotation_id += 1
            at = capture.captured_at + timedelta(seconds=rng.randrange(1800, 12 * 3600))
            annotations.append(
                {
                    "id": annotation_id,
                    "completed_by": annotator,
                    "created_at": iso_z(at),
                    "result": [
                        _result(t, _answer(rng, annotator, t, truth_label(capture, t)))
                        for t in TAXONOMY
                    ],
                }
            )
            out.annotations += len(TAXONOMY)
        out.json_exports.setdefault(name, []).append(
            {
                "id": task_id,
                "data": {"capture_id": capture.capture_id, "image": image_key},
                "annotations": annotations,
            }
        )
    if out.json_exports:
        by_id = {capture.capture_id: capture for capture, _ in captures}
        _inject_errors(rng, out, by_id, task_id, annotation_id, seed)
    return out


def _inject_errors(
    rng: random.Random,
    out: LabelSet,
    captures: dict[str, Capture],
    task_id: int,
    annotation_id: int,
    seed: int,
) -> None:
    names = sorted(out.json_exports)
    first, last = names[0], names[-1]
    tasks = out.json_exports[first]
    used: set[int] = set()

    def pick() -> tuple[dict[str, Any], dict[str, Any]]:
        candidates = [
            (t, a)
            for t in tasks
            if t["data"].get("capture_id") in captures
            for a in t["annotations"]
            if a["id"] not in used
        ]
        task, ann = rng.choice(candidates)
        used.add(ann["id"])
        return task, ann

    def record(
        kind: str, export: str, task: dict[str, Any], ann_id: int, name: str = "", detail: str = ""
    ) -> None:
        out.errors.append(
            (kind, export, task["id"], ann_id, task["data"].get("capture_id", ""), name, detail)
        )

    template_task, template = pick()
    orphan_results = [dict(r) for r in template["result"]]

    task_id += 1
    annotation_id += 1
    orphan = {
        "id": task_id,
        "data": {
            "capture_id": stable_id("cap", seed, "unknown"),
            "image": template_task["data"]["image"],
        },
        "annotations": [{**template, "id": annotation_id, "result": orphan_results}],
    }
    tasks.append(orphan)
    record("unknown_capture_id", first, orphan, annotation_id, detail="no such capture")

    task, ann = pick()
    ann["result"][0] = _result("attack_type", "deepfake")
    record("unknown_label", first, task, ann["id"], "attack_type", "deepfake")

    task, ann = pick()
    ann["result"][2] = {**ann["result"][2], "value": {"choices": []}}
    record("empty_choices", first, task, ann["id"], "capture_quality")

    task_id += 1
    annotation_id += 1
    headless = {
        "id": task_id,
        "data": {"image": template_task["data"]["image"]},
        "annotations": [
            {**template, "id": annotation_id, "result": [dict(r) for r in template["result"]]}
        ],
    }
    tasks.append(headless)
    record("missing_capture_id", first, headless, annotation_id)

    # Reuses the id of an annotation in the first export, on a task in the last one.
    _, original = pick()
    target = next(
        t
        for t in out.json_exports[last]
        if len(t["annotations"]) < len(ANNOTATORS) and t["data"].get("capture_id") in captures
    )
    stranger = min(set(ANNOTATORS) - {a["completed_by"] for a in target["annotations"]})
    target["annotations"].append(
        {**original, "completed_by": stranger, "result": [dict(r) for r in original["result"]]}
    )
    record("duplicate_annotation_id", last, target, original["id"], detail=f"also used in {first}")

    # The same (capture, annotator, task) re-labelled in a later export: the later one wins.
    latest = max(
        a["created_at"] for ts in out.json_exports.values() for t in ts for a in t["annotations"]
    )
    for k in range(2):
        task, ann = pick()
        capture_truth = truth_label(captures[task["data"]["capture_id"]], "capture_quality")
        # The first answer is wrong and the later correction right, so "latest wins" matters.
        ann["result"][2] = _result(
            "capture_quality", confused(ann["completed_by"], "capture_quality", capture_truth)
        )
        annotation_id += 1
        later = datetime.strptime(latest, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(hours=1 + k)
        out.json_exports[last].append(
            {
                "id": task["id"],
                "data": dict(task["data"]),
                "annotations": [
                    {
                        "id": annotation_id,
                        "completed_by": ann["completed_by"],
                        "created_at": iso_z(later),
                        "result": [_result("capture_quality", capture_truth)],
                    }
                ],
            }
        )
        record(
            "superseded",
            first,
            task,
            ann["id"],
            "capture_quality",
            f"superseded by annotation {annotation_id} in {last}",
        )
