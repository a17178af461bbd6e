"""Annotations against the captures the raw zone holds.

An annotation whose capture id no raw manifest holds cannot get a consensus label. Ids outside
the id grammar are already quarantined by the parser (`malformed_capture_id`); a well-formed id
that is unknown is counted on its export partition when the export is parsed, and quarantined
by consensus, which pools every export against every manifest materialized by then, so labels
that arrive before their captures are kept until the captures are extracted.
"""

from __future__ import annotations

import polars as pl

UNKNOWN_CAPTURE = "unknown_capture"


def split_by_capture(
    annotations: pl.DataFrame, capture_ids: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(matched, unmatched): unmatched rows are those whose capture id is not in `capture_ids`,
    each with its `reason`."""
    known = pl.col("capture_id").is_in(capture_ids.unique().implode())
    matched = annotations.filter(known)
    unmatched = annotations.filter(~known).with_columns(reason=pl.lit(UNKNOWN_CAPTURE))
    return matched, unmatched


def unknown_by_export(unmatched: pl.DataFrame) -> dict[str, int]:
    """How many unmatched rows each export contributed, in export order."""
    counts = unmatched.group_by("export_id").len().sort("export_id")
    return dict(counts.iter_rows())
