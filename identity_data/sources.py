"""The capture sources: the one registry every stage, the demo, benchmarks and tests read.

A new source is one `CaptureSource` entry here plus, if no existing extractor reads it, its
extractor in `defs/raw/assets.py: EXTRACTORS`. Every stage builds its assets per entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import dagster as dg

# Production captures arrive continuously and are extracted in daily batches.
daily = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
# A campaign is a drop folder that appears once; the sensor adds its partition.
campaigns = dg.DynamicPartitionsDefinition(name="campaigns")
# Open datasets are imported in bulk and rarely change.
open_datasets = dg.StaticPartitionsDefinition(["lfw_subset"])

# The most characters of an asset key's last part that the Dagster UI's zoomed-out lineage graph
# shows uncut (measured in headless Chromium on 1.13: 17 fit, 19 were cut in the middle), so
# every key reads whole at any zoom.
KEY_NAME_BUDGET = 17

# Each source's partitioned assets as (stage, table), in materialization order.
CHAIN = (
    ("raw", "captures"),
    ("raw", "quarantine"),
    ("annotations", "annotations"),
    ("warehouse", "captures"),
    ("warehouse", "annotations"),
    ("warehouse", "examples"),
)

# How a source's records are read: the capture service's database, or a drop folder in the lake.
Extractor = Literal["capture_db", "drop_folder"]


@dataclass(frozen=True)
class CaptureSource:
    """A capture source: how it is partitioned and how one partition's records are read."""

    name: str
    # Names the source in its asset keys: `<short>_<table>` stays within KEY_NAME_BUDGET.
    short: str
    partitions_def: dg.PartitionsDefinition
    extractor: Extractor
    description: str
    # Least share of selfies with a detected face; attack-heavy sources legitimately score lower.
    selfie_face_floor: float
    # The lake folder under landing/ holding one drop folder per partition (drop_folder only).
    landing: str = ""
    freshness_policy: dg.FreshnessPolicy | None = None

    def key(self, layer: str, table: str) -> dg.AssetKey:
        return dg.AssetKey([layer, f"{self.short}_{table}"])

    def chain(self) -> list[dg.AssetKey]:
        """Every partitioned asset of this source, raw to warehouse: one day's whole work."""
        return [self.key(layer, table) for layer, table in CHAIN]


SOURCES: tuple[CaptureSource, ...] = (
    CaptureSource(
        "production",
        "prod",
        daily,
        "capture_db",
        "Captures from the capture service's database, extracted per capture day.",
        0.8,
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
    ),
    CaptureSource(
        "campaign",
        "camp",
        campaigns,
        "drop_folder",
        "Captures from the team's capture campaigns, one drop folder per campaign.",
        # Campaigns mostly collect print and replay attacks, which hide faces from a detector.
        0.4,
        landing="campaigns",
    ),
    CaptureSource(
        "open_dataset",
        "open",
        open_datasets,
        "drop_folder",
        "Captures from open datasets imported in bulk.",
        0.85,
        landing="open-datasets",
    ),
)
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in SOURCES)
BY_NAME: dict[str, CaptureSource] = {s.name: s for s in SOURCES}
CAPTURE_TYPES = ("selfie", "id_front", "id_back")
