import polars as pl
import pytest

from identity_data.defs.labels.taxonomy import TAXONOMY_VERSION, labels_for, taxonomy_frame


def test_taxonomy_v1_tasks_and_labels() -> None:
    assert TAXONOMY_VERSION == "v1"
    assert labels_for("attack_type") == ("genuine", "print", "replay", "mask")
    assert labels_for("document_type") == ("td1_card", "td3_passport", "none")
    assert labels_for("capture_quality") == ("ok", "blurry", "dark", "occluded")


def test_unknown_task_is_named() -> None:
    with pytest.raises(KeyError, match="'liveness'"):
        labels_for("liveness")


def test_taxonomy_frame_lists_every_allowed_pair_in_order() -> None:
    frame = taxonomy_frame()
    assert frame.height == 11
    assert frame.filter(pl.col("task") == "document_type")["label"].to_list() == [
        "td1_card",
        "td3_passport",
        "none",
    ]
