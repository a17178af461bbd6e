from __future__ import annotations

import random
from datetime import date

from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.sample.labels import ANNOTATORS, accuracy, confused, simulate, truth_label
from identity_data.sample.plan import make_plan


def test_confusion_is_always_a_wrong_allowed_label() -> None:
    for annotator in ANNOTATORS:
        for task, labels in TAXONOMY.items():
            assert 0.5 < accuracy(annotator, task) < 1
            for truth in labels:
                wrong = confused(annotator, task, truth)
                assert wrong != truth and wrong in labels


def test_simulation_is_seeded_and_tracks_truth() -> None:
    plan = make_plan(4, 1, 40, date(2026, 11, 29), campaigns=1)
    captures = [
        (c, f"raw/captures/{i:02d}/x.jpg")
        for i, c in enumerate(plan.all_captures())
        if c.truth is not None
    ]
    first = simulate(random.Random(1), captures, 4)
    assert first == simulate(random.Random(1), captures, 4)
    by_id = {c.capture_id: c for c, _ in captures}
    careful = [
        (
            result["value"]["choices"][0],
            truth_label(by_id[task["data"]["capture_id"]], result["from_name"]),
        )
        for tasks in first.json_exports.values()
        for task in tasks
        if task["data"].get("capture_id") in by_id
        for ann in task["annotations"]
        if ann["completed_by"] == 1
        for result in ann["result"]
        if result["value"]["choices"]
        and result["value"]["choices"][0] in TAXONOMY[result["from_name"]]
    ]
    hits = sum(given == truth for given, truth in careful) / len(careful)
    assert hits > 0.85
