"""How each capture source is partitioned."""

import dagster as dg

# Production captures arrive continuously and are extracted in daily batches.
daily = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
# A campaign is a drop folder that appears once; the sensor adds its partition.
campaigns = dg.DynamicPartitionsDefinition(name="campaigns")
# Open datasets are imported in bulk and rarely change.
open_datasets = dg.StaticPartitionsDefinition(["lfw_subset"])
