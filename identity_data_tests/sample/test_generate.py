"""End-to-end checks on one small generated sample (built once per module)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections import Counter
from datetime import date
from pathlib import Path

import imagehash
import polars as pl
import pytest
import sqlalchemy as sa
from PIL import Image

from identity_data import capture_db
from identity_data.defs.labels.taxonomy import TAXONOMY
from identity_data.sample import SampleSummary, generate
from identity_data.sample.labels import ANNOTATORS

END = date(2026, 11, 29)
ARGS = {"seed": 11, "days": 2, "captures_per_day": 30, "end_date": END, "campaigns": 1}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    root = tmp_path_factory.mktemp("sample") / "data"
    return root, generate(root, **ARGS)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _blob_files(root: Path) -> dict[str, Path]:
    """capture_id -> image file, from the DB and every manifest, as the pipeline would find it."""
    engine = sa.create_engine(f"sqlite:///{root / 'capture_db.sqlite'}")
    with engine.connect() as con:
        rows = con.execute(
            sa.select(capture_db.captures.c.capture_id, capture_db.captures.c.blob_path)
        ).all()
    engine.dispose()
    files = {cid: root / "capture-bucket" / path for cid, path in rows}
    for manifest in (root / "lake/landing").rglob("manifest.csv"):
        frame = pl.read_csv(manifest)
        files |= {cid: manifest.parent / f for cid, f in frame.select("capture_id", "file").rows()}
    return files


def _phash(path: Path) -> imagehash.ImageHash:
    with Image.open(path) as img:
        return imagehash.phash(img)


def test_same_arguments_give_identical_bytes(sample, tmp_path: Path) -> None:
    root, _ = sample
    again = tmp_path / "data"
    generate(again, **ARGS)
    first, second = _digests(root), _digests(again)
    assert "capture_db.sqlite" in first
    assert first == second


def test_other_seed_changes_content(sample, tmp_path: Path) -> None:
    root, _ = sample
    other = tmp_path / "data"
    generate(other, **{**ARGS, "seed": 12, "campaigns": 0}, images=False)
    assert _digests(other)["capture_db.sqlite"] != _digests(root)["capture_db.sqlite"]


def test_capture_db_rows_and_days(sample) -> None:
    root, summary = sample
    engine = sa.create_engine(f"sqlite:///{root / 'capture_db.sqlite'}")
    with engine.connect() as con:
        counts = {
            t.name: con.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (capture_db.subjects, capture_db.sessions, capture_db.captures)
        }
        captures = pl.DataFrame(con.execute(sa.select(capture_db.captures)).mappings().all())
        c, se, su = capture_db.captures.c, capture_db.sessions.c, capture_db.subjects.c
        refs = con.execute(
            sa.select(c.subject_ref, su.customer_ref)
            .join_from(capture_db.captures, capture_db.sessions, c.session_id == se.session_id)
            .join(capture_db.subjects, se.subject_id == su.subject_id)
        ).all()
    engine.dispose()
    assert counts == {
        "subjects": summary.subjects,
        "sessions": summary.sessions,
        "captures": summary.production_captures,
    }
    near_dups = pl.read_csv(root / "ground_truth/near_duplicates.csv")
    assert summary.production_captures == 2 * 30 + near_dups.height
    assert set(captures["capture_type"]) == {"selfie", "id_front", "id_back"}
    days = captures["captured_at"].dt.date()
    assert days.min() == date(2026, 11, 28) and days.max() == END
    assert all(subject_ref == customer_ref for subject_ref, customer_ref in refs)
    missing = [p for p in captures["blob_path"] if not (root / "capture-bucket" / p).is_file()]
    assert missing == []


def test_manifests_parse_with_polars(sample) -> None:
    root, summary = sample
    columns = ["capture_id", "subject_ref", "capture_type", "device", "captured_at", "file"]
    campaigns = sorted((root / "lake/landing/campaigns").glob("*/manifest.csv"))
    assert [p.parent.name for p in campaigns] == ["campaign-2026-11-replay-attacks"]
    lfw = root / "lake/landing/open-datasets/lfw_subset/manifest.csv"
    for manifest, extra in [(p, []) for p in campaigns] + [(lfw, ["source_label"])]:
        frame = pl.read_csv(manifest).with_columns(
            pl.col("captured_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
        )
        assert frame.columns == columns + extra
        assert frame["capture_id"].is_unique().all()
        assert all((manifest.parent / f).is_file() for f in frame["file"])
    open_data = pl.read_csv(lfw)
    assert open_data.height == summary.open_dataset_captures == 200
    assert open_data["source_label"].value_counts().sort("source_label").rows() == [
        ("face", 100),
        ("non_face", 100),
    ]
    with Image.open(lfw.parent / open_data["file"][0]) as img:
        assert img.size == (100, 100)


def test_broken_blobs_are_undecodable(sample) -> None:
    root, _ = sample
    broken = pl.read_csv(root / "ground_truth/broken_blobs.csv")
    assert sorted(broken["kind"]) == ["text_file", "truncated_jpeg", "zero_bytes"]
    files = _blob_files(root)
    for capture_id, kind in broken.rows():
        data = files[capture_id].read_bytes()
        assert files[capture_id].suffix == ".jpg"
        assert (len(data) == 0) == (kind == "zero_bytes")
        with pytest.raises((OSError, Image.UnidentifiedImageError)):
            Image.open(io.BytesIO(data)).load()
    truth = pl.read_csv(root / "ground_truth/labels.csv")
    assert truth.filter(pl.col("capture_id").is_in(broken["capture_id"].to_list())).is_empty()


def test_near_duplicates_close_and_spread(sample) -> None:
    root, _ = sample
    dups = pl.read_csv(root / "ground_truth/near_duplicates.csv")
    files = _blob_files(root)
    distances = [_phash(files[c]) - _phash(files[o]) for c, o, _ in dups.rows()]
    assert max(distances) <= 8, distances
    assert set(dups["transform"]) == {"recompress", "resize", "recrop"}
    db_ids = set(pl.read_csv(root / "ground_truth/faces.csv")["capture_id"])
    assert set(dups["capture_id"]) <= db_ids
    origin = {o.split("-")[0] for o in dups["duplicate_of"]}
    assert origin == {"cap"}
    sources = {files[o].parts[len(root.parts)] for o in dups["duplicate_of"]}
    assert sources >= {"capture-bucket", "lake"}


def distinct_captures(root: Path) -> dict[str, list[str]]:
    """Capture ids per kind (selfie / id card) that are neither injected copies nor LFW images."""
    files = _blob_files(root)
    truth = pl.read_csv(root / "ground_truth/labels.csv")
    dups = set(pl.read_csv(root / "ground_truth/near_duplicates.csv")["capture_id"])
    lfw = set(
        pl.read_csv(root / "lake/landing/open-datasets/lfw_subset/manifest.csv")["capture_id"]
    )
    kinds = truth.filter(pl.col("task") == "document_type").with_columns(
        kind=pl.when(pl.col("label") == "none").then(pl.lit("selfie")).otherwise(pl.lit("card"))
    )
    out: dict[str, list[str]] = {"selfie": [], "card": []}
    for capture_id, kind in kinds.select("capture_id", "kind").rows():
        if capture_id not in dups and capture_id not in lfw and files[capture_id].is_file():
            out[kind].append(capture_id)
    return out


def pairwise(hashes: list[imagehash.ImageHash]) -> list[int]:
    return [a - b for a, b in itertools.combinations(hashes, 2)]


def test_distinct_captures_are_perceptually_distinct(sample) -> None:
    root, _ = sample
    files = _blob_files(root)
    groups = distinct_captures(root)
    assert len(groups["selfie"]) > 50 and len(groups["card"]) > 20
    everything = [_phash(files[c]) for ids in groups.values() for c in ids]
    assert min(pairwise(everything)) > 10


def test_ground_truth_is_consistent(sample) -> None:
    root, summary = sample
    truth = pl.read_csv(root / "ground_truth/labels.csv")
    faces = pl.read_csv(root / "ground_truth/faces.csv")
    n_truth = summary.production_captures + summary.campaign_captures + 200 - summary.broken_blobs
    assert truth.height == 3 * n_truth and faces.height == n_truth
    for task, labels in TAXONOMY.items():
        assert set(truth.filter(pl.col("task") == task)["label"]) <= set(labels)
    assert "td3_passport" not in set(truth["label"])
    lfw = pl.read_csv(root / "lake/landing/open-datasets/lfw_subset/manifest.csv")
    joined = lfw.join(faces, on="capture_id")
    assert (joined["has_face"] == (joined["source_label"] == "face")).all()
    attacks = truth.filter(pl.col("task") == "attack_type", pl.col("label") != "genuine")
    assert faces.join(attacks, on="capture_id")["has_face"].all()
    annotators = pl.read_csv(root / "ground_truth/annotators.csv")
    assert annotators.height == len(ANNOTATORS) * len(TAXONOMY)


def _annotations(root: Path) -> pl.DataFrame:
    rows = []
    for path in sorted((root / "lake/label-exports").glob("*.json")):
        for task in json.loads(path.read_text()):
            for ann in task["annotations"]:
                for result in ann["result"]:
                    rows.append(
                        {
                            "export": path.name,
                            "task_id": task["id"],
                            "capture_id": task["data"].get("capture_id"),
                            "annotation_id": ann["id"],
                            "annotator": ann["completed_by"],
                            "created_at": ann["created_at"],
                            "task": result["from_name"],
                            "choices": result["value"]["choices"],
                        }
                    )
    return pl.DataFrame(rows)


def test_label_exports_carry_the_injected_errors(sample) -> None:
    root, summary = sample
    exports = sorted(p.name for p in (root / "lake/label-exports").iterdir())
    assert exports == [
        "labels-2026-11-28.json",
        "labels-2026-11-29.json",
        "labels-campaign-2026-11-replay-attacks.json",
        "labels-lfw_subset.csv",
    ]
    anns = _annotations(root)
    flat = pl.read_csv(root / "lake/label-exports/labels-lfw_subset.csv")
    assert flat.columns == ["capture_id", "annotator", "task", "label", "labeled_at"]
    assert 30 < flat["capture_id"].n_unique() < 100  # ~30% of the 200 LFW images
    # Injected on top of the simulated answers: three whole annotations (unknown capture, missing
    # capture id, duplicate id) of every task, plus two single-task re-labels.
    assert anns.height + flat.height == summary.annotations + 3 * len(TAXONOMY) + 2
    assert anns["created_at"].str.ends_with("Z").all()
    assert anns["annotator"].dtype == pl.Int64
    errors = pl.read_csv(root / "ground_truth/injected_label_errors.csv")
    assert Counter(errors["kind"]) == {
        "unknown_capture_id": 1,
        "unknown_label": 1,
        "empty_choices": 1,
        "missing_capture_id": 1,
        "duplicate_annotation_id": 1,
        "superseded": 2,
    }
    known = set(pl.read_csv(root / "ground_truth/faces.csv")["capture_id"])
    assert anns.filter(pl.col("capture_id").is_null()).height == len(TAXONOMY)
    unknown = anns.filter(
        pl.col("capture_id").is_not_null(), ~pl.col("capture_id").is_in(list(known))
    )
    assert (
        unknown["capture_id"].unique().to_list()
        == errors.filter(pl.col("kind") == "unknown_capture_id")["capture_id"].to_list()
    )
    assert anns.filter(pl.col("choices").list.len() == 0).height == 1
    assert anns.filter(pl.col("choices").list.first() == "deepfake").height == 1
    assert (
        anns.group_by("annotation_id", "export", "task_id")
        .len()["annotation_id"]
        .is_duplicated()
        .sum()
        == 2
    )
    latest = (
        anns.group_by("capture_id", "annotator", "task")
        .agg(pl.len(), pl.col("created_at").max())
        .filter(pl.col("len") > 1)
    )
    assert latest.height == 2


def test_annotator_noise_matches_ground_truth(sample) -> None:
    root, _ = sample
    truth = pl.read_csv(root / "ground_truth/labels.csv")
    anns = (
        _annotations(root)
        .filter(pl.col("choices").list.len() == 1)
        .with_columns(label=pl.col("choices").list.first())
    )
    scored = (
        anns.join(truth, on=["capture_id", "task"], suffix="_true")
        .group_by("annotator")
        .agg((pl.col("label") == pl.col("label_true")).mean().alias("acc"))
    )
    acc = dict(scored.rows())
    assert acc[1] > 0.85 and acc[5] < 0.75 and acc[1] > acc[5]
    known = set(truth["capture_id"])
    per_capture = (
        anns.filter(pl.col("task") == "attack_type", pl.col("capture_id").is_in(list(known)))
        .group_by("capture_id")
        .agg(pl.col("annotator").n_unique())
    )
    assert per_capture["annotator"].min() >= 3
    lfw = set(
        pl.read_csv(root / "lake/landing/open-datasets/lfw_subset/manifest.csv")["capture_id"]
    )
    prod_camp = known - lfw
    coverage = len(set(per_capture["capture_id"]) & prod_camp) / len(prod_camp)
    assert 0.8 < coverage < 0.97
