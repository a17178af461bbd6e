"""Aggregate-only metadata for annotations: histograms, never a face crop or an id."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl

from identity_data.metadata import number

BINS = 10


def _histogram(values: pl.Series, name: str) -> dg.MetadataValue:
    data = values.drop_nulls().to_numpy()
    if data.size == 0:
        return dg.MetadataValue.md(f"no {name} values")
    counts, edges = np.histogram(data, bins=BINS)
    peak = max(int(counts.max()), 1)
    lines = [f"| {name} | count | |", "|---|---|---|"]
    lines += [
        f"| {lo:.3g} to {hi:.3g} | {n} | {'█' * round(20 * n / peak)} |"
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]
    return dg.MetadataValue.md("\n".join(lines))


def annotation_metadata(rows: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    ok = rows.filter(pl.col("decode_status") == "ok")
    return {
        "sharpness_histogram": _histogram(ok["sharpness"].log1p(), "log1p(sharpness)"),
        "brightness_histogram": _histogram(ok["brightness"], "brightness"),
        "face_size_histogram": _histogram(ok["face_area_share"], "face share of image"),
        "face_detected_rate": dg.MetadataValue.float(number((ok["face_count"] > 0).mean(), 0.0)),
    }
