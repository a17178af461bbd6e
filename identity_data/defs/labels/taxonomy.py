"""The label taxonomy: which tasks annotators answer and which labels each task allows.

Label order is meaningful: consensus breaks exact ties by it (first listed wins), so changing the
order of a task's labels changes results and needs a new TAXONOMY_VERSION.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

TAXONOMY_VERSION = "v1"

TAXONOMY: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "attack_type": ("genuine", "print", "replay", "mask"),
        "document_type": ("td1_card", "td3_passport", "none"),
        "capture_quality": ("ok", "blurry", "dark", "occluded"),
    }
)


def labels_for(task: str) -> tuple[str, ...]:
    """The allowed labels of `task`, in tie-break order; KeyError names an unknown task."""
    try:
        return TAXONOMY[task]
    except KeyError:
        raise KeyError(f"task {task!r} is not in label taxonomy {TAXONOMY_VERSION}") from None


def taxonomy_frame() -> pl.DataFrame:
    """One row per allowed (task, label), labels in tie-break order."""
    return pl.DataFrame(
        [(task, label) for task, labels in TAXONOMY.items() for label in labels],
        schema={"task": pl.String, "label": pl.String},
        orient="row",
    )
