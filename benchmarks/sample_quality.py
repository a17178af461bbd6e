"""Quality of the inferred annotations on a materialized sample, against its ground truth.

Run after `make demo`: `.venv/bin/python -m benchmarks.sample_quality [data]`. Prints face
detection recall and false-positive rate, and near-duplicate precision and recall.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from identity_data.defs.annotations import dedup
from identity_data.sources import SOURCES


def lake_table(home: Path, asset: str) -> pl.DataFrame:
    base = home / "lake" / "tables" / asset
    files = sorted(base.rglob("*.parquet")) if base.is_dir() else [base.with_suffix(".parquet")]
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def faces(home: Path) -> pl.DataFrame:
    annotations = pl.concat(
        [lake_table(home, s.key("annotations", "annotations").to_user_string()) for s in SOURCES],
        how="diagonal_relaxed",
    )
    truth = pl.read_csv(home / "ground_truth/faces.csv")
    manifest = pl.concat(
        [lake_table(home, s.key("raw", "captures").to_user_string()) for s in SOURCES],
        how="diagonal_relaxed",
    ).select("capture_id", "source", "capture_type")
    joined = annotations.join(truth, on="capture_id").join(manifest, on="capture_id")
    return (
        joined.filter(pl.col("decode_status") == "ok")
        .group_by("source", "capture_type", "has_face")
        .agg(images=pl.len(), detected=(pl.col("face_count") > 0).mean())
        .sort("source", "capture_type", "has_face")
    )


def near_duplicates(home: Path) -> tuple[float, float, int]:
    clusters = lake_table(home, "annotations/near_duplicates")
    grouped = (
        clusters.group_by("cluster_id").agg("capture_id").filter(pl.col("capture_id").len() > 1)
    )
    pairs = pl.DataFrame(
        [(ids[0], other) for ids in grouped["capture_id"].to_list() for other in ids[1:]],
        schema={"capture_id_a": pl.String, "capture_id_b": pl.String},
        orient="row",
    )
    truth = pl.read_csv(home / "ground_truth/near_duplicates.csv")
    known = set(clusters["capture_id"])
    truth = truth.filter(pl.col("capture_id").is_in(known) & pl.col("duplicate_of").is_in(known))
    precision, recall = dedup.evaluate(pairs, truth)
    return precision, recall, truth.height


def main() -> None:
    home = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    with pl.Config(tbl_rows=40, tbl_hide_dataframe_shape=True):
        print("Face detection on decodable images (has_face from the generator's truth):")
        print(faces(home))
    precision, recall, n = near_duplicates(home)
    print(
        f"Near-duplicates: precision {precision:.3f}, recall {recall:.3f} over {n} injected copies"
    )


if __name__ == "__main__":
    main()
