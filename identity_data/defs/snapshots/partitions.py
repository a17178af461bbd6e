"""Each training snapshot is one partition, added when it is made (UI, CLI or schedule)."""

import dagster as dg

snapshots = dg.DynamicPartitionsDefinition(name="snapshots")
